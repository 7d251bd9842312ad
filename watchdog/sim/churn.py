"""A day in a busy VideoSDK account, for the simulator: rooms whose sessions come and go,
participants who join, leave and come back.

Seeded, so a test, a benchmark and ``simulate --churn`` see the same schedule.
All times are sample seconds on the simulator's clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchdog.sim.simulator import Simulator

SCENARIOS = ("healthy", "healthy", "healthy", "video-degradation", "high-rtt", "recovery")
SDKS = ("react", "js", "android", "ios", "prebuilt")


@dataclass(frozen=True, slots=True)
class ChurnPlan:
    rooms: int
    sessions: int
    participants: int
    stays: int  # joins, counting a return as another stay
    duration: float


def room_id(index: int) -> str:
    """VideoSDK's roomId shape (``xxxx-xxxx-xxxx``)."""
    return f"room-{index:04d}-churn"


def churn(
    sim: Simulator,
    *,
    rooms: int = 100,
    participants: int = 2000,
    duration: float = 600.0,
    seed: str = "churn",
) -> ChurnPlan:
    """Schedule rooms, sessions and stays on ``sim``, starting at its current sample time."""
    rng = random.Random(seed)
    start = (sim.now() - sim.zero).total_seconds()
    sessions: list[tuple[str, float, float | None]] = []  # (id, start, end or None)
    for r in range(rooms):
        room = sim.add_room(room_id(r), custom_room_id=f"churn-room-{r}")
        t = start + rng.uniform(0, duration / 4)
        for k in range(rng.choice((1, 1, 2, 3))):
            length = rng.uniform(duration / 4, duration)
            end: float | None = t + length
            if end is not None and end >= start + duration and rng.random() < 0.5:
                end = None  # still going when the run ends
            session = sim.start_session(room, f"sess-{r:04d}-{k}", at=t)
            sessions.append((session, t, end))
            if end is None:
                break
            t = end + rng.uniform(5, 60)
    stays = 0
    joins: dict[str, list[tuple[str, float, float | None]]] = {s: [] for s, _, _ in sessions}
    for p in range(participants):
        session, s_start, s_end = rng.choice(sessions)
        last = s_end if s_end is not None else start + duration * 1.5
        at = rng.uniform(s_start, last)
        for _ in range(rng.choice((1, 1, 1, 2))):  # some drop out and come back
            leave: float | None = at + rng.expovariate(1 / (duration / 3))
            if leave is not None and leave >= last:
                leave = None
            joins[session].append((f"p{p:05d}", at, leave))
            stays += 1
            if leave is None:
                break
            at = leave + rng.uniform(5, 90)
            if at >= last:
                break
    for session, _, end in sessions:
        for participant, at, leave in joins[session]:
            index = int(participant[1:])
            name = f"recorder-bot-{index}" if index % 50 == 0 else f"Guest {index}"
            sim.join(
                session,
                participant,
                name=name,
                at=at,
                scenario=SCENARIOS[index % len(SCENARIOS)],
                sdk=SDKS[index % len(SDKS)],
            )
            if leave is not None:
                sim.leave(session, participant, at=leave)
        if end is not None:
            sim.end_session(session, at=end)
    return ChurnPlan(rooms, len(sessions), participants, stays, duration)
