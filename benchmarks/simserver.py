"""A simulator in its own process for benchmarks, so its CPU is not charged to the daemon.

Prints ``READY <url> <epoch> <zero>`` once it serves: at Unix time ``<epoch>`` the
simulator's clock read ``<zero>`` (ISO-8601), so a sample stamped ``t`` appeared at
``epoch + (t - zero) / speed``. Then runs until killed.
"""

from __future__ import annotations

import argparse
import random
import signal
import threading
import time

from watchdog.sim.simulator import Simulator

SCENARIOS = ("healthy", "healthy", "video-degradation", "packet-loss-spike", "high-rtt", "recovery")


def participant_ids(count: int) -> list[tuple[str, str]]:
    """Ten participants a session, like a busy product's small meetings."""
    return [(f"bench-s{i // 10:05d}", f"bench-p{i:06d}") for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--history", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--secret", default="bench-secret-0123456789abcdef0123456789")
    parser.add_argument("--scenario", help="one scenario for all (default: a healthy-heavy mix)")
    parser.add_argument(
        "--stagger", type=float, default=0.0, help="joins spread over this many sample seconds"
    )
    parser.add_argument(
        "--manual", action="store_true", help="the clock moves only by POST /_sim/advance"
    )
    args = parser.parse_args()
    sim = Simulator(
        api_key=args.api_key,
        secret=args.secret,
        sample_period=10.0,
        speed=args.speed,
        manual_clock=args.manual,
        latency=args.latency,
        history=args.history,
    )
    spread = random.Random(7)
    for index, (session, participant) in enumerate(participant_ids(args.participants)):
        sim.add_participant(
            session,
            participant,
            scenario=args.scenario or SCENARIOS[index % len(SCENARIOS)],
            joined_at_offset=spread.uniform(0, args.stagger),
            name=f"Participant {index}",
            meeting_id=f"mtg-{session}",
        )
    sim.start()
    sim.warm()  # histories ready before the first poll, as the real API has them
    zero = time.time() - (sim.now() - sim.zero).total_seconds() / args.speed
    print(f"READY {sim.url} {zero:.6f} {sim.zero.isoformat()}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sim.stop()


if __name__ == "__main__":
    main()
