"""What operators said about alerts: silences (and the meetings some end with),
acknowledgements, and the audit log of who did what, when, from where."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watchdog.config.matchers import Matcher, parse_matchers
from watchdog.durations import format_time
from watchdog.state.database import Cursor, Database
from watchdog.state.rows import read_time

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class Ack:
    """Someone said "I'm on it" for one alert episode (its fingerprint and start)."""

    fingerprint: str
    starts_at: datetime
    acked_by: str
    acked_at: datetime
    source: str  # slack | cli
    note: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which alert or silence, when, and from where."""

    id: str
    at: datetime
    actor: str
    # acknowledge | unacknowledge | take | ack-expired | silence | unsilence | inhibit
    # | uninhibit | escalate
    action: str
    target: str  # an alert fingerprint or a silence ID
    source: str  # slack | cli | the inhibition rule
    detail: str


_SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at"


class Silences:
    """The ``silences``, ``silence_meetings``, ``acks`` and ``audit`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._unreadable: set[str] = set()  # logged once each (see _read)

    def add(self, silence: Silence) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    silence.id,
                    json.dumps([str(m) for m in silence.matchers]),
                    format_time(silence.starts_at),
                    format_time(silence.ends_at),
                    silence.created_by,
                    silence.comment,
                    format_time(silence.created_at),
                ),
            )

    def all(self) -> list[Silence]:
        """Every silence, pending, in force or ended; newest first."""
        return self._select("", ())

    def active(self, at: datetime) -> list[Silence]:
        """The silences in force at ``at`` (see :meth:`Silence.active`); newest first."""
        return self._select(" WHERE starts_at <= ? AND ends_at > ?", (format_time(at),) * 2)

    def _select(self, where: str, params: tuple[str, ...]) -> list[Silence]:
        sql = f"SELECT {_SILENCE_COLUMNS} FROM silences{where}"  # noqa: S608
        sql += " ORDER BY created_at DESC, id"
        with self._db.lock:
            rows = self._db.execute(sql, params).fetchall()
        return self._read(rows)

    def ended(self, now: datetime, limit: int = 100) -> list[Silence]:
        """The ``limit`` silences that ended last by ``now`` (run out or expired), newest first.

        The alert manager names the one that muted an alert it tells again.
        """
        with self._db.lock:
            rows = self._db.execute(
                f"SELECT {_SILENCE_COLUMNS}"  # noqa: S608
                " FROM silences WHERE ends_at <= ? ORDER BY ends_at DESC, id LIMIT ?",
                (format_time(now), limit),
            ).fetchall()
        return self._read(rows)

    def _read(self, rows: Iterable[tuple[Any, ...]]) -> list[Silence]:
        """Silences rows; matchers stored with old label names read as the current ones."""
        out = []
        for row in rows:
            try:
                matchers = parse_matchers(json.loads(row[1]))
            except ValueError as exc:
                self._skip(row[0], exc)
                continue
            out.append(
                Silence(
                    id=row[0],
                    matchers=matchers,
                    starts_at=read_time(row[2]) or datetime.now(UTC),
                    ends_at=read_time(row[3]) or datetime.now(UTC),
                    created_by=row[4],
                    comment=row[5],
                    created_at=read_time(row[6]) or datetime.now(UTC),
                )
            )
        return out

    def _skip(self, silence_id: str, why: ValueError) -> None:
        """A silence saved by an older version with a regex RE2 refuses: it mutes nothing.

        Its alerts are delivered rather than the daemon failing on every tick; said once.
        """
        if silence_id not in self._unreadable:
            self._unreadable.add(silence_id)
            log.warning("silence %s is ignored (add it again in RE2 syntax): %s", silence_id, why)

    def expire(self, silence_id: str, at: datetime) -> bool:
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                (format_time(at), silence_id, format_time(at)),
            )
            return cur.rowcount > 0

    def tie_to_meeting(self, silence_id: str, meeting_id: str) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO silence_meetings (silence_id, meeting_id) VALUES (?, ?)",
                (silence_id, meeting_id),
            )

    def tied_to_meetings(self, now: datetime) -> list[tuple[str, str]]:
        """(silence ID, meeting ID) of silences in force that end with their meeting."""
        with self._db.lock:
            rows = self._db.execute(
                "SELECT m.silence_id, m.meeting_id FROM silence_meetings m"
                " JOIN silences s ON s.id = m.silence_id WHERE s.ends_at > ?",
                (format_time(now),),
            ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    # -- acknowledgements and the audit log (issue 10) -----------------------------

    def add_ack(self, ack: Ack, audit: AuditEntry) -> bool:
        """Acknowledge an alert episode once; False if it already was (nothing written)."""
        with self._db.transaction() as cur:
            row = cur.execute(
                "SELECT 1 FROM acks WHERE fingerprint = ? AND starts_at = ?",
                (ack.fingerprint, format_time(ack.starts_at)),
            ).fetchone()
            if row is not None:
                return False
            cur.execute(
                "INSERT INTO acks (fingerprint, starts_at, acked_by, acked_at, source, note)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    ack.fingerprint,
                    format_time(ack.starts_at),
                    ack.acked_by,
                    format_time(ack.acked_at),
                    ack.source,
                    ack.note,
                ),
            )
            _insert_audit(cur, audit)
        return True

    def take_ack(self, ack: Ack, audit: AuditEntry) -> Ack | None:
        """Make ``ack.acked_by`` the owner of the episode, acknowledged or not (*Take it*);
        the previous acknowledgement, or None. Its time is the taking's, so a timeout
        counts from it."""
        with self._db.transaction() as cur:
            before = _ack_row(cur, ack.fingerprint, ack.starts_at)
            cur.execute(
                "DELETE FROM acks WHERE fingerprint = ? AND starts_at = ?",
                (ack.fingerprint, format_time(ack.starts_at)),
            )
            cur.execute(
                "INSERT INTO acks (fingerprint, starts_at, acked_by, acked_at, source, note)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    ack.fingerprint,
                    format_time(ack.starts_at),
                    ack.acked_by,
                    format_time(ack.acked_at),
                    ack.source,
                    ack.note,
                ),
            )
            _insert_audit(cur, audit)
        return before

    def remove_ack(self, fingerprint: str, starts_at: datetime, audit: AuditEntry) -> Ack | None:
        """Unacknowledge an episode; the acknowledgement removed, None if there was none."""
        with self._db.transaction() as cur:
            before = _ack_row(cur, fingerprint, starts_at)
            if before is None:
                return None
            cur.execute(
                "DELETE FROM acks WHERE fingerprint = ? AND starts_at = ?",
                (fingerprint, format_time(starts_at)),
            )
            _insert_audit(cur, audit)
        return before

    def expire_ack(self, cur: Cursor, ack: Ack, audit: AuditEntry) -> bool:
        """End ``ack`` (its timeout passed) inside the caller's transaction; False when it
        is no longer the episode's acknowledgement (removed or taken meanwhile)."""
        cur.execute(
            "DELETE FROM acks WHERE fingerprint = ? AND starts_at = ? AND acked_by = ?"
            " AND acked_at = ?",
            (ack.fingerprint, format_time(ack.starts_at), ack.acked_by, format_time(ack.acked_at)),
        )
        if cur.rowcount <= 0:
            return False
        _insert_audit(cur, audit)
        return True

    def acks(self) -> list[Ack]:
        """Acknowledgements of the episodes the alert manager still tracks."""
        with self._db.lock:
            rows = self._db.execute(
                "SELECT k.fingerprint, k.starts_at, k.acked_by, k.acked_at, k.source, k.note"
                " FROM acks k JOIN am_alerts a"
                " ON a.fingerprint = k.fingerprint AND a.starts_at = k.starts_at"
            ).fetchall()
        return [_ack(row) for row in rows]

    def add_audit(self, entry: AuditEntry) -> None:
        with self._db.transaction() as cur:
            _insert_audit(cur, entry)

    def insert_audit(self, cur: Cursor, entry: AuditEntry) -> None:
        """An audit entry inside the caller's transaction (the alert manager's flush)."""
        _insert_audit(cur, entry)

    def trim_audit(self, cur: Cursor, action: str, keep: int) -> None:
        """Keep the newest ``keep`` entries of a machine-made ``action`` (inside the caller's
        transaction): an inhibition storm must not grow the database without bound. People's
        acknowledgements and silences are all kept."""
        cur.execute(
            "DELETE FROM audit WHERE action = ? AND at < (SELECT at FROM audit WHERE action = ?"
            " ORDER BY at DESC LIMIT 1 OFFSET ?)",  # older than the oldest one kept
            (action, action, keep - 1),
        )

    def audit(self, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first, all or for one alert or silence."""
        sql = "SELECT id, at, actor, action, target, source, detail FROM audit"
        params: tuple[str | int, ...] = ()
        if target is not None:
            sql += " WHERE target = ?"
            params = (target,)
        with self._db.lock:
            rows = self._db.execute(
                sql + " ORDER BY at DESC, id LIMIT ?", (*params, limit)
            ).fetchall()
        return [
            AuditEntry(r[0], read_time(r[1]) or datetime.now(UTC), r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]


def _ack(row: Any) -> Ack:
    fingerprint, starts_at, acked_by, acked_at, source, note = row
    return Ack(
        fingerprint,
        read_time(starts_at) or datetime.now(UTC),
        acked_by,
        read_time(acked_at) or datetime.now(UTC),
        source,
        note,
    )


def _ack_row(cur: Cursor, fingerprint: str, starts_at: datetime) -> Ack | None:
    row = cur.execute(
        "SELECT fingerprint, starts_at, acked_by, acked_at, source, note FROM acks"
        " WHERE fingerprint = ? AND starts_at = ?",
        (fingerprint, format_time(starts_at)),
    ).fetchone()
    return None if row is None else _ack(row)


def _insert_audit(cur: Cursor, entry: AuditEntry) -> None:
    cur.execute(
        "INSERT INTO audit (id, at, actor, action, target, source, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            entry.id,
            format_time(entry.at),
            entry.actor,
            entry.action,
            entry.target,
            entry.source,
            entry.detail,
        ),
    )
