"""Resolving the alerts of a participant who is no longer watched.

Without this an alert on someone who left the call would stay firing for
ever: no sample will ever show recovery. Each firing alert resolves with a
``reason`` the notifier shows ("left while degraded", "the session ended"),
carrying the last value seen; the resolution reaches the alert manager exactly
as an ordinary one would (same alert, same thread). The engine makes the
transitions (``replay`` and ``test-rules`` make the same ones); the poller writes
them, and forgets the participant, in one transaction (``Poller.depart``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from watchdog.alerting.from_transitions import alert_from
from watchdog.alerts import Alert
from watchdog.engine.evaluate import departure
from watchdog.engine.rules import RuleSet
from watchdog.poll.participants import Tracked
from watchdog.videosdk.stats import ParticipantInfo


def resolutions(
    rules: RuleSet, tracked: Tracked, info: ParticipantInfo, reason: str
) -> list[tuple[Alert, list[str]]]:
    """The (alert, rule notify) resolutions of the participant's firing alerts."""
    last = tracked.cursor or datetime.now(UTC)
    return [
        (alert_from(t), t.rule.notify) for t in departure(rules, info, tracked.states, last, reason)
    ]
