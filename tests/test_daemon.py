"""The real daemon in a subprocess: restart in the middle of a firing alert, clean stops."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from watchdog.sim.simulator import Simulator

from .conftest import POOR_VIDEO, SECRET, write_config
from .helpers import video_series
from .processes import Daemon


def _polls(sim: Simulator) -> int:
    return sum(1 for method, path, _ in sim.requests if path.endswith("/stats"))


def _wait_polls(sim: Simulator, count: int, timeout: float = 15.0) -> None:
    target = _polls(sim) + count
    deadline = time.monotonic() + timeout
    while _polls(sim) < target:
        assert time.monotonic() < deadline, "daemon stopped polling"
        time.sleep(0.05)


def test_restart_mid_firing_neither_realerts_nor_forgets(tmp_path: Path, sim: Simulator) -> None:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 2.0), (50, 2.0), (60, 4.2)]
    sim.add_participant("sess-1", "part-1", samples=video_series(scores), name="Alice")
    config = write_config(tmp_path, sim.url, [("sess-1", "part-1")], POOR_VIDEO)
    sim.advance(40)

    first = Daemon(["run", "--config", str(config)])
    try:
        line = first.wait_for(r"FIRING")
        assert "poor-video" in line
        assert first.stop() == 0
    finally:
        first.kill()
    assert first.out.count(line) == 1

    sim.advance(10)  # one more bad sample while we were down
    second = Daemon(["run", "--config", str(config)])
    try:
        second.wait_for("watching 1 participants", stream="err")
        _wait_polls(sim, 2)
        assert not any("FIRING" in out for out in second.out)
        sim.advance(10)
        resolved = second.wait_for(r"RESOLVED")
        assert "poor-video" in resolved
        assert "Alice (part-1)" in resolved
        assert second.stop(signal.SIGINT) == 0
    finally:
        second.kill()
    assert SECRET not in first.all_output() + second.all_output()


def test_bad_config_exits_2_without_starting(tmp_path: Path, sim: Simulator) -> None:
    config = write_config(tmp_path, sim.url, [("s", "p")], POOR_VIDEO.replace('"<"', '"<<"'))
    daemon = Daemon(["run", "--config", str(config)])
    assert daemon.wait(20) == 2
    assert any("rules.yaml:4: rule 'poor-video': op unknown operator" in e for e in daemon.err)


def test_once_prints_what_fires_and_token_prints_a_jwt(tmp_path: Path, sim: Simulator) -> None:
    sim.add_participant(
        "s", "p", samples=video_series([(0, 2), (10, 2), (20, 2), (30, 2)]), name="Al"
    )
    sim.advance(30)
    config = write_config(tmp_path, sim.url, [("s", "p")], POOR_VIDEO)
    dry = Daemon(["once", "--dry-run", "--config", str(config)])
    assert dry.wait(30) == 0
    assert any(line.startswith("FIRING poor-video: Al (p)") for line in dry.out)
    real = Daemon(["once", "--config", str(config)])
    assert real.wait(30) == 0
    assert sum("FIRING" in line for line in real.out) == 2  # printed once, delivered once
    token = Daemon(["token", "--config", str(config)])
    assert token.wait(30) == 0
    assert token.out[0].count(".") == 2
