"""Our alerts as Alertmanager's API v2 ``postableAlert`` (``api/v2/openapi.yaml``).

What Prometheus sends (``notifier/util.go``, ``rules/manager.go``): ``labels``,
``annotations``, ``startsAt`` (when the alert fired), ``endsAt`` and ``generatorURL``.
``endsAt`` is when the alert resolved, or, while it fires, a time a few re-send
intervals ahead that the next re-send moves on: if the sender dies, Alertmanager
resolves the alert by itself at that time. Alertmanager 0.25 accepts label and
annotation names of Prometheus's classic grammar only (``[A-Za-z_][A-Za-z0-9_]*``) and
answers 400 for an alert with any other, so annotation names from free text are
mended to that grammar; our label names already follow it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from watchdog.alerts import Alert, alert_labels, format_number

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")
MAX_ANNOTATION = 4096  # characters of one annotation value: a description, not a document


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and ``Z``: what Go's ``strfmt.DateTime`` reads."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _name(text: str) -> str:
    """``text`` as a valid annotation name: other characters become ``_``."""
    if _NAME.match(text):
        return text
    mended = _NOT_NAME.sub("_", text) or "_"
    return mended if not mended[0].isdigit() else "_" + mended


def alert_annotations(alert: Alert) -> dict[str, str]:
    """What describes an alert: summary, description, the value against the threshold,
    why it resolved (or was told again), and the participant's context."""
    out = {
        "summary": alert.title,
        "condition": alert.condition,
        "value": format_number(alert.value),
        "threshold": format_number(alert.threshold),
        "operator": alert.op,
    }
    for name, value in (
        ("description", alert.description),
        ("participant_name", alert.participant_name),
        ("sparkline", alert.sparkline),
    ):
        if value:
            out[name] = value
    if alert.reason:  # resolved without a recovering sample, or told again while firing
        out["resolved_reason" if alert.status == "resolved" else "reason"] = alert.reason
    if alert.likely_cause:  # the cause is also a label; here in words, with its evidence
        out["cause"] = alert.likely_cause
        out["evidence"] = "\n".join(alert.evidence)
    for key, value in alert.context.items():
        out.setdefault(_name(key), value)
    return {name: value[:MAX_ANNOTATION] for name, value in sorted(out.items()) if value}


def labels(alert: Alert, external: Mapping[str, str]) -> dict[str, str]:
    """The alert's labels (our one vocabulary), under the configured external labels."""
    return dict(sorted({**external, **alert_labels(alert)}.items()))


def generator_url(template: str, alert: Alert, hostname: str) -> str:
    """The ``generator_url`` template filled in for one alert."""
    return template.format(
        hostname=hostname,
        rule=alert.rule,
        session_id=alert.session_id,
        participant_id=alert.participant_id,
        meeting_id=alert.meeting_id or "",
        fingerprint=alert.fingerprint,
    )


def postable(alert: Alert, external: Mapping[str, str], url: str) -> dict[str, Any]:
    """The alert without ``endsAt``: the part that stays the same from send to re-send."""
    body: dict[str, Any] = {
        "labels": labels(alert, external),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.fired_at),
    }
    if url:
        body["generatorURL"] = url
    return body


def ends_at(alert: Alert) -> datetime:
    """When a resolved alert ended; never before it fired (Alertmanager refuses that)."""
    return max(alert.ends_at or alert.sample_time, alert.fired_at)
