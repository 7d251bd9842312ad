"""The cycle after a gap: what the daemon's first good poll cycle costs after it could not
poll for a while (a VideoSDK outage, the daemon stopped).

Each participant's cursor stays at the last sample evaluated, and the API answers with
the whole history, so the first cycle after the gap evaluates every sample since: no
transition of the gap is lost, and the cycle costs what those samples cost. Runs the
daemon's real poll path (``watchdog.runtime.build.build``, ``rules.example.yaml``,
SQLite) against the simulator in its own process, with the simulator's clock moved by
hand (``--manual``: a 10 s sampling period): a first cycle, a steady one 30 s later,
then one after ``--gap`` seconds without polls, and a steady one after it. Prints each
cycle's wall time, CPU per poll and new samples per poll, the CPU each sample of the
gap added, and what the cycle after the gap would take at ``--scale`` participants
(the CPU per poll measured here times that many polls, on one core).

Run: ``.venv/bin/python -m benchmarks.catch_up`` (1,000 participants, a 30-minute gap).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.poll_throughput import start_simulator, write_config
from watchdog.config.settings import load_config
from watchdog.runtime.build import Runtime, build


def _cycle(runtime: Runtime, label: str) -> tuple[float, float]:
    """One poll cycle: prints it; (CPU seconds per poll, new samples per poll)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    done = runtime.poller.cycle()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    polls = max(done.polled, 1)
    print(
        f"{label}: {wall:.1f}s, {cpu / polls * 1000:.2f} ms CPU/poll, "
        f"{done.samples / polls:.1f} new samples/poll, {done.failed} failed",
        flush=True,
    )
    return cpu / polls, done.samples / polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=1800.0, help="seconds without polls")
    parser.add_argument("--scale", type=int, default=10_000, help="participants to project to")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    history = int(args.gap // 10) + 60  # the API keeps the whole call: the gap and more
    proc, url = start_simulator(args.participants, history, 0.0, extra=("--manual",))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(str(write_config(Path(tmp), url, args.participants, 16)))
            runtime = build(config)

            def advance(seconds: float) -> None:
                requests.post(
                    f"{url}/_sim/advance", json={"seconds": seconds}, timeout=30
                ).raise_for_status()

            try:
                _cycle(runtime, "first sight")
                advance(30)
                steady, steady_samples = _cycle(runtime, "steady")
                advance(args.gap)
                after, after_samples = _cycle(runtime, f"after {args.gap:g}s without polls")
                advance(30)
                _cycle(runtime, "steady again")
            finally:
                runtime.close()
        per_sample = (after - steady) / max(after_samples - steady_samples, 1)
        print(
            f"RESULT the cycle after a {args.gap:g}s gap: {after * 1000:.2f} ms CPU/poll "
            f"({after_samples:.0f} samples each) against {steady * 1000:.2f} ms steady; "
            f"{per_sample * 1e6:.0f} us of CPU per sample of the gap"
        )
        print(
            f"RESULT at {args.scale:,} participants that cycle would take about "
            f"{after * args.scale:.0f}s of one core (steady: {steady * args.scale:.0f}s)"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
