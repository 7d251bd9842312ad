"""Alert mail: a subject that tells the story in the inbox list, a text part and an HTML part.

The subject alone must let an on-call engineer decide whether to get up:
status, severity, rule, participant and meeting. Both parts carry the same
facts; the HTML part adds the severity colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from html import escape

from watchdog.alerts import Alert, MeetingChanges, Notification, Report, why_over
from watchdog.durations import format_duration

COLOURS = {"critical": "#d0312d", "warning": "#e8a317", "info": "#2f80ed"}
RESOLVED_COLOUR = "#2e9e5b"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
MAX_SUBJECT = 250  # the inbox shows far less; a header of a thousand names helps nobody
# controls but tab and newline, lone surrogates, and Unicode's noncharacters (U+FDD0..U+FDEF
# and the last two code points of every plane): not text, and HTML parsers call them errors.
# A str.translate table: a few ns a character, over a whole document.
_UNSHOWABLE = dict.fromkeys(
    [
        *range(0x09),
        *range(0x0B, 0x20),
        *range(0x7F, 0xA0),
        *range(0xD800, 0xE000),
        *range(0xFDD0, 0xFDF0),
        *(plane * 0x10000 + last for plane in range(17) for last in (0xFFFE, 0xFFFF)),
    ],
    "\ufffd",
)


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "n/a"


def lasted(alert: Alert) -> str:
    if alert.ends_at is None:
        return ""
    return format_duration(max(alert.ends_at - alert.starts_at, timedelta(0)))


def over(notification: Notification) -> bool:
    return all(a.status == "resolved" for a in notification.alerts)


def status_word(notification: Notification) -> str:
    if notification.event != "alert":  # an acknowledgement notice, not a new firing
        return notification.event.upper()
    if over(notification):
        return "RESOLVED"
    return "STILL FIRING" if notification.repeat else "FIRING"


def owner_change(notification: Notification) -> str:
    """An acknowledgement notice's first line: who took the alerts, or gave them back."""
    who = notification.actor or "someone"
    if notification.event == "acknowledged":
        return f"Acknowledged by {who}: no more reminders or escalation."
    return f"Unacknowledged ({who}): reminders and escalation resume."


def worst(alerts: Sequence[Alert]) -> Alert:
    firing = [a for a in alerts if a.status == "firing"] or list(alerts)
    return min(firing, key=lambda a: SEVERITY_ORDER.get(a.severity, 1))


def subject(notification: Notification, prefix: str) -> str:
    alerts = notification.alerts
    head = worst(alerts)
    tag = f"[{status_word(notification)}:{head.severity}]"
    if notification.test:
        tag = "[TEST] " + tag
    if len(alerts) == 1:
        name = head.participant_name or "unknown participant"
        if head.participant_id:
            name = f"{name} ({head.participant_id})"
        text = f"{tag} {head.rule}: {name} in {head.place}"
    else:
        firing = sum(a.status == "firing" for a in alerts)
        count = f"{firing} of {len(alerts)} alerts" if firing else f"{len(alerts)} alerts"
        rules = ", ".join(sorted({a.rule for a in alerts}))
        text = f"{tag} {count} in {alerts[0].place}: {rules}"
    return header_value(f"{prefix} {text}")


def header_value(text: str) -> str:
    """``text`` for a mail header: one line (a header cannot hold a line break), at most
    :data:`MAX_SUBJECT` long."""
    line = " ".join(_shown(text).split())
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 1].rstrip() + "…"


