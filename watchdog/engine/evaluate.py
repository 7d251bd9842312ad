"""The rule engine: pure, no I/O. New samples + previous state -> new state + transitions.

The daemon, ``once``, ``replay`` and ``test-rules`` all drive these functions,
so what a backtest shows is what production does. Time is sample time, never
the wall clock, which makes ``for``, windows and spikes deterministic and
testable; absent data is judged against a reference ``now`` the caller takes
from the API server (its ``Date`` header), never the local clock.

Per participant the engine keeps a ``Memory``: the recent points of the
metrics rules look at, trimmed to the longest window (plus a short tail for
sparklines), and for rules that count samples their last outcomes (one integer
each), so state stays bounded however long a call runs.
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from watchdog.durations import format_time, parse_time
from watchdog.engine.causes import Verdict
from watchdog.engine.rules import MAX_SAMPLES, Rule, SampleCount
from watchdog.engine.series import Series, duration_micros, micros
from watchdog.engine.sparklines import sparkline
from watchdog.engine.templates import render
from watchdog.videosdk.stats import ParticipantInfo, Sample

Phase = Literal["pending", "firing"]
Scope = Literal["participant", "meeting"]

SPARK_POINTS = 16  # recent values kept per metric for sparklines, beyond any window
OUTCOME_BITS = (1 << MAX_SAMPLES) - 1  # what a rule's stored outcomes may hold
ZERO = timedelta(0)
K = TypeVar("K")  # what an alert state is keyed by: a rule name, or a rule and meeting


@dataclass(frozen=True, slots=True)
class AlertState:
    """A rule's state for one participant (or meeting); absent means inactive."""

    phase: Phase
    active_since: datetime  # first sample of the current run where the condition held
    value: float  # the metric's latest value while active
    fired_at: datetime | None = None
    keep_firing_since: datetime | None = None  # condition cleared, still firing (keep_firing_for)

    def clamped(self, limit: datetime, now: datetime) -> AlertState:
        """Times after ``limit`` moved to ``now`` (a state a sample stamped in the future
        left: pending since then it would never fire); ``self`` if none is."""
        times = (self.active_since, self.fired_at, self.keep_firing_since)
        if all(moment is None or moment <= limit for moment in times):
            return self
        return replace(
            self,
            active_since=_before(self.active_since, limit, now),
            fired_at=None if self.fired_at is None else _before(self.fired_at, limit, now),
            keep_firing_since=None
            if self.keep_firing_since is None
            else _before(self.keep_firing_since, limit, now),
        )


def _before(moment: datetime, limit: datetime, now: datetime) -> datetime:
    return now if moment > limit else moment


@dataclass(frozen=True, slots=True)
class Condition:
    """A meeting rule's per-participant verdict at its newest sample."""

    time: datetime
    holds: bool
    value: float


