"""The webhook notifier against a local receiver that checks the signature; every body it
sends decodes into Alertmanager's own webhook structs (tests/amwebhook.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import watchdog_webhook
from pydantic import ValidationError

from watchdog.config.problems import ConfigError
from watchdog.notifiers import DeliveryError
from watchdog.testing import (
    EndlessAnswer,
    HttpReceiver,
    NotifierContract,
    PluginTestHost,
    Received,
    Reply,
    TLSCertificates,
    grouped_notification,
    make_alert,
    make_notification,
    resolved,
)

from .amwebhook import Message

SECRET = "whsec-4f1d-signing-secret"
BEARER = "Bearer receiver-token-77aa"


def verified(request: Received) -> bool:
    """What a receiver does: recompute the HMAC over the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(request.headers.get("x-watchdog-signature", ""), expected)


def _checking(request: Received) -> Reply:
    if not verified(request):
        return Reply(401, "bad signature")
    return Reply(200, "ok")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver(_checking) as server:
        yield server


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_webhook, "webhook")
    return notifier_host


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "webhook",
        "url": url + "/alerts",
        "secret": SECRET,
        "headers": {"Authorization": BEARER},
        **extra,
    }


class TestWebhookContract(NotifierContract):
    notifier_type = "webhook"
    plugin = watchdog_webhook

    @pytest.fixture
    def notifier_config(self, receiver: HttpReceiver) -> dict[str, Any]:
        return {k: v for k, v in config(receiver.url).items() if k != "type"}

    @pytest.fixture
    def unreachable_config(self, unreachable_url: str) -> dict[str, Any]:
        return {k: v for k, v in config(unreachable_url).items() if k != "type"}

    @pytest.fixture
    def delivered(self, receiver: HttpReceiver) -> Callable[[], int]:
        return lambda: sum(verified(r) for r in receiver.requests)


def test_body_is_alertmanager_webhook_v4(host: PluginTestHost, receiver: HttpReceiver) -> None:
    notifier = host.build(config(receiver.url, external_url="https://watchdog.example.com"))
    alert = make_alert(severity="critical", labels={"alertname": "poor-video", "team": "media"})
    firing = make_notification(alert)
    notifier.send(firing)
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    first, second = receiver.requests
    assert first.method == "POST"
    assert first.path == "/alerts"
    assert verified(first)
    assert verified(second)
    assert first.headers["authorization"] == BEARER
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-watchdog-notification"] == firing.id
    body = first.json()
    Message.model_validate_json(first.body)  # Alertmanager's structs, every field, no other
    for wrong in ({**body, "groupkey": ""}, {**body, "truncatedAlerts": "0"}):
        with pytest.raises(ValidationError):  # the model is strict: it would catch a mistake
            Message.model_validate_json(json.dumps(wrong))
    assert list(body) == [  # in the order Go encodes Message: its embedded Data first
        "receiver",
        "status",
        "alerts",
        "notification_reason",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "routeLabels",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    ]
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "test"
    assert body["externalURL"] == "https://watchdog.example.com"
    assert body["truncatedAlerts"] == 0
    assert body["notification_reason"] == "first notification"
    assert body["groupLabels"] == {"alertname": "poor-video", "meeting_id": "abcd-efgh-ijkl"}
    assert body["groupKey"] == (
        '{}/{receiver="test"}:{alertname="poor-video", meeting_id="abcd-efgh-ijkl"}'
    )
    (item,) = body["alerts"]
    assert item["status"] == "firing"
    assert item["labels"] == {
        "alertname": "poor-video",
        "meeting_id": "abcd-efgh-ijkl",
        "metric": "qualityScore.video",
        "participant_id": "part-1",
        "scope": "participant",
        "session_id": "sess-1",
        "severity": "critical",
        "team": "media",
    }
    assert item["annotations"]["condition"] == "qualityScore.video = 2.41 (threshold < 3)"
    assert item["annotations"]["value"] == "2.41"
    assert item["annotations"]["participant_name"] == "Alice"
    assert all(isinstance(v, str) for v in item["annotations"].values())
    assert item["startsAt"] == "2026-11-24T10:01:00.000Z"
    assert item["endsAt"] == "0001-01-01T00:00:00Z"
    assert item["fingerprint"] == alert.fingerprint
    assert item["generatorURL"] == ""
    assert body["commonLabels"] == item["labels"]

    after = second.json()
    Message.model_validate_json(second.body)
    assert after["status"] == "resolved"
    assert after["groupKey"] == body["groupKey"]  # the same group from firing to resolved
    assert after["alerts"][0]["endsAt"] == "2026-11-24T10:06:00.000Z"
    assert after["alerts"][0]["annotations"]["value"] == "4.2"
    assert "resolved_reason" not in after["alerts"][0]["annotations"]

    left = resolved(alert, reason="participant left the session")
    notifier.send(make_notification(left, thread=firing.thread))
    annotations = receiver.requests[2].json()["alerts"][0]["annotations"]
    assert annotations["resolved_reason"] == "participant left the session"
    assert annotations["value"] == "2.41"  # the last value seen
    assert "reason" not in annotations

    again = replace(alert, reason="still firing; silence 3f482c67 ended (alice: maintenance)")
    notifier.send(make_notification(again, thread=firing.thread))
    annotations = receiver.requests[3].json()["alerts"][0]["annotations"]
    assert annotations["reason"] == "still firing; silence 3f482c67 ended (alice: maintenance)"
    assert "resolved_reason" not in annotations


