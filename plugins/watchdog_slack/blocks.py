"""Slack messages for notifications: Block Kit inside a coloured attachment, plus plain text.

The coloured bar says the severity at a glance; the top-level ``text`` is what
a phone's lock screen and Slack's notification show, so it carries the whole
story in one line. Times use Slack's ``<!date^...>`` so each reader sees them
in their own time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watchdog.alerts import Alert, Notification
from watchdog.durations import format_duration

COLOURS = {"critical": "#E01E5A", "warning": "#ECB22E", "info": "#36C5F0"}
RESOLVED_COLOUR = "#2EB67D"
ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_ICON = "✅"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
MAX_ALERT_SECTIONS = 20  # a message holds 50 blocks; past this, say how many more
HEADER_LIMIT = 150  # Slack's limit for a header block's text


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
    """Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def value_line(alert: Alert) -> str:
    if alert.status == "resolved" and alert.reason:
        return f"{escape(alert.reason)}; last `{escape(alert.condition)}`"
    if alert.status == "resolved":
        return f"`{escape(alert.metric)}` back to {escape(alert.condition.split(' = ', 1)[1])}"
    if alert.reason:  # told again though it kept firing: its silence ended
        return f"{escape(alert.reason)}; `{escape(alert.condition)}`"
    return f"`{escape(alert.condition)}`"


def who(alert: Alert) -> str:
    name = escape(alert.participant_name or "unknown participant")
    return f"*{name}* (`{escape(alert.participant_id)}`)"


def meeting(alert: Alert) -> str:
    return f"`{escape(alert.meeting_id)}`" if alert.meeting_id else "unknown meeting"


def status_word(notification: Notification) -> str:
    if all(a.status == "resolved" for a in notification.alerts):
        return "RESOLVED"
    return "STILL FIRING" if notification.repeat else "FIRING"


def _sparkline(alert: Alert) -> str | None:
    line = getattr(alert, "sparkline", None)  # added by the trend feature; absent before it
    return str(line) if line else None


def _timing(alert: Alert) -> str:
    if alert.status == "resolved" and alert.ends_at is not None:
        return (
            f"fired {slack_time(alert.fired_at)}, resolved {slack_time(alert.ends_at)} "
            f"(lasted {duration(alert.starts_at, alert.ends_at)})"
        )
    return f"since {slack_time(alert.starts_at)}, fired {slack_time(alert.fired_at)}"


def _context_line(alert: Alert) -> str:
    ctx = alert.context
    parts = [f"session `{escape(alert.session_id)}`"]
    device = " ".join(p for p in (ctx.get("device"), ctx.get("device_version")) if p)
    sdk = " ".join(p for p in (ctx.get("sdk"), ctx.get("sdk_version")) if p)
    place = ", ".join(p for p in (ctx.get("city"), ctx.get("country")) if p)
    parts += [escape(p) for p in (device, f"SDK {sdk}" if sdk else "", place) if p]
    if ctx.get("network"):
        parts.append(escape(ctx["network"]))
    parts.append(f"fingerprint `{alert.fingerprint}`")
    return " · ".join(parts)


def headline(notification: Notification) -> str:
    """One line for the notification banner and for clients that cannot show blocks."""
    alerts = notification.alerts
    word = status_word(notification)
    prefix = "(test) " if notification.test else ""
    if len(alerts) == 1:
        alert = alerts[0]
        name = alert.participant_name or alert.participant_id
        where = f"meeting {alert.meeting_id}" if alert.meeting_id else f"session {alert.session_id}"
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
    where = f"meeting {first.meeting_id}" if first.meeting_id else f"session {first.session_id}"
    head = worst(alerts)
    mark = RESOLVED_ICON if firing == 0 else ICONS.get(head.severity, "🟠")
    counts = f"{firing} of {len(alerts)} alerts firing" if firing else f"{len(alerts)} alerts"
    rules = ", ".join(sorted({a.rule for a in alerts}))
    return f"{prefix}{mark} {word} {counts} in {where} ({rules})"


