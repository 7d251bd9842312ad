"""The webhook body: Prometheus Alertmanager's webhook format, version 4.

Existing Alertmanager receivers (chat bridges, incident tools, home-grown
scripts) parse it unchanged: the same top-level keys, alerts with
``labels``/``annotations``/``startsAt``/``endsAt``, Alertmanager's zero time
as ``endsAt`` while an alert fires, RFC 3339 UTC times, string-only label and
annotation values.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from watchdog.alerts import Alert, Notification

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Alertmanager sends while firing


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def alert_labels(alert: Alert) -> dict[str, str]:
    """What identifies the alert: the rule's labels plus who and where."""
    out = {k: str(v) for k, v in alert.labels.items()}
    out.update(
        {
            "alertname": alert.rule,
            "severity": alert.severity,
            "session_id": alert.session_id,
            "participant_id": alert.participant_id,
        }
    )
    if alert.meeting_id:
        out["meeting_id"] = alert.meeting_id
    return dict(sorted(out.items()))


def alert_annotations(alert: Alert) -> dict[str, str]:
    """What describes it: summary, the value against the threshold, context."""
    out = {
        "summary": alert.title,
        "condition": alert.condition,
        "metric": alert.metric,
        "operator": alert.op,
        "threshold": _number(alert.threshold),
        "value": _number(alert.value),
        "active_since": rfc3339(alert.starts_at),
    }
    if alert.description:
        out["description"] = alert.description
    if alert.reason:  # resolved without a recovering sample, e.g. the participant left
        out["resolved_reason"] = alert.reason
    if alert.participant_name:
        out["participant_name"] = alert.participant_name
    sparkline = getattr(alert, "sparkline", None)  # from the trend feature, when present
    if sparkline:
        out["sparkline"] = str(sparkline)
    out.update({k: str(v) for k, v in alert.context.items() if k not in out})
    return dict(sorted(out.items()))


def _alert(alert: Alert, generator_url: str) -> dict[str, Any]:
    resolved = alert.status == "resolved" and alert.ends_at is not None
    return {
        "status": alert.status,
        "labels": alert_labels(alert),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.fired_at),
        "endsAt": rfc3339(alert.ends_at) if resolved and alert.ends_at else ZERO_TIME,
        "generatorURL": generator_url.format(
            rule=alert.rule,
            session_id=alert.session_id,
            participant_id=alert.participant_id,
            meeting_id=alert.meeting_id or "",
            fingerprint=alert.fingerprint,
        )
        if generator_url
        else "",
        "fingerprint": alert.fingerprint,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def group_labels(alerts: tuple[Alert, ...]) -> dict[str, str]:
    """The labels the group was formed by: the meeting for a group, else the alert itself."""
    common = _common([alert_labels(a) for a in alerts])
    keys = ("meeting_id",) if len(alerts) > 1 else ("alertname", "participant_id", "session_id")
    chosen = {k: common[k] for k in keys if k in common}
    return chosen or {k: common[k] for k in ("alertname",) if k in common}


def group_key(groups: dict[str, str]) -> str:
    """Alertmanager's ``{route}:{labels}`` shape; stable from firing to resolved."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(groups.items()))
    return "{}:{" + inner + "}"


def body(
    notification: Notification,
    receiver: str,
    external_url: str = "",
    generator_url: str = "",
    max_alerts: int = 0,
) -> dict[str, Any]:
    alerts = notification.alerts
    sent = alerts[:max_alerts] if max_alerts else alerts
    rendered = [_alert(a, generator_url) for a in sent]
    groups = group_labels(alerts)
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return {
        "receiver": receiver,
        "status": status,
        "alerts": rendered,
        "groupLabels": groups,
        "commonLabels": _common([alert_labels(a) for a in alerts]),
        "commonAnnotations": _common([alert_annotations(a) for a in alerts]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key(groups),
        "truncatedAlerts": len(alerts) - len(sent),
    }
