"""The meeting view in Slack: one message per meeting, edited in place, and its thread.

With ``group_by: [meeting_id]`` every notification of a meeting's group carries all
of its firing alerts. The channel message shows the meeting as it is now (how
many of its watched participants are affected, the worst metric of each, since
when, the latest chart); each notification's transitions (who went bad, who
recovered) go in one reply in its thread, never broadcast to the channel. When
nothing fires any more the message says the trouble is over, why, and how long
it lasted. Every text is cut to Slack's limits (:mod:`watchdog_slack.limits`)
however many participants the meeting has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from watchdog.alerts import (
    Affected,
    Alert,
    MeetingChanges,
    Notification,
    meeting_changes,
    why_over,
    worst_first,
)
from watchdog.durations import format_duration
from watchdog_slack.blocks import (
    COLOURS,
    RESOLVED_COLOUR,
    RESOLVED_ICON,
    context_block,
    header_block,
    icon,
    inline,
    mrkdwn,
    section_block,
    slack_time,
    value_line,
    who,
)
from watchdog_slack.limits import (
    FIELD_TEXT,
    MESSAGE_BLOCKS,
    MESSAGE_TEXT,
    SECTION_TEXT,
    clip,
    fit,
    size,
)

MAX_PARTICIPANTS = 20  # affected participants listed in the message; then "and N more"
MAX_MEETING_ALERTS = 5  # meeting-level alerts listed
MAX_TRANSITIONS = 20  # lines of one thread reply
LINE = 600  # one participant's line at most (names are 256 at most; a line stays readable)
OVER_ICON = "🏁"
PEOPLE = "Affected participants (worst metric each)"
ALT_TEXT = 2000  # an image block's alt_text


def affected_text(changes: MeetingChanges, watched: int | None) -> str:
    """``7 of 12 watched participants``; ``7 participants`` where the watch list does not
    know the meeting (or no longer watches all of them)."""
    count = len(changes.affected)
    if watched is None or watched < count or watched == 0:
        return f"{count} participant{'' if count == 1 else 's'}"
    return f"{count} of {watched} watched participants"


def _icon(changes: MeetingChanges) -> str:
    worst = _worst(changes)
    return RESOLVED_ICON if changes.over or worst is None else icon(worst)


def _worst(changes: MeetingChanges) -> Alert | None:
    firing = [*changes.meeting_alerts, *(x.worst for x in changes.affected)]
    return worst_first(firing)[0] if firing else None


def _rules(notification: Notification) -> str:
    return ", ".join(sorted({a.rule for a in notification.alerts}))


def headline(notification: Notification, changes: MeetingChanges) -> str:
    """The one line a phone's lock screen shows; unescaped (the callers escape it)."""
    meeting = notification.meeting or "unknown"
    if changes.over:
        return (
            f"{RESOLVED_ICON} OVER meeting {meeting}: {why_over(notification)}, "
            f"after {format_duration(changes.lasted)}"
        )
    counts = affected_text(changes, notification.watched)
    if changes.meeting_alerts and not changes.affected:
        counts = f"{len(changes.meeting_alerts)} meeting-wide alerts"
    return (
        f"{_icon(changes)} DEGRADED meeting {meeting}: {counts} affected ({_rules(notification)})"
    )


def participant_line(affected: Affected) -> str:
    """One affected participant: who, the worst firing rule and its value, how many more."""
    alert = affected.worst
    more = f" (+{affected.firing - 1} more)" if affected.firing > 1 else ""
    line = f"{icon(alert)} {who(alert)} *{inline(alert.rule)}* {value_line(alert)}"
    return fit(line + more + _cause(alert), LINE)


def _cause(alert: Alert) -> str:
    """`` · likely cause: sender-uplink (Bob's send loss 18; 4 of 5 watched receivers of Bob
    degraded)``: the first evidence line says the most; empty without a cause."""
    if not alert.cause or alert.status != "firing":
        return ""
    first = f" ({inline(alert.evidence[0])})" if alert.evidence else ""
    return f" · likely cause: {inline(alert.cause)}{first}"


