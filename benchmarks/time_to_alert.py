"""Time to alert: a sample's appearance in the simulator to a webhook notifier receiving it.

Starts the simulator (its own process, every participant in the ``flapping`` scenario:
video quality crosses 3 every two samples, joins staggered so alerts arrive all the
time) and the daemon (``videosdk-watchdog run``, its own process) with a rule without
``for`` and two webhook notifiers on 127.0.0.1: ``fast`` answers at once, ``slow``
takes ``--slow`` seconds per delivery. Every alert goes to both. Prints p50/p99/max of
the fast notifier's time to alert (from the moment the simulator's clock reached the
sample's time to the moment the receiver read the request), the same for the slow one,
and the budget (poll interval + 2 s): the fast figures staying inside it while the
slow notifier lags shows alerts are not serialised behind a slow notifier.

Run: ``.venv/bin/python -m benchmarks.time_to_alert`` (``--interval 30 --seconds 240``
for the 30 s interval of the throughput target).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from benchmarks.poll_throughput import ROOT, SECRET
from benchmarks.simserver import participant_ids

RULES = {
    "rules": [
        {
            "name": "poor-video-now",
            "metric": "qualityScore.video",
            "op": "<",
            "threshold": 3,
            "severity": "warning",
            "notify": ["fast", "slow"],
        }
    ]
}


class Receiver:
    """A webhook destination recording when each firing alert first arrived."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrived: dict[tuple[str, str], float] = {}  # (fingerprint, startsAt) -> epoch
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                receiver.record(json.loads(body), now)
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def record(self, payload: dict[str, Any], now: float) -> None:
        with self.lock:
            for alert in payload.get("alerts", []):
                if alert.get("status") == "firing":
                    self.arrived.setdefault((alert["fingerprint"], alert["startsAt"]), now)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def latencies(
    receiver: Receiver, epoch: float, zero: datetime, speed: float, after: float, before: float
) -> list[float]:
    """Seconds from each sample's appearance (in [after, before)) to its alert's arrival."""
    out = []
    with receiver.lock:
        arrived = dict(receiver.arrived)
    for (_, starts_at), when in arrived.items():
        sample = datetime.fromisoformat(starts_at.replace("Z", "+00:00"))
        appeared = epoch + (sample - zero).total_seconds() / speed
        if after <= appeared < before:
            out.append(when - appeared)
    return sorted(out)


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="poll interval, seconds")
    parser.add_argument("--seconds", type=float, default=90.0, help="how long to measure")
    parser.add_argument("--latency", type=float, default=0.05, help="simulator latency")
    parser.add_argument("--slow", type=float, default=5.0, help="the slow notifier's delay")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    speed = 1.0  # one sample each 10 s per participant, real time
    fast, slow = Receiver(0.0), Receiver(args.slow)
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.simserver",
            f"--participants={args.participants}",
            "--history=0",
            f"--latency={args.latency}",
            f"--speed={speed}",
            f"--secret={SECRET}",
            "--scenario=flapping",
            "--stagger=40",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    daemon: subprocess.Popen[str] | None = None
    try:
        assert sim.stdout is not None
        ready = sim.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise SystemExit(f"simulator did not start: {ready!r}")
        url, epoch, zero = ready[1], float(ready[2]), datetime.fromisoformat(ready[3])
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "rules.yaml").write_text(yaml.safe_dump(RULES))
            config = {
                "videosdk": {"base_url": url, "api_key": "bench-key", "secret_key": SECRET},
                "poll": {"interval": f"{args.interval:g}s", "concurrency": args.concurrency},
                "watch": {
                    "participants": [
                        {"session": s, "participant": p}
                        for s, p in participant_ids(args.participants)
                    ]
                },
                "rules": ["rules.yaml"],
                "notifiers": {
                    "fast": {"type": "webhook", "url": fast.url},
                    "slow": {"type": "webhook", "url": slow.url, "timeout": args.slow * 4},
                },
                "state": {"url": str(work / "state.db")},
                "log": {"level": "warning"},
            }
            (work / "config.yaml").write_text(yaml.safe_dump(config))
            started = time.time()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "watchdog", "run", "--config", str(work / "config.yaml")],
                cwd=work,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            warmup = started + 2 * args.interval  # startup and the first cycle are not counted
            time.sleep(2 * args.interval + args.seconds)
            # samples that appeared this long before the end have had three intervals to alert
            until = time.time() - 3 * args.interval
            results = {
                name: latencies(receiver, epoch, zero, speed, warmup, until)
                for name, receiver in (("fast", fast), ("slow", slow))
            }
            daemon.terminate()
            daemon.wait(timeout=30)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        sim.terminate()
        sim.wait(timeout=10)
        fast.close()
        slow.close()
    print(
        f"participants={args.participants} interval={args.interval:g}s "
        f"latency={args.latency * 1000:.0f}ms slow notifier={args.slow:g}s per delivery"
    )
    for name, values in results.items():
        if not values:
            print(f"RESULT {name}: no alerts")
            continue
        print(
            f"RESULT {name}: {len(values)} alerts, time to alert p50 {percentile(values, 50):.2f}s "
            f"p99 {percentile(values, 99):.2f}s max {values[-1]:.2f}s "
            f"(budget {args.interval + 2:g}s)"
        )


if __name__ == "__main__":
    main()
