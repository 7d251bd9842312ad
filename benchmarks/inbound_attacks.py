"""Hostile clients against the daemon's three HTTP listeners: memory, capacity, deadlines.

Builds ``/metrics``+``/healthz``, the VideoSDK webhook receiver and the Slack
interactivity endpoint as the daemon does, in this process, and prints for each:
peak RSS growth while one client sends ``Content-Length: -1`` and then 64 MiB;
200 clients at once (wall time, answered, dropped); when a client trickling its
headers a byte every 0.25 s was cut off (given up at 20 s). Then, with VideoSDK's
key endpoint answering 503, how many key requests a burst of 200 forged webhooks
caused. Run: ``.venv/bin/python -m benchmarks.inbound_attacks``.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import watchdog_slack
from pydantic import SecretStr

from tests.rawhttp import concurrently, flood, peak_rss, trickle
from watchdog.alerting.actions import StoreActions
from watchdog.config.settings import VideoSDKSettings, WebhookSettings
from watchdog.delivery.host import PluginHost
from watchdog.runtime.endpoints import HttpEndpoint
from watchdog.state.store import Store
from watchdog.testing import HttpReceiver, Received, Reply, free_port
from watchdog.videosdk.client import VideoSDKClient
from watchdog.watch.webhooks import PublicKeys, WebhookReceiver

Target = tuple[int, str, str]  # port, method, path


@contextmanager
def metrics() -> Iterator[Target]:
    endpoint = HttpEndpoint("127.0.0.1", 0, lambda: (True, "ok"))
    try:
        yield endpoint.port, "GET", "/healthz"
    finally:
        endpoint.close()


@contextmanager
def webhooks(api_url: str) -> Iterator[Target]:
    settings = VideoSDKSettings(
        base_url=api_url,
        api_key="bench",
        secret_key=SecretStr("benchmark-secret-0123456789abcdef"),
        retries=0,
    )
    keys = PublicKeys(VideoSDKClient(settings))
    receiver = WebhookReceiver(WebhookSettings(listen="127.0.0.1:0"), keys, lambda e: "ignored")
    receiver.start()
    try:
        yield receiver.port, "POST", "/videosdk/webhook"
    finally:
        receiver.stop()


@contextmanager
def slack() -> Iterator[Target]:
    def api(request: Received) -> Reply:
        return Reply(200, {"ok": True})

    with tempfile.TemporaryDirectory() as tmp, HttpReceiver(api) as server:
        store = Store(str(Path(tmp) / "state.db"))
        store.migrate()
        port = free_port()
        host = PluginHost()
        host.add(watchdog_slack, "slack")
        config = {
            "type": "slack",
            "token": "xoxb-bench",
            "channel": "C1",
            "base_url": server.url + "/api/",
            "signing_secret": "benchmark-signing-secret",
            "interactivity_listen": f"127.0.0.1:{port}",
        }
        notifier: Any = host.build(
            {"slack": config},
            store.notifier_memory.for_notifier,
            actions=StoreActions(store.silences, store.alert_log, store.watchlist),
        )["slack"]
        notifier.start()
        try:
            yield port, "POST", "/slack/events"
        finally:
            notifier.close()
            store.close()


def attack(name: str, target: Target) -> None:
    port, method, path = target
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".encode()
    with peak_rss() as rss:
        status, taken = flood(port, head, 64)
    print(
        f"{name}: Content-Length -1 then 64 MiB: answered {status}, read {taken} MiB before "
        f"hanging up, peak RSS +{(rss[1] - rss[0]) / 1024:.1f} MiB"
    )
    body = b"{}" if method == "POST" else b""
    request = f"{method} {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    started = time.monotonic()
    statuses = concurrently(port, request, 200)
    print(
        f"{name}: 200 clients at once: {time.monotonic() - started:.2f} s, "
        f"{sum(1 for s in statuses if s)} answered, {statuses.count(0)} dropped"
    )
    seconds = trickle(port, f"{method} {path} HTTP/1.1\r\nX-Slow: ".encode(), limit=20)
    verdict = "still connected" if seconds >= 20 else "cut off"
    print(f"{name}: headers a byte every 0.25 s: {verdict} after {seconds:.1f} s")


def down(request: Received) -> Reply:
    return Reply(503, {"message": "down"})


def forged_during_key_outage(key_server: HttpReceiver) -> None:
    with webhooks(key_server.url) as (port, _, path):
        signature = base64.b64encode(bytes(256)).decode()
        body = b'{"webhookType": "session-started", "data": {"sessionId": "s"}}'
        request = (
            f"POST {path} HTTP/1.1\r\nvideosdk-signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        statuses = concurrently(port, request, 200)
        fetches = sum(1 for r in key_server.requests if r.path.endswith("rsa-public-key"))
        print(
            f"webhooks: 200 forged webhooks while the key endpoint answers 503: "
            f"{fetches} key requests, answers {sorted(set(statuses))}"
        )


def main() -> None:
    logging.disable(logging.WARNING)  # one refusal a line would drown the figures
    with HttpReceiver(down) as key_server:
        sources: list[tuple[str, Callable[[], Any]]] = [
            ("metrics", metrics),
            ("webhooks", lambda: webhooks(key_server.url)),
            ("slack", slack),
        ]
        for name, source in sources:
            with source() as target:
                attack(name, target)
        forged_during_key_outage(key_server)


if __name__ == "__main__":
    main()
