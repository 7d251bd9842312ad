"""Microsoft Teams notifier: an Adaptive Card per notification to a Workflows webhook.

Written against the public plugin API only, as an outside plugin would be. Teams retired
the Office 365 connector webhooks; their replacement is a workflow (the Workflows app,
Power Automate) started by the trigger "When a Teams webhook request is received", which
takes ``{"type": "message", "attachments": [<Adaptive Card>]}`` and answers 202 Accepted.
The card is :mod:`watchdog_teams.card`'s. A workflow cannot edit what it posted, so every
notification is a card of its own: the resolve is a green one.

The URL is a secret: its ``sig=`` query value signs the request (anyone holding it can
post to the channel), so it is a SecretStr and errors name only its host. Answers follow
the policy every HTTP notifier shares (``delivery_error_for``): 2xx delivered; 408, 429
and 5xx retried after the ``Retry-After`` Power Automate sends when it throttles; any
other 4xx is permanent, with what to do about it. At most ``MAX_ANSWER`` bytes of an
answer are read, within the request's timeout.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import requests
from pydantic import Field, SecretStr, field_validator

from watchdog.alerts import Notification
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    NotifierConfig,
    NotifierContext,
    NotifierType,
    Redactor,
    Register,
    delivery_error_for,
    host_of,
    read_answer,
    transport_error,
)
from watchdog_teams.card import message

__version__ = "0.1.0"
KNOWN_EVENTS = ("alert", "acknowledged", "unacknowledged")  # what this renders

USER_AGENT = f"videosdk-watchdog/{__version__}"
MAX_ANSWER = 4096  # bytes of an answer read for its error message
# the retired Office 365 connector webhooks' hosts: a URL there can no longer post
RETIRED_HOSTS = ("webhook.office.com", "outlook.office.com", "outlook.office365.com")
HINTS = {
    400: " (the workflow refused the body: is its trigger 'When a Teams webhook request is "
    "received'?)",
    401: " (the URL's signature is not accepted: copy the URL again from the workflow's trigger)",
    403: " (the URL's signature is not accepted, or the workflow is turned off: copy the URL "
    "again from the workflow's trigger)",
    404: " (no workflow at this URL: was it deleted? create it again and copy its URL)",
    413: " (the card is larger than Teams accepts)",
}


class TeamsConfig(NotifierConfig):
    url: SecretStr = Field(
        description="The workflow's webhook URL (trigger 'When a Teams webhook request is "
        "received'); a secret: its sig= signs every post."
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds per request.")
    ca_file: str | None = Field(
        default=None, description="PEM bundle of a private CA (e.g. an HTTPS proxy); never off."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("https://", "http://")):
            raise ValueError("must be the https:// URL the workflow's trigger shows")
        host = (urlsplit(url).hostname or "").lower()
        if any(host == h or host.endswith("." + h) for h in RETIRED_HOSTS):
            raise ValueError(
                "this is an Office 365 connector webhook, which Teams retired: create a "
                "workflow from the template 'Send webhook alerts to a channel' and use its URL"
            )
        return value


class TeamsNotifier:
    """Posts each notification's card; one connection pool per entry."""

    def __init__(self, config: TeamsConfig, redactor: Redactor) -> None:
        self.config = config
        self.redact = redactor
        # per request: a session-level verify loses to REQUESTS_CA_BUNDLE from the environment
        self.verify: str | bool = config.ca_file or True
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"TeamsNotifier(host={_host(self.config.url.get_secret_value())!r})"

    def send(self, notification: Notification) -> None:
        if notification.event not in KNOWN_EVENTS:
            return  # a report or digest, or a newer event: not ours to render
        url = self.config.url.get_secret_value()
        started = time.monotonic()
        try:
            response = self.session.post(
                url,
                data=message(notification).raw,
                headers={
                    # the charset said: without it the service counts the size as UTF-16
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": USER_AGENT,
                },
                timeout=self.config.timeout,
                allow_redirects=False,
                verify=self.verify,
                stream=True,  # the answer is read by _answer, bounded
            )
        except requests.RequestException as exc:
            raise transport_error(exc, _host(url), "Teams") from None
        with response:
            status = response.status_code
            if 200 <= status < 300:
                return
            deadline = started + self.config.timeout
            # masked before it is cut: a cut secret would no longer be recognised
            detail = self.redact(_answer(response, deadline))[:300].strip()
            text = f"Teams workflow at {_host(url)} answered HTTP {status}{HINTS.get(status, '')}"
            if 300 <= status < 400:
                text += " (redirects are not followed: use the URL the workflow's trigger shows)"
            raise delivery_error_for(
                status, response.headers.get("Retry-After"), f"{text}: {detail}" if detail else text
            )


def _answer(response: requests.Response, deadline: float) -> str:
    """What the service said, from at most ``MAX_ANSWER`` bytes read before ``deadline``:
    Power Automate's ``{"error": {"code", "message"}}`` as ``code: message``, else the text."""
    text = read_answer(response, MAX_ANSWER, deadline=deadline)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    said = (
        [str(error[k]) for k in ("code", "message") if error.get(k)]
        if isinstance(error, dict)
        else []
    )
    return ": ".join(said) if said else " ".join(text.split())


def _host(url: str) -> str:
    return host_of(url, "the workflow")


def _notifier(context: NotifierContext[TeamsConfig]) -> TeamsNotifier:
    return TeamsNotifier(context.config, context.redactor)


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="teams",
            config=TeamsConfig,
            factory=_notifier,
            description="Posts an Adaptive Card to a Microsoft Teams channel through a "
            "Workflows webhook.",
        )
    )
