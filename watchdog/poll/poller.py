"""One poll cycle: fetch each watched participant's stats, evaluate new samples, persist.

Only samples newer than the participant's cursor are evaluated, and the
cursor moves in the same transaction as the alert states and outbox rows
they produced, so a restart neither re-alerts nor forgets. Whom to poll and how
each write is fenced is the :class:`~watchdog.poll.membership.Membership`'s
decision (one instance or several), chosen once at build time; what is known of
each participant between polls is :class:`~watchdog.poll.participants.Participants`'.
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
from functools import partial
from typing import Literal, Protocol

from watchdog.alerting.carryover import (
    Carried,
    carry_over,
    carry_over_meetings,
    closed_alerts,
)
from watchdog.alerting.from_transitions import alert_from
from watchdog.alerts import SESSION_ENDED
from watchdog.config.settings import WatchedParticipant
from watchdog.durations import format_duration, format_time
from watchdog.engine.causes import likely_cause
from watchdog.engine.evaluate import (
    Transition,
    evaluate,
    evaluate_meetings,
    explained,
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
from watchdog.poll.departures import resolutions
from watchdog.poll.failures import (
    PollFailures,
    PollTally,
    cause_of,
    credentials_refused,
    failure_reason,
)
from watchdog.poll.meetings import MeetingStates
from watchdog.poll.membership import Membership
from watchdog.poll.participants import Participants
from watchdog.state.faults import StorageFault
from watchdog.state.leases import Fence, StaleLease
from watchdog.state.polls import PollState
from watchdog.state.rows import Key
from watchdog.videosdk.client import DeadlineError, NotFoundError, VideoSDKClient, VideoSDKError
from watchdog.videosdk.stats import ParticipantInfo, StatsShapeError, parse_stats

log = logging.getLogger(__name__)


Outcome = Literal["ok", "not_found", "error", "deadline"]
# API errors every poll meets alike while they last: logged per participant at INFO only
SHARED_CAUSES = frozenset({"network", "server_error", "rate_limited"})


@dataclass(frozen=True, slots=True)
class Departure:
    """A participant no longer watched: its firing alerts resolve with ``reason``."""

    key: Key
    reason: str
    info: ParticipantInfo


class PollObserver(Protocol):
    """Told about every poll (the watch list, watchdog.watch.watchlist, implements it)."""

    def admit(self, target: WatchedParticipant, info: ParticipantInfo) -> bool:
        """False: skip this participant's samples (e.g. its SDK is filtered out)."""

    def polled(self, target: WatchedParticipant, outcome: Outcome) -> None: ...

    def cycle_done(self) -> list[Departure]:
        """The cycle's polls are over: who is no longer watched (the poller resolves them
        and tells :meth:`departed`)."""

    def departed(self, departure: Departure) -> None: ...


@dataclass(frozen=True, slots=True)
class Reloaded:
    kept: int  # alert states carried over
    closed: int  # firing alerts of removed rules, resolved


Polled = tuple[list[Transition], int, bool]  # one poll: transitions, new samples, ok


@dataclass(slots=True)
class CycleReport:
    started: datetime
    seconds: float = 0.0
    polled: int = 0
    failed: int = 0
    samples: int = 0
    transitions: list[Transition] = field(default_factory=list)
    tally: PollTally = field(default_factory=PollTally)  # how the API answered (self-monitoring)


