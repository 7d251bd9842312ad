"""The alert path stage by stage: CPU of the poll cycle that finds alerts, of the alert
manager's flush that routes, groups and queues them, and of their delivery to webhooks.

Every participant flaps (video quality crosses 3 every two samples), phases spread over
``--stagger`` sample seconds as in ``time_to_alert``: each step changes about half of the
alerts, and most groups (a meeting's ten participants) carry firing and resolved alerts
together. The simulator (manual clock) and the webhook receiver run in their own
processes; the daemon's real parts (``watchdog.runtime.build.build``: client, engine,
SQLite, alert manager, dispatcher, the webhook plugin) run here one stage at a time, so
this process's CPU clock is each stage's cost. Per step, after the clock moved 20 s:

(a) one poll cycle of every participant (each poll with an alert is written at once);
(b) the alert manager's flush of what the cycle found, then a flush with nothing new:
    the least any flush pays (under overload the intake flushes back to back, each
    over every alert the manager tracks);
(c) the dispatcher delivering the notifications to two webhook notifiers (one receiver
    that answers at once).

``--escalation``: every alert is also on an escalation ladder (a route matching all of
them, one step an hour in that never falls due, ``ack_timeout`` set), so (b) includes
the escalator's pass over every firing alert.

Run: ``.venv/bin/python -m benchmarks.alert_path --participants 4000 [--escalation]``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from benchmarks.poll_throughput import ROOT, SECRET, start_simulator
from benchmarks.simserver import participant_ids
from watchdog.config.settings import load_config
from watchdog.runtime.build import Runtime, build

T = TypeVar("T")
STEP = 20.0  # sample seconds per step: two samples, half a flapping period
NOTIFIERS = ("first", "second")
RULES = {
    "rules": [
        {
            "name": "poor-video-now",
            "metric": "qualityScore.video",
            "op": "<",
            "threshold": 3,
            "severity": "warning",
            "notify": list(NOTIFIERS),
        }
    ]
}


def receiver() -> None:
    """The webhook receiver's process: answers at once; a line on stdin prints the count."""
    count = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            nonlocal count
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                count += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
    for _ in sys.stdin:
        with lock:
            print(count, flush=True)


class Receiver:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.alert_path", "--receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.url = self.stdout.readline().strip()

    def count(self) -> int:
        self.stdin.write("\n")
        self.stdin.flush()
        return int(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=10)


LADDER = {
    "ack_timeout": "30m",
    "routes": [
        {
            "match": ["alertname=poor-video-now"],
            "notify": [NOTIFIERS[0]],
            "escalation": {"steps": [{"after": "1h", "notify": [NOTIFIERS[1]]}]},
        }
    ],
}


def write_config(
    workdir: Path, url: str, participants: int, receiver_url: str, escalation: bool = False
) -> Path:
    (workdir / "rules.yaml").write_text(yaml.safe_dump(RULES))
    config: dict[str, Any] = {
        "videosdk": {"base_url": url, "api_key": "bench-key", "secret_key": SECRET},
        "poll": {"interval": "30s", "concurrency": 32},
        "watch": {
            "participants": [
                {"session": s, "participant": p} for s, p in participant_ids(participants)
            ]
        },
        "rules": [str(workdir / "rules.yaml")],
        "notifiers": {name: {"type": "webhook", "url": receiver_url} for name in NOTIFIERS},
        "state": {"url": str(workdir / "state.db")},
        "log": {"level": "warning"},
    }
    if escalation:
        config["alerting"] = LADDER
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cpu(work: Callable[[], T]) -> tuple[T, float]:
    """What ``work`` returns, and the CPU seconds this process spent on it (every thread)."""
    start = time.process_time()
    result = work()
    return result, time.process_time() - start


def deliver(runtime: Runtime, receiver: Receiver, expected: int) -> int:
    """Deliver everything queued; returns the receiver's count once it has all of it."""
    deadline = time.monotonic() + 300
    left = runtime.dispatcher.drain(300)
    while (left or receiver.count() < expected) and time.monotonic() < deadline:
        time.sleep(0.01)  # drain stops when a pass found every lane full: go on
        left = runtime.dispatcher.drain(300)
    return receiver.count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--stagger", type=float, default=40.0)
    parser.add_argument(
        "--escalation", action="store_true", help="every alert on an escalation ladder"
    )
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver()
        return
    logging.basicConfig(level=logging.ERROR)
    sim, url = start_simulator(
        args.participants,
        0,
        0.005,
        extra=("--scenario=flapping", f"--stagger={args.stagger}", "--manual"),
    )
    sink = Receiver()
    try:
        requests.post(f"{url}/_sim/advance", json={"seconds": 1200}, timeout=30)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_config(Path(tmp), url, args.participants, sink.url, args.escalation)
            runtime = build(load_config(str(path)))
            rows = []
            for step in range(args.steps + 2):  # two to settle: first sight, first alerts
                requests.post(f"{url}/_sim/advance", json={"seconds": STEP}, timeout=30)
                before = sink.count()
                _, poll = cpu(runtime.poller.cycle)
                queued, flush = cpu(runtime.manager.flush)
                _, idle = cpu(runtime.manager.flush)
                delivering = functools.partial(deliver, runtime, sink, before + queued)
                delivered, delivery = cpu(delivering)
                if step >= 2:
                    rows.append((poll, flush, idle, delivery, delivered - before))
                    print(
                        f"step {step - 1}: (a) poll cycle {poll:.2f}s, (b) flush {flush:.2f}s "
                        f"({queued} notifications) then {idle * 1000:.0f} ms with nothing new, "
                        f"(c) delivery {delivery:.2f}s",
                        flush=True,
                    )
            runtime.close()
    finally:
        sink.close()
        sim.terminate()
        sim.wait(timeout=10)
    poll, flush, idle, delivery, sent = (sum(r[i] for r in rows) for i in range(5))
    n = len(rows)
    print(
        f"participants={args.participants} stagger={args.stagger:g}s steps={n}"
        f"{' escalation' if args.escalation else ''}, CPU seconds:\n"
        f"  (a) poll cycle  {poll:7.2f}s  ({poll / n / args.participants * 1000:.2f} ms a poll)\n"
        f"  (b) flush       {flush:7.2f}s  ({flush / max(sent, 1) * 1000:.2f} ms a notification);"
        f" with nothing new {idle / n * 1000:.0f} ms a flush\n"
        f"  (c) delivery    {delivery:7.2f}s  ({delivery / max(sent, 1) * 1000:.2f} ms a "
        f"notification, {sent} delivered)"
    )


if __name__ == "__main__":
    main()
