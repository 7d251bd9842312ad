"""The webhook body: Prometheus Alertmanager's webhook format, version 4.

Existing Alertmanager receivers (chat bridges, incident tools, home-grown
scripts) parse it unchanged: the same top-level keys (those of Alertmanager's
``notify/webhook`` ``Message`` and ``template.Data``), alerts with
``labels``/``annotations``/``startsAt``/``endsAt``, Alertmanager's zero time
as ``endsAt`` while an alert fires, RFC 3339 UTC times, string-only label and
annotation values, and the group's identity from the alert manager
(``groupKey`` stable per group, ``groupLabels`` its ``group_by`` labels).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from watchdog.alerts import Alert, Notification, alert_labels

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Alertmanager sends while firing


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


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
    if alert.reason and alert.status == "resolved":  # no recovering sample: e.g. they left
        out["resolved_reason"] = alert.reason
    elif alert.reason:  # told again though it kept firing, e.g. its silence ended
        out["reason"] = alert.reason
    if alert.participant_name:
        out["participant_name"] = alert.participant_name
    if alert.cause:  # its likely cause, and the lines that say why, one a line
        out["cause"] = alert.cause
        out["evidence"] = "\n".join(alert.evidence)
    sparkline = getattr(alert, "sparkline", None)  # from the trend feature, when present
    if sparkline:
        out["sparkline"] = str(sparkline)
    out.update({k: str(v) for k, v in alert.context.items() if k not in out})
    return dict(sorted(out.items()))


def _alert(alert: Alert, generator_url: str) -> dict[str, Any]:
    resolved = alert.status == "resolved" and alert.ends_at is not None
    return {
        "status": alert.status,
        "labels": dict(sorted(alert_labels(alert).items())),
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
    status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    return {
        "receiver": receiver,
        "status": status,
        "alerts": rendered,
        "notification_reason": notification.reason,
        "groupLabels": dict(sorted(notification.group_labels.items())),
        "commonLabels": _common([alert_labels(a) for a in alerts]),
        "commonAnnotations": _common([alert_annotations(a) for a in alerts]),
        "routeLabels": {},
        "externalURL": external_url,
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(sent),
    }


REPORT_VERSION = "1"


def report_body(notification: Notification, receiver: str) -> dict[str, Any]:
    """A call report or the daily digest (``event`` ``report``/``digest``): not an
    Alertmanager message (it has no place for one), its own documented shape: ``version``,
    ``event``, ``receiver``, the report's fields (``kind``, ``title``, ``lines``, ``start``,
    ``end``, ``figures``, ``meeting_id``, ``session_id``, ``chart_metric``, ``chart``) and
    ``text``, the lines joined as a person reads them."""
    report = notification.report
    assert report is not None
    return {
        "version": REPORT_VERSION,
        "event": notification.event,
        "receiver": receiver,
        **report.to_dict(),
        "text": report.text,
    }
