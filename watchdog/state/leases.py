"""Fencing by lease: the checks a write makes, inside its transaction, that this
instance still owns what it writes for.

Several instances share one PostgreSQL: each participant's lease row names its owner
and a generation that bumps on every change of owner, and the leader holds an
advisory lock. A write locks the rows it depends on and compares; an instance that
lost a lease (paused, cut off) raises StaleLease and writes nothing. Many-row locks
take the rows in key order, so two transactions never wait on each other in a cycle.
"""

from __future__ import annotations

from typing import Literal

from watchdog.state.database import Cursor, Database
from watchdog.state.rows import Key

LEADER_LOCK = 0x5644_5702  # advisory lock key of watchdog.cluster.coordinator's leader

Fence = tuple[str, int]  # (instance id, lease generation)


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
            f"meeting-rule states written by a connection (backend {backend_pid}) that no"
            " longer holds the leader lock: result discarded"
        )
