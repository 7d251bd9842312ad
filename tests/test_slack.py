"""The Slack notifier against a local server that answers like Slack."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import watchdog_slack

from watchdog.alerts import Alert
from watchdog.config.problems import ConfigError
from watchdog.delivery.dispatcher import Dispatcher
from watchdog.notifiers import DeliveryError
from watchdog.state.store import Store
from watchdog.testing import (
    NotifierContract,
    PluginTestHost,
    Reply,
    TLSCertificates,
    make_alert,
    make_notification,
    resolved,
)

from .helpers import enqueue
from .slackapi import CHANNEL_ID, TOKEN, WEBHOOK_PATH, FakeSlack


def bot_config(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {
        "type": "slack",
        "token": TOKEN,
        "channel": "#alerts",
        "base_url": slack.api_url,
        **extra,
    }


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_slack, "slack")
    return notifier_host


class TestSlackBotContract(NotifierContract):
    notifier_type = "slack"
    plugin = watchdog_slack

    @pytest.fixture
    def notifier_config(self, slack: FakeSlack) -> dict[str, Any]:
        return {"token": TOKEN, "channel": "#alerts", "base_url": slack.api_url}

    @pytest.fixture
    def unreachable_config(self, unreachable_url: str) -> dict[str, Any]:
        return {"token": TOKEN, "channel": "#alerts", "base_url": unreachable_url + "/api/"}

    @pytest.fixture
    def delivered(self, slack: FakeSlack) -> Callable[[], int]:
        return lambda: len(slack.messages) + sum(len(m.edits) for m in slack.messages.values())


class TestSlackWebhookContract(NotifierContract):
    notifier_type = "slack"
    plugin = watchdog_slack

    @pytest.fixture
    def notifier_config(self, slack: FakeSlack) -> dict[str, Any]:
        return {"webhook_url": slack.webhook_url}

    @pytest.fixture
    def unreachable_config(self, unreachable_url: str) -> dict[str, Any]:
        return {"webhook_url": unreachable_url + WEBHOOK_PATH}

    @pytest.fixture
    def delivered(self, slack: FakeSlack) -> Callable[[], int]:
        return lambda: len(slack.webhook_posts)


def _block_text(message: dict[str, Any] | list[dict[str, Any]]) -> str:
    return json.dumps(message, ensure_ascii=False)


def test_firing_message_says_everything_an_engineer_needs(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build(bot_config(slack))
    notifier.send(make_notification(make_alert(severity="critical")))
    (message,) = slack.top_level()
    assert message.channel == CHANNEL_ID
    assert message.text.startswith(
        "🔴 FIRING [critical] poor-video: Alice in meeting abcd-efgh-ijkl"
    )
    assert "qualityScore.video = 2.41 (threshold &lt; 3)" in message.text
    (attachment,) = message.attachments
    assert attachment["color"] == "#E01E5A"
    blocks = _block_text(attachment["blocks"])
    assert attachment["blocks"][0]["type"] == "header"
    assert "🔴 FIRING · poor-video" in blocks
    for fact in ("*Alice* (`part-1`)", "`abcd-efgh-ijkl`", "threshold &lt; 3", "<!date^", "sess-1"):
        assert fact in blocks, fact


def test_resolve_updates_the_original_and_replies_in_its_thread(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build(bot_config(slack))
    alert = make_alert()
    firing = make_notification(alert)
    notifier.send(firing)
    notifier.send(make_notification(alert, thread=firing.thread, repeat=True))
    notifier.send(make_notification(resolved(alert), thread=firing.thread))

    (original,) = slack.top_level()  # one message in the channel, however long it fired
    assert len(original.edits) == 1
    assert original.text.startswith("✅ RESOLVED [warning] poor-video")
    assert original.attachments[0]["color"] == "#2EB67D"
    assert "lasted 6m" in _block_text(original.attachments)
    reminder, done = slack.replies(original.ts)
    assert reminder.text.startswith("🔁 *Still firing*")
    assert done.text.startswith("✅ *Resolved*")
    assert "back to 4.2 (threshold &lt; 3)" in done.text
    assert host.states["test"].get(firing.thread) is None  # nothing left to remember


def test_thread_survives_a_restart_through_the_state_database(
    tmp_path: Path, slack: FakeSlack
) -> None:
    alert = make_alert()
    firing = make_notification(alert)
    for notification in (firing, make_notification(resolved(alert), thread=firing.thread)):
        store = Store(str(tmp_path / "state.db"))  # a fresh process each time
        host = PluginTestHost()
        host.add(watchdog_slack, "slack")
        notifier = host.host.build(
            {"oncall": bot_config(slack)}, store.notifier_memory.for_notifier
        )["oncall"]
        notifier.send(notification)
        store.close()
    (original,) = slack.top_level()
    assert original.text.startswith("✅ RESOLVED")
    assert len(slack.replies(original.ts)) == 1


def test_grouped_alerts_are_one_message_updated_in_place(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build(bot_config(slack))
    people = [("Alice", "critical"), ("Bob", "warning"), ("Chandra", "info")]
    group = make_notification(  # one rule in one meeting: the default group_by
        *(
            make_alert(participant_id=f"part-{i}", participant_name=name, severity=severity)
            for i, (name, severity) in enumerate(people)
        )
    )
    notifier.send(group)
    (message,) = slack.top_level()
    assert message.attachments[0]["color"] == "#E01E5A"  # the worst severity firing
    text = _block_text(message.attachments)
    for name in ("Alice", "Bob", "Chandra"):
        assert name in text
    assert "3 alerts in meeting abcd-efgh-ijkl" in text
    over = make_notification(*(resolved(a) for a in group.alerts), thread=group.thread)
    notifier.send(over)
    assert message.text.startswith("✅ RESOLVED 3 alerts in meeting abcd-efgh-ijkl")
    (reply,) = slack.replies(message.ts)
    assert reply.text.count("✅") == 4  # the heading and one line per alert


def test_sparkline_is_shown_when_the_alert_has_one(host: PluginTestHost, slack: FakeSlack) -> None:
    alert = _with_sparkline(make_alert(), "▇▆▅▃▂▁")
    host.build(bot_config(slack)).send(make_notification(alert))
    assert "▇▆▅▃▂▁" in _block_text(slack.top_level()[0].attachments)


def _with_sparkline(alert: Alert, line: str) -> Alert:
    """The trend feature adds ``Alert.sparkline``; until it lands, a subclass carries it."""
    if "sparkline" in set(getattr(Alert, "__dataclass_fields__", {})):
        return replace(alert, sparkline=line)  # type: ignore[call-arg,unused-ignore]

    @dataclass(frozen=True, slots=True)
    class WithSparkline(Alert):
        sparkline: str | None = None

    values = {f: getattr(alert, f) for f in Alert.__dataclass_fields__}
    return WithSparkline(**values, sparkline=line)


def test_rate_limit_becomes_a_retry_after(host: PluginTestHost, slack: FakeSlack) -> None:
    notifier = host.build(bot_config(slack))
    slack.receiver.reply(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert caught.value.retry_after == 7
    assert not caught.value.permanent
    notifier.send(make_notification())  # the retry goes through
    assert len(slack.top_level()) == 1


def test_incoming_webhook_rate_limit_and_errors(host: PluginTestHost, slack: FakeSlack) -> None:
    notifier = host.build({"type": "slack", "webhook_url": slack.webhook_url})
    slack.receiver.reply(Reply(429, "rate_limited", {"Retry-After": "3"}))
    with pytest.raises(DeliveryError) as limited:
        notifier.send(make_notification())
    assert limited.value.retry_after == 3
    slack.receiver.reply(Reply(404, "no_service"))
    with pytest.raises(DeliveryError) as gone:
        notifier.send(make_notification())
    assert gone.value.permanent
    assert "no_service" in str(gone.value)


def test_webhook_mode_posts_the_resolve_as_a_new_message(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build({"type": "slack", "webhook_url": slack.webhook_url})
    alert = make_alert()
    firing = make_notification(alert)
    notifier.send(firing)
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    first, second = slack.webhook_posts
    assert first["text"].startswith("🟠 FIRING [warning] poor-video")
    assert second["text"].startswith("✅ RESOLVED [warning] poor-video")
    assert second["attachments"][0]["color"] == "#2EB67D"


@pytest.mark.parametrize(
    ("error", "permanent"),
    [("channel_not_found", True), ("invalid_auth", True), ("internal_error", False)],
)
def test_slack_errors_are_permanent_only_when_retrying_cannot_help(
    host: PluginTestHost, slack: FakeSlack, error: str, permanent: bool
) -> None:
    notifier = host.build(bot_config(slack))
    slack.receiver.reply(Reply(200, {"ok": False, "error": error}))
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert caught.value.permanent is permanent
    assert error in str(caught.value)


def test_mentions_and_a_deleted_original(host: PluginTestHost, slack: FakeSlack) -> None:
    notifier = host.build(bot_config(slack, mentions={"critical": "<!here>"}))
    alert = make_alert(severity="critical")
    firing = make_notification(alert)
    notifier.send(firing)
    original = slack.top_level()[0]
    assert original.text.startswith("<!here> 🔴 FIRING")
    del slack.messages[original.ts]  # someone deleted it: the resolve must still arrive
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    (fresh,) = slack.top_level()
    assert fresh.text.startswith("✅ RESOLVED [critical] poor-video")


def test_untrusted_certificate_is_refused_and_ca_file_trusts_it(
    host: PluginTestHost, tls_certificates: TLSCertificates
) -> None:
    with FakeSlack(tls=tls_certificates.server_context) as secure:
        untrusted = host.build(bot_config(secure), "untrusted")
        with pytest.raises(DeliveryError) as caught:
            untrusted.send(make_notification())
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        assert not secure.messages
        trusted = host.build(bot_config(secure, ca_file=tls_certificates.ca_file), "trusted")
        trusted.send(make_notification())
        assert len(secure.messages) == 1


def test_config_errors_name_the_problem(host: PluginTestHost) -> None:
    cases = {
        "slack: set either token and channel (bot mode) or webhook_url": {"type": "slack"},
        "slack: channel is required with a token": {"type": "slack", "token": TOKEN},
        "slack.base_url: must start with https://": {
            "type": "slack",
            "token": TOKEN,
            "channel": "#a",
            "base_url": "slack.com",
        },
    }
    for expected, config in cases.items():
        with pytest.raises(ConfigError) as caught:
            host.build(config, "slack")
        problems = [p.message for p in caught.value.problems]
        assert any(expected.split(": ", 1)[1] in p for p in problems), problems
        assert TOKEN not in str(caught.value)


def test_webhook_url_never_reaches_the_logs(
    host: PluginTestHost, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host.build({"type": "slack", "webhook_url": slack.webhook_url}).send(make_notification())
    assert slack.webhook_posts
    assert "Sending a request" in caplog.text  # slack-sdk did log the request...
    assert WEBHOOK_PATH not in caplog.text  # ...with the URL masked


def test_outbox_delivers_after_the_rate_limit_in_order(tmp_path: Path, slack: FakeSlack) -> None:
    """Slack says wait: the outbox waits that long, then firing and resolve go in order."""
    store = Store(str(tmp_path / "state.db"))
    host = PluginTestHost()
    host.add(watchdog_slack, "slack")
    notifiers = host.host.build({"oncall": bot_config(slack)}, store.notifier_memory.for_notifier)
    dispatcher = Dispatcher(store.outbox, notifiers)
    alert = make_alert()
    firing = make_notification(alert, notifier="oncall")
    done = make_notification(resolved(alert), notifier="oncall", thread=firing.thread)
    enqueue(store, [("firing", firing), ("resolved", done)])
    slack.receiver.reply(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}))
    started = time.monotonic()
    assert dispatcher.drain(5) == 2  # rate-limited: both wait for the Retry-After
    assert not slack.messages  # nothing got through, and the resolve did not overtake
    deadline = started + 10
    while store.outbox.depth() and time.monotonic() < deadline:
        dispatcher.drain(1)
        time.sleep(0.05)
    assert store.outbox.depth() == 0
    assert time.monotonic() - started >= 1.0  # Retry-After was honoured
    (message,) = slack.top_level()
    assert message.text.startswith("✅ RESOLVED")
    assert len(slack.replies(message.ts)) == 1
    store.close()


def test_a_departure_resolve_says_why_and_the_last_value(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build(bot_config(slack))
    alert = make_alert()
    firing = make_notification(alert)
    notifier.send(firing)
    left = resolved(alert, reason="participant left the session")
    notifier.send(make_notification(left, thread=firing.thread))
    (original,) = slack.top_level()
    assert original.text == (
        "✅ RESOLVED [warning] poor-video: Alice in meeting abcd-efgh-ijkl: "
        "participant left the session; last qualityScore.video = 2.41 (threshold &lt; 3)"
    )
    (reply,) = slack.replies(original.ts)
    assert "participant left the session; last `qualityScore.video = 2.41" in reply.text
