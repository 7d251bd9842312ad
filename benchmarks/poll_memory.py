"""What the poll path keeps per participant between polls, in bytes (tracemalloc).

Two in-memory holders grow with the participants watched: the open minute-summary
buckets of history (``watchdog.state.minutes.Minutes``: up to 30 minutes each) and
the likely-cause windows with their meeting and place indexes
(``watchdog.poll.participants.Participants``). Each is fed the same samples the poller
would give it (the simulator's scenarios, the metrics of ``rules.example.yaml``, a
sample every 10 s, 3 a poll) for ``--minutes`` and measured with tracemalloc; the
figures do not depend on the machine's load. The process's whole peak RSS at 10,000
participants is ``benchmarks.poll_throughput``'s.

Run: ``.venv/bin/python -m benchmarks.poll_memory [--participants 3000 --minutes 20]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.history_size import _flat
from watchdog.engine.rules import load_rules
from watchdog.poll.participants import Participants
from watchdog.sim.scenarios import SCENARIOS
from watchdog.state.minutes import Minutes
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo, Sample

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)  # buckets open at :00 and :30
PERIOD = 10  # seconds between samples
PER_POLL = 3


def polls(participants: int, minutes: int) -> list[list[tuple[ParticipantInfo, list[Sample]]]]:
    """Per poll cycle, each participant's new samples (built before measuring)."""
    rng = random.Random(7)
    names = list(SCENARIOS)
    infos = [
        ParticipantInfo(
            f"session-{i // 10:05d}",
            f"participant-{i:06d}",
            meeting_id=f"mtg-{i // 10:05d}",
            name=f"P {i}",
            country="India",
            region=f"Region {i % 7}",
            org=f"Net {i % 11}",
        )
        for i in range(participants)
    ]
    cycles = []
    for cycle in range(minutes * 60 // (PERIOD * PER_POLL)):
        batch = []
        for index, info in enumerate(infos):
            scenario = SCENARIOS[names[index % len(names)]]
            steps = range(cycle * PER_POLL, (cycle + 1) * PER_POLL)
            batch.append(
                (
                    info,
                    [
                        Sample(
                            START + timedelta(seconds=k * PERIOD),
                            _flat(scenario.generate(k, rng)),
                        )
                        for k in steps
                    ],
                )
            )
        cycles.append(batch)
    return cycles


def measure(feed: Callable[[], object]) -> int:
    """Bytes still allocated after ``feed`` ran (what it built stays referenced)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = feed()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=3000)
    parser.add_argument("--minutes", type=int, default=20)
    args = parser.parse_args()
    metrics = sorted({r.metric for r in load_rules([ROOT / "rules.example.yaml"]) if r.metric})
    cycles = polls(args.participants, args.minutes)

    def summaries() -> Minutes:
        minutes = Minutes(db=None, metrics=metrics)  # type: ignore[arg-type]  # no I/O here
        for batch in cycles:
            for info, samples in batch:
                minutes.add((info.session_id, info.participant_id), info, samples)
        return minutes

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "state.db"))

        def tracked(*, observe: bool) -> Participants:
            held = Participants(store.polls)
            for batch in cycles:
                for info, samples in batch:
                    key = (info.session_id, info.participant_id)
                    held.seen(key, info)
                    if observe:
                        held.observe(key, info, samples)
            return held

        summary_bytes = measure(summaries)
        # the windows and indexes alone: over the participants' state without them
        window_bytes = measure(lambda: tracked(observe=True))
        window_bytes -= measure(lambda: tracked(observe=False))
        store.close()
    n = args.participants
    print(f"participants={n} minutes={args.minutes} metrics={len(metrics)}")
    for label, size in (
        ("minute summaries (open buckets)", summary_bytes),
        ("cause windows and their meeting and place indexes", window_bytes),
    ):
        print(
            f"RESULT {label}: {size / n:,.0f} bytes per participant"
            f" ({size / n * 10_000 / 1e6:.1f} MB at 10,000)"
        )


if __name__ == "__main__":
    main()
