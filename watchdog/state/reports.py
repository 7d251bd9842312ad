"""Which call reports are due and which reports went out (issue 20).

A session's end is recorded (``ended_sessions``) in the transaction that forgets its
last watched participants, by whichever instance polled them; the leader's reporter
(watchdog.alerting.reports) reads them once their last minute summaries are written,
and queues the report in the outbox. Every report queued claims a unique key in
``reports_sent`` (``call:<session>``, ``digest:<day>``) in the same transaction as its
outbox rows: a report goes out once, however many instances try and whenever they
restart. The keys are kept as long as the history (pruned with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from watchdog.alerts import Notification
from watchdog.durations import format_time
from watchdog.state.database import Cursor, Database
from watchdog.state.outbox import Outbox
from watchdog.state.rows import now_text, read_time

MAX_DUE = 100  # ended sessions read at once; the rest wait for the next run


@dataclass(frozen=True, slots=True)
class EndedSession:
    session_id: str
    meeting_id: str | None
    ended_at: datetime


def record_end(cur: Cursor, session_id: str, meeting_id: str | None, now: str) -> None:
    """A watched session ended (inside the departure's transaction); the first record of
    it stands."""
    cur.execute(
        "INSERT INTO ended_sessions (session_id, meeting_id, ended_at) VALUES (?, ?, ?)"
        " ON CONFLICT (session_id) DO NOTHING",
        (session_id, meeting_id, now),
    )


class Reports:
    """The ``ended_sessions`` and ``reports_sent`` tables."""

    def __init__(self, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox

    def ended(self, before: datetime) -> list[EndedSession]:
        """Sessions that ended before ``before``, oldest first (at most MAX_DUE)."""
        with self._db.lock:
            rows = self._db.execute(
                "SELECT session_id, meeting_id, ended_at FROM ended_sessions"
                " WHERE ended_at <= ? ORDER BY ended_at, session_id LIMIT ?",
                (format_time(before), MAX_DUE),
            ).fetchall()
        return [
            EndedSession(str(s), None if m is None else str(m), read_time(at) or before)
            for s, m, at in rows
        ]

    def sent(self, key: str) -> bool:
        with self._db.lock:
            row = self._db.execute(
                "SELECT 1 FROM reports_sent WHERE report_key = ?", (key,)
            ).fetchone()
        return row is not None

    def queue(
        self,
        key: str,
        notifications: Sequence[Notification],
        session_id: str | None = None,
    ) -> int:
        """Claim ``key`` and queue the notifications, in one transaction; 0 when the key
        was claimed before (another instance, an earlier run). ``session_id``: the ended
        session this report is of, forgotten in the same transaction. Stamped with the
        wall clock, as every outbox row is (its delivery is due at once)."""
        stamp = now_text()
        with self._db.transaction() as cur:
            if session_id is not None:
                cur.execute("DELETE FROM ended_sessions WHERE session_id = ?", (session_id,))
            cur.execute(
                "INSERT INTO reports_sent (report_key, sent_at) VALUES (?, ?)"
                " ON CONFLICT (report_key) DO NOTHING",
                (key, stamp),
            )
            if cur.rowcount <= 0:
                return 0
            return sum(
                self._outbox.insert(cur, f"{key}|{n.notifier}", n, stamp, f"report:{key}")
                for n in notifications
            )

    def prune(self, before: datetime) -> int:
        """Forget the keys of reports sent before ``before`` (the history's retention)."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM reports_sent WHERE sent_at < ?", (format_time(before),))
            return max(cur.rowcount, 0)
