"""``kill -9`` in the middle of a delivery, then a restart: nothing lost, one duplicate at most.

The real daemon runs as a subprocess against the simulator (manual clock) and delivers to a
real HTTP sink through a notifier plugin installed as a distribution, found through the
entry-point group like any outside plugin.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import yaml

from watchdog.sim.simulator import Simulator

from .conftest import POOR_VIDEO, SECRET, write_config
from .helpers import video_series
from .processes import Daemon
from .sinks import Sink, install_plugin
from .sitedirs import PYTHON, env_with_path


def test_kill_9_mid_delivery_then_restart_delivers_everything(
    tmp_path: Path, sim: Simulator
) -> None:
    env = env_with_path(install_plugin(tmp_path / "site"))
    bad, good = 2.0, 4.2
    p1 = video_series([(0, good), (10, bad), (20, bad), (30, bad), (40, bad), (50, bad)])
    p1 += video_series([(60, good), (70, good)])
    sim.add_participant("s-1", "p1", samples=p1, name="Alice", meeting_id="m-1")
    p2 = video_series([(t, bad) for t in range(0, 80, 10)])
    sim.add_participant("s-1", "p2", samples=p2, name="Bob", meeting_id="m-2")
    with Sink() as sink:
        sink.script.append("hang")  # the first delivery is accepted, then never answered
        config = write_config(
            tmp_path,
            sim.url,
            [("s-1", "p1"), ("s-1", "p2")],
            POOR_VIDEO,
            delivery={"timeout": "30s", "max_backoff": "200ms"},
        )
        data = yaml.safe_load(config.read_text())
        data["notifiers"] = {"hook": {"type": "sink", "url": sink.url}}
        config.write_text(yaml.safe_dump(data))
        sim.advance(40)  # both fire

        first = Daemon(["run", "--config", str(config)], env=env)
        try:
            first.wait_for(r"delivered firing notification", stream="err")
            sink.wait_for(2, what="attempts")
            assert sink.hanging == 1
            first.proc.kill()  # SIGKILL while the other delivery is in flight
            first.proc.wait(timeout=10)
        finally:
            first.kill()
        sink.release()  # the hung request completes against a dead client
        sink.wait_for(2)

        sim.advance(30)  # p1 recovers while the daemon is down
        second = Daemon(["run", "--config", str(config)], env=env)
        try:
            sink.wait_for(4)
            second.wait_for(r"delivered resolved notification", stream="err")
            assert second.stop() == 0
        finally:
            second.kill()

    ids = Counter(n["id"] for n in sink.received)
    assert len(ids) == 3  # p1 firing, p2 firing, p1 resolved
    assert sorted(ids.values()) == [1, 1, 2]  # the one in flight at the crash, twice
    p1_told = [n["status"] for n in sink.received if n["alerts"][0]["participant_id"] == "p1"]
    assert p1_told[0] == "firing"
    assert p1_told[-1] == "resolved"
    assert all(n["thread"] for n in sink.received)

    listing = subprocess.run(
        [PYTHON, "-m", "watchdog", "outbox", "list", "--json", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(listing.stdout) == []
    assert SECRET not in first.all_output() + second.all_output()
