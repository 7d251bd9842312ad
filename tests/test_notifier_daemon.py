"""The daemon with the real Slack and webhook notifiers: fire, thread, resolve, no secrets."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from watchdog.sim.simulator import Simulator
from watchdog.testing import HttpReceiver

from .conftest import POOR_VIDEO, SECRET, write_config
from .helpers import video_series
from .processes import Daemon
from .slackapi import TOKEN, FakeSlack


def _until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_daemon_threads_slack_and_posts_alertmanager_json(tmp_path: Path, sim: Simulator) -> None:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 4.2)]
    sim.add_participant("sess-1", "part-1", samples=video_series(scores), name="Alice")
    sim.advance(30)
    with FakeSlack() as slack, HttpReceiver() as hook:
        config = write_config(
            tmp_path,
            sim.url,
            [("sess-1", "part-1")],
            POOR_VIDEO,
            notifiers={
                "oncall": {"type": "slack", "channel": "#alerts", "base_url": slack.api_url},
                "incidents": {"type": "webhook", "url": hook.url + "/am"},
            },
            log={"level": "debug"},
        )
        daemon = Daemon(
            ["run", "--config", str(config)], env={"WATCHDOG_NOTIFIERS__ONCALL__TOKEN": TOKEN}
        )
        try:
            _until(lambda: slack.top_level() and hook.requests)
            (message,) = slack.top_level()
            assert message.text.startswith("🟠 FIRING [warning] poor-video: Alice")
            assert hook.requests[0].json()["alerts"][0]["status"] == "firing"
            sim.advance(10)
            _until(lambda: message.edits and len(hook.requests) == 2)
            assert message.text.startswith("✅ RESOLVED [warning] poor-video: Alice")
            _until(lambda: slack.replies(message.ts))
            assert hook.requests[1].json()["status"] == "resolved"
            assert daemon.stop() == 0
        finally:
            daemon.kill()
    output = daemon.all_output()
    assert "delivered firing notification for poor-video to oncall" in output
    assert TOKEN not in output
    assert SECRET not in output