@dataclass(slots=True)
class Memory:
    """What the engine remembers about one participant between evaluations."""

    last_time: datetime | None = None  # newest sample evaluated
    first_time: datetime | None = None  # oldest sample ever seen: spike history, warm-ups
    series: dict[str, Series] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    # rules with ``samples``: their latest outcomes as bits, newest lowest (1: condition met);
    # None until one counts, so participants without such rules carry no empty dict
    outcomes: dict[str, int] | None = None

    def copy(self) -> Memory:
        return Memory(
            self.last_time,
            self.first_time,
            {metric: points.copy() for metric, points in self.series.items()},
            dict(self.conditions),
            None if self.outcomes is None else dict(self.outcomes),
        )

    def clamp(self, limit: datetime, now: datetime) -> bool:
        """Forget what samples stamped after ``limit`` left (stored before such samples
        were refused, they would hide every real sample to come): the newest time becomes
        ``now`` and points after it go, so series stay in order. True if anything changed."""
        changed = False
        if self.last_time is not None and self.last_time > limit:
            self.last_time, changed = now, True
            if self.first_time is not None and self.first_time > now:
                self.first_time = now
            cutoff = micros(now)
            for metric, points in self.series.items():
                if points.times and points.times[-1] > cutoff:
                    kept = bisect_right(points.times, cutoff)
                    self.series[metric] = Series(points.times[:kept], points.values[:kept])
        for rule, condition in list(self.conditions.items()):
            if condition.time > limit:
                self.conditions[rule], changed = replace(condition, time=now), True
        return changed

    def to_json(self) -> dict[str, Any]:
        """Version 2: each series as ``[[microseconds, ...], [value, ...]]``, written every
        poll with new samples, so no per-point timestamp formatting. ``outcomes`` (a rule's
        latest outcomes as one integer) is only written when a rule counts samples; an
        older reader ignores it."""
        data: dict[str, Any] = {
            "v": 2,
            "last": self.last_time.isoformat() if self.last_time else None,
            "first": self.first_time.isoformat() if self.first_time else None,
            "series": {metric: points.to_json() for metric, points in self.series.items()},
            "conditions": {
                rule: [c.time.isoformat(), c.holds, c.value] for rule, c in self.conditions.items()
            },
        }
        if self.outcomes:
            data["outcomes"] = dict(self.outcomes)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Memory:
        """Tolerant: a damaged entry loses history, never the daemon.

        Reads version 2 and the version-1 form (series as ``[[iso time, value], ...]``)
        that databases written before it hold.
        """
        memory = cls()
        if not isinstance(data, dict):
            return memory
        memory.last_time = parse_time(data.get("last"))
        memory.first_time = parse_time(data.get("first"))
        series = data.get("series")
        load = Series.from_json if data.get("v") == 2 else _series_v1
        for metric, points in series.items() if isinstance(series, dict) else ():
            memory.series[sys.intern(str(metric))] = load(points)  # one name for 10,000 rows
        conditions = data.get("conditions")
        for rule, item in conditions.items() if isinstance(conditions, dict) else ():
            if isinstance(item, list) and len(item) == 3:
                moment = parse_time(item[0])
                if moment is not None and isinstance(item[2], int | float):
                    memory.conditions[sys.intern(str(rule))] = Condition(
                        moment, bool(item[1]), float(item[2])
                    )
        outcomes = data.get("outcomes")
        if isinstance(outcomes, dict):
            memory.outcomes = {
                sys.intern(str(rule)): bits & OUTCOME_BITS
                for rule, bits in outcomes.items()
                if isinstance(bits, int) and not isinstance(bits, bool) and bits >= 0
            } or None
        return memory


def _series_v1(points: Any) -> Series:
    """``[[iso time, value], ...]``, as stored before version 2."""
    times: dict[Any, int | None] = {}  # metrics share sample times: parse each once

    def stamp(item: Any) -> int | None:
        text = item if isinstance(item, str) else None
        if text not in times:
            moment = parse_time(text)
            times[text] = None if moment is None else micros(moment)
        return times[text]

    return Series.load(
        (stamp(item[0]), item[1])
        for item in (points if isinstance(points, list) else ())
        if isinstance(item, list) and len(item) == 2
    )


@dataclass(frozen=True, slots=True)
class Transition:
    time: datetime  # the sample (or reference time) that caused it
    rule: Rule
    info: ParticipantInfo
    state: Literal["firing", "resolved"]
    value: float
    active_since: datetime
    fired_at: datetime
    threshold: float | None = None  # the effective threshold (a spike's is baseline-relative)
    values: tuple[float, ...] = ()  # the metric's recent values, oldest first
    summary: str | None = None  # rendered templates
    description: str | None = None
    scope: Scope = "participant"
    affected: tuple[str, ...] = ()  # meeting rules: who meets the condition
    watched: int = 0  # meeting rules: participants with data
    reason: str | None = None  # a resolution no sample showed: e.g. the participant left
    # the likely cause when it fired (watchdog.engine.causes; see explained())
    cause: str | None = None
    evidence: tuple[str, ...] = ()
    cause_participant: str | None = None

    @property
    def sparkline(self) -> str | None:
        return sparkline(self.values) or None

    def to_json(self) -> dict[str, Any]:
        """The documented ``replay`` line (meeting rules add ``meetingId``)."""
        line: dict[str, Any] = {
            "time": format_time(self.time),
            "rule": self.rule.name,
            "sessionId": self.info.session_id,
            "participantId": self.info.participant_id if self.scope == "participant" else None,
            "state": self.state,
            "value": self.value,
        }
        if self.scope == "meeting":
            line["meetingId"] = self.info.meeting_id
        if self.reason is not None:
            line["reason"] = self.reason
        return line


