"""Rule-engine speed and memory: the full ``rules.example.yaml`` over simulated calls.

Prints sample-rule evaluations per second (samples x rules that apply, fed a few at a
time as the poller does, meeting-level rules evaluated after every cycle) and the
engine's memory per watched participant after an hour of samples (tracemalloc over
the per-participant memory and alert states, and the JSON row the store keeps), with
what copying that memory and encoding and loading its row cost per participant.
Run: ``.venv/bin/python -m benchmarks.rule_engine``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from watchdog.durations import format_time
from watchdog.engine.evaluate import AlertState, MeetingKey, Memory, evaluate, evaluate_meetings
from watchdog.engine.rules import load_rules
from watchdog.sim.scenarios import CAUSE_SCENARIOS, SCENARIOS
from watchdog.videosdk.stats import ParticipantInfo, Sample, parse_stats

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 24, 10, tzinfo=UTC)


def population(
    participants: int, samples: int, period: float
) -> list[tuple[ParticipantInfo, list[Sample]]]:
    """Participants in meetings of 8, each following a scenario, parsed like API responses."""
    names = sorted(set(SCENARIOS) - set(CAUSE_SCENARIOS))  # the mix its figures were taken on
    out = []
    for index in range(participants):
        scenario = SCENARIOS[names[index % len(names)]]
        rng = random.Random(index)
        stats: list[dict[str, Any]] = []
        usage: list[dict[str, Any]] = []
        for k in range(samples):
            moment = format_time(START + timedelta(seconds=k * period))
            stats.append({"time": moment, **scenario.generate(k, rng)})
            usage.append({"720": 1, "360": 0, "time": moment})
        raw = {
            "sessionId": f"sess-{index // 8}",
            "meetingId": f"room-{index // 8}",
            "participantId": f"p{index}",
            "participantName": f"P {index}",
            "sdkInfo": {"sdkName": "android" if index % 3 else "js", "sdkVersion": "0.1"},
            "location": {"country": "India" if index % 2 else "Germany"},
            "stats": stats,
            "resolutionUsage": usage,
        }
        parsed = parse_stats(raw, "", "")
        out.append((parsed.info, list(parsed.samples)))
    return out


def speed(args: argparse.Namespace) -> None:
    rules = load_rules([args.rules])
    data = population(args.participants, args.samples, args.period)
    applicable = [sum(rule.applies_to(info) for rule in rules) for info, _ in data]
    states: list[dict[str, AlertState]] = [{} for _ in data]
    memories = [Memory() for _ in data]
    meeting_states: dict[MeetingKey, AlertState] = {}
    per_poll = args.per_poll
    evaluations = transitions = 0
    started = time.perf_counter()
    for offset in range(0, args.samples, per_poll):
        for index, (info, samples) in enumerate(data):
            batch = samples[offset : offset + per_poll]
            now = batch[-1].time
            result = evaluate(rules, info, batch, states[index], memory=memories[index], now=now)
            states[index], memories[index] = result.states, result.memory
            evaluations += len(batch) * applicable[index]
            transitions += len(result.transitions)
        meetings = evaluate_meetings(
            rules,
            [(info, memories[i]) for i, (info, _) in enumerate(data)],
            meeting_states,
            now=data[0][1][min(offset + per_poll, args.samples) - 1].time,
        )
        meeting_states = meetings.states
        transitions += len(meetings.transitions)
    seconds = time.perf_counter() - started
    print(
        f"rules: {args.rules} ({len(rules)} rules, {sum(applicable) / len(data):.1f} apply "
        f"per participant on average)"
    )
    print(
        f"{args.participants} participants x {args.samples} samples, {per_poll} per poll: "
        f"{evaluations:,} sample-rule evaluations in {seconds:.2f}s = "
        f"{evaluations / seconds:,.0f} evaluations/s "
        f"({args.participants * args.samples / seconds:,.0f} samples/s, {transitions} transitions)"
    )


def memory(args: argparse.Namespace) -> None:
    """Run an hour per participant untraced, then measure the kept state rebuilt from its
    stored form (what a restarted daemon holds): tracing the run itself would take minutes.
    Also times the per-poll copy and store row, and the load at startup, as the store
    does them (``orjson.dumps`` to write, ``orjson.loads`` to read)."""
    rules = load_rules([args.rules])
    data = population(args.memory_participants, args.samples, args.period)
    memories = [evaluate(rules, info, samples, {}).memory for info, samples in data]
    points = [sum(len(p) for p in memory.series.values()) for memory in memories]
    copy = _per_item(lambda: [memory.copy() for memory in memories], len(memories))
    write = _per_item(lambda: [orjson.dumps(memory.to_json()) for memory in memories], len(data))
    rows = [orjson.dumps(memory.to_json()) for memory in memories]
    load = _per_item(lambda: [Memory.from_json(orjson.loads(row)) for row in rows], len(rows))
    stdlib = _per_item(lambda: [Memory.from_json(json.loads(row)) for row in rows], len(rows))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [Memory.from_json(orjson.loads(row)) for row in rows]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    hours = args.samples * args.period / 3600
    print(
        f"memory after {hours:g} h of samples every {args.period:g}s, "
        f"{len(kept)} participants: {grown / len(kept) / 1024:.1f} KiB per participant "
        f"in memory ({grown / len(kept):,.0f} bytes, {sum(points) / len(points):.0f} window "
        f"points), {sum(map(len, rows)) / len(rows) / 1024:.1f} KiB stored per participant"
    )
    print(
        f"per participant: copy {copy * 1e6:.1f} us, store row {write * 1e6:.1f} us to write "
        f"(each poll with new samples), {load * 1e6:.1f} us to load (at startup; "
        f"{stdlib * 1e6:.1f} us with the stdlib json)"
    )


def _per_item(run: Callable[[], object], items: int, repeat: int = 5) -> float:
    """Best of a few runs, per item: the machine is shared, the minimum is the signal."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", default=str(ROOT / "rules.example.yaml"))
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--memory-participants", type=int, default=500)
    parser.add_argument("--samples", type=int, default=360, help="per participant")
    parser.add_argument("--period", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--per-poll", type=int, default=3, help="new samples per poll")
    args = parser.parse_args()
    speed(args)
    memory(args)


if __name__ == "__main__":
    main()
