"""Every built-in notifier (and the ntfy plugin) shows why an alert is told when its samples
do not say it: a firing alert told again because its silence ended, a resolution without a
recovering sample (the participant left while degraded, the session ended)."""

from __future__ import annotations

import json

import pytest
from watchdog_console import format_alert
from watchdog_email.render import html_body, text_body
from watchdog_ntfy import NtfyConfig, publication
from watchdog_slack.blocks import message
from watchdog_webhook.payload import body

from watchdog.alerts import LEFT_WHILE_DEGRADED, SESSION_ENDED, Alert
from watchdog.testing import make_alert, make_notification, resolved

NOTE = "still firing; silence 3f482c67 ended (alice: <customer> network & wifi)"


@pytest.mark.parametrize(
    "alert",
    [
        make_alert(reason=NOTE),
        resolved(make_alert(), reason=LEFT_WHILE_DEGRADED),
        resolved(make_alert(), reason=SESSION_ENDED),
    ],
    ids=["firing", "left", "session-ended"],
)
def test_the_reason_is_shown(alert: Alert) -> None:
    assert alert.reason is not None
    assert alert.reason in format_alert(alert)
    notification = make_notification(alert)
    assert alert.reason in text_body(notification)
    escaped = alert.reason.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped in html_body(notification)
    slack = message(notification)
    assert escaped in slack["text"]
    assert escaped in json.dumps(slack["attachments"])
    group = make_notification(alert, make_alert(participant_id="part-2", participant_name="Bob"))
    assert escaped in json.dumps(message(group)["attachments"])
    annotations = body(notification, "incidents")["alerts"][0]["annotations"]
    key = "resolved_reason" if alert.status == "resolved" else "reason"
    assert annotations[key] == alert.reason
    assert alert.reason in str(publication(notification, NtfyConfig(topic="oncall"))["message"])
