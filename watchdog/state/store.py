"""All durable state: cursors, alert states and the outbox, in one database.

Everything that must survive a restart goes through this module, in plain
SQL that PostgreSQL also accepts, so nothing else knows which store is
behind. A poll's cursor advance, its alert-state changes and its outbox rows
are written in one transaction: after a crash either all happened or none.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from watchdog.alerts import Alert, Notification
from watchdog.config.matchers import Matcher, parse_matchers
from watchdog.durations import format_time, parse_time
from watchdog.engine.evaluate import AlertState, MeetingKey, Memory
from watchdog.state import migrations
from watchdog.state.database import Cursor, Database, DatabaseError, open_database
from watchdog.state.faults import StorageFault, StorageFaults
from watchdog.videosdk.stats import ParticipantInfo

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (session id, participant id)

QUICK_CHECK_SECONDS = 10.0  # a state file larger than this reads is checked as it is used

LEADER_LOCK = 0x5644_5702  # advisory lock key of watchdog.cluster.coordinator's leader


class StaleLease(Exception):
    """A write for a participant whose lease this instance no longer holds (fencing)."""


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


_OUTBOX_COLUMNS = (
    "id, notifier, fingerprint, {payload}, created_at, attempts, next_attempt_at,"
    " last_error, permanent, warned_at"
)


@functools.lru_cache(maxsize=1024)
def _notification(payload: str) -> Notification:
    return Notification.from_dict(json.loads(payload))


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """The alert manager's durable view of one alert: its latest status and version."""

    alert: Alert
    version: int  # bumps on every change of status or start time
    changed_at: datetime  # wall-clock time of that change: group_wait counts from it
    notify: tuple[str, ...]  # the rule's own notifiers


@dataclass(frozen=True, slots=True)
class Notified:
    version: int  # the alert version this notifier has handled
    status: str  # what it was told last: firing | resolved | none


@dataclass(frozen=True, slots=True)
class GroupState:
    thread: str
    notified_at: datetime
    sent: int


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
class AlertingSnapshot:
    alerts: list[ActiveAlert]
    notified: dict[tuple[str, str], Notified]  # (notifier, fingerprint)
    groups: dict[tuple[str, str], GroupState]  # (notifier, group key)
    silences: list[Silence]
    acked: frozenset[str] = frozenset()  # fingerprints whose current episode is acknowledged
    ended_silences: tuple[Silence, ...] = ()  # the last ones to end, newest end first


@dataclass(frozen=True, slots=True)
class Ack:
    """Someone said "I'm on it" for one alert episode (its fingerprint and start)."""

    fingerprint: str
    starts_at: datetime
    acked_by: str
    acked_at: datetime
    source: str  # slack | cli


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what to which alert or silence, when, and from where."""

    id: str
    at: datetime
    actor: str
    action: str  # acknowledge | silence | unsilence
    target: str  # an alert fingerprint or a silence ID
    source: str  # slack | cli
    detail: str


@dataclass(slots=True)
class AlertingWrite:
    """What one alert-manager flush decided, applied in one transaction."""

    outbox: list[tuple[str, str, Notification]] = field(default_factory=list)  # key, order
    notified: dict[tuple[str, str], Notified] = field(default_factory=dict)
    groups: dict[tuple[str, str], GroupState] = field(default_factory=dict)
    ended_groups: set[tuple[str, str]] = field(default_factory=set)
    done_alerts: set[str] = field(default_factory=set)  # resolved and handled everywhere

    def __bool__(self) -> bool:
        return bool(
            self.outbox or self.notified or self.groups or self.ended_groups or self.done_alerts
        )


def _now() -> str:
    return format_time(datetime.now(UTC))


def _utc(value: str | None) -> datetime | None:
    return parse_time(value) if value is not None else None


def _state_row(state: AlertState) -> tuple[str, str, str | None, str | None, float]:
    """(phase, active_since, fired_at, keep_firing_since, value) as stored."""
    return (
        state.phase,
        format_time(state.active_since),
        format_time(state.fired_at) if state.fired_at else None,
        format_time(state.keep_firing_since) if state.keep_firing_since else None,
        state.value,
    )


_FLUSH_CHUNK = 500  # deferred poll results encoded and written per statement batch
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


class _Sequence:
    """Strictly increasing integers across threads, for outbox order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


