"""Defensive parsing: a bad sample or field is dropped and counted, never fatal."""

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchdog.obs.telemetry import SAMPLE_ERRORS
from watchdog.videosdk.stats import (
    MAX_TEXT_CHARS,
    StatsShapeError,
    _partition,
    clip_text,
    parse_stats,
)

from .helpers import at, response, sample


def _count(reason: str) -> float:
    return float(SAMPLE_ERRORS.labels(reason)._value.get())


def test_documented_example_parses_with_context() -> None:
    stats = parse_stats(response([sample(0, video=3.46)]), "x", "y")
    assert stats.info.session_id == "sess-1"
    assert stats.info.name == "Alice"
    assert stats.info.device == "Chrome"
    assert stats.info.sdk_name == "react"
    assert stats.info.org == "BSNL"
    (only,) = stats.samples
    assert only.time == at(0)
    assert only.values["qualityScore.video"] == 3.46
    assert only.values["averageRecvVideoBitrate"] == 307229


def test_only_samples_after_the_cursor_sorted_and_deduplicated() -> None:
    raw = response([sample(20), sample(0), sample(10), sample(20, video=1.0)])
    stats = parse_stats(raw, "s", "p", after=at(0))
    assert [s.time for s in stats.samples] == [at(10), at(20)]


def test_bad_samples_and_fields_are_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    bad_time_before = _count("bad_time")
    bad_field_before = _count("bad_field")
    raw = response(
        [
            {"recvVideoPacketLost": 3},  # no time
            {"time": "yesterday"},
            "not a sample",  # type: ignore[list-item]
            sample(10, video="high"),  # type: ignore[arg-type]
            sample(20, averageVideoRtt=float("nan"), averageAudioRtt=None),
            sample(30, qualityScore=[1, 2]),
        ]
    )
    with caplog.at_level(logging.WARNING):
        stats = parse_stats(raw, "s", "p")
    assert [s.time for s in stats.samples] == [at(10), at(20), at(30)]
    assert "qualityScore.video" not in stats.samples[0].values
    assert stats.samples[0].values["qualityScore.audio"] == 4.4
    assert "averageVideoRtt" not in stats.samples[1].values
    assert "averageAudioRtt" not in stats.samples[1].values
    assert "qualityScore.audio" not in stats.samples[2].values
    assert stats.dropped == 3
    assert _count("bad_time") - bad_time_before == 3
    assert _count("bad_field") - bad_field_before == 5
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "dropped 3 stats samples" in messages
    assert "qualityScore.video" in messages
    assert all(getattr(r, "participant_id", None) == "part-1" for r in caplog.records)


def test_booleans_are_not_numbers() -> None:
    stats = parse_stats(response([sample(0, recvVideoPacketLost=True)]), "s", "p")
    assert "recvVideoPacketLost" not in stats.samples[0].values


def test_missing_stats_list_is_empty_and_wrong_shapes_raise() -> None:
    assert parse_stats({"sessionId": "s"}, "s", "p").samples == ()
    with pytest.raises(StatsShapeError):
        parse_stats([1, 2], "s", "p")
    with pytest.raises(StatsShapeError):
        parse_stats({"stats": {"time": 1}}, "s", "p")


def test_undocumented_numeric_fields_are_kept() -> None:
    stats = parse_stats(response([sample(0, newMetric=7, codec="vp8")]), "s", "p")
    assert stats.samples[0].values["newMetric"] == 7
    assert "codec" not in stats.samples[0].values


def test_naive_and_offset_times_become_utc() -> None:
    raw = response([sample(0) | {"time": "2026-11-24T12:00:00+02:00"}])
    assert parse_stats(raw, "s", "p").samples[0].time == at(0)


def test_derived_metrics_and_resolution_from_the_nearest_usage_entry() -> None:
    raw = response([sample(0), sample(10), sample(20)])
    raw["resolutionUsage"] = [
        {"180": 0, "360": 1, "720": 0, "time": "2026-11-24T10:00:00.247Z"},  # near 0s
        {"180": 0.2, "360": 0.1, "720": 0.7, "time": "2026-11-24T10:00:16.000Z"},  # near 20s
        {"720": "lots", "time": "2026-11-24T10:00:10.000Z"},  # malformed: ignored
        {"360": 1},  # no time: ignored
        "garbage",
    ]
    stats = parse_stats(raw, "s", "p")
    assert [s.values.get("resolution") for s in stats.samples] == [360.0, None, 720.0]
    first = stats.samples[0].values
    assert first["totalPacketLost"] == 0
    assert first["recvVideoKbps"] == 307.229
    later = parse_stats(raw, "s", "p", after=at(10))
    assert [s.values.get("resolution") for s in later.samples] == [720.0]


def test_a_participants_own_text_is_cut_to_a_bound() -> None:
    """Participants choose their names: a megabyte one costs 256 characters everywhere."""
    raw = response([sample(0)])
    raw["participantName"] = "a" * 1_000_000 + "!"
    raw["deviceInfo"] = {"deviceName": "x" * 5_000}
    info = parse_stats(raw, "x", "y").info
    assert info.name is not None
    assert len(info.name) == MAX_TEXT_CHARS
    assert info.name.endswith("\u2026")
    assert info.device is not None
    assert len(info.device) == MAX_TEXT_CHARS
    assert clip_text("Alice") == "Alice"
    assert clip_text(None) is None


# -- the history split every poll runs: the fast path for ordered histories agrees with
# -- the entry-by-entry rules on anything a response can hold

_TIMES = st.one_of(
    st.builds(lambda s: f"2026-11-30T10:{s // 60:02d}:{s % 60:02d}.000Z", st.integers(0, 3599)),
    st.sampled_from(["2026-11-30T10:00:05Z", "2026-11-30T10:00:05.0000Z", "0", "", "~"]),
    st.none(),
    st.integers(),
)
_ENTRIES = st.one_of(
    st.builds(lambda t: {"time": t}, _TIMES),
    st.just({}),
    st.just([1]),
    st.just("x"),
)


def _by_entry(items: list[Any], cutoff: str) -> tuple[str, list[tuple[Any, Any]]]:
    """The rule as documented: an API-format time at or before the cutoff is old."""
    newest, rest = "", []
    for item in items:
        value = item.get("time") if isinstance(item, dict) else None
        if (
            isinstance(value, str)
            and len(value) == 24
            and (value[4], value[10], value[19], value[23]) == ("-", "T", ".", "Z")
            and value <= cutoff
        ):
            newest = max(newest, value)
        else:
            rest.append((item, value))
    return newest, rest


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_ENTRIES, max_size=30),
    st.booleans(),
    st.integers(0, 3599),
)
def test_history_split_agrees_with_the_entry_by_entry_rule(
    items: list[Any], ordered: bool, second: int
) -> None:
    if ordered:  # the API's usual shape, which takes the fast path
        items = sorted(
            (
                {"time": f"2026-11-30T10:{s // 60:02d}:{s % 60:02d}.000Z"}
                for s in range(0, 3600, 97)
            ),
            key=lambda item: item["time"],
        )
    cutoff = f"2026-11-30T10:{second // 60:02d}:{second % 60:02d}.000Z"
    assert _partition(items, cutoff) == _by_entry(items, cutoff)
