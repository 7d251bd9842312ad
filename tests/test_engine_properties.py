"""Properties of the engine over arbitrary series, for every rule kind.

It never raises on finite, missing, non-finite or non-numeric values, and one
batch or sample-by-sample (with the memory serialised between steps, as a
restart does) gives the same transitions, flap control (``samples``, ``warmup``)
included; a counted rule does what a direct count of the samples says.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.durations import format_time
from watchdog.engine.evaluate import AlertState, Memory, Transition, evaluate
from watchdog.engine.rules import MAX_SAMPLES
from watchdog.videosdk.stats import ParticipantInfo, Sample, parse_stats

from .helpers import T0, parse_rules

RULES = parse_rules(
    """
rules:
  - {name: threshold, metric: qualityScore.video, op: "<", threshold: 3, for: 20s,
     keep_firing_for: 15s, recovery_threshold: 3.5, summary: "{{ value }} {{ sparkline }}"}
  - {name: derived, metric: totalPacketLost, op: ">", threshold: 50}
  - {name: avg, metric: qualityScore.video, aggregate: avg, over: 40s, op: "<", threshold: 3}
  - {name: min, metric: averageVideoRtt, aggregate: min, over: 30s, op: ">", threshold: 300}
  - {name: max, metric: averageVideoRtt, aggregate: max, over: 1m, op: ">=", threshold: 500}
  - {name: p95, metric: averageVideoRtt, aggregate: p95, over: 1m, op: ">", threshold: 400}
  - {name: count, metric: averageVideoRtt, aggregate: count, over: 30s, op: "<", threshold: 2}
  - {name: rate, metric: recvVideoPacketLost, aggregate: rate, over: 1m, op: ">", threshold: 1}
  - name: spike
    metric: recvVideoPacketLost
    spike: {baseline: 1m, over: 20s, factor: 2, min_change: 5, min_baseline: 30s}
  - name: dip
    metric: qualityScore.video
    spike: {baseline: 30s, factor: 1.5, direction: down}
    for: 10s
  - {name: absent, absent: 45s}
  - {name: meeting, metric: qualityScore.video, op: "<", threshold: 3, meeting: {count: 1}}
  - {name: counted, metric: qualityScore.video, op: "<", threshold: 3, samples: {need: 2, of: 4},
     keep_firing_for: 15s, recovery_threshold: 3.5, summary: "{{ value }} {{ sparkline }}"}
  - {name: warm, metric: averageVideoRtt, aggregate: avg, over: 30s, op: ">", threshold: 300,
     warmup: 25s, for: 10s}
  - name: warm-spike
    metric: recvVideoPacketLost
    spike: {baseline: 30s, over: 10s, min_change: 5}
    warmup: 20s
    samples: {need: 1, of: 2}
  - {name: warm-count, metric: averageVideoRtt, aggregate: count, over: 30s, op: "<",
     threshold: 2, warmup: 40s, samples: {need: 3, of: 3}}
  - {name: warm-meeting, metric: totalPacketLost, op: ">", threshold: 50, warmup: 15s,
     meeting: {count: 1}}
