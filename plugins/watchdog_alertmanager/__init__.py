"""Alertmanager notifier: pushes alerts to existing Alertmanagers as Prometheus does.

Written against the public plugin API only, as an outside plugin would be. Each
notification's alerts go to ``POST /api/v2/alerts`` of every configured Alertmanager
(an HA pair gets both copies, as Prometheus sends them); Alertmanager then groups,
routes, silences and notifies by its own configuration. While an alert fires the
notifier re-sends it every ``resend_interval`` with ``endsAt`` four intervals ahead, so
Alertmanager keeps it open while we run and resolves it by itself if we stop; a
resolved alert is re-sent for ``resolved_retention`` so an Alertmanager that was down at
the time still hears it. The set to re-send lives in the entry's ``NotifierState``
(:mod:`watchdog_alertmanager.memory`); the loop runs between the core's ``start()``
and ``close()``.

This is not the ``webhook`` notifier, which speaks Alertmanager's *webhook receiver*
format to tools written for Alertmanager's notifications; this one *is* the sender
Alertmanager listens to.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from watchdog.alerts import Alert, Notification
from watchdog.durations import Duration, PositiveDuration, at_least, format_duration
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DeliveryError,
    NotifierConfig,
    NotifierContext,
    NotifierState,
    NotifierType,
    Redactor,
    Register,
    delivery_error_for,
    host_of,
    read_answer,
    transport_error,
)
from watchdog_alertmanager.memory import AlertMemory, Remembered
from watchdog_alertmanager.payload import ends_at, generator_url, postable, rfc3339

__version__ = "0.1.0"

USER_AGENT = f"videosdk-watchdog/{__version__}"
ALERTS_PATH = "/api/v2/alerts"
MAX_BATCH = 256  # alerts a request carries at most: Prometheus's DefaultMaxBatchSize
MAX_ANSWER = 4096  # bytes of an answer read: enough for Alertmanager's error text
VALID_FOR = 4  # a firing alert's endsAt is this many re-send intervals ahead (Prometheus)
DEFAULT_GENERATOR_URL = "http://{hostname}:9464/healthz"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Clock = Callable[[], datetime]


class BasicAuth(BaseModel):
    """HTTP basic authentication for every URL of the entry."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    username: str
    """User name."""
    password: SecretStr
    """Password (kept secret)."""


