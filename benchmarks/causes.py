"""Likely causes: how often an alert carries the right one, and what keeping them costs.

Replays a labelled set. Per seed, each cause meeting of the simulator
(``watchdog.sim.scenarios.CAUSE_MEETINGS``: a participant's uplink, a sender hurting
everyone, a downlink, a device limit, four meetings of one region degrading, noise) of
3-6 participants, beside three healthy meetings in the same region and network; samples
from the simulator's scenarios with noise on top (every figure jittered +-25%, a field
missing in 3% of samples, single-sample loss blips in 3%, each participant starting 0-4
samples later, polls in a random order, 3 samples a poll). The example rules
(``rules.example.yaml``) are evaluated as the poller does, and every participant alert
that fires gets its cause from the poller's own state owner
(``watchdog.poll.participants.Participants``: windows, peers, places) and
``watchdog.engine.causes.likely_cause``. The expected cause is the participant's role
(healthy participants that alert: ``unknown``).

Prints the confusion table (expected x given), accuracy per cause, and what the windows
cost: time per poll to keep them, time per cause, bytes per participant.
Run: ``.venv/bin/python -m benchmarks.causes [--seeds 20]``.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchdog.engine.causes import CAUSES, WINDOW_SECONDS, Window, likely_cause
from watchdog.engine.evaluate import AlertState, Memory, evaluate
from watchdog.engine.rules import Rule, load_rules
from watchdog.poll.participants import Participants
from watchdog.sim.scenarios import (
    CAUSE_MEETINGS,
    SCENARIOS,
    cause_population,
    meeting_id_for,
)
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo, Sample, parse_sample

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 12, 1, 10, tzinfo=UTC)
PERIOD = 10.0  # seconds between samples, the simulator's default
PER_POLL = 3  # samples a poll brings (a 30 s interval)
STEPS = 36  # samples a participant lives through: 6 minutes
PLACES = [
    {
        "location": {"country": "India", "city": "Mumbai", "region": "Maharashtra"},
        "network": {"asn": "AS55836", "org": "Reliance Jio Infocomm"},
    },
    {
        "location": {"country": "United States", "city": "Ashburn", "region": "Virginia"},
        "network": {"asn": "AS7922", "org": "Comcast Cable"},
    },
    {
        "location": {"country": "Brazil", "city": "Sao Paulo", "region": "Sao Paulo"},
        "network": {"asn": "AS28573", "org": "Claro NXT"},
    },
]


@dataclass(slots=True)
class Member:
    info: ParticipantInfo
    scenario: str
    expected: str | None
    rng: random.Random
    delay: int  # samples before its scenario starts
    states: dict[str, AlertState]
    memory: Memory | None = None


def _info(member: dict[str, Any]) -> ParticipantInfo:
    envelope = member["envelope"]
    location, network = envelope["location"], envelope["network"]
    return ParticipantInfo(
        session_id=member["session"],
        participant_id=member["participant"],
        meeting_id=member["meeting_id"],
        name=member["name"],
        country=location["country"],
        city=location["city"],
        region=location["region"],
        asn=network["asn"],
        org=network["org"],
    )


def world(case: str, seed: int) -> list[Member]:
    """One labelled case: the cause meeting(s) plus three healthy meetings, in the same
    region and network (a platform case's are elsewhere: its own population has one
    healthy meeting in its place)."""
    rng = random.Random(f"{case}/{seed}")
    size = rng.randint(3, 6)
    people = cause_population(case, size, tag=f"-{seed}")
    place = rng.choice(PLACES)
    for person in people:
        person.setdefault("envelope", place)
    for number in range(3):
        session = f"sess-quiet-{case}-{seed}-{number}"
        people.extend(
            {
                "session": session,
                "participant": f"quiet-{case}-{seed}-{number}-{i}",
                "scenario": "healthy",
                "name": f"Quiet {number}.{i}",
                "meeting_id": meeting_id_for(session),
                "cause": None,
            }
            for i in range(rng.randint(2, 5))
        )
    members = []
    for person in people:
        person.setdefault("envelope", place)
        key = f"{seed}/{person['participant']}"
        members.append(
            Member(
                _info(person),
                person["scenario"],
                person["cause"],
                random.Random(key),
                rng.randint(0, 4),
                {},
            )
        )
    return members


def _noisy(raw: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            out[name] = _noisy(value, rng)
        elif rng.random() < 0.03:
            continue  # a field the API left out
        else:
            out[name] = value * rng.uniform(0.75, 1.25)
    if rng.random() < 0.03:
        out[rng.choice(("recvVideoPacketLost", "sendVideoPacketLost"))] = rng.randint(4, 12)
    return out


def sample(member: Member, k: int) -> Sample:
    """Sample ``k`` of a member, as the poller parses it (resolution as the simulator has
    it from the video score)."""
    step = k - member.delay
    scenario = SCENARIOS["healthy" if step < 0 else member.scenario]
    raw = _noisy(scenario.generate(max(step, 0), member.rng), member.rng)
    parsed, _ = parse_sample(raw, START + timedelta(seconds=k * PERIOD))
    video = parsed.values.get("qualityScore.video")
    if video is not None:
        parsed.values["resolution"] = 720.0 if video >= 4 else 360.0 if video >= 3 else 180.0
    return parsed


@dataclass(slots=True)
class Tally:
    confusion: Counter[tuple[str, str]]
    observe_seconds: float = 0.0
    polls: int = 0
    cause_seconds: float = 0.0
    causes: int = 0


def replay(case: str, seed: int, rules: list[Rule], tally: Tally) -> None:
    members = world(case, seed)
    participants = Participants(Store(":memory:").polls)
    order = random.Random(f"order/{case}/{seed}")
    for first in range(0, STEPS, PER_POLL):
        order.shuffle(members)
        for member in members:
            info = member.info
            key = (info.session_id, info.participant_id)
            batch = [sample(member, k) for k in range(first, first + PER_POLL)]
            start = time.perf_counter()
            participants.observe(key, info, batch)
            tally.observe_seconds += time.perf_counter() - start
            tally.polls += 1
            result = evaluate(rules, info, batch, member.states, memory=member.memory)
            member.states, member.memory = result.states, result.memory
            for transition in result.transitions:
                if transition.state != "firing":
                    continue
                at = transition.time.timestamp()
                start = time.perf_counter()
                window, peers, places = participants.cause_inputs(key, info, at)
                verdict = likely_cause(info.participant_id, window, at, peers=peers, places=places)
                tally.cause_seconds += time.perf_counter() - start
                tally.causes += 1
                tally.confusion[(member.expected or "unknown", verdict.cause)] += 1


def window_bytes(samples: int) -> float:
    """Bytes one participant's full window holds (tracemalloc over 1,000 of them)."""
    values = sample(
        Member(ParticipantInfo("s", "p"), "healthy", None, random.Random(1), 0, {}),
        0,
    ).values
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    windows = []
    for _ in range(1000):
        window = Window()
        for k in range(samples):
            window.add(1.8e9 + k * PERIOD, values)
        windows.append(window)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return size / len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules.example.yaml")
    args = parser.parse_args()
    rules = [r for r in load_rules([args.rules]) if r.meeting is None]
    tally = Tally(Counter())
    for seed in range(args.seeds):
        for case in CAUSE_MEETINGS:
            replay(case, seed, rules, tally)
    names = list(CAUSES)
    width = max(len(n) for n in names) + 2
    print(f"{args.seeds} seeds x {len(CAUSE_MEETINGS)} cause meetings, rules: {args.rules.name}")
    print(f"{tally.causes} participant alerts fired; rows: expected cause, columns: given")
    print(" " * width + "".join(f"{n:>{width}}" for n in names) + f"{'accuracy':>{width}}")
    total_right = 0
    for expected in names:
        row = [tally.confusion[(expected, given)] for given in names]
        count = sum(row)
        right = tally.confusion[(expected, expected)]
        total_right += right
        accuracy = f"{right / count:.0%} ({right}/{count})" if count else "-"
        print(f"{expected:<{width}}" + "".join(f"{n:>{width}}" for n in row) + f"  {accuracy}")
    print(f"overall: {total_right / max(tally.causes, 1):.1%} of {tally.causes} alerts")
    print(
        f"cost: {tally.observe_seconds / tally.polls * 1e6:.1f} us a poll to keep the window "
        f"and places ({PER_POLL} samples), {tally.cause_seconds / max(tally.causes, 1) * 1e6:.0f}"
        " us a cause (its meeting's peers, its places)"
    )
    full = int(WINDOW_SECONDS / PERIOD) + 1
    print(
        f"memory: {window_bytes(full * 3):.0f} bytes per participant window "
        f"({full} samples kept, a sample every {PERIOD:g}s)"
    )


if __name__ == "__main__":
    main()
