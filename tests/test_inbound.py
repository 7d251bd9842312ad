"""The three inbound listeners against hostile clients on raw sockets.

``/metrics`` and ``/healthz``, VideoSDK's webhook receiver and the Slack
interactivity endpoint, each built the way the daemon builds it. Every one must
refuse a body it would not read without reading it, cut off a trickling
client, answer 200 clients at once, and turn any malformed request into one
short answer and at most one log line in the configured format.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import watchdog_slack

from watchdog.alerting.actions import StoreActions
from watchdog.delivery.host import PluginHost
from watchdog.listener import Limits
from watchdog.obs.logs import setup_logging
from watchdog.runtime.build import build, start_webhooks
from watchdog.runtime.endpoints import HttpEndpoint
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store

from .rawhttp import (
    MALFORMED,
    UNFINISHED,
    concurrently,
    exchange,
    fill,
    flood,
    peak_rss,
    status_of,
    trickle,
)
from .slackapi import TOKEN, FakeSlack

TIMEOUT = Limits().timeout  # every listener keeps the default request deadline


@dataclass(frozen=True)
class Target:
    port: int
    method: str
    path: str
    normal: int  # the status of an ordinary (unsigned, for the signed ones) request


@pytest.fixture(params=["metrics", "webhooks", "slack"])
def target(
    request: pytest.FixtureRequest, sim: Simulator, config_for: Any, tmp_path: Path
) -> Iterator[Target]:
    if request.param == "metrics":
        endpoint = HttpEndpoint("127.0.0.1", 0, lambda: (True, "ok"))
        yield Target(endpoint.port, "GET", "/healthz", 200)
        endpoint.close()
    elif request.param == "webhooks":
        runtime = build(config_for([], watch={"webhook": {"listen": "127.0.0.1:0"}}))
        receiver = start_webhooks(runtime)
        assert receiver is not None
        yield Target(receiver.port, "POST", "/videosdk/webhook", 401)
        receiver.stop()
        runtime.close()
    else:
        with FakeSlack() as slack:
            store = Store(str(tmp_path / "state.db"))
            store.migrate()
            host = PluginHost()
            host.add(watchdog_slack, "slack")
            entry = {
                "type": "slack",
                "token": TOKEN,
                "channel": "#alerts",
                "base_url": slack.api_url,
                "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
                "interactivity_listen": "127.0.0.1:0",
            }
            notifier: Any = host.build(
                {"oncall": entry},
                store.notifier_memory.for_notifier,
                actions=StoreActions(store.silences, store.alert_log, store.watchlist),
            )["oncall"]
            notifier.start()
            [endpoint] = notifier.listeners
            yield Target(
                int(endpoint.url.split(":")[2].split("/")[0]), "POST", "/slack/events", 401
            )
            notifier.close()
            store.close()


def ordinary(target: Target) -> bytes:
    body = b'{"webhookType": "session-started"}' if target.method == "POST" else b""
    head = f"{target.method} {target.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def test_an_ordinary_request_is_answered(target: Target) -> None:
    assert status_of(exchange(target.port, ordinary(target))) == target.normal


@pytest.mark.parametrize(
    ("framing", "status"),
    [("Content-Length: -1\r\n", 400), ("Transfer-Encoding: chunked\r\n", 413)],
)
def test_megabytes_after_a_bad_length_are_never_buffered(
    target: Target, framing: str, status: int
) -> None:
    head = f"{target.method} {target.path} HTTP/1.1\r\nHost: x\r\n{framing}\r\n".encode()
    with peak_rss() as rss:
        answered, taken = flood(target.port, head, 64, chunked="chunked" in framing)
    assert answered == status
    assert taken < 64  # it stopped reading, then hung up
    assert rss[1] - rss[0] < 8 * 1024  # kB: the 64 MiB were never held (main grew 130 MiB)
    assert status_of(exchange(target.port, ordinary(target))) == target.normal


def test_two_hundred_clients_at_once_are_all_answered(target: Target) -> None:
    statuses = concurrently(target.port, ordinary(target), 200)
    assert statuses.count(target.normal) == 200


def test_a_client_trickling_headers_or_body_is_cut_off(target: Target) -> None:
    head = f"{target.method} {target.path} HTTP/1.1\r\nHost: x\r\n"
    slow_headers = (head + "X-Slow: ").encode()
    slow_body = (head + "Content-Length: 10000\r\n\r\n").encode()
    slow = [slow_headers, slow_body] if target.method == "POST" else [slow_headers]
    with ThreadPoolExecutor(2) as pool:
        cut = [pool.submit(trickle, target.port, raw, limit=TIMEOUT + 10) for raw in slow]
        # meanwhile others are served at once
        assert status_of(exchange(target.port, ordinary(target), timeout=2)) == target.normal
        seconds = [future.result() for future in cut]
    assert all(TIMEOUT - 0.5 < s < TIMEOUT + 3 for s in seconds), seconds


def test_malformed_requests_cost_one_log_line_and_no_traceback(
    target: Target, capfd: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "json")
    capfd.readouterr()
    for raw in MALFORMED + UNFINISHED:
        answer = exchange(target.port, fill(raw, target.method, target.path))
        err = capfd.readouterr().err
        assert "Traceback" not in err, raw[:80]
        lines = err.splitlines()
        assert len(lines) <= 1, (raw[:80], lines)
        for line in lines:  # the configured format: one JSON object a line
            assert json.loads(line)["level"] == "warning"
        if raw in MALFORMED:
            assert 400 <= status_of(answer) < 600, (raw[:80], answer[:80])
    assert status_of(exchange(target.port, ordinary(target))) == target.normal


def test_a_burst_of_refusals_leaves_no_thread_behind(target: Target) -> None:
    before = threading.active_count()
    head = f"{target.method} {target.path} HTTP/1.1\r\nContent-Length: -1\r\n\r\n".encode()
    assert set(concurrently(target.port, head, 100)) == {400}
    for _ in range(50):  # bounded: the connections' threads end within the linger time
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.1)
    assert threading.active_count() <= before
