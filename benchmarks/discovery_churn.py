"""Discovery under churn: rooms and participants coming and going, watch list kept exact.

Lays out a seeded schedule on the simulator (``watchdog.sim.churn``: rooms whose
sessions start and end, participants who join, leave and come back), then
steps the simulator's clock one discovery interval at a time; at each step
it runs a discovery pass and a poll cycle with the daemon's own code and
compares the watch list with the simulator's ground truth. Prints per-pass
timings and request counts, and how many participants were ever wrongly
watched or missed (both should be 0). The simulator runs in this process on
a manual clock (its CPU is counted too); ``--latency`` adds a per-request delay.
The account also holds ``--ended`` sessions that ended before the run (its history): a pass
must not page through them. ``--no-status-filter`` makes the simulator ignore the listing's
``status=ongoing`` (VideoSDK's REST page does not document it), so the newest-first cut-off
alone keeps passes short after the first.

Run: ``.venv/bin/python -m benchmarks.discovery_churn [--rooms 100 --participants 2000]``
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from watchdog.config.settings import load_config
from watchdog.runtime.build import build
from watchdog.sim.churn import churn
from watchdog.sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789"


def write_config(workdir: Path, url: str, interval: float, concurrency: int) -> Path:
    config = {
        "videosdk": {"base_url": url, "api_key": "bench-key", "secret_key": SECRET},
        "poll": {"interval": f"{interval:g}s", "concurrency": concurrency},
        "watch": {"all_rooms": True, "discovery_interval": f"{interval:g}s"},
        "rules": [str(ROOT / "rules.example.yaml")],
        "notifiers": {"console": {"type": "console", "stream": "stderr"}},
        "state": {"url": str(workdir / "state.db")},
        "log": {"level": "warning"},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=600.0, help="sample seconds")
    parser.add_argument("--interval", type=float, default=30.0, help="discovery interval")
    parser.add_argument("--latency", type=float, default=0.0, help="simulator latency, seconds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-poll", action="store_true", help="discovery passes only")
    parser.add_argument("--ended", type=int, default=10_000, help="sessions already ended")
    parser.add_argument(
        "--no-status-filter", action="store_true", help="the listing ignores status=ongoing"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("watchdog").setLevel(logging.ERROR)
    sim = Simulator(api_key="bench-key", secret=SECRET, manual_clock=True, latency=args.latency)
    sim.start()
    try:
        plan = churn(sim, rooms=args.rooms, participants=args.participants, duration=args.duration)
        sim.rooms.honour_status_filter = not args.no_status_filter
        for i in range(min(args.ended, 50)):
            sim.add_room(f"history-{i:02d}")
        for i in range(args.ended):  # the account's history: a day of calls, all over
            session = f"ended-{i:06d}"
            sim.start_session(f"history-{i % 50:02d}", session, at=-86_400 + i * 86_000 / 10_000)
            sim.end_session(session, at=-86_400 + i * 86_000 / 10_000 + 60)
        print(
            f"rooms={plan.rooms} sessions={plan.sessions} ended={args.ended} "
            f"status_filter={not args.no_status_filter} participants={plan.participants} "
            f"stays={plan.stays} duration={plan.duration:g}s interval={args.interval:g}s "
            f"latency={args.latency * 1000:.0f}ms concurrency={args.concurrency}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(
                str(write_config(Path(tmp), sim.url, args.interval, args.concurrency))
            )
            runtime = build(config)
            discovery = runtime.discovery
            assert discovery is not None
            passes, cycles, requests, listings = [], [], [], []
            wrongly_watched = missed = peak = 0
            steps = int(args.duration * 1.1 / args.interval) + 1
            try:
                for _ in range(steps):
                    before = len(sim.requests)
                    start = time.perf_counter()
                    report = discovery.run()
                    passes.append(time.perf_counter() - start)
                    made = sim.requests[before:]
                    requests.append(len(made))
                    listings.append(
                        sum(1 for _, path, _ in made if path.rstrip("/") == "/v2/sessions")
                    )
                    truth = sim.active_participants()
                    watching = runtime.watchlist.keys("watching")
                    wrongly_watched += len(watching - truth)
                    missed += len(truth - watching)
                    peak = max(peak, len(truth))
                    if not args.no_poll:
                        start = time.perf_counter()
                        runtime.poller.cycle()
                        cycles.append(time.perf_counter() - start)
                    assert report.complete
                    sim.advance(args.interval)
            finally:
                runtime.close()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"discovery passes: {len(passes)}, "
            f"{statistics.mean(passes) * 1000:.0f} ms mean, {max(passes) * 1000:.0f} ms max, "
            f"{statistics.mean(requests):.0f} requests mean, {max(requests)} max "
            f"(first pass {requests[0]}; sessions-listing pages: first {listings[0]}, "
            f"then at most {max(listings[1:], default=0)}); "
            f"peak {peak} participants in calls at once"
        )
        if cycles:
            print(
                f"poll cycles: {statistics.mean(cycles) * 1000:.0f} ms mean, "
                f"{max(cycles) * 1000:.0f} ms max"
            )
        print(
            f"RESULT exactness: {wrongly_watched} watched after leaving, {missed} missed "
            f"(summed over all passes); peak RSS {peak_mb:.0f} MB"
        )
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
