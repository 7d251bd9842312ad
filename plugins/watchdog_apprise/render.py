"""A notification as Apprise sends it: a title, a plain-text body and a Markdown body.

Both bodies carry the same facts: severity and rule, participant and meeting, value
against threshold, the sparkline, how long, and the reason when there is one; a group
lists its alerts worst first, at most ``max_alerts`` of them, then "… and N more"; a
resolve says resolved and how long it lasted. Every value that comes from a call
(participant names, labels, descriptions) is cut to :data:`MAX_FIELD` characters and, in
Markdown, escaped, so a name like ``**[click](https://evil)**`` is shown, not rendered.
What a body can grow to is bounded by construction: ``max_alerts`` blocks of bounded lines.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchdog.alerts import Alert, Notification, worst_first
from watchdog.durations import format_duration

MAX_FIELD = 200  # characters of one value from a call (a name, a label, a description)
MAX_TITLE = 250  # chat services show far less; a title of a thousand names helps nobody
DEFAULT_TITLE = "{status} [{severity}] {rule}: {who} in {place}"
TITLE_FIELDS = ("status", "severity", "rule", "who", "place", "count", "firing")
"""The names a ``title`` template may use, each a plain ``{name}``."""

# backslash escapes for what could turn a value into markup inline: emphasis, links and
# images, code, raw HTML (Apprise's Markdown-to-HTML turns an escaped < into &lt;), tables
# and spoilers, strike-through. A value never starts a line, so # and - need none.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one notification becomes: the same title for every service, and two bodies."""

    title: str
    text: str
    markdown: str


def title_problem(template: str) -> str | None:
    """Why ``template`` is not a usable title template, or None.

    Only plain ``{name}`` fields of :data:`TITLE_FIELDS`: ``str.format`` would otherwise
    reach attributes (``{rule.__class__}``) or items, and a typo would fail at every send.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"bad template: {exc} (write a literal brace as {{{{ or }}}})"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TITLE_FIELDS or spec or conversion:
            known = ", ".join("{" + f + "}" for f in TITLE_FIELDS)
            return f"unknown field {{{name}}} in the title template (known: {known})"
    return None


def render(notification: Notification, template: str, max_alerts: int) -> Rendered:
    """The title and both bodies for one notification."""
    alerts = worst_first(notification.alerts)
    title = _title(notification, alerts, template)
    return Rendered(
        title=title,
        text=_body(notification, alerts, max_alerts, markdown=False),
        markdown=_body(notification, alerts, max_alerts, markdown=True),
    )


def status_word(notification: Notification) -> str:
    if notification.event == "acknowledged":
        return "ACKNOWLEDGED"
    if notification.event == "unacknowledged":
        return "UNACKNOWLEDGED"
    if all(a.status == "resolved" for a in notification.alerts):
        return "RESOLVED"
    return "STILL FIRING" if notification.repeat else "FIRING"


def worst_severity(alerts: list[Alert]) -> str:
    firing = [a for a in alerts if a.status == "firing"] or alerts
    return min((a.severity for a in firing), key=lambda s: _SEVERITY_RANK.get(s, 1), default="")


def _cut(text: str, limit: int = MAX_FIELD) -> str:
    """One line of at most ``limit`` characters: a value from a call is hostile input."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _title(notification: Notification, alerts: list[Alert], template: str) -> str:
    first = alerts[0] if alerts else None
    firing = sum(a.status == "firing" for a in alerts)
    rules = sorted({a.rule for a in alerts})
    values = {
        "status": status_word(notification),
        "severity": worst_severity(alerts),
        "rule": _cut(", ".join(rules)),
        "who": _cut(first.who) if first and len(alerts) == 1 else f"{len(alerts)} alerts",
        "place": _cut(first.place) if first else "videosdk-watchdog",
        "count": str(len(alerts)),
        "firing": str(firing),
    }
    text = template.format_map(values)
    if notification.test:
        text = "[TEST] " + text
    return _cut(text, MAX_TITLE)


