"""Poll state: each participant's cursor, alert states and rule-engine memory, and the
meeting-level rule states, with the write-behind buffer that batches quiet polls.

A poll's cursor advance, its alert-state changes and its alerts are written in one
transaction: after a crash either all happened or none. With several instances every
write is fenced by the participant's lease (watchdog.state.leases).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from watchdog.alerts import Alert
from watchdog.durations import format_time
from watchdog.engine.evaluate import AlertState, MeetingKey, Memory, Phase
from watchdog.state import leases
from watchdog.state.alertlog import record_alert
from watchdog.state.database import Cursor, Database
from watchdog.state.leases import Fence
from watchdog.state.minutes import Minutes, Row
from watchdog.state.reports import record_end
from watchdog.state.rows import Key, now_text, read_time
from watchdog.videosdk.stats import ParticipantInfo, Sample

log = logging.getLogger(__name__)


def _state_row(state: AlertState) -> tuple[str, str, str | None, str | None, float]:
    """(phase, active_since, fired_at, keep_firing_since, value) as stored."""
    return (
        state.phase,
        format_time(state.active_since),
        format_time(state.fired_at) if state.fired_at else None,
        format_time(state.keep_firing_since) if state.keep_firing_since else None,
        state.value,
    )


def _read_state(
    phase: Phase, since: str, value: float, fired: str | None, keep: str | None
) -> AlertState | None:
    """A stored alert state; None when its start time does not read."""
    active_since = read_time(since)
    if active_since is None:
        return None
    return AlertState(phase, active_since, float(value), read_time(fired), read_time(keep))


_FLUSH_CHUNK = 500  # deferred poll results encoded and written per statement batch
# minute-summary rows waiting for a flush: beyond this (the database failing for hours at
# 10,000 participants) the oldest are dropped, counted in a log line, so memory stays bounded
MAX_PENDING_SUMMARIES = 50_000
_UPSERT_CURSOR = (
    "INSERT INTO cursors (session_id, participant_id, last_sample_time, updated_at)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (session_id, participant_id) DO UPDATE SET"
    " last_sample_time = excluded.last_sample_time, updated_at = excluded.updated_at"
)
_DELETE_STATE = "DELETE FROM alert_states WHERE rule = ? AND session_id = ? AND participant_id = ?"
_UPSERT_STATE = (
    "INSERT INTO alert_states (rule, session_id, participant_id, phase,"
    " active_since, fired_at, keep_firing_since, value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (rule, session_id, participant_id) DO UPDATE SET"
    " phase = excluded.phase, active_since = excluded.active_since,"
    " fired_at = excluded.fired_at,"
    " keep_firing_since = excluded.keep_firing_since, value = excluded.value"
)
_UPSERT_MEMORY = (
    "INSERT INTO rule_memory (session_id, participant_id, payload, info, updated_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, participant_id)"
    " DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at,"
    " info = COALESCE(excluded.info, rule_memory.info)"
)


def _memory_row(memory: Memory, info: ParticipantInfo | None) -> tuple[str, str | None]:
    """The engine's memory and (several instances) who it is about, as stored."""
    return (
        orjson.dumps(memory.to_json()).decode(),  # the hot path
        None if info is None else orjson.dumps(asdict(info)).decode(),
    )


@dataclass(slots=True)
class _Deferred:
    """A participant's poll results not yet written (see ``PollState.commit_poll``)."""

    cursor: datetime | None
    states: Mapping[str, AlertState]  # every state, as of the latest poll
    changed: set[str]  # rules whose state changed since the last write
    memory: Memory | None
    info: ParticipantInfo | None
    fence: Fence | None = None  # several instances: the lease the polls held

    def merge(self, newer: _Deferred) -> _Deferred:
        """This one, brought up to ``newer`` (a later poll of the same participant)."""
        self.fence = newer.fence
        self.cursor = newer.cursor if newer.cursor is not None else self.cursor
        self.states = newer.states
        self.changed.update(newer.changed)
        self.memory = newer.memory if newer.memory is not None else self.memory
        self.info = newer.info if newer.info is not None else self.info
        return self


