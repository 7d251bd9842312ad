"""Every rule kind on sample times: hysteresis, windows, spikes, absent data, filters, meetings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import pytest

from watchdog.alerting.from_transitions import alert_from
from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy
from watchdog.engine.evaluate import AlertState, Memory, Transition, evaluate, evaluate_meetings
from watchdog.engine.rules import RuleSet
from watchdog.engine.series import duration_micros
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo, Sample, parse_stats

from .helpers import T0, at, parse_rules, record_alerts, response, sample

ALICE = ParticipantInfo(
    session_id="s",
    participant_id="p1",
    meeting_id="m",
    name="Alice",
    device="Chrome",
    sdk_name="android",
    sdk_version="0.1.31",
    country="India",
    org="Reliance Jio",
)


def rules(text: str) -> RuleSet:
    return parse_rules("rules:\n" + text)


def series(metric: str, values: Sequence[float | None], step: float = 10) -> list[Sample]:
    return [
        Sample(time=at(i * step), values={} if v is None else {metric: v})
        for i, v in enumerate(values)
    ]


def run(
    ruleset: RuleSet,
    samples: list[Sample],
    info: ParticipantInfo = ALICE,
    **kw: object,
) -> list[tuple[float, str, float]]:
    result = evaluate(ruleset, info, samples, {}, **kw)  # type: ignore[arg-type]
    return [((t.time - T0).total_seconds(), t.state, t.value) for t in result.transitions]


def test_keep_firing_for_rides_out_a_short_recovery() -> None:
    ruleset = rules(
        """
  - name: poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    keep_firing_for: 30s
"""
    )
    values = [2, 4, 4, 2, 4, 4, 4, 4]  # one good pair inside 30s, then good for good
    assert run(ruleset, series("qualityScore.video", values)) == [
        (0, "firing", 2),
        (70, "resolved", 4),  # false since 40; 70 - 40 >= 30
    ]


def test_recovery_threshold_needs_the_value_past_it() -> None:
    ruleset = rules(
        """
  - name: poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    recovery_threshold: 3.5
"""
    )
    values = [2, 3.2, 3.4, 2.5, 3.6]
    assert run(ruleset, series("qualityScore.video", values)) == [
        (0, "firing", 2),
        (40, "resolved", 3.6),
    ]


def test_derived_metric_total_packet_loss_through_parsing() -> None:
    raw = response([sample(0, recvVideoPacketLost=150, sendAudioPacketLost=60)])
    stats = parse_stats(raw, "s", "p")
    ruleset = rules(
        """
  - name: loss
    metric: totalPacketLost
    op: ">"
    threshold: 200
  - name: kbps
    metric: recvVideoKbps
    op: ">"
    threshold: 300
"""
    )
    result = evaluate(ruleset, stats.info, stats.samples, {})
    assert [(t.rule.name, t.value) for t in result.transitions] == [
        ("loss", 210),
        ("kbps", 307.229),
    ]


def test_window_aggregates() -> None:
    values = [100, 300, 500, 200, None, 900]
    expected = {"avg": 400.0, "max": 900.0, "min": 100.0, "count": 5.0}
    for name, value in expected.items():
        ruleset = rules(
            f"""
  - name: w
    metric: averageVideoRtt
    aggregate: {name}
    over: 1m
    op: ">="
    threshold: -1
"""
        )
        result = evaluate(ruleset, ALICE, series("averageVideoRtt", values), {})
        assert result.states["w"].value == value, name  # window (-10s, 50s]: every sample


def test_window_slides_on_sample_time_and_p95_interpolates() -> None:
    ruleset = rules(
        """
  - name: p95
    metric: averageVideoRtt
    aggregate: p95
    over: 30s
    op: ">"
    threshold: 400
"""
    )
    # window (t-30, t]: three samples; at 30s it is [1000, 100, 100] -> p95 = 910
    got = run(ruleset, series("averageVideoRtt", [100, 100, 1000, 100, 100, 100]))
    assert got[0][:2] == (20, "firing")
    assert got[0][2] == pytest.approx(910)
    assert got[1][0:2] == (50, "resolved")  # the 1000 left the window at 50s


def test_rate_is_per_second_increase_with_counter_resets() -> None:
    ruleset = rules(
        """
  - name: r
    metric: recvVideoPacketLost
    aggregate: rate
    over: 1m
    op: ">"
    threshold: 1