@dataclass(slots=True)
class Evaluation:
    states: dict[str, AlertState]
    transitions: list[Transition] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)
    memory: Memory = field(default_factory=Memory)


def horizons(rules: Iterable[Rule]) -> dict[str, timedelta]:
    """Per metric, the longest stretch of history any rule needs."""
    out: dict[str, timedelta] = {}
    for rule in rules:
        if rule.metric is not None:
            out[rule.metric] = max(out.get(rule.metric, ZERO), rule.window)
    return out


FIRST_SIGHT = timedelta(minutes=2)


def lookback(rules: Iterable[Rule]) -> timedelta:
    """How much of a new participant's history the poller evaluates on first sight.

    At least what can still change its alerts now (the longest ``over`` window
    plus ``for`` plus ``keep_firing_for`` of any rule, after its ``warmup``: the first
    sample seen starts a warm-up), and at least two minutes
    so an alert already firing reports a useful ``since``. Older samples would alert
    on episodes that ended long ago, and cost: a daemon starting with 10,000
    participants in long calls evaluates this stretch of each in its first cycle.
    """
    return max([FIRST_SIGHT, *(r.warmup + r.window + r.for_ + r.keep_firing_for for r in rules)])


def evaluate(
    rules: Iterable[Rule],
    info: ParticipantInfo,
    samples: Iterable[Sample],
    states: Mapping[str, AlertState],
    *,
    memory: Memory | None = None,
    now: datetime | None = None,
    session_ongoing: bool | None = None,
) -> Evaluation:
    """Advance every rule that applies to ``info`` over ``samples`` (time-ordered).

    Samples at or before the memory's newest are skipped. A sample without a
    rule's metric leaves that rule as it was: a missing field is not evidence
    that a call recovered. ``now`` (the API server's time) lets absent-data
    rules fire when nothing new arrived; ``session_ongoing=False`` stops them
    (None: assume the session is still going).
    """
    applicable = [rule for rule in rules if rule.applies_to(info)]
    plan = _plan(applicable)
    memory = memory.copy() if memory is not None else Memory()
    result = Evaluation(states=dict(states), memory=memory)
    keep, absent, valued, tuned = plan.keep, plan.absent, plan.valued, plan.tuned
    for metric in [m for m in memory.series if m not in keep]:
        del memory.series[metric]  # no rule looks at it any more (rules changed)
    for sample in samples:
        time = sample.time
        if memory.last_time is not None and time <= memory.last_time:
            continue
        for rule in absent:
            _absent_gap(rule, info, memory.last_time, time, result)
        values = sample.values
        stamp = micros(time)
        numbers: dict[str, float] = {}  # the rules' metrics in this sample, judged once
        for metric in keep:
            value = _number(values.get(metric))
            if value is None:
                continue
            numbers[metric] = value
            points = memory.series.get(metric)
            if points is None:
                points = memory.series[metric] = Series()
            points.append(stamp, value)
        memory.last_time = time
        if memory.first_time is None:
            memory.first_time = time
        states = result.states
        for rule in valued:
            state = states.get(rule.name)
            verdict = _judge(
                rule, numbers, memory, stamp, state is not None and state.phase == "firing"
            )
            if verdict is None:
                continue
            holds, value, threshold = verdict
            if rule.meeting is not None:
                memory.conditions[rule.name] = Condition(time, holds, value)
                continue
            if not holds and state is None:
                continue  # a healthy sample for an inactive rule: nothing to advance
            _step(
                rule,
                info,
                time,
                holds=holds,
                value=value,
                threshold=threshold,
                memory=memory,
                out=result,
            )
        for rule in tuned:
            _tuned_step(rule, info, time, stamp=stamp, numbers=numbers, memory=memory, out=result)
    for metric, horizon in keep.items():
        points = memory.series.get(metric)
        if points:
            points.trim(horizon, SPARK_POINTS)  # once per call, not per sample: same result
    if now is not None and session_ongoing is not False:
        for rule in absent:
            _absent_now(rule, info, memory.last_time, now, result)
    if session_ongoing is False and now is not None:
        for rule in absent:
            _resolve_absent(rule, info, now, memory.last_time, result)
    for rule_name in list(memory.conditions):
        if rule_name not in plan.meeting_rules:
            del memory.conditions[rule_name]
    if memory.outcomes is not None:  # forget the counts of rules that no longer count
        counting = plan.counting
        kept = {name: bits for name, bits in memory.outcomes.items() if name in counting}
        memory.outcomes = kept or None
    return result


