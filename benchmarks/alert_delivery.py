"""Alert manager and outbox: what the per-second tick costs, and delivery throughput.

Records N firing alerts spread over meetings in a fresh SQLite state file, then prints:
the first flush (every alert new: grouping, routing, outbox rows), a steady-state flush
(nothing changed: the cost of the once-a-second tick), and how fast the dispatcher empties
the outbox into a local HTTP sink that answers at once. Then the cost of one delivery pass
while a notifier has a backlog of ``--backlog`` notifications: a dead one (every row backing
off) and a slow one (its lane's threads all busy, every row due). Figures, never asserts.

Run: ``.venv/bin/python -m benchmarks.alert_delivery --alerts 2000 --meetings 200``.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.helpers import enqueue, record_alerts
from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy
from watchdog.alerts import Alert, Notification, fingerprint
from watchdog.delivery.dispatcher import Dispatcher
from watchdog.durations import format_time
from watchdog.notifiers import DeliveryError
from watchdog.state.store import Store


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).count += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Poster:
    """A minimal notifier: one pooled HTTP POST per notification."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()

    def send(self, notification: Notification) -> None:
        self.session.post(self.url, json=notification.to_dict(), timeout=10).raise_for_status()


def _alert(index: int, meetings: int, now: datetime) -> Alert:
    participant = f"p{index}"
    return Alert(
        fingerprint=fingerprint("poor-video", "s", participant),
        rule="poor-video",
        status="firing",
        severity="warning",
        metric="qualityScore.video",
        op="<",
        threshold=3,
        value=2.1,
        session_id="s",
        participant_id=participant,
        starts_at=now - timedelta(minutes=1),
        fired_at=now,
        sample_time=now,
        meeting_id=f"meeting-{index % meetings}",
        participant_name=f"Participant {index}",
        labels={"alertname": "poor-video", "severity": "warning"},
    )


class _Dead:
    def send(self, notification: Notification) -> None:
        raise DeliveryError("connection refused")


class _Slow:
    """Holds every send until released: the lane's threads are all busy."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, notification: Notification) -> None:
        self.release.wait(60)


def _pass_cost(tmp: str, backlog: int, meetings: int) -> tuple[float, float]:
    """Median seconds of one delivery pass: a dead notifier's backlog, then a slow one's."""
    store = Store(str(Path(tmp) / "backlog.db"))
    now = datetime.now(UTC)
    _enqueue(store, "dead", backlog, meetings, now)
    later = now + timedelta(minutes=5)
    with store.transaction() as cur:  # the dead one's rows all back off, as after a failure
        cur.execute("UPDATE outbox SET attempts = 3, next_attempt_at = ?", (format_time(later),))
    dispatcher = Dispatcher(store.outbox, {"dead": _Dead()}, timedelta(seconds=60))
    dead = _median_pass(dispatcher)
    _enqueue(store, "slow", backlog, meetings, now)
    slow = _Slow()
    dispatcher.set_notifiers({"dead": _Dead(), "slow": slow})
    dispatcher.deliver_due()  # the slow lane's threads take their first sends and hang
    busy = _median_pass(dispatcher)
    slow.release.set()
    while dispatcher.in_flight():  # the released sends record their outcome
        time.sleep(0.01)
    store.close()
    return dead, busy


def _enqueue(store: Store, notifier: str, count: int, meetings: int, now: datetime) -> None:
    enqueue(
        store,
        [
            (
                f"{notifier}-{i}",
                Notification(
                    id=f"{notifier}-{i}",
                    notifier=notifier,
                    status="firing",
                    alerts=(_alert(i, meetings, now),),
                ),
            )
            for i in range(count)
        ],
    )


def _median_pass(dispatcher: Dispatcher, passes: int = 21) -> float:
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        dispatcher.deliver_due()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--meetings", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=10_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "state.db"))
        now = datetime.now(UTC)
        start = time.perf_counter()
        record_alerts(store, [(_alert(i, args.meetings, now), ()) for i in range(args.alerts)])
        intake = time.perf_counter() - start
        notifiers = {"sink": _Poster(url)}
        dispatcher = Dispatcher(
            store.outbox, notifiers, timedelta(seconds=10), concurrency=args.concurrency
        )
        manager = AlertManager(
            store.alert_log, store.silences, AlertingConfig({"sink": Policy()}), dispatcher.wake
        )

        start = time.perf_counter()
        queued = manager.flush()
        first = time.perf_counter() - start
        start = time.perf_counter()
        rounds = 5
        for _ in range(rounds):
            manager.flush()
        steady = (time.perf_counter() - start) / rounds

        start = time.perf_counter()
        cpu = time.process_time()
        dispatcher.start()
        while store.outbox.depth():
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        dispatcher.stop(grace=1)
        store.close()
        dead, busy = _pass_cost(tmp, args.backlog, args.meetings)
    server.shutdown()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.alerts} firing alerts in {args.meetings} meetings -> {queued} notifications")
    print(f"intake (one transaction):          {intake * 1000:8.1f} ms")
    print(f"first flush (all new):             {first * 1000:8.1f} ms")
    print(f"steady flush (the 1 s tick):       {steady * 1000:8.1f} ms")
    print(
        f"delivery to a local HTTP sink:     {queued / elapsed:8.1f} notifications/s "
        f"({cpu / queued * 1000:.2f} ms CPU each, concurrency {args.concurrency}); "
        f"sink saw {_Sink.count}"
    )
    print(
        f"one delivery pass, {args.backlog} waiting for a dead notifier: {dead * 1000:.2f} ms; "
        f"for a slow one (lane busy, all due): {busy * 1000:.2f} ms"
    )
    print(f"peak RSS:                          {rss:8.1f} MB")


if __name__ == "__main__":
    main()
