"""The poll hot path's shortcuts change nothing a user sees (benchmarks/ measures their speed)."""

from __future__ import annotations

import sqlite3
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

from watchdog.config.settings import load_config
from watchdog.durations import format_time
from watchdog.runtime.build import build
from watchdog.sim.simulator import Simulator
from watchdog.videosdk.stats import ParticipantStats, parse_stats

from .conftest import POOR_VIDEO, write_config
from .helpers import at, response, sample, video_series


def _seen(stats: ParticipantStats) -> list[tuple[Any, dict[str, float]]]:
    return [(s.time, s.values) for s in stats.samples]


def test_skipping_old_samples_as_text_keeps_what_a_full_parse_would() -> None:
    """Every cursor: the new samples, their values and resolutions equal a full parse's."""
    samples = [sample(t, video=2.0 + t / 100) for t in range(0, 200, 10)]
    samples[7]["time"] = "2026-11-24T12:01:10+02:00"  # other formats take the slow path
    samples[12]["time"] = format_time(at(120)).replace(".000Z", ".000400Z")
    raw = response(samples)
    raw["resolutionUsage"] = [
        {"180": 0.1, "360": 0.2 + (t % 30) / 100, "720": 0.3, "time": format_time(at(t + 4))}
        for t in range(0, 200, 10)
    ]
    full = parse_stats(raw, "s", "p")
    assert len(full.samples) == 20
    cursors = [s.time for s in full.samples] + [at(75), at(120.0002), at(-1)]
    for cursor in cursors:
        incremental = parse_stats(raw, "s", "p", after=cursor)
        assert _seen(incremental) == [(t, v) for t, v in _seen(full) if t > cursor], (
            f"after {cursor}"
        )


def test_first_sight_evaluates_only_the_lookback() -> None:
    raw = response(video_series([(t, 4.0) for t in range(0, 3600, 10)]))
    stats = parse_stats(raw, "s", "p", lookback=timedelta(minutes=5))
    assert stats.samples[0].time == at(3590 - 300)
    assert len(stats.samples) == 31
    assert len(parse_stats(raw, "s", "p").samples) == 360  # replay and tests: everything
    newest = raw["stats"][-1]
    newest["time"] = at(3600).astimezone(timezone(timedelta(hours=2))).isoformat()
    moved = parse_stats(raw, "s", "p", lookback=timedelta(minutes=5))
    assert moved.samples[0].time == at(3600 - 300)  # the newest in another format counts


def test_a_poll_that_moved_nothing_writes_nothing(tmp_path: Path, sim: Simulator) -> None:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 4.0)]
    sim.add_participant("s1", "p1", samples=video_series(scores))
    runtime = build(load_config(str(write_config(tmp_path, sim.url, [("s1", "p1")], POOR_VIDEO))))
    watcher = sqlite3.connect(tmp_path / "state.db")
    try:
        sim.advance(30)
        assert runtime.poller.cycle().samples == 4
        version = watcher.execute("PRAGMA data_version").fetchone()[0]
        assert runtime.poller.cycle().samples == 0  # nothing new: no transaction
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
        sim.advance(10)
        report = runtime.poller.cycle()
        assert [t.state for t in report.transitions] == ["resolved"]
        assert watcher.execute("PRAGMA data_version").fetchone()[0] != version
        row = watcher.execute("SELECT last_sample_time FROM cursors").fetchone()
        assert row[0] == format_time(at(40))
    finally:
        watcher.close()
        runtime.close()


def test_a_crash_before_the_cycle_wrote_its_results_changes_no_alert(
    tmp_path: Path, sim: Simulator
) -> None:
    """Polls that raised nothing are written after the cycle: a crash before that loses
    cursor progress only, and the restart reaches the same alert, sent once."""
    scores = [(0, 4.0), (10, 4.0), (20, 2.0), (30, 2.0), (40, 2.0), (50, 2.0)]
    sim.add_participant("s1", "p1", samples=video_series(scores))
    crashing, steady = tmp_path / "crashing", tmp_path / "steady"
    crashing.mkdir()
    steady.mkdir()
    config = {
        name: load_config(str(write_config(path, sim.url, [("s1", "p1")], POOR_VIDEO)))
        for name, path in (("crashing", crashing), ("steady", steady))
    }
    first, reference = build(config["crashing"]), build(config["steady"])
    try:
        sim.advance(10)
        assert first.poller.cycle().transitions == reference.poller.cycle().transitions == []
        sim.advance(20)  # 20 s and 30 s are poor: pending, not yet firing (for: 20s)
        (target,) = first.watchlist.targets()
        assert first.poller.poll(target) == ([], 2)  # polled, results deferred ...
        first.poller.close()
        first.client.close()
        first.store._db.close()  # ... and the process dies before the cycle writes them
        assert reference.poller.cycle().transitions == []
        restarted = build(config["crashing"])
        try:
            assert restarted.store.polls.load_cursors() == {("s1", "p1"): at(10)}  # progress lost
            assert restarted.poller.participants.cursor(("s1", "p1")) == at(10)
            sim.advance(20)
            again = restarted.poller.cycle().transitions
            expected = reference.poller.cycle().transitions
            assert (
                [(t.rule.name, t.state, t.time, t.active_since) for t in again]
                == [(t.rule.name, t.state, t.time, t.active_since) for t in expected]
                == [("poor-video", "firing", at(40), at(20))]
            )
            assert [a.alert.status for a in restarted.store.alert_log.active_alerts()] == ["firing"]
        finally:
            restarted.close()
    finally:
        reference.close()
