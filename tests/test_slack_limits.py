"""Every Slack message fits Slack's limits, whatever the alerts say; one Slack refuses anyway
is re-sent as plain text. Checked with slack-sdk's own Block Kit models (in the test server,
tests/slackapi.py, for every test that posts to it) and the limits those models miss."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import watchdog_slack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.models.blocks import Block
from watchdog_slack import meeting
from watchdog_slack.blocks import escape, message, plain, reply
from watchdog_slack.buttons import interactive_blocks
from watchdog_slack.limits import MESSAGE_TEXT, fit, size

from watchdog.alerts import Alert, Notification, meeting_changes
from watchdog.notifiers import AlertView, DeliveryError
from watchdog.testing import (
    PluginTestHost,
    Reply,
    grouped_notification,
    make_alert,
    make_notification,
    resolved,
)

from .helpers import T0
from .hostile import HUGE, STORM, hostile_notifications
from .slackapi import TOKEN, FakeSlack, block_problems, message_problems


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_slack, "slack")
    return notifier_host


def bot(slack: FakeSlack) -> dict[str, Any]:
    return {"type": "slack", "token": TOKEN, "channel": "#alerts", "base_url": slack.api_url}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str = "Ack", value: str = "v", action_id: str = "a") -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }


MRKDWN = {"type": "mrkdwn", "text": "x"}

# Limits tests/slackapi.py leaves to slack-sdk's models: the models must refuse each.
MODEL_CHECKED = {
    "section text 3,001": _section("x" * 3001),
    "11 section fields": {"type": "section", "fields": [MRKDWN] * 11},
    "header 151": {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}},
    "11 context elements": {"type": "context", "elements": [MRKDWN] * 11},
    "26 actions elements": {"type": "actions", "elements": [_button()] * 26},
    "button text 76": {"type": "actions", "elements": [_button(text="x" * 76)]},
    "button value 2,001": {"type": "actions", "elements": [_button(value="x" * 2001)]},
    "action_id 256": {"type": "actions", "elements": [_button(action_id="x" * 256)]},
    "block_id 256": {**_section("x"), "block_id": "x" * 256},
}


@pytest.mark.parametrize("block", MODEL_CHECKED.values(), ids=MODEL_CHECKED.keys())
def test_slack_sdk_models_enforce_the_limits_the_test_server_relies_on(
    block: dict[str, Any],
) -> None:
    parsed = Block.parse(block)
    assert parsed is not None
    with pytest.raises(SlackObjectFormationError):
        parsed.to_dict()  # validate_json(), then the same for what it holds (its buttons)
    assert block_problems([block])


EMOJI_SECTION = _section("🎥" * 1501)  # 1,501 code points, 3,002 UTF-16 units
# Limits the models do not check: the test server must, and the models indeed let them by.
MODEL_UNCHECKED = {
    "field text 2,001": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}],
    "context text 3,001": [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 3001}]}
    ],
    "51 blocks": [_section("x")] * 51,
    "a block_id twice": [{**_section("x"), "block_id": "b"}, {**_section("y"), "block_id": "b"}],
    "3,002 UTF-16 units": [EMOJI_SECTION],
}


@pytest.mark.parametrize("blocks", MODEL_UNCHECKED.values(), ids=MODEL_UNCHECKED.keys())
def test_the_test_server_checks_what_the_models_miss(blocks: list[dict[str, Any]]) -> None:
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
        assert parsed.to_dict() == block  # slack-sdk alone would let it through...
    assert block_problems(blocks)  # ...the test server does not


def test_the_test_server_answers_like_slack_and_fails_the_test() -> None:
    too_long = [{"color": "#2EB67D", "blocks": [_section("x" * 3001)]}]
    with FakeSlack() as server:
        client = WebClient(token=TOKEN, base_url=server.api_url)
        with pytest.raises(SlackApiError) as caught:
            client.chat_postMessage(channel="#alerts", text="x", attachments=too_long)
        recorded = list(server.violations)
        server.violations.clear()  # seen; this server may stop quietly
    assert caught.value.response["error"] == "invalid_blocks"
    assert recorded[0].startswith("chat.postMessage: attachments[0].blocks[0]: text attribute")
    assert not server.messages
    failing = FakeSlack().__enter__()
    failing.violations.append("chat.postMessage: too long")
    with pytest.raises(AssertionError, match="messages Slack would refuse"):
        failing.__exit__(None, None, None)
    assert message_problems({"text": "x" * 40_001})  # Slack would truncate it
    assert block_problems([_section("")])  # slack-sdk drops an empty text; Slack refuses it


def _participants(count: int) -> list[str]:
    return [
        f"Participant {i:02d} from the quarterly all-hands of <Sales & Marketing> in EMEA"
        for i in range(count)
    ]


def _meeting_alert(count: int = 60) -> Alert:
    names = _participants(count)
    return make_alert(
        rule="many-poor-video",
        participant_id="",
        scope="meeting",
        participant_name=f"{count} of 80 watched participants",
        description="Video is poor for many.\nAffected: " + ", ".join(names),
        context={"participants": ", ".join(names)},
    )


def test_sixty_participants_with_long_names_fit_and_say_how_many_more(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    """The issue's case: a 5,000-character section; now cut to 3,000 on whole participants."""
    alert = _meeting_alert()
    assert size(escape(alert.description or "")) > 5000
    notifier = host.build(bot(slack))
    firing = make_notification(alert)
    notifier.send(firing)
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    (posted,) = slack.top_level()  # the test server found nothing Slack would refuse
    blocks = posted.attachments[0]["blocks"]
    notes = next(b["text"]["text"] for b in blocks if "Affected" in str(b))
    assert size(notes) <= 3000
    assert notes.startswith("Video is poor for many.\nAffected: Participant 00 from")
    shown = notes.count("Participant ")
    more = re.search(r", … and (\d+) more$", notes)
    assert more is not None, notes[-80:]
    assert shown + int(more.group(1)) == 60
    assert "&lt;Sales &amp; Marketing&gt; in EMEA, … and" in notes  # never cut inside a name
    assert posted.text.startswith("✅ RESOLVED")  # the resolve updated it (validated too)


