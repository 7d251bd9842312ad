"""The outbox: notifications written in the same transaction as what caused them, and
delivered from here (see watchdog.delivery.dispatcher), at least once.

Rows are ordered by ``seq``; each (notifier, fingerprint) group is delivered in that
order, one at a time, so a pass reads only the due heads of the groups. The outcome of
each attempt also keeps each notifier's run of failures (``notifier_failures``: since
when it has not delivered anything), which the daemon's ``notifier-failing`` alert reads.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from watchdog.alerts import Notification
from watchdog.durations import format_time
from watchdog.state import history
from watchdog.state.database import Cursor, Database
from watchdog.state.rows import now_text, read_time


@dataclass(frozen=True, slots=True)
class FailureRun:
    """A notifier's deliveries failing since its last success (``notifier_failures``)."""

    notifier: str
    since: datetime  # the first failed attempt after its last success
    failures: int  # failed attempts since then
    last_error: str  # redacted by the dispatcher


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: str
    notifier: str
    fingerprint: str
    payload: str | None  # the notification as stored, decoded when needed; None: not read
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    permanent: bool = False
    warned_at: datetime | None = None

    @property
    def notification(self) -> Notification:
        """Decoded on demand: a delivery pass reads headers, and decodes only what it starts
        (or reports overdue)."""
        if self.payload is None:
            raise LookupError(f"outbox entry {self.id} was read without its payload")
        return _notification(self.payload)


_COLUMNS = (
    "id, notifier, fingerprint, {payload}, created_at, attempts, next_attempt_at,"
    " last_error, permanent, warned_at"
)


@functools.lru_cache(maxsize=1024)
def _notification(payload: str) -> Notification:
    return Notification.from_dict(json.loads(payload))


