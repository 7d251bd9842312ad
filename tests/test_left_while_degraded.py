"""A participant who leaves while an alert fires: resolved "left while degraded", end to end.

Distinct from a recovery (a sample shows it: no reason) and from a session that ended
("the session ended"). The daemon runs in-process against the simulator on its manual
clock, with the real Slack notifier talking to the Slack-like server and the real webhook
notifier posting Alertmanager's JSON to a receiver on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watchdog.alerts import LEFT_WHILE_DEGRADED, SESSION_ENDED
from watchdog.config.settings import Config
from watchdog.runtime.build import Runtime, build
from watchdog.sim.simulator import Simulator
from watchdog.testing import HttpReceiver

from .helpers import video_series
from .slackapi import TOKEN, FakeSlack

MakeConfig = Callable[..., Config]
ROOM = "abcd-efgh-ijkl"


def _runtime(config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver) -> Runtime:
    notifiers = {
        "oncall": {
            "type": "slack",
            "token": TOKEN,
            "channel": "#alerts",
            "base_url": slack.api_url,
        },
        "incidents": {"type": "webhook", "url": hook.url + "/am"},
    }
    watch = {"rooms": [ROOM], "discovery_interval": "30s"}
    return build(config_for([], watch=watch, notifiers=notifiers))


def _deliver(runtime: Runtime) -> None:
    runtime.manager.flush()
    assert runtime.dispatcher.drain(10) == 0


def _alerts(hook: HttpReceiver) -> list[dict[str, Any]]:
    return [alert for request in hook.requests for alert in request.json()["alerts"]]


def _fire(sim: Simulator, runtime: Runtime, slack: FakeSlack, hook: HttpReceiver) -> None:
    """Alice's video degrades; the alert fires in Slack and at the webhook."""
    assert runtime.discovery is not None
    runtime.discovery.run()
    sim.advance(120)
    (firing,) = runtime.poller.cycle().transitions
    assert (firing.info.participant_id, firing.state) == ("alice", "firing")
    _deliver(runtime)
    (message,) = slack.top_level()
    assert "FIRING" in message.text
    assert [a["status"] for a in _alerts(hook)] == ["firing"]


def test_leaving_while_an_alert_fires_resolves_left_while_degraded_in_slack_and_webhook(
    sim: Simulator, config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0, scenario="video-degradation")
    sim.join("sess-1", "bob", name="Bob", at=0, scenario="healthy")
    runtime = _runtime(config_for, slack, hook)
    try:
        _fire(sim, runtime, slack, hook)
        sim.advance(5)
        sim.leave("sess-1", "alice")  # the session goes on with Bob
        sim.advance(30)
        assert runtime.discovery is not None
        assert runtime.discovery.run().left == 1
        runtime.poller.cycle()  # her final poll; then her alert resolves
        _deliver(runtime)
    finally:
        runtime.close()

    firing, resolved = _alerts(hook)
    assert resolved["status"] == "resolved"
    assert resolved["fingerprint"] == firing["fingerprint"]
    assert resolved["labels"]["participant_id"] == "alice"
    assert resolved["annotations"]["resolved_reason"] == LEFT_WHILE_DEGRADED
    assert resolved["endsAt"] != "0001-01-01T00:00:00Z"

    (message,) = slack.top_level()  # edited in place, the resolution told in its thread
    assert message.text.startswith("✅ RESOLVED")
    assert LEFT_WHILE_DEGRADED in message.text
    (reply,) = slack.replies(message.ts)
    assert f"{LEFT_WHILE_DEGRADED}; last `qualityScore.video = " in reply.text
    assert not slack.violations


def test_a_session_that_ends_keeps_its_own_reason(
    sim: Simulator, config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0, scenario="video-degradation")
    runtime = _runtime(config_for, slack, hook)
    try:
        _fire(sim, runtime, slack, hook)
        sim.advance(5)
        sim.end_session("sess-1")
        sim.advance(30)
        assert runtime.discovery is not None
        assert runtime.discovery.run().left == 1
        runtime.poller.cycle()
        _deliver(runtime)
    finally:
        runtime.close()
    _, resolved = _alerts(hook)
    assert resolved["annotations"]["resolved_reason"] == SESSION_ENDED
    (message,) = slack.top_level()
    assert SESSION_ENDED in message.text
    assert LEFT_WHILE_DEGRADED not in message.text


def test_a_recovery_has_no_reason(
    sim: Simulator, config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    scores = [(t, 2.0) for t in range(0, 130, 10)] + [(t, 4.2) for t in range(130, 200, 10)]
    sim.join("sess-1", "alice", name="Alice", at=0, samples=video_series(scores))
    runtime = _runtime(config_for, slack, hook)
    try:
        _fire(sim, runtime, slack, hook)
        sim.advance(20)  # the sample at 130 s shows the recovery
        (recovered,) = runtime.poller.cycle().transitions
        assert (recovered.state, recovered.reason) == ("resolved", None)
        _deliver(runtime)
    finally:
        runtime.close()
    _, resolved = _alerts(hook)
    assert resolved["status"] == "resolved"
    assert "resolved_reason" not in resolved["annotations"]
    (message,) = slack.top_level()
    assert message.text.startswith("✅ RESOLVED")
    assert LEFT_WHILE_DEGRADED not in message.text