def _meeting_alert_line(alert: Alert) -> str:
    shown = inline(alert.participant_name or "several participants")
    line = f"{icon(alert)} *{inline(alert.rule)}* — {shown}: {value_line(alert)}"
    return fit(line, LINE)


def _packed(title: str, lines: Sequence[str]) -> list[dict[str, Any]]:
    """``lines`` under a bold ``title``, as few sections as Slack's 3,000 allow."""
    sections: list[list[str]] = [[f"*{title}*"]]
    used = size(sections[0][0])
    for line in lines:
        if used + 1 + size(line) > SECTION_TEXT:
            sections.append([])
            used = -1
        sections[-1].append(line)
        used += 1 + size(line)
    return [section_block("\n".join(part)) for part in sections if part]


def blocks(
    notification: Notification,
    changes: MeetingChanges,
    chart: Mapping[str, Any] | None = None,
    extra: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The message's blocks: the state, the people, the chart (its record: ``file``, the
    Slack file's ID, and ``title``), then ``extra`` (the buttons)."""
    meeting = inline(notification.meeting or "unknown")
    worst = _worst(changes)
    word = "OVER" if changes.over else "DEGRADED"
    peak = f" (at most {changes.peak})" if changes.peak > len(changes.affected) else ""
    lasted = format_duration(changes.lasted)
    timing = (
        f"*Lasted*\n{lasted}, until {slack_time(changes.ended_at)}"
        if changes.over and changes.ended_at is not None
        else f"*Going on for*\n{lasted}"
    )
    noun = "participant" if changes.peak == 1 else "participants"
    affected = (
        f"*Affected*\nat most {changes.peak} {noun}"
        if changes.over
        else f"*Affected*\n{affected_text(changes, notification.watched)}{peak}"
    )
    fields = [
        affected,
        f"*Worst*\n{inline(worst.severity)} · {inline(worst.rule)}" if worst else "*Worst*\n—",
        f"*Since*\n{slack_time(changes.since)}",
        timing,
    ]
    out: list[dict[str, Any]] = [
        header_block(f"{_icon(changes)} {word} · meeting {notification.meeting or 'unknown'}"),
        {"type": "section", "fields": [mrkdwn(f, FIELD_TEXT) for f in fields]},
    ]
    if changes.over:
        out.append(
            section_block(f"{OVER_ICON} *Over*: {inline(why_over(notification))}, after {lasted}")
        )
    if changes.meeting_alerts:
        lines = [_meeting_alert_line(a) for a in changes.meeting_alerts[:MAX_MEETING_ALERTS]]
        if len(changes.meeting_alerts) > MAX_MEETING_ALERTS:
            lines.append(f"…and {len(changes.meeting_alerts) - MAX_MEETING_ALERTS} more")
        out += _packed("Meeting-wide", lines)
    tail = [
        *([_image(chart)] if chart else []),
        context_block(
            f"meeting `{meeting}` · rules: {inline(_rules(notification))} · "
            f"updated {slack_time(changes.now)}"
        ),
        *extra,
    ]
    room = MESSAGE_BLOCKS - len(out) - len(tail) - 1  # one for "and N more"
    shown = list(changes.affected[:MAX_PARTICIPANTS])
    people = _packed(PEOPLE, [participant_line(x) for x in shown])
    while len(people) > room and shown:  # only with most of the 50 blocks taken by extra
        shown = shown[: len(shown) // 2]
        people = _packed(PEOPLE, [participant_line(x) for x in shown])
    if shown:
        out += people
    hidden = len(changes.affected) - len(shown)
    if hidden > 0:
        out.append(context_block(f"…and {hidden} more affected participants"))
    return out + tail


def chart_title(alert: Alert) -> str:
    """What a chart shows, as its title and the image's alternative text."""
    who = alert.participant_name or alert.participant_id or "the meeting"
    return f"{alert.rule}: {alert.metric} · {who}"


def _image(chart: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "image",
        "slack_file": {"id": str(chart["file"])},
        "alt_text": clip(f"chart of {chart.get('title') or 'the worst metric'}", ALT_TEXT),
    }


def body(
    notification: Notification,
    changes: MeetingChanges,
    chart: Mapping[str, Any] | None = None,
    extra: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``text`` and ``attachments`` for chat.postMessage or chat.update."""
    if changes.over:
        colour = RESOLVED_COLOUR
    else:
        worst = _worst(changes)
        colour = COLOURS.get(worst.severity if worst else "warning", COLOURS["warning"])
    line = fit(inline(headline(notification, changes)), MESSAGE_TEXT)
    return {
        "text": line,
        "attachments": [
            {
                "color": colour,
                "fallback": line,
                "blocks": blocks(notification, changes, chart, extra),
            }
        ],
    }


def _transition(alert: Alert) -> str:
    """A participant going bad (``🔴 *Alice* (`p1`) *poor-video* `qualityScore.video = 2.4
    (threshold < 3)```) or recovering (``✅ ... back to 4.2 (threshold < 3) after 3m``)."""
    line = f"{icon(alert)} {who(alert)} *{inline(alert.rule)}* {value_line(alert)}"
    if alert.status == "resolved":
        end = alert.ends_at or alert.sample_time
        line += f" after {format_duration(max(end - alert.starts_at, timedelta(0)))}"
    return fit(line + _cause(alert), LINE)


def reply(notification: Notification, changes: MeetingChanges) -> str | None:
    """The thread reply for this notification's transitions; None when it has none."""
    counts = affected_text(changes, notification.watched)
    went, back = len(changes.degraded), len(changes.recovered)
    if changes.over:
        head = (
            f"{OVER_ICON} *Over* after {format_duration(changes.lasted)}: "
            f"{inline(why_over(notification))}"
        )
    elif notification.repeat:
        head = f"🔁 *Still degraded*: {counts} for {format_duration(changes.lasted)}"
    elif went or back:
        parts = [
            f"{went} new {'alert' if went == 1 else 'alerts'}" if went else "",
            f"{back} resolved" if back else "",
        ]
        head = f"{_icon(changes)} *{', '.join(p for p in parts if p)}* · now {counts} affected"
    else:
        return None
    moves = [*changes.degraded, *changes.recovered]
    lines = [_transition(a) for a in moves[:MAX_TRANSITIONS]]
    if len(moves) > MAX_TRANSITIONS:
        lines.append(f"…and {len(moves) - MAX_TRANSITIONS} more")
    return fit("\n".join([head, *lines]), MESSAGE_TEXT)


def plain(notification: Notification, changes: MeetingChanges) -> str:
    """The message as text alone, for when Slack refuses its blocks."""
    lines = [inline(headline(notification, changes))]
    lines += [_meeting_alert_line(a) for a in changes.meeting_alerts[:MAX_MEETING_ALERTS]]
    lines += [participant_line(x) for x in changes.affected[:MAX_PARTICIPANTS]]
    hidden = len(changes.affected) - MAX_PARTICIPANTS
    if hidden > 0:
        lines.append(f"…and {hidden} more affected participants")
    return fit("\n".join(lines), MESSAGE_TEXT)


def button_alerts(changes: MeetingChanges, count: int) -> tuple[Alert, ...]:
    """The firing alerts that get buttons: the meeting-wide ones, then the worst people's."""
    return tuple([*changes.meeting_alerts, *(x.worst for x in changes.affected)][:count])


def kept(notification: Notification) -> Notification:
    """The notification as the message's record keeps it, to draw the message again after
    a click: what the message shows, without what only a first message or a chart needs."""
    light = tuple(
        replace(a, description=None, summary=None, context={}, values=[], sparkline=None)
        for a in notification.alerts
        if a.status == "firing"
    )
    return replace(notification, alerts=light)


def redrawn(saved: dict[str, Any], notification: Notification) -> MeetingChanges:
    """A record's meeting, read as it was when its message was last drawn."""
    return meeting_changes(notification, saved.get("meeting"))
