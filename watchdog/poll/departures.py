"""Resolving the alerts of a participant who is no longer watched.

Without this an alert on someone who left the call would stay firing for
ever: no sample will ever show recovery. Each firing alert resolves with a
``reason`` the notifier shows, carrying the last value seen; the resolution
reaches the alert manager exactly as an ordinary one would (same alert, same
thread). The poller writes them, and forgets the participant, in one
transaction (``Poller.depart``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from watchdog.alerting.from_transitions import alert_from
from watchdog.alerts import Alert
from watchdog.engine.evaluate import transition as make_transition
from watchdog.engine.rules import RuleSet
from watchdog.poll.participants import Tracked
from watchdog.videosdk.stats import ParticipantInfo


def resolutions(
    rules: RuleSet, tracked: Tracked, info: ParticipantInfo, reason: str
) -> list[tuple[Alert, list[str]]]:
    """The (alert, rule notify) resolutions of the participant's firing alerts."""
    by_name = rules.by_name()
    last = tracked.cursor or datetime.now(UTC)
    alerts = []
    for name, state in sorted(tracked.states.items()):
        rule = by_name.get(name)
        if state.phase != "firing" or rule is None or state.fired_at is None:
            continue
        transition = make_transition(  # renders the rule's summary/description templates
            rule, info, last, "resolved", value=state.value, state=state, threshold=rule.threshold
        )
        alerts.append((replace(alert_from(transition), reason=reason), rule.notify))
    return alerts
