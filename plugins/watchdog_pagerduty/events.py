"""PagerDuty Events API v2 bodies for one notification: one event per alert.

Pure: notification in, JSON-ready dicts out, so the rules PagerDuty sets (summary within
1,024 characters, ``dedup_key`` within 255, the severity enum, ``source`` on a trigger)
are checked on what is built before anything is sent. ``dedup_key`` is the alert's
fingerprint (one rule on one participant), so the trigger, the acknowledge and the
resolve of one alert land on one PagerDuty alert and a reminder never opens a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from watchdog.alerts import Alert, Notification, alert_labels
from watchdog.durations import format_time

__all__ = [
    "DEFAULT_SEVERITIES",
    "MAX_DEDUP_KEY",
    "MAX_SUMMARY",
    "EventAction",
    "Links",
    "PagerDutySeverity",
    "cut",
    "events",
]

PagerDutySeverity = Literal["critical", "error", "warning", "info"]
EventAction = Literal["trigger", "acknowledge", "resolve"]

MAX_SUMMARY = 1024  # payload.summary, in characters (PagerDuty cuts longer ones itself)
MAX_DEDUP_KEY = 255
MAX_DETAIL = 4096  # one custom_details text: a long rule description stays readable
MAX_VALUES = 120  # the sparkline's numbers: the newest are kept
MAX_EVIDENCE = 20
ELLIPSIS = "…"

DEFAULT_SEVERITIES: dict[str, PagerDutySeverity] = {
    "info": "info",
    "warning": "warning",
    "critical": "critical",
}
UNMAPPED_SEVERITY: PagerDutySeverity = "critical"  # a severity no map names still pages


@dataclass(frozen=True, slots=True)
class Links:
    """Where PagerDuty's incident links back to: the daemon and, per alert, a page of it."""

    external_url: str = ""  # the daemon's UI or status page
    generator_url: str = ""  # a template: {rule} {fingerprint} {meeting_id} ...
    client: str = "videosdk-watchdog"


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut on a character with an ellipsis.

    Counted in UTF-16 code units, which is never fewer than the characters (code points):
    the bound holds whichever of the two the receiver counts, and Python's slicing never
    splits a character's UTF-8 bytes.
    """
    if _units(text) <= limit:
        return text
    budget, used, end = limit - len(ELLIPSIS), 0, 0
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            break
        end += 1
    return text[:end] + ELLIPSIS


def _units(text: str) -> int:
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _number(value: float | None) -> float | str | None:
    """A number JSON can carry: NaN and infinities as text, not as invalid JSON."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def summary(alert: Alert, test: bool) -> str:
    """The line PagerDuty pages with: who, where, the value against the threshold."""
    text = f"{alert.title}: {alert.condition}"
    if alert.reason:  # told again though it kept firing, e.g. its silence ended
        text += f" ({alert.reason})"
    return cut(("(test) " if test else "") + text, MAX_SUMMARY)


def custom_details(alert: Alert, notification: Notification) -> dict[str, Any]:
    """Everything an on-call engineer needs on the incident page, without opening Slack."""
    details: dict[str, Any] = {
        "rule": alert.rule,
        "condition": alert.condition,
        "metric": alert.metric,
        "value": _number(alert.value),
        "op": alert.op,
        "threshold": _number(alert.threshold),
        "severity": alert.severity,
        "participant_id": alert.participant_id or None,
        "participant_name": alert.participant_name,
        "meeting_id": alert.meeting_id,
        "session_id": alert.session_id or None,
        "started": format_time(alert.starts_at),
        "fired": format_time(alert.fired_at),
        "sparkline": alert.sparkline,
        "values": [_number(v) for v in alert.values[-MAX_VALUES:]] or None,
        "description": cut(alert.description, MAX_DETAIL) if alert.description else None,
        "reason": alert.reason,
        "labels": dict(sorted(alert_labels(alert).items())),
        "context": {k: cut(v, MAX_DETAIL) for k, v in sorted(alert.context.items())} or None,
        "notification_reason": notification.reason or None,
        "test": True if notification.test else None,
    }
    # the likely cause and its evidence, on alerts that carry them (issue 20)
    cause = getattr(alert, "cause", None)
    if cause:
        details["cause"] = cut(str(cause), MAX_DETAIL)
    evidence = getattr(alert, "evidence", None)
    if evidence:
        details["evidence"] = [cut(str(e), MAX_DETAIL) for e in list(evidence)[:MAX_EVIDENCE]]
    return {k: v for k, v in details.items() if v is not None}


def _links(alert: Alert, links: Links) -> list[dict[str, str]]:
    out = []
    if links.generator_url:
        href = links.generator_url.format(
            rule=alert.rule,
            fingerprint=alert.fingerprint,
            meeting_id=alert.meeting_id or "",
            session_id=alert.session_id,
            participant_id=alert.participant_id,
        )
        out.append({"href": href, "text": f"{alert.rule} in {links.client}"})
    if links.external_url:
        out.append({"href": links.external_url, "text": links.client})
    return out


def trigger(
    alert: Alert,
    notification: Notification,
    severities: Mapping[str, PagerDutySeverity],
    source: str | None,
    links: Links,
) -> dict[str, Any]:
    """A ``trigger`` event: opens the PagerDuty alert, or updates the open one."""
    event: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": alert.fingerprint,
        "payload": {
            "summary": summary(alert, notification.test),
            "source": source or alert.place,
            "severity": severities.get(alert.severity, UNMAPPED_SEVERITY),
            "timestamp": format_time(alert.fired_at),
            "component": alert.who,
            "group": alert.rule,
            "class": alert.metric,
            "custom_details": custom_details(alert, notification),
        },
        "client": links.client,
    }
    if links.external_url:
        event["client_url"] = links.external_url
    found = _links(alert, links)
    if found:
        event["links"] = found
    return event


def events(
    notification: Notification,
    severities: Mapping[str, PagerDutySeverity],
    source: str | None,
    links: Links,
) -> list[dict[str, Any]]:
    """The events one notification makes, without ``routing_key`` (the sender adds it).

    An alert notice: ``trigger`` for each firing alert, ``resolve`` for each resolved one.
    An acknowledgement notice: ``acknowledge`` for each alert. Any other notice (an
    ``unacknowledged`` one: PagerDuty has no event to give an alert back) makes none.
    """
    if notification.event == "acknowledged":
        return [_bare("acknowledge", a) for a in notification.alerts]
    if notification.event != "alert":
        return []
    return [
        trigger(a, notification, severities, source, links)
        if a.status == "firing"
        else _bare("resolve", a)
        for a in notification.alerts
    ]


def _bare(action: EventAction, alert: Alert) -> dict[str, Any]:
    return {"event_action": action, "dedup_key": alert.fingerprint}
