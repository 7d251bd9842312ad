"""Several instances on one PostgreSQL: heartbeats, participant leases, one leader.

PostgreSQL is the coordinator; there is no protocol of our own. Each instance
heartbeats into ``instances`` every third of a lease; watched participants are
spread over the live instances by leases in ``leases``, claimed with
``FOR UPDATE SKIP LOCKED`` so two instances never wait on or take the same row.
A lease is valid while its owner's heartbeat is younger than ``state.lease``
(default three poll intervals), so renewing every lease an instance holds is one
row, its heartbeat, whatever it holds. A lease is free when nobody owns it or its
owner's heartbeat is a lease old (or gone); each instance claims its share of the
free ones every poll cycle, and also at the moment another instance's leases
fall due (the service schedules :meth:`Cluster.take_over` for then and polls
what it gets at once), so a dead instance's participants are polled again
within one lease and one interval of its last heartbeat.

Every claim bumps the lease's generation, and every per-participant write is
fenced by it in the same transaction, which locks the lease row
(watchdog.state.store): a paused instance whose lease was claimed meanwhile cannot
write over its successor; one whose heartbeat went stale but whose lease nobody
claimed still owns it, and its write and any claim are ordered by that row lock.

One instance at a time, the leader (a session-level advisory lock on its own
connection, released by the server when that instance dies), runs discovery,
the alert manager, meeting-level rules and the lease bookkeeping; its meeting-rule
writes are fenced by the lock's connection still holding it. Times are the database's clock,
never the instances' own.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import REGISTRY, Counter, Gauge

from watchdog.config.settings import WatchedParticipant
from watchdog.durations import format_time
from watchdog.state.database import ROUND_TRIPS, Cursor
from watchdog.state.leases import LEADER_LOCK
from watchdog.state.rows import Key
from watchdog.state.store import Store

log = logging.getLogger(__name__)

# LEADER_LOCK (watchdog.state.store): discovery, alert manager, meeting rules, lease bookkeeping

# on PostgreSQL only: exported by join(), so on SQLite they are absent rather than 0
LEASES_HELD = Gauge("watchdog_leases_held", "Participant leases this instance holds", registry=None)
LEASE_TAKEOVERS = Counter(
    "watchdog_lease_takeovers",
    "Leases taken over from an instance whose heartbeat went stale",
    registry=None,
)
LEASES_CLAIMED = Counter(
    "watchdog_leases_claimed", "Leases claimed (new or taken over)", registry=None
)
LEASES_RELEASED = Counter(
    "watchdog_leases_released", "Leases handed back for rebalancing", registry=None
)
LEASES_LOST = Counter(
    "watchdog_leases_lost", "Leases this instance found taken by another", registry=None
)
STALE_WRITES = Counter(
    "watchdog_stale_writes_rejected",
    "Poll results rejected because the lease had moved on",
    registry=None,
)
INSTANCES_LIVE = Gauge("watchdog_instances_live", "Instances with a fresh heartbeat", registry=None)
LEADER = Gauge(
    "watchdog_leader",
    "1 while this instance runs discovery and the alert manager",
    registry=None,
)
DATABASE_UP = Gauge(
    "watchdog_database_up", "1 while the last heartbeat reached the database", registry=None
)
METRICS = (
    LEASES_HELD,
    LEASE_TAKEOVERS,
    LEASES_CLAIMED,
    LEASES_RELEASED,
    LEASES_LOST,
    STALE_WRITES,
    INSTANCES_LIVE,
    LEADER,
    DATABASE_UP,
    ROUND_TRIPS,
)

NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


def instance_id(configured: str | None = None) -> str:
    """Unique per process: a restarted instance is a new one (its old leases just expire)."""
    if configured:
        return configured
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Leadership:
    """A session-level advisory lock on a connection of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.Connection[Any] | None = None

    def check(self) -> bool:
        """Still (or now) the leader? A dropped connection is a lost leadership."""
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
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


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