class _Sequence:
    """Strictly increasing integers across threads, for outbox order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


def _record(
    cur: Cursor,
    entry_id: str,
    kind: str,
    detail: str | None = None,
    *,
    first: bool = True,
    permanent: bool = False,
) -> None:
    """The history of a notification's delivery (watchdog.state.history): delivered, or
    failed the ``first`` time or the first time ``permanent``ly."""
    row = cur.execute("SELECT payload, permanent FROM outbox WHERE id = ?", (entry_id,)).fetchone()
    if row is not None and (first or (permanent and not row[1])):
        history.record_notification(cur, _notification(row[0]), kind, detail)


class Outbox:
    """The ``outbox`` table: queueing, the delivery pass's reads, and the outcome of each
    attempt."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sequence = _Sequence()

    def insert(
        self, cur: Cursor, dedup_key: str, notification: Notification, now: str, order_key: str
    ) -> int:
        """Queue one notification inside the caller's transaction; 1 if queued, 0 if its
        ``dedup_key`` was already there. ``order_key`` (the notification's group)
        serialises delivery: kept as the row's ``fingerprint``, the column each lane is
        ordered by."""
        cur.execute(
            "INSERT INTO outbox (id, dedup_key, seq, notifier, fingerprint, payload, created_at,"
            " attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)"
            " ON CONFLICT (dedup_key) DO NOTHING",
            (
                notification.id or uuid.uuid4().hex,
                dedup_key,
                self._sequence.next(),
                notification.notifier,
                order_key,
                json.dumps(notification.to_dict(), separators=(",", ":")),
                now,
                now,
            ),
        )
        return cur.rowcount if cur.rowcount > 0 else 0

    def entries(self, limit: int | None = None) -> list[OutboxEntry]:
        """Pending notifications in the order they were written."""
        sql = f"SELECT {_COLUMNS.format(payload='payload')} FROM outbox ORDER BY seq"  # noqa: S608
        params: tuple[int, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return self._rows(sql, params)

    def due(self, now: datetime, skip: Collection[str] = ()) -> list[OutboxEntry]:
        """What a delivery pass may start: of each (notifier, fingerprint) group, its first
        notification, when due, for notifiers other than ``skip`` (lanes already full).

        Headers only (``with_payload`` reads the notification): a slow or dead notifier's
        backlog of rows waiting behind their group's head, or for their backoff, or for a
        free thread of its lane, is never read.
        """
        marks = ", ".join("?" for _ in skip)
        sql = (
            f"SELECT {_COLUMNS.format(payload='NULL')} FROM outbox o"  # noqa: S608
            " WHERE next_attempt_at <= ?"
            + (f" AND notifier NOT IN ({marks})" if skip else "")
            + " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.notifier = o.notifier"
            " AND p.fingerprint = o.fingerprint AND p.seq < o.seq) ORDER BY seq"
        )
        return self._rows(sql, (format_time(now), *skip))

    def overdue(self, written_before: datetime) -> list[OutboxEntry]:
        """Notifications written before that time and not yet reported overdue (headers)."""
        sql = (
            f"SELECT {_COLUMNS.format(payload='NULL')} FROM outbox"  # noqa: S608
            " WHERE warned_at IS NULL AND created_at <= ? ORDER BY seq"
        )
        return self._rows(sql, (format_time(written_before),))

    def next_retry(self, after: datetime) -> datetime | None:
        """The earliest time a notification waiting in the outbox is due, after ``after``."""
        with self._db.lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE next_attempt_at > ?",
                (format_time(after),),
            ).fetchone()
        return read_time(row[0])

    def _rows(self, sql: str, params: Sequence[object]) -> list[OutboxEntry]:
        with self._db.lock:
            rows = self._db.execute(sql, tuple(params)).fetchall()
        return [
            OutboxEntry(
                id=row[0],
                notifier=row[1],
                fingerprint=row[2],
                payload=row[3],
                created_at=read_time(row[4]) or datetime.now(UTC),
                attempts=row[5],
                next_attempt_at=read_time(row[6]) or datetime.now(UTC),
                last_error=row[7],
                permanent=bool(row[8]),
                warned_at=read_time(row[9]),
            )
            for row in rows
        ]

    def with_payload(self, entry: OutboxEntry) -> OutboxEntry | None:
        """The entry with its notification read; None when it has left the outbox."""
        if entry.payload is not None:
            return entry
        with self._db.lock:
            row = self._db.execute(
                "SELECT payload FROM outbox WHERE id = ?", (entry.id,)
            ).fetchone()
        return None if row is None else replace(entry, payload=row[0])

    def stats(self) -> tuple[int, datetime | None]:
        """How many notifications wait, and when the oldest was written."""
        with self._db.lock:
            row = self._db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
        return int(row[0]), read_time(row[1])

    def depth(self) -> int:
        with self._db.lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def claim(self, entry_id: str, owner: str, seconds: float) -> bool:
        """Several instances: take one notification for delivery unless another live
        instance has it (``SKIP LOCKED``: nobody waits on a row being delivered)."""
        with self._db.transaction() as cur:
            row = cur.execute(
                "SELECT id FROM outbox WHERE id = ? AND (claimed_by IS NULL OR claimed_by = ?"
                " OR claimed_until < EXTRACT(EPOCH FROM clock_timestamp()))"
                " FOR UPDATE SKIP LOCKED",
                (entry_id, owner),
            ).fetchone()
            if row is None:
                return False
            cur.execute(
                "UPDATE outbox SET claimed_by = ?,"
                " claimed_until = EXTRACT(EPOCH FROM clock_timestamp()) + ? WHERE id = ?",
                (owner, seconds, entry_id),
            )
        return True

    def delivered(self, entry_id: str) -> None:
        """Gone from the outbox; its notifier's run of failures, if any, is over."""
        with self._db.transaction() as cur:
            _record(cur, entry_id, "sent")
            cur.execute(
                "DELETE FROM notifier_failures WHERE notifier ="
                " (SELECT notifier FROM outbox WHERE id = ?)",
                (entry_id,),
            )
            cur.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    def failed(
        self,
        entry_id: str,
        attempts: int,
        next_attempt_at: datetime,
        error: str,
        permanent: bool = False,
    ) -> None:
        """An attempt failed: the row waits until ``next_attempt_at``, and its notifier's run
        of failures starts (or goes on)."""
        with self._db.transaction() as cur:
            # the first failure and the first permanent one, not every retry of a backlog
            _record(cur, entry_id, "failed", error[:200], first=attempts <= 1, permanent=permanent)
            cur.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?,"
                " permanent = ? WHERE id = ?",
                (attempts, format_time(next_attempt_at), error[:1000], int(permanent), entry_id),
            )
            cur.execute(  # the WHERE also settles SQLite's INSERT ... SELECT ... ON CONFLICT
                "INSERT INTO notifier_failures (notifier, since, failures, last_error)"
                " SELECT notifier, ?, 1, ? FROM outbox WHERE id = ?"
                " ON CONFLICT (notifier) DO UPDATE SET"
                " failures = notifier_failures.failures + 1, last_error = excluded.last_error",
                (now_text(), error[:1000], entry_id),
            )

    def failing(self) -> dict[str, FailureRun]:
        """Every notifier whose latest attempts failed, by name: since when, how often."""
        with self._db.lock:
            rows = self._db.execute(
                "SELECT notifier, since, failures, last_error FROM notifier_failures"
            ).fetchall()
        return {
            name: FailureRun(name, read_time(since) or datetime.now(UTC), int(failures), error)
            for name, since, failures, error in rows
        }

    def warned(self, entry_id: str, at: datetime) -> None:
        """Mark a notification as reported overdue, so the ERROR is logged once."""
        with self._db.transaction() as cur:
            cur.execute("UPDATE outbox SET warned_at = ? WHERE id = ?", (format_time(at), entry_id))

    def retry_now(self, entry_ids: Iterable[str] | None = None) -> int:
        """Make notifications due at once (all when ``entry_ids`` is None)."""
        now = now_text()
        with self._db.transaction() as cur:
            if entry_ids is None:
                cur.execute("UPDATE outbox SET next_attempt_at = ?", (now,))
                return max(cur.rowcount, 0)
            count = 0
            for entry_id in entry_ids:
                cur.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (now, entry_id))
                count += max(cur.rowcount, 0)
            return count