def _header(text: str) -> dict[str, Any]:
    if len(text) > HEADER_LIMIT:
        text = text[: HEADER_LIMIT - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _single(alert: Alert, notification: Notification) -> list[dict[str, Any]]:
    word = status_word(notification)
    blocks: list[dict[str, Any]] = [
        _header(f"{icon(alert)} {word} · {alert.rule}"),
        {
            "type": "section",
            "text": _mrkdwn(f"{who(alert)} in meeting {meeting(alert)}"),
            "fields": [
                _mrkdwn(f"*Severity*\n{escape(alert.severity)}"),
                _mrkdwn(f"*Value*\n{value_line(alert)}"),
                _mrkdwn(f"*Started*\n{slack_time(alert.starts_at)}"),
                _mrkdwn(
                    f"*Resolved*\n{slack_time(alert.ends_at)}, "
                    f"lasted {duration(alert.starts_at, alert.ends_at)}"
                    if alert.status == "resolved" and alert.ends_at
                    else f"*Fired*\n{slack_time(alert.fired_at)}"
                ),
            ],
        },
    ]
    notes = [escape(n) for n in (alert.summary, alert.description) if n]
    if notes:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(notes))})
    spark = _sparkline(alert)
    if spark:
        blocks.append(
            {"type": "section", "text": _mrkdwn(f"*Trend* ({escape(alert.metric)})\n`{spark}`")}
        )
    blocks.append({"type": "context", "elements": [_mrkdwn(_context_line(alert))]})
    return blocks


def _group(notification: Notification) -> list[dict[str, Any]]:
    alerts = sorted(
        notification.alerts,
        key=lambda a: (a.status != "firing", SEVERITY_ORDER.get(a.severity, 1), a.rule),
    )
    first = alerts[0]
    firing = sum(a.status == "firing" for a in alerts)
    word = status_word(notification)
    where = f"meeting {first.meeting_id}" if first.meeting_id else f"session {first.session_id}"
    blocks: list[dict[str, Any]] = [
        _header(f"{icon(worst(notification.alerts))} {word} · {len(alerts)} alerts in {where}"),
        {
            "type": "context",
            "elements": [_mrkdwn(f"{firing} firing, {len(alerts) - firing} resolved")],
        },
    ]
    for alert in alerts[:MAX_ALERT_SECTIONS]:
        lines = [
            f"{icon(alert)} *{escape(alert.rule)}* [{escape(alert.severity)}] — {who(alert)}",
            value_line(alert),
            _timing(alert),
        ]
        spark = _sparkline(alert)
        if spark:
            lines.append(f"trend `{spark}`")
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines))})
    hidden = len(alerts) - MAX_ALERT_SECTIONS
    if hidden > 0:
        blocks.append(
            {"type": "context", "elements": [_mrkdwn(f"…and {hidden} more alerts in {where}")]}
        )
    return blocks


def message(
    notification: Notification, extra: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``text`` and ``attachments`` for chat.postMessage, chat.update or a webhook.

    ``extra`` blocks (state lines and buttons) go at the end of the attachment.
    """
    alerts = notification.alerts
    blocks = _single(alerts[0], notification) if len(alerts) == 1 else _group(notification)
    blocks.extend(extra or [])
    if notification.test:
        blocks.insert(
            0,
            {
                "type": "context",
                "elements": [_mrkdwn("🧪 *Test alert* from `videosdk-watchdog notify-test`")],
            },
        )
    line = escape(headline(notification))  # Slack parses <...> even in plain text
    return {
        "text": line,
        "attachments": [{"color": colour(notification), "fallback": line, "blocks": blocks}],
    }


def reply(notification: Notification) -> str:
    """The short thread reply for a resolve, a reminder or a change in a group."""
    if all(a.status == "resolved" for a in notification.alerts):
        head = f"{RESOLVED_ICON} *Resolved*"
    elif notification.repeat:
        head = "🔁 *Still firing*"
    else:
        head = f"{icon(worst(notification.alerts))} *Updated*"
    lines = [head]
    for alert in notification.alerts[:MAX_ALERT_SECTIONS]:
        line = f"{icon(alert)} {escape(alert.rule)} — {who(alert)}: {value_line(alert)}, "
        if alert.status == "resolved" and alert.ends_at is not None:
            line += (
                f"resolved {slack_time(alert.ends_at)} "
                f"after {duration(alert.starts_at, alert.ends_at)}"
            )
        else:
            line += f"firing since {slack_time(alert.starts_at)}"
        spark = _sparkline(alert)
        if spark:
            line += f" `{spark}`"
        lines.append(line)
    hidden = len(notification.alerts) - MAX_ALERT_SECTIONS
    if hidden > 0:
        lines.append(f"…and {hidden} more")
    return "\n".join(lines)
