"""Flap control beyond ``for``: ``samples: {need, of}`` and ``warmup``, on sample times.

In the engine alone, through ``check`` (what is refused, at its line, exit 2), through the
rule engine's stored memory (a restart keeps the counts; a previous release's memory
loads), and in the daemon's poll path against the simulator on its manual clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from watchdog.cli.main import main
from watchdog.config.settings import Config
from watchdog.engine import backtest
from watchdog.engine.evaluate import Memory, evaluate, lookback
from watchdog.engine.rules import MAX_SAMPLES, RuleSet
from watchdog.runtime.build import build
from watchdog.sim.simulator import Simulator
from watchdog.videosdk.stats import ParticipantInfo, Sample

from .helpers import T0, at, parse_rules, response, video_series

MakeConfig = Callable[..., Config]
ALICE = ParticipantInfo(session_id="s", participant_id="p1", meeting_id="m", name="Alice")
VIDEO = "qualityScore.video"


def rules(text: str) -> RuleSet:
    return parse_rules("rules:\n" + text)


def series(values: Sequence[float | None], metric: str = VIDEO, step: float = 10) -> list[Sample]:
    return [
        Sample(time=at(i * step), values={} if v is None else {metric: v})
        for i, v in enumerate(values)
    ]


def run(ruleset: RuleSet, samples: list[Sample]) -> list[tuple[float, str, str, float]]:
    result = evaluate(ruleset, ALICE, samples, {})
    return [
        ((t.time - T0).total_seconds(), t.rule.name, t.state, t.value) for t in result.transitions
    ]


THREE_OF_FIVE = """
  - name: flaky
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 3, of: 5}
"""


# -- samples: {need, of} ----------------------------------------------------------------


def test_fires_at_need_of_the_last_of_and_clears_below_need() -> None:
    # bad at 0, 10, 30: the third bad of five fires though a good one broke the run
    values = [2, 2, 4, 2, 4, 4, 2, 4, 4, 4]
    assert run(rules(THREE_OF_FIVE), series(values)) == [
        (30, "flaky", "firing", 2),
        (50, "flaky", "resolved", 4),  # the last five: 2 4 2 4 4 -> two bad
    ]


def test_for_would_never_fire_on_the_same_flapping_samples() -> None:
    held = rules(
        """
  - {name: held, metric: qualityScore.video, op: "<", threshold: 3, for: 30s}
"""
    )
    flapping = [2, 2, 4] * 6  # two bad of every three samples, never 30 s unbroken
    assert run(held, series(flapping)) == []
    assert run(rules(THREE_OF_FIVE), series(flapping))[0] == (30, "flaky", "firing", 2)


def test_fewer_samples_than_of_count_as_they_are() -> None:
    """The window fills from the first sample: three bad of three fire."""
    assert run(rules(THREE_OF_FIVE), series([2, 2, 2])) == [(20, "flaky", "firing", 2)]


def test_samples_without_the_metric_neither_count_nor_break_the_count() -> None:
    gappy = series([2, None, 2, None, None, 2, 4])
    assert run(rules(THREE_OF_FIVE), gappy) == [(50, "flaky", "firing", 2)]


def test_keep_firing_for_holds_a_counted_alert_after_it_clears() -> None:
    ruleset = rules(THREE_OF_FIVE.rstrip("\n") + "\n    keep_firing_for: 30s\n")
    # fires at 20; from 50 fewer than three of five are bad; resolved 30 s later at 80
    values = [2, 2, 2, 4, 4, 4, 4, 4, 4, 4]
    assert run(ruleset, series(values)) == [
        (20, "flaky", "firing", 2),
        (80, "flaky", "resolved", 4),
    ]


def test_recovery_threshold_judges_each_sample_while_firing() -> None:
    ruleset = rules(THREE_OF_FIVE.rstrip("\n") + "\n    recovery_threshold: 3.5\n")
    # while firing, 3.2 still counts as bad: five of them keep it firing, 3.6s clear it
    values = [2, 2, 2, 3.2, 3.2, 3.2, 3.6, 3.6, 3.6]
    assert run(ruleset, series(values)) == [
        (20, "flaky", "firing", 2),
        (80, "flaky", "resolved", 3.6),
    ]


def test_aggregates_and_spikes_count_their_own_verdicts() -> None:
    ruleset = rules(
        """
  - name: rtt
    metric: averageVideoRtt
    aggregate: max
    over: 10s
    op: ">"
    threshold: 400
    samples: {need: 2, of: 3}
