"""Rules over recorded series, exactly as the daemon would have run them.

``replay`` (saved API responses) and ``test-rules`` (a rule file's own test
cases) both come here. Participants advance together in sample-time order so
meeting-level rules see everyone's condition at each moment, as the poller
does after a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import groupby

from watchdog.engine.evaluate import (
    AlertState,
    MeetingKey,
    Memory,
    Transition,
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
) -> list[Transition]:
    """Every transition the series produce, ordered by time.

    ``now`` is the reference time at the end (absent-data rules fire when a
    participant's stats stopped long enough before it); without it only gaps
    inside the series count.
    """
    rule_list = list(rules)
    states: list[dict[str, AlertState]] = [{} for _ in series]
    memories: list[Memory] = [Memory() for _ in series]
    transitions: list[Transition] = []
    if not any(rule.meeting is not None for rule in rule_list):
        for info, samples in series:
            result = evaluate(rule_list, info, sorted(samples, key=_time), {}, now=now)
            transitions.extend(result.transitions)
        return _ordered(transitions)
    meeting_states: dict[MeetingKey, AlertState] = {}
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
        meetings = evaluate_meetings(
            rule_list, _members(series, memories), meeting_states, now=moment
        )
        meeting_states = meetings.states
        transitions.extend(meetings.transitions)
    if now is not None:
        for index, (info, _) in enumerate(series):
            result = evaluate(rule_list, info, [], states[index], memory=memories[index], now=now)
            transitions.extend(result.transitions)
        meetings = evaluate_meetings(rule_list, _members(series, memories), meeting_states, now=now)
        transitions.extend(meetings.transitions)
    return _ordered(transitions)


def _time(sample: Sample) -> datetime:
    return sample.time


def _members(
    series: Sequence[tuple[ParticipantInfo, Sequence[Sample]]], memories: Sequence[Memory]
) -> list[tuple[ParticipantInfo, Memory]]:
    return [(info, memory) for (info, _), memory in zip(series, memories, strict=True)]


def _ordered(transitions: list[Transition]) -> list[Transition]:
    return sorted(
        transitions,
        key=lambda t: (t.time, t.info.session_id, t.info.participant_id, t.rule.name),
    )
