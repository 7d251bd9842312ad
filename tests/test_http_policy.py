"""One retry policy for HTTP answers, and every built-in HTTP notifier follows it.

``delivery_error_for`` decides, as Alertmanager's shared ``Retrier`` does, which
statuses are worth another try; the Slack and webhook notifiers are checked
against it over a real receiver on 127.0.0.1 (the ntfy plugin's own tests do the
same for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import watchdog_slack
import watchdog_webhook

from watchdog.notifiers import RETRIED_STATUSES, DeliveryError, delivery_error_for
from watchdog.testing import HttpReceiver, PluginTestHost, Reply, make_notification

# redirects (never followed), client errors, the retried 408 and 429, server errors
STATUSES = [301, 307, 400, 401, 403, 404, 408, 409, 410, 413, 422, 429, 500, 502, 503, 504]
RETRIED = {408, 429, 500, 502, 503, 504}


@pytest.mark.parametrize("status", STATUSES)
def test_5xx_408_and_429_are_retried_and_every_other_status_is_permanent(status: int) -> None:
    error = delivery_error_for(status, None, f"HTTP {status}")
    assert error.permanent is (status not in RETRIED)
    assert error.retry_after is None  # no Retry-After: the core's backoff decides
    assert str(error) == f"HTTP {status}"


def test_every_5xx_is_retried_whatever_the_list_of_other_statuses() -> None:
    assert not any(delivery_error_for(s, None, "x", retried=()).permanent for s in range(500, 600))
    assert all(delivery_error_for(s, None, "x").permanent for s in (100, 199, 600, 999))


def test_retry_after_counts_on_a_retried_answer_in_either_form() -> None:
    assert delivery_error_for(429, "7", "slow down").retry_after == 7.0
    assert delivery_error_for(503, "Wed, 21 Oct 2015 07:28:00 GMT", "x").retry_after == 0.0
    assert delivery_error_for(503, "soon", "x").retry_after is None
    refused = delivery_error_for(400, "7", "bad payload")
    assert refused.permanent
    assert refused.retry_after is None  # a wait means nothing when retrying cannot help


def test_a_destination_may_retry_more_statuses_or_fewer() -> None:
    assert delivery_error_for(409, None, "x").permanent
    assert not delivery_error_for(409, None, "x", retried=RETRIED_STATUSES | {409}).permanent
    assert delivery_error_for(408, None, "x", retried={429}).permanent


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_a_success_is_not_a_delivery_error(status: int) -> None:
    with pytest.raises(ValueError, match="success"):
        delivery_error_for(status, None, "x")


NOTIFIERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "webhook": lambda url: {"type": "webhook", "url": f"{url}/hooks/receiver-secret-7f3a"},
    "slack bot": lambda url: {
        "type": "slack",
        "token": "xoxb-policy-1234-secret-token",
        "channel": "C0ALERTS01",
        "base_url": f"{url}/api/",
    },
    "slack incoming webhook": lambda url: {
        "type": "slack",
        "webhook_url": f"{url}/services/T0001/B0001/policy-secret-part",
    },
}


@pytest.mark.parametrize("kind", NOTIFIERS)
def test_every_built_in_http_notifier_retries_what_the_policy_retries(
    kind: str, notifier_host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    notifier_host.add(watchdog_webhook)
    notifier_host.add(watchdog_slack)
    notifier = notifier_host.build(NOTIFIERS[kind](http_receiver.url))
    for status in STATUSES:
        header = "7" if status in (429, 503) else None
        # an error code Slack does not call permanent: the HTTP status decides
        body = {"ok": False, "error": "fatal_error"}
        http_receiver.reply(Reply(status, body, {"Retry-After": header} if header else {}))
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        expected = delivery_error_for(status, header, "")
        got = (caught.value.permanent, caught.value.retry_after)
        assert got == (expected.permanent, expected.retry_after), f"{kind}: HTTP {status}"
        assert f"HTTP {status}" in str(caught.value)
    assert len(http_receiver.requests) == len(STATUSES)  # one request each, none retried inside
