"""The engine's compact series and the memory's stored form: exact windows, old rows still load."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from watchdog.engine.evaluate import SPARK_POINTS, Memory, evaluate
from watchdog.engine.series import Series, duration_micros, micros
from watchdog.videosdk.stats import ParticipantInfo, Sample

from .helpers import T0, at, parse_rules

RULES = parse_rules(
    """
rules:
  - {name: slow, metric: averageVideoRtt, aggregate: avg, over: 30s, op: ">", threshold: 300}
  - {name: poor, metric: qualityScore.video, op: "<", threshold: 3, meeting: {count: 2}}
"""
)
INFO = ParticipantInfo(session_id="s", participant_id="p", meeting_id="m")


def test_times_are_exact_microseconds() -> None:
    assert micros(T0 + timedelta(microseconds=1)) - micros(T0) == 1
    assert micros(T0) == 1_795_514_400_000_000
    assert duration_micros(timedelta(seconds=30)) == 30_000_000


def test_a_window_is_start_exclusive_end_inclusive_to_the_microsecond() -> None:
    start, end = micros(T0), micros(at(30))
    series = Series()
    for index, time in enumerate([start - 1, start, start + 1, end, end + 1]):
        series.append(time, float(index))
    assert list(series.window(start, end)) == [2.0, 3.0]
    times, values = series.span(start, end)
    assert (list(times), list(values)) == ([start + 1, end], [2.0, 3.0])
    assert series.last(2) == (3.0, 4.0)
    assert len(series) == 5


def test_trim_drops_what_the_horizon_passed_but_keeps_the_newest() -> None:
    series = Series()
    for time in range(10):
        series.append(time, float(time))
    series.trim(horizon=6, keep=2)
    assert list(series.times) == [4, 5, 6, 7, 8, 9]
    series.trim(horizon=0, keep=2)
    assert list(series.values) == [8.0, 9.0]


def test_a_copy_is_independent() -> None:
    series = Series()
    series.append(1, 1.0)
    copy = series.copy()
    copy.append(2, 2.0)
    assert (len(series), list(copy.times), list(copy.values)) == (1, [1, 2], [1.0, 2.0])


def evaluated() -> Memory:
    samples = [
        Sample(time=at(seconds), values={"averageVideoRtt": rtt, "qualityScore.video": 4.0})
        for seconds, rtt in [(0, 100.0), (10.125, 110.5), (20, 120.0)]
    ]
    return evaluate(RULES, INFO, samples, {}).memory


def test_a_memory_round_trips_through_json() -> None:
    memory = evaluated()
    assert Memory.from_json(json.loads(json.dumps(memory.to_json()))) == memory
    assert memory.to_json()["series"]["averageVideoRtt"] == [
        [micros(at(0)), micros(at(10.125)), micros(at(20))],
        [100.0, 110.5, 120.0],
    ]


def test_a_memory_stored_in_the_old_form_loads_to_the_same_memory() -> None:
    """Databases written before version 2 hold each point as ``[iso time, value]``."""
    old: dict[str, Any] = {
        "last": "2026-11-24T10:00:20+00:00",
        "first": "2026-11-24T10:00:00+00:00",
        "series": {
            "averageVideoRtt": [
                ["2026-11-24T10:00:00+00:00", 100.0],
                ["2026-11-24T10:00:10.125000+00:00", 110.5],
                ["2026-11-24T10:00:20+00:00", 120],
            ],
            "qualityScore.video": [
                ["2026-11-24T10:00:00+00:00", 4.0],
                ["2026-11-24T10:00:10.125000+00:00", 4.0],
                ["2026-11-24T10:00:20+00:00", 4.0],
            ],
        },
        "conditions": {"poor": ["2026-11-24T10:00:20+00:00", False, 4.0]},
    }
    memory = Memory.from_json(json.loads(json.dumps(old)))
    assert memory == evaluated()
    assert memory.series["averageVideoRtt"].times[1] == micros(at(10.125))


def test_a_damaged_memory_loses_only_what_is_damaged() -> None:
    damaged = {
        "v": 2,
        "last": "not a time",
        "series": {
            # a time that is no integer, a value that is no number, a time out of order
            "a": [[1, "x", 3, 2, 5], [1.0, 2.0, 3.0, 4.0, None]],
            "b": [[1, 2], [1.0]],  # columns of different lengths: the pairs both hold
            "c": "garbage",
            "d": [[2**70], [1.0]],  # beyond 64 bits
        },
        "conditions": {"x": ["bad"]},
    }
    memory = Memory.from_json(damaged)
    assert memory.last_time is None
    assert (list(memory.series["a"].times), list(memory.series["a"].values)) == ([1, 3], [1.0, 3.0])
    assert (list(memory.series["b"].times), list(memory.series["b"].values)) == ([1], [1.0])
    assert len(memory.series["c"]) == len(memory.series["d"]) == 0
    assert memory.conditions == {}
    old = {"series": {"a": [["bad", 1.0], ["2026-11-24T10:00:00Z", "x"], [1, 2, 3], "y"]}}
    assert len(Memory.from_json(old).series["a"]) == 0
    assert Memory.from_json("garbage") == Memory.from_json({"v": 2, "series": []}) == Memory()


def test_memory_keeps_the_window_and_the_sparkline_tail() -> None:
    samples = [Sample(time=at(seconds), values={"averageVideoRtt": 1.0}) for seconds in range(100)]
    points = evaluate(RULES, INFO, samples, {}).memory.series["averageVideoRtt"]
    assert len(points) == max(30, SPARK_POINTS)  # (t - 30s, t] at one sample a second
