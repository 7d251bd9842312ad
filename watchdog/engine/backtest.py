"""Rules over recorded series, exactly as the daemon would have run them.

``replay`` (saved API responses) and ``test-rules`` (a rule file's own test
cases) both come here. Participants advance together in sample-time order so
meeting-level rules see everyone's condition at each moment, as the poller
does after a cycle. A participant who left after its last sample resolves its
firing alerts there, as the daemon does when the watch list lets it go.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from itertools import groupby

from watchdog.alerts import LEFT_WHILE_DEGRADED
from watchdog.engine.evaluate import (
    AlertState,
    MeetingKey,
    Memory,
    Transition,
    departure,
    evaluate,
    evaluate_meetings,
)
from watchdog.engine.rules import Rule
from watchdog.videosdk.stats import ParticipantInfo, Sample


def run(
    rules: Iterable[Rule],
    series: Sequence[tuple[ParticipantInfo, Sequence[Sample]]],
    *,
    now: datetime | None = None,
    left: Collection[int] = (),
) -> list[Transition]:
    """Every transition the series produce, ordered by time.

    ``now`` is the reference time at the end (absent-data rules fire when a
    participant's stats stopped long enough before it); without it only gaps
    inside the series count. ``left``: the indices in ``series`` of participants
    who left the call after their last sample (their alerts still firing then
    resolve "left while degraded"; absence after it is no alert).
    """
    rule_list = list(rules)
    states: list[dict[str, AlertState]] = [{} for _ in series]
    memories: list[Memory] = [Memory() for _ in series]
    transitions: list[Transition] = []
    if not any(rule.meeting is not None for rule in rule_list):
        for index, (info, samples) in enumerate(series):
            ordered = sorted(samples, key=_time)
            leaves = index in left
            result = evaluate(rule_list, info, ordered, {}, now=None if leaves else now)
            transitions.extend(result.transitions)
            if leaves and ordered:
                transitions.extend(_leave(rule_list, info, result.states, ordered[-1].time))
        return _ordered(transitions)
    meeting_states: dict[MeetingKey, AlertState] = {}
    ends = {index: max(map(_time, series[index][1])) for index in left if series[index][1]}
    gone: set[int] = set()
    events = sorted(
        (
            (sample.time, index, sample)
            for index, (_, samples) in enumerate(series)
            for sample in samples
        ),
        key=lambda event: (event[0], event[1]),
    )
    for moment, group in groupby(events, key=lambda event: event[0]):
        for _, index, sample in group:
            result = evaluate(
                rule_list, series[index][0], [sample], states[index], memory=memories[index]
            )
            states[index], memories[index] = result.states, result.memory
            transitions.extend(result.transitions)
            if ends.get(index) == moment:  # its final sample: it leaves, as after a final poll
                transitions.extend(_leave(rule_list, series[index][0], states[index], moment))
                gone.add(index)
        meetings = evaluate_meetings(
            rule_list, _members(series, memories, gone), meeting_states, now=moment
        )
        meeting_states = meetings.states
        transitions.extend(meetings.transitions)
    if now is not None:
        for index, (info, _) in enumerate(series):
            if index in gone:
                continue
            result = evaluate(rule_list, info, [], states[index], memory=memories[index], now=now)
            transitions.extend(result.transitions)
        meetings = evaluate_meetings(
            rule_list, _members(series, memories, gone), meeting_states, now=now
        )
        transitions.extend(meetings.transitions)
    return _ordered(transitions)


def _leave(
    rules: list[Rule], info: ParticipantInfo, states: dict[str, AlertState], time: datetime
) -> list[Transition]:
    return departure(rules, info, states, time, LEFT_WHILE_DEGRADED)


def _time(sample: Sample) -> datetime:
    return sample.time


def _members(
    series: Sequence[tuple[ParticipantInfo, Sequence[Sample]]],
    memories: Sequence[Memory],
    gone: Collection[int],
) -> list[tuple[ParticipantInfo, Memory]]:
    """Who the meeting rules count: everyone still in the call."""
    return [
        (info, memory)
        for index, ((info, _), memory) in enumerate(zip(series, memories, strict=True))
        if index not in gone
    ]


def _ordered(transitions: list[Transition]) -> list[Transition]:
    return sorted(
        transitions,
        key=lambda t: (t.time, t.info.session_id, t.info.participant_id, t.rule.name),
    )
