"""The pure engine: Prometheus ``for`` semantics on sample times."""

from datetime import timedelta

from watchdog.engine.evaluate import AlertState, evaluate
from watchdog.videosdk.stats import ParticipantInfo, Sample

from .helpers import at, parse_rules

INFO = ParticipantInfo(session_id="s", participant_id="p", meeting_id="m", name="Alice")


def rules(for_: str = "60s", op: str = "<", threshold: float = 3) -> object:
    return parse_rules(
        f"""
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "{op}"
    threshold: {threshold}
    for: {for_}
"""
    )


def series(*points: tuple[float, float | None]) -> list[Sample]:
    out = []
    for seconds, value in points:
        values = {} if value is None else {"qualityScore.video": value}
        out.append(Sample(time=at(seconds), values=values))
    return out


def run(ruleset: object, samples: list[Sample], states: dict[str, AlertState] | None = None):  # type: ignore[no-untyped-def]
    return evaluate(ruleset, INFO, samples, states or {})  # type: ignore[arg-type]


def test_for_pending_then_firing_at_first_sample_at_least_for_after() -> None:
    result = run(rules(), series((0, 4), (10, 2), (40, 2), (69, 2), (70, 2), (80, 2)))
    (firing,) = result.transitions
    assert firing.state == "firing"
    assert firing.time == at(70)  # pending since 10; 70 - 10 = 60 >= for
    assert firing.active_since == at(10)
    assert firing.value == 2
    assert result.states["poor-video"].phase == "firing"


def test_condition_breaking_while_pending_resets_without_transition() -> None:
    result = run(rules(), series((0, 2), (50, 2), (55, 4), (60, 2), (100, 2), (120, 2)))
    (firing,) = result.transitions
    assert firing.time == at(120)  # the second run started at 60
    assert firing.active_since == at(60)


def test_resolves_at_first_sample_where_condition_no_longer_holds() -> None:
    result = run(rules("0s"), series((0, 2), (10, 2.5), (20, 3), (30, 2)))
    assert [(t.state, t.time, t.value) for t in result.transitions] == [
        ("firing", at(0), 2),
        ("resolved", at(20), 3),
        ("firing", at(30), 2),
    ]


def test_samples_without_the_metric_do_not_change_state() -> None:
    result = run(rules("30s"), series((0, 2), (10, None), (20, None), (30, 2), (40, None)))
    (firing,) = result.transitions
    assert firing.time == at(30)
    assert result.states["poor-video"].phase == "firing"


def test_batch_and_one_by_one_agree_and_state_carries_over() -> None:
    samples = series(*[(t * 10, 2.0 if 3 <= t <= 12 else 4.0) for t in range(20)])
    batch = run(rules(), samples).transitions
    states: dict[str, AlertState] = {}
    stepwise = []
    for one in samples:
        result = run(rules(), [one], states)
        states = result.states
        stepwise.extend(result.transitions)
    assert [(t.state, t.time) for t in batch] == [(t.state, t.time) for t in stepwise]
    assert [t.state for t in batch] == ["firing", "resolved"]
    assert batch[0].time == at(90)  # pending from 30, fires at 90
    assert batch[1].time == at(130)


def test_every_operator() -> None:
    cases = {"<": 2, "<=": 3, ">": 4, ">=": 3, "==": 3, "!=": 1}
    for op, value in cases.items():
        result = run(rules("0s", op=op), series((0, value)))
        assert [t.state for t in result.transitions] == ["firing"], op


def test_inputs_are_not_mutated() -> None:
    before = {"poor-video": AlertState("pending", at(0), 2.0)}
    result = run(rules(), series((60, 2)), before)
    assert before["poor-video"].phase == "pending"
    assert result.states["poor-video"].phase == "firing"
    assert result.states["poor-video"].fired_at == at(60)
    assert at(60) - result.states["poor-video"].active_since == timedelta(seconds=60)
