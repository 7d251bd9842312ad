"""Who is on call, as people and feeds changed it: overrides, and each calendar feed's last
good copy (so a restart while the feed is down still knows the schedule).

Overrides are written with their audit entry in one transaction, like acknowledgements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from watchdog.durations import format_time
from watchdog.state.database import Database
from watchdog.state.rows import read_time
from watchdog.state.silences import AuditEntry, Silences


@dataclass(frozen=True, slots=True)
class Override:
    """``person`` is on call for ``team`` from ``starts_at`` until ``ends_at``, whatever the
    schedule says."""

    id: str
    team: str
    person: str
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    source: str  # cli | slack

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class FeedCopy:
    """A calendar feed's body as last fetched and parsed without error."""

    team: str
    body: bytes
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """How a calendar feed's last refresh went: ``error`` None when it worked."""

    team: str
    checked_at: datetime
    error: str | None = None
    failing_since: datetime | None = None


_COLUMNS = "id, team, person, starts_at, ends_at, created_by, created_at, source"


class OnCallState:
    """The ``oncall_overrides``, ``oncall_feeds`` and ``oncall_feed_health`` tables."""

    def __init__(self, db: Database, silences: Silences) -> None:
        self._db = db
        self._silences = silences  # owner of the audit log: its entry joins our transaction

    def add_override(self, override: Override, audit: AuditEntry) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                f"INSERT INTO oncall_overrides ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    override.id,
                    override.team,
                    override.person,
                    format_time(override.starts_at),
                    format_time(override.ends_at),
                    override.created_by,
                    format_time(override.created_at),
                    override.source,
                ),
            )
            self._silences.insert_audit(cur, audit)

    def remove_override(self, override_id: str, audit: AuditEntry) -> bool:
        """Delete it (the audit entry keeps what it was); False if there was none."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM oncall_overrides WHERE id = ?", (override_id,))
            if cur.rowcount <= 0:
                return False
            self._silences.insert_audit(cur, audit)
        return True

    def overrides(self, team: str | None = None, *, ending_after: datetime) -> list[Override]:
        """Overrides still in force or to come after ``ending_after``, oldest start first."""
        sql = f"SELECT {_COLUMNS} FROM oncall_overrides WHERE ends_at > ?"  # noqa: S608
        params: tuple[str, ...] = (format_time(ending_after),)
        if team is not None:
            sql += " AND team = ?"
            params = (*params, team)
        with self._db.lock:
            rows = self._db.execute(sql + " ORDER BY starts_at, created_at, id", params).fetchall()
        return [
            Override(
                id=str(r[0]),
                team=str(r[1]),
                person=str(r[2]),
                starts_at=read_time(r[3]) or datetime.now(UTC),
                ends_at=read_time(r[4]) or datetime.now(UTC),
                created_by=str(r[5]),
                created_at=read_time(r[6]) or datetime.now(UTC),
                source=str(r[7]),
            )
            for r in rows
        ]

    def forget_before(self, before: datetime) -> int:
        """Drop overrides that ended before ``before`` (the audit log keeps them)."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM oncall_overrides WHERE ends_at <= ?", (format_time(before),))
            return max(cur.rowcount, 0)

    # -- calendar feeds ------------------------------------------------------------

    def save_feed(self, copy: FeedCopy) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO oncall_feeds (team, body, fetched_at) VALUES (?, ?, ?)"
                " ON CONFLICT (team) DO UPDATE SET body = excluded.body,"
                " fetched_at = excluded.fetched_at",
                (copy.team, copy.body.decode("utf-8", "replace"), format_time(copy.fetched_at)),
            )

    def feed(self, team: str) -> FeedCopy | None:
        with self._db.lock:
            row = self._db.execute(
                "SELECT team, body, fetched_at FROM oncall_feeds WHERE team = ?", (team,)
            ).fetchone()
        if row is None:
            return None
        return FeedCopy(str(row[0]), str(row[1]).encode(), read_time(row[2]) or datetime.now(UTC))

    def save_health(self, health: FeedHealth) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO oncall_feed_health (team, checked_at, error, failing_since)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (team) DO UPDATE SET"
                " checked_at = excluded.checked_at, error = excluded.error,"
                " failing_since = excluded.failing_since",
                (
                    health.team,
                    format_time(health.checked_at),
                    health.error,
                    format_time(health.failing_since) if health.failing_since else None,
                ),
            )

    def health(self, team: str) -> FeedHealth | None:
        with self._db.lock:
            row = self._db.execute(
                "SELECT team, checked_at, error, failing_since FROM oncall_feed_health"
                " WHERE team = ?",
                (team,),
            ).fetchone()
        if row is None:
            return None
        return FeedHealth(
            str(row[0]),
            read_time(row[1]) or datetime.now(UTC),
            None if row[2] is None else str(row[2]),
            read_time(row[3]),
        )