@dataclass(frozen=True, slots=True)
class _Plan:
    """How :func:`evaluate` goes through one set of applicable rules: worked out once per
    set, not on every poll of every participant."""

    rules: tuple[Rule, ...]  # holds the rules, so the ids keying the cache stay theirs
    keep: dict[str, int]  # per metric, the microseconds of history any rule needs
    absent: tuple[Rule, ...]
    valued: tuple[Rule, ...]
    tuned: tuple[Rule, ...]  # count samples or warm up: their own path, others cost nothing
    meeting_rules: frozenset[str]  # names of meeting rules: their conditions are kept
    counting: frozenset[str]  # names of rules counting samples: their outcomes are kept


_PLANS: dict[tuple[int, ...], _Plan] = {}
_MAX_PLANS = 256  # sets of applicable rules seen (filters make a few); a reload makes new ones


def _plan(applicable: Sequence[Rule]) -> _Plan:
    key = tuple(map(id, applicable))
    plan = _PLANS.get(key)
    if plan is not None and all(map(operator.is_, plan.rules, applicable)):
        return plan
    absent: list[Rule] = []
    valued: list[Rule] = []
    tuned: list[Rule] = []
    for rule in applicable:
        if rule.absent is not None:
            absent.append(rule)
        elif rule.samples is None and not rule.warmup:
            valued.append(rule)
        else:
            tuned.append(rule)
    plan = _Plan(
        rules=tuple(applicable),
        keep={metric: duration_micros(span) for metric, span in horizons(applicable).items()},
        absent=tuple(absent),
        valued=tuple(valued),
        tuned=tuple(tuned),
        meeting_rules=frozenset(r.name for r in applicable if r.meeting is not None),
        counting=frozenset(r.name for r in tuned if r.samples is not None),
    )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _tuned_step(
    rule: Rule,
    info: ParticipantInfo,
    time: datetime,
    *,
    stamp: int,
    numbers: Mapping[str, float],
    memory: Memory,
    out: Evaluation,
) -> None:
    """One sample through a rule with ``warmup`` or ``samples``: samples in the warm-up
    are not judged (nor are they in its windows); a counted rule holds while enough of
    its latest outcomes met the condition."""
    since: int | None = None
    if rule.warmup:
        assert memory.first_time is not None  # set at this participant's first sample
        if time - memory.first_time < rule.warmup:
            return
        since = micros(memory.first_time) + duration_micros(rule.warmup)
    firing = _firing(out.states.get(rule.name))
    verdict = _judge(rule, numbers, memory, stamp, firing, since=since)
    if verdict is None:
        return
    holds, value, threshold = verdict
    if rule.meeting is not None:
        memory.conditions[rule.name] = Condition(time, holds, value)
        return
    if rule.samples is not None:
        holds = _count(memory, rule.name, rule.samples, holds)
    _step(
        rule,
        info,
        time,
        holds=holds,
        value=value,
        threshold=threshold,
        memory=memory,
        out=out,
    )


