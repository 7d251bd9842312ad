"""From rule transitions to alerts: what notifiers and the alert manager see.

The alert manager (watchdog.alerting.manager) decides which notifier hears about
an alert, when, and together with which others.
"""

from __future__ import annotations

from watchdog.alerts import Alert, fingerprint, meeting_fingerprint
from watchdog.engine.evaluate import Transition


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
        reason=transition.reason,
        cause=transition.cause,
        evidence=transition.evidence,
        cause_participant=transition.cause_participant,
    )