class Cluster:
    """This instance's membership: call ``tick()`` before every poll cycle."""

    def __init__(self, store: Store, url: str, lease_seconds: float, ident: str) -> None:
        self.store = store
        self.id = ident
        self.lease = lease_seconds
        self.leader = False
        self.held: dict[Key, int] = {}  # key -> generation
        self.on_acquire: Callable[[Key], None] = lambda key: None
        self.on_lose: Callable[[Key], None] = lambda key: None
        self.on_lead: Callable[[], None] = lambda: None  # just became the leader
        self._leadership = Leadership(url)
        self._started = format_time(datetime.now(UTC))
        self._last_ok = 0.0  # monotonic time of the last heartbeat that reached the database
        self._lock = threading.Lock()
        self._claim_lock = threading.Lock()

    # -- what the poller and the service read ------------------------------------------

    def targets(self) -> list[WatchedParticipant]:
        with self._lock:
            return [WatchedParticipant(session=s, participant=p) for s, p in sorted(self.held)]

    def fence(self, key: Key) -> tuple[str, int] | None:
        with self._lock:
            generation = self.held.get(key)
        return (self.id, generation if generation is not None else -1)

    def leader_fence(self) -> int | None:
        """What a leader-only write (meeting-rule states) is fenced by; None off the leader."""
        return self._leadership.backend_pid if self.leader else None

    def stale_leader_write(self, why: str) -> None:
        STALE_WRITES.inc()
        log.warning("%s", why)
        self.leader = False
        LEADER.set(0)

    def stale_write(self, key: Key, why: str) -> None:
        STALE_WRITES.inc()
        log.warning("%s", why, extra={"session_id": key[0], "participant_id": key[1]})
        with self._lock:
            self.held.pop(key, None)

    def database_ok(self) -> bool:
        """Did a heartbeat reach the database within one lease length?"""
        return time.monotonic() - self._last_ok < self.lease

    # -- the cycle -------------------------------------------------------------------------

    def tick(self) -> None:
        """Heartbeat, leadership, rebalance and claim; never raises."""
        try:
            was, self.leader = self.leader, self._leadership.check()
            LEADER.set(1 if self.leader else 0)
            if self.leader and not was:
                self.on_lead()
            if self.leader:
                self._bookkeeping()
            self._claim()
            self._last_ok = time.monotonic()
            DATABASE_UP.set(1)
        except Exception as exc:
            DATABASE_UP.set(0)
            log.error("cluster heartbeat failed: %s: %s", type(exc).__name__, exc)

    def renew(self) -> float | None:
        """Heartbeat on its own timer (every third of a lease), so a poll cycle longer than
        the lease does not hand this instance's participants away while it still polls
        them. A lease is valid while its owner's heartbeat is: this one row renews them
        all. Returns when (seconds from now) another instance's leases fall due if it
        stops heartbeating, for :meth:`take_over`. Never raises."""
        try:
            with self.store.transaction() as cur:
                now = self._now(cur)
                self._heartbeat(cur, now, len(self.held))
                due = self._next_due(cur, now)
            self._last_ok = time.monotonic()
            DATABASE_UP.set(1)
        except Exception as exc:
            DATABASE_UP.set(0)
            log.error("cluster heartbeat failed: %s: %s", type(exc).__name__, exc)
            return None
        return due

    def take_over(self) -> tuple[list[WatchedParticipant], float | None]:
        """Claim now, between poll cycles: run when another instance's leases fall due, so
        its participants move within one lease of its last heartbeat, not at this
        instance's next cycle. Returns the participants just acquired (to poll at once)
        and when to look again. Never raises."""
        try:
            acquired, due = self._claim()
        except Exception as exc:
            log.error("cluster take-over failed: %s: %s", type(exc).__name__, exc)
            return [], None
        return [WatchedParticipant(session=s, participant=p) for s, p in sorted(acquired)], due

    def _bookkeeping(self) -> None:
        """The leader keeps one lease row per watched participant, and forgets the dead."""
        with self.store.transaction() as cur:
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
            cur.execute(  # in key order first, as every many-row lock (see _lock_rows)
                "SELECT 1" + gone + " ORDER BY session_id, participant_id FOR UPDATE"
            )
            cur.execute("DELETE" + gone)
            cur.execute(
                f"DELETE FROM instances WHERE heartbeat_at < {NOW} - ?",  # noqa: S608
                (self.lease * 20,),
            )

    @staticmethod
    def _now(cur: Cursor) -> float:
        return float(cur.execute(f"SELECT {NOW}").fetchone()[0])

    def _next_due(self, cur: Cursor, now: float) -> float | None:
        """Seconds until the first other live instance holding leases would lose them,
        were it to stop heartbeating now (None: nobody else holds any)."""
        row = cur.execute(
            "SELECT MIN(i.heartbeat_at) FROM instances i WHERE i.id <> ? AND i.heartbeat_at > ?"
            " AND EXISTS (SELECT 1 FROM leases l WHERE l.owner = i.id)",
            (self.id, now - self.lease),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return float(row[0]) + self.lease - now

    def _claim(self) -> tuple[set[Key], float | None]:
        """Rebalance and claim this instance's share; returns what it newly acquired.

        Nothing is written for the leases it keeps: they live on its heartbeat. A lease
        is free when nobody owns it, or its owner's heartbeat is a lease old (or gone).
        Serialised: the cycle's tick and a timed take-over must not interleave."""
        with self._claim_lock:
            return self._claim_locked()

    def _claim_locked(self) -> tuple[set[Key], float | None]:
        lease = self.lease
        with self.store.transaction() as cur:
            now = self._now(cur)
            self._heartbeat(cur, now, len(self.held))
            live = int(
                cur.execute(
                    "SELECT COUNT(*) FROM instances WHERE heartbeat_at > ?", (now - lease,)
                ).fetchone()[0]
            )
            total = int(cur.execute("SELECT COUNT(*) FROM leases").fetchone()[0])
            share = math.ceil(total / max(live, 1))
            kept, strays = self._owned(cur)
            if len(kept) > share and live > 1:  # someone joined: hand back the surplus
                surplus = sorted(kept)[share:]
                self._release(cur, surplus)
                for key in surplus:
                    del kept[key]
                LEASES_RELEASED.inc(len(surplus))
            taken = 0
            need = share - len(kept)
            if strays:  # ours in the database, not in memory (a commit whose answer got
                # lost): taken again with a new generation, which fences whoever wrote before
                kept |= self._bump(cur, strays, owner=self.id)
            if need > len(strays):
                free = cur.execute(
                    "SELECT session_id, participant_id, owner FROM leases"
                    " WHERE owner IS NULL OR NOT EXISTS (SELECT 1 FROM instances i"
                    " WHERE i.id = leases.owner AND i.heartbeat_at > ?)"
                    " ORDER BY session_id, participant_id LIMIT ? FOR UPDATE SKIP LOCKED",
                    (now - lease, need - len(strays)),
                ).fetchall()
                if free:
                    claimed = self._bump(cur, [(r[0], r[1]) for r in free])
                    kept |= claimed
                    taken = sum(1 for r in free if r[2] is not None)
                    LEASES_CLAIMED.inc(len(claimed))
                    LEASE_TAKEOVERS.inc(taken)
            if len(kept) != len(self.held):
                self._heartbeat(cur, now, len(kept))
            due = self._next_due(cur, now)
            INSTANCES_LIVE.set(live)
        with self._lock:
            before, self.held = self.held, kept
        for key in before.keys() - kept.keys():
            LEASES_LOST.inc()
            self.on_lose(key)
        acquired = {key for key, generation in kept.items() if before.get(key) != generation}
        for key in acquired:
            self.on_acquire(key)
        LEASES_HELD.set(len(kept))
        if taken:
            log.info("took over %d participants of an instance whose heartbeat stopped", taken)
        return acquired, due

    def _owned(self, cur: Cursor) -> tuple[dict[Key, int], list[Key]]:
        """The leases the database says are this instance's: those at the generation it
        knows, and strays (a generation it never saw). A lease claimed away meanwhile is
        simply not among them. Reads, writes nothing."""
        with self._lock:
            known = dict(self.held)
        kept: dict[Key, int] = {}
        strays = []
        for s, p, g in cur.execute(
            "SELECT session_id, participant_id, generation FROM leases WHERE owner = ?",
            (self.id,),
        ).fetchall():
            if known.get((s, p)) == int(g):
                kept[(s, p)] = int(g)
            else:
                strays.append((s, p))
        return kept, strays

    def _lock_rows(self, cur: Cursor, keys: list[Key]) -> None:
        """Lock these lease rows in key order before changing several: every transaction
        that locks many (this, the store's end-of-cycle flush) takes them in the same
        order, so none can deadlock another."""
        cur.execute(
            "SELECT 1 FROM leases l JOIN unnest(?::text[], ?::text[]) AS k(s, p)"
            " ON l.session_id = k.s AND l.participant_id = k.p"
            " ORDER BY l.session_id, l.participant_id FOR UPDATE OF l",
            _arrays(keys),
        )

    def _release(self, cur: Cursor, keys: list[Key]) -> None:
        self._lock_rows(cur, keys)
        cur.execute(
            "UPDATE leases SET owner = NULL"
            " FROM unnest(?::text[], ?::text[]) AS k(s, p)"
            " WHERE leases.session_id = k.s AND leases.participant_id = k.p"
            " AND leases.owner = ?",
            (*_arrays(keys), self.id),
        )

    def _bump(self, cur: Cursor, keys: list[Key], owner: str | None = None) -> dict[Key, int]:
        """Own these leases under a new generation: earlier holders' writes are fenced.
        ``owner``: only those still owned by it (rows not locked by this transaction)."""
        if owner is not None:
            self._lock_rows(cur, keys)
        rows = cur.execute(
            "UPDATE leases SET owner = ?, generation = generation + 1"  # noqa: S608 - literals
            " FROM unnest(?::text[], ?::text[]) AS k(s, p)"
            " WHERE leases.session_id = k.s AND leases.participant_id = k.p"
            + ("" if owner is None else " AND leases.owner = ?")
            + " RETURNING leases.session_id, leases.participant_id, leases.generation",
            (self.id, *_arrays(keys)) + (() if owner is None else (owner,)),
        ).fetchall()
        return {(s, p): int(g) for s, p, g in rows}

    def _heartbeat(self, cur: Cursor, now: float, held: int) -> None:
        roles = "leader" if self.leader else ""
        cur.execute(
            "INSERT INTO instances (id, host, pid, started_at, heartbeat_at, held, roles)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " heartbeat_at = excluded.heartbeat_at, held = excluded.held,"
            " roles = excluded.roles",
            (self.id, socket.gethostname(), os.getpid(), self._started, now, held, roles),
        )

    def leave(self) -> None:
        """A clean stop hands every lease back at once, so nobody waits for expiry."""
        try:
            with self.store.transaction() as cur:
                cur.execute(
                    "SELECT 1 FROM leases WHERE owner = ?"
                    " ORDER BY session_id, participant_id FOR UPDATE",
                    (self.id,),
                )
                cur.execute("UPDATE leases SET owner = NULL WHERE owner = ?", (self.id,))
                cur.execute("DELETE FROM instances WHERE id = ?", (self.id,))
        except Exception as exc:
            log.warning("could not hand back leases on stop (they expire by themselves): %s", exc)
        self._leadership.close()
        with self._lock:
            self.held = {}


def instances(store: Store) -> list[InstanceRow]:
    """Every registered instance, for ``status``."""
    rows = store.database.execute(
        f"SELECT id, host, pid, started_at, {NOW} - heartbeat_at, held, roles, heartbeat_at"  # noqa: S608
        " FROM instances ORDER BY started_at, id"
    ).fetchall()
    return [
        InstanceRow(r[0], r[1], int(r[2]), r[3], float(r[4]), int(r[5]), r[6], float(r[7]))
        for r in rows
    ]


def join(  # noqa: PLR0917
    store: Store,
    url: str,
    lease_seconds: float,
    ident: str,
    poller: Any,
    dispatcher: Any,
    manager: Any,
) -> Cluster:
    """Wire a cluster member into the running parts: the poller polls what this instance
    leases, writes fenced, and picks up a taken-over participant's committed state; the
    dispatcher claims rows; the alert manager flushes on the leader only."""
    for metric in METRICS:
        with contextlib.suppress(ValueError):  # exported by an earlier member of this process
            REGISTRY.register(metric)
    cluster = Cluster(store, url, lease_seconds, ident)

    def acquire(key: Key) -> None:
        cursor, states, memory = store.load_participant(key)
        for table, value in ((poller.cursors, cursor), (poller.memories, memory)):
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        poller.states[key] = states

    def lose(key: Key) -> None:
        for table in (poller.cursors, poller.states, poller.memories, poller.infos):
            table.pop(key, None)

    def lead() -> None:  # meeting rules continue from the previous leader's committed states
        poller.meeting_states = store.load_meeting_states()

    cluster.on_acquire = acquire
    cluster.on_lose = lose
    cluster.on_lead = lead
    poller.targets = cluster.targets
    poller.fence = cluster.fence
    poller.on_stale = cluster.stale_write
    store.on_stale = cluster.stale_write  # a cycle's deferred results, fenced at its flush
    poller.meeting_fence = cluster.leader_fence
    poller.on_stale_meetings = cluster.stale_leader_write
    claim_for = dispatcher.timeout + 5.0
    dispatcher.claim = lambda entry: store.claim_outbox(entry.id, cluster.id, claim_for)
    manager.active = lambda: cluster.leader
    return cluster


def _arrays(keys: list[Key]) -> tuple[list[str], list[str]]:
    """Keys as the two text arrays ``unnest(?::text[], ?::text[]) AS k(s, p)`` reads."""
    return [k[0] for k in keys], [k[1] for k in keys]
