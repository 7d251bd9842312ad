"""What a reload does to alert states: keep what still has a rule, close what lost it.

Alert states are keyed by rule name, so a rule that survives a reload (even
with a new threshold or ``for``) keeps its pending or firing state and is
judged by its new definition from the next sample on. A rule that is gone
cannot resolve by itself any more: its firing alerts are closed with a
"resolved" notification that says why (as Alertmanager resolves an alert
whose Prometheus rule was deleted), so nobody is left with an alert open
forever; its pending states are simply dropped. Renaming a rule is a removal
plus an addition. Pure: the service writes the result in one transaction per
participant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from watchdog.alerting.from_transitions import alert_from
from watchdog.alerts import Alert
from watchdog.engine.evaluate import AlertState, MeetingKey, Scope, Transition
from watchdog.engine.rules import Rule, RuleSet
from watchdog.state.rows import Key
from watchdog.videosdk.stats import ParticipantInfo

K = TypeVar("K")


@dataclass(slots=True)
class Carried(Generic[K]):
    """States after a reload: one participant's (keyed by rule) or the meeting rules'
    (keyed by rule and meeting)."""

    states: dict[K, AlertState]
    dropped: set[K] = field(default_factory=set)
    closed: list[Transition] = field(default_factory=list)


def carry_over(
    old: RuleSet,
    new: RuleSet,
    states: Mapping[Key, Mapping[str, AlertState]],
    now: datetime,
    infos: Mapping[Key, ParticipantInfo] | None = None,
) -> dict[Key, Carried[str]]:
    """Only participants whose states change are returned.

    ``infos`` (who each participant is, from their last stats) makes the
    closing notification as readable as any other.
    """
    kept_names = {rule.name for rule in new}
    old_rules = old.by_name()
    out: dict[Key, Carried[str]] = {}
    for key, rules in states.items():
        gone = set(rules) - kept_names
        if not gone:
            continue
        carried = Carried({name: s for name, s in rules.items() if name in kept_names}, gone)
        for name in sorted(gone):
            state, rule = rules[name], old_rules.get(name)
            if state.phase != "firing" or rule is None:
                continue
            info = (infos or {}).get(key) or ParticipantInfo(
                session_id=key[0], participant_id=key[1]
            )
            carried.closed.append(_closing(rule, state, info, now))
        out[key] = carried
    return out


REMOVED = "the rule was removed from the configuration"


def closed_alerts(carried: Carried[Any]) -> list[tuple[Alert, list[str]]]:
    """A removed rule's firing alerts, resolved with why (no sample showed a recovery),
    each with the rule's own ``notify``: the alert manager's intake."""
    return [(replace(alert_from(t), reason=REMOVED), t.rule.notify) for t in carried.closed]


def carry_over_meetings(
    old: RuleSet, new: RuleSet, states: Mapping[MeetingKey, AlertState], now: datetime
) -> Carried[MeetingKey]:
    """Meeting rules follow the same policy: kept if the rule survives, else closed."""
    kept_names = {rule.name for rule in new}
    old_rules = old.by_name()
    out = Carried[MeetingKey]({k: s for k, s in states.items() if k[0] in kept_names})
    for key in sorted(set(states) - set(out.states)):
        out.dropped.add(key)
        state, rule = states[key], old_rules.get(key[0])
        if state.phase != "firing" or rule is None or state.fired_at is None:
            continue
        meeting = key[1]
        by_session = meeting.startswith("session:")
        info = ParticipantInfo(
            session_id=meeting.removeprefix("session:") if by_session else "",
            participant_id="",
            meeting_id=None if by_session else meeting,
        )
        out.closed.append(_closing(rule, state, info, now, "meeting"))
    return out


def _closing(
    rule: Rule,
    state: AlertState,
    info: ParticipantInfo,
    now: datetime,
    scope: Scope = "participant",
) -> Transition:
    """The resolution of a removed rule's firing alert: now, with the last value seen."""
    assert state.fired_at is not None  # only firing states are closed
    return Transition(
        time=now,
        rule=rule,
        info=info,
        state="resolved",
        value=state.value,
        active_since=state.active_since,
        fired_at=state.fired_at,
        scope=scope,
    )