"""
    )
    # 0 -> 10 -> 20 -> reset to 5 -> 25: increase 10 + 10 + 5 + 20 = 45 over 40s
    got = run(ruleset, series("recvVideoPacketLost", [0, 10, 20, 5, 25]))
    assert got == [(40, "firing", 45 / 40)]


def test_spike_short_baseline_never_fires_then_fires_with_history() -> None:
    ruleset = rules(
        """
  - name: spike
    metric: recvVideoPacketLost
    spike: {baseline: 1m, factor: 3, min_change: 10}
"""
    )
    early = [0, 1, 50, 0, 0, 0, 0, 0, 0, 50, 1]
    got = run(ruleset, series("recvVideoPacketLost", early))
    assert got == [(90, "firing", 50), (100, "resolved", 1)]  # the 50 at 20s: baseline too short


def test_spike_down_and_factor_alone() -> None:
    ruleset = rules(
        """
  - name: collapse
    metric: recvVideoKbps
    spike: {baseline: 30s, factor: 4, direction: down}
"""
    )
    got = run(ruleset, series("recvVideoKbps", [800, 800, 800, 800, 150, 800]))
    assert got == [(40, "firing", 150), (50, "resolved", 800)]


def test_absent_fires_against_server_time_and_resolves_on_the_next_sample() -> None:
    ruleset = rules("  - name: silent\n    absent: 1m\n")
    samples = series("qualityScore.video", [4, 4])
    first = evaluate(ruleset, ALICE, samples, {}, now=at(50))
    assert first.transitions == []
    later = evaluate(ruleset, ALICE, [], first.states, memory=first.memory, now=at(75))
    (fired,) = later.transitions
    assert (fired.state, fired.time, fired.value) == ("firing", at(70), 60)
    back = evaluate(
        ruleset,
        ALICE,
        [Sample(at(100), {"qualityScore.video": 4})],
        later.states,
        memory=later.memory,
        now=at(100),
    )
    (resolved,) = back.transitions
    assert (resolved.state, resolved.time, resolved.value) == ("resolved", at(100), 90)


def test_absent_does_not_fire_when_the_session_ended_and_resolves_if_firing() -> None:
    ruleset = rules("  - name: silent\n    absent: 1m\n")
    samples = series("qualityScore.video", [4])
    ended = evaluate(ruleset, ALICE, samples, {}, now=at(600), session_ongoing=False)
    assert ended.transitions == []
    firing = evaluate(ruleset, ALICE, samples, {}, now=at(600))
    assert [t.state for t in firing.transitions] == ["firing"]
    over = evaluate(
        ruleset,
        ALICE,
        [],
        firing.states,
        memory=firing.memory,
        now=at(700),
        session_ongoing=False,
    )
    assert [(t.state, t.time) for t in over.transitions] == [("resolved", at(700))]


def test_filters_exact_list_regex_and_exclude() -> None:
    ruleset = rules(
        """
  - name: mobile-india
    metric: qualityScore.audio
    op: "<"
    threshold: 3
    match:
      sdk: [android, ios]
      country: {regex: "Ind.*"}
      org: Reliance Jio
    exclude:
      participant: {regex: "(?i)recorder"}
"""
    )
    bad = series("qualityScore.audio", [2])
    assert [t[1] for t in run(ruleset, bad)] == ["firing"]
    assert run(ruleset, bad, replace(ALICE, sdk_name="js")) == []
    assert run(ruleset, bad, replace(ALICE, country="Indonesia")) == [(0, "firing", 2)]
    assert run(ruleset, bad, replace(ALICE, country="Brazil")) == []
    assert run(ruleset, bad, replace(ALICE, name="Recorder")) == []
    assert run(ruleset, bad, replace(ALICE, org=None)) == []


MEETING = """
  - name: meeting-poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {fraction: 0.5, min_participants: 2, within: 30s}
    summary: "{{ affected }} of {{ watched }} in {{ meeting }}: {{ participants | join(', ') }}"
