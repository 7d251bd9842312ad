"""Slack messages for notifications: Block Kit inside a coloured attachment, plus plain text.

The coloured bar says the severity at a glance; the top-level ``text`` is what
a phone's lock screen and Slack's notification show, so it carries the whole
story in one line. Times use Slack's ``<!date^...>`` so each reader sees them
in their own time zone. Every text that carries alert data is cut to Slack's
limits (:mod:`watchdog_slack.limits`), so no alert, however long its names or
descriptions, makes Slack refuse the message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watchdog.alerts import Alert, Notification
from watchdog.durations import format_duration
from watchdog_slack.limits import (
    FIELD_TEXT,
    HEADER_TEXT,
    MESSAGE_BLOCKS,
    MESSAGE_TEXT,
    SECTION_TEXT,
    TEXT_OBJECT,
    clip,
    fit,
)

COLOURS = {"critical": "#E01E5A", "warning": "#ECB22E", "info": "#36C5F0"}
RESOLVED_COLOUR = "#2EB67D"
ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_ICON = "✅"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
MAX_ALERT_SECTIONS = 20  # past this a grouped message says how many more
# C0/C1 controls and lone surrogates (invisible, or not valid UTF-8 at all) as U+FFFD, a tab
# as a space, newlines kept: a str.translate table, a few ns a character
_UNSHOWABLE = {
    **dict.fromkeys(
        [*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000)], "\ufffd"
    ),
    0x09: " ",
}


def icon(alert: Alert) -> str:
    return RESOLVED_ICON if alert.status == "resolved" else ICONS.get(alert.severity, "🟠")


def worst(alerts: tuple[Alert, ...]) -> Alert:
    """The alert that decides a message's colour: the most severe one still firing."""
    firing = [a for a in alerts if a.status == "firing"] or list(alerts)
    return min(firing, key=lambda a: SEVERITY_ORDER.get(a.severity, 1))


def colour(notification: Notification) -> str:
    if all(a.status == "resolved" for a in notification.alerts):
        return RESOLVED_COLOUR
    return COLOURS.get(worst(notification.alerts).severity, COLOURS["warning"])


def slack_time(moment: datetime, style: str = "{date_short_pretty} {time}") -> str:
    """A time every reader sees in their own zone; UTC where the client cannot."""
    fallback = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{style}|{fallback}>"


def duration(start: datetime, end: datetime) -> str:
    return format_duration(max(end - start, timedelta(0)))


def escape(text: str) -> str:
    """Slack's three control characters escaped, and what cannot be shown made visible.

    Everything else is shown as written; the text may keep its lines.
    """
    if not text.isprintable():  # most names and IDs are: no table to walk
        text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_UNSHOWABLE)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inline(text: str) -> str:
    """:func:`escape` for a value shown inside a line (a name, an ID): one line."""
    return escape(text).replace("\n", " ")


def value_line(alert: Alert) -> str:
    if alert.status == "resolved" and alert.reason:
        return f"{inline(alert.reason)}; last `{inline(alert.condition)}`"
    if alert.status == "resolved":
        return f"`{inline(alert.metric)}` back to {inline(alert.condition.split(' = ', 1)[1])}"
    if alert.reason:  # told again though it kept firing: its silence ended
        return f"{inline(alert.reason)}; `{inline(alert.condition)}`"
    return f"`{inline(alert.condition)}`"


def who(alert: Alert) -> str:
    name = f"*{inline(alert.participant_name or 'unknown participant')}*"
    return f"{name} (`{inline(alert.participant_id)}`)" if alert.participant_id else name


def meeting(alert: Alert) -> str:
    """``meeting `abcd-efgh-ijkl` ``; the daemon's own alerts are about the watchdog."""
    if alert.scope == "daemon":
        return f"`{inline(alert.place)}`"
    return f"meeting `{inline(alert.meeting_id)}`" if alert.meeting_id else "unknown meeting"


def status_word(notification: Notification) -> str:
    if all(a.status == "resolved" for a in notification.alerts):
        return "RESOLVED"
    return "STILL FIRING" if notification.repeat else "FIRING"


def _sparkline(alert: Alert) -> str | None:
    line = getattr(alert, "sparkline", None)  # added by the trend feature; absent before it
    return inline(str(line)) if line else None


def _timing(alert: Alert) -> str:
    if alert.status == "resolved" and alert.ends_at is not None:
        return (
            f"fired {slack_time(alert.fired_at)}, resolved {slack_time(alert.ends_at)} "
            f"(lasted {duration(alert.starts_at, alert.ends_at)})"
        )
    return f"since {slack_time(alert.starts_at)}, fired {slack_time(alert.fired_at)}"


