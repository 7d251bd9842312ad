"""Webhook notifier: POSTs Alertmanager-compatible JSON, optionally HMAC-signed.

Written against the public plugin API only, as an outside plugin would be.
Any receiver written for Prometheus Alertmanager's webhook works unchanged.
With ``secret`` set, the header ``X-Watchdog-Signature: sha256=<hex>`` carries
HMAC-SHA256(secret, raw request body), as GitHub signs its webhooks; the
header ``X-Watchdog-Notification`` names the notification, the same on every
retry, so a receiver can drop a duplicate. TLS certificates are always
verified (``ca_file`` adds a private CA); redirects are not followed. The URL
is a secret, as in Alertmanager's ``webhook_config``: many receivers carry a
token in its path or query.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from urllib.parse import quote

import requests
from pydantic import Field, SecretStr, field_validator

from watchdog.alerts import REPORT_EVENTS, Notification
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    NotifierConfig,
    NotifierType,
    Redactor,
    Register,
    delivery_error_for,
    host_of,
    read_answer,
    transport_error,
)
from watchdog_webhook.payload import body, report_body

__version__ = "0.1.0"

USER_AGENT = f"videosdk-watchdog/{__version__}"
SIGNATURE_HEADER = "X-Watchdog-Signature"
NOTIFICATION_HEADER = "X-Watchdog-Notification"
# on anything but an alert notification: acknowledged | unacknowledged | report | digest
EVENT_HEADER = "X-Watchdog-Event"
ACTOR_HEADER = "X-Watchdog-Actor"  # who, percent-encoded (UTF-8)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP header name (RFC 9110)
_RESERVED = {"content-type", "content-length", "host", "transfer-encoding"}


def sign(secret: str, raw: bytes) -> str:
    """The signature header's value for a body: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class WebhookConfig(NotifierConfig):
    url: SecretStr = Field(
        description="Receiver URL; kept secret (a token in its path or query stays out of logs)."
    )
    secret: SecretStr | None = Field(default=None, description="HMAC-SHA256 signing key.")
    signature_header: str = SIGNATURE_HEADER
    """The header carrying ``sha256=<hex>`` when ``secret`` is set."""
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra headers, e.g. Authorization (kept secret)."
    )
    receiver: str | None = Field(default=None, description="Payload 'receiver'; default: name.")
    external_url: str = Field(default="", description="Payload 'externalURL'.")
    generator_url: str = Field(
        default="",
        description="Per-alert 'generatorURL' template: {rule} {session_id} {participant_id} "
        "{meeting_id} {fingerprint}.",
    )
    max_alerts: int = Field(default=0, ge=0, description="0 = all; else truncatedAlerts.")
    timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds per request."""
    ca_file: str | None = Field(default=None, description="PEM bundle of a private CA.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value

    @field_validator("signature_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _TOKEN.match(value):
            raise ValueError(f"{value!r} is not a valid header name")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in value:
            if not _TOKEN.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED:
                raise ValueError(f"{name} is set by the notifier")
        return value

    @field_validator("generator_url")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(rule="", session_id="", participant_id="", meeting_id="", fingerprint="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad template: {exc}") from None
        return value


class WebhookNotifier:
    def __init__(
        self, config: WebhookConfig, name: str, logger: logging.Logger, redactor: Redactor
    ) -> None:
        self.config = config
        self.receiver = config.receiver or name
        self.log = logger
        self.redact = redactor
        # per request: a session-level verify loses to REQUESTS_CA_BUNDLE from the environment
        self.verify: str | bool = config.ca_file or True
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"WebhookNotifier(host={_host(self.config.url.get_secret_value())!r})"

    def request(self, notification: Notification) -> tuple[bytes, dict[str, str]]:
        """The exact bytes and headers sent: what a signature check sees."""
        c = self.config
        if notification.report is not None:
            payload = report_body(notification, self.receiver)
        else:
            payload = body(
                notification, self.receiver, c.external_url, c.generator_url, c.max_alerts
            )
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {k: v.get_secret_value() for k, v in c.headers.items()}
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                NOTIFICATION_HEADER: notification.id,
            }
        )
        if notification.event != "alert":  # the body is Alertmanager's: who did it goes here
            headers[EVENT_HEADER] = notification.event
            headers[ACTOR_HEADER] = quote(notification.actor or "", safe="")
        if c.secret is not None:
            headers[c.signature_header] = sign(c.secret.get_secret_value(), raw)
        return raw, headers

    def send(self, notification: Notification) -> None:
        if notification.event in REPORT_EVENTS and notification.report is None:
            return  # a report without its data: nothing to tell
        raw, headers = self.request(notification)
        url = self.config.url.get_secret_value()
        started = time.monotonic()
        try:
            response = self.session.post(
                url,
                data=raw,
                headers=headers,
                timeout=self.config.timeout,
                allow_redirects=False,
                verify=self.verify,
                stream=True,  # the answer is read by read_answer, bounded in size and time
            )
        except requests.RequestException as exc:
            raise transport_error(exc, _host(url)) from None
        with response:
            status = response.status_code
            # read, bounded, even when accepted: a short answer read to its end keeps the
            # connection for the next delivery
            answer = read_answer(response, deadline=started + self.config.timeout)
            if 200 <= status < 300:
                return
            # masked before it is cut: a cut secret would no longer be recognised
            detail = self.redact(answer)[:200].strip()
            message = f"webhook {_host(url)} answered HTTP {status}" + (
                f": {detail}" if detail else ""
            )
            if 300 <= status < 400:
                where = response.headers.get("Location", "?")
                message += f" (redirects are not followed: configure {where} as url)"
            raise delivery_error_for(status, response.headers.get("Retry-After"), message)


def _host(url: str) -> str:
    return host_of(url, "the receiver")


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="webhook",
            config=WebhookConfig,
            factory=lambda context: WebhookNotifier(
                context.config, context.name, context.logger, context.redactor
            ),
            description="POSTs Alertmanager-compatible JSON (version 4), optionally HMAC-signed.",
            reports=True,
        )
    )