def _md(text: str) -> str:
    """A value shown as itself in Markdown, never as markup."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _cut(text))


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S UTC") if moment else "n/a"


def _how_long(alert: Alert) -> str:
    """``firing for 1m (since 10:00:00 UTC)``, or ``lasted 6m (until 10:06:00 UTC)``: on
    sample times, so a retry hours later still says how long the trouble went on."""
    if alert.status == "resolved":
        end = alert.ends_at or alert.sample_time
        lasted = format_duration(max(end - alert.starts_at, timedelta(0)))
        return f"lasted {lasted} (until {_clock(end)})"
    going = format_duration(max(alert.sample_time - alert.starts_at, timedelta(0)))
    return f"firing for {going} (since {_clock(alert.starts_at)})"


def _value(alert: Alert) -> str:
    if alert.status == "firing":
        return alert.condition
    if alert.reason:  # resolved without a recovering sample: the last value seen
        return f"last {alert.condition}"
    return f"{alert.metric} back to {alert.condition.split(' = ', 1)[1]}"


def _rows(alert: Alert) -> list[tuple[str, str, bool]]:
    """(label, value, from a call) for one alert: values from a call are cut and escaped."""
    if alert.scope == "daemon":
        rows = [("About", alert.who, True)]
    else:
        rows = [("Participant", alert.who, True), ("Meeting", alert.where, True)]
    rows.append(("Value", _value(alert), True))
    if alert.sparkline:
        rows.append(("Trend", alert.sparkline, False))
    rows.append(("Time", _how_long(alert), False))
    if alert.reason:
        rows.append(("Reason", alert.reason, True))
    if alert.likely_cause:
        rows.append(("Likely cause", alert.likely_cause, False))
        rows.extend(("Evidence", line, True) for line in alert.evidence)
    for label, text in (("Summary", alert.summary), ("Description", alert.description)):
        if text:
            rows.append((label, text, True))
    return rows


def _head(alert: Alert) -> str:
    word = "RESOLVED" if alert.status == "resolved" else "FIRING"
    return f"{word} [{alert.severity}] {alert.rule}"


def _alert_lines(alert: Alert, markdown: bool) -> list[str]:
    if not markdown:
        return [_cut(_head(alert)), *(f"{label}: {_cut(v)}" for label, v, _ in _rows(alert))]
    lines = [f"**{_md(_head(alert))}**"]
    for label, value, hostile in _rows(alert):
        shown = _md(value) if hostile else f"`{value}`" if label == "Trend" else value
        lines.append(f"- **{label}:** {shown}")
    return lines


def _summary_line(alert: Alert, markdown: bool) -> str:
    """One alert of a group on one line."""
    if not markdown:
        return _cut(f"{_head(alert)}: {alert.who}: {_value(alert)}, {_how_long(alert)}", 400)
    trend = f" `{alert.sparkline}`" if alert.sparkline else ""
    return (
        f"- **{_md(_head(alert))}**: {_md(alert.who)}: {_md(_value(alert))}{trend}, "
        f"{_how_long(alert)}"
    )


def _body(
    notification: Notification, alerts: list[Alert], max_alerts: int, *, markdown: bool
) -> str:
    lines: list[str] = []
    if notification.test:
        lines += ["Test alert from videosdk-watchdog notify-test: no action needed.", ""]
    if notification.event != "alert":
        who = notification.actor or "someone"
        word = "Acknowledged" if notification.event == "acknowledged" else "Unacknowledged"
        lines += [f"{word} by {_md(who) if markdown else _cut(who)}.", ""]
    elif notification.repeat and any(a.status == "firing" for a in alerts):
        lines += ["Reminder: still firing.", ""]
    if len(alerts) == 1:
        lines += _alert_lines(alerts[0], markdown)
    elif alerts:
        firing = sum(a.status == "firing" for a in alerts)
        place = _md(alerts[0].place) if markdown else _cut(alerts[0].place)
        state = f"{firing} firing" if firing else "all resolved"
        lines += [f"{len(alerts)} alerts in {place} ({state}), worst first:", ""]
        lines += [_summary_line(a, markdown) for a in alerts[:max_alerts]]
        if len(alerts) > max_alerts:
            lines.append(f"… and {len(alerts) - max_alerts} more")
    return "\n".join(lines)