def _count(memory: Memory, name: str, counted: SampleCount, holds: bool) -> bool:
    """Record this outcome; True while at least ``need`` of the last ``of`` met the condition."""
    outcomes = memory.outcomes
    if outcomes is None:
        outcomes = memory.outcomes = {}
    bits = ((outcomes.get(name, 0) << 1) | holds) & ((1 << counted.of) - 1)
    outcomes[name] = bits
    return bits.bit_count() >= counted.need


def _number(value: object) -> float | None:
    """A usable number, or None: samples from any source are judged, never trusted."""
    if value.__class__ is float:  # the common case, checked cheaply: finite iff x - x == 0
        return value if value - value == 0 else None
    if isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _firing(state: AlertState | None) -> bool:
    return state is not None and state.phase == "firing"


def _window(points: Series | None, start: int, end: int) -> Sequence[float]:
    """Values with start < time <= end (microseconds)."""
    return points.window(start, end) if points else ()


def _p95(values: Sequence[float]) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = 0.95 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rate(times: Sequence[int], values: Sequence[float]) -> float | None:
    """Per-second increase over the window, a decrease counted as a counter reset."""
    if len(values) < 2:
        return None
    seconds = (times[-1] - times[0]) / 1_000_000  # as timedelta.total_seconds() computes it
    if seconds <= 0:
        return None
    increase = 0.0
    for before, after in itertools.pairwise(values):
        increase += after - before if after >= before else after
    return increase / seconds


