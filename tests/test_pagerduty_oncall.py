"""PagerDuty in the on-call loop, end to end: the running daemon's alert manager,
escalator and notifiers on an injected clock (as tests/test_escalation.py drives them),
the real PagerDuty notifier against the local Events API v2 server, acknowledgements
from the CLI and from Slack's button over Socket Mode.

What an on-call engineer sees in PagerDuty is read from the server's alerts, keyed by
``dedup_key`` (the alert's fingerprint) as PagerDuty keys them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import watchdog_pagerduty
import yaml

from watchdog.alerts import Alert
from watchdog.testing import make_alert, resolved

from .helpers import record_alerts
from .pagerdutyapi import ROUTING_KEY, FakePagerDuty
from .slackapi import APP_TOKEN, TOKEN, FakeSlack
from .socketmode import FakeSocketMode
from .test_escalation import ALICE, Clock, OnCallDaemon, _cli
from .test_slack_actions import click_payload

PAGERDUTY = (watchdog_pagerduty, "pagerduty")


@pytest.fixture
def socket(slack: FakeSlack) -> Iterator[FakeSocketMode]:
    """The Socket Mode peer the Slack notifier connects to: where the clicks come from."""
    with FakeSocketMode() as peer:
        slack.socket_url = peer.url
        yield peer


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[FakePagerDuty]:
    """One server for the module: each test's alert has its own fingerprint."""
    with FakePagerDuty() as server:
        yield server


