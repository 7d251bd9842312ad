"""The rule engine: pure, no I/O. New samples + previous state -> new state + transitions.

The daemon, ``once`` and ``replay`` all drive this one function, so what a
backtest shows is what production does. Time is sample time, never the
wall clock, which makes ``for`` deterministic and testable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from watchdog.rules import Rule
from watchdog.stats import ParticipantInfo, Sample, format_time

Phase = Literal["pending", "firing"]


@dataclass(frozen=True, slots=True)
class AlertState:
    """A rule's state for one participant; absent means inactive."""

    phase: Phase
    active_since: datetime  # first sample of the current run where the condition held
    value: float  # the metric's latest value while active
    fired_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    time: datetime  # the sample that caused it
    rule: Rule
    info: ParticipantInfo
    state: Literal["firing", "resolved"]
    value: float
    active_since: datetime
    fired_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The documented ``replay`` line."""
        return {
            "time": format_time(self.time),
            "rule": self.rule.name,
            "sessionId": self.info.session_id,
            "participantId": self.info.participant_id,
            "state": self.state,
            "value": self.value,
        }


@dataclass(slots=True)
class Evaluation:
    states: dict[str, AlertState]
    transitions: list[Transition] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)


def evaluate(
    rules: Iterable[Rule],
    info: ParticipantInfo,
    samples: Iterable[Sample],
    states: Mapping[str, AlertState],
) -> Evaluation:
    """Advance every rule over ``samples`` (time-ordered, all newer than last time).

    A sample without the rule's metric leaves that rule's state as it was:
    a missing field is not evidence that a call recovered.
    """
    result = Evaluation(states=dict(states))
    rule_list = list(rules)
    for sample in samples:
        values = sample.values
        for rule in rule_list:
            value = values.get(rule.metric)
            if value is None:
                continue
            _step(rule, info, sample.time, value, result)
    return result


def _step(rule: Rule, info: ParticipantInfo, time: datetime, value: float, out: Evaluation) -> None:
    name = rule.name
    current = out.states.get(name)
    if rule.holds(value):
        if current is None:
            current = AlertState(phase="pending", active_since=time, value=value)
        else:
            current = replace(current, value=value)
        if current.phase == "pending" and time - current.active_since >= rule.for_:
            current = replace(current, phase="firing", fired_at=time)
            out.transitions.append(
                Transition(time, rule, info, "firing", value, current.active_since, time)
            )
        out.states[name] = current
        out.changed.add(name)
    elif current is not None:
        del out.states[name]
        out.changed.add(name)
        if current.phase == "firing":
            assert current.fired_at is not None
            out.transitions.append(
                Transition(
                    time, rule, info, "resolved", value, current.active_since, current.fired_at
                )
            )
