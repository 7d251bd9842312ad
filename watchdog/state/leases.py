"""The coordination tables of several instances on one PostgreSQL (``instances``,
``leases``, the leader's advisory lock), and fencing by lease: the checks a write
makes, inside its transaction, that this instance still owns what it writes for.

watchdog.cluster.coordinator decides (who claims what, when); the statements are here.
Times are the database's clock, never the instances' own.

Several instances share one PostgreSQL: each participant's lease row names its owner
and a generation that bumps on every change of owner, and the leader holds an
advisory lock. A write locks the rows it depends on and compares; an instance that
lost a lease (paused, cut off) raises StaleLease and writes nothing. Many-row locks
take the rows in key order, so two transactions never wait on each other in a cycle.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from watchdog.state.database import Cursor, Database
from watchdog.state.rows import Key

if TYPE_CHECKING:  # imported by the methods: a daemon on SQLite never loads psycopg
    import psycopg

LEADER_LOCK = 0x5644_5702  # advisory lock key of watchdog.cluster.coordinator's leader

Fence = tuple[str, int]  # (instance id, lease generation)

NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"

log = logging.getLogger(__name__)


class StaleLease(Exception):
    """A write for a participant whose lease this instance no longer holds (fencing)."""


def lock_owned(db: Database, cur: Cursor, owner: str) -> dict[Key, Fence]:
    """Lock the lease rows ``owner`` holds for this transaction: (owner, generation)."""
    rows = cur.execute(
        "SELECT session_id, participant_id, generation FROM leases WHERE owner = ?"  # noqa: S608
        " ORDER BY session_id, participant_id"  # the order every many-row lock takes
        + db.for_update,
        (owner,),
    ).fetchall()
    return {(row[0], row[1]): (owner, int(row[2])) for row in rows}


def lock_one(
    db: Database, cur: Cursor, key: Key, *, wait: bool = True
) -> Fence | Literal["busy"] | None:
    """Lock one lease row for this transaction: (owner, generation), None if unowned.

    ``wait=False`` for a row locked out of key order (waiting could deadlock a
    transaction that locks in order): "busy" when another transaction has it locked.
    """
    where = " FROM leases WHERE session_id = ? AND participant_id = ?"
    lock = db.for_update if wait else " FOR UPDATE SKIP LOCKED"
    row = cur.execute("SELECT owner, generation" + where + lock, key).fetchone()
    if row is None and not wait and cur.execute("SELECT 1" + where, key).fetchone():
        return "busy"
    return None if row is None or row[0] is None else (row[0], int(row[1]))


def check_fence(db: Database, cur: Cursor, key: Key, fence: Fence) -> None:
    """Lock the lease row for this transaction and compare owner and generation."""
    lease = lock_one(db, cur, key)
    if lease != fence:
        held = "nobody" if lease is None else f"{lease[0]} (generation {lease[1]})"
        raise StaleLease(
            f"lease of {key[0]}/{key[1]} is held by {held}, not by {fence[0]} "
            f"(generation {fence[1]}): result discarded"
        )


def check_leader(cur: Cursor, backend_pid: int) -> None:
    """Is the leader advisory lock still held by the connection with ``backend_pid``?"""
    row = cur.execute(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND CAST(classid AS BIGINT) = ? AND CAST(objid AS BIGINT) = ? AND objsubid = 1"
        " AND pid = ?",
        (LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFF_FFFF, backend_pid),
    ).fetchone()
    if not row or int(row[0]) == 0:
        raise StaleLease(
            f"a leader's write (meeting-rule states, the daemon's own alerts) by a connection"
            f" (backend {backend_pid}) that no longer holds the leader lock: result discarded"
        )


# -- leadership ------------------------------------------------------------------------


class Leadership:
    """A session-level advisory lock on a connection of its own: released by the server
    when the instance holding it dies."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None

    def check(self) -> bool:
        """Still (or now) the leader? A dropped connection is a lost leadership."""
        import psycopg  # noqa: PLC0415  # see the import at the top

        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                row = self._conn.execute(f"SELECT pg_try_advisory_lock({LEADER_LOCK})").fetchone()
                if not (row and row[0]):
                    self.close()
                    return False
                return True
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error as exc:
            log.warning("leadership check failed: %s", exc)
            self.close()
            return False

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock's connection: what leader-only writes are fenced by."""
        if self._conn is None or self._conn.closed:
            return None
        return int(self._conn.info.backend_pid)

    def close(self) -> None:
        import psycopg  # noqa: PLC0415  # see the import at the top

        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