def _context_line(alert: Alert) -> str:
    ctx = alert.context
    parts = [f"session `{inline(alert.session_id)}`"] if alert.session_id else []
    device = " ".join(p for p in (ctx.get("device"), ctx.get("device_version")) if p)
    sdk = " ".join(p for p in (ctx.get("sdk"), ctx.get("sdk_version")) if p)
    place = ", ".join(p for p in (ctx.get("city"), ctx.get("country")) if p)
    parts += [inline(p) for p in (device, f"SDK {sdk}" if sdk else "", place) if p]
    if ctx.get("network"):
        parts.append(inline(ctx["network"]))
    parts.append(f"fingerprint `{inline(alert.fingerprint)}`")
    return " · ".join(parts)


def cause_text(alert: Alert) -> str | None:
    """``*Likely cause*: another participant's uplink (sender-uplink)`` and its evidence, a
    line each; None without a cause."""
    if not alert.likely_cause:
        return None
    lines = [f"*Likely cause*: {escape(alert.likely_cause)}"]
    lines.extend(f"• {escape(line)}" for line in alert.evidence)
    return "\n".join(lines)


def _notes(alert: Alert) -> list[str]:
    """The rule's summary and description, as written (lines kept); blank ones left out."""
    return [escape(n.strip()) for n in (alert.summary, alert.description) if n and n.strip()]


def headline(notification: Notification) -> str:
    """One line for the notification banner and for clients that cannot show blocks.

    Unescaped: :func:`message` escapes and bounds it.
    """
    alerts = notification.alerts
    word = status_word(notification)
    prefix = "(test) " if notification.test else ""
    if len(alerts) == 1:
        alert = alerts[0]
        name = alert.participant_name or alert.participant_id
        where = alert.place
        if alert.status == "firing":
            detail = f"{alert.reason}; {alert.condition}" if alert.reason else alert.condition
        elif alert.reason:
            detail = f"{alert.reason}; last {alert.condition}"
        else:
            detail = f"{alert.metric} back to {alert.condition.split(' = ', 1)[1]}"
        return (
            f"{prefix}{icon(alert)} {word} [{alert.severity}] {alert.rule}: "
            f"{name} in {where}: {detail}"
        )
    firing = sum(a.status == "firing" for a in alerts)
    first = alerts[0]
    where = first.place
    head = worst(alerts)
    mark = RESOLVED_ICON if firing == 0 else ICONS.get(head.severity, "🟠")
    counts = f"{firing} of {len(alerts)} alerts firing" if firing else f"{len(alerts)} alerts"
    rules = ", ".join(sorted({a.rule for a in alerts}))
    return f"{prefix}{mark} {word} {counts} in {where} ({rules})"


def header_block(text: str) -> dict[str, Any]:
    """A header: plain text (Slack shows it as written), one line, at most 150 long."""
    text = text.replace("\n", " ").translate(_UNSHOWABLE)
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, HEADER_TEXT), "emoji": True},
    }


def mrkdwn(text: str, limit: int = TEXT_OBJECT) -> dict[str, str]:
    return {"type": "mrkdwn", "text": fit(text, limit)}


def section_block(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text, SECTION_TEXT)}


def context_block(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(text)]}


def _single(alert: Alert, notification: Notification) -> list[dict[str, Any]]:
    word = status_word(notification)
    blocks: list[dict[str, Any]] = [
        header_block(f"{icon(alert)} {word} · {alert.rule}"),
        {
            "type": "section",
            "text": mrkdwn(f"{who(alert)} in {meeting(alert)}", SECTION_TEXT),
            "fields": [
                mrkdwn(f"*Severity*\n{inline(alert.severity)}", FIELD_TEXT),
                mrkdwn(f"*Value*\n{value_line(alert)}", FIELD_TEXT),
                mrkdwn(f"*Started*\n{slack_time(alert.starts_at)}", FIELD_TEXT),
                mrkdwn(
                    f"*Resolved*\n{slack_time(alert.ends_at)}, "
                    f"lasted {duration(alert.starts_at, alert.ends_at)}"
                    if alert.status == "resolved" and alert.ends_at
                    else f"*Fired*\n{slack_time(alert.fired_at)}",
                    FIELD_TEXT,
                ),
            ],
        },
    ]
    notes = _notes(alert)
    if notes:
        blocks.append(section_block("\n".join(notes)))
    cause = cause_text(alert)
    if cause and alert.status == "firing":
        blocks.append(section_block(cause))
    spark = _sparkline(alert)
    if spark:
        blocks.append(section_block(f"*Trend* ({inline(alert.metric)})\n`{spark}`"))
    blocks.append(context_block(_context_line(alert)))
    return blocks