class Poller:
    def __init__(
        self,
        client: VideoSDKClient,
        polls: PollState,
        rules: RuleSet,
        *,
        membership: Membership,
        participants: Participants | None = None,
        meetings: MeetingStates | None = None,
        concurrency: int = 16,
        dry_run: bool = False,
        on_enqueue: Callable[[], None] | None = None,
        observer: PollObserver | None = None,
        max_clock_skew: timedelta = timedelta(seconds=30),
    ) -> None:
        self.client = client
        self._polls = polls
        self.rules = rules
        self.membership = membership
        self.observer = observer
        self.dry_run = dry_run
        self.on_enqueue = on_enqueue
        # cursors, alert states, rule windows, identities (see watchdog.engine.evaluate)
        self.participants = participants or Participants(polls)
        self.meetings = meetings or MeetingStates(polls)
        self.server_now: datetime | None = None
        # samples stamped further ahead of the API's clock than this are dropped
        self.max_clock_skew = max_clock_skew
        self._repair_future()
        self._watches_absence = any(rule.absent is not None for rule in rules)
        self._lookback = lookback(rules)
        self.last_cycle: CycleReport | None = None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="poll")
        self._concurrency = concurrency
        self._cycle_lock = threading.Lock()
        self._places_failing = False  # sharing place loads failed last cycle (told once)
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
        repaired = self.participants.repair_future(limit, now)
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
        participants = self.participants
        try:
            for key, changed in sorted(repaired.items()):
                self._polls.commit_poll(
                    key,
                    participants.cursor(key),
                    participants.states(key),
                    changed,
                    memory=participants.committed(key).memory,
                )
        except Exception:  # what was repaired in memory holds; polls write it later
            log.exception("writing the repaired cursors failed")

    def stop(self) -> None:
        """Polls not yet started are skipped, so a stop waits only for those in flight."""
        self._stopping.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def firing(self) -> int:
        return self.participants.firing()

    def reconfigure(
        self,
        rules: RuleSet,
        max_clock_skew: timedelta,
        while_waiting: Callable[[], None] | None = None,
    ) -> Reloaded:
        """A reload's rules, between two cycles: states of the rules that stay are kept,
        firing alerts of removed ones resolved (watchdog.alerting.carryover), each
        participant's write fenced like a poll's."""
        with self.paused(while_waiting):  # no poll sees half a reload
            now = datetime.now(UTC)
            closed = 0
            participants = self.participants
            carried = carry_over(
                self.rules, rules, participants.all_states(), now, participants.all_infos()
            )
            for key, result in carried.items():
                write = partial(self._commit_carried, key, result)
                if self._fenced(key, write):  # a lease lost meanwhile is the new holder's
                    participants.replace_states(key, result.states)
                    closed += len(result.closed)
            closed += self._close_removed_meeting_rules(rules, now)
            kept = sum(len(states) for states in participants.all_states().values())
            self.rules = rules
            self.max_clock_skew = max_clock_skew
        return Reloaded(kept, closed)

    def _commit_carried(self, key: Key, carried: Carried[str], fence: Fence | None) -> None:
        self._polls.commit_poll(
            key,
            None,
            carried.states,
            carried.dropped,
            alerts=closed_alerts(carried),
            fence=fence,
        )

    def _close_removed_meeting_rules(self, rules: RuleSet, now: datetime) -> int:
        """Meeting states are the leader's: only it closes those a reload removed."""
        if not self.membership.leads():
            return 0
        meetings = carry_over_meetings(self.rules, rules, self.meetings.get(), now)
        if not meetings.dropped:
            return 0

        def write(leader: int | None) -> None:
            self._polls.commit_meetings(
                meetings.states, meetings.dropped, alerts=closed_alerts(meetings), leader=leader
            )

        if not self._as_leader(write):
            return 0
        self.meetings.set(meetings.states)
        return len(meetings.closed)

    def _fenced(self, key: Key, write: Callable[[Fence | None], None]) -> bool:
        """Write for ``key`` under its lease; False (and the membership told) if it moved."""
        try:
            write(self.membership.fence(key))
        except StaleLease as exc:
            self.membership.lost(key, str(exc))
            return False
        return True

    def _as_leader(self, write: Callable[[int | None], None]) -> bool:
        """A leader-only write; False (and the membership told) if another instance leads."""
        try:
            write(self.membership.leader_fence())
        except StaleLease as exc:
            self.membership.lost_leadership(str(exc))
            return False
        return True

    def cycle(self) -> CycleReport:
        """Poll every target once; never raises, so the scheduler keeps going."""
        with self._cycle_lock:
            report = CycleReport(started=datetime.now(UTC))
            start = time.monotonic()
            self._lookback = lookback(self.rules)  # a reload may have swapped the rules
            with self._queue_lock:
                self._queue = deque()  # open before the targets are read: see poll_now
            polled = self._poll_all(self.membership.targets(), report)
            report.tally = self.failures.end_cycle(report.polled)
            self._after_polls()
            if self.membership.shared:
                self._share_places()
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

    def _share_places(self) -> None:
        """With several instances: this one's place loads to the others, theirs counted
        in for the next cycle's likely causes (a platform cause is the deployment's).
        Never raises: without them, causes are judged over this instance's meetings."""
        at = (self.server_now or datetime.now(UTC)).timestamp()  # samples' clock: the API's
        try:
            others = self.membership.share_places(self.participants.place_loads(at))
        except Exception as exc:
            if not self._places_failing:
                log.warning(
                    "sharing place loads with the other instances failed (%s); likely "
                    "causes count this instance's meetings until it works again",
                    type(exc).__name__,
                )
            self._places_failing = True
            self.participants.count_in_places({})  # theirs would only grow stale
            return
        if self._places_failing:
            log.info("sharing place loads with the other instances works again")
            self._places_failing = False
        self.participants.count_in_places(others)

    def _after_polls(self) -> None:
        """Write the polls' deferred results in one transaction (if that fails they stay
        unwritten, and a restart re-evaluates their samples from the older cursors), then
        resolve whoever the watch list says left."""
        if not self.dry_run:
            try:
                self._polls.flush()
            except StorageFault:  # counted and logged once by the store; kept for the next
                pass
            except Exception:
                log.exception("writing this cycle's poll results failed; retrying after the next")
            for key, why in self._polls.take_stale():
                self.membership.lost(key, why)
        if self.observer is None:
            return
        try:
            departures = self.observer.cycle_done()
        except StorageFault:  # counted and logged once by the store
            return
        except Exception:
            log.exception("updating the watch list after a poll cycle failed")
            return
        for departure in departures:  # one failing departure costs nobody else theirs
            ids = {"session_id": departure.key[0], "participant_id": departure.key[1]}
            try:
                self.depart(departure.key, departure.reason, departure.info)
            except StorageFault:  # counted and logged once by the store; tried again later
                continue
            except Exception:
                log.exception("resolving the alerts of a departed participant failed", extra=ids)
                continue
            self.observer.departed(departure)

    def depart(self, key: Key, reason: str, info: ParticipantInfo) -> int:
        """Resolve ``key``'s firing alerts with ``reason`` and forget it (its watch entry,
        cursor and alert states go in the same transaction); returns how many resolved."""
        tracked = self.participants.committed(key)
        alerts = resolutions(self.rules, tracked, info, reason)
        ids = {"session_id": key[0], "participant_id": key[1]}
        if not self.dry_run:

            def write(fence: Fence | None) -> None:
                self._polls.commit_departure(
                    key,
                    alerts,
                    fence=fence,
                    ended=reason == SESSION_ENDED,
                    meeting_id=info.meeting_id,
                )

            if not self._fenced(key, write):  # another instance holds the lease: not ours
                alerts = []
            if alerts and self.on_enqueue is not None:
                self.on_enqueue()
        for alert, _ in alerts:
            TRANSITIONS.labels(alert.rule, "resolved").inc()
            log.info("alert %s resolved: %s", alert.rule, reason, extra=ids)
        self.participants.forget(key)
        return len(alerts)

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
            self.failures.failed("stats not found (404)", "answer")
            log.warning("stats not found (404)", extra=ids)
            return [], 0, "not_found"
        except DeadlineError as exc:
            POLLS.labels("deadline").inc()
            self.failures.failed(failure_reason(exc), "api", exc)
            # in the cycle's summary; a participant that keeps hitting it is named once, as
            # a WARNING, by the watch list
            log.info("stats request failed: %s", exc, extra=ids)
            return [], 0, "deadline"
        except VideoSDKError as exc:
            POLLS.labels("api_error").inc()
            self.failures.failed(failure_reason(exc), cause_of(exc), exc)
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
            self.failures.failed("lease taken over by another instance", "local")
            self.membership.lost((target.session, target.participant), str(exc))
            return [], 0, "error"
        except StatsShapeError as exc:
            POLLS.labels("bad_response").inc()
            self.failures.failed("unusable stats response", "api")
            log.warning("unusable stats response: %s", exc, extra=ids)
            return [], 0, "error"
        except StorageFault:  # counted and logged once by the store; polled again next cycle
            POLLS.labels("state_error").inc()
            self.failures.failed("state database fault", "local")
            return [], 0, "error"
        except Exception as exc:
            POLLS.labels("internal_error").inc()
            self.failures.failed(f"internal error ({type(exc).__name__})", "local")
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
        participants = self.participants
        raw, now = self.client.participant_stats_at(target.session, target.participant)
        clock = now if now is not None else datetime.now(UTC)  # the API's, else ours
        stats = parse_stats(
            raw,
            target.session,
            target.participant,
            after=participants.cursor(key),
            lookback=self._lookback,
            until=clock + self.max_clock_skew,
        )
        # the decoded answer (the whole history, ~0.5 MB of objects) goes now, not when the
        # poll ends: 32 polls waiting for the state database's writer each held one
        del raw
        if stats.future and participants.warn_future_once(key):
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
        participants.seen(key, stats.info)
        if now is not None and (self.server_now is None or now > self.server_now):
            self.server_now = now
        memory = participants.memory(key)
        samples = stats.samples
        if samples and memory is not None and memory.last_time is not None:
            # the cursor stops at the API's now, so a sample stamped a little ahead of it
            # (within the skew) shows again until that time comes: evaluated once only
            last = memory.last_time
            if samples[0].time <= last:
                samples = tuple(s for s in samples if s.time > last)
        if not samples and not (self._watches_absence and now is not None):
            return [], 0
        participants.observe(key, stats.info, samples)
        result = evaluate(
            self.rules,
            stats.info,
            samples,
            participants.states(key),
            memory=memory,
            now=now,
        )
        if result.transitions:
            result.transitions = [self._explained(key, t) for t in result.transitions]
        cursor = min(samples[-1].time, clock) if samples else None
        # a poll that moved nothing (no new sample, no state change) writes nothing
        if not self.dry_run and (samples or result.changed or result.transitions):
            alerts = [(alert_from(t), t.rule.notify) for t in result.transitions]
            self._polls.commit_poll(  # StaleLease: the lease moved (see _poll_outcome)
                key,
                cursor,
                result.states,
                result.changed,
                alerts=alerts,
                memory=result.memory if samples else None,
                info=stats.info if samples and self._meeting_inputs else None,
                fence=self.membership.fence(key),
                defer=not alerts,  # written with the rest after the cycle (PollState.flush)
            )
            if alerts and self.on_enqueue is not None:
                self.on_enqueue()
        if samples and not self.dry_run:  # history's minute summaries (written by flush)
            self._polls.summarise(key, stats.info, samples)
        participants.record(key, cursor, result.states, result.memory)
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

    def _explained(self, key: Key, transition: Transition) -> Transition:
        """A participant alert as it fires, with its likely cause (watchdog.engine.causes);
        a failure there is logged and costs the alert nothing but its cause."""
        if transition.state != "firing" or transition.scope != "participant":
            return transition
        try:
            at = transition.time.timestamp()
            window, peers, places = self.participants.cause_inputs(key, transition.info, at)
            verdict = likely_cause(key[1], window, at, peers=peers, places=places)
            return explained(transition, verdict)
        except Exception:
            log.exception(
                "working out the likely cause of an alert failed; it is sent without one",
                extra={"session_id": key[0], "participant_id": key[1]},
            )
            return transition

    def _meetings_safely(self, targets: Sequence[WatchedParticipant]) -> list[Transition]:
        """Meeting-level rules over the watched participants' latest conditions."""
        try:
            return self.evaluate_meetings(targets)
        except StorageFault:  # counted and logged once by the store
            return []
        except Exception:
            log.exception("meeting-level rule evaluation failed")
            return []

    @property
    def _meeting_inputs(self) -> bool:
        """Several instances and meeting rules: the leader reads others' participants."""
        return self.membership.shared and any(r.meeting is not None for r in self.rules)

    def evaluate_meetings(self, targets: Sequence[WatchedParticipant]) -> list[Transition]:
        if not self.membership.leads():  # several instances: meeting rules are the leader's
            return []
        inputs = self.participants.meeting_inputs((t.session, t.participant) for t in targets)
        if self._meeting_inputs:  # the leader: every instance's participants, as committed
            inputs = self._polls.load_meeting_inputs() | inputs
        result = evaluate_meetings(
            self.rules, list(inputs.values()), self.meetings.get(), now=self.server_now
        )
        if not self.dry_run and result.changed:
            alerts = [(alert_from(t), t.rule.notify) for t in result.transitions]

            def write(leader: int | None) -> None:
                self._polls.commit_meetings(
                    result.states, result.changed, alerts=alerts, leader=leader
                )

            if not self._as_leader(write):
                return []
            if alerts and self.on_enqueue is not None:
                self.on_enqueue()
        self.meetings.set(result.states)
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