# -- instances and their heartbeats ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceRow:
    id: str
    host: str
    pid: int
    started_at: str
    heartbeat_age: float  # seconds, by the database's clock
    held: int
    roles: str
    heartbeat_at: float = 0.0  # epoch seconds, by the database's clock


def instances(db: Database) -> list[InstanceRow]:
    """Every registered instance, for ``status``."""
    rows = db.execute(
        f"SELECT id, host, pid, started_at, {NOW} - heartbeat_at, held, roles, heartbeat_at"  # noqa: S608
        " FROM instances ORDER BY started_at, id"
    ).fetchall()
    return [
        InstanceRow(r[0], r[1], int(r[2]), r[3], float(r[4]), int(r[5]), r[6], float(r[7]))
        for r in rows
    ]


def database_now(cur: Cursor) -> float:
    """The database's clock, in epoch seconds."""
    return float(cur.execute(f"SELECT {NOW}").fetchone()[0])


def heartbeat(  # noqa: PLR0917
    cur: Cursor, ident: str, host: str, pid: int, started: str, now: float, held: int, roles: str
) -> None:
    cur.execute(
        "INSERT INTO instances (id, host, pid, started_at, heartbeat_at, held, roles)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
        " heartbeat_at = excluded.heartbeat_at, held = excluded.held,"
        " roles = excluded.roles",
        (ident, host, pid, started, now, held, roles),
    )


def live_instances(cur: Cursor, since: float) -> int:
    """Instances whose heartbeat is newer than ``since``."""
    return int(
        cur.execute("SELECT COUNT(*) FROM instances WHERE heartbeat_at > ?", (since,)).fetchone()[0]
    )


def first_other_heartbeat(cur: Cursor, ident: str, since: float) -> float | None:
    """The oldest heartbeat, newer than ``since``, of another instance holding leases."""
    row = cur.execute(
        "SELECT MIN(i.heartbeat_at) FROM instances i WHERE i.id <> ? AND i.heartbeat_at > ?"
        " AND EXISTS (SELECT 1 FROM leases l WHERE l.owner = i.id)",
        (ident, since),
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def report_polls(  # noqa: PLR0917
    cur: Cursor, ident: str, now: float, answered: int, failed: int, reasons: str
) -> None:
    """This instance's latest poll cycle as the API answered it (``reasons``: JSON)."""
    cur.execute(
        "UPDATE instances SET polls_answered = ?, polls_failed = ?, poll_reasons = ?,"
        " polls_at = ? WHERE id = ?",
        (answered, failed, reasons, now, ident),
    )


def poll_reports(cur: Cursor, since: float) -> list[tuple[int, int, str]]:
    """(answered, failed, reasons JSON) of every instance alive and reporting since then."""
    rows = cur.execute(
        "SELECT polls_answered, polls_failed, poll_reasons FROM instances"
        " WHERE heartbeat_at > ? AND polls_at > ?",
        (since, since),
    ).fetchall()
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]


def report_places(cur: Cursor, ident: str, now: float, places: str) -> None:
    """This instance's place loads as of its latest cycle (``places``: JSON)."""
    cur.execute("UPDATE instances SET places = ?, places_at = ? WHERE id = ?", (places, now, ident))


def place_reports(cur: Cursor, ident: str, since: float) -> list[str]:
    """The place loads (JSON) of every other instance alive and reporting since then."""
    rows = cur.execute(
        "SELECT places FROM instances WHERE id <> ? AND heartbeat_at > ? AND places_at > ?",
        (ident, since, since),
    ).fetchall()
    return [str(r[0]) for r in rows]


# -- the leases ------------------------------------------------------------------------


def keep_one_per_watched(cur: Cursor, forget_instances_after: float) -> None:
    """The leader's bookkeeping: one lease row per watched participant, none for those
    gone, and no instance whose heartbeat stopped that many seconds ago."""
    cur.execute(
        "INSERT INTO leases (session_id, participant_id)"
        " SELECT session_id, participant_id FROM watchlist WHERE status <> 'excluded'"
        " ON CONFLICT DO NOTHING"
    )
    gone = (
        " FROM leases WHERE NOT EXISTS (SELECT 1 FROM watchlist w"
        " WHERE w.session_id = leases.session_id"
        " AND w.participant_id = leases.participant_id AND w.status <> 'excluded')"
    )
    cur.execute(  # in key order first, as every many-row lock (see lock_in_order)
        "SELECT 1" + gone + " ORDER BY session_id, participant_id FOR UPDATE"
    )
    cur.execute("DELETE" + gone)
    cur.execute(
        f"DELETE FROM instances WHERE heartbeat_at < {NOW} - ?",  # noqa: S608
        (forget_instances_after,),
    )


