"""Resolving the alerts of a participant who is no longer watched.

Without this an alert on someone who left the call would stay firing for
ever: no sample will ever show recovery. Each firing alert resolves with a
``reason`` the notifier shows, carrying the last value seen; the resolution
reaches the alert manager exactly as an ordinary one would (same alert, same
thread), and the participant's cursor and alert states are deleted in the
same transaction.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from watchdog.alerting.from_transitions import alert_from
from watchdog.alerts import Alert
from watchdog.engine.evaluate import transition as make_transition
from watchdog.obs.telemetry import TRANSITIONS
from watchdog.state.leases import StaleLease
from watchdog.state.rows import Key
from watchdog.videosdk.stats import ParticipantInfo

if TYPE_CHECKING:
    from watchdog.poll.poller import Poller

log = logging.getLogger(__name__)


def depart(poller: Poller, key: Key, reason: str, info: ParticipantInfo) -> int:
    """Resolve ``key``'s firing alerts with ``reason`` and forget its state; returns how many."""
    states = poller.states.get(key)
    last = poller.cursors.get(key)
    if states is None:  # several instances: another one polled it; its state is committed
        last, states, _ = poller.store.load_participant(key)
    rules = poller.rules.by_name()
    last = last or datetime.now(UTC)
    alerts: list[tuple[Alert, list[str]]] = []
    resolved = 0
    ids = {"session_id": key[0], "participant_id": key[1]}
    for name, state in sorted(states.items()):
        rule = rules.get(name)
        if state.phase != "firing" or rule is None or state.fired_at is None:
            continue
        transition = make_transition(  # renders the rule's summary/description templates
            rule, info, last, "resolved", value=state.value, state=state, threshold=rule.threshold
        )
        alerts.append((replace(alert_from(transition), reason=reason), rule.notify))
    if not poller.dry_run:
        fence = poller.fence(key) if poller.fence is not None else None
        try:
            poller.store.commit_departure(key, alerts, fence=fence)
        except StaleLease as exc:  # another instance holds the lease: nothing was written
            if poller.on_stale is not None:
                poller.on_stale(key, str(exc))
            else:
                log.warning("%s", exc, extra=ids)
            alerts = []
        if alerts and poller.on_enqueue is not None:
            poller.on_enqueue()
    for alert, _ in alerts:
        resolved += 1
        TRANSITIONS.labels(alert.rule, "resolved").inc()
        log.info("alert %s resolved: %s", alert.rule, reason, extra=ids)
    poller.states.pop(key, None)
    poller.cursors.pop(key, None)
    poller.memories.pop(key, None)  # rule windows (watchdog.engine.evaluate.Memory)
    poller.infos.pop(key, None)
    poller.future_warned.discard(key)
    return resolved