def aggregate(name: str, times: Sequence[int], values: Sequence[float]) -> float | None:
    """A window aggregate over parallel columns (times in microseconds, oldest first)."""
    if name == "count":
        return float(len(values))
    if not values:
        return None
    if name == "avg":
        return math.fsum(values) / len(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "p95":
        return _p95(values)
    return _rate(times, values)


def _judge(
    rule: Rule,
    numbers: Mapping[str, float],
    memory: Memory,
    time: int,
    firing: bool,
    *,
    since: int | None = None,
) -> tuple[bool, float, float | None] | None:
    """(condition holds, value shown, effective threshold) at this sample (microseconds),
    from the sample's already judged ``numbers``; None: no evidence. ``since``: windows
    leave out points before it (a warm-up's)."""
    metric = str(rule.metric)
    current = numbers.get(metric)
    if rule.aggregate is not None and rule.over is not None:
        if current is None and rule.aggregate != "count":
            return None
        points = memory.series.get(metric)
        start = time - duration_micros(rule.over)
        if since is not None and start < since - 1:
            start = since - 1  # windows hold start < time <= end
        times, window = points.span(start, time) if points else ((), ())
        value = aggregate(rule.aggregate, times, window)
        if value is None:
            return None
        return rule.holds(value, firing), value, rule.threshold
    if rule.spike is not None:
        if current is None:
            return None
        return _spike(rule, memory, time, current, since)
    if current is None:
        return None
    return rule.holds(current, firing), current, rule.threshold


def _spike(
    rule: Rule, memory: Memory, time: int, current: float, since: int | None = None
) -> tuple[bool, float, float | None] | None:
    """``since``: history starts there, not at the first sample (a warm-up's end)."""
    spike = rule.spike
    assert spike is not None
    points = memory.series.get(str(rule.metric))
    over = duration_micros(spike.over)
    split = time - over
    if over:
        recent = _window(points, split if since is None else max(split, since - 1), time)
        current = math.fsum(recent) / len(recent) if recent else current
    else:
        split = time - 1  # the baseline is everything before this sample
    start = split - duration_micros(spike.baseline)
    if since is not None and start < since - 1:
        start = since - 1
    base_values = _window(points, start, split)
    if not base_values:
        return None
    baseline = math.fsum(base_values) / len(base_values)
    history = since  # where the participant's usable history starts
    if history is None and memory.first_time is not None:
        history = micros(memory.first_time)
    enough = history is not None and split - history >= duration_micros(spike.needed)
    if spike.direction == "up":
        limit = baseline * spike.factor if spike.factor is not None else baseline
        if spike.min_change is not None:
            limit = max(limit, baseline + spike.min_change)
        holds = current > baseline and current >= limit
    else:
        limit = baseline / spike.factor if spike.factor is not None else baseline
        if spike.min_change is not None:
            limit = min(limit, baseline - spike.min_change)
        holds = current < baseline and current <= limit
    return enough and holds, current, limit


def _recent(memory: Memory, rule: Rule) -> tuple[float, ...]:
    points = memory.series.get(rule.metric or "")
    return points.last(SPARK_POINTS) if points else ()


def advance(
    rule: Rule, current: AlertState | None, time: datetime, *, holds: bool, value: float
) -> tuple[AlertState | None, Literal["firing", "resolved"] | None]:
    """The pending/firing/resolved state machine, shared by participant and meeting rules.

    Returns the new state (None: inactive) and the transition it makes, if any.
    """
    if holds:
        if current is None:
            current = AlertState(phase="pending", active_since=time, value=value)
        else:
            current = replace(current, value=value, keep_firing_since=None)
        if current.phase == "pending" and time - current.active_since >= rule.for_:
            return replace(current, phase="firing", fired_at=time), "firing"
        return current, None
    if current is None:
        return None, None
    if current.phase == "firing" and rule.keep_firing_for:
        since = current.keep_firing_since or time
        if time - since < rule.keep_firing_for:
            return replace(current, value=value, keep_firing_since=since), None
    return None, "resolved" if current.phase == "firing" else None


def _advance(
    states: dict[K, AlertState],
    changed: set[K],
    key: K,
    rule: Rule,
    time: datetime,
    *,
    holds: bool,
    value: float,
) -> tuple[Literal["firing", "resolved"], AlertState] | None:
    """One sample through :func:`advance` for ``key`` (a rule name, or a rule and meeting):
    its new state kept, a change recorded; returns the transition it made, if any, with
    the state it made it in."""
    current = states.get(key)
    new, event = advance(rule, current, time, holds=holds, value=value)
    if new is None:
        if current is None:
            return None
        del states[key]
        changed.add(key)
    elif new != current:
        states[key] = new
        changed.add(key)
    if event is None:
        return None
    state = new if new is not None else current
    assert state is not None
    return event, state


def _step(
    rule: Rule,
    info: ParticipantInfo,
    time: datetime,
    *,
    holds: bool,
    value: float,
    threshold: float | None,
    memory: Memory,
    out: Evaluation,
) -> None:
    happened = _advance(out.states, out.changed, rule.name, rule, time, holds=holds, value=value)
    if happened is not None:
        event, state = happened
        out.transitions.append(
            transition(
                rule,
                info,
                time,
                event,
                value=value,
                state=state,
                threshold=threshold,
                values=_recent(memory, rule),
            )
        )


def _absent_gap(
    rule: Rule, info: ParticipantInfo, last: datetime | None, time: datetime, out: Evaluation
) -> None:
    """A sample arrived: a gap as long as ``absent`` before it fired (then resolves now)."""
    assert rule.absent is not None
    if last is not None and out.states.get(rule.name) is None and time - last >= rule.absent:
        _fire_absent(rule, info, last, out)
    _resolve_absent(rule, info, time, last, out)


def _absent_now(
    rule: Rule, info: ParticipantInfo, last: datetime | None, now: datetime, out: Evaluation
) -> None:
    assert rule.absent is not None
    if last is not None and out.states.get(rule.name) is None and now - last >= rule.absent:
        _fire_absent(rule, info, last, out)


def _fire_absent(rule: Rule, info: ParticipantInfo, last: datetime, out: Evaluation) -> None:
    """Stamped at the moment data became absent, however late a poll noticed."""
    assert rule.absent is not None
    moment = last + rule.absent
    seconds = rule.absent.total_seconds()
    state = AlertState("firing", active_since=moment, value=seconds, fired_at=moment)
    out.states[rule.name] = state
    out.changed.add(rule.name)
    out.transitions.append(
        transition(rule, info, moment, "firing", value=seconds, state=state, threshold=seconds)
    )


def _resolve_absent(
    rule: Rule, info: ParticipantInfo, time: datetime, last: datetime | None, out: Evaluation
) -> None:
    state = out.states.pop(rule.name, None)
    if state is None:
        return
    out.changed.add(rule.name)
    gap = (time - last).total_seconds() if last is not None else state.value
    threshold = rule.absent.total_seconds() if rule.absent is not None else None
    out.transitions.append(
        transition(rule, info, time, "resolved", value=gap, state=state, threshold=threshold)
    )


def departure(
    rules: Iterable[Rule],
    info: ParticipantInfo,
    states: Mapping[str, AlertState],
    time: datetime,
    reason: str,
) -> list[Transition]:
    """A participant no longer watched: no sample will show its firing alerts recover, so
    each resolves now, at ``time`` (its last sample), with ``reason`` and the last value seen.
    Pending ones simply end."""
    by_name = {rule.name: rule for rule in rules}
    out = []
    for name, state in sorted(states.items()):
        rule = by_name.get(name)
        if state.phase != "firing" or rule is None or state.fired_at is None:
            continue
        threshold = rule.absent.total_seconds() if rule.absent is not None else rule.threshold
        made = transition(  # renders the rule's summary/description templates
            rule, info, time, "resolved", value=state.value, state=state, threshold=threshold
        )
        out.append(replace(made, reason=reason))
    return out


def transition(
    rule: Rule,
    info: ParticipantInfo,
    time: datetime,
    status: Literal["firing", "resolved"],
    *,
    value: float,
    state: AlertState,
    threshold: float | None,
    values: tuple[float, ...] = (),
    scope: Scope = "participant",
    affected: tuple[str, ...] = (),
    watched: int = 0,
) -> Transition:
    """A transition with its alert text rendered now, from what the engine knows now."""
    fired_at = state.fired_at or time
    made = Transition(
        time,
        rule,
        info,
        status,
        value,
        state.active_since,
        fired_at,
        threshold,
        values,
        scope=scope,
        affected=affected,
        watched=watched,
    )
    if rule.summary is None and rule.description is None:
        return made
    context = template_context(made)
    return replace(
        made,
        summary=render(rule.summary, context) if rule.summary is not None else None,
        description=render(rule.description, context) if rule.description is not None else None,
    )


def explained(t: Transition, verdict: Verdict) -> Transition:
    """``t`` with its likely cause; its templates rendered again, since they may show it."""
    made = replace(
        t, cause=verdict.cause, evidence=verdict.evidence, cause_participant=verdict.participant
    )
    rule = t.rule
    if rule.summary is None and rule.description is None:
        return made
    context = template_context(made)
    return replace(
        made,
        summary=render(rule.summary, context) if rule.summary is not None else None,
        description=render(rule.description, context) if rule.description is not None else None,
    )


def template_context(t: Transition) -> dict[str, Any]:
    """What ``summary``/``description`` templates see (docs/rules.md documents every name)."""
    info, rule = t.info, t.rule
    unknown = "unknown"
    return {
        "rule": rule.name,
        "severity": rule.severity,
        "state": t.state,
        "metric": rule.label,
        "op": rule.shown_op,
        "threshold": t.threshold,
        "value": t.value,
        "values": list(t.values),
        "sparkline": t.sparkline or "",
        "participant": info.name or info.participant_id or unknown,
        "participant_id": info.participant_id,
        "participant_name": info.name or unknown,
        "meeting": info.meeting_id or unknown,
        "session": info.session_id,
        "device": info.device or unknown,
        "device_version": info.device_version or unknown,
        "sdk": info.sdk_name or unknown,
        "sdk_version": info.sdk_version or unknown,
        "country": info.country or unknown,
        "city": info.city or unknown,
        "region": info.region or unknown,
        "asn": info.asn or unknown,
        "org": info.org or unknown,
        "labels": dict(rule.labels),
        "since": format_time(t.active_since),
        "time": format_time(t.time),
        "affected": len(t.affected),
        "watched": t.watched,
        "participants": list(t.affected),
        "cause": t.cause or "",
        "evidence": list(t.evidence),
    }


# -- meeting-level rules ----------------------------------------------------------------


MeetingKey = tuple[str, str]  # (rule, meeting)


@dataclass(slots=True)
class MeetingEvaluation:
    states: dict[MeetingKey, AlertState]
    transitions: list[Transition] = field(default_factory=list)
    changed: set[MeetingKey] = field(default_factory=set)


def meeting_of(info: ParticipantInfo) -> str:
    """A participant's meeting (its session when VideoSDK did not say)."""
    return info.meeting_id or f"session:{info.session_id}"


def evaluate_meetings(
    rules: Iterable[Rule],
    participants: Iterable[tuple[ParticipantInfo, Memory]],
    states: Mapping[MeetingKey, AlertState],
    *,
    now: datetime | None = None,
) -> MeetingEvaluation:
    """One verdict per (meeting rule, meeting) from its participants' latest conditions.

    Pure, like ``evaluate``: run after a poll cycle (or each replay step). The
    reference time is ``now`` if given, else the newest condition in the
    meeting; a participant counts if its condition is at most ``within`` old.
    """
    meeting_rules = [rule for rule in rules if rule.meeting is not None]
    result = MeetingEvaluation(states=dict(states))
    if not meeting_rules:
        return result
    members: dict[str, list[tuple[ParticipantInfo, Memory]]] = {}
    for info, memory in participants:
        members.setdefault(meeting_of(info), []).append((info, memory))
    for rule in meeting_rules:
        scope = rule.meeting
        assert scope is not None
        meetings = set(members) | {m for r, m in states if r == rule.name}
        for meeting in sorted(meetings):
            group = [
                (i, m.conditions[rule.name])
                for i, m in members.get(meeting, ())
                if rule.name in m.conditions and rule.applies_to(i)
            ]
            reference = now or max((c.time for _, c in group), default=None)
            if reference is None:
                continue
            fresh = [(i, c) for i, c in group if reference - c.time <= scope.within]
            hit = tuple(sorted(i.name or i.participant_id for i, c in fresh if c.holds))
            watched = len(fresh)
            if scope.count is not None:
                value, holds = float(len(hit)), len(hit) >= scope.count
                threshold = float(scope.count)
            else:
                value = len(hit) / watched if watched else 0.0
                threshold = float(scope.fraction or 0)
                holds = watched > 0 and value >= threshold
            holds = holds and watched >= scope.min_participants
            # the meeting's session: of those counted, else of anyone known in the meeting
            # (a resolve after everyone's data went stale); its meeting ID is no session
            sessions = (
                sorted({i.session_id for i, _ in fresh})
                or sorted({i.session_id for i, _ in members.get(meeting, ())})
                or [meeting.removeprefix("session:")]
            )
            info = ParticipantInfo(
                session_id=sessions[0],
                participant_id="",
                meeting_id=None if meeting.startswith("session:") else meeting,
            )
            _meeting_step(
                rule,
                (rule.name, meeting),
                info,
                reference,
                holds=holds,
                value=value,
                threshold=threshold,
                hit=hit,
                watched=watched,
                out=result,
            )
    return result


def _meeting_step(
    rule: Rule,
    key: MeetingKey,
    info: ParticipantInfo,
    time: datetime,
    *,
    holds: bool,
    value: float,
    threshold: float,
    hit: tuple[str, ...],
    watched: int,
    out: MeetingEvaluation,
) -> None:
    current = out.states.get(key)
    if current is not None and time < current.active_since:
        return
    happened = _advance(out.states, out.changed, key, rule, time, holds=holds, value=value)
    if happened is not None:
        event, state = happened
        out.transitions.append(
            transition(
                rule,
                info,
                time,
                event,
                value=value,
                state=state,
                threshold=threshold,
                scope="meeting",
                affected=hit,
                watched=watched,
            )
        )