"""
    )
    values = [500, 100, 100, 500, 100, 500, 100, 100, 100]
    assert run(ruleset, series(values, "averageVideoRtt", step=20)) == [
        (100, "rtt", "firing", 500),
        (120, "rtt", "resolved", 100),
    ]


def test_the_counts_are_bounded_and_forgotten_with_the_rule() -> None:
    samples = series([2] * 200)
    result = evaluate(rules(THREE_OF_FIVE), ALICE, samples, {})
    assert result.memory.outcomes == {"flaky": 0b11111}  # the last five, no more
    plain = rules('  - {name: flaky, metric: qualityScore.video, op: "<", threshold: 3}\n')
    later = evaluate(plain, ALICE, series([2] * 201)[-1:], {}, memory=result.memory)
    assert later.memory.outcomes is None
    assert "outcomes" not in later.memory.to_json()  # a rule without samples stores nothing


def test_a_reload_that_shrinks_of_counts_only_the_newest() -> None:
    result = evaluate(rules(THREE_OF_FIVE), ALICE, series([2, 2, 4, 4]), {})
    assert result.transitions == []
    smaller = rules(THREE_OF_FIVE.replace("need: 3, of: 5", "need: 2, of: 2"))
    after = evaluate(smaller, ALICE, series([2, 2, 4, 4, 2, 2]), {}, memory=result.memory)
    assert [(t.time, t.state) for t in after.transitions] == [(at(50), "firing")]


# -- warmup ---------------------------------------------------------------------------------


def test_warmup_ignores_the_first_samples_of_a_participant() -> None:
    ruleset = rules(
        """
  - {name: poor, metric: qualityScore.video, op: "<", threshold: 3, warmup: 20s}
"""
    )
    # 0 and 10 are inside the warm-up; the sample 20 s after the first is judged
    assert run(ruleset, series([1, 1, 4, 2, 4])) == [
        (30, "poor", "firing", 2),
        (40, "poor", "resolved", 4),
    ]
    assert run(ruleset, series([1, 1, 2])) == [(20, "poor", "firing", 2)]


def test_warmup_counts_from_the_first_sample_seen_across_evaluations() -> None:
    ruleset = rules(
        """
  - {name: poor, metric: qualityScore.video, op: "<", threshold: 3, warmup: 30s}
"""
    )
    first = evaluate(ruleset, ALICE, series([4]), {})  # first seen at 0, healthy
    assert first.memory.first_time == T0
    later = series([4, 2, 2, 2, 2])[1:]
    result = evaluate(ruleset, ALICE, later, first.states, memory=first.memory)
    assert [(t.time, t.state) for t in result.transitions] == [(at(30), "firing")]


def test_windows_leave_the_warm_up_out() -> None:
    ruleset = rules(
        """
  - name: avg
    metric: qualityScore.video
    aggregate: avg
    over: 1m
    op: "<"
    threshold: 3
    warmup: 20s
"""
    )
    # the 0.5s of the warm-up would pull the average below 3 for a minute
    assert run(ruleset, series([0.5, 0.5, 4, 3, 3])) == []


def test_a_spike_baseline_starts_after_the_warm_up() -> None:
    ruleset = rules(
        """
  - name: loss
    metric: recvVideoPacketLost
    spike: {baseline: 30s, min_change: 20}
    warmup: 20s
"""
    )
    # the warm-up's high values would make the later 30 look like no spike
    values = [90, 90, 0, 0, 0, 0, 30]
    assert run(ruleset, series(values, "recvVideoPacketLost")) == [
        (60, "loss", "firing", 30),
    ]


def test_warmup_keeps_a_participant_out_of_a_meeting_rule_while_it_warms_up() -> None:
    ruleset = rules(
        """
  - name: room
    metric: qualityScore.video
    op: "<"
    threshold: 3
    warmup: 20s
    meeting: {count: 1}
"""
    )
    warm = evaluate(ruleset, ALICE, series([1, 1]), {})
    assert warm.memory.conditions == {}
    judged = evaluate(ruleset, ALICE, series([1, 1, 1])[2:], {}, memory=warm.memory)
    assert judged.memory.conditions["room"].holds


def test_lookback_covers_the_warm_up() -> None:
    ruleset = rules(
        """
  - {name: poor, metric: qualityScore.video, op: "<", threshold: 3, for: 2m, warmup: 1m}
