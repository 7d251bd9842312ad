"""The ntfy plugin, installed with pip and loaded through its entry point like any plugin.

The fixtures (``http_receiver``, ``unreachable_url``, ``notifier_host``) and the
``NotifierContract`` come from ``watchdog.testing``, which videosdk-watchdog
installs as a pytest plugin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from watchdog.notifiers import DeliveryError, delivery_error_for
from watchdog.testing import (
    EndlessAnswer,
    HttpReceiver,
    NotifierContract,
    PluginTestHost,
    Reply,
    grouped_notification,
    make_alert,
    make_notification,
    resolved,
)

TOKEN = "tk_ntfy-test-token-31b9"


class TestNtfyContract(NotifierContract):
    notifier_type = "ntfy"  # plugin left None: loaded from the installed entry point

    @pytest.fixture
    def notifier_config(self, http_receiver: HttpReceiver) -> dict[str, Any]:
        return {"server": http_receiver.url, "topic": "oncall", "token": TOKEN}

    @pytest.fixture
    def unreachable_config(self, unreachable_url: str) -> dict[str, Any]:
        return {"server": unreachable_url, "topic": "oncall", "token": TOKEN}

    @pytest.fixture
    def delivered(self, http_receiver: HttpReceiver) -> Callable[[], int]:
        return lambda: len(http_receiver.requests)


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.load_entry_points()
    return notifier_host


def test_installed_as_its_own_distribution(host: PluginTestHost) -> None:
    info = host.host.plugins["ntfy"]
    assert info.distribution == "videosdk-watchdog-ntfy"
    assert info.version == "0.1.0"
    assert info.notifier_types == ["ntfy"]


def test_publishes_priority_by_severity(host: PluginTestHost, http_receiver: HttpReceiver) -> None:
    config = {"type": "ntfy", "server": http_receiver.url, "topic": "oncall", "token": TOKEN}
    notifier = host.build(config)
    alert = make_alert(severity="critical")
    notifier.send(make_notification(alert))
    notifier.send(make_notification(resolved(alert)))
    notifier.send(grouped_notification(3))
    firing, done, group = (r.json() for r in http_receiver.requests)
    assert http_receiver.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert firing["topic"] == "oncall"
    assert firing["title"] == "Firing [critical] poor-video in meeting abcd-efgh-ijkl"
    assert firing["message"] == (
        "poor-video: Alice (part-1): qualityScore.video = 2.41 (threshold < 3)"
    )
    assert firing["priority"] == 5
    assert done["priority"] == 2
    assert done["tags"] == ["white_check_mark"]
    assert group["title"] == "Firing: 3 alerts in meeting abcd-efgh-ijkl"
    assert group["message"].count("\n") == 2


def test_a_firing_alert_told_again_says_why(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    config = {"type": "ntfy", "server": http_receiver.url, "topic": "oncall", "token": TOKEN}
    note = "still firing; silence 3f482c67 ended (alice: maintenance)"
    host.build(config).send(make_notification(make_alert(reason=note)))
    assert http_receiver.requests[0].json()["message"] == (
        f"poor-video: Alice (part-1): {note}; qualityScore.video = 2.41 (threshold < 3)"
    )


def test_rate_limit_is_retried_and_a_bad_token_is_not(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    config = {"type": "ntfy", "server": http_receiver.url, "topic": "oncall", "token": TOKEN}
    notifier = host.build(config)
    http_receiver.reply(Reply(429, {"error": "limit reached"}, {"Retry-After": "30"}))
    with pytest.raises(DeliveryError) as limited:
        notifier.send(make_notification())
    assert limited.value.retry_after == 30
    http_receiver.reply(Reply(401, {"error": "unauthorized"}))
    with pytest.raises(DeliveryError) as refused:
        notifier.send(make_notification())
    assert refused.value.permanent


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 507])
def test_every_status_follows_the_shared_retry_policy(
    host: PluginTestHost, http_receiver: HttpReceiver, status: int
) -> None:
    config = {"type": "ntfy", "server": http_receiver.url, "topic": "oncall", "token": TOKEN}
    header = "30" if status in (429, 503) else None
    http_receiver.reply(Reply(status, {"error": "no"}, {"Retry-After": header} if header else {}))
    with pytest.raises(DeliveryError) as caught:
        host.build(config).send(make_notification())
    expected = delivery_error_for(status, header, "")
    assert (caught.value.permanent, caught.value.retry_after) == (
        expected.permanent,
        expected.retry_after,
    )
    assert f"HTTP {status}" in str(caught.value)


def test_an_acknowledgement_notice_names_who_took_it(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    config = {"type": "ntfy", "server": http_receiver.url, "topic": "oncall", "token": TOKEN}
    notice = replace(make_notification(make_alert()), event="acknowledged", actor="alice")
    host.build(config).send(notice)
    assert http_receiver.requests[0].json()["title"].startswith("Acknowledged by alice [")


def test_an_endless_error_answer_costs_a_bounded_read(host: PluginTestHost) -> None:
    """A server answering 503 with a body that never ends, a byte at a time: the send
    ends with the timeout and says what it could read."""
    with EndlessAnswer(503, trickle=0.2) as server:
        notifier = host.build({"type": "ntfy", "server": server.url, "topic": "t", "timeout": 1})
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        took = time.monotonic() - started
    assert "ntfy answered HTTP 503: x" in str(caught.value)
    assert not caught.value.permanent
    assert took < 1 + 1 + 1  # the deadline, plus one read's timeout at most
    assert server.sent < 64  # a byte each 0.2 s: the read stopped at the deadline