def test_a_meeting_alert_has_no_empty_label(host: PluginTestHost, receiver: HttpReceiver) -> None:
    notifier = host.build(config(receiver.url))
    meeting = make_alert(rule="meeting-poor", participant_id="", scope="meeting")
    notifier.send(make_notification(meeting))
    body = Message.model_validate_json(receiver.requests[0].body)
    (item,) = body.alerts
    assert item.labels == {
        "alertname": "meeting-poor",
        "meeting_id": "abcd-efgh-ijkl",
        "metric": "qualityScore.video",
        "scope": "meeting",
        "session_id": "sess-1",
        "severity": "warning",
    }
    assert all(body.commonLabels.values())


def test_grouped_truncated_and_generator_url(host: PluginTestHost, receiver: HttpReceiver) -> None:
    notifier = host.build(
        config(
            receiver.url,
            max_alerts=2,
            generator_url="https://app.example.com/sessions/{session_id}/{participant_id}",
        )
    )
    notifier.send(grouped_notification(3))
    Message.model_validate_json(receiver.requests[0].body)
    body = receiver.requests[0].json()
    assert body["groupLabels"] == {"meeting_id": "abcd-efgh-ijkl"}
    assert body["groupKey"] == '{}/{receiver="test"}:{meeting_id="abcd-efgh-ijkl"}'
    assert len(body["alerts"]) == 2
    assert body["truncatedAlerts"] == 1
    assert body["commonLabels"] == {  # poor-video and high-rtt: no common alertname or metric
        "meeting_id": "abcd-efgh-ijkl",
        "scope": "participant",
        "session_id": "sess-1",
    }
    assert body["alerts"][0]["generatorURL"] == "https://app.example.com/sessions/sess-1/part-1"


@pytest.mark.parametrize(
    ("reply", "retry_after", "permanent"),
    [
        (Reply(429, "slow down", {"Retry-After": "12"}), 12.0, False),
        (Reply(503, "maintenance", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), 0.0, False),
        (Reply(500, "boom"), None, False),
        (Reply(400, "bad payload"), None, True),
        (Reply(302, "", {"Location": "https://elsewhere.example.com/"}), None, True),
    ],
)
def test_status_codes(
    host: PluginTestHost,
    receiver: HttpReceiver,
    reply: Reply,
    retry_after: float | None,
    permanent: bool,
) -> None:
    notifier = host.build(config(receiver.url))
    receiver.reply(reply)
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert caught.value.retry_after == retry_after
    assert caught.value.permanent is permanent
    assert f"HTTP {reply.status}" in str(caught.value)
    notifier.send(make_notification())  # the next attempt goes through
    assert len(receiver.requests) == 2


@pytest.mark.parametrize("trickle", [None, 0.2], ids=["flood", "trickle"])
def test_an_endless_answer_is_read_bounded_in_size_and_time(
    host: PluginTestHost, trickle: float | None
) -> None:
    """A receiver answering an error with a body that never ends, flooded or a byte at a
    time, costs a bounded read that ends with the timeout; the error names the status."""
    with EndlessAnswer(502, trickle=trickle) as server:
        notifier = host.build(config(server.url, timeout=1.5))
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        took = time.monotonic() - started
    assert not caught.value.permanent
    assert "answered HTTP 502: xxx" in str(caught.value)
    assert len(str(caught.value)) < 300
    assert took < 1.5 + 1.5 + 1  # the deadline, plus one read's timeout at most
    assert server.sent < 8 * 2**20  # it stopped reading: no more than socket buffers took


