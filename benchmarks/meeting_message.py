"""The meeting message under a flapping meeting: Slack calls a minute and edits a poll cycle.

A meeting of ``--participants`` (200) people, every one in the simulator's ``flapping``
scenario (video quality crosses 3 every two samples) and joined at staggered times so
that about half are in trouble at any moment, is polled for ``--minutes`` of simulated
time through the daemon's real poll path (``watchdog.runtime.build``), the real alert
manager (``group_by: [meeting_id]``, its defaults: one notification a poll cycle at most)
and the Slack notifier (bot mode, charts on) against the Slack-like server of the tests
(``tests/slackapi.py``, which also checks every message against Slack's limits with
slack-sdk's Block Kit models).

Time is simulated: the simulator's clock is manual, and the alert manager's clock runs
with the wall clock inside a cycle (so the flushes the daemon makes while a cycle's
polls find alerts happen as they would: one every ``--flush-every`` seconds, by default
the intake thread's gathering wait), then jumps through the daemon's one-second ticks
until the next cycle's start. The simulator answers after ``--latency`` (50 ms), so a
cycle's polls take as long as against a real API. Prints, for that meeting: Slack calls
a minute by method, chat.update calls (edits) per poll cycle, messages posted a minute,
and whether that stays within Slack's per-channel rate of about one message a second;
then the same with ``group_interval: 0s`` (no coalescing), for comparison.

Run: ``.venv/bin/python -m benchmarks.meeting_message`` (``--minutes 10 --participants
200 --interval 30``).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.slackapi import TOKEN, FakeSlack
from watchdog.alerting.manager import GATHER, AlertingConfig, AlertManager
from watchdog.config.settings import load_config
from watchdog.runtime.build import Runtime, build
from watchdog.sim.simulator import Simulator

API_KEY, SECRET = "bench-key", "bench-secret-0123456789abcdef0123456789"
MEETING = "flap-all-hands"
SAMPLE_PERIOD = 10.0
RULES = {
    "rules": [
        {
            "name": "poor-video",
            "metric": "qualityScore.video",
            "op": "<",
            "threshold": 3,
            "severity": "warning",
            "notify": ["oncall"],
        }
    ]
}


class SimulatedTime:
    """The alert manager's clock: flows with the real clock (inside a poll cycle), and
    jumps ahead to a given moment (the next tick, the next cycle) instead of waiting for
    it. Never behind the real clock: the state database stamps alert changes with that."""

    def __init__(self) -> None:
        self._base = datetime.now(UTC)
        self._mark = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=time.monotonic() - self._mark)

    def jump(self, moment: datetime) -> None:
        with self._lock:
            self._base = max(moment, datetime.now(UTC))
            self._mark = time.monotonic()


@dataclass
class Run:
    cycles: list[Counter[str]]  # Slack API calls (by method) in each poll cycle
    notifications: list[int]  # notifications the alert manager wrote in each cycle
    affected: list[int]  # firing alerts after each cycle
    minutes: float
    channel_messages: int = 0
    thread_replies: int = 0


def simulator(participants: int, latency: float) -> Simulator:
    sim = Simulator(
        API_KEY, SECRET, sample_period=SAMPLE_PERIOD, manual_clock=True, latency=latency
    )
    for n in range(participants):
        sim.add_participant(
            "sess-flap",
            f"p{n:03d}",
            scenario="flapping",
            name=f"Participant {n:03d}",
            meeting_id=MEETING,
            joined_at_offset=(n % 4) * SAMPLE_PERIOD,  # four phases: half are bad at a time
        )
    return sim


def config(
    workdir: Path, url: str, slack: FakeSlack, participants: int, args: argparse.Namespace
) -> Path:
    (workdir / "rules.yaml").write_text(yaml.safe_dump(RULES))
    oncall: dict[str, object] = {
        "type": "slack",
        "token": TOKEN,
        "channel": "#alerts",
        "base_url": slack.api_url,
        "group_by": ["meeting_id"],
    }
    if args.group_interval is not None:
        oncall["group_interval"] = f"{args.group_interval:g}s"
    data = {
        "videosdk": {"base_url": url, "api_key": API_KEY, "secret_key": SECRET},
        "poll": {"interval": f"{args.interval:g}s", "concurrency": 8},
        "watch": {
            "participants": [
                {"session": "sess-flap", "participant": f"p{n:03d}"} for n in range(participants)
            ]
        },
        "rules": ["rules.yaml"],
        "notifiers": {"oncall": oncall},
        "state": {"url": str(workdir / "state.db")},
        "log": {"level": "warning"},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def poll_cycle(runtime: Runtime, manager: AlertManager, flush_every: float) -> int:
    """One poll cycle, the alert manager flushing (and the outbox delivering) every
    ``flush_every`` seconds while its polls run, as the daemon's intake thread does, and
    once at its end; returns how many notifications it wrote."""
    written = [0]
    done = threading.Event()

    def flushes() -> None:
        while not done.wait(flush_every):
            written[0] += manager.flush()
            runtime.dispatcher.drain(10)

    flusher = threading.Thread(target=flushes)
    flusher.start()
    try:
        runtime.poller.cycle()
    finally:
        done.set()
        flusher.join()
    written[0] += manager.flush()
    runtime.dispatcher.drain(10)
    return written[0]


def run(args: argparse.Namespace) -> Run:
    cycles = max(1, round(args.minutes * 60 / args.interval))
    out = Run([], [], [], cycles * args.interval / 60)
    with (
        FakeSlack() as slack,
        simulator(args.participants, args.latency) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        sim.advance(SAMPLE_PERIOD * 4)  # everyone has joined and has a few samples
        runtime = build(
            load_config(str(config(Path(tmp), sim.url, slack, args.participants, args)))
        )
        clock = SimulatedTime()
        manager = AlertManager(
            runtime.store.alert_log,
            runtime.store.silences,
            AlertingConfig.from_settings(runtime.config.settings),
            clock=clock,
            watching_in=runtime.store.watchlist.watching_in,
        )
        try:
            for _ in range(cycles):
                before, start = len(slack.receiver.requests), clock()
                written = poll_cycle(runtime, manager, args.flush_every)
                for second in range(1, int(args.interval)):  # the daemon's 1 s tick
                    tick = start + timedelta(seconds=second)
                    if tick > clock():
                        clock.jump(tick)
                        written += manager.flush()
                        runtime.dispatcher.drain(10)
                calls = Counter(_method(r.path) for r in slack.receiver.requests[before:])
                out.cycles.append(calls)
                out.notifications.append(written)
                out.affected.append(
                    sum(
                        1
                        for a in runtime.store.alert_log.active_alerts()
                        if a.alert.status == "firing"
                    )
                )
                sim.advance(args.interval)
                clock.jump(start + timedelta(seconds=args.interval))
            out.channel_messages = len(slack.top_level())
            out.thread_replies = len(slack.messages) - out.channel_messages
        finally:
            runtime.close()
    return out


def _method(path: str) -> str:
    """The Web API method called, or ``file upload`` for the upload URL files_upload_v2 got."""
    return "file upload" if path.startswith("/upload/") else path.removeprefix("/api/")


def report(name: str, result: Run, interval: float) -> None:
    total: Counter[str] = Counter()
    for calls in result.cycles:
        total.update(calls)
    minutes = result.minutes
    per_minute = sum(total.values()) / minutes
    edits = [c["chat.update"] for c in result.cycles]
    posts = [c["chat.postMessage"] for c in result.cycles]
    per_cycle_max = max(sum(c.values()) for c in result.cycles)
    cycles_per_minute = 60 / interval
    worst_minute_posts = max(posts) * cycles_per_minute
    print(f"{name}:")
    print(
        f"  {len(result.cycles)} cycles of {interval:g} s ({minutes:g} simulated minutes), "
        f"affected after each cycle: {min(result.affected)}-{max(result.affected)} firing alerts"
    )
    print(
        f"  notifications written per cycle: max {max(result.notifications)}; in the channel: "
        f"{result.channel_messages} message(s), {result.thread_replies} thread replies"
    )
    print(
        f"  Slack calls per minute: {per_minute:.1f} "
        f"({', '.join(f'{m} {n / minutes:.1f}' for m, n in sorted(total.items()))})"
    )
    print(
        f"  edits (chat.update) per poll cycle: max {max(edits)}, mean "
        f"{sum(edits) / len(edits):.2f}; most calls in one cycle: {per_cycle_max}"
    )
    within = worst_minute_posts <= 60
    print(
        f"  messages posted: at most {max(posts)} a cycle = {worst_minute_posts:g} a minute; "
        f"within Slack's ~1 message/s per channel: {'yes' if within else 'NO'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes")
    parser.add_argument("--interval", type=float, default=30.0, help="poll interval, seconds")
    parser.add_argument(
        "--flush-every",
        type=float,
        default=GATHER,
        help="seconds between the alert manager's flushes while a cycle's polls run",
    )
    parser.add_argument("--latency", type=float, default=0.05, help="API latency, seconds")
    parser.add_argument("--group-interval", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(
        f"a meeting of {args.participants} flapping participants, {args.minutes:g} simulated "
        f"minutes, poll interval {args.interval:g} s, API latency {args.latency * 1000:g} ms, "
        f"a flush every {args.flush_every:g} s while polls run"
    )
    report("meeting view (group_by: [meeting_id], defaults)", run(args), args.interval)
    args.group_interval = 0.0
    report("the same with group_interval: 0s (no coalescing)", run(args), args.interval)


if __name__ == "__main__":
    main()