def count(cur: Cursor) -> int:
    return int(cur.execute("SELECT COUNT(*) FROM leases").fetchone()[0])


def owned_by(cur: Cursor, owner: str) -> list[tuple[Key, int]]:
    """The leases ``owner`` holds, with their generations. Reads, locks nothing."""
    rows = cur.execute(
        "SELECT session_id, participant_id, generation FROM leases WHERE owner = ?", (owner,)
    ).fetchall()
    return [((s, p), int(g)) for s, p, g in rows]


def lock_free(cur: Cursor, since: float, limit: int) -> list[tuple[Key, str | None]]:
    """Up to ``limit`` free leases (nobody owns them, or their owner's heartbeat is not
    newer than ``since``), locked in key order, skipping rows others have locked; with
    their previous owner."""
    rows = cur.execute(
        "SELECT session_id, participant_id, owner FROM leases"
        " WHERE owner IS NULL OR NOT EXISTS (SELECT 1 FROM instances i"
        " WHERE i.id = leases.owner AND i.heartbeat_at > ?)"
        " ORDER BY session_id, participant_id LIMIT ? FOR UPDATE SKIP LOCKED",
        (since, limit),
    ).fetchall()
    return [((r[0], r[1]), r[2]) for r in rows]


def lock_in_order(cur: Cursor, keys: list[Key]) -> None:
    """Lock these lease rows in key order before changing several: every transaction
    that locks many (this, the end-of-cycle flush) takes them in the same order, so
    none can deadlock another."""
    cur.execute(
        "SELECT 1 FROM leases l JOIN unnest(?::text[], ?::text[]) AS k(s, p)"
        " ON l.session_id = k.s AND l.participant_id = k.p"
        " ORDER BY l.session_id, l.participant_id FOR UPDATE OF l",
        _arrays(keys),
    )


def release(cur: Cursor, keys: list[Key], owner: str) -> None:
    """Hand these leases back, those still ``owner``'s."""
    lock_in_order(cur, keys)
    cur.execute(
        "UPDATE leases SET owner = NULL"
        " FROM unnest(?::text[], ?::text[]) AS k(s, p)"
        " WHERE leases.session_id = k.s AND leases.participant_id = k.p"
        " AND leases.owner = ?",
        (*_arrays(keys), owner),
    )


def bump(cur: Cursor, keys: list[Key], new_owner: str, owner: str | None = None) -> dict[Key, int]:
    """Own these leases under a new generation: earlier holders' writes are fenced.
    ``owner``: only those still owned by it (rows not locked by this transaction)."""
    if owner is not None:
        lock_in_order(cur, keys)
    rows = cur.execute(
        "UPDATE leases SET owner = ?, generation = generation + 1"  # noqa: S608 - literals
        " FROM unnest(?::text[], ?::text[]) AS k(s, p)"
        " WHERE leases.session_id = k.s AND leases.participant_id = k.p"
        + ("" if owner is None else " AND leases.owner = ?")
        + " RETURNING leases.session_id, leases.participant_id, leases.generation",
        (new_owner, *_arrays(keys)) + (() if owner is None else (owner,)),
    ).fetchall()
    return {(s, p): int(g) for s, p, g in rows}


def leave(cur: Cursor, ident: str) -> None:
    """Hand back every lease ``ident`` holds and unregister it."""
    cur.execute(
        "SELECT 1 FROM leases WHERE owner = ? ORDER BY session_id, participant_id FOR UPDATE",
        (ident,),
    )
    cur.execute("UPDATE leases SET owner = NULL WHERE owner = ?", (ident,))
    cur.execute("DELETE FROM instances WHERE id = ?", (ident,))


def _arrays(keys: list[Key]) -> tuple[list[str], list[str]]:
    """Keys as the two text arrays ``unnest(?::text[], ?::text[]) AS k(s, p)`` reads."""
    return [k[0] for k in keys], [k[1] for k in keys]