"""
    )
    assert lookback(ruleset) == timedelta(minutes=3)


# -- memory -----------------------------------------------------------------------------


def test_the_counts_survive_a_json_round_trip() -> None:
    result = evaluate(rules(THREE_OF_FIVE), ALICE, series([2, 4, 2]), {})
    stored = json.loads(json.dumps(result.memory.to_json()))
    assert stored["outcomes"] == {"flaky": 0b101}
    assert Memory.from_json(stored) == result.memory


def test_a_memory_written_by_the_previous_release_loads() -> None:
    """Version 2 exactly as the release before flap control wrote it (its ``to_json`` after
    three samples of 2): no ``outcomes``; a counting rule starts counting at the next sample."""
    previous = (
        '{"v": 2, "last": "2026-11-24T10:00:20+00:00", "first": "2026-11-24T10:00:00+00:00", '
        '"series": {"qualityScore.video": [[1795514400000000, 1795514410000000, '
        "1795514420000000], [2.0, 2.0, 2.0]]}, "
        '"conditions": {"room": ["2026-11-24T10:00:20+00:00", true, 2.0]}}'
    )
    memory = Memory.from_json(json.loads(previous))
    assert (memory.first_time, memory.last_time, memory.outcomes) == (T0, at(20), None)
    assert memory.conditions["room"].holds
    result = evaluate(rules(THREE_OF_FIVE), ALICE, series([2] * 6)[3:], {}, memory=memory)
    assert [(t.time, t.state) for t in result.transitions] == [(at(50), "firing")]


@pytest.mark.parametrize(
    "stored",
    [-1, True, "31", 2.5, None, [1], 2**400],
    ids=["negative", "bool", "text", "float", "null", "list", "huge"],
)
def test_damaged_counts_are_dropped_or_bounded(stored: object) -> None:
    memory = Memory.from_json({"v": 2, "outcomes": {"flaky": stored, "ok": 3}})
    assert memory.outcomes is not None
    assert memory.outcomes.get("ok") == 3
    assert memory.outcomes.get("flaky", 0) < 2**MAX_SAMPLES


# -- check --------------------------------------------------------------------------------


BAD = """\
rules:
  - name: both
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 30s
    samples: {need: 3, of: 5}
  - name: too-many
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 3, of: 500}
  - name: need-more-than-of
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 6, of: 5}
  - name: need-zero
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 0, of: 5}
  - name: meeting-counted
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 3, of: 5}
    meeting: {count: 2}
  - name: absent-warm
    absent: 1m
    warmup: 20s
  - name: warm-forever
    metric: qualityScore.video
    op: "<"
    threshold: 3
    warmup: 2d
"""


def test_check_refuses_each_misuse_at_its_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BAD)
    assert main(["check", "--rules", str(path)]) == 2
    err = capsys.readouterr().err
    expected = [
        (
            7,
            "rule 'both': samples and for are alternatives: keep samples to fire on 3 bad of "
            "the last 5 samples",
        ),
        (
            12,
            "rule 'too-many': samples.of counts at most 50 samples; for a longer stretch use "
            "an aggregate over a window",
        ),
        (17, "rule 'need-more-than-of': samples need (6) is more than of (5)"),
        (22, "rule 'need-zero': samples.need Input should be greater than or equal to 1"),
        (27, "rule 'meeting-counted': samples has no meaning in a meeting rule"),
        (31, "rule 'absent-warm': warmup has no meaning in an absent rule"),
        (36, "rule 'warm-forever': warmup"),
    ]
    for line, message in expected:
        assert f"{path}:{line}: {message}" in err, (line, err)
    assert "or for to need the condition unbroken for that long" in err


def test_the_schema_knows_samples_and_warmup(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "rules"]) == 0
    schema = json.loads(capsys.readouterr().out)
    rule = schema["$defs"]["Rule"]["properties"]
    assert "warmup" in rule
    counted = schema["$defs"]["SampleCount"]
    assert counted["properties"]["of"]["maximum"] == MAX_SAMPLES
    assert counted["properties"]["need"]["minimum"] == 1


# -- the daemon -------------------------------------------------------------------------------

DAEMON_RULES = """\
rules:
  - name: flaky-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 2, of: 3}
    warmup: 20s
