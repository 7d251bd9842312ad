"""Escalation across three instances on one real PostgreSQL: a ``kill -9`` of the leader
in the middle of a ladder neither skips nor repeats a step."""

from __future__ import annotations

import json
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from watchdog.cluster.coordinator import instances
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.testing import HttpReceiver, Received, Reply, free_port

from .conftest import API_KEY, SECRET, write_config
from .helpers import T0, video_series
from .processes import Daemon

RULE = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: critical
"""
STEPS, DELAY = 3, 2.5  # a step every 2.5 s: time to kill the leader between two of them


def _wait(check: Any, what: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what() if callable(what) else what}"
        time.sleep(0.05)


def _steps(accepted: list[tuple[float, Received]]) -> list[tuple[float, str]]:
    """(arrival, step) of every escalation the pager accepted, in order of arrival."""
    out = []
    for at, request in accepted:
        body = json.loads(request.body)
        if body["receiver"] == "pager":
            out.append((at, body["notification_reason"].split(")")[0] + ")"))
    return out


def test_kill_9_of_the_leader_mid_ladder_neither_skips_nor_repeats_a_step(
    tmp_path: Path, postgres_url: str
) -> None:
    accepted: list[tuple[float, Received]] = []

    def answer(request: Received) -> Reply:
        accepted.append((time.monotonic(), request))
        return Reply(200, "ok")

    with (
        Simulator(
            api_key=API_KEY, secret=SECRET, manual_clock=True, start=T0, sample_period=10.0
        ) as sim,
        HttpReceiver(answer) as receiver,
    ):
        sim.add_participant(
            "s",
            "p1",
            samples=video_series([(t, 2.0 if t >= 30 else 4.2) for t in range(0, 300, 10)]),
        )
        config = write_config(tmp_path, sim.url, [("s", "p1")], RULE)
        data: dict[str, Any] = yaml.safe_load(config.read_text())
        data["state"] = {"url": postgres_url, "lease": "3s"}
        data["notifiers"] = {
            "channel": {"type": "webhook", "url": receiver.url},
            "pager": {"type": "webhook", "url": receiver.url},
        }
        data["delivery"] = {"timeout": "2s", "max_backoff": "1s"}
        data["alerting"] = {
            "group_by": ["..."],
            "repeat_interval": "1h",
            "routes": [
                {
                    "match": ["alertname=poor-video"],
                    "notify": ["channel"],
                    "escalation": {
                        "steps": [{"after": f"{DELAY:g}s", "notify": ["pager"]}] * STEPS
                    },
                }
            ],
        }
        config.write_text(yaml.safe_dump(data))
        daemons = [
            Daemon(
                ["run", "--config", str(config)],
                env={"WATCHDOG_HTTP__LISTEN": f"127.0.0.1:{free_port()}"},
            )
            for _ in range(3)
        ]
        store = Store(postgres_url)
        try:
            for daemon in daemons:
                daemon.wait_for("sharing", stream="err")
            sim.advance(40)  # p1 goes bad: the alert fires, its ladder starts
            _wait(lambda: len(_steps(accepted)) >= 1, "the first step")
            _wait(lambda: store.outbox.depth() == 0, "the first step's row delivered")
            leader = next(r for r in instances(store) if r.roles == "leader")
            victim = next(d for d in daemons if str(d.proc.pid) == str(leader.pid))
            victim.kill()  # kill -9 of the leader between two steps
            _wait(
                lambda: len(_steps(accepted)) >= STEPS,
                lambda: (
                    f"every step: {_steps(accepted)} | "
                    + " | ".join(d.all_output()[-2000:] for d in daemons if d is not victim)
                ),
                timeout=40,
            )
            time.sleep(1.5 * DELAY)  # time for a repeated step to show up
            steps = _steps(accepted)
            assert Counter(name for _, name in steps) == {
                f"escalated (step {n})": 1 for n in range(1, STEPS + 1)
            }
            assert [name for _, name in steps] == sorted(name for _, name in steps)
            gaps = [b - a for (a, _), (b, _) in pairwise(steps)]
            assert all(gap >= DELAY - 1.0 for gap in gaps), gaps  # none early, none skipped
            ladder = next(iter(store.escalations.ladders().values()))
            assert [r.step for r in ladder.steps] == list(range(STEPS))
            channel = [r for _, r in accepted if json.loads(r.body)["receiver"] == "channel"]
            assert len(channel) == 1  # the first notification, once
        finally:
            store.close()
            for daemon in daemons:
                daemon.kill()
