"""One poll cycle: fetch each watched participant's stats, evaluate new samples, persist.

Only samples newer than the participant's cursor are evaluated, and the
cursor moves in the same transaction as the alert states and outbox rows
they produced, so a restart neither re-alerts nor forgets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from watchdog.alerting.from_transitions import alert_from
from watchdog.config.settings import WatchedParticipant
from watchdog.durations import format_duration, format_time
from watchdog.engine.evaluate import (
    AlertState,
    MeetingKey,
    Memory,
    Transition,
    evaluate,
    evaluate_meetings,
    lookback,
)
from watchdog.engine.rules import RuleSet
from watchdog.obs.logs import about
from watchdog.obs.telemetry import (
    CYCLE_SECONDS,
    POLL_SECONDS,
    POLLS,
    SAMPLES_EVALUATED,
    TRANSITIONS,
)
from watchdog.poll.failures import PollFailures, credentials_refused, failure_reason
from watchdog.state.faults import StorageFault
from watchdog.state.leases import StaleLease
from watchdog.state.rows import Key
from watchdog.state.store import Store
from watchdog.videosdk.client import DeadlineError, NotFoundError, VideoSDKClient, VideoSDKError
from watchdog.videosdk.stats import ParticipantInfo, StatsShapeError, parse_stats

log = logging.getLogger(__name__)


Outcome = Literal["ok", "not_found", "error", "deadline"]
# API errors every poll meets alike while they last: logged per participant at INFO only
SHARED_CAUSES = frozenset({"network", "server_error", "rate_limited"})


class PollObserver(Protocol):
    """Told about every poll (the watch list, watchdog.watch.watchlist, implements it)."""

    def admit(self, target: WatchedParticipant, info: ParticipantInfo) -> bool:
        """False: skip this participant's samples (e.g. its SDK is filtered out)."""

    def polled(self, target: WatchedParticipant, outcome: Outcome) -> None: ...

    def cycle_done(self, poller: Poller) -> int: ...


Targets = Sequence[WatchedParticipant] | Callable[[], Sequence[WatchedParticipant]]
Polled = tuple[list[Transition], int, bool]  # one poll: transitions, new samples, ok


@dataclass(slots=True)
class CycleReport:
    started: datetime
    seconds: float = 0.0
    polled: int = 0
    failed: int = 0
    samples: int = 0
    transitions: list[Transition] = field(default_factory=list)


