"""From rule transitions to alerts: what notifiers and the alert manager see.

The alert manager (watchdog.alertmanager) decides which notifier hears about
an alert, when, and together with which others.
"""

from __future__ import annotations

from watchdog.alerts import Alert, fingerprint
from watchdog.engine import Transition


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
    return Alert(
        fingerprint=fingerprint(rule.name, info.session_id, info.participant_id),
        rule=rule.name,
        status=transition.state,
        severity=rule.severity,
        metric=rule.metric,
        op=rule.op,
        threshold=rule.threshold,
        value=transition.value,
        session_id=info.session_id,
        participant_id=info.participant_id,
        starts_at=transition.active_since,
        fired_at=transition.fired_at,
        sample_time=transition.time,
        ends_at=transition.time if transition.state == "resolved" else None,
        meeting_id=info.meeting_id,
        participant_name=info.name,
        summary=rule.summary,
        description=rule.description,
        labels={"alertname": rule.name, "severity": rule.severity, **rule.labels},
        context=context,
    )
