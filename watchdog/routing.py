"""From rule transitions to notifications: which notifier hears about what.

Each transition becomes one notification per notifier it is routed to,
with a dedup key of (notifier, fingerprint, transition, start time): the
outbox refuses a second row with the same key, so evaluating a sample twice
can never notify twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from watchdog.alerts import Alert, Notification, fingerprint, meeting_fingerprint
from watchdog.engine import Transition
from watchdog.stats import format_time


def alert_from(transition: Transition) -> Alert:
    rule, info = transition.rule, transition.info
    context = {
        key: value
        for key, value in (
            ("device", info.device),
            ("device_version", info.device_version),
            ("sdk", info.sdk_name),
            ("sdk_version", info.sdk_version),
            ("country", info.country),
            ("city", info.city),
            ("region", info.region),
            ("asn", info.asn),
            ("network", info.org),
        )
        if value
    }
    identity = fingerprint(rule.name, info.session_id, info.participant_id)
    name = info.name
    if transition.scope == "meeting":
        identity = meeting_fingerprint(rule.name, info.meeting_id or info.session_id)
        name = f"{len(transition.affected)} of {transition.watched} watched participants"
        context["participants"] = ", ".join(transition.affected)
    threshold = transition.threshold if transition.threshold is not None else rule.threshold
    return Alert(
        fingerprint=identity,
        rule=rule.name,
        status=transition.state,
        severity=rule.severity,
        metric=rule.label,
        op=rule.shown_op,
        threshold=threshold if threshold is not None else float("nan"),
        value=transition.value,
        session_id=info.session_id,
        participant_id=info.participant_id,
        starts_at=transition.active_since,
        fired_at=transition.fired_at,
        sample_time=transition.time,
        ends_at=transition.time if transition.state == "resolved" else None,
        meeting_id=info.meeting_id,
        participant_name=name,
        summary=transition.summary,
        description=transition.description,
        labels={"alertname": rule.name, "severity": rule.severity, **rule.labels},
        context=context,
        sparkline=transition.sparkline,
        values=list(transition.values),
        scope=transition.scope,
    )


def dedup_key(notifier: str, alert: Alert) -> str:
    return f"{notifier}|{alert.fingerprint}|{alert.status}|{format_time(alert.starts_at)}"


def route(
    transitions: Iterable[Transition], notifiers: Sequence[str]
) -> list[tuple[str, Notification]]:
    """A rule's ``notify`` names its notifiers; a rule without one goes to all of them."""
    out = []
    for transition in transitions:
        alert = alert_from(transition)
        targets = transition.rule.notify or notifiers
        for name in targets:
            notification = Notification(
                id=uuid.uuid4().hex,
                notifier=name,
                status=alert.status,
                alerts=(alert,),
                thread=f"{alert.fingerprint}@{format_time(alert.starts_at)}",
            )
            out.append((dedup_key(name, alert), notification))
    return out