class Poller:
    def __init__(
        self,
        client: VideoSDKClient,
        store: Store,
        rules: RuleSet,
        *,
        targets: Targets,
        concurrency: int = 16,
        dry_run: bool = False,
        on_enqueue: Callable[[], None] | None = None,
        observer: PollObserver | None = None,
        max_clock_skew: timedelta = timedelta(seconds=30),
    ) -> None:
        self.client = client
        self.store = store
        self.rules = rules
        self.targets = targets if callable(targets) else list(targets)
        self.observer = observer
        self.dry_run = dry_run
        self.on_enqueue = on_enqueue
        self.cursors: dict[Key, datetime] = store.load_cursors()
        self.states: dict[Key, dict[str, AlertState]] = store.load_alert_states()
        # rule windows, absent data and meeting-level rules (see watchdog.engine.evaluate)
        self.memories: dict[Key, Memory] = store.load_memories()
        self.meeting_states: dict[MeetingKey, AlertState] = store.load_meeting_states()
        self.infos: dict[Key, ParticipantInfo] = {}
        self.server_now: datetime | None = None
        # samples stamped further ahead of the API's clock than this are dropped
        self.max_clock_skew = max_clock_skew
        self.future_warned: set[Key] = set()  # participants whose future samples were logged
        self._repair_future()
        self._watches_absence = any(rule.absent is not None for rule in rules)
        self._lookback = lookback(rules)
        self.last_cycle: CycleReport | None = None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="poll")
        self._concurrency = concurrency
        self._cycle_lock = threading.Lock()
        # the running cycle's participants not yet polled (None: no cycle takes more);
        # pool threads take them one at a time, so poll_now can put some at the head
        self._queue_lock = threading.Condition()
        self._queue: deque[WatchedParticipant] | None = None
        self._inflight: set[Key] = set()
        self._workers = 0
        self._results: list[tuple[WatchedParticipant, Polled]] = []
        self.last_progress = time.monotonic()  # a poll finished: what systemd's watchdog feeds on
        self.failures = PollFailures()
        self._stopping = threading.Event()
        # several instances (watchdog.cluster.coordinator): the lease each write is fenced with
        self.fence: Callable[[Key], tuple[str, int] | None] | None = None
        self.on_stale: Callable[[Key, str], None] | None = None
        # meeting-level rules run on the leader only, fenced by its advisory lock's
        # connection (None: not the leader, skip them)
        self.meeting_fence: Callable[[], int | None] | None = None
        self.on_stale_meetings: Callable[[str], None] | None = None

    @contextmanager
    def paused(self, while_waiting: Callable[[], None] | None = None) -> Iterator[None]:
        """No cycle runs inside: a reload swaps rules, targets and client between cycles.

        ``while_waiting`` runs every half second until the running cycle ends
        (the service keeps feeding systemd's watchdog meanwhile).
        """
        while not self._cycle_lock.acquire(timeout=0.5):
            if while_waiting is not None:
                while_waiting()
        try:
            yield
        finally:
            self._cycle_lock.release()

    def _repair_future(self) -> None:
        """State saved from samples stamped in the future, before such samples were refused,
        would hide every real sample to come: moved to now (the local clock: nothing was
        polled yet), once at startup, and written back."""
        now = datetime.now(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the store keeps it
        limit = now + self.max_clock_skew
        repaired: set[Key] = set()
        for key, cursor in self.cursors.items():
            if cursor > limit:
                self.cursors[key] = now
                repaired.add(key)
        repaired.update(key for key, memory in self.memories.items() if memory.clamp(limit, now))
        changed: dict[Key, set[str]] = {}
        for key, states in self.states.items():
            for name, state in list(states.items()):
                if (clamped := state.clamped(limit, now)) is not state:
                    states[name] = clamped
                    changed.setdefault(key, set()).add(name)
        repaired.update(changed)
        if not repaired:
            return
        log.warning(
            "repaired %d participants whose saved cursor or rule state lay in the future "
            "(after %s, from samples stamped ahead of the clock): moved to now",
            len(repaired),
            format_time(limit),
        )
        if self.dry_run:
            return
        try:
            for key in sorted(repaired):
                self.store.commit_poll(
                    key,
                    self.cursors.get(key),
                    self.states.get(key, {}),
                    changed.get(key, set()),
                    memory=self.memories.get(key),
                )
        except Exception:  # what was repaired in memory holds; polls write it later
            log.exception("writing the repaired cursors failed")

    def stop(self) -> None:
        """Polls not yet started are skipped, so a stop waits only for those in flight."""
        self._stopping.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def firing(self) -> int:
        return sum(  # a copy: polls and lease claims add participants from other threads
            1
            for states in list(self.states.values())
            for s in list(states.values())
            if s.phase == "firing"
        )

    def cycle(self) -> CycleReport:
        """Poll every target once; never raises, so the scheduler keeps going."""
        with self._cycle_lock:
            report = CycleReport(started=datetime.now(UTC))
            start = time.monotonic()
            self._lookback = lookback(self.rules)  # a reload may have swapped the rules
            with self._queue_lock:
                self._queue = deque()  # open before the targets are read: see poll_now
            targets = self.targets() if callable(self.targets) else self.targets
            polled = self._poll_all(targets, report)
            self.failures.end_cycle(report.polled)
            self._after_polls()
            if any(rule.meeting is not None for rule in self.rules):  # rules change on reload
                report.transitions.extend(self._meetings_safely(polled))
            report.seconds = time.monotonic() - start
            CYCLE_SECONDS.observe(report.seconds)
            self.last_cycle = report
            log.debug(
                "poll cycle: %d participants, %d failed, %d new samples, %d transitions in %.2fs",
                report.polled,
                report.failed,
                report.samples,
                len(report.transitions),
                report.seconds,
            )
            return report

    def _after_polls(self) -> None:
        """Write the polls' deferred results in one transaction (if that fails they stay
        unwritten, and a restart re-evaluates their samples from the older cursors), then
        let the watch list resolve who left."""
        if not self.dry_run:
            try:
                self.store.flush()
            except StorageFault:  # counted and logged once by the store; kept for the next
                pass
            except Exception:
                log.exception("writing this cycle's poll results failed; retrying after the next")
        if self.observer is not None:
            try:
                self.observer.cycle_done(self)
            except StorageFault:  # counted and logged once by the store
                pass
            except Exception:
                log.exception("updating the watch list after a poll cycle failed")

    def poll_now(self, targets: Sequence[WatchedParticipant]) -> None:
        """Poll these participants first (just taken over from a dead instance): at the
        head of the running cycle, or in a short cycle of their own.

        Either way under the cycle lock, so a reload's pause still holds every poll
        off, and a participant is never polled by two threads at once."""
        if not targets:
            return
        with self._queue_lock:
            if self._queue is not None:
                self._enqueue(targets, first=True)
                return
        with self._cycle_lock:
            with self._queue_lock:
                self._queue = deque()
            self._poll_all(targets, CycleReport(started=datetime.now(UTC)))
            self._after_polls()

    def _poll_all(
        self, targets: Sequence[WatchedParticipant], report: CycleReport
    ) -> list[WatchedParticipant]:
        """Queue the targets, let up to ``concurrency`` pool threads drain the queue (and
        whatever poll_now adds meanwhile), then close it; returns who was polled."""
        with self._queue_lock:
            self._enqueue(targets, first=False)
            while self._workers:
                self._queue_lock.wait()
            results, self._results, self._queue = self._results, [], None
        for _, (transitions, samples, ok) in results:
            report.polled += 1
            report.failed += 0 if ok else 1
            report.samples += samples
            report.transitions.extend(transitions)
        return [target for target, _ in results]

    def _enqueue(self, targets: Sequence[WatchedParticipant], *, first: bool) -> None:
        """Queue lock held: add who is neither queued nor being polled, start workers."""
        assert self._queue is not None
        busy = self._inflight | {(t.session, t.participant) for t in self._queue}
        fresh = []
        for target in targets:
            key = (target.session, target.participant)
            if key not in busy:
                busy.add(key)
                fresh.append(target)
        if first:
            self._queue.extendleft(reversed(fresh))
        else:
            self._queue.extend(fresh)
        for _ in range(min(self._concurrency - self._workers, len(self._queue))):
            try:
                self._pool.submit(self._worker)
            except RuntimeError:  # the pool is shut down: the daemon is stopping
                self._queue.clear()
                break
            self._workers += 1

    def _worker(self) -> None:
        """One pool thread's share of a cycle: poll from the queue until it is empty."""
        target = self._next(None)
        while target is not None:
            try:
                result = self._poll_safely(target)
            except BaseException:  # _poll_safely catches Exception; never leave a cycle hanging
                self._next((target, ([], 0, False)), stop=True)
                raise
            target = self._next((target, result))

    def _next(
        self,
        done: tuple[WatchedParticipant, Polled] | None,
        *,
        stop: bool = False,
    ) -> WatchedParticipant | None:
        """Record a finished poll and take the next target, or retire this worker: in
        one step under the lock, so what poll_now adds is never left behind."""
        with self._queue_lock:
            if done is not None:
                self._results.append(done)
                self._inflight.discard((done[0].session, done[0].participant))
            if stop or not self._queue:
                self._workers -= 1
                self._queue_lock.notify_all()
                return None
            target = self._queue.popleft()
            self._inflight.add((target.session, target.participant))
            return target

    def _poll_safely(self, target: WatchedParticipant) -> Polled:
        if self._stopping.is_set():  # skipped, not polled: the watch list hears nothing
            return [], 0, True
        transitions, samples, outcome = self._poll_outcome(target)
        if self.observer is not None:
            try:
                self.observer.polled(target, outcome)
            except StorageFault:  # counted and logged once by the store
                pass
            except Exception:
                log.exception("updating the watch list after a poll failed")
        return transitions, samples, outcome == "ok"

    def _poll_outcome(self, target: WatchedParticipant) -> tuple[list[Transition], int, Outcome]:
        ids = {"session_id": target.session, "participant_id": target.participant}
        start = time.monotonic()
        try:
            with about(target.session, target.participant):
                transitions, samples = self.poll(target)
        except NotFoundError:
            POLLS.labels("not_found").inc()
            self.failures.failed("stats not found (404)")
            log.warning("stats not found (404)", extra=ids)
            return [], 0, "not_found"
        except DeadlineError as exc:
            POLLS.labels("deadline").inc()
            self.failures.failed(failure_reason(exc), exc)
            # in the cycle's summary; a participant that keeps hitting it is named once, as
            # a WARNING, by the watch list
            log.info("stats request failed: %s", exc, extra=ids)
            return [], 0, "deadline"
        except VideoSDKError as exc:
            POLLS.labels("api_error").inc()
            self.failures.failed(failure_reason(exc), exc)
            # what every poll meets (an outage, refused credentials) is said once per cycle
            # by the summary, and once per episode for credentials; this participant's own
            # trouble (a 400, 422) is a WARNING here
            shared = exc.kind in SHARED_CAUSES or credentials_refused(exc)
            level = logging.DEBUG if credentials_refused(exc) else logging.INFO
            log.log(
                level if shared else logging.WARNING, "stats request failed: %s", exc, extra=ids
            )
            return [], 0, "error"
        except StaleLease as exc:
            POLLS.labels("stale_lease").inc()
            self.failures.failed("lease taken over by another instance")
            if self.on_stale is not None:
                self.on_stale((target.session, target.participant), str(exc))
            return [], 0, "error"
        except StatsShapeError as exc:
            POLLS.labels("bad_response").inc()
            self.failures.failed("unusable stats response")
            log.warning("unusable stats response: %s", exc, extra=ids)
            return [], 0, "error"
        except StorageFault:  # counted and logged once by the store; polled again next cycle
            POLLS.labels("state_error").inc()
            self.failures.failed("state database fault")
            return [], 0, "error"
        except Exception as exc:
            POLLS.labels("internal_error").inc()
            self.failures.failed(f"internal error ({type(exc).__name__})")
            log.exception("poll failed unexpectedly", extra=ids)
            return [], 0, "error"
        finally:
            self.last_progress = time.monotonic()
            POLL_SECONDS.observe(self.last_progress - start)
        POLLS.labels("ok").inc()
        self.failures.succeeded()
        return transitions, samples, "ok"

    def poll(self, target: WatchedParticipant) -> tuple[list[Transition], int]:
        key = (target.session, target.participant)
        raw, now = self.client.participant_stats_at(target.session, target.participant)
        clock = now if now is not None else datetime.now(UTC)  # the API's, else ours
        stats = parse_stats(
            raw,
            target.session,
            target.participant,
            after=self.cursors.get(key),
            lookback=self._lookback,
            until=clock + self.max_clock_skew,
        )
        if stats.future and key not in self.future_warned:
            self.future_warned.add(key)
            log.warning(
                "dropped %d stats samples stamped more than %s ahead of the API's clock (%s); "
                "the others are evaluated (logged once per participant)",
                stats.future,
                format_duration(self.max_clock_skew),
                format_time(clock),
                extra={"session_id": target.session, "participant_id": target.participant},
            )
        if self.observer is not None and not self.observer.admit(target, stats.info):
            return [], 0
        self.infos[key] = stats.info
        if now is not None and (self.server_now is None or now > self.server_now):
            self.server_now = now
        memory = self._memory(key)
        samples = stats.samples
        if samples and memory is not None and memory.last_time is not None:
            # the cursor stops at the API's now, so a sample stamped a little ahead of it
            # (within the skew) shows again until that time comes: evaluated once only
            last = memory.last_time
            if samples[0].time <= last:
                samples = tuple(s for s in samples if s.time > last)
        if not samples and not (self._watches_absence and now is not None):
            return [], 0
        result = evaluate(
            self.rules,
            stats.info,
            samples,
            self.states.get(key, {}),
            memory=memory,
            now=now,
        )
        cursor = min(samples[-1].time, clock) if samples else None
        # a poll that moved nothing (no new sample, no state change) writes nothing
        if not self.dry_run and (samples or result.changed or result.transitions):
            alerts = [(alert_from(t), t.rule.notify) for t in result.transitions]
            self.store.commit_poll(
                key,
                cursor,
                result.states,
                result.changed,
                alerts=alerts,
                memory=result.memory if samples else None,
                info=stats.info if samples and self._meeting_inputs else None,
                fence=self.fence(key) if self.fence is not None else None,
                defer=not alerts,  # written with the rest after the cycle (Store.flush)
            )
            if alerts and self.on_enqueue is not None:
                self.on_enqueue()
        if cursor is not None:
            self.cursors[key] = cursor
        self.states[key] = result.states
        self.memories[key] = result.memory
        SAMPLES_EVALUATED.inc(len(samples))
        ids = {"session_id": target.session, "participant_id": target.participant}
        for transition in result.transitions:
            TRANSITIONS.labels(transition.rule.name, transition.state).inc()
            log.info(
                "alert %s %s: %s = %s",
                transition.rule.name,
                transition.state,
                transition.rule.label,
                transition.value,
                extra=ids,
            )
        return result.transitions, len(samples)

    def _memory(self, key: Key) -> Memory | None:
        """The engine's memory; state from before windows existed starts at the cursor."""
        memory = self.memories.get(key)
        if memory is None and key in self.cursors:
            memory = Memory(last_time=self.cursors[key])
        return memory

    def _meetings_safely(self, targets: Sequence[WatchedParticipant]) -> list[Transition]:
        """Meeting-level rules over the watched participants' latest conditions."""
        try:
            return self.meetings(targets)
        except StaleLease as exc:
            if self.on_stale_meetings is not None:
                self.on_stale_meetings(str(exc))
            else:
                log.warning("%s", exc)
            return []
        except StorageFault:  # counted and logged once by the store
            return []
        except Exception:
            log.exception("meeting-level rule evaluation failed")
            return []

    @property
    def _meeting_inputs(self) -> bool:
        """Several instances and meeting rules: the leader reads others' participants."""
        return self.meeting_fence is not None and any(r.meeting is not None for r in self.rules)

    def meetings(self, targets: Sequence[WatchedParticipant]) -> list[Transition]:
        leader = None
        if self.meeting_fence is not None:
            leader = self.meeting_fence()
            if leader is None:  # several instances: meeting rules are the leader's
                return []
        keys = [(t.session, t.participant) for t in targets]
        inputs = {
            key: (self.infos[key], self.memories[key])
            for key in keys
            if key in self.infos and key in self.memories
        }
        if self._meeting_inputs:  # the leader: every instance's participants, as committed
            inputs = self.store.load_meeting_inputs() | inputs
        participants = list(inputs.values())
        result = evaluate_meetings(
            self.rules, participants, self.meeting_states, now=self.server_now
        )
        if not self.dry_run and result.changed:
            alerts = [(alert_from(t), t.rule.notify) for t in result.transitions]
            self.store.commit_meetings(result.states, result.changed, alerts=alerts, leader=leader)
            if alerts and self.on_enqueue is not None:
                self.on_enqueue()
        self.meeting_states = result.states
        for transition in result.transitions:
            TRANSITIONS.labels(transition.rule.name, transition.state).inc()
            log.info(
                "meeting alert %s %s in meeting %s: %d of %d participants",
                transition.rule.name,
                transition.state,
                transition.info.meeting_id or transition.info.session_id,
                len(transition.affected),
                transition.watched,
            )
        return result.transitions
