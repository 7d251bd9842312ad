"""Notifier cost: rendering CPU and loopback send latency for every built-in notifier.

Prints, per notifier, CPU microseconds to render one notification (one alert, and a
group of 20) and the wall time of ``send`` to a local destination on 127.0.0.1 (p50,
p95): the overhead our code and its libraries add before the network. Destinations
run in this process's threads. Run: ``.venv/bin/python -m benchmarks.notifier_send``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import watchdog_alertmanager
import watchdog_apprise
import watchdog_email
import watchdog_pagerduty
import watchdog_slack
import watchdog_teams
import watchdog_webhook
from aiosmtpd.controller import Controller
from watchdog_alertmanager.payload import postable
from watchdog_apprise.render import DEFAULT_TITLE
from watchdog_apprise.render import render as apprise_render
from watchdog_email.render import html_body, text_body
from watchdog_pagerduty.events import DEFAULT_SEVERITIES, Links, events
from watchdog_slack.blocks import message
from watchdog_teams.card import message as teams_message
from watchdog_webhook.payload import body

from watchdog.alerts import Notification
from watchdog.notifiers import Notifier
from watchdog.testing import (
    HttpReceiver,
    PluginTestHost,
    Received,
    Reply,
    free_port,
    grouped_notification,
    make_notification,
)


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _slack_api(request: Received) -> Reply:
    return Reply(200, {"ok": True, "channel": "C1", "ts": f"{time.time():.6f}"})


def _pagerduty_api(request: Received) -> Reply:
    key = request.json()["dedup_key"]
    return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})


def cpu_us(render: Callable[[Notification], object], notification: Notification, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        render(notification)
    return (time.process_time() - start) / n * 1e6


def latency_ms(notifier: Notifier, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        notification = make_notification()
        start = time.perf_counter()
        notifier.send(notification)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=300)
    parser.add_argument("--renders", type=int, default=2000)
    args = parser.parse_args()
    one, group = make_notification(), grouped_notification(20)
    renders: dict[str, Callable[[Notification], object]] = {
        "slack": message,
        "email": lambda n: (text_body(n), html_body(n)),
        "webhook": lambda n: body(n, "bench"),
        "alertmanager": lambda n: orjson.dumps([postable(a, {}, "") for a in n.alerts]),
        "teams": teams_message,
        "apprise": lambda n: apprise_render(n, DEFAULT_TITLE, 10),
        "pagerduty": lambda n: events(n, DEFAULT_SEVERITIES, None, Links()),
    }
    host = PluginTestHost()
    plugins = (watchdog_slack, watchdog_email, watchdog_webhook, watchdog_alertmanager)
    for plugin in (*plugins, watchdog_teams, watchdog_apprise, watchdog_pagerduty):
        host.add(plugin)
    port = free_port()
    smtp = Controller(_Sink(), hostname="127.0.0.1", port=port)
    smtp.start()
    workflow = HttpReceiver(lambda _: Reply(202))  # a Workflows webhook answers 202 Accepted
    with (
        HttpReceiver(_slack_api) as api,
        HttpReceiver() as hook,
        workflow,
        HttpReceiver(_pagerduty_api) as pager,
    ):
        notifiers = {
            "slack": host.build(
                {"type": "slack", "token": "xoxb-b", "channel": "C1", "base_url": api.url},
                "slack",
            ),
            "email": host.build(
                {
                    "type": "email",
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from": "wd@example.com",
                    "to": ["oncall@example.com"],
                },
                "email",
            ),
            "webhook": host.build({"type": "webhook", "url": hook.url, "secret": "s"}, "webhook"),
            # the real send: the alerts are also written to its re-send memory (in memory here)
            "alertmanager": host.build({"type": "alertmanager", "urls": [hook.url]}, "am"),
            "teams": host.build(
                {"type": "teams", "url": f"{workflow.url}/workflows/w/invoke?sig=bench"}, "teams"
            ),
            # Apprise's JSON service to the same receiver: the bridge's own cost on top
            "apprise": host.build(
                {"type": "apprise", "urls": ["json://" + hook.url.split("://")[1] + "/a"]},
                "apprise",
            ),
            "pagerduty": host.build(
                {"type": "pagerduty", "routing_key": "k" * 32, "url": pager.url + "/v2/enqueue"},
                "pagerduty",
            ),
        }
        heads = ("render 1", "render 20", "send p50", "send p95")
        print(f"{'notifier':<12} {heads[0]:>10} {heads[1]:>10} {heads[2]:>9} {heads[3]:>9}")
        for name, render in renders.items():
            r1 = cpu_us(render, one, args.renders)
            r20 = cpu_us(render, group, args.renders // 10)
            p50, p95 = latency_ms(notifiers[name], args.sends)
            print(f"{name:<12} {r1:>8.0f}us {r20:>8.0f}us {p50:>7.2f}ms {p95:>7.2f}ms")
    smtp.stop()


if __name__ == "__main__":
    main()