@dataclass(slots=True)
class _Deferred:
    """A participant's poll results not yet written (see ``Store.commit_poll``)."""

    cursor: datetime | None
    states: Mapping[str, AlertState]  # every state, as of the latest poll
    changed: set[str]  # rules whose state changed since the last write
    memory: Memory | None
    info: ParticipantInfo | None
    fence: tuple[str, int] | None = None  # several instances: the lease the polls held

    def merge(self, newer: _Deferred) -> _Deferred:
        """This one, brought up to ``newer`` (a later poll of the same participant)."""
        self.fence = newer.fence
        self.cursor = newer.cursor if newer.cursor is not None else self.cursor
        self.states = newer.states
        self.changed.update(newer.changed)
        self.memory = newer.memory if newer.memory is not None else self.memory
        self.info = newer.info if newer.info is not None else self.info
        return self


class Store:
    """Durable state on SQLite (one file) or PostgreSQL (see watchdog.state.database).

    Thread-safe: polls run in a pool. ``migrate=False`` opens without touching the
    schema, for ``check`` and ``migrate`` to report what is pending.
    """

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 10) -> None:
        self.url = url
        self._db: Database = open_database(url, pool_size)
        self.kind = self._db.kind
        self._lock = self._db.lock
        self._sequence = _Sequence()
        # polls that alerted nobody, written together later (see commit_poll)
        self._deferred: dict[Key, _Deferred] = {}
        self._deferred_lock = threading.Lock()
        self._unreadable_silences: set[str] = set()  # logged once each (see silences())
        # several instances: told of each deferred result a lost lease kept from being
        # written (watchdog.cluster.coordinator counts and logs it, and lets the participant go)
        self.on_stale: Callable[[Key, str], None] | None = None
        if migrate:
            self.migrate()

    def close(self) -> None:
        try:
            self.flush()
        except DatabaseError as exc:  # replayed from the older cursor on the next start
            log.error("writing the last poll results failed: %s", exc)
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        with self._db.transaction() as cur:
            yield cur

    def schema_version(self) -> int:
        done = self.applied_migrations()
        return max(done) if done else 0

    def applied_migrations(self) -> set[int]:
        return migrations.applied(self._db)

    def pending_migrations(self) -> list[int]:
        return migrations.pending(self._db)

    def migrate(self) -> list[int]:
        """Apply every migration not yet recorded (see watchdog.state.migrations)."""
        return migrations.migrate(self._db)

    def copy_from(self, source: Store) -> dict[str, int]:
        """Copy every row of ``source`` (e.g. an old SQLite file) into this store, in one
        transaction; rows whose key is already here are kept as they are."""
        return migrations.copy_rows(self._db, source._db)

    # -- poll results ---------------------------------------------------------

    def load_cursors(self) -> dict[Key, datetime]:
        self.flush()  # what this process has not written yet counts too
        with self._lock:
            rows = self._db.execute(
                "SELECT session_id, participant_id, last_sample_time FROM cursors"
            ).fetchall()
        return {(s, p): t for s, p, raw in rows if (t := _utc(raw)) is not None}

    def load_alert_states(self) -> dict[Key, dict[str, AlertState]]:
        self.flush()  # what this process has not written yet counts too
        with self._lock:
            rows = self._db.execute(
                "SELECT rule, session_id, participant_id, phase, active_since, fired_at, value,"
                " keep_firing_since FROM alert_states"
            ).fetchall()
        states: dict[Key, dict[str, AlertState]] = {}
        for rule, session, participant, phase, since, fired, value, keep in rows:
            active_since = _utc(since)
            if active_since is None:
                continue
            states.setdefault((session, participant), {})[rule] = AlertState(
                phase=phase,
                active_since=active_since,
                value=float(value),
                fired_at=_utc(fired),
                keep_firing_since=_utc(keep),
            )
        return states

    def load_memories(self) -> dict[Key, Memory]:
        """The rule engine's per-participant windows, as the last poll left them."""
        self.flush()  # what this process has not written yet counts too
        with self._lock:
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
        with self._lock:
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
        with self._lock:
            rows = self._db.execute(
                "SELECT rule, meeting_id, phase, active_since, fired_at, value, keep_firing_since"
                " FROM meeting_alert_states"
            ).fetchall()
        states: dict[MeetingKey, AlertState] = {}
        for rule, meeting, phase, since, fired, value, keep in rows:
            active_since = _utc(since)
            if active_since is not None:
                states[(rule, meeting)] = AlertState(
                    phase, active_since, float(value), _utc(fired), _utc(keep)
                )
        return states

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
        now = _now()
        with self._transaction() as cur:
            if leader is not None:
                self._check_leader(cur, leader)
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
                self._record_alert(cur, alert, notify, now)

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
        fence: tuple[str, int] | None = None,
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
        fenced = self.kind != "sqlite"  # PostgreSQL: several instances, every write fenced
        if defer and (fence is not None) == fenced and not alerts:
            with self._deferred_lock:
                earlier = self._deferred.get(key)
                self._deferred[key] = results if earlier is None else earlier.merge(results)
            return
        now = _now()
        stale = None
        with self._transaction() as cur:
            if fence is not None:
                self._check_fence(cur, key, fence)
            with self._deferred_lock:
                earlier = self._deferred.pop(key, None)
            if earlier is not None and earlier.fence == fence:  # written along with this one
                results = earlier.merge(results)
            elif earlier is not None:  # polled under an earlier lease of ours: stale
                stale = earlier
            self._write_results(cur, [(key, results)], now)
            for alert, notify in alerts:
                self._record_alert(cur, alert, notify, now)
        if stale is not None and stale.fence is not None:
            self._stale([(key, stale.fence)])

    def flush(self) -> int:
        """Write every deferred poll result in one transaction; returns how many.

        On PostgreSQL the transaction first locks the leases this instance holds (as a
        fenced poll locks its one), then writes only the results whose lease is still the
        one they were polled under; the others are discarded and reported (``on_stale``).
        """
        if not self._deferred:
            return 0
        now = _now()
        entries: dict[Key, _Deferred] = {}
        stale: list[tuple[Key, tuple[str, int]]] = []
        held: dict[Key, tuple[str, int]] = {}
        items: list[tuple[Key, _Deferred]] = []
        with self._transaction() as cur:
            with self._deferred_lock:
                owners = {e.fence[0] for e in self._deferred.values() if e.fence}
            for owner in owners:  # before taking the results: no fenced write overtakes
                held.update(self._lock_leases(cur, owner))
            with self._deferred_lock:  # on SQLite under the writers' lock: the same
                entries, self._deferred = self._deferred, {}
            try:
                later = {}
                for key, entry in entries.items():
                    if entry.fence is None or held.get(key) == entry.fence:
                        items.append((key, entry))
                        continue
                    lease = self._lock_lease(cur, key, wait=False)  # claimed since: look again
                    if lease == entry.fence:
                        items.append((key, entry))
                    elif lease == "busy":  # being changed right now: the next flush decides
                        later[key] = entry
                    else:
                        stale.append((key, entry.fence))
                if later:
                    self._restore_deferred(later)
                for start in range(0, len(items), _FLUSH_CHUNK):  # bounded rows in memory
                    self._write_results(cur, items[start : start + _FLUSH_CHUNK], now)
            except BaseException:  # back before the rollback frees the leases: a fenced
                self._restore_deferred(entries)  # write waiting on one then sees them
                raise
        self._stale(stale)
        return len(items)

    def _lock_leases(self, cur: Cursor, owner: str) -> dict[Key, tuple[str, int]]:
        """Lock the lease rows ``owner`` holds for this transaction: (owner, generation)."""
        rows = cur.execute(
            "SELECT session_id, participant_id, generation FROM leases WHERE owner = ?"  # noqa: S608
            " ORDER BY session_id, participant_id"  # the order every many-row lock takes
            + self._db.for_update,
            (owner,),
        ).fetchall()
        return {(row[0], row[1]): (owner, int(row[2])) for row in rows}

    def _lock_lease(
        self, cur: Cursor, key: Key, *, wait: bool = True
    ) -> tuple[str, int] | Literal["busy"] | None:
        """Lock one lease row for this transaction: (owner, generation), None if unowned.

        ``wait=False`` for a row locked out of key order (waiting could deadlock a
        transaction that locks in order): "busy" when another transaction has it locked.
        """
        where = " FROM leases WHERE session_id = ? AND participant_id = ?"
        lock = self._db.for_update if wait else " FOR UPDATE SKIP LOCKED"
        row = cur.execute("SELECT owner, generation" + where + lock, key).fetchone()
        if row is None and not wait and cur.execute("SELECT 1" + where, key).fetchone():
            return "busy"
        return None if row is None or row[0] is None else (row[0], int(row[1]))

    def _stale(self, stale: Sequence[tuple[Key, tuple[str, int]]]) -> None:
        """Report deferred results discarded because their lease was lost (fencing)."""
        for key, fence in stale:
            why = (
                f"lease of {key[0]}/{key[1]} is no longer held by {fence[0]} "
                f"(generation {fence[1]}): its deferred poll result was discarded"
            )
            if self.on_stale is not None:
                self.on_stale(key, why)
            else:
                log.warning("%s", why)

    def _restore_deferred(self, entries: dict[Key, _Deferred]) -> None:
        """A failed flush: its entries wait for the next one, under anything newer."""
        with self._deferred_lock:
            for key, entry in entries.items():
                newer = self._deferred.get(key)
                self._deferred[key] = entry if newer is None else entry.merge(newer)

    @staticmethod
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

    def _forget_deferred(self, key: Key) -> None:
        with self._deferred_lock:
            self._deferred.pop(key, None)

    def _check_fence(self, cur: Cursor, key: Key, fence: tuple[str, int]) -> None:
        """Lock the lease row for this transaction and compare owner and generation."""
        lease = self._lock_lease(cur, key)
        if lease != fence:
            held = "nobody" if lease is None else f"{lease[0]} (generation {lease[1]})"
            raise StaleLease(
                f"lease of {key[0]}/{key[1]} is held by {held}, not by {fence[0]} "
                f"(generation {fence[1]}): result discarded"
            )

    def _check_leader(self, cur: Cursor, backend_pid: int) -> None:
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

    def load_participant(
        self, key: Key
    ) -> tuple[datetime | None, dict[str, AlertState], Memory | None]:
        """One participant's cursor, alert states and rule memory as last committed: what an
        instance taking over its lease continues from."""
        self.flush()
        with self._lock:
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
            active_since = _utc(since)
            if active_since is not None:
                states[rule] = AlertState(
                    phase, active_since, float(value), _utc(fired), _utc(keep)
                )
        loaded = None
        if memory is not None:
            try:
                loaded = Memory.from_json(orjson.loads(memory[0]))
            except ValueError:
                loaded = None
        return (_utc(cursor[0]) if cursor else None), states, loaded

    def transaction(self) -> AbstractContextManager[Cursor]:
        """For watchdog.leases: the coordination tables share this database."""
        return self._transaction()

    @property
    def database(self) -> Database:
        return self._db

    # -- outbox -----------------------------------------------------------------

    def _insert_notification(
        self, cur: Cursor, dedup_key: str, notification: Notification, now: str, order_key: str
    ) -> int:
        """``order_key`` (the notification's group) serialises delivery: kept as the row's
        ``fingerprint``, the column ``outbox_due`` orders each lane by."""
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

    def outbox(self, limit: int | None = None) -> list[OutboxEntry]:
        """Pending notifications in the order they were written."""
        sql = f"SELECT {_OUTBOX_COLUMNS.format(payload='payload')} FROM outbox ORDER BY seq"  # noqa: S608
        params: tuple[int, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return self._outbox_rows(sql, params)

    def outbox_due(self, now: datetime, skip: Collection[str] = ()) -> list[OutboxEntry]:
        """What a delivery pass may start: of each (notifier, fingerprint) group, its first
        notification, when due, for notifiers other than ``skip`` (lanes already full).

        Headers only (``with_payload`` reads the notification): a slow or dead notifier's
        backlog of rows waiting behind their group's head, or for their backoff, or for a
        free thread of its lane, is never read.
        """
        marks = ", ".join("?" for _ in skip)
        sql = (
            f"SELECT {_OUTBOX_COLUMNS.format(payload='NULL')} FROM outbox o"  # noqa: S608
            " WHERE next_attempt_at <= ?"
            + (f" AND notifier NOT IN ({marks})" if skip else "")
            + " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.notifier = o.notifier"
            " AND p.fingerprint = o.fingerprint AND p.seq < o.seq) ORDER BY seq"
        )
        return self._outbox_rows(sql, (format_time(now), *skip))

    def outbox_overdue(self, written_before: datetime) -> list[OutboxEntry]:
        """Notifications written before that time and not yet reported overdue (headers)."""
        sql = (
            f"SELECT {_OUTBOX_COLUMNS.format(payload='NULL')} FROM outbox"  # noqa: S608
            " WHERE warned_at IS NULL AND created_at <= ? ORDER BY seq"
        )
        return self._outbox_rows(sql, (format_time(written_before),))

    def next_retry(self, after: datetime) -> datetime | None:
        """The earliest time a notification waiting in the outbox is due, after ``after``."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE next_attempt_at > ?",
                (format_time(after),),
            ).fetchone()
        return _utc(row[0])

    def _outbox_rows(self, sql: str, params: Sequence[object]) -> list[OutboxEntry]:
        with self._lock:
            rows = self._db.execute(sql, tuple(params)).fetchall()
        return [
            OutboxEntry(
                id=row[0],
                notifier=row[1],
                fingerprint=row[2],
                payload=row[3],
                created_at=_utc(row[4]) or datetime.now(UTC),
                attempts=row[5],
                next_attempt_at=_utc(row[6]) or datetime.now(UTC),
                last_error=row[7],
                permanent=bool(row[8]),
                warned_at=_utc(row[9]),
            )
            for row in rows
        ]

    def with_payload(self, entry: OutboxEntry) -> OutboxEntry | None:
        """The entry with its notification read; None when it has left the outbox."""
        if entry.payload is not None:
            return entry
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM outbox WHERE id = ?", (entry.id,)
            ).fetchone()
        return None if row is None else replace(entry, payload=row[0])

    def outbox_stats(self) -> tuple[int, datetime | None]:
        """How many notifications wait, and when the oldest was written."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
        return int(row[0]), _utc(row[1])

    @property
    def faults(self) -> StorageFaults:
        """Where this database's storage failures are counted, logged and remembered."""
        return self._db.faults

    def check_storage(self, *, pages: bool = False) -> None:
        """Is the state database still taking writes? The file is the one opened, a row
        is really written, and with ``pages`` every page reads back sound (SQLite's
        quick_check, at most QUICK_CHECK_SECONDS). Raises StorageFault, reported."""
        self._db.check_file()
        try:
            with self._transaction() as cur:
                cur.execute(
                    "INSERT INTO storage_probe (id, written_at) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                    (_now(),),
                )
            if pages:
                self._db.quick_check(QUICK_CHECK_SECONDS)
        except StorageFault:
            raise
        except DatabaseError as exc:  # the table gone, say: a failed check all the same
            raise self.faults.report(StorageFault("other", str(exc))) from exc

    def outbox_depth(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def claim_outbox(self, entry_id: str, owner: str, seconds: float) -> bool:
        """Several instances: take one notification for delivery unless another live
        instance has it (``SKIP LOCKED``: nobody waits on a row being delivered)."""
        with self._transaction() as cur:
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
        with self._transaction() as cur:
            cur.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))

    # -- notifier memory --------------------------------------------------------

    def notifier_state(self, notifier: str) -> StoredNotifierState:
        return StoredNotifierState(self, notifier)

    def state_get(self, notifier: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM notifier_state WHERE notifier = ? AND key = ?", (notifier, key)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def state_put(self, notifier: str, key: str, value: dict[str, Any]) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO notifier_state (notifier, key, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (notifier, key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (notifier, key, json.dumps(value, separators=(",", ":")), _now()),
            )

    def state_delete(self, notifier: str, key: str) -> None:
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM notifier_state WHERE notifier = ? AND key = ?", (notifier, key)
            )

    def failed(
        self,
        entry_id: str,
        attempts: int,
        next_attempt_at: datetime,
        error: str,
        permanent: bool = False,
    ) -> None:
        with self._transaction() as cur:
            cur.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?,"
                " permanent = ? WHERE id = ?",
                (attempts, format_time(next_attempt_at), error[:1000], int(permanent), entry_id),
            )

    def warned(self, entry_id: str, at: datetime) -> None:
        """Mark a notification as reported overdue, so the ERROR is logged once."""
        with self._transaction() as cur:
            cur.execute("UPDATE outbox SET warned_at = ? WHERE id = ?", (format_time(at), entry_id))

    def retry_now(self, entry_ids: Iterable[str] | None = None) -> int:
        """Make notifications due at once (all when ``entry_ids`` is None)."""
        now = _now()
        with self._transaction() as cur:
            if entry_ids is None:
                cur.execute("UPDATE outbox SET next_attempt_at = ?", (now,))
                return max(cur.rowcount, 0)
            count = 0
            for entry_id in entry_ids:
                cur.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (now, entry_id))
                count += max(cur.rowcount, 0)
            return count

    # -- alert manager (issue 4): intake, notification log, groups, silences -------

    def _record_alert(self, cur: Cursor, alert: Alert, notify: Sequence[str], now: str) -> None:
        """Upsert an alert's latest status; the same transition twice changes nothing."""
        starts = format_time(alert.starts_at)
        row = cur.execute(
            "SELECT status, starts_at, version FROM am_alerts WHERE fingerprint = ?",
            (alert.fingerprint,),
        ).fetchone()
        if row is not None and (row[0], row[1]) == (alert.status, starts):
            return
        payload = json.dumps(alert.to_dict(), separators=(",", ":"))
        notify_json = json.dumps(list(notify))
        if row is None:
            cur.execute(
                "INSERT INTO am_alerts (fingerprint, status, starts_at, version, changed_at,"
                " notify, payload) VALUES (?, ?, ?, 1, ?, ?, ?)",
                (alert.fingerprint, alert.status, starts, now, notify_json, payload),
            )
            return
        cur.execute(
            "UPDATE am_alerts SET status = ?, starts_at = ?, version = version + 1,"
            " changed_at = ?, notify = ?, payload = ? WHERE fingerprint = ?",
            (alert.status, starts, now, notify_json, payload, alert.fingerprint),
        )

    def active_alerts(self, known: Mapping[str, ActiveAlert] | None = None) -> list[ActiveAlert]:
        """Every alert the manager still tracks; ``known`` (by fingerprint) saves re-parsing."""
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, version, changed_at, notify, payload FROM am_alerts"
                " ORDER BY changed_at, fingerprint"
            ).fetchall()
        out = []
        for fingerprint, version, changed_at, notify, payload in rows:
            cached = (known or {}).get(fingerprint)
            if cached is not None and cached.version == version:
                out.append(cached)
                continue
            out.append(
                ActiveAlert(
                    alert=Alert.from_dict(json.loads(payload)),
                    version=int(version),
                    changed_at=_utc(changed_at) or datetime.now(UTC),
                    notify=tuple(json.loads(notify)),
                )
            )
        return out

    def alerting_snapshot(
        self, now: datetime, known: Mapping[str, ActiveAlert] | None = None
    ) -> AlertingSnapshot:
        with self._lock:
            notified = self._db.execute(
                "SELECT notifier, fingerprint, version, status FROM am_notified"
            ).fetchall()
            groups = self._db.execute(
                "SELECT notifier, group_key, thread, notified_at, sent FROM am_groups"
            ).fetchall()
            return AlertingSnapshot(
                alerts=self.active_alerts(known),
                notified={(n, f): Notified(int(v), s) for n, f, v, s in notified},
                groups={
                    (n, k): GroupState(t, _utc(at) or datetime.now(UTC), int(sent))
                    for n, k, t, at, sent in groups
                },
                silences=self.silences(active_at=now),
                acked=frozenset(a.fingerprint for a in self.acks()),
                ended_silences=tuple(self.ended_silences(now)),
            )

    def apply_alerting(self, write: AlertingWrite) -> int:
        """One flush's decisions, atomically; returns how many notifications were queued."""
        now = _now()
        queued = 0
        with self._transaction() as cur:
            for dedup_key, order_key, notification in write.outbox:
                queued += self._insert_notification(cur, dedup_key, notification, now, order_key)
            for (notifier, fingerprint), seen in write.notified.items():
                cur.execute(
                    "INSERT INTO am_notified (notifier, fingerprint, version, status)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (notifier, fingerprint) DO UPDATE SET"
                    " version = excluded.version, status = excluded.status",
                    (notifier, fingerprint, seen.version, seen.status),
                )
            for (notifier, key), group in write.groups.items():
                cur.execute(
                    "INSERT INTO am_groups (notifier, group_key, thread, notified_at, sent)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (notifier, group_key) DO UPDATE SET"
                    " thread = excluded.thread, notified_at = excluded.notified_at,"
                    " sent = excluded.sent",
                    (notifier, key, group.thread, format_time(group.notified_at), group.sent),
                )
            for notifier, key in write.ended_groups:
                cur.execute(
                    "DELETE FROM am_groups WHERE notifier = ? AND group_key = ?", (notifier, key)
                )
            for fingerprint in write.done_alerts:
                cur.execute("DELETE FROM acks WHERE fingerprint = ?", (fingerprint,))
                cur.execute("DELETE FROM am_alerts WHERE fingerprint = ?", (fingerprint,))
                cur.execute("DELETE FROM am_notified WHERE fingerprint = ?", (fingerprint,))
        return queued

    def add_silence(self, silence: Silence) -> None:
        with self._transaction() as cur:
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

    def silences(self, active_at: datetime | None = None) -> list[Silence]:
        """All silences, or those in force at ``active_at``; newest first."""
        sql = (
            "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at FROM silences"
        )
        params: tuple[str, ...] = ()
        if active_at is not None:
            sql += " WHERE starts_at <= ? AND ends_at > ?"
            params = (format_time(active_at), format_time(active_at))
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at DESC, id", params).fetchall()
        return self._read_silences(rows)

    def ended_silences(self, now: datetime, limit: int = 100) -> list[Silence]:
        """The ``limit`` silences that ended last by ``now`` (run out or expired), newest first.

        The alert manager names the one that muted an alert it tells again.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at"
                " FROM silences WHERE ends_at <= ? ORDER BY ends_at DESC, id LIMIT ?",
                (format_time(now), limit),
            ).fetchall()
        return self._read_silences(rows)

    def _read_silences(self, rows: Iterable[tuple[Any, ...]]) -> list[Silence]:
        """Silences rows; matchers stored with old label names read as the current ones."""
        out = []
        for row in rows:
            try:
                matchers = parse_matchers(json.loads(row[1]))
            except ValueError as exc:
                self._skip_silence(row[0], exc)
                continue
            out.append(
                Silence(
                    id=row[0],
                    matchers=matchers,
                    starts_at=_utc(row[2]) or datetime.now(UTC),
                    ends_at=_utc(row[3]) or datetime.now(UTC),
                    created_by=row[4],
                    comment=row[5],
                    created_at=_utc(row[6]) or datetime.now(UTC),
                )
            )
        return out

    def _skip_silence(self, silence_id: str, why: ValueError) -> None:
        """A silence saved by an older version with a regex RE2 refuses: it mutes nothing.

        Its alerts are delivered rather than the daemon failing on every tick; said once.
        """
        if silence_id not in self._unreadable_silences:
            self._unreadable_silences.add(silence_id)
            log.warning("silence %s is ignored (add it again in RE2 syntax): %s", silence_id, why)

    def expire_silence(self, silence_id: str, at: datetime) -> bool:
        with self._transaction() as cur:
            cur.execute(
                "UPDATE silences SET ends_at = ? WHERE id = ? AND ends_at > ?",
                (format_time(at), silence_id, format_time(at)),
            )
            return cur.rowcount > 0

    # -- acknowledgements and the audit log (issue 10) -----------------------------

    def add_ack(self, ack: Ack, audit: AuditEntry) -> bool:
        """Acknowledge an alert episode once; False if it already was (nothing written)."""
        with self._transaction() as cur:
            row = cur.execute(
                "SELECT 1 FROM acks WHERE fingerprint = ? AND starts_at = ?",
                (ack.fingerprint, format_time(ack.starts_at)),
            ).fetchone()
            if row is not None:
                return False
            cur.execute(
                "INSERT INTO acks (fingerprint, starts_at, acked_by, acked_at, source)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    ack.fingerprint,
                    format_time(ack.starts_at),
                    ack.acked_by,
                    format_time(ack.acked_at),
                    ack.source,
                ),
            )
            self._insert_audit(cur, audit)
        return True

    def acks(self) -> list[Ack]:
        """Acknowledgements of the episodes the alert manager still tracks."""
        with self._lock:
            rows = self._db.execute(
                "SELECT k.fingerprint, k.starts_at, k.acked_by, k.acked_at, k.source"
                " FROM acks k JOIN am_alerts a"
                " ON a.fingerprint = k.fingerprint AND a.starts_at = k.starts_at"
            ).fetchall()
        return [
            Ack(f, _utc(s) or datetime.now(UTC), by, _utc(at) or datetime.now(UTC), src)
            for f, s, by, at, src in rows
        ]

    def _insert_audit(self, cur: Cursor, entry: AuditEntry) -> None:
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

    def add_audit(self, entry: AuditEntry) -> None:
        with self._transaction() as cur:
            self._insert_audit(cur, entry)

    def audit(self, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest audit entries first, all or for one alert or silence."""
        sql = "SELECT id, at, actor, action, target, source, detail FROM audit"
        params: tuple[str | int, ...] = ()
        if target is not None:
            sql += " WHERE target = ?"
            params = (target,)
        with self._lock:
            rows = self._db.execute(
                sql + " ORDER BY at DESC, id LIMIT ?", (*params, limit)
            ).fetchall()
        return [
            AuditEntry(r[0], _utc(r[1]) or datetime.now(UTC), r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]

    def tie_silence_to_meeting(self, silence_id: str, meeting_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO silence_meetings (silence_id, meeting_id) VALUES (?, ?)",
                (silence_id, meeting_id),
            )

    def meeting_silences(self, now: datetime) -> list[tuple[str, str]]:
        """(silence ID, meeting ID) of silences in force that end with their meeting."""
        with self._lock:
            rows = self._db.execute(
                "SELECT m.silence_id, m.meeting_id FROM silence_meetings m"
                " JOIN silences s ON s.id = m.silence_id WHERE s.ends_at > ?",
                (format_time(now),),
            ).fetchall()
        return [(str(a), str(b)) for a, b in rows]

    def meeting_in_progress(self, meeting_id: str) -> bool:
        """Someone of the meeting is still watched, or one of its alerts still fires."""
        with self._lock:
            watched = self._db.execute(
                "SELECT 1 FROM watchlist WHERE room_id = ? AND status = 'watching' LIMIT 1",
                (meeting_id,),
            ).fetchone()
            if watched is not None:
                return True
            rows = self._db.execute(
                "SELECT payload FROM am_alerts WHERE status = 'firing'"
            ).fetchall()
        return any(json.loads(p).get("meeting_id") == meeting_id for (p,) in rows)

    # -- the watch list (issue 5) ------------------------------------------------

    def load_watchlist(self) -> list[WatchRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT session_id, participant_id, room_id, name, source, status, since,"
                " missing, reason, deadline_misses FROM watchlist"
            ).fetchall()
        return [_watch_record(row) for row in rows]

    def save_watch(self, records: Iterable[WatchRecord]) -> None:
        now = _now()
        # in key order: instances saving the same rows together lock them in one order
        ordered = sorted(records, key=lambda r: (r.session_id, r.participant_id))
        with self._transaction() as cur:
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

    def delete_watch(self, keys: Iterable[Key]) -> None:
        with self._transaction() as cur:
            for session, participant in sorted(keys):
                cur.execute(
                    "DELETE FROM watchlist WHERE session_id = ? AND participant_id = ?",
                    (session, participant),
                )

    def commit_departure(
        self,
        key: Key,
        alerts: Iterable[tuple[Alert, Sequence[str]]] = (),
        *,
        fence: tuple[str, int] | None = None,
    ) -> None:
        """Forget a participant who left: watch entry, cursor and alert states go, and the
        (alert, rule notify) resolutions reach the alert manager, in one transaction.

        ``fence`` works as in ``commit_poll``: only the lease holder may resolve and
        forget, otherwise StaleLease and nothing is written. A fenced departure also
        deletes the lease, so no later write for the participant can pass a fence.
        """
        session, participant = key
        now = _now()
        with self._transaction() as cur:
            if fence is not None:
                self._check_fence(cur, key, fence)
                cur.execute("DELETE FROM leases WHERE session_id = ? AND participant_id = ?", key)
            self._forget_deferred(key)  # its rows go: nothing deferred may bring them back
            for table in ("watchlist", "cursors", "alert_states", "rule_memory"):
                cur.execute(
                    f"DELETE FROM {table} WHERE session_id = ? AND participant_id = ?",  # noqa: S608
                    (session, participant),
                )
            for alert, notify in alerts:
                self._record_alert(cur, alert, notify, now)

    def watch_status(self) -> list[WatchStatus]:
        """Every watched participant with its newest sample time and firing alerts."""
        self.flush()  # what this process has not written yet counts too
        with self._lock:
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
                phases[phase].setdefault((s, p), []).append((rule, _utc(at)))
        out = []
        for record in sorted(self.load_watchlist(), key=lambda r: (r.since, r.session_id)):
            key = (record.session_id, record.participant_id)
            out.append(
                WatchStatus(
                    record,
                    _utc(cursors.get(key)),
                    tuple(phases["firing"].get(key, ())),
                    tuple(phases["pending"].get(key, ())),
                )
            )
        return out

    # -- end of the watch list ---------------------------------------------------


def _watch_record(row: tuple[Any, ...]) -> WatchRecord:
    return WatchRecord(
        session_id=row[0],
        participant_id=row[1],
        room_id=row[2],
        name=row[3],
        source=row[4],
        status=row[5],
        since=_utc(row[6]) or datetime.now(UTC),
        missing=int(row[7]),
        reason=row[8],
        deadline_misses=int(row[9]),
    )


class StoredNotifierState:
    """A notifier entry's durable key-value memory (see watchdog.notifiers.NotifierState)."""

    def __init__(self, store: Store, notifier: str) -> None:
        self._store = store
        self._notifier = notifier

    def get(self, key: str) -> dict[str, Any] | None:
        return self._store.state_get(self._notifier, key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._store.state_put(self._notifier, key, value)

    def delete(self, key: str) -> None:
        self._store.state_delete(self._notifier, key)
