"""Resolving the alerts of a participant who is no longer watched.

Without this an alert on someone who left the call would stay firing for
ever: no sample will ever show recovery. Each firing alert resolves with a
``reason`` the notifier shows, carrying the last value seen; the resolution
goes through the outbox with the same dedup key and thread an ordinary
resolution would use, and the participant's cursor and alert states are
deleted in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from watchdog.alerts import Notification
from watchdog.engine import Transition
from watchdog.routing import alert_from, dedup_key
from watchdog.stats import ParticipantInfo, format_time
from watchdog.store import Key
from watchdog.telemetry import TRANSITIONS

if TYPE_CHECKING:
    from watchdog.poller import Poller

log = logging.getLogger(__name__)


def depart(poller: Poller, key: Key, reason: str, info: ParticipantInfo) -> int:
    """Resolve ``key``'s firing alerts with ``reason`` and forget its state; returns how many."""
    states = poller.states.get(key, {})
    rules = poller.rules.by_name()
    last = poller.cursors.get(key) or datetime.now(UTC)
    notifications: list[tuple[str, Notification]] = []
    resolved = 0
    ids = {"session_id": key[0], "participant_id": key[1]}
    for name, state in sorted(states.items()):
        rule = rules.get(name)
        if state.phase != "firing" or rule is None or state.fired_at is None:
            continue
        transition = Transition(
            last, rule, info, "resolved", state.value, state.active_since, state.fired_at
        )
        alert = replace(alert_from(transition), reason=reason)
        resolved += 1
        TRANSITIONS.labels(rule.name, "resolved").inc()
        log.info("alert %s resolved: %s", rule.name, reason, extra=ids)
        for target in rule.notify or poller.notifiers:
            notification = Notification(
                id=uuid.uuid4().hex,
                notifier=target,
                status="resolved",
                alerts=(alert,),
                thread=f"{alert.fingerprint}@{format_time(alert.starts_at)}",
            )
            notifications.append((dedup_key(target, alert), notification))
    if not poller.dry_run:
        poller.store.commit_departure(key, notifications)
        if notifications and poller.on_enqueue is not None:
            poller.on_enqueue()
    poller.states.pop(key, None)
    poller.cursors.pop(key, None)
    return resolved