def test_an_accepted_answer_is_read_so_the_connection_serves_the_next(
    host: PluginTestHost, receiver: HttpReceiver
) -> None:
    notifier = host.build(config(receiver.url))
    for _ in range(3):
        notifier.send(make_notification())
    assert len(receiver.requests) == 3
    assert len({r.port for r in receiver.requests}) == 1  # one connection, kept


def test_tls_is_verified_and_ca_file_trusts_a_private_ca(
    host: PluginTestHost, https_receiver: HttpReceiver, tls_certificates: TLSCertificates
) -> None:
    untrusted = host.build(config(https_receiver.url), "untrusted")
    with pytest.raises(DeliveryError) as caught:
        untrusted.send(make_notification())
    assert "not trusted" in str(caught.value)
    assert not https_receiver.requests
    trusted = host.build(config(https_receiver.url, ca_file=tls_certificates.ca_file), "trusted")
    trusted.send(make_notification())
    assert len(https_receiver.requests) == 1


def test_config_is_checked(host: PluginTestHost) -> None:
    with pytest.raises(ConfigError) as caught:
        host.build(
            {
                "type": "webhook",
                "url": "ftp://x",
                "headers": {"Content-Type": "text/plain", "Bad Header": "x"},
                "generator_url": "{nope}",
                "verify": False,
            }
        )
    messages = "\n".join(p.message for p in caught.value.problems)
    assert "url: Value error, must start with https:// or http://" in messages or (
        "must start with https:// or http://" in messages
    )
    assert "is set by the notifier" in messages or "is not a valid header name" in messages
    assert "bad template" in messages
    assert "unknown key 'verify'" in messages  # there is no switch to turn TLS checks off


def test_alertmanager_templates_read_our_body(
    host: PluginTestHost, receiver: HttpReceiver, tmp_path: Path
) -> None:
    """Alertmanager's own template engine (``amtool template render``, from Debian's
    prometheus-alertmanager, which .ci/run installs) decodes a body we sent into its
    ``template.Data`` and renders what an Alertmanager user writes in a receiver's template."""
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool is missing: apt-get install prometheus-alertmanager"
    notifier = host.build(config(receiver.url))
    bob = make_alert(participant_id="part-2", participant_name="Bob", severity="critical")
    notifier.send(make_notification(make_alert(), bob))
    data = tmp_path / "body.json"
    data.write_bytes(receiver.requests[0].body)
    (tmp_path / "none.tmpl").write_text("")
    rendered = subprocess.run(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={tmp_path / 'none.tmpl'}",
            f"--template.data={data}",
            "--template.text={{ .Status }} {{ .GroupLabels.alertname }} in "
            "{{ .GroupLabels.meeting_id }}: {{ len .Alerts.Firing }} firing "
            "({{ range .Alerts }}{{ .Labels.participant_id }} {{ end }}) for {{ .Receiver }}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == (
        "firing poor-video in abcd-efgh-ijkl: 2 firing (part-1 part-2 ) for test"
    )


def test_an_acknowledgement_notice_says_what_and_who_in_headers(
    host: PluginTestHost, receiver: HttpReceiver
) -> None:
    notifier = host.build(config(receiver.url))
    alert = make_alert()
    firing = make_notification(alert)
    notifier.send(firing)
    notice = replace(
        firing, id="n-ack", event="acknowledged", actor="Zoë (U0ZOE)", reason="acknowledged"
    )
    notifier.send(notice)
    first, second = receiver.requests
    assert "x-watchdog-event" not in first.headers  # an alert's notification: as before
    assert second.headers["x-watchdog-event"] == "acknowledged"
    assert second.headers["x-watchdog-actor"] == "Zo%C3%AB%20%28U0ZOE%29"
    assert verified(second)
    Message.model_validate_json(second.body)  # the body stays Alertmanager's, every field
    assert second.json()["notification_reason"] == "acknowledged"
