"""The watch list as stored: who is watched, from which source, and since when (the
behaviour is watchdog.watch.watchlist's); and what ``status`` prints of each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from watchdog.durations import format_time
from watchdog.state.database import Database
from watchdog.state.polls import PollState
from watchdog.state.rows import Key, now_text, read_time


@dataclass(frozen=True, slots=True)
class WatchRecord:
    """One watched participant as stored (see watchdog.watch.watchlist)."""

    session_id: str
    participant_id: str
    room_id: str | None
    name: str | None
    source: str  # static | discovery | webhook
    status: str  # watching | leaving | excluded
    since: datetime
    missing: int = 0
    reason: str | None = None
    deadline_misses: int = 0  # polls in a row that hit the request deadline


@dataclass(frozen=True, slots=True)
class WatchStatus:
    """What ``status`` prints for one participant: the record, its cursor, its firing rules
    (with when they fired) and its pending ones (with when their condition began)."""

    record: WatchRecord
    last_sample: datetime | None
    firing: tuple[tuple[str, datetime | None], ...]
    pending: tuple[tuple[str, datetime | None], ...] = ()


_IN_CHUNK = 500  # values per ``IN (...)``: far inside SQLite's and PostgreSQL's limits


class WatchList:
    """The ``watchlist`` table; ``status`` joins in the poll state."""

    def __init__(self, db: Database, polls: PollState) -> None:
        self._db = db
        self._polls = polls

    def load(self) -> list[WatchRecord]:
        with self._db.lock:
            rows = self._db.execute(
                "SELECT session_id, participant_id, room_id, name, source, status, since,"
                " missing, reason, deadline_misses FROM watchlist"
            ).fetchall()
        return [_watch_record(row) for row in rows]

    def watching_in(self, meetings: Iterable[str]) -> dict[str, int]:
        """How many participants each of ``meetings`` has being watched (absent: none)."""
        wanted = sorted(set(meetings))
        counts: dict[str, int] = {}
        with self._db.lock:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                rows = self._db.execute(
                    "SELECT room_id, COUNT(*) FROM watchlist"  # noqa: S608
                    f" WHERE status = 'watching' AND room_id IN ({marks}) GROUP BY room_id",
                    chunk,
                ).fetchall()
                counts.update((str(room), int(count)) for room, count in rows)
        return counts

    def save(self, records: Iterable[WatchRecord]) -> None:
        now = now_text()
        # in key order: instances saving the same rows together lock them in one order
        ordered = sorted(records, key=lambda r: (r.session_id, r.participant_id))
        with self._db.transaction() as cur:
            for r in ordered:
                cur.execute(
                    "INSERT INTO watchlist (session_id, participant_id, room_id, name, source,"
                    " status, since, missing, reason, deadline_misses, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (session_id, participant_id) DO UPDATE SET"
                    " room_id = excluded.room_id, name = excluded.name,"
                    " source = excluded.source, status = excluded.status,"
                    " since = excluded.since, missing = excluded.missing,"
                    " reason = excluded.reason, deadline_misses = excluded.deadline_misses,"
                    " updated_at = excluded.updated_at",
                    (
                        r.session_id,
                        r.participant_id,
                        r.room_id,
                        r.name,
                        r.source,
                        r.status,
                        format_time(r.since),
                        r.missing,
                        r.reason,
                        r.deadline_misses,
                        now,
                    ),
                )

    def delete(self, keys: Iterable[Key]) -> None:
        with self._db.transaction() as cur:
            for session, participant in sorted(keys):
                cur.execute(
                    "DELETE FROM watchlist WHERE session_id = ? AND participant_id = ?",
                    (session, participant),
                )

    def status(self) -> list[WatchStatus]:
        """Every watched participant with its newest sample time and firing alerts."""
        self._polls.flush()  # what this process has not written yet counts too
        with self._db.lock:
            cursors = {
                (s, p): t
                for s, p, t in self._db.execute(
                    "SELECT session_id, participant_id, last_sample_time FROM cursors"
                ).fetchall()
            }
            phases: dict[str, dict[Key, list[tuple[str, datetime | None]]]] = {
                "firing": {},
                "pending": {},
            }
            for rule, s, p, phase, since, fired in self._db.execute(
                "SELECT rule, session_id, participant_id, phase, active_since, fired_at"
                " FROM alert_states WHERE phase IN ('firing', 'pending') ORDER BY rule"
            ).fetchall():
                at = fired if phase == "firing" else since
                phases[phase].setdefault((s, p), []).append((rule, read_time(at)))
        out = []
        for record in sorted(self.load(), key=lambda r: (r.since, r.session_id)):
            key = (record.session_id, record.participant_id)
            out.append(
                WatchStatus(
                    record,
                    read_time(cursors.get(key)),
                    tuple(phases["firing"].get(key, ())),
                    tuple(phases["pending"].get(key, ())),
                )
            )
        return out


def _watch_record(row: tuple[Any, ...]) -> WatchRecord:
    return WatchRecord(
        session_id=row[0],
        participant_id=row[1],
        room_id=row[2],
        name=row[3],
        source=row[4],
        status=row[5],
        since=read_time(row[6]) or datetime.now(UTC),
        missing=int(row[7]),
        reason=row[8],
        deadline_misses=int(row[9]),
    )
