"""Reports in Slack: a call's report in its meeting's thread, the daily digest in the channel.

The meeting view (:mod:`watchdog_slack.meeting`) keeps where each meeting's message lives
under :func:`meeting_key`; a call report replies in that thread (the message stays, its
trouble over), else posts a message of its own. The blocks are the same kinds as an
alert's (a header, the lines, when) inside a neutral attachment, cut to Slack's limits: the
lines packed into as few sections as 3,000 characters each allow, within the 50 blocks
(a digest of 50 rules with long names is read whole; past the blocks, "… and N more lines").
"""

from __future__ import annotations

from typing import Any

from watchdog.alerts import Report
from watchdog_slack.blocks import context_block, escape, header_block, section_block, slack_time
from watchdog_slack.limits import MESSAGE_BLOCKS, MESSAGE_TEXT, SECTION_TEXT, fit, size

REPORT_COLOUR = "#1264A3"
ICONS = {"call": "📋", "digest": "🗓️"}


THREAD_PREFIX = "meeting-thread:"


def meeting_key(meeting_id: str) -> str:
    """The notifier state key of a meeting's latest message (its thread): deleted when
    the call's report replies there, else forgotten after ``history.retention``."""
    return THREAD_PREFIX + meeting_id


def text(report: Report) -> str:
    """The one-line ``text`` (notifications, screen readers) and the plain fallback."""
    return fit(f"{ICONS[report.kind]} {escape(report.text)}", MESSAGE_TEXT)


def sections(lines: list[str], room: int) -> list[dict[str, Any]]:
    """``lines`` (escaped) in at most ``room`` sections, each within Slack's 3,000; a line
    too long for one is cut, and what the last section cannot hold is counted in it."""
    parts: list[list[str]] = [[]]
    used = -1  # joined size of the last part: no newline before its first line
    for index, line in enumerate(fit(x, SECTION_TEXT) for x in lines):
        if parts[-1] and used + 1 + size(line) > SECTION_TEXT:
            if len(parts) == room:  # the last section says how many lines it left out
                parts[-1].extend(lines[index:])
                break
            parts.append([])
            used = -1
        parts[-1].append(line)
        used += 1 + size(line)
    return [section_block("\n".join(part)) for part in parts]


def body(report: Report) -> dict[str, Any]:
    """``text`` and ``attachments`` of the report's message."""
    lines = [escape(line.strip()) for line in report.lines] or ["nothing to report"]
    blocks = [
        header_block(f"{ICONS[report.kind]} {report.title}"),
        *sections(lines, MESSAGE_BLOCKS - 2),
        context_block(f"{slack_time(report.start)} to {slack_time(report.end)}"),
    ]
    return {
        "text": fit(f"{ICONS[report.kind]} {escape(report.title)}", MESSAGE_TEXT),
        "attachments": [{"color": REPORT_COLOUR, "blocks": blocks}],
    }