"""
)
INFO = ParticipantInfo(session_id="s", participant_id="p", meeting_id="m", name="Ann")
METRICS = ("qualityScore.video", "averageVideoRtt", "recvVideoPacketLost", "totalPacketLost")

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
maybe_value = st.one_of(st.none(), finite, st.sampled_from([0.0, 2.0, 3.0, 3.5, 600.0]))


@st.composite
def series(draw: st.DrawFn) -> list[Sample]:
    gaps = draw(st.lists(st.integers(min_value=1, max_value=90), min_size=1, max_size=40))
    out, elapsed = [], 0
    for gap in gaps:
        elapsed += gap
        values = {m: v for m in METRICS if (v := draw(maybe_value)) is not None}
        out.append(Sample(time=T0 + timedelta(seconds=elapsed), values=values))
    return out


def _key(transitions: list[Transition]) -> list[tuple[Any, ...]]:
    return [
        (t.time, t.rule.name, t.state, t.value, t.threshold, t.values, t.summary)
        for t in transitions
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples=series(), tail=st.integers(min_value=0, max_value=300))
def test_batch_equals_sample_by_sample_with_restarts(samples: list[Sample], tail: int) -> None:
    now = samples[-1].time + timedelta(seconds=tail)
    batch = evaluate(RULES, INFO, samples, {}, now=now)

    states: dict[str, AlertState] = {}
    memory = Memory()
    stepwise: list[Transition] = []
    for sample in samples:
        result = evaluate(RULES, INFO, [sample], states, memory=memory, now=sample.time)
        stepwise.extend(result.transitions)
        states = result.states
        memory = Memory.from_json(json.loads(json.dumps(result.memory.to_json())))
    last = evaluate(RULES, INFO, [], states, memory=memory, now=now)
    stepwise.extend(last.transitions)

    assert _key(batch.transitions) == _key(stepwise)
    assert batch.states == last.states
    assert batch.memory == last.memory  # windows trimmed once per batch keep what each step kept


@settings(max_examples=150, deadline=None)
@given(
    samples=st.lists(
        st.dictionaries(st.sampled_from([*METRICS, "qualityScore", "x"]), anything, max_size=6),
        max_size=12,
    ),
    usage=st.lists(st.dictionaries(st.sampled_from(["180", "720", "time", "x"]), anything)),
)
def test_never_raises_on_arbitrary_values(
    samples: list[dict[str, Any]], usage: list[dict[str, Any]]
) -> None:
    raw = []
    for index, sample in enumerate(samples):
        item = dict(sample)
        item["time"] = format_time(T0 + timedelta(seconds=10 * index))
        if "qualityScore" in item and isinstance(item["qualityScore"], dict):
            item["qualityScore"] = {"video": item["qualityScore"].get("", 1)}
        raw.append(item)
    stats = parse_stats({"stats": raw, "resolutionUsage": usage}, "s", "p")
    result = evaluate(RULES, stats.info, stats.samples, {}, now=T0 + timedelta(hours=1))
    for transition in result.transitions:
        assert math.isfinite(transition.value)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.dictionaries(st.sampled_from(METRICS), anything, max_size=4), max_size=20)
)
def test_non_numeric_and_non_finite_values_are_no_evidence(values: list[dict[str, Any]]) -> None:
    """Straight into the engine, past the parser: it still never raises."""
    samples = [Sample(T0 + timedelta(seconds=10 * i), v) for i, v in enumerate(values)]
    result = evaluate(RULES, INFO, samples, {}, now=T0 + timedelta(hours=1))

    def usable(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    cleaned = [
        Sample(s.time, {k: float(x) for k, x in s.values.items() if usable(x)}) for s in samples
    ]
    expected = evaluate(RULES, INFO, cleaned, {}, now=T0 + timedelta(hours=1))
    assert _key(result.transitions) == _key(expected.transitions)


@settings(max_examples=150, deadline=None)
@given(
    samples=series(),
    of=st.integers(min_value=1, max_value=MAX_SAMPLES),
    need=st.integers(min_value=1, max_value=MAX_SAMPLES),
    warmup=st.integers(min_value=0, max_value=120),
)
def test_a_counted_rule_fires_exactly_when_need_of_the_last_of_are_bad(
    samples: list[Sample], of: int, need: int, warmup: int
) -> None:
    """An oracle written from the docs: samples within ``warmup`` of the first are
    skipped, so are those without the metric; the alert fires while at least ``need``
    of the last ``of`` outcomes are bad and resolves when fewer are."""
    need = min(need, of)
    ruleset = parse_rules(
        f"""
rules:
  - {{name: c, metric: averageVideoRtt, op: ">", threshold: 300,
     samples: {{need: {need}, of: {of}}}, warmup: {warmup}s}}
"""
    )
    expected, outcomes, firing = [], [], False
    first = samples[0].time
    for sample in samples:
        value = sample.values.get("averageVideoRtt")
        if sample.time - first < timedelta(seconds=warmup) or value is None:
            continue
        outcomes.append(value > 300)
        holds = sum(outcomes[-of:]) >= need
        if holds != firing:
            firing = holds
            expected.append((sample.time, "firing" if holds else "resolved", value))
    got = evaluate(ruleset, INFO, samples, {}).transitions
    assert [(t.time, t.state, t.value) for t in got] == expected