class AlertmanagerConfig(NotifierConfig):
    urls: list[str] = Field(min_length=1, max_length=10)
    """Alertmanager base URLs, e.g. ``http://am-1:9093`` (a path prefix is kept); each gets
    every alert at ``<url>/api/v2/alerts``; list both of an HA pair."""
    basic_auth: BasicAuth | None = None
    """``{username, password}`` for Alertmanagers behind basic authentication."""
    bearer_token: SecretStr | None = None
    """``Authorization: Bearer`` token (kept secret); not with ``basic_auth``."""
    resend_interval: Annotated[
        PositiveDuration, at_least(timedelta(seconds=1), "each re-send posts every alert")
    ] = timedelta(minutes=1)
    """How often firing alerts are sent again; ``endsAt`` is four intervals ahead, so keep
    it well below Alertmanager's ``resolve_timeout`` (5m) as Prometheus does (1m)."""
    resolved_retention: Duration = timedelta(minutes=15)
    """How long a resolved alert is still re-sent (to an Alertmanager that missed it)."""
    forget_after: Duration = timedelta(hours=24)
    """A firing alert no notification mentioned for this long is no longer re-sent
    (Alertmanager then resolves it at its ``endsAt``); 0 keeps it until its resolve."""
    generator_url: str = DEFAULT_GENERATOR_URL
    """Each alert's ``generatorURL`` (its "Source" link): a template of {hostname} {rule}
    {session_id} {participant_id} {meeting_id} {fingerprint}; "" leaves it out."""
    external_labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every alert (an alert's own labels win), e.g. ``{source: watchdog}``."""
    timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds per request to one Alertmanager."""
    ca_file: str | None = None
    """PEM bundle of a private CA for https:// URLs."""

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
            if parts.username is not None or parts.password is not None:
                raise ValueError("credentials in a URL would be logged: use basic_auth")
            if parts.query or parts.fragment:
                raise ValueError(f"{url!r}: a base URL has no ?query or #fragment")
        if len(set(value)) != len(value):
            raise ValueError("a URL is listed twice")
        return value

    @field_validator("external_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _NAME.match(name):
                raise ValueError(f"{name!r} is not a label name: use letters, digits and _")
            if not text:
                raise ValueError(f"{name}: a label needs a value")
        return value

    @field_validator("generator_url")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(
                hostname="", rule="", session_id="", participant_id="", meeting_id="",
                fingerprint="",
            )  # fmt: skip
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad template: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> AlertmanagerConfig:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("set basic_auth or bearer_token, not both")
        return self


def endpoint(url: str) -> str:
    """The alerts endpoint under a base URL (given already, it is kept)."""
    base = url.rstrip("/")
    return base if base.endswith(ALERTS_PATH) else base + ALERTS_PATH


def _host(url: str) -> str:
    return host_of(url, "the Alertmanager")


class AlertmanagerNotifier:
    """Posts alerts to each Alertmanager, remembers them, and re-sends them while they fire.

    One lock orders every post of this entry in this process: a re-send read before a
    resolve is never posted after it (it would open the alert again until its ``endsAt``).
    """

    def __init__(
        self,
        config: AlertmanagerConfig,
        logger: logging.Logger,
        state: NotifierState,
        redactor: Redactor,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.log = logger
        self.redact = redactor
        self.clock = clock or (lambda: datetime.now(UTC))
        self.urls = [endpoint(url) for url in config.urls]
        self.memory = AlertMemory(state, config.resolved_retention, config.forget_after or None)
        self.hostname = socket.gethostname()
        # per request: a session-level verify loses to REQUESTS_CA_BUNDLE from the environment
        self.verify: str | bool = config.ca_file or True
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
        if config.basic_auth is not None:
            auth = config.basic_auth
            self.session.auth = (auth.username, auth.password.get_secret_value())
        if config.bearer_token is not None:
            token = config.bearer_token.get_secret_value()
            self.session.headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._down: set[str] = set()  # URLs whose last post failed: said once per outage
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(urls={[_host(u) for u in self.urls]!r})"

    # -- sending ------------------------------------------------------------------------

    def send(self, notification: Notification) -> None:
        if notification.event != "alert":
            return  # acknowledgement notices: Alertmanager has no such thing
        now = self.clock()
        if notification.test:  # shown once, not re-sent: it resolves at its endsAt
            self._post([self._body(a, now) for a in notification.alerts], required=True)
            return
        told = {a.fingerprint: self._remembered(a) for a in notification.alerts}
        with self._lock:
            self.memory.record(told, now)
            self._post([self._with_end(r, now) for r in told.values()], required=True)

    def resend(self) -> int:
        """Post every remembered alert again (firing with a fresh ``endsAt``); returns how
        many. A failure is logged once per Alertmanager outage, never raised: the next
        re-send tries again."""
        with self._lock:
            now = self.clock()
            alerts = [self._with_end(r, now) for r in self.memory.due(now)]
            if alerts:
                self._post(alerts, required=False)
            return len(alerts)

    def _remembered(self, alert: Alert) -> Remembered:
        url = generator_url(self.config.generator_url, alert, self.hostname)
        body = postable(alert, self.config.external_labels, url)
        return Remembered(body, ends_at(alert) if alert.status == "resolved" else None)

    def _body(self, alert: Alert, now: datetime) -> dict[str, Any]:
        return self._with_end(self._remembered(alert), now)

    def _with_end(self, alert: Remembered, now: datetime) -> dict[str, Any]:
        if alert.resolved_at is not None:
            return {**alert.body, "endsAt": rfc3339(alert.resolved_at)}
        return {**alert.body, "endsAt": rfc3339(now + VALID_FOR * self.config.resend_interval)}

    def _post(self, alerts: Sequence[dict[str, Any]], *, required: bool) -> None:
        """Each batch to every URL at once. With ``required``, raise unless some
        Alertmanager took every batch; a URL that failed is caught up by the re-send."""
        for start in range(0, len(alerts), MAX_BATCH):
            raw = orjson.dumps(list(alerts[start : start + MAX_BATCH]))
            if len(self.urls) == 1:
                errors = [self._post_one(self.urls[0], raw)]
            else:
                with ThreadPoolExecutor(len(self.urls), "alertmanager-post") as pool:
                    errors = list(pool.map(self._post_one, self.urls, [raw] * len(self.urls)))
            failed = [e for e in errors if e is not None]
            if len(failed) == len(errors) and required:
                raise _combined(failed)

    def _post_one(self, url: str, raw: bytes) -> DeliveryError | None:
        """None if this Alertmanager took the alerts, else what it said."""
        error = self._attempt(url, raw)
        if error is None:
            if url in self._down:
                self._down.discard(url)
                self.log.info("alertmanager %s takes alerts again", _host(url))
            return None
        if url not in self._down:
            self._down.add(url)
            self.log.warning(
                "%s; what it misses is re-sent every %s while it fires",
                error,
                format_duration(self.config.resend_interval),
            )
        return error

    def _attempt(self, url: str, raw: bytes) -> DeliveryError | None:
        host = _host(url)
        started = time.monotonic()
        try:
            response = self.session.post(
                url,
                data=raw,
                timeout=self.config.timeout,
                allow_redirects=False,
                verify=self.verify,
                stream=True,  # the answer is read by read_answer, bounded in size and time
            )
        except requests.RequestException as exc:
            return transport_error(exc, host, "Alertmanager")
        with response:
            status = response.status_code
            if 200 <= status < 300:
                return None
            # bounded: a hostile or broken server may answer without end
            answer = read_answer(response, MAX_ANSWER, deadline=started + self.config.timeout)
            detail = self.redact(answer)[:300].strip()
            message = f"alertmanager {host} answered HTTP {status}{_hint(status, url)}" + (
                f": {detail}" if detail else ""
            )
            if 300 <= status < 400:
                message += f" (redirects are not followed: {response.headers.get('Location')})"
            return delivery_error_for(status, response.headers.get("Retry-After"), message)

    # -- the re-send loop ---------------------------------------------------------------

    def start(self) -> None:
        """Called by the core when the notifier enters service: start re-sending."""
        if self._loop is not None:
            return
        self._stop.clear()
        self._loop = threading.Thread(target=self._run, name="alertmanager-resend", daemon=True)
        self._loop.start()

    def close(self) -> None:
        """Called by the core when the notifier leaves service: stop re-sending."""
        self._stop.set()
        if self._loop is not None:
            self._loop.join(timeout=self.config.timeout * 2 + 1)
            self._loop = None

    def _run(self) -> None:
        interval = self.config.resend_interval.total_seconds()
        while not self._stop.is_set():  # at once first: we may have been away a while
            try:
                self.resend()
            except Exception:  # the state database failing: logged, tried next interval
                self.log.exception("re-sending alerts to Alertmanager failed")
            self._stop.wait(interval)


def _hint(status: int, url: str) -> str:
    if status == 400:
        return " (it refused the alerts as invalid)"
    if status in (401, 403):
        return " (check basic_auth or bearer_token)"
    if status in (404, 405):
        return f" (is {urlsplit(url).path} an Alertmanager API v2 path?)"
    return ""


def _combined(errors: Sequence[DeliveryError]) -> DeliveryError:
    """Every Alertmanager failed: permanent only if retrying could help none of them."""
    message = "; ".join(str(e) for e in errors)
    if all(e.permanent for e in errors):
        return DeliveryError(message, permanent=True)
    waits = [e.retry_after for e in errors if not e.permanent and e.retry_after is not None]
    return DeliveryError(message, retry_after=min(waits) if waits else None)


def _make(context: NotifierContext[AlertmanagerConfig]) -> AlertmanagerNotifier:
    return AlertmanagerNotifier(context.config, context.logger, context.state, context.redactor)


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="alertmanager",
            config=AlertmanagerConfig,
            factory=_make,
            description="Pushes alerts to Alertmanager's API v2 (/api/v2/alerts) as "
            "Prometheus does, re-sending while they fire; several URLs for an HA pair.",
        )
    )
