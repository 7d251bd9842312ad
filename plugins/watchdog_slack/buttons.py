"""The interactive parts of messages: an alert's state lines and buttons, and the
*Take on-call* button of each team in the answer to ``/watchdog oncall``.

Each alert button's ``value`` names the alert (fingerprint) and the message's thread
key, so a click, whether it arrives over Socket Mode or HTTP, after a restart
or not, finds what to act on and which message to redraw; a *Take on-call* button's
names the team.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from watchdog.alerts import Alert, Notification
from watchdog.notifiers import AlertView
from watchdog_slack.blocks import inline, mrkdwn, slack_time
from watchdog_slack.limits import SECTION_TEXT, TEXT_OBJECT, fit

ACK = "watchdog_ack"
SILENCE_1H = "watchdog_silence_1h"
SILENCE_MEETING = "watchdog_silence_meeting"
UNSILENCE = "watchdog_unsilence"
UNACK = "watchdog_unack"
TAKE = "watchdog_take"
SNOOZE = "watchdog_snooze"
ACTION_IDS = (ACK, SILENCE_1H, SILENCE_MEETING, UNSILENCE, UNACK, TAKE, SNOOZE)
TAKE_ONCALL = "watchdog_oncall_take"  # not an alert's: its value names a team
OWNING = (ACK, UNACK, TAKE)  # allowed to whoever may acknowledge; the rest silence
MAX_BUTTON_ALERTS = 5  # a grouped message gets buttons for its first few firing alerts
_SLACK_ID = re.compile(r"\(([UW][A-Z0-9]{2,})\)$")


def actor(user_id: str, name: str | None) -> str:
    """How a Slack user is recorded in the audit log: ``alice (U0123)``."""
    return f"{name} ({user_id})" if name else user_id


def mention(who: str) -> str:
    """A recorded actor as Slack shows it: a live mention for a Slack user, else the name."""
    found = _SLACK_ID.search(who)
    if found:
        return f"<@{found.group(1)}>"
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", who):
        return f"<@{who}>"
    return inline(who)


def value(alert: Alert, thread: str) -> str:
    return json.dumps({"f": alert.fingerprint, "t": thread}, separators=(",", ":"))


def parse_value(raw: str) -> tuple[str, str]:
    """(fingerprint, thread key) from a button's value; ValueError if it is not ours."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("f"), str):
        raise ValueError("not a watchdog button")
    return data["f"], str(data.get("t", ""))


def team_value(team: str) -> str:
    return json.dumps({"team": team}, separators=(",", ":"))


def parse_team(raw: str) -> str:
    """The team a *Take on-call* button names; ValueError if it is not ours."""
    data = json.loads(raw)
    team = data.get("team") if isinstance(data, dict) else None
    if not isinstance(team, str):
        raise ValueError("not a watchdog on-call button")
    return team


def team_block(team: str, line: str) -> dict[str, Any]:
    """One team's on-call line with its *Take on-call* button beside it."""
    return {
        "type": "section",
        "block_id": f"oncall:{team}",
        "text": mrkdwn(line, SECTION_TEXT),
        "accessory": _button("🙋 Take on-call", TAKE_ONCALL, team_value(team)),
    }


def state_line(view: AlertView) -> str | None:
    parts = []
    if view.acked_by and view.acked_at:
        line = f"👀 Acknowledged by {mention(view.acked_by)} {slack_time(view.acked_at)}"
        if view.ack_expires_at:
            line += f", expires {slack_time(view.ack_expires_at)} if it still fires"
        parts.append(line)
    if view.silenced_by and view.silenced_until:
        until = (
            f"until the meeting ends (at most {slack_time(view.silenced_until)})"
            if view.until_meeting_end
            else f"until {slack_time(view.silenced_until)}"
        )
        parts.append(f"🔕 Silenced by {mention(view.silenced_by)} {until}")
    return "\n".join(parts) if parts else None


def _button(text: str, action_id: str, raw: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": raw,
    }
    if style:
        button["style"] = style
    return button


def buttons(alert: Alert, view: AlertView | None, thread: str) -> list[dict[str, Any]]:
    raw = value(alert, thread)
    out = []
    if view is None or not view.acked_by:
        out.append(_button("👀 Acknowledge", ACK, raw, "primary"))
    else:
        out.append(_button("🙋 Take it", TAKE, raw))
        out.append(_button("↩️ Unacknowledge", UNACK, raw))
    if view is not None and view.silence_id:
        out.append(_button("🔔 Unsilence", UNSILENCE, raw))
    else:
        out.append(_button("🔕 Silence 1h", SILENCE_1H, raw))
        if alert.meeting_id:
            out.append(_button("🔕 Silence until the meeting ends", SILENCE_MEETING, raw))
        out.append(_button("😴 Snooze until 09:00", SNOOZE, raw))
    return out


def interactive_blocks(
    notification: Notification, views: Mapping[str, AlertView]
) -> list[dict[str, Any]]:
    """State lines and buttons for the firing alerts of a message (none once resolved)."""
    firing = [a for a in notification.alerts if a.status == "firing"]
    if notification.test or not firing:
        return []
    thread = notification.thread or notification.id
    blocks: list[dict[str, Any]] = []
    unique = {a.fingerprint: a for a in firing}  # a block_id may appear once in a message
    for alert in list(unique.values())[:MAX_BUTTON_ALERTS]:
        view = views.get(alert.fingerprint)
        line = state_line(view) if view is not None else None
        if len(firing) > 1:
            who = inline(alert.participant_name or alert.participant_id or "meeting")
            line = f"*{inline(alert.rule)}* — {who}" + (f"\n{line}" if line else "")
        if line:
            text = fit(line, TEXT_OBJECT)
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
        blocks.append(
            {
                "type": "actions",
                "block_id": f"watchdog:{alert.fingerprint}",
                "elements": buttons(alert, view, thread),
            }
        )
    return blocks