def _group(notification: Notification, room: int) -> list[dict[str, Any]]:
    """A grouped message in at most ``room`` blocks: a header, counts, a section per alert
    (the first few), and how many more there are."""
    alerts = sorted(
        notification.alerts,
        key=lambda a: (a.status != "firing", SEVERITY_ORDER.get(a.severity, 1), a.rule),
    )
    first = alerts[0]
    firing = sum(a.status == "firing" for a in alerts)
    word = status_word(notification)
    where = first.place
    blocks: list[dict[str, Any]] = [
        header_block(
            f"{icon(worst(notification.alerts))} {word} · {len(alerts)} alerts in {where}"
        ),
        context_block(f"{firing} firing, {len(alerts) - firing} resolved"),
    ]
    shown = max(0, min(MAX_ALERT_SECTIONS, room - len(blocks) - 1))
    for alert in alerts[:shown]:
        lines = [
            f"{icon(alert)} *{inline(alert.rule)}* [{inline(alert.severity)}] — {who(alert)}",
            value_line(alert),
            _timing(alert),
        ]
        spark = _sparkline(alert)
        if spark:
            lines.append(f"trend `{spark}`")
        if alert.likely_cause and alert.status == "firing":
            lines.append(f"likely cause: {inline(alert.likely_cause)}")
        blocks.append(section_block("\n".join(lines)))
    hidden = len(alerts) - shown
    if hidden > 0:
        blocks.append(context_block(f"…and {hidden} more alerts in {inline(where)}"))
    return blocks


def message(
    notification: Notification, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``text`` and ``attachments`` for chat.postMessage, chat.update or a webhook.

    ``extra`` blocks (state lines and buttons) go at the end of the attachment;
    a grouped message shows fewer alerts to leave them room within Slack's 50 blocks.
    """
    extra = extra or []
    head = []
    if notification.test:
        head.append(context_block("🧪 *Test alert* from `videosdk-watchdog notify-test`"))
    alerts = notification.alerts
    room = MESSAGE_BLOCKS - len(head) - len(extra)
    body = _single(alerts[0], notification) if len(alerts) == 1 else _group(notification, room)
    line = fit(inline(headline(notification)), MESSAGE_TEXT)  # Slack parses <...> in text too
    return {
        "text": line,
        "attachments": [
            {"color": colour(notification), "fallback": line, "blocks": head + body + extra}
        ],
    }


def _alert_line(alert: Alert) -> str:
    line = f"{icon(alert)} {inline(alert.rule)} — {who(alert)}: {value_line(alert)}, "
    if alert.status == "resolved" and alert.ends_at is not None:
        line += (
            f"resolved {slack_time(alert.ends_at)} after {duration(alert.starts_at, alert.ends_at)}"
        )
    else:
        line += f"firing since {slack_time(alert.starts_at)}"
    spark = _sparkline(alert)
    return f"{line} `{spark}`" if spark else line


def _alert_lines(alerts: tuple[Alert, ...]) -> list[str]:
    lines = [_alert_line(a) for a in alerts[:MAX_ALERT_SECTIONS]]
    hidden = len(alerts) - MAX_ALERT_SECTIONS
    if hidden > 0:
        lines.append(f"…and {hidden} more")
    return lines


def reply(notification: Notification) -> str:
    """The short thread reply for a resolve, a reminder or a change in a group."""
    if all(a.status == "resolved" for a in notification.alerts):
        head = f"{RESOLVED_ICON} *Resolved*"
    elif notification.repeat:
        head = "🔁 *Still firing*"
    else:
        head = f"{icon(worst(notification.alerts))} *Updated*"
    return fit("\n".join([head, *_alert_lines(notification.alerts)]), MESSAGE_TEXT)


def note(notification: Notification, head: str) -> str:
    """A thread reply that says something about the alerts (an escalation, an
    acknowledgement) above a line per alert."""
    return fit("\n".join([head, *_alert_lines(notification.alerts)]), MESSAGE_TEXT)


def plain(notification: Notification) -> str:
    """The message as text alone, for when Slack refuses its blocks: the headline, a line
    per alert and, for one alert, the rule's summary and description."""
    alerts = notification.alerts
    lines = [inline(headline(notification)), *_alert_lines(alerts)]
    if len(alerts) == 1:
        lines += _notes(alerts[0])
    return fit("\n".join(lines), MESSAGE_TEXT)
