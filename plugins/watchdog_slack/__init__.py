"""Slack notifier: a bot token (threads, updates) or an incoming webhook (one message each).

Written against the public plugin API only, as an outside plugin would be.
With a bot token (scope ``chat:write``) the first firing is posted to the
channel; reminders go in its thread; the resolve updates the original message
to show it resolved and replies in the thread. Where the message lives
(channel and ts) is kept in the notifier's durable state under the
notification's thread, so this works across restarts. With ``group_by:
[meeting_id]`` a meeting has one message, edited as its participants go bad and
recover, with their transitions in its thread (:mod:`watchdog_slack.meeting`).
An incoming webhook cannot edit or thread, so each notification is a new
message. Messages are cut to Slack's limits; one Slack still refuses for its
blocks is sent again as plain text, so the alert arrives either way.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.error import URLError

from pydantic import Field, SecretStr, field_validator, model_validator
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient, WebhookResponse

from watchdog.alerts import (
    REPORT_EVENTS,
    Alert,
    MeetingChanges,
    Notification,
    Report,
    meeting_changes,
)
from watchdog.charts import chart_png, report_chart_png
from watchdog.durations import format_time, parse_time
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DEFAULT_RETENTION,
    AlertActions,
    DeliveryError,
    NotifierConfig,
    NotifierContext,
    NotifierState,
    NotifierType,
    Redactor,
    Register,
    delivery_error_for,
    retry_after_seconds,
)
from watchdog_slack import meeting, report
from watchdog_slack.blocks import inline, message, note, plain, reply
from watchdog_slack.buttons import MAX_BUTTON_ALERTS, interactive_blocks, mention
from watchdog_slack.endpoint import InteractionEndpoint
from watchdog_slack.interactions import Interactions, Permissions
from watchdog_slack.socketmode import SocketListener

__version__ = "0.1.0"

# Errors retrying cannot fix: the operator must change the token, the scopes or the channel.
PERMANENT_ERRORS = frozenset(
    {
        "access_denied",
        "account_inactive",
        "channel_not_found",
        "ekm_access_denied",
        "invalid_arguments",
        "invalid_attachments",
        "invalid_auth",
        "invalid_blocks",
        "invalid_token",
        "is_archived",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "no_service",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "org_login_required",
        "restricted_action",
        "team_access_not_granted",
        "token_expired",
        "token_revoked",
        "action_prohibited",
        "channel_is_archived",
        "invalid_payload",
        "posting_to_general_channel_denied",
        "too_many_attachments",
    }
)
# chat.update cannot touch the original any more: say it in the thread instead.
UPDATE_GONE = frozenset(
    {"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found"}
)
# Slack refused the message's content, not the call: the same alert as plain text will do.
REFUSED_CONTENT = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "invalid_attachments", "msg_too_long"}
)
Severity = Literal["critical", "warning", "info"]
CHART_EVERY = timedelta(minutes=5)  # a meeting's chart is redrawn at most this often


class SlackError(DeliveryError):
    """A Web API call Slack answered with ``ok: false``; ``code`` is its ``error``."""

    def __init__(
        self, message: str, code: str, *, retry_after: float | None = None, permanent: bool
    ) -> None:
        super().__init__(message, retry_after=retry_after, permanent=permanent)
        self.code = code


class SlackConfig(NotifierConfig):
    token: SecretStr | None = Field(
        default=None, description="Bot token (xoxb-...) of an app with the chat:write scope."
    )
    channel: str | None = Field(
        default=None, description="Channel ID (C0123...) or #name; the bot must be a member."
    )
    webhook_url: SecretStr | None = Field(
        default=None, description="Incoming-webhook URL, instead of a token and channel."
    )
    base_url: str = Field(
        default="https://slack.com/api/", description="Web API base (GovSlack: slack-gov.com)."
    )
    mentions: dict[Severity, str] = Field(
        default_factory=dict,
        description="Text put before firing messages by severity, e.g. critical: '<!here>'.",
    )
    broadcast_resolved: bool = Field(
        default=False, description="Also show the thread's resolve reply in the channel."
    )
    timeout: int = Field(default=10, ge=1, le=120, description="Seconds per API call.")
    ca_file: str | None = Field(
        default=None, description="PEM bundle of a private CA (e.g. an HTTPS proxy); never off."
    )
    # -- acting from Slack (buttons, /watchdog): bot mode only -----------------------
    app_token: SecretStr | None = Field(
        default=None,
        description="App-level token (xapp-..., scope connections:write): clicks over Socket Mode.",
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        description="The app's signing secret: clicks over HTTP (interactivity_listen).",
    )
    interactivity_listen: str | None = Field(
        default=None,
        description="host:port of the HTTP endpoint for clicks and /watchdog (path /slack/events).",
    )
    silence_allowed: list[str] | None = Field(
        default=None,
        description="Slack user IDs (U...) and user-group IDs (S...) who may silence; unset: all.",
    )
    ack_allowed: list[str] | None = Field(
        default=None, description="Who may acknowledge, likewise; unset: anyone in the channel."
    )
    usergroup_cache: int = Field(
        default=300, ge=0, le=86400, description="Seconds to remember a user group's members."
    )
    charts: bool = Field(
        default=True, description="Post a PNG chart in a firing alert's thread (needs [charts])."
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local test server)")
        return value if value.endswith("/") else value + "/"

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be the https:// URL Slack gave for the incoming webhook")
        return value

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token (xapp-...), not a bot token")
        return value

    @field_validator("interactivity_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            _host, sep, port = value.rpartition(":")
            if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
                raise ValueError("must be host:port, e.g. 127.0.0.1:3000")
        return value

    @property
    def interactive(self) -> bool:
        return self.app_token is not None or self.signing_secret is not None

    @model_validator(mode="after")
    def _one_mode(self) -> SlackConfig:
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError("set either token and channel (bot mode) or webhook_url")
        if self.token is not None and not self.channel:
            raise ValueError("channel is required with a token")
        if self.webhook_url is not None and self.channel:
            raise ValueError("an incoming webhook posts to its own channel: remove channel")
        if self.webhook_url is not None and self.interactive:
            raise ValueError("buttons need bot mode (token and channel), not an incoming webhook")
        if (self.signing_secret is None) != (self.interactivity_listen is None):
            raise ValueError("signing_secret and interactivity_listen go together")
        return self


def _ssl_context(config: SlackConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=config.ca_file)


def _retry_after(headers: Any) -> str | None:
    """The Retry-After header; slack-sdk gives headers as strings or lists of strings."""
    raw = (headers.get("retry-after") or headers.get("Retry-After")) if headers else None
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    return None if raw is None else str(raw)


def _api_error(method: str, exc: SlackApiError) -> DeliveryError:
    """Slack's error code decides where it names a cause retrying cannot fix; otherwise
    the HTTP status does, by the policy every notifier shares (``delivery_error_for``)."""
    response = exc.response
    error = str(response.get("error", "")) if response.data else ""
    status = response.status_code
    hint = ""
    if error in {"not_in_channel", "channel_not_found"}:
        hint = " (invite the app to the channel, and use the channel ID)"
    elif error == "missing_scope":
        hint = " (the app needs the chat:write scope)"
    limited = status == 429 or error == "ratelimited"
    what = f"rate-limited {method}" if limited else f"{method} failed"
    reasons = [r for r in (error, "" if 200 <= status < 300 else f"HTTP {status}") if r]
    message = f"Slack {what}: {', '.join(reasons)}{hint}"
    wait = _retry_after(response.headers)
    if error in PERMANENT_ERRORS:
        return SlackError(message, error, permanent=True)
    if 200 <= status < 300:  # the call went through and Slack answered ok: false
        return SlackError(message, error, retry_after=retry_after_seconds(wait), permanent=False)
    verdict = delivery_error_for(status, wait, message)
    return SlackError(message, error, retry_after=verdict.retry_after, permanent=verdict.permanent)


def _mention(mentions: Mapping[Severity, str], notification: Notification, text: str) -> str:
    """``text`` after the configured mentions of the firing severities (e.g. ``<!here>``)."""
    if notification.status != "firing":
        return text
    severities = {a.severity for a in notification.alerts if a.status == "firing"}
    marks = [m for s, m in mentions.items() if s in severities]
    return " ".join([*marks, text]) if marks else text


def thread_note(notification: Notification) -> str:
    """The text of a notice that goes in the alert's thread."""
    if notification.event == "acknowledged":
        return note(notification, f"👀 *Acknowledged* by {mention(notification.actor or '?')}")
    if notification.event == "unacknowledged":
        return note(notification, f"↩️ *Unacknowledged* ({mention(notification.actor or '?')})")
    marks = " ".join(_mark(m) for m in notification.mentions)
    head = f"📣 *{inline(notification.reason or 'still firing')}*"
    return note(notification, f"{marks} {head}" if marks else head)