def test_seventy_alerts_with_buttons_stay_within_fifty_blocks(slack: FakeSlack) -> None:
    group = grouped_notification(70)
    views = {
        a.fingerprint: AlertView(a.fingerprint, a, acked_by="U0ONCALL1 (U0ONCALL1)", acked_at=T0)
        for a in group.alerts
    }
    body = message(group, interactive_blocks(group, views))
    assert message_problems(body) == []
    blocks = body["attachments"][0]["blocks"]
    assert len(blocks) <= 50
    assert blocks[-1]["type"] == "actions"  # the buttons were kept; alerts made room
    assert any("…and 50 more alerts" in str(b) for b in blocks)
    assert reply(group).endswith("…and 50 more")


def test_a_message_slack_refuses_is_resent_as_plain_text(
    host: PluginTestHost, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = host.build(bot(slack))
    alert = _meeting_alert()
    firing = make_notification(alert)
    slack.receiver.reply(Reply(200, {"ok": False, "error": "invalid_blocks"}))
    notifier.send(firing)  # not parked: delivered as text
    (posted,) = slack.top_level()
    assert posted.attachments == []
    assert posted.text.startswith("🟠 FIRING [warning] many-poor-video: 60 of 80 watched")
    assert "Affected: Participant 00" in posted.text
    assert size(posted.text) <= MESSAGE_TEXT
    assert "refused the message (invalid_blocks); sending it as plain text" in caplog.text

    slack.receiver.reply(Reply(200, {"ok": False, "error": "msg_too_long"}))
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    assert posted.text.startswith("✅ RESOLVED [warning] many-poor-video")  # chat.update, as text
    assert posted.attachments == []
    (done,) = slack.replies(posted.ts)
    assert done.text.startswith("✅ *Resolved*")


def test_a_message_refused_even_as_plain_text_is_a_permanent_failure(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build(bot(slack))
    refused = Reply(200, {"ok": False, "error": "invalid_blocks"})
    slack.receiver.reply(refused, refused)
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert caught.value.permanent
    assert "invalid_blocks" in str(caught.value)
    assert len(slack.receiver.requests) == 2  # one plain-text try, not a loop


def test_incoming_webhook_refusal_is_resent_as_plain_text(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    notifier = host.build({"type": "slack", "webhook_url": slack.webhook_url})
    slack.receiver.reply(Reply(400, "invalid_attachments"))
    notifier.send(grouped_notification(3))
    (post,) = slack.webhook_posts
    assert "attachments" not in post
    assert post["text"].startswith("🔴 FIRING 3 of 3 alerts firing in meeting abcd-efgh-ijkl")
    assert "Chandra" in post["text"]


def test_long_webhook_messages_fit(host: PluginTestHost, slack: FakeSlack) -> None:
    notifier = host.build({"type": "slack", "webhook_url": slack.webhook_url})
    notifier.send(make_notification(_meeting_alert(200)))
    (post,) = slack.webhook_posts  # validated by the test server
    assert "… and" in str(post["attachments"])


# --- whatever the alerts say -----------------------------------------------------------

ENTITY = re.compile(r"&(?:amp|lt|gt);")
TOKEN_RE = re.compile(r"<!date\^\d+\^[^<>|]*\|[^<>|]*>|<@[UW][A-Z0-9]+>")
UNSHOWABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _assert_safe(text: str) -> None:
    """Alert text never becomes Slack markup, and no cut leaves half an escape or token."""
    rest = ENTITY.sub("", TOKEN_RE.sub("", text))
    assert not {"&", "<", ">"} & set(rest), text[-200:]
    assert not UNSHOWABLE.search(text)


def _mrkdwn(body: dict[str, Any]) -> Iterator[str]:
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                yield node["text"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(body["attachments"])


@st.composite
def _views(draw: st.DrawFn, notification: Notification, pool: list[str]) -> dict[str, AlertView]:
    """Acks and silences by anyone (a Slack ID, or hostile text) on each alert."""
    who = st.sampled_from(pool) | st.just("U0ONCALL1")
    return {
        a.fingerprint: AlertView(
            a.fingerprint,
            a,
            acked_by=draw(st.none() | who),
            acked_at=T0,
            silence_id=draw(st.none() | st.just("s1")),
            silenced_by=draw(who),
            silenced_until=T0,
            until_meeting_end=draw(st.booleans()),
        )
        for a in notification.alerts
    }


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(hostile_notifications(), st.data())
def test_any_alert_renders_a_message_slack_accepts(
    drawn: tuple[Notification, list[str]], data: st.DataObject
) -> None:
    notification, pool = drawn
    views = data.draw(_views(notification, pool))
    for body in (
        message(notification),
        message(notification, interactive_blocks(notification, views)),
    ):
        assert message_problems(body) == []
        assert size(body["text"]) <= MESSAGE_TEXT
        for text in (body["text"], *_mrkdwn(body)):
            _assert_safe(text)
    for text in (reply(notification), plain(notification)):
        assert 0 < size(text) <= MESSAGE_TEXT
        _assert_safe(text)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(hostile_notifications(), st.data())
def test_any_meeting_renders_a_message_slack_accepts(
    drawn: tuple[Notification, list[str]], data: st.DataObject
) -> None:
    """The meeting view of the same hostile alerts: its message and its thread reply."""
    notification, pool = drawn
    notification = replace(
        notification,
        group_labels={"meeting_id": pool[0]},
        watched=data.draw(st.none() | st.integers(0, 10_000)),
        test=False,
    )
    earlier = data.draw(st.none() | st.just(meeting_changes(notification).memory))
    changes = meeting_changes(notification, earlier)
    views = data.draw(_views(notification, pool))
    alerts = meeting.button_alerts(changes, 5)
    extra = interactive_blocks(replace(notification, alerts=alerts), views)
    chart = {"file": "F0001", "title": pool[-1]}
    for body in (
        meeting.body(notification, changes),
        meeting.body(notification, changes, chart, extra),
    ):
        assert message_problems(body) == []
        assert size(body["text"]) <= MESSAGE_TEXT
        for text in (body["text"], *_mrkdwn(body)):
            _assert_safe(text)
    for text in (meeting.reply(notification, changes), meeting.plain(notification, changes)):
        if text is not None:
            assert 0 < size(text) <= MESSAGE_TEXT
            _assert_safe(text)


@settings(max_examples=300, deadline=None)
@given(STORM | HUGE, st.integers(60, 5000))
def test_fit_cuts_within_the_limit_and_says_so(raw: str, limit: int) -> None:
    text = escape(raw)
    out = fit(text, limit)
    assert size(out) <= limit
    _assert_safe(out)
    if out != text:
        assert "… and " in out or out.endswith("…")


def test_a_cut_near_a_date_token_never_ends_on_a_space_inside_it() -> None:
    """A cut moves back to a space to end on a word; a date token has spaces inside
    (found by the property above: "since <!date^…{time}|2026-11-24 … and 97 more")."""
    token = "<!date^1795514400^{date_short_pretty} {time}|2026-11-24 10:00:00>"
    line = f"since {token} for 6 days, worst " + "x" * 70
    for limit in range(40, size(line)):
        _assert_safe(fit(line, limit))
    left = len(line) - len(f"since {token}")
    assert fit(line, 100) == f"since {token} … and {left} more characters"


def test_fit_keeps_whole_lines_then_whole_items_then_characters() -> None:
    lines = "\n".join(f"line {i}" for i in range(100))
    assert fit(lines, 60) == "line 0\nline 1\nline 2\nline 3\nline 4\n… and 95 more lines"
    items = ", ".join(f"name{i}" for i in range(100))
    assert fit(items, 40) == "name0, name1, name2, … and 97 more"
    words = fit("a &amp; b " * 30, 60)
    assert words == "a &amp; b a &amp; b a &amp; b a … and 269 more characters"
    assert fit("&amp;" * 100, 64) == "&amp;" * 7 + " … and 465 more characters"