def _shown(text: str) -> str:
    """``text`` with what a mail must not carry made visible: control characters (but
    newline and tab), lone surrogates and Unicode noncharacters become U+FFFD."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.replace("\n", "").replace("\t", "").isprintable():  # all in the table is not
        return text
    return text.translate(_UNSHOWABLE)


def _detail(alert: Alert) -> list[tuple[str, str]]:
    """(label, value) rows for one alert, shared by the text and HTML parts."""
    if alert.status == "firing":
        value = alert.condition
    elif alert.reason:
        value = f"last {alert.condition}"
    else:
        value = f"{alert.metric} back to {alert.condition.split(' = ', 1)[1]}"
    if alert.scope == "daemon":  # the watchdog's own: no meeting, session or participant
        rows = [("About", alert.who)]
    else:
        rows = [
            ("Participant", alert.who),
            ("Meeting", alert.meeting_id or "unknown"),
            ("Session", alert.session_id),
        ]
    rows += [
        ("Value", value),
        ("Severity", alert.severity),
        ("Started", when(alert.starts_at)),
        ("Fired", when(alert.fired_at)),
    ]
    if alert.status == "resolved":
        rows.append(("Resolved", f"{when(alert.ends_at)} (lasted {lasted(alert)})"))
    if alert.reason:  # resolved without recovering, or told again as its silence ended
        rows.append(("Reason", alert.reason))
    if alert.likely_cause:
        rows.append(("Likely cause", alert.likely_cause))
        rows.extend(("Evidence", line) for line in alert.evidence)
    sparkline = getattr(alert, "sparkline", None)  # from the trend feature, when present
    if sparkline:
        rows.append(("Trend", str(sparkline)))
    for label, text in (("Summary", alert.summary), ("Description", alert.description)):
        if text:
            rows.append((label, text))
    ctx = alert.context
    device = " ".join(p for p in (ctx.get("device"), ctx.get("device_version")) if p)
    sdk = " ".join(p for p in (ctx.get("sdk"), ctx.get("sdk_version")) if p)
    place = ", ".join(p for p in (ctx.get("city"), ctx.get("region"), ctx.get("country")) if p)
    for label, text in (("Device", device), ("SDK", sdk), ("Location", place)):
        if text:
            rows.append((label, text))
    if ctx.get("network"):
        rows.append(("Network", " ".join(p for p in (ctx.get("asn"), ctx["network"]) if p)))
    for key, label_value in sorted(alert.labels.items()):
        if key not in {"alertname", "severity"}:
            rows.append((f"Label {key}", label_value))
    rows.append(("Fingerprint", alert.fingerprint))
    return rows


def _title(alert: Alert) -> str:
    word = "RESOLVED" if alert.status == "resolved" else "FIRING"
    return f"{word} [{alert.severity}] {alert.rule}"


def text_body(notification: Notification) -> str:
    lines: list[str] = []
    if notification.test:
        lines += ["Test alert from videosdk-watchdog notify-test: no action needed.", ""]
    if notification.event != "alert":
        lines += [owner_change(notification), ""]
    elif notification.repeat and not over(notification):
        lines += ["Reminder: still firing.", ""]
    if len(notification.alerts) > 1:
        firing = sum(a.status == "firing" for a in notification.alerts)
        lines += [
            f"{len(notification.alerts)} alerts in {notification.alerts[0].place} "
            f"({firing} firing)",
            "",
        ]
    for alert in notification.alerts:
        lines.append(_title(alert))
        lines += [f"  {label + ':':<14}{value}" for label, value in _detail(alert)]
        lines.append("")
    lines.append("-- ")
    lines.append("videosdk-watchdog")
    return _shown("\n".join(lines))


def _colour(alert: Alert) -> str:
    if alert.status == "resolved":
        return RESOLVED_COLOUR
    return COLOURS.get(alert.severity, COLOURS["warning"])


def html_body(
    notification: Notification, charts: Mapping[str, str] | None = None, title: str | None = None
) -> str:
    """The HTML part; ``charts`` maps an alert's fingerprint to the Content-ID of its chart.

    A complete document (charset, language, a ``<title>``: the subject unless ``title``
    is given), so clients and validators read it the same way.
    """
    heading = subject(notification, "") if title is None else title
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(heading)}</title></head>"
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,'
        'Arial,sans-serif;font-size:15px;color:#1d1d1f;margin:0;padding:12px">'
    ]
    if notification.test:
        parts.append(
            "<p><em>Test alert from <code>videosdk-watchdog notify-test</code>: "
            "no action needed.</em></p>"
        )
    if notification.event != "alert":
        parts.append(f"<p><strong>{escape(owner_change(notification))}</strong></p>")
    elif notification.repeat and not over(notification):
        parts.append("<p><strong>Reminder: still firing.</strong></p>")
    if len(notification.alerts) > 1:
        firing = sum(a.status == "firing" for a in notification.alerts)
        parts.append(
            f"<p>{len(notification.alerts)} alerts in {escape(notification.alerts[0].place)} "
            f"({firing} firing)</p>"
        )
    for alert in notification.alerts:
        colour = _colour(alert)
        parts.append(
            f'<table role="presentation" style="border-collapse:collapse;width:100%;'
            f'max-width:640px;margin:0 0 16px 0;border-left:6px solid {colour}">'
            f'<tr><td colspan="2" style="padding:8px 12px;font-size:17px;font-weight:600;'
            f'color:{colour}">{escape(_title(alert))}</td></tr>'
        )
        for label, value in _detail(alert):
            style = "font-family:ui-monospace,Menlo,monospace" if label in {"Trend"} else ""
            parts.append(
                '<tr><td style="padding:2px 12px;color:#6e6e73;vertical-align:top;'
                f'white-space:nowrap">{escape(label)}</td>'
                f'<td style="padding:2px 12px;{style}">{escape(value)}</td></tr>'
            )
        cid = (charts or {}).get(alert.fingerprint)
        if cid:
            parts.append(
                f'<tr><td colspan="2" style="padding:6px 12px"><img src="cid:{escape(cid)}" '
                f'alt="{escape(alert.metric)} chart" width="600" style="max-width:100%"></td></tr>'
            )
        parts.append("</table>")
    parts.append('<p style="color:#6e6e73;font-size:12px">videosdk-watchdog</p></body></html>')
    return _shown("".join(parts))


# -- the meeting view (group_by: [meeting_id]): one thread per meeting --------------------

MAX_LISTED = 50  # participants (and changes) a meeting mail lists; then "...and N more"


def _affected_count(changes: MeetingChanges, watched: int | None) -> str:
    count = len(changes.affected)
    if watched is None or watched < count or watched == 0:
        return f"{count} participant{'' if count == 1 else 's'}"
    return f"{count} of {watched} watched participants"


def meeting_subject(notification: Notification, changes: MeetingChanges, prefix: str) -> str:
    """``[DEGRADED:critical] meeting abcd-efgh-ijkl: 7 of 12 watched participants affected``,
    ``[OVER] meeting ...: the session ended, after 34m``: the state in the inbox list."""
    meeting = notification.meeting or "unknown"
    if changes.over:
        text = (
            f"[OVER] meeting {meeting}: {why_over(notification)}, "
            f"after {format_duration(changes.lasted)}"
        )
    else:
        head = worst([*changes.meeting_alerts, *(x.worst for x in changes.affected)])
        counts = _affected_count(changes, notification.watched)
        text = f"[DEGRADED:{head.severity}] meeting {meeting}: {counts} affected"
    return header_value(f"{prefix} {text}")


def _state_line(alert: Alert) -> str:
    """``[critical] poor-video: Alice (p1): qualityScore.video = 2.41 (threshold < 3)``."""
    value = dict(_detail(alert))["Value"]
    line = f"[{alert.severity}] {alert.rule}: {alert.who}: {value}"
    if alert.reason:
        line += f" ({alert.reason})"
    if alert.cause and alert.status == "firing":
        line += f"; likely cause: {alert.likely_cause}"
    if alert.status == "resolved":
        line = f"RESOLVED {line}, after {lasted(alert)}"
    return line


def _meeting_sections(
    notification: Notification, changes: MeetingChanges
) -> list[tuple[str, list[str]]]:
    """(title, lines) of a meeting mail, shared by its text and HTML parts."""
    meeting = notification.meeting or "unknown"
    state = (
        f"Over: {why_over(notification)}, after {format_duration(changes.lasted)} "
        f"(from {when(changes.since)} until {when(changes.ended_at)}); "
        f"at most {changes.peak} participants were affected at once."
        if changes.over
        else f"{_affected_count(changes, notification.watched)} affected"
        + (f" (at most {changes.peak})" if changes.peak > len(changes.affected) else "")
        + f", since {when(changes.since)} ({format_duration(changes.lasted)} so far)."
    )
    sections = [(f"Meeting {meeting}", [state])]
    if notification.repeat and not changes.over:
        sections[0][1].append("Reminder: still degraded.")
    moves = [*changes.degraded, *changes.recovered]
    if moves:
        sections.append(("What changed", _capped([_state_line(a) for a in moves])))
    if changes.meeting_alerts:
        sections.append(("Meeting-wide", [_state_line(a) for a in changes.meeting_alerts]))
    if changes.affected:
        people = [
            _state_line(x.worst) + (f" (+{x.firing - 1} more)" if x.firing > 1 else "")
            for x in changes.affected
        ]
        sections.append(("Affected participants (worst metric each)", _capped(people)))
    return sections


def _capped(lines: list[str]) -> list[str]:
    hidden = len(lines) - MAX_LISTED
    return lines[:MAX_LISTED] + ([f"...and {hidden} more"] if hidden > 0 else [])


def meeting_text(notification: Notification, changes: MeetingChanges) -> str:
    lines: list[str] = []
    for title, rows in _meeting_sections(notification, changes):
        lines += [title, *(f"  {row}" for row in rows), ""]
    lines += ["-- ", "videosdk-watchdog"]
    return _shown("\n".join(lines))


def meeting_html(
    notification: Notification, changes: MeetingChanges, title: str, chart: str | None = None
) -> str:
    """The meeting mail's HTML part; ``chart`` is the Content-ID of the worst alert's chart."""
    colour = (
        RESOLVED_COLOUR
        if changes.over
        else COLOURS.get(
            worst([*changes.meeting_alerts, *(x.worst for x in changes.affected)]).severity,
            COLOURS["warning"],
        )
    )
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>"
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,'
        'Arial,sans-serif;font-size:15px;color:#1d1d1f;margin:0;padding:12px">'
    ]
    for index, (heading, rows) in enumerate(_meeting_sections(notification, changes)):
        style = f"border-left:6px solid {colour};padding-left:10px" if index == 0 else ""
        parts.append(f'<h2 style="font-size:17px;{style}">{escape(heading)}</h2><ul>')
        parts += [f"<li>{escape(row)}</li>" for row in rows]
        parts.append("</ul>")
    if chart:
        parts.append(
            f'<p><img src="cid:{escape(chart)}" alt="chart of the worst metric" width="600" '
            'style="max-width:100%"></p>'
        )
    parts.append('<p style="color:#6e6e73;font-size:12px">videosdk-watchdog</p></body></html>')
    return _shown("".join(parts))


def report_html(report: Report, chart: str | None) -> str:
    """A report's HTML part: its lines as written, and the chart (by Content-ID) if any."""
    lines = "\n".join(escape(_shown(line)) for line in report.lines)
    image = (
        f'<p><img src="cid:{chart}" alt="{escape(report.chart_metric or "quality")} '
        'over the call" style="max-width:100%"></p>'
        if chart
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(_shown(report.title))}</title></head><body>"
        f"<h3>{escape(_shown(report.title))}</h3>"
        f'<pre style="font-family:monospace">{lines}</pre>{image}</body></html>'
    )
