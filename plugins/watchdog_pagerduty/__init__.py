"""PagerDuty notifier: PagerDuty's Events API v2 (trigger, acknowledge, resolve).

Written against the public plugin API only, as an outside plugin would be. Each alert
of a notification is one event whose ``dedup_key`` is the alert's fingerprint: a firing
alert triggers (a reminder updates the same PagerDuty alert), a resolved one resolves,
and an acknowledgement notice (Slack's button, ``ack`` on the CLI) acknowledges.

HTTP goes through ``requests``, as in the other built-in notifiers, not through
PagerDuty's own client (PyPI ``pagerduty``, 7.x): that client sets a base URL and a
timeout, but retries inside the call with sleeps (a 429 without limit, which no setting
turns off, and never after the ``Retry-After`` asked for), reads whole answers, accepts
only ``https://`` and brings a second HTTP stack (httpx2, httpcore2, anyio, truststore).
Here a delivery is one bounded attempt; the durable outbox retries, after
``Retry-After``, and a group's events already accepted are not sent again.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import Field, SecretStr, field_validator

from watchdog.alerts import Notification, Severity
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DeliveryError,
    NotifierConfig,
    NotifierState,
    NotifierType,
    Redactor,
    Register,
    delivery_error_for,
    host_of,
    read_answer,
    transport_error,
)
from watchdog_pagerduty.events import DEFAULT_SEVERITIES, Links, PagerDutySeverity, events

__version__ = "0.1.0"

USER_AGENT = f"videosdk-watchdog-pagerduty/{__version__}"
EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY_LENGTH = 32
MAX_ANSWER = 16 * 1024  # bytes of an answer read: PagerDuty's are a few hundred
_ROUTING_KEY_ERROR = re.compile(r"routing[ _]key", re.IGNORECASE)
_LOOPBACK_NAMES = {"localhost"}
# what the url validator accepts, for editors (the validator says why in words)
_URL_PATTERN = r"^(https://[^/:?#]|http://(localhost|127\.[0-9.]+|\[::1\])([:/?#]|$))"


class PagerDutyConfig(NotifierConfig):
    routing_key: SecretStr = Field(
        description="Integration Key of an Events API v2 integration (32 characters); secret.",
        json_schema_extra={"pattern": f"^[A-Za-z0-9]{{{ROUTING_KEY_LENGTH}}}$"},
    )
    url: str = Field(
        default=EVENTS_URL,
        json_schema_extra={"pattern": _URL_PATTERN},
        description="Events API v2 endpoint; EU accounts: "
        "https://events.eu.pagerduty.com/v2/enqueue.",
    )
    severity_map: dict[Severity, PagerDutySeverity] = Field(
        default_factory=dict,
        description="PagerDuty severity (critical, error, warning, info) per rule severity; "
        "unnamed ones map to the same name.",
    )
    source: str | None = Field(
        default=None,
        description="payload.source of every event; default: the alert's meeting "
        "(or session), videosdk-watchdog for the daemon's own alerts.",
    )
    external_url: str = Field(
        default="", description="The daemon's UI or status page: the incident links to it."
    )
    generator_url: str = Field(
        default="",
        description="Per-alert link template: {rule} {fingerprint} {meeting_id} {session_id} "
        "{participant_id}.",
    )
    timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds per request."""
    ca_file: str | None = Field(default=None, description="PEM bundle of a private CA.")

    @field_validator("routing_key")
    @classmethod
    def _routing_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if len(key) != ROUTING_KEY_LENGTH or not (key.isascii() and key.isalnum()):
            raise ValueError(
                f"must be the {ROUTING_KEY_LENGTH}-character Integration Key of an Events "
                f"API v2 integration (letters and digits; this one has {len(key)} characters)"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            # the URL is shown in errors and repr; the Events API takes no credentials there
            raise ValueError("must not carry user:password@ (it would be logged; none is needed)")
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and _loopback(parts.hostname):
            return value
        raise ValueError(
            "must be an https:// URL (http:// only to a loopback address): "
            "the routing key travels in the body"
        )

    @field_validator("external_url")
    @classmethod
    def _external_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value

    @field_validator("generator_url")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(rule="", fingerprint="", meeting_id="", session_id="", participant_id="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad template: {exc}") from None
        return value


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PagerDutyNotifier:
    def __init__(
        self,
        config: PagerDutyConfig,
        logger: logging.Logger,
        redactor: Redactor,
        state: NotifierState,
    ) -> None:
        self.config = config
        self.log = logger
        self.redact = redactor
        self.state = state
        self.severities: dict[str, PagerDutySeverity] = dict(DEFAULT_SEVERITIES)
        self.severities.update(config.severity_map.items())
        self.links = Links(external_url=config.external_url, generator_url=config.generator_url)
        self.host = host_of(config.url)
        # per request: a session-level verify loses to REQUESTS_CA_BUNDLE from the environment
        self.verify: str | bool = config.ca_file or True
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(url={self.config.url!r})"

    def send(self, notification: Notification) -> None:
        bodies = events(notification, self.severities, self.config.source, self.links)
        if not bodies:
            self.log.info(
                "nothing to send to PagerDuty for an %r notice: it has no such event",
                notification.event,
            )
            return
        if len(bodies) == 1:
            self._post(bodies[0])
            return
        # a group: events PagerDuty took before a failure are not sent again on the retry
        key = f"progress:{notification.id}"
        earlier = self.state.get(key)
        done = set(earlier.get("sent", [])) if earlier else set()
        for body in bodies:
            event = f"{body['event_action']}:{body['dedup_key']}"
            if event in done:
                continue
            try:
                self._post(body)
            except DeliveryError as exc:
                if exc.permanent and earlier is not None:
                    self.state.delete(key)  # no retry is coming: nothing to remember
                elif done and not exc.permanent:
                    self.state.put(key, {"sent": sorted(done)})
                raise
            done.add(event)
        if earlier is not None:
            self.state.delete(key)

    def _post(self, body: dict[str, Any]) -> None:
        """One event, one request; returns when PagerDuty accepted it (HTTP 202)."""
        what = f"{body['event_action']} {body['dedup_key']}"
        event = {"routing_key": self.config.routing_key.get_secret_value(), **body}
        raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        started = time.monotonic()
        try:
            response = self.session.post(
                self.config.url,
                data=raw,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
                timeout=self.config.timeout,
                allow_redirects=False,
                verify=self.verify,
                stream=True,  # the answer is read by read_answer, bounded in size and time
            )
        except requests.RequestException as exc:
            raise transport_error(exc, self.host, "PagerDuty") from None
        with response:
            status = response.status_code
            answer = read_answer(response, MAX_ANSWER, deadline=started + self.config.timeout)
        if 200 <= status < 300:
            self.log.debug("PagerDuty accepted %s", what)
            return
        # masked before it is cut: a cut secret would no longer be recognised
        detail = self.redact(_detail(answer))[:300].strip() or "no answer"
        if status == 400 and _ROUTING_KEY_ERROR.search(detail):
            raise DeliveryError(
                f"PagerDuty refused the routing key for {what} ({detail}): check "
                "routing_key, the Integration Key of the service's Events API v2 "
                "integration, and that url is the account's region",
                permanent=True,
            )
        if status == 400:
            raise DeliveryError(
                f"PagerDuty refused {what} as an invalid event: {detail}", permanent=True
            )
        message = f"PagerDuty {self.host} answered HTTP {status} to {what}: {detail}"
        if 300 <= status < 400:
            message += " (redirects are not followed: set url to the Events API v2 endpoint)"
        raise delivery_error_for(status, response.headers.get("Retry-After"), message)


def _detail(text: str) -> str:
    """PagerDuty's reasons (``errors``, else ``message``), or the answer as text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if not isinstance(parsed, dict):
        return text
    errors = parsed.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(str(e) for e in errors)
    return str(parsed.get("message") or parsed.get("status") or text)


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="pagerduty",
            config=PagerDutyConfig,
            factory=lambda context: PagerDutyNotifier(
                context.config, context.logger, context.redactor, context.state
            ),
            description="PagerDuty Events API v2: trigger, acknowledge and resolve "
            "one PagerDuty alert per alert.",
            send_acknowledged=True,
        )
    )
