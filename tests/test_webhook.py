"""The webhook notifier against a local receiver that checks the signature."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import watchdog_webhook

from watchdog.notifiers import DeliveryError
from watchdog.problems import ConfigError
from watchdog.testing import (
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
    assert list(body) == [
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
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
    assert body["groupLabels"] == {
        "alertname": "poor-video",
        "participant_id": "part-1",
        "session_id": "sess-1",
    }
    assert body["groupKey"] == (
        '{}:{alertname="poor-video", participant_id="part-1", session_id="sess-1"}'
    )
    (item,) = body["alerts"]
    assert item["status"] == "firing"
    assert item["labels"] == {
        "alertname": "poor-video",
        "meeting_id": "abcd-efgh-ijkl",
        "participant_id": "part-1",
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


def test_grouped_truncated_and_generator_url(host: PluginTestHost, receiver: HttpReceiver) -> None:
    notifier = host.build(
        config(
            receiver.url,
            max_alerts=2,
            generator_url="https://app.example.com/sessions/{session_id}/{participant_id}",
        )
    )
    notifier.send(grouped_notification(3))
    body = receiver.requests[0].json()
    assert body["groupLabels"] == {"meeting_id": "abcd-efgh-ijkl"}
    assert body["groupKey"] == '{}:{meeting_id="abcd-efgh-ijkl"}'
    assert len(body["alerts"]) == 2
    assert body["truncatedAlerts"] == 1
    assert body["commonLabels"] == {"meeting_id": "abcd-efgh-ijkl", "session_id": "sess-1"}
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