"""


def test_the_poll_path_warms_up_counts_across_a_restart_and_clears(
    sim: Simulator, config_for: MakeConfig
) -> None:
    """0 and 10 (bad) are the warm-up; from 20 on two bad of three fire. The bad sample at
    50 is counted before a restart and still counts after it, so 70 fires."""
    scores = [(0, 1), (10, 1), (20, 2), (30, 4), (40, 4), (50, 2), (60, 4), (70, 2), (80, 4)]
    scores += [(90, 4)]
    sim.add_participant("s", "p", name="Alice", samples=video_series(scores))
    config = config_for([("s", "p")], rules=DAEMON_RULES)
    runtime = build(config)
    try:
        sim.advance(55)
        report = runtime.poller.cycle()
        assert (report.samples, report.transitions) == (6, [])  # the bad 0, 10 were ignored
    finally:
        runtime.close()
    runtime = build(config)  # a restart: the counts come back from the state database
    try:
        sim.advance(20)
        (fired,) = runtime.poller.cycle().transitions
        assert (fired.state, fired.time, fired.value) == ("firing", at(70), 2)
        sim.advance(10)
        (cleared,) = runtime.poller.cycle().transitions
        assert (cleared.state, cleared.time, cleared.reason) == ("resolved", at(80), None)
    finally:
        runtime.close()


# -- replay and test-rules ------------------------------------------------------------------

FLAP_RULES = """\
rules:
  - name: flaky-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    samples: {need: 2, of: 3}
    warmup: 20s
  - name: room-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {count: 2}
"""


def test_replay_counts_warms_up_and_resolves_those_who_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(FLAP_RULES)
    degraded = video_series([(0, 1), (10, 1), (20, 2), (30, 4), (40, 2)])
    healthy = video_series([(0, 4), (10, 4), (20, 4), (30, 4), (40, 4), (50, 4)])
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps([response(degraded), response(healthy, participant="bob")]))

    assert main(["replay", "--rules", str(rules_file), str(stats)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # the 1s of the warm-up count for the meeting rule (no warm-up) but not flaky-video
    assert [(line["time"][11:19], line["rule"], line["state"]) for line in lines] == [
        ("10:00:40", "flaky-video", "firing"),
    ]
    assert "reason" not in lines[0]

    assert main(["replay", "--left", "--rules", str(rules_file), str(stats)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["time"][11:19], line["state"], line.get("reason")) for line in lines] == [
        ("10:00:40", "firing", None),
        ("10:00:40", "resolved", "left while degraded"),  # at her last sample
    ]
    assert lines[1]["participantId"] == "part-1"
    assert lines[1]["value"] == 2


TESTED = (
    FLAP_RULES
    + """
tests:
  - name: alice leaves while degraded, bob stays
    interval: 10s
    input:
      - {participant: alice, series: {qualityScore.video: "1 1 2 4 2"}, left: true}
      - {participant: bob, series: {qualityScore.video: "4 4 2 4 2 4 4 4"}}
    expect:
      - {at: 20s, rule: room-video, meeting: test-meeting, state: firing}
      - {at: 30s, rule: room-video, meeting: test-meeting, state: resolved}
      # at 40s both are bad again, but alice has left: the meeting counts bob alone
      - {at: 40s, rule: flaky-video, participant: alice, state: firing, value: 2}
      - {at: 40s, rule: flaky-video, participant: alice, state: resolved,
         reason: left while degraded}
      - {at: 40s, rule: flaky-video, participant: bob, state: firing, value: 2}
      - {at: 50s, rule: flaky-video, participant: bob, state: resolved}
"""
)


def test_test_rules_runs_flap_control_and_departures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(TESTED)
    assert main(["test-rules", str(path)]) == 0, capsys.readouterr().out
    wrong = TESTED.replace("reason: left while degraded", "reason: the session ended")
    path.write_text(wrong)
    assert main(["test-rules", str(path)]) == 1
    out = capsys.readouterr().out
    assert "-      40s  flaky-video  alice  resolved  (the session ended)" in out
    assert "+      40s  flaky-video  alice  resolved  value=2  (left while degraded)" in out


@pytest.mark.parametrize("with_meeting_rule", [False, True], ids=["alone", "with-meeting-rule"])
def test_someone_who_left_is_not_absent_afterwards(with_meeting_rule: bool) -> None:
    """Silence after leaving is no alert (the daemon stops watching); those who stay are."""
    text = "  - {name: gone-quiet, absent: 1m}\n"
    if with_meeting_rule:
        text += (
            '  - {name: room, metric: qualityScore.video, op: "<", threshold: 0,\n'
            "     meeting: {count: 9}}\n"
        )
    bob = ParticipantInfo(session_id="s", participant_id="p2", meeting_id="m", name="Bob")
    produced = backtest.run(
        rules(text), [(ALICE, series([4, 4])), (bob, series([4, 4]))], now=at(300), left=[0]
    )
    assert [(t.info.participant_id, t.rule.name, t.state, t.reason) for t in produced] == [
        ("p2", "gone-quiet", "firing", None)
    ]