"""


def _people(n: int, meeting: str = "m") -> list[ParticipantInfo]:
    return [
        ParticipantInfo(session_id="s", participant_id=f"p{i}", meeting_id=meeting, name=f"P{i}")
        for i in range(n)
    ]


def _meeting_round(
    ruleset: RuleSet,
    people: list[ParticipantInfo],
    memories: list[Memory],
    scores: list[float | None],
    when: float,
    states: dict[tuple[str, str], AlertState],
) -> tuple[list[Transition], dict[tuple[str, str], AlertState]]:
    for index, (info, score) in enumerate(zip(people, scores, strict=True)):
        if score is None:
            continue
        sample = Sample(at(when), {"qualityScore.video": score})
        result = evaluate(ruleset, info, [sample], {}, memory=memories[index])
        assert result.transitions == []  # meeting rules never fire per participant
        memories[index] = result.memory
    out = evaluate_meetings(ruleset, list(zip(people, memories, strict=True)), states, now=at(when))
    return out.transitions, out.states


def test_meeting_rule_is_one_alert_for_the_meeting() -> None:
    ruleset = rules(MEETING)
    people = _people(4)
    memories = [Memory() for _ in people]
    states: dict[tuple[str, str], AlertState] = {}
    fired, states = _meeting_round(ruleset, people, memories, [2, 4, 4, 4], 0, states)
    assert fired == []  # 1 of 4
    fired, states = _meeting_round(ruleset, people, memories, [2, 2, 4, 4], 10, states)
    (firing,) = fired
    assert (firing.state, firing.value, firing.watched, firing.affected) == (
        "firing",
        0.5,
        4,
        ("P0", "P1"),
    )
    assert firing.summary == "2 of 4 in m: P0, P1"
    alert = alert_from(firing)
    assert alert.scope == "meeting"
    assert alert.participant_id == ""
    assert alert.who == "2 of 4 watched participants"
    store = Store(":memory:")  # the alert manager notifies it like any other alert
    record_alerts(store, [(alert, firing.rule.notify)])
    AlertManager(store.alert_log, store.silences, AlertingConfig({"console": Policy()})).flush()
    (queued,) = store.outbox.entries()
    assert queued.notification.alerts[0].fingerprint == alert.fingerprint
    # two participants stop reporting: after `within` they no longer count
    fired, states = _meeting_round(ruleset, people, memories, [2, None, 4, 4], 50, states)
    assert [(t.state, t.watched) for t in fired] == [("resolved", 3)]


def test_meeting_count_and_min_participants() -> None:
    ruleset = rules(
        MEETING.replace("fraction: 0.5, min_participants: 2", "count: 2, min_participants: 3")
    )
    people = _people(2)
    memories = [Memory() for _ in people]
    fired, states = _meeting_round(ruleset, people, memories, [2, 2], 0, {})
    assert fired == []  # 2 of 2 bad, but fewer than 3 with data
    people3 = [*people, _people(3)[2]]
    memories.append(Memory())
    fired, states = _meeting_round(ruleset, people3, memories, [2, 2, 4], 10, states)
    assert [(t.state, t.value) for t in fired] == [("firing", 2)]


def test_templates_render_context_and_sparkline_reaches_the_alert() -> None:
    ruleset = rules(
        """
  - name: poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 20s
    labels: {team: video}
    summary: "{{ participant }} on {{ device }}/{{ sdk }} {{ sdk_version }}: {{ value | number }}"
    description: "{{ labels.team }} {{ country }} {{ org }} {{ threshold|number }} {{ sparkline }}"
"""
    )
    result = evaluate(ruleset, ALICE, series("qualityScore.video", [4.5, 4, 2, 1.5, 1]), {})
    (firing,) = result.transitions
    assert firing.summary == "Alice on Chrome/android 0.1.31: 1"
    assert firing.description == "video India Reliance Jio 3 █▇▃▂▁"
    alert = alert_from(firing)
    assert alert.title == firing.summary
    assert alert.sparkline == "█▇▃▂▁"
    assert alert.values == [4.5, 4, 2, 1.5, 1]
    assert alert.to_dict()["sparkline"] == "█▇▃▂▁"


def test_memory_stays_bounded_by_the_longest_window() -> None:
    ruleset = rules(
        """
  - name: w
    metric: averageVideoRtt
    aggregate: avg
    over: 2m
    op: ">"
    threshold: 1000
"""
    )
    samples = series("averageVideoRtt", [100.0] * 2000, step=1)
    result = evaluate(ruleset, ALICE, samples, {})
    points = result.memory.series["averageVideoRtt"]
    assert len(points) == 120  # (t - 2m, t] at one sample a second
    assert points.times[-1] - points.times[0] < duration_micros(timedelta(minutes=2))