def _merged(earlier: _Deferred, newer: _Deferred) -> _Deferred:
    """``earlier`` brought up to ``newer`` as a new entry (``earlier`` stays as it was)."""
    return replace(earlier, changed=set(earlier.changed)).merge(newer)


@dataclass(slots=True)
class _Commit:
    """A poll that alerted, waiting to be written with the others queued with it (see
    ``PollState._commit_together``)."""

    key: Key
    results: _Deferred
    alerts: list[tuple[Alert, Sequence[str]]]
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False  # written, or failed with ``error``
    error: BaseException | None = None


class PollState:
    """The ``cursors``, ``alert_states``, ``rule_memory`` and ``meeting_alert_states``
    tables, and the poll results not yet written to them. Thread-safe: polls run in a
    pool."""

    def __init__(self, db: Database, minutes: Minutes | None = None) -> None:
        self._db = db
        # per-participant minute summaries (history): folded in by ``summarise``, the
        # closed buckets written by ``flush`` with the deferred results
        self.minutes = minutes if minutes is not None else Minutes(db)
        self._summaries: list[Row] = []
        # polls that alerted nobody, written together later (see commit_poll)
        self._deferred: dict[Key, _Deferred] = {}
        self._deferred_lock = threading.Lock()
        # several instances: deferred results a lost lease kept from being written, and
        # why, until the poller takes them (take_stale) to tell its membership
        self._stale_results: list[tuple[Key, str]] = []
        # polls that alerted, queued to share a transaction (see _commit_together): the
        # queue, and whether a thread is writing it
        self._commits: list[_Commit] = []
        self._committing = False

    def load_cursors(self) -> dict[Key, datetime]:
        self.flush()  # what this process has not written yet counts too
        with self._db.lock:
            rows = self._db.execute(
                "SELECT session_id, participant_id, last_sample_time FROM cursors"
            ).fetchall()
        return {(s, p): t for s, p, raw in rows if (t := read_time(raw)) is not None}

    def load_alert_states(self) -> dict[Key, dict[str, AlertState]]:
        self.flush()  # what this process has not written yet counts too
        with self._db.lock:
            rows = self._db.execute(
                "SELECT rule, session_id, participant_id, phase, active_since, fired_at, value,"
                " keep_firing_since FROM alert_states"
            ).fetchall()
        states: dict[Key, dict[str, AlertState]] = {}
        for rule, session, participant, phase, since, fired, value, keep in rows:
            state = _read_state(phase, since, value, fired, keep)
            if state is not None:
                states.setdefault((session, participant), {})[rule] = state
        return states

    def load_memories(self) -> dict[Key, Memory]:
        """The rule engine's per-participant windows, as the last poll left them."""
        self.flush()  # what this process has not written yet counts too
        with self._db.lock:
            rows = self._db.execute(
                "SELECT session_id, participant_id, payload FROM rule_memory"
            ).fetchall()
        memories = {}
        for session, participant, payload in rows:
            try:
                data = orjson.loads(payload)
            except ValueError:
                continue
            memories[(session, participant)] = Memory.from_json(data)
        return memories

    def load_meeting_inputs(self) -> dict[Key, tuple[ParticipantInfo, Memory]]:
        """Every leased participant's identity and rule windows as last committed, by
        whichever instance polls it: what the leader evaluates meeting-level rules over."""
        self.flush()  # what this process has not written yet counts too
        with self._db.lock:
            rows = self._db.execute(
                "SELECT m.session_id, m.participant_id, m.payload, m.info FROM rule_memory m"
                " JOIN leases l ON l.session_id = m.session_id"
                " AND l.participant_id = m.participant_id WHERE m.info IS NOT NULL"
            ).fetchall()
        inputs = {}
        for session, participant, payload, info in rows:
            try:
                memory = Memory.from_json(orjson.loads(payload))
                who = ParticipantInfo(**orjson.loads(info))
            except (ValueError, TypeError):
                continue
            inputs[(session, participant)] = (who, memory)
        return inputs

    def load_meeting_states(self) -> dict[MeetingKey, AlertState]:
        with self._db.lock:
            rows = self._db.execute(
                "SELECT rule, meeting_id, phase, active_since, fired_at, value, keep_firing_since"
                " FROM meeting_alert_states"
            ).fetchall()
        states: dict[MeetingKey, AlertState] = {}
        for rule, meeting, phase, since, fired, value, keep in rows:
            state = _read_state(phase, since, value, fired, keep)
            if state is not None:
                states[(rule, meeting)] = state
        return states

    def load_participant(
        self, key: Key
    ) -> tuple[datetime | None, dict[str, AlertState], Memory | None]:
        """One participant's cursor, alert states and rule memory as last committed: what an
        instance taking over its lease continues from."""
        self.flush()
        with self._db.lock:
            cursor = self._db.execute(
                "SELECT last_sample_time FROM cursors WHERE session_id = ? AND participant_id = ?",
                key,
            ).fetchone()
            rows = self._db.execute(
                "SELECT rule, phase, active_since, fired_at, value, keep_firing_since"
                " FROM alert_states WHERE session_id = ? AND participant_id = ?",
                key,
            ).fetchall()
            memory = self._db.execute(
                "SELECT payload FROM rule_memory WHERE session_id = ? AND participant_id = ?",
                key,
            ).fetchone()
        states = {}
        for rule, phase, since, fired, value, keep in rows:
            state = _read_state(phase, since, value, fired, keep)
            if state is not None:
                states[rule] = state
        loaded = None
        if memory is not None:
            try:
                loaded = Memory.from_json(orjson.loads(memory[0]))
            except ValueError:
                loaded = None
        return (read_time(cursor[0]) if cursor else None), states, loaded

    def commit_meetings(
        self,
        states: Mapping[MeetingKey, AlertState],
        changed: Iterable[MeetingKey],
        *,
        alerts: Iterable[tuple[Alert, Sequence[str]]] = (),
        leader: int | None = None,
    ) -> None:
        """Meeting-rule states and the alert manager's intake in one transaction.

        Meeting states are per meeting, not per participant, so no lease covers them:
        ``leader`` (the backend pid of the connection holding the cluster's leader
        advisory lock) makes the write conditional on that connection still holding the
        lock; otherwise StaleLease, and nothing is written.
        """
        now = now_text()
        with self._db.transaction() as cur:
            if leader is not None:
                leases.check_leader(cur, leader)
            for rule, meeting in changed:
                state = states.get((rule, meeting))
                if state is None:
                    cur.execute(
                        "DELETE FROM meeting_alert_states WHERE rule = ? AND meeting_id = ?",
                        (rule, meeting),
                    )
                    continue
                cur.execute(
                    "INSERT INTO meeting_alert_states (rule, meeting_id, phase, active_since,"
                    " fired_at, keep_firing_since, value) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (rule, meeting_id) DO UPDATE SET phase = excluded.phase,"
                    " active_since = excluded.active_since, fired_at = excluded.fired_at,"
                    " keep_firing_since = excluded.keep_firing_since, value = excluded.value",
                    (rule, meeting, *_state_row(state)),
                )
            for alert, notify in alerts:
                record_alert(cur, alert, notify, now)

    def commit_poll(
        self,
        key: Key,
        cursor: datetime | None,
        states: Mapping[str, AlertState],
        changed: Iterable[str],
        *,
        alerts: Iterable[tuple[Alert, Sequence[str]]] = (),
        memory: Memory | None = None,
        info: ParticipantInfo | None = None,
        fence: Fence | None = None,
        defer: bool = False,
    ) -> None:
        """Cursor, changed alert states and the alert manager's (alert, rule notify)
        intake in one transaction.

        ``fence`` (instance id, lease generation) makes the write conditional on still
        holding the participant's lease: otherwise StaleLease, and nothing is written.

        ``defer`` (a poll that produced no alert) keeps the results in memory until
        ``flush()``, which the poller calls after each cycle: one transaction for all of
        them instead of one per poll. On SQLite the writers' lock and the GIL hand-offs
        around each statement cost more than the rest of a poll; on PostgreSQL each poll
        cost five round trips, now a cycle costs a handful, and the flush still checks
        every participant's lease (``fence``, required there). Nothing that must not be
        lost waits: a crash only moves the cursor back, and the engine, being
        deterministic, re-derives the same states from the samples the API still returns
        (so does an instance taking the lease over); every alert is written at once, with
        everything deferred for its participant.
        """
        results = _Deferred(cursor, states, set(changed), memory, info, fence)
        fenced = self._db.kind != "sqlite"  # PostgreSQL: several instances, every write fenced
        if defer and (fence is not None) == fenced and not alerts:
            with self._deferred_lock:
                earlier = self._deferred.get(key)
                self._deferred[key] = results if earlier is None else earlier.merge(results)
            return
        if fence is None and not fenced:  # SQLite: the one writer's polls go together
            self._commit_together(_Commit(key, results, list(alerts)))
            return
        now = now_text()
        stale = None
        with self._db.transaction() as cur:
            if fence is not None:
                leases.check_fence(self._db, cur, key, fence)
            with self._deferred_lock:
                earlier = self._deferred.pop(key, None)
            if earlier is not None and earlier.fence == fence:  # written along with this one
                results = earlier.merge(results)
            elif earlier is not None:  # polled under an earlier lease of ours: stale
                stale = earlier
            _write_results(cur, [(key, results)], now)
            for alert, notify in alerts:
                record_alert(cur, alert, notify, now)
        if stale is not None and stale.fence is not None:
            self._stale([(key, stale.fence)])

    def _commit_together(self, mine: _Commit) -> None:
        """Write an alerting poll (SQLite) in a transaction shared with the alerting polls
        queued meanwhile, returning once it is written (or raising why it was not).

        SQLite has one writer: when thousands of participants alert in a cycle, their polls
        queued on its lock one transaction each, every one paying BEGIN and COMMIT, the
        lock's hand-over and, on a busy process, waits for the GIL between statements;
        that made the whole cycle late. The first poll to arrive writes the queue; the
        polls arriving meanwhile wait for it, and the first of them writes whatever queued
        after. Unloaded, a poll writes its own at once, as before.
        """
        with self._deferred_lock:
            self._commits.append(mine)
            writes = not self._committing
            self._committing = True
        if not writes:
            mine.wake.wait()  # written by another poll, or handed the writing
        if not mine.done:
            try:
                with self._deferred_lock:
                    batch, self._commits = self._commits, []
                self._write_commits(batch)
            finally:
                with self._deferred_lock:  # hand over to the first poll queued meanwhile
                    if self._commits:
                        self._commits[0].wake.set()
                    else:
                        self._committing = False
        if mine.error is not None:
            raise mine.error

    def _write_commits(self, batch: Sequence[_Commit]) -> None:
        """The queued polls in one transaction, each with what was deferred for its
        participant; if that fails and it held several, each in its own, so one poll's
        failure is only its own. Every poll is marked done and woken."""
        with self._deferred_lock:
            earlier = {c.key: e for c in batch if (e := self._deferred.pop(c.key, None))}
        written: set[Key] = set()
        try:
            try:
                self._write_together(batch, earlier)
                written.update(c.key for c in batch)
            except Exception:
                if len(batch) == 1:
                    raise
                for commit in batch:
                    try:
                        self._write_together([commit], earlier)
                        written.add(commit.key)
                    except Exception as exc:
                        commit.error = exc
        except BaseException as exc:
            for commit in batch:
                commit.error = exc
        finally:
            # what was deferred for a poll that failed waits for the next flush
            self._restore_deferred({k: e for k, e in earlier.items() if k not in written})
            for commit in batch:
                commit.done = True
                commit.wake.set()

    def _write_together(self, batch: Sequence[_Commit], earlier: Mapping[Key, _Deferred]) -> None:
        items: dict[Key, _Deferred] = {}
        for commit in batch:
            before = items.get(commit.key) or earlier.get(commit.key)
            items[commit.key] = (
                commit.results if before is None else _merged(before, commit.results)
            )
        now = now_text()
        with self._db.transaction() as cur:
            _write_results(cur, list(items.items()), now)
            for commit in batch:
                for alert, notify in commit.alerts:
                    record_alert(cur, alert, notify, now)

    def summarise(self, key: Key, info: ParticipantInfo, samples: Sequence[Sample]) -> None:
        """Fold a poll's new samples into the participant's minute summaries; the buckets
        that closed are written by the next ``flush`` (nothing is written here)."""
        self._queue_summaries(self.minutes.add(key, info, samples))

    def close_summaries(self) -> None:
        """Stopping: every open bucket is written by the next ``flush``."""
        self._queue_summaries(self.minutes.close_all())

    def _queue_summaries(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        with self._deferred_lock:
            self._summaries.extend(rows)
            dropped = len(self._summaries) - MAX_PENDING_SUMMARIES
            if dropped > 0:
                del self._summaries[:dropped]
        if dropped > 0:
            log.warning("dropped %d unwritten minute summaries (the database fails)", dropped)

    def flush(self) -> int:
        """Write every deferred poll result in one transaction; returns how many.

        On PostgreSQL the transaction first locks the leases this instance holds (as a
        fenced poll locks its one), then writes only the results whose lease is still the
        one they were polled under; the others are discarded and kept for ``take_stale``.
        """
        if not self._deferred and not self._summaries:
            return 0
        now = now_text()
        entries: dict[Key, _Deferred] = {}
        summaries: list[Row] = []
        stale: list[tuple[Key, Fence]] = []
        held: dict[Key, Fence] = {}
        items: list[tuple[Key, _Deferred]] = []
        with self._db.transaction() as cur:
            with self._deferred_lock:
                owners = {e.fence[0] for e in self._deferred.values() if e.fence}
            for owner in owners:  # before taking the results: no fenced write overtakes
                held.update(leases.lock_owned(self._db, cur, owner))
            with self._deferred_lock:  # on SQLite under the writers' lock: the same
                entries, self._deferred = self._deferred, {}
                summaries, self._summaries = self._summaries, []
            try:
                later = {}
                for key, entry in entries.items():
                    if entry.fence is None or held.get(key) == entry.fence:
                        items.append((key, entry))
                        continue
                    # claimed since: look again
                    lease = leases.lock_one(self._db, cur, key, wait=False)
                    if lease == entry.fence:
                        items.append((key, entry))
                    elif lease == "busy":  # being changed right now: the next flush decides
                        later[key] = entry
                    else:
                        stale.append((key, entry.fence))
                if later:
                    self._restore_deferred(later)
                for start in range(0, len(items), _FLUSH_CHUNK):  # bounded rows in memory
                    _write_results(cur, items[start : start + _FLUSH_CHUNK], now)
                for start in range(0, len(summaries), _FLUSH_CHUNK):
                    Minutes.insert(cur, summaries[start : start + _FLUSH_CHUNK])
            except BaseException:  # back before the rollback frees the leases: a fenced
                self._restore_deferred(entries)  # write waiting on one then sees them
                with self._deferred_lock:
                    self._summaries[:0] = summaries
                raise
        self._stale(stale)
        return len(items)

    def commit_departure(
        self,
        key: Key,
        alerts: Iterable[tuple[Alert, Sequence[str]]] = (),
        *,
        fence: Fence | None = None,
        ended: bool = False,
        meeting_id: str | None = None,
    ) -> None:
        """Forget a participant who left: watch entry, cursor and alert states go, and the
        (alert, rule notify) resolutions reach the alert manager, in one transaction.
        ``ended``: it left because its session (in ``meeting_id``) ended: the call
        report's cue (watchdog.state.reports).

        ``fence`` works as in ``commit_poll``: only the lease holder may resolve and
        forget, otherwise StaleLease and nothing is written. A fenced departure also
        deletes the lease, so no later write for the participant can pass a fence.
        """
        session, participant = key
        now = now_text()
        with self._db.transaction() as cur:
            if fence is not None:
                leases.check_fence(self._db, cur, key, fence)
                cur.execute("DELETE FROM leases WHERE session_id = ? AND participant_id = ?", key)
            with self._deferred_lock:  # its rows go: nothing deferred may bring them back
                self._deferred.pop(key, None)
                self._summaries.extend(self.minutes.close(key))  # written by the next flush
            for table in ("watchlist", "cursors", "alert_states", "rule_memory"):
                cur.execute(
                    f"DELETE FROM {table} WHERE session_id = ? AND participant_id = ?",  # noqa: S608
                    (session, participant),
                )
            for alert, notify in alerts:
                record_alert(cur, alert, notify, now)
            if ended:
                record_end(cur, session, meeting_id, now)

    def _stale(self, stale: Sequence[tuple[Key, Fence]]) -> None:
        """Keep the deferred results discarded because their lease was lost (fencing)."""
        reports = [
            (
                key,
                f"lease of {key[0]}/{key[1]} is no longer held by {fence[0]} "
                f"(generation {fence[1]}): its deferred poll result was discarded",
            )
            for key, fence in stale
        ]
        if reports:
            with self._deferred_lock:
                self._stale_results.extend(reports)

    def take_stale(self) -> list[tuple[Key, str]]:
        """The deferred results discarded since the last call, and why (at most one lease
        change's worth each: a participant whose lease moved is not polled again here)."""
        with self._deferred_lock:
            taken, self._stale_results = self._stale_results, []
        return taken

    def _restore_deferred(self, entries: dict[Key, _Deferred]) -> None:
        """A failed flush: its entries wait for the next one, under anything newer."""
        with self._deferred_lock:
            for key, entry in entries.items():
                newer = self._deferred.get(key)
                self._deferred[key] = entry if newer is None else entry.merge(newer)


def _write_results(cur: Cursor, entries: Sequence[tuple[Key, _Deferred]], now: str) -> None:
    """Participants' poll results (cursor, changed alert states, rule memory): each
    table's rows in one statement, for one participant (a poll) or many (a flush)."""
    cursors: list[tuple[Any, ...]] = []
    upserts: list[tuple[Any, ...]] = []
    deletes: list[tuple[Any, ...]] = []
    memories: list[tuple[Any, ...]] = []
    for (session, participant), entry in entries:
        if entry.cursor is not None:
            cursors.append((session, participant, format_time(entry.cursor), now))
        for rule in entry.changed:
            state = entry.states.get(rule)
            if state is None:
                deletes.append((rule, session, participant))
            else:
                upserts.append((rule, session, participant, *_state_row(state)))
        if entry.memory is not None:
            memories.append((session, participant, *_memory_row(entry.memory, entry.info), now))
    if cursors:
        cur.executemany(_UPSERT_CURSOR, cursors)
    if deletes:
        cur.executemany(_DELETE_STATE, deletes)
    if upserts:
        cur.executemany(_UPSERT_STATE, upserts)
    if memories:
        cur.executemany(_UPSERT_MEMORY, memories)
