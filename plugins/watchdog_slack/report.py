"""Reports in Slack: a call's report in its meeting's thread, the daily digest in the channel.

The meeting view (:mod:`watchdog_slack.meeting`) keeps where each meeting's message lives
under :func:`meeting_key`; a call report replies in that thread (the message stays, its
trouble over), else posts a message of its own. The blocks are the same kinds as an
alert's (a header, the lines, when) inside a neutral attachment, cut to Slack's limits.
"""

from __future__ import annotations

from typing import Any

from watchdog.alerts import Report
from watchdog_slack.blocks import context_block, escape, header_block, section_block, slack_time
from watchdog_slack.limits import MESSAGE_TEXT, fit

REPORT_COLOUR = "#1264A3"
ICONS = {"call": "📋", "digest": "🗓️"}


def meeting_key(meeting_id: str) -> str:
    """The notifier state key of a meeting's latest message (its thread)."""
    return f"meeting-thread:{meeting_id}"


def text(report: Report) -> str:
    """The one-line ``text`` (notifications, screen readers) and the plain fallback."""
    return fit(f"{ICONS[report.kind]} {escape(report.text)}", MESSAGE_TEXT)


def body(report: Report) -> dict[str, Any]:
    """``text`` and ``attachments`` of the report's message."""
    lines = "\n".join(escape(line.strip()) for line in report.lines) or "nothing to report"
    blocks = [
        header_block(f"{ICONS[report.kind]} {report.title}"),
        section_block(lines),
        context_block(f"{slack_time(report.start)} to {slack_time(report.end)}"),
    ]
    return {
        "text": fit(f"{ICONS[report.kind]} {escape(report.title)}", MESSAGE_TEXT),
        "attachments": [{"color": REPORT_COLOUR, "blocks": blocks}],
    }
