"""The running daemon's alert manager: silences added and expired from another process take
effect at once, and reminders come from a timer, not from new samples."""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path

import yaml

from watchdog.sim.simulator import Simulator

from .conftest import POOR_VIDEO, write_config
from .helpers import video_series
from .processes import Daemon
from .sinks import Sink, install_plugin
from .sitedirs import PYTHON, env_with_path


def _polls(sim: Simulator) -> int:
    return sum(1 for _, path, _ in sim.requests if path.endswith("/stats"))


def test_silence_then_expire_then_reminders_in_a_running_daemon(
    tmp_path: Path, sim: Simulator
) -> None:
    env = env_with_path(install_plugin(tmp_path / "site"))
    sim.add_participant(
        "s-1", "p1", samples=video_series([(t, 2.0) for t in range(0, 60, 10)]), meeting_id="m"
    )
    with Sink() as sink:
        config = write_config(tmp_path, sim.url, [("s-1", "p1")], POOR_VIDEO)
        data = yaml.safe_load(config.read_text())
        data["notifiers"] = {"hook": {"type": "sink", "url": sink.url}}
        data["alerting"] = {"repeat_interval": "2s"}
        config.write_text(yaml.safe_dump(data))

        def cli(*args: str) -> str:
            done = subprocess.run(
                [PYTHON, "-m", "watchdog", *args, "--config", str(config)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            return done.stdout.strip()

        silence = cli("silence", "add", "--match", "participant_id=p1", "--comment", "test call")
        daemon = Daemon(["run", "--config", str(config)], env=env)
        try:
            daemon.wait_for("watching 1 participants", stream="err")
            sim.advance(30)  # p1 fires while silenced
            daemon.wait_for(r"alert poor-video firing", stream="err")
            polls, deadline = _polls(sim), time.monotonic() + 15
            while _polls(sim) < polls + 2:
                assert time.monotonic() < deadline, "the daemon stopped polling"
                time.sleep(0.05)
            assert sink.attempts == 0

            cli("silence", "expire", silence)
            sink.wait_for(1)  # told within a tick or two, though no new sample arrived
            first = sink.received[0]
            assert (first["status"], first["repeat"]) == ("firing", False)
            assert first["alerts"][0]["reason"] == (
                f"still firing; silence {silence[:8]} ended ({getpass.getuser()}: test call)"
            )
            sink.wait_for(2, timeout=10)  # and reminded every repeat_interval
            reminder = sink.received[1]
            assert reminder["repeat"] is True
            assert reminder["thread"] == first["thread"]
            assert reminder["alerts"][0]["reason"] is None  # the note goes out once
            assert daemon.stop() == 0
        finally:
            daemon.kill()
