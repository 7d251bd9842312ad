"""Acting from Slack: chart rendering cost and a click's round trip.

Prints the wall time to draw one alert chart (PNG, matplotlib Agg) and its size,
and the round trip of one signed HTTP click (verify signature, acknowledge in a
SQLite store, redraw the message with chat.update on a local Slack-like server),
p50 and p95. Run: ``.venv/bin/python -m benchmarks.slack_actions``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import watchdog_slack
from slack_sdk.signature import SignatureVerifier

from tests.helpers import record_alerts
from watchdog.alerting.actions import StoreActions
from watchdog.charts import chart_png
from watchdog.delivery.host import PluginHost
from watchdog.state.store import Store
from watchdog.testing import HttpReceiver, Received, Reply, free_port, make_alert

SECRET = "benchmark-signing-secret"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_chart(runs: int) -> None:
    alert = make_alert(values=[4.0 - i * 0.05 for i in range(30)])
    chart_png(alert)  # the first draw imports matplotlib
    times, size = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        png = chart_png(alert)
        times.append(time.perf_counter() - start)
        size = len(png or b"")
    print(
        f"chart: p50 {statistics.median(times) * 1000:.1f} ms, "
        f"p95 {percentile(times, 0.95) * 1000:.1f} ms, {size / 1024:.1f} KiB PNG ({runs} runs)"
    )


def bench_clicks(runs: int) -> None:
    def slack(request: Received) -> Reply:
        return Reply(200, {"ok": True, "channel": "C1", "ts": "1.000001"})

    with tempfile.TemporaryDirectory() as tmp, HttpReceiver(slack) as api:
        store = Store(str(Path(tmp) / "state.db"))
        store.migrate()
        port = free_port()
        host = PluginHost()
        host.add(watchdog_slack, "slack")
        config = {
            "type": "slack",
            "token": "xoxb-bench",
            "channel": "C1",
            "base_url": api.url + "/api/",
            "signing_secret": SECRET,
            "interactivity_listen": f"127.0.0.1:{port}",
            "charts": False,
        }
        built = host.build(
            {"slack": config},
            store.notifier_memory.for_notifier,
            actions=StoreActions(store.silences, store.alert_log, store.watchlist),
        )
        notifier = built["slack"]
        notifier.start()  # type: ignore[attr-defined]
        verifier = SignatureVerifier(SECRET)
        times = []
        try:
            for index in range(runs):
                alert = make_alert(participant_id=f"p{index}")
                record_alerts(store, [(alert, ["slack"])])
                store.notifier_memory.put(
                    "slack", f"t{index}", {"channel": "C1", "ts": "1.000001", "notification": {
                        "id": f"n{index}", "notifier": "slack", "status": "firing",
                        "alerts": [alert.to_dict()], "thread": f"t{index}",
                    }},
                )  # fmt: skip
                payload = {
                    "type": "block_actions",
                    "user": {"id": "U1", "username": "alice"},
                    "container": {"channel_id": "C1", "message_ts": "1.000001"},
                    "response_url": api.url + "/respond",
                    "actions": [
                        {
                            "action_id": "watchdog_ack",
                            "value": json.dumps({"f": alert.fingerprint, "t": f"t{index}"}),
                        }
                    ],
                }
                body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
                ts = str(int(time.time()))
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/slack/events",
                    data=body,
                    headers={
                        "X-Slack-Request-Timestamp": ts,
                        "X-Slack-Signature": str(
                            verifier.generate_signature(timestamp=ts, body=body.decode())
                        ),
                    },
                )
                start = time.perf_counter()
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
                times.append(time.perf_counter() - start)
        finally:
            notifier.close()  # type: ignore[attr-defined]
            store.close()
    acked = timedelta(seconds=statistics.median(times))
    print(
        f"signed click -> ack -> chat.update: p50 {acked.total_seconds() * 1000:.1f} ms, "
        f"p95 {percentile(times, 0.95) * 1000:.1f} ms ({runs} clicks)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    bench_chart(args.runs)
    bench_clicks(args.runs)


if __name__ == "__main__":
    main()
