"""ntfy notifier: each notification becomes a push message on an ntfy topic.

An outside plugin, shipped as its own distribution; it uses only the public
plugin API (``watchdog.hookspecs``, ``watchdog.notifiers``, ``watchdog.alerts``).
It publishes JSON to the server's root URL, as ntfy documents for clients.
"""

from __future__ import annotations

import time

import requests
from pydantic import Field, SecretStr, field_validator
from watchdog.alerts import Alert, Notification
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DeliveryError,
    NotifierConfig,
    NotifierType,
    Redactor,
    Register,
    delivery_error_for,
    read_answer,
)

__version__ = "0.1.0"
KNOWN_EVENTS = ("alert", "acknowledged", "unacknowledged")  # what this renders

PRIORITIES = {"critical": 5, "warning": 4, "info": 3}
TAGS = {"critical": "rotating_light", "warning": "warning", "info": "information_source"}
RESOLVED_PRIORITY = 2


class NtfyConfig(NotifierConfig):
    server: str = "https://ntfy.sh"
    """The ntfy server."""
    topic: str = Field(min_length=1, max_length=64, pattern=r"^[-_A-Za-z0-9]+$")
    """The topic phones subscribe to."""
    token: SecretStr | None = Field(default=None, description="Access token (tk_...).")
    click: str | None = Field(default=None, description="URL opened when tapped.")
    timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds per request."""

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value.rstrip("/")


def _line(alert: Alert) -> str:
    if alert.status == "resolved" and alert.reason:
        return f"✅ {alert.rule}: {alert.who}: {alert.reason}; last {alert.condition}"
    if alert.status == "resolved":
        return (
            f"✅ {alert.rule}: {alert.who}: {alert.metric} back to "
            + (alert.condition.split(" = ", 1)[1])
        )
    line = f"{alert.rule}: {alert.who}: {alert.condition}"
    if alert.reason:  # told again though it kept firing: its silence ended
        line = f"{alert.rule}: {alert.who}: {alert.reason}; {alert.condition}"
    if alert.cause:  # the likely cause and its first evidence line
        first = f": {alert.evidence[0]}" if alert.evidence else ""
        line += f" (likely cause: {alert.cause}{first})"
    return line


def publication(notification: Notification, config: NtfyConfig) -> dict[str, object]:
    """The JSON ntfy publishes: title and first line carry the whole alert."""
    alerts = notification.alerts
    over = all(a.status == "resolved" for a in alerts)
    firing = [a for a in alerts if a.status == "firing"]
    worst = min(firing or alerts, key=lambda a: -PRIORITIES.get(a.severity, 3))
    first = alerts[0]
    where = first.place
    word = "Resolved" if over else ("Still firing" if notification.repeat else "Firing")
    if notification.event != "alert":  # someone took the alerts, or gave them back
        taken = notification.event == "acknowledged"
        word = f"{'Acknowledged' if taken else 'Unacknowledged'} by {notification.actor or '?'}"
    if len(alerts) == 1:
        title = f"{word} [{first.severity}] {first.rule} in {where}"
    else:
        title = f"{word}: {len(firing) or len(alerts)} alerts in {where}"
    lines = [_line(a) for a in alerts]
    if notification.test:
        title = "Test: " + title
        lines.append("Test alert from videosdk-watchdog notify-test: no action needed.")
    body: dict[str, object] = {
        "topic": config.topic,
        "title": title,
        "message": "\n".join(lines),
        "priority": RESOLVED_PRIORITY if over else PRIORITIES.get(worst.severity, 3),
        "tags": ["white_check_mark"] if over else [TAGS.get(worst.severity, "warning")],
    }
    if config.click:
        body["click"] = config.click
    return body


class NtfyNotifier:
    def __init__(self, config: NtfyConfig, redactor: Redactor) -> None:
        self.config = config
        self.redact = redactor
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"NtfyNotifier(server={self.config.server!r}, topic={self.config.topic!r})"

    def send(self, notification: Notification) -> None:
        if notification.event not in KNOWN_EVENTS:
            return  # a report or digest, or a newer event: not ours to render
        headers = {"User-Agent": f"videosdk-watchdog-ntfy/{__version__}"}
        if self.config.token is not None:
            headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
        started = time.monotonic()
        try:
            response = self.session.post(
                self.config.server + "/",
                json=publication(notification, self.config),
                headers=headers,
                timeout=self.config.timeout,
                stream=True,  # the answer is read by read_answer, bounded in size and time
            )
        except requests.RequestException as exc:
            raise DeliveryError(
                f"cannot reach {self.config.server}: {type(exc).__name__}"
            ) from None
        with response:
            status = response.status_code
            text = read_answer(response, deadline=started + self.config.timeout)
        if 200 <= status < 300:
            return
        # masked before it is cut: a server may echo the token, and a cut one goes unrecognised
        answer = self.redact(text)[:200].strip()
        message = f"ntfy answered HTTP {status}: {answer}"
        raise delivery_error_for(status, response.headers.get("Retry-After"), message)


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="ntfy",
            config=NtfyConfig,
            factory=lambda context: NtfyNotifier(context.config, context.redactor),
            description="Push notifications to a phone through an ntfy topic.",
        )
    )
