"""Clicks and slash commands from Slack: who may do what, what it does, what they see.

Transport-free: Socket Mode (:mod:`watchdog_slack.socket`) and the HTTP
endpoint (:mod:`watchdog_slack.endpoint`) both hand payloads here. Acting goes
through the core's public ``AlertActions`` (which records the audit entry);
this side checks permissions, redraws the original message so the channel
shows the current state, and answers the clicker ephemerally when something
was refused or had nothing to do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from watchdog.alerts import Notification
from watchdog.durations import parse_duration
from watchdog.notifiers import ActionResult, AlertActions, AlertView, NotifierState
from watchdog_slack import meeting
from watchdog_slack.blocks import context_block, inline, message, section_block, slack_time
from watchdog_slack.buttons import (
    ACK,
    ACTION_IDS,
    MAX_BUTTON_ALERTS,
    OWNING,
    SILENCE_1H,
    SILENCE_MEETING,
    SNOOZE,
    TAKE,
    TAKE_ONCALL,
    UNACK,
    actor,
    interactive_blocks,
    mention,
    parse_team,
    parse_value,
    team_block,
)
from watchdog_slack.limits import MESSAGE_TEXT, fit

NOT_ALLOWED = "🚫 You are not allowed to do that here; ask whoever runs videosdk-watchdog."
COMMAND_HELP = (
    "Usage: `/watchdog status` (firing alerts), `/watchdog silences` (who muted what), "
    "`/watchdog oncall` (who is on call now and next) or `/watchdog oncall take [TEAM] [for 2h]`"
)
MAX_TAKE_WORDS = 4  # take TEAM for 2h
MAX_TEAMS = 30  # teams in the answer to /watchdog oncall: a block each, of Slack's 50


class Permissions:
    """Slack user IDs and user-group IDs (``S...``) allowed to act; None lets everyone.

    Group membership comes from ``usergroups.users.list`` (scope
    ``usergroups:read``), cached for ``ttl`` seconds so a burst of clicks costs
    one call.
    """

    def __init__(
        self,
        client: WebClient,
        logger: logging.Logger,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.log = logger
        self.ttl = ttl
        self.clock = clock
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._groups.get(group)
            if cached is not None and cached[0] > self.clock():
                return cached[1]
        try:
            users = self.client.usergroups_users_list(usergroup=group).get("users") or []
        except (SlackApiError, SlackClientError, OSError) as exc:
            self.log.warning("cannot list the members of Slack user group %s: %s", group, exc)
            return cached[1] if cached is not None else frozenset()
        found = frozenset(str(u) for u in users)
        with self._lock:
            self._groups[group] = (self.clock() + self.ttl, found)
        return found

    def allows(self, user: str, allowed: list[str] | None) -> bool:
        if allowed is None:
            return True
        if user in allowed:
            return True
        return any(g.startswith("S") and user in self.members(g) for g in allowed)


class Interactions:
    """Acts on button clicks and ``/watchdog`` commands for one Slack notifier."""

    def __init__(
        self,
        client: WebClient,
        state: NotifierState,
        actions: AlertActions,
        permissions: Permissions,
        logger: logging.Logger,
        *,
        ack_allowed: list[str] | None,
        silence_allowed: list[str] | None,
        respond: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.actions = actions
        self.permissions = permissions
        self.log = logger
        self.ack_allowed = ack_allowed
        self.silence_allowed = silence_allowed
        self.respond = respond or self._respond

    # -- buttons -------------------------------------------------------------------

    def block_actions(self, payload: dict[str, Any]) -> None:
        user = payload.get("user") or {}
        user_id = str(user.get("id", ""))
        who = actor(user_id, user.get("username") or user.get("name"))
        response_url = str(payload.get("response_url") or "")
        container = payload.get("container") or {}
        for action in payload.get("actions") or []:
            action_id = action.get("action_id")
            if action_id == TAKE_ONCALL:
                self._take_oncall_click(user_id, who, str(action.get("value", "")), response_url)
                continue
            if action_id not in ACTION_IDS:
                continue
            try:
                fingerprint, thread = parse_value(str(action.get("value", "")))
            except ValueError:
                self.log.warning("ignored a Slack click with an unreadable button value")
                continue
            allowed = self.ack_allowed if action_id in OWNING else self.silence_allowed
            if not user_id or not self.permissions.allows(user_id, allowed):
                self.log.info("refused %s on %s for %s", action_id, fingerprint, who)
                self.respond(response_url, _ephemeral(NOT_ALLOWED))
                continue
            result = self._act(action_id, fingerprint, who)
            self.log.info("%s on %s by %s: %s", action_id, fingerprint, who, result.message)
            redrawn = self.redraw(thread, result.view, container)
            if not result.ok or not redrawn:
                self.respond(response_url, _ephemeral(result.message))

    def _act(self, action_id: str, fingerprint: str, who: str) -> ActionResult:
        if action_id == ACK:
            return self.actions.acknowledge(fingerprint, who, "slack")
        if action_id == UNACK:
            return self.actions.unacknowledge(fingerprint, who, "slack")
        if action_id == TAKE:
            return self.actions.take(fingerprint, who, "slack")
        if action_id == SNOOZE:
            return self.actions.snooze(fingerprint, who, "slack")
        if action_id == SILENCE_1H:
            return self.actions.silence(fingerprint, who, "slack", duration=timedelta(hours=1))
        if action_id == SILENCE_MEETING:
            return self.actions.silence(fingerprint, who, "slack", scope="meeting")
        return self.actions.unsilence(fingerprint, who, "slack")

    def _take_oncall_click(self, user_id: str, who: str, raw: str, response_url: str) -> None:
        """*Take on-call* under ``/watchdog oncall``: as ``/watchdog oncall take TEAM``; the
        ephemeral answer is redrawn with the outcome and who is on call now."""
        try:
            team = parse_team(raw)
        except ValueError:
            self.log.warning("ignored a Slack click with an unreadable button value")
            return
        if not user_id or not self.permissions.allows(user_id, self.ack_allowed):
            self.log.info("refused taking on-call for %s for %s", team, who)
            self.respond(response_url, _ephemeral(NOT_ALLOWED))
            return
        done, text = self.actions.take_oncall(user_id, who, "slack", team=team, duration=None)
        self.log.info("on-call take by %s: %s", who, text)
        answer = self._oncall_answer(("✅ " if done else "⚠️ ") + text)
        self.respond(response_url, {**answer, "replace_original": True})

    def redraw(self, thread: str, view: AlertView, container: dict[str, Any]) -> bool:
        """Rewrite the alert's message with its current state; False if there is none."""
        saved = self.state.get(thread) if thread else None
        if saved is None or "notification" not in saved or view.alert is None:
            return False
        notification = Notification.from_dict(saved["notification"])
        alerts = tuple(
            view.alert if a.fingerprint == view.fingerprint else a for a in notification.alerts
        )
        notification = replace(notification, alerts=alerts)
        if notification.meeting is not None and "meeting" in saved:
            body = self._meeting_body(saved, notification, view)
        else:
            views = {a.fingerprint: self.actions.view(a.fingerprint) for a in alerts}
            views[view.fingerprint] = view
            body = message(notification, interactive_blocks(notification, views))
        channel = str(saved.get("channel") or container.get("channel_id") or "")
        ts = str(saved.get("ts") or container.get("message_ts") or "")
        try:
            self.client.chat_update(channel=channel, ts=ts, **body)
        except (SlackApiError, SlackClientError, OSError) as exc:
            self.log.warning("could not update the Slack message after a click: %s", exc)
            return False
        return True

    def _meeting_body(
        self, saved: dict[str, Any], notification: Notification, view: AlertView
    ) -> dict[str, Any]:
        """A meeting's message as last drawn, with the clicked alert's new state."""
        changes = meeting.redrawn(saved, notification)
        shown = meeting.button_alerts(changes, MAX_BUTTON_ALERTS)
        views = {a.fingerprint: self.actions.view(a.fingerprint) for a in shown}
        views[view.fingerprint] = view
        extra = interactive_blocks(replace(notification, alerts=shown), views)
        chart = saved.get("chart")
        return meeting.body(
            notification, changes, chart if isinstance(chart, dict) else None, extra
        )

    def _respond(self, response_url: str, body: dict[str, Any]) -> None:
        if not response_url:
            return
        try:
            WebhookClient(response_url, timeout=10).send_dict(body)
        except (SlackClientError, OSError) as exc:
            self.log.warning("could not answer the Slack user: %s", exc)

    # -- /watchdog -----------------------------------------------------------------

    def command(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The ephemeral answer to ``/watchdog status|silences``."""
        words = str(payload.get("text", "")).split()
        verb = words[0].lower() if words else "status"
        if verb == "status":
            return _ephemeral(self._status_text())
        if verb == "silences":
            return _ephemeral(self._silences_text())
        if verb == "oncall" and len(words) > 1 and words[1].lower() == "take":
            return _ephemeral(self._take_oncall(payload, words[2 : 2 + MAX_TAKE_WORDS]))
        if verb == "oncall":
            return self._oncall_answer()
        return _ephemeral(COMMAND_HELP)

    def _oncall_answer(self, head: str | None = None) -> dict[str, Any]:
        """Who is on call now and next per team, each with a *Take on-call* button."""
        teams = self.actions.oncall()
        if not teams:
            return _ephemeral(head or "No on-call teams are configured.")
        lines = [(str(row["team"]), _team_line(row)) for row in teams[:MAX_TEAMS]]
        blocks = [section_block(head)] if head else []
        blocks += [team_block(team, line) for team, line in lines]
        more = len(teams) - MAX_TEAMS
        if more > 0:
            blocks.append(context_block(f"…and {more} more teams (`videosdk-watchdog oncall`)"))
        text = "\n".join([*([head] if head else []), *(line for _, line in lines)])
        return {**_ephemeral(text), "blocks": blocks}

    def _take_oncall(self, payload: dict[str, Any], words: list[str]) -> str:
        """``take [TEAM] [for 2h]``: the caller's Slack user ID names the person."""
        user_id = str(payload.get("user_id", ""))
        if not user_id or not self.permissions.allows(user_id, self.ack_allowed):
            return NOT_ALLOWED
        team, duration = None, None
        rest = list(words)
        if rest and rest[0].lower() != "for":
            team = rest.pop(0)
        if rest and rest[0].lower() == "for" and len(rest) == 2:
            try:
                duration = parse_duration(rest[1], timedelta(days=7))
            except ValueError as exc:
                return f"Cannot read {inline(rest[1])} as a length: {exc}"
            rest = []
        if rest or duration == timedelta(0):
            return "Usage: `/watchdog oncall take [TEAM] [for 2h]`"
        who = actor(user_id, payload.get("user_name"))
        done, text = self.actions.take_oncall(user_id, who, "slack", team=team, duration=duration)
        self.log.info("on-call take by %s: %s", who, text)
        return ("✅ " if done else "") + text

    def _status_text(self) -> str:
        status = self.actions.status()
        firing: list[AlertView] = status["firing"]
        lines = [f"*{len(firing)} alerts firing*, {status['watched']} participants watched"]
        for view in firing[:30]:
            alert = view.alert
            if alert is None:
                continue
            who = inline(alert.participant_name or alert.participant_id or "meeting")
            line = (
                f"• *{inline(alert.rule)}* [{inline(alert.severity)}] {who} in "
                f"`{inline(alert.meeting_id or alert.session_id or alert.place)}`: "
                f"`{inline(alert.condition)}`"
                f" since {slack_time(alert.starts_at)}"
            )
            if view.acked_by:
                line += f" · acked by {mention(view.acked_by)}"
            if view.silenced_until:
                line += f" · silenced until {slack_time(view.silenced_until)}"
            lines.append(line)
        if len(firing) > 30:
            lines.append(f"…and {len(firing) - 30} more (`videosdk-watchdog status`)")
        return "\n".join(lines)

    def _silences_text(self) -> str:
        rows = [r for r in self.actions.silences() if r["state"] == "active"]
        if not rows:
            return "No active silences."
        lines = [f"*{len(rows)} active silences*"]
        for row in rows[:30]:
            lines.append(
                f"• `{row['id'][:8]}` {inline(' '.join(row['matchers']))} by "
                f"{mention(row['createdBy'])} from {row.get('source', 'cli')}, ends "
                f"{inline(row['endsAt'])}: {inline(row['comment'])}"
            )
        return "\n".join(lines)


def _team_line(row: dict[str, Any]) -> str:
    line = f"*{inline(row['team'])}*: {_shift_text(row['now'])}"
    if row["next"] is not None:
        line += f"; next {_shift_text(row['next'], start=True)}"
    feed = row.get("feed") or {}
    if feed.get("error"):
        line += f" ⚠️ calendar feed failing: {inline(feed['error'])}"
    return line


def _shift_text(shift: dict[str, Any] | None, *, start: bool = False) -> str:
    if shift is None:
        return "nobody"
    who = mention(shift["slackUser"]) if shift.get("slackUser") else inline(shift["person"])
    when = f"from {shift['start']}" if start else f"until {shift['end']}"
    return f"{who} {when}" + (" (override)" if shift["override"] else "")


def _ephemeral(text: str) -> dict[str, Any]:
    return {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": fit(text, MESSAGE_TEXT),
    }