def config_file(
    tmp_path: Path,
    slack: FakeSlack,
    pagerduty: FakePagerDuty,
    route: dict[str, Any],
    **entry: Any,
) -> Path:
    """Slack with buttons and a PagerDuty entry (``entry``: more of its options)."""
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: poor-video, metric: qualityScore.video, op: '<', threshold: 3}\n"
    )
    data: dict[str, Any] = {
        "videosdk": {"api_key": "k", "secret_key": "s"},
        "rules": ["rules.yaml"],
        "state": {"url": str(tmp_path / "state.db")},
        "notifiers": {
            "slack": {
                "type": "slack",
                "token": TOKEN,
                "channel": "#alerts",
                "base_url": slack.api_url,
                "app_token": APP_TOKEN,
            },
            "pd": {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": pagerduty.url, **entry},
        },
        "alerting": {
            "group_by": ["..."],
            "routes": [{"match": ["alertname=poor-video"], **route}],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def alert_of(test: str, clock: Clock) -> Alert:
    """An alert no other test of the module sends (the PagerDuty server is shared)."""
    return make_alert(participant_id=f"p-{test}", starts_at=clock.now - timedelta(minutes=1))


def pd_actions(pagerduty: FakePagerDuty, alert: Alert) -> list[str]:
    return [action for action, key in pagerduty.actions() if key == alert.fingerprint]


def now_clock() -> Clock:
    """The injected clock at the wall clock's time: the CLI acknowledges at the real now."""
    clock = Clock()
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


def acknowledge_in_slack(slack: FakeSlack, socket: FakeSocketMode) -> None:
    """Alice clicks Acknowledge on the alert's message."""
    [original] = slack.top_level()
    socket.send("interactive", click_payload(slack, original, "watchdog_ack"))


# -- 1. acknowledged from the CLI or from Slack: PagerDuty's alert is acknowledged --------


@pytest.mark.parametrize("where", ["cli", "slack"])
def test_an_acknowledgement_acknowledges_the_pagerduty_alert_and_the_resolve_resolves_it(
    tmp_path: Path, slack: FakeSlack, socket: FakeSocketMode, pagerduty: FakePagerDuty, where: str
) -> None:
    clock = now_clock()
    path = config_file(tmp_path, slack, pagerduty, {"notify": ["slack", "pd"]})
    daemon = OnCallDaemon(path, clock, PAGERDUTY)
    alert = alert_of(f"ack-{where}", clock)
    try:
        record_alerts(daemon.store, [(alert, [])])
        assert {n.notifier for n in daemon.deliver()} == {"slack", "pd"}
        assert pd_actions(pagerduty, alert) == ["trigger"]
        assert pagerduty.alerts[alert.fingerprint].status == "triggered"

        clock.advance(seconds=30)
        if where == "cli":
            done = _cli(path, "ack", alert.fingerprint[:8], "--by", "alice")
            assert done.returncode == 0, done.stderr
            owner = "alice"
        else:
            acknowledge_in_slack(slack, socket)
            owner = f"alice ({ALICE})"
        notices = daemon.deliver()
        assert [(n.notifier, n.event, n.actor) for n in notices] == [
            ("pd", "acknowledged", owner)
        ]  # Slack shows it on its own message: no notice of its own
        assert pd_actions(pagerduty, alert) == ["trigger", "acknowledge"]
        assert pagerduty.alerts[alert.fingerprint].status == "acknowledged"
        clock.advance(minutes=5)
        assert daemon.deliver() == []  # told once

        record_alerts(daemon.store, [(resolved(alert, timedelta(minutes=10)), [])])
        clock.advance(seconds=1)
        assert {(n.notifier, n.status) for n in daemon.deliver()} == {
            ("slack", "resolved"),
            ("pd", "resolved"),
        }
        assert pd_actions(pagerduty, alert) == ["trigger", "acknowledge", "resolve"]
        assert pagerduty.alerts[alert.fingerprint].status == "resolved"
    finally:
        daemon.close()


@pytest.mark.parametrize("where", ["cli", "slack"])
def test_send_acknowledged_false_keeps_acknowledgements_from_pagerduty(
    tmp_path: Path, slack: FakeSlack, socket: FakeSocketMode, pagerduty: FakePagerDuty, where: str
) -> None:
    clock = now_clock()
    path = config_file(
        tmp_path, slack, pagerduty, {"notify": ["slack", "pd"]}, send_acknowledged=False
    )
    daemon = OnCallDaemon(path, clock, PAGERDUTY)
    alert = alert_of(f"no-ack-{where}", clock)
    try:
        record_alerts(daemon.store, [(alert, [])])
        daemon.deliver()
        if where == "cli":
            assert _cli(path, "ack", alert.fingerprint, "--by", "alice").returncode == 0
        else:
            acknowledge_in_slack(slack, socket)
        clock.advance(seconds=30)
        assert daemon.deliver() == []
        assert [a.fingerprint for a in daemon.store.silences.acks()] == [alert.fingerprint]
        assert pagerduty.alerts[alert.fingerprint].status == "triggered"

        record_alerts(daemon.store, [(resolved(alert), [])])
        daemon.deliver()
        assert pd_actions(pagerduty, alert) == ["trigger", "resolve"]
        assert pagerduty.alerts[alert.fingerprint].status == "resolved"
    finally:
        daemon.close()


# -- 2. PagerDuty as an escalation step ---------------------------------------------------

LADDER = {"notify": ["slack"], "escalation": {"steps": [{"after": "5m", "notify": ["pd"]}]}}


def test_pagerduty_is_paged_at_the_steps_delay_and_hears_the_ack_and_the_resolve(
    tmp_path: Path, slack: FakeSlack, socket: FakeSocketMode, pagerduty: FakePagerDuty
) -> None:
    clock = now_clock()
    daemon = OnCallDaemon(config_file(tmp_path, slack, pagerduty, LADDER), clock, PAGERDUTY)
    alert = alert_of("ladder", clock)
    try:
        record_alerts(daemon.store, [(alert, [])])
        [first] = daemon.deliver()
        assert first.notifier == "slack"
        clock.advance(minutes=4, seconds=59)
        assert daemon.deliver() == []
        assert alert.fingerprint not in pagerduty.alerts  # not before the 5-minute mark

        clock.advance(seconds=1)
        [paged] = daemon.deliver()
        assert (paged.notifier, paged.status) == ("pd", "firing")
        assert pd_actions(pagerduty, alert) == ["trigger"]
        summary = pagerduty.alerts[alert.fingerprint].payload["summary"]
        assert summary.endswith("(escalated (step 1): unacknowledged for 5m)")
        clock.advance(minutes=30)
        assert daemon.deliver() == []  # one step, no repeat_last_every: paged once

        # acknowledged after the page: the paged PagerDuty hears it, though no route names it
        acknowledge_in_slack(slack, socket)
        assert [(n.notifier, n.event) for n in daemon.deliver()] == [("pd", "acknowledged")]
        assert pagerduty.alerts[alert.fingerprint].status == "acknowledged"

        record_alerts(daemon.store, [(resolved(alert, timedelta(hours=1)), [])])
        clock.advance(seconds=1)
        assert {n.notifier for n in daemon.deliver()} == {"slack", "pd"}
        assert pd_actions(pagerduty, alert) == ["trigger", "acknowledge", "resolve"]
        assert pagerduty.alerts[alert.fingerprint].status == "resolved"
        assert daemon.store.escalations.ladders() == {}
    finally:
        daemon.close()


@pytest.mark.parametrize("where", ["cli", "slack"])
def test_acknowledged_before_the_step_pagerduty_never_hears_of_it(
    tmp_path: Path, slack: FakeSlack, socket: FakeSocketMode, pagerduty: FakePagerDuty, where: str
) -> None:
    """The ladder stops while somebody owns the alert; a notifier only a step names is told
    nothing of an alert it was never paged for: no trigger, acknowledge or resolve."""
    clock = now_clock()
    path = config_file(tmp_path, slack, pagerduty, LADDER)
    daemon = OnCallDaemon(path, clock, PAGERDUTY)
    alert = alert_of(f"acked-first-{where}", clock)
    try:
        record_alerts(daemon.store, [(alert, [])])
        daemon.deliver()
        clock.advance(minutes=4)
        if where == "cli":
            assert _cli(path, "ack", alert.fingerprint, "--by", "alice").returncode == 0
        else:
            acknowledge_in_slack(slack, socket)
        assert daemon.deliver() == []
        clock.advance(hours=2)
        assert daemon.deliver() == []
        [row] = _escalations(path)
        assert row["steps"] == []
        assert row["ackedBy"]

        record_alerts(daemon.store, [(resolved(alert, timedelta(hours=2)), [])])
        clock.advance(seconds=1)
        assert [n.notifier for n in daemon.deliver()] == ["slack"]
        assert pd_actions(pagerduty, alert) == []
        assert alert.fingerprint not in pagerduty.alerts
    finally:
        daemon.close()


def _escalations(path: Path) -> list[dict[str, Any]]:
    listed = _cli(path, "escalations", "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    return rows
