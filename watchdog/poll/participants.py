"""What this instance knows of each participant it polls, between polls.

Per participant: the cursor (newest sample evaluated), the rule engine's alert
states and memory (windows, absent data), the identity the stats last told, and
its recent cause figures (watchdog.engine.causes.Window: in memory only); across
participants, who is in which meeting and which regions and networks degrade
lately (what a likely cause compares a participant with).
:class:`Participants` is their one owner: the poller reads and records through
it, a lease won or lost (watchdog.cluster) loads or forgets a participant
through it, a departure forgets one, a reload replaces states through it.
Thread-safe: polls of different participants run in a pool, lease changes on
the scheduler's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from watchdog.engine.causes import (
    CAPACITY,
    Peer,
    PlaceLoad,
    Places,
    Window,
    places_of,
    recent,
)
from watchdog.engine.evaluate import AlertState, Memory, meeting_of
from watchdog.state.polls import PollState
from watchdog.state.rows import Key
from watchdog.videosdk.stats import ParticipantInfo, Sample


@dataclass(slots=True)
class Tracked:
    """One participant's runtime state (a copy of what the state database holds, plus
    the identity, which is only written for meeting-level rules on several instances)."""

    cursor: datetime | None = None
    states: dict[str, AlertState] = field(default_factory=dict)
    memory: Memory | None = None
    info: ParticipantInfo | None = None
    future_warned: bool = False  # its samples stamped in the future were logged
    window: Window | None = None  # recent cause figures (not stored: rebuilt from samples)
    meeting: str | None = None  # the meeting the peer index holds it under


class Participants:
    """Every polled participant's :class:`Tracked` state, loaded from ``polls`` at start."""

    def __init__(self, polls: PollState) -> None:
        self._polls = polls
        self._lock = threading.Lock()
        self._tracked: dict[Key, Tracked] = {}
        self._meetings: dict[str, set[Key]] = {}  # by meeting_of(info): who observe() saw
        self._places = Places()
        cursors = polls.load_cursors()
        states = polls.load_alert_states()
        memories = polls.load_memories()
        for key in cursors.keys() | states.keys() | memories.keys():
            self._tracked[key] = Tracked(cursors.get(key), states.get(key, {}), memories.get(key))

    # -- what a poll reads and records ---------------------------------------------------

    def cursor(self, key: Key) -> datetime | None:
        tracked = self._tracked.get(key)
        return None if tracked is None else tracked.cursor

    def states(self, key: Key) -> dict[str, AlertState]:
        tracked = self._tracked.get(key)
        return {} if tracked is None else tracked.states

    def memory(self, key: Key) -> Memory | None:
        """The engine's memory; state saved before windows existed starts at the cursor."""
        tracked = self._tracked.get(key)
        if tracked is None:
            return None
        if tracked.memory is None and tracked.cursor is not None:
            return Memory(last_time=tracked.cursor)
        return tracked.memory

    def seen(self, key: Key, info: ParticipantInfo) -> None:
        """The identity the participant's latest stats told."""
        self._get(key).info = info

    def record(
        self,
        key: Key,
        cursor: datetime | None,
        states: dict[str, AlertState],
        memory: Memory | None,
    ) -> None:
        """A poll's outcome (``cursor`` None: it stays where it was)."""
        with self._lock:
            tracked = self._tracked.setdefault(key, Tracked())
            if cursor is not None:
                tracked.cursor = cursor
            tracked.states = states
            tracked.memory = memory

    def observe(self, key: Key, info: ParticipantInfo, samples: Sequence[Sample]) -> None:
        """New samples into the participant's cause window; its meeting and places noted.

        Called by the participant's own poll only, so its window has one writer; others
        read snapshots of it (:meth:`cause_inputs`)."""
        if not samples:
            return
        tracked = self._get(key)
        window = tracked.window
        if window is None:
            window = tracked.window = Window()
        for sample in samples[-CAPACITY:]:  # older ones would be dropped again at once
            window.add(sample.time.timestamp(), sample.values)
        newest = window.newest
        if newest is None:
            return
        meeting = meeting_of(info)
        degraded = recent(window, newest).degraded  # a minute's mean: blips do not count
        places = places_of(info.country, info.region, info.org, info.asn)
        with self._lock:
            if tracked.meeting != meeting:
                self._unindex(key, tracked)
                self._meetings.setdefault(meeting, set()).add(key)
                tracked.meeting = meeting
            alone = len(self._meetings[meeting]) == 1
            self._places.seen(places, meeting, key[1], newest, degraded=degraded, alone=alone)

    def cause_inputs(
        self, key: Key, info: ParticipantInfo, at: float
    ) -> tuple[Window, list[Peer], list[PlaceLoad]]:
        """What a likely cause of ``key``'s alert at ``at`` (epoch seconds) is judged from:
        its window, the other watched participants of its meeting, its places' load."""
        with self._lock:
            tracked = self._tracked.get(key)
            mine = tracked.window if tracked is not None else None
            window = mine.snapshot() if mine is not None else Window()
            peers = []
            for other in self._meetings.get(meeting_of(info), ()):
                theirs = self._tracked.get(other)
                if other == key or theirs is None or theirs.window is None:
                    continue
                name = theirs.info.name if theirs.info is not None else None
                peers.append(Peer(other[1], name or other[1], theirs.window.snapshot()))
            places = places_of(info.country, info.region, info.org, info.asn)
            loads = self._places.load(places, at)
        return window, peers, loads

    def place_loads(self, at: float) -> dict[str, tuple[int, int]]:
        """This instance's own place loads at ``at`` (epoch seconds), for the others."""
        with self._lock:
            return self._places.summary(at)

    def count_in_places(self, others: Mapping[str, tuple[int, int]]) -> None:
        """The other instances' place loads, counted in from now on (a platform cause is
        judged over the whole deployment's meetings)."""
        with self._lock:
            self._places.count_in(others)

    def warn_future_once(self, key: Key) -> bool:
        """True the first time this participant's samples are found stamped in the future."""
        tracked = self._get(key)
        first, tracked.future_warned = not tracked.future_warned, True
        return first

    # -- lease changes, departures, reloads ----------------------------------------------

    def adopt(self, key: Key) -> None:
        """Continue from what the state database holds (a lease just won: whoever polled
        the participant before committed it there)."""
        cursor, states, memory = self._polls.load_participant(key)
        with self._lock:
            before = self._tracked.get(key)
            if before is not None:
                self._unindex(key, before)
            self._tracked[key] = Tracked(cursor, states, memory)

    def committed(self, key: Key) -> Tracked:
        """This instance's state of ``key``, or else what the state database holds (several
        instances: another one polled it)."""
        tracked = self._tracked.get(key)
        if tracked is not None:
            return tracked
        cursor, states, memory = self._polls.load_participant(key)
        return Tracked(cursor, states, memory)

    def forget(self, key: Key) -> None:
        with self._lock:
            tracked = self._tracked.pop(key, None)
            if tracked is not None:
                self._unindex(key, tracked)

    def _unindex(self, key: Key, tracked: Tracked) -> None:
        """Lock held: ``key`` out of the peer index."""
        members = self._meetings.get(tracked.meeting or "")
        if members is not None:
            members.discard(key)
            if not members:
                del self._meetings[tracked.meeting or ""]
        tracked.meeting = None

    def replace_states(self, key: Key, states: dict[str, AlertState]) -> None:
        with self._lock:
            tracked = self._tracked.get(key)
            if tracked is not None:
                tracked.states = states

    # -- views ----------------------------------------------------------------------------

    def all_states(self) -> dict[Key, dict[str, AlertState]]:
        """A copy: polls and lease claims change it from other threads."""
        with self._lock:
            return {key: tracked.states for key, tracked in self._tracked.items()}

    def all_infos(self) -> dict[Key, ParticipantInfo]:
        with self._lock:
            return {k: t.info for k, t in self._tracked.items() if t.info is not None}

    def firing(self) -> int:
        return sum(
            1
            for states in self.all_states().values()
            for state in list(states.values())
            if state.phase == "firing"
        )

    def meeting_inputs(self, keys: Iterable[Key]) -> dict[Key, tuple[ParticipantInfo, Memory]]:
        """Identity and rule windows of those of ``keys`` polled with samples."""
        inputs = {}
        for key in keys:
            tracked = self._tracked.get(key)
            if tracked is not None and tracked.info is not None and tracked.memory is not None:
                inputs[key] = (tracked.info, tracked.memory)
        return inputs

    def repair_future(self, limit: datetime, now: datetime) -> Mapping[Key, set[str]]:
        """Move cursors, memories and alert states saved past ``limit`` (from samples
        stamped ahead of the clock, before such samples were refused) to ``now``; returns
        each repaired participant with the rules whose state changed."""
        repaired: dict[Key, set[str]] = {}
        with self._lock:
            for key, tracked in self._tracked.items():
                if tracked.cursor is not None and tracked.cursor > limit:
                    tracked.cursor = now
                    repaired.setdefault(key, set())
                if tracked.memory is not None and tracked.memory.clamp(limit, now):
                    repaired.setdefault(key, set())
                for name, state in list(tracked.states.items()):
                    if (clamped := state.clamped(limit, now)) is not state:
                        tracked.states[name] = clamped
                        repaired.setdefault(key, set()).add(name)
        return repaired

    def _get(self, key: Key) -> Tracked:
        with self._lock:
            return self._tracked.setdefault(key, Tracked())