def _mark(target: str) -> str:
    """A user group ID as Slack's group mention, anything else as a person's."""
    if re.fullmatch(r"S[A-Z0-9]{2,}", target):
        return f"<!subteam^{target}>"
    return mention(target)


def _transport_error(method: str, exc: Exception) -> DeliveryError:
    reason = exc.reason if isinstance(exc, URLError) else exc
    return DeliveryError(f"Slack {method}: cannot reach Slack: {reason}")


class SlackBot:
    """Bot-token mode: post, thread, update."""

    def __init__(
        self,
        config: SlackConfig,
        state: NotifierState,
        logger: logging.Logger,
        actions: AlertActions | None,
        redactor: Redactor,
        *,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        assert config.token is not None
        assert config.channel is not None
        self.config = config
        self.actions = actions if config.interactive else None
        self.listeners: list[SocketListener | InteractionEndpoint] = []
        self.channel = config.channel
        self.mentions = config.mentions
        self.broadcast = config.broadcast_resolved
        self.state = state
        self.retention = retention
        self.log = logger
        # slack-sdk logs request URLs and bodies at debug level on its own logger
        quiet = redactor.install(logger.getChild("slack_sdk"))
        self.client = WebClient(
            token=config.token.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout,
            ssl=_ssl_context(config),
            logger=quiet,
            retry_handlers=[],  # the core retries with backoff; never block a lane here
        )
        if self.actions is not None:
            self.listeners = self._listeners(config, self.actions, logger, quiet)

    def _listeners(
        self,
        config: SlackConfig,
        actions: AlertActions,
        logger: logging.Logger,
        quiet: logging.Logger,
    ) -> list[SocketListener | InteractionEndpoint]:
        assert config.token is not None
        client = WebClient(
            token=config.token.get_secret_value(),
            base_url=config.base_url,
            timeout=config.timeout,
            ssl=_ssl_context(config),
            logger=quiet,
        )
        interactions = Interactions(
            client,
            self.state,
            actions,
            Permissions(client, logger, float(config.usergroup_cache)),
            logger,
            ack_allowed=config.ack_allowed,
            silence_allowed=config.silence_allowed,
        )
        out: list[SocketListener | InteractionEndpoint] = []
        if config.app_token is not None:
            socket_client = WebClient(
                base_url=config.base_url,
                timeout=config.timeout,
                ssl=_ssl_context(config),
                logger=quiet,
            )
            out.append(
                SocketListener(
                    config.app_token.get_secret_value(), socket_client, interactions, quiet
                )
            )
        if config.signing_secret is not None and config.interactivity_listen is not None:
            host, _, port = config.interactivity_listen.rpartition(":")
            out.append(
                InteractionEndpoint(
                    host.strip("[]") or "127.0.0.1",
                    int(port),
                    config.signing_secret.get_secret_value(),
                    interactions,
                    logger,
                )
            )
        return out

    def start(self) -> None:
        """Start listening for clicks (called by the core when the notifier goes in service)."""
        for listener in self.listeners:
            listener.start()

    def close(self) -> None:
        for listener in self.listeners:
            try:
                listener.close()
            except Exception:
                self.log.exception("closing %r failed", listener)

    def __repr__(self) -> str:
        return f"SlackBot(channel={self.channel!r})"

    def _body(self, notification: Notification) -> dict[str, Any]:
        """The message, with state lines and buttons when people can act from Slack."""
        if self.actions is None:
            return message(notification)
        views = {a.fingerprint: self.actions.view(a.fingerprint) for a in notification.alerts}
        return message(notification, interactive_blocks(notification, views))

    def _remember(self, key: str, channel: str, ts: str, notification: Notification) -> None:
        self.state.put(key, {"channel": channel, "ts": ts, "notification": notification.to_dict()})

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise _api_error(method, exc) from None
        except (URLError, OSError, SlackClientError) as exc:
            raise _transport_error(method, exc) from None
        data = response.data
        if not isinstance(data, dict):
            raise DeliveryError(f"Slack {method} answered something that is not JSON")
        return data

    def send(self, notification: Notification) -> None:
        if notification.event in REPORT_EVENTS:
            if notification.report is not None:
                self._report(notification.report)
            return
        if notification.event != "alert" or (notification.repeat and notification.mention):
            self._note(notification)
            return
        if notification.meeting is not None and not notification.test:
            self._send_meeting(notification)
            return
        body = self._body(notification)
        key = notification.thread or notification.id
        original = self.state.get(key)
        if original is None:
            self._post_new(notification, body, key)
            return
        channel, ts = str(original["channel"]), str(original["ts"])
        over = all(a.status == "resolved" for a in notification.alerts)
        if not notification.repeat and not self._update(notification, channel, ts, body):
            self._start_over(notification, body, key)  # the original is gone
            return
        try:
            self._call(
                "chat.postMessage",
                channel=channel,
                thread_ts=ts,
                text=_mention(self.mentions, notification, reply(notification)),
                reply_broadcast=over and self.broadcast,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackError as exc:
            if exc.code != "thread_not_found":
                raise
            self._start_over(notification, body, key)
            return
        if over:
            self.state.delete(key)
        elif not notification.repeat:
            self._remember(key, channel, ts, notification)

    def _note(self, notification: Notification) -> None:
        """An escalation step, an expired acknowledgement or an acknowledgement notice: a
        reply in the alert's thread, mentioning whom it names (in the channel when the
        thread is gone)."""
        text = thread_note(notification)
        saved = self.state.get(notification.thread or notification.id)
        where = {"channel": self.channel}
        if saved is not None:
            where = {"channel": str(saved["channel"]), "thread_ts": str(saved["ts"])}
        try:
            self._call("chat.postMessage", **where, text=text, unfurl_links=False)
        except SlackError as exc:
            if exc.code != "thread_not_found":
                raise
            self._call("chat.postMessage", channel=self.channel, text=text, unfurl_links=False)

    def _report(self, found: Report) -> None:
        """A call report in its meeting's thread (the meeting view's message), else a new
        message; the digest in the channel. Then the chart of the call in that thread."""
        key = report.meeting_key(found.meeting_id) if found.meeting_id else None
        saved = self.state.get(key) if key is not None else None
        body = report.body(found)
        where = {"channel": self.channel}
        if saved is not None:
            where = {"channel": str(saved["channel"]), "thread_ts": str(saved["ts"])}
        try:
            data = self._call_or_plain(
                "chat.postMessage",
                lambda: report.text(found),
                **where,
                **body,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackError as exc:
            if exc.code != "thread_not_found":
                raise
            where = {"channel": self.channel}
            data = self._call_or_plain(
                "chat.postMessage", lambda: report.text(found), **where, **body, unfurl_links=False
            )
        ts = where.get("thread_ts") or str(data.get("ts") or "")
        channel = str(data.get("channel", where["channel"]))
        if key is not None:
            self.state.delete(key)  # told: the meeting's next call starts afresh
        png = report_chart_png(found) if self.config.charts and ts else None
        if png is not None:
            self._upload(
                "the report's chart",
                channel,
                ts,
                png,
                filename=f"report-{found.meeting_id or found.session_id or 'call'}.png",
                title=f"{found.chart_metric or 'quality'} over the call",
            )

    def _start_over(self, notification: Notification, body: dict[str, Any], key: str) -> None:
        self.log.warning("the original Slack message is gone; posting a new one")
        self.state.delete(key)
        self._post_new(notification, body, key)

    def _post_new(self, notification: Notification, body: dict[str, Any], key: str) -> None:
        """No message to thread under (first firing, or its record is gone): a new one."""
        data = self._call_or_plain(
            "chat.postMessage",
            lambda: _mention(self.mentions, notification, plain(notification)),
            channel=self.channel,
            text=_mention(self.mentions, notification, body["text"]),
            attachments=body["attachments"],
            unfurl_links=False,
            unfurl_media=False,
        )
        firing = any(a.status == "firing" for a in notification.alerts)
        if firing and not notification.test and data.get("ts"):
            channel = str(data.get("channel", self.channel))
            self._remember(key, channel, str(data["ts"]), notification)
            if self.config.charts:
                self._chart(notification, channel, str(data["ts"]))

    def _chart(self, notification: Notification, channel: str, ts: str) -> None:
        """The firing alert's chart in its thread; a failure costs the chart, not the alert."""
        alert = next(a for a in notification.alerts if a.status == "firing")
        png = chart_png(alert)
        if png is not None:
            self._upload(
                "the chart",
                channel,
                ts,
                png,
                filename=f"{alert.rule}-{alert.fingerprint}.png",
                title=f"{alert.rule}: {alert.metric}",
            )

    def _upload(
        self, what: str, channel: str, ts: str, png: bytes, *, filename: str, title: str
    ) -> None:
        """A chart into a thread; a failure is logged and costs the chart only."""
        try:
            self.client.files_upload_v2(
                channel=channel, thread_ts=ts, content=png, filename=filename, title=title
            )
        except (SlackApiError, SlackClientError, URLError, OSError) as exc:
            self.log.warning("could not upload %s to Slack: %s", what, exc)

    def _update(
        self, notification: Notification, channel: str, ts: str, body: dict[str, Any]
    ) -> bool:
        """Rewrite the original message; False if it cannot be (deleted, too old)."""
        try:
            self._call_or_plain(
                "chat.update", lambda: plain(notification), channel=channel, ts=ts, **body
            )
        except SlackError as exc:
            if exc.code not in UPDATE_GONE:
                raise
            return False
        return True

    def _call_or_plain(
        self, method: str, fallback: Callable[[], str], **kwargs: Any
    ) -> dict[str, Any]:
        """Call with blocks; if Slack refuses what they say, call again as ``fallback()`` text.

        The empty ``attachments`` make chat.update drop the original's blocks too.
        """
        return self._call_refused(method, fallback, None, **kwargs)

    def _call_refused(
        self,
        method: str,
        fallback: Callable[[], str],
        lighter: dict[str, Any] | None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """``_call_or_plain``, trying a ``lighter`` body (the message without its chart)
        before the plain text, when one is given."""
        attempts = [kwargs, *([{**kwargs, **lighter}] if lighter is not None else [])]
        for number, attempt in enumerate(attempts, start=1):
            try:
                return self._call(method, **attempt)
            except SlackError as exc:
                if exc.code not in REFUSED_CONTENT:
                    raise
                self.log.warning(
                    "Slack %s refused the message (%s); sending it %s",
                    method,
                    exc.code,
                    "as plain text" if number == len(attempts) else "without its chart",
                )
        return self._call(method, **{**kwargs, "text": fallback(), "attachments": []})

    # -- the meeting view (group_by: [meeting_id]) ------------------------------------

    def _send_meeting(self, notification: Notification) -> None:
        """Edit the meeting's message to show it now and reply with what changed; the
        first notification posts it. Its record (where it lives, what it last showed,
        its chart) is kept under the notification's thread until the trouble is over."""
        key = notification.thread or notification.id
        saved = self.state.get(key)
        changes = meeting_changes(notification, saved.get("meeting") if saved else None)
        if saved is None:
            self._post_meeting(notification, changes, key)
            return
        channel, ts = str(saved["channel"]), str(saved["ts"])
        chart = self._meeting_chart(notification, changes, channel, ts, saved.get("chart"))
        if not self._draw_meeting(notification, changes, channel, ts, chart):
            self._meeting_gone(notification, changes, key)
            return
        text = meeting.reply(notification, changes)
        if text is not None:
            try:
                self._call(
                    "chat.postMessage",
                    channel=channel,
                    thread_ts=ts,
                    text=_mention(self.mentions, notification, text)
                    if notification.mention
                    else text,
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except SlackError as exc:
                if exc.code != "thread_not_found":
                    raise
                self._meeting_gone(notification, changes, key)
                return
        self._keep_meeting(
            key, channel=channel, ts=ts, notification=notification, changes=changes, chart=chart
        )

    def _meeting_gone(self, notification: Notification, changes: MeetingChanges, key: str) -> None:
        self.log.warning("the meeting's Slack message is gone; posting a new one")
        self.state.delete(key)
        self._post_meeting(notification, changes, key)

    def _post_meeting(self, notification: Notification, changes: MeetingChanges, key: str) -> None:
        """The meeting's message, mentioning people as a first firing does; then its chart,
        drawn into the message at once (its one edit in this cycle)."""
        body = meeting.body(
            notification, changes, None, self._meeting_buttons(changes, notification)
        )
        data = self._call_or_plain(
            "chat.postMessage",
            lambda: _mention(self.mentions, notification, meeting.plain(notification, changes)),
            channel=self.channel,
            text=_mention(self.mentions, notification, body["text"]),
            attachments=body["attachments"],
            unfurl_links=False,
            unfurl_media=False,
        )
        if changes.over or not data.get("ts"):
            return  # it fired and resolved before anyone was told: nothing follows
        channel, ts = str(data.get("channel", self.channel)), str(data["ts"])
        self._keep_meeting(
            key, channel=channel, ts=ts, notification=notification, changes=changes, chart=None
        )
        chart = self._meeting_chart(notification, changes, channel, ts, None)
        if chart is not None:
            self._draw_meeting(notification, changes, channel, ts, chart)
            self._keep_meeting(
                key, channel=channel, ts=ts, notification=notification, changes=changes, chart=chart
            )

    def _draw_meeting(
        self,
        notification: Notification,
        changes: MeetingChanges,
        channel: str,
        ts: str,
        chart: dict[str, Any] | None,
    ) -> bool:
        """Rewrite the meeting's message; False if it cannot be (deleted, too old)."""
        extra = self._meeting_buttons(changes, notification)
        body = meeting.body(notification, changes, chart, extra)
        lighter = meeting.body(notification, changes, None, extra) if chart else None
        try:
            self._call_refused(
                "chat.update",
                lambda: meeting.plain(notification, changes),
                lighter,
                channel=channel,
                ts=ts,
                **body,
            )
        except SlackError as exc:
            if exc.code not in UPDATE_GONE:
                raise
            return False
        return True

    def _meeting_buttons(
        self, changes: MeetingChanges, notification: Notification
    ) -> list[dict[str, Any]]:
        """Buttons for the worst few firing alerts (views read for those alone)."""
        if self.actions is None or changes.over:
            return []
        alerts = meeting.button_alerts(changes, MAX_BUTTON_ALERTS)
        views = {a.fingerprint: self.actions.view(a.fingerprint) for a in alerts}
        return interactive_blocks(replace(notification, alerts=alerts), views)

    def _meeting_chart(
        self,
        notification: Notification,
        changes: MeetingChanges,
        channel: str,
        ts: str,
        previous: object,
    ) -> dict[str, Any] | None:
        """The chart the message shows: the worst firing alert's, uploaded into the thread
        when it is another alert's than the one shown, at most every ``CHART_EVERY``."""
        shown = previous if isinstance(previous, dict) and "file" in previous else None
        if not self.config.charts or changes.over:
            return shown
        worst = next(iter(meeting.button_alerts(changes, 1)), None)
        if worst is None or (shown is not None and shown.get("alert") == worst.fingerprint):
            return shown
        drawn_at = parse_time(shown.get("at")) if shown is not None else None
        if drawn_at is not None and changes.now - drawn_at < CHART_EVERY:
            return shown
        file_id = self._upload_chart(worst, channel, ts)
        if file_id is None:
            return shown
        return {
            "alert": worst.fingerprint,
            "file": file_id,
            "title": meeting.chart_title(worst),
            "at": format_time(changes.now),
        }

    def _upload_chart(self, alert: Alert, channel: str, ts: str) -> str | None:
        """A chart into the thread; its file ID, or None (no chart, or the upload failed:
        a failure costs the chart, not the message)."""
        png = chart_png(alert)
        if png is None:
            return None
        try:
            response = self.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                content=png,
                filename=f"{alert.rule}-{alert.fingerprint}.png",
                title=meeting.chart_title(alert),
            )
        except (SlackApiError, SlackClientError, URLError, OSError) as exc:
            self.log.warning("could not upload the chart to Slack: %s", exc)
            return None
        files = response.get("files") or []
        first = files[0] if isinstance(files, list) and files else {}
        return str(first["id"]) if isinstance(first, dict) and first.get("id") else None

    def _keep_meeting(
        self,
        key: str,
        *,
        channel: str,
        ts: str,
        notification: Notification,
        changes: MeetingChanges,
        chart: dict[str, Any] | None,
    ) -> None:
        """Remember the message for the next notification and for clicks; forget it once
        the trouble is over (a new episode posts a new message). Where the meeting's
        latest message lives is kept beyond that, for the call report's reply, and those of
        meetings whose report never came (``report: {when: never}``) are forgotten once
        older than the history."""
        if notification.meeting is not None:
            self.state.forget(report.THREAD_PREFIX, datetime.now(UTC) - self.retention)
            self.state.put(report.meeting_key(notification.meeting), {"channel": channel, "ts": ts})
        if changes.over:
            self.state.delete(key)
            return
        self.state.put(
            key,
            {
                "channel": channel,
                "ts": ts,
                "meeting": changes.memory,
                "chart": chart,
                "notification": meeting.kept(notification).to_dict(),
            },
        )


class SlackWebhook:
    """Incoming-webhook mode: no edits and no threads, so every notification is a message."""

    def __init__(self, config: SlackConfig, logger: logging.Logger, redactor: Redactor) -> None:
        assert config.webhook_url is not None
        self.mentions = config.mentions
        self.log = logger
        self.redact = redactor
        self.client = WebhookClient(
            url=config.webhook_url.get_secret_value(),
            timeout=config.timeout,
            ssl=_ssl_context(config),
            logger=self.redact.install(logger.getChild("slack_sdk")),
            retry_handlers=[],  # the core retries with backoff; never block a lane here
        )

    def __repr__(self) -> str:
        return "SlackWebhook(url='**********')"

    def send(self, notification: Notification) -> None:
        if notification.event in REPORT_EVENTS:
            if notification.report is not None:
                self._send_report(notification.report)
            return
        body = message(notification)
        response = self._post(_mention(self.mentions, notification, body["text"]), body)
        refused = (response.body or "").strip()
        if response.status_code == 400 and refused in REFUSED_CONTENT:
            self.log.warning("Slack refused the message (%s); sending it as plain text", refused)
            response = self._post(_mention(self.mentions, notification, plain(notification)))
        status, answer = response.status_code, (response.body or "").strip()
        if 200 <= status < 300:
            return
        detail = self.redact(answer)[:200]
        failed = f"Slack incoming webhook failed: HTTP {status} {detail}".rstrip()
        raise delivery_error_for(status, _retry_after(response.headers), failed)

    def _send_report(self, found: Report) -> None:
        """A report as a message of its own (a webhook cannot thread), text alone."""
        response = self._post(report.text(found), report.body(found))
        if response.status_code == 400 and (response.body or "").strip() in REFUSED_CONTENT:
            response = self._post(report.text(found))
        status = response.status_code
        if not 200 <= status < 300:
            detail = self.redact((response.body or "").strip())[:200]
            failed = f"Slack incoming webhook failed: HTTP {status} {detail}".rstrip()
            raise delivery_error_for(status, _retry_after(response.headers), failed)

    def _post(self, text: str, body: dict[str, Any] | None = None) -> WebhookResponse:
        """One webhook post: ``text``, with the attachments of ``body`` if given."""
        attachments = body["attachments"] if body is not None else None
        try:
            return self.client.send(
                text=text, attachments=attachments, unfurl_links=False, unfurl_media=False
            )
        except (URLError, OSError, SlackClientError) as exc:
            raise _transport_error("incoming webhook", exc) from None


def _notifier(context: NotifierContext[SlackConfig]) -> SlackBot | SlackWebhook:
    """Bot mode with a token, else incoming-webhook mode (the config allows one of them)."""
    config = context.config
    if config.token is not None:
        return SlackBot(
            config,
            context.state,
            context.logger,
            context.actions,
            context.redactor,
            retention=context.retention,
        )
    return SlackWebhook(config, context.logger, context.redactor)


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="slack",
            config=SlackConfig,
            factory=_notifier,
            description=(
                "Posts to Slack with a bot token (threads, resolves update the message) "
                "or an incoming webhook."
            ),
            reports=True,
        )
    )
