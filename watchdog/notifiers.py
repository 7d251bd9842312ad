"""The notifier contract: what a plugin implements and what the core gives it.

Public plugin API. A plugin registers a :class:`NotifierType`; the core
validates each ``notifiers:`` entry of that type against its pydantic
``config`` model and calls ``factory`` once per entry. The core then calls
``send`` directly for each notification, never as a broadcast hook, with
its own timeout and retries around each call, so one broken notifier
cannot silence another.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from watchdog.alerts import Alert, Notification
from watchdog.redaction import MASK, Redactor, secret_values

__all__ = [
    "MASK",
    "MAX_RETRY_AFTER",
    "ActionResult",
    "AlertActions",
    "AlertView",
    "DeliveryError",
    "MemoryState",
    "Notifier",
    "NotifierConfig",
    "NotifierContext",
    "NotifierState",
    "NotifierType",
    "Redactor",
    "Register",
    "SilenceScope",
    "retry_after_seconds",
    "secret_values",
]


class NotifierConfig(BaseModel):
    """Base for notifier config models: unknown keys are mistakes, so they are refused.

    A docstring under a field (or ``Field(description=...)``) is its description in the
    configuration reference and in ``schema config``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DeliveryError(Exception):
    """Raised by ``send`` when the message was not accepted.

    ``retry_after`` (seconds) tells the core when to try again, e.g. from a
    rate limit; ``permanent`` says retrying cannot help (it is still kept
    in the outbox for inspection).
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


MAX_RETRY_AFTER = 3600.0


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header, for ``DeliveryError(retry_after=)``.

    Reads both forms RFC 9110 allows, delay-seconds (``"30"``) and an HTTP date, and clamps
    the result to 0 .. one hour. None when the header is missing or unreadable, so the
    core's own backoff applies.
    """
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications. ``send`` returns when the destination accepted it."""

    def send(self, notification: Notification) -> None: ...


class NotifierState(Protocol):
    """Durable key-value memory of one notifier entry, kept in the state database.

    For what a notifier must remember across restarts, e.g. the Slack message
    to update when an alert resolves (keyed by ``Notification.thread``).
    Values are JSON-serialisable dicts.
    """

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...


class MemoryState:
    """NotifierState in a dict: for tests and one-off sends, lost at exit."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._data.get(key)
        return None if value is None else dict(value)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._data[key] = dict(value)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert as the on-call engineer acts on it: its latest data, ack and silence.

    ``alert`` is None when the core no longer tracks it (resolved and told).
    ``silenced_until`` is None for no silence in force; ``until_meeting_end``
    says that silence ends with the meeting (or at its maximum length).
    """

    fingerprint: str
    alert: Alert | None
    acked_by: str | None = None
    acked_at: datetime | None = None
    silence_id: str | None = None
    silenced_by: str | None = None
    silenced_until: datetime | None = None
    until_meeting_end: bool = False


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did: ``ok`` False means nothing changed, ``message`` says why."""

    ok: bool
    message: str
    view: AlertView


SilenceScope = Literal["participant", "meeting"]


class AlertActions(Protocol):
    """What a notifier may do to alerts on behalf of a person (issue 10: act from Slack).

    Every call records who (``actor``, e.g. a Slack user ID), what and when in
    the state database's audit log, with ``source`` saying where (``"slack"``).
    The running alert manager sees a change within a second. Permission
    checks are the caller's: the core trusts the actor it is given.
    """

    def view(self, fingerprint: str) -> AlertView:
        """The alert's current state, to render a message from."""
        ...

    def acknowledge(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        """Stop reminders for this alert episode; a new firing is not acknowledged."""
        ...

    def silence(
        self,
        fingerprint: str,
        actor: str,
        source: str,
        *,
        scope: SilenceScope = "participant",
        duration: timedelta | None = None,
    ) -> ActionResult:
        """Silence this rule for the alert's participant (``scope="participant"``) or its
        whole meeting; ``duration`` None lasts until the meeting ends (capped)."""
        ...

    def unsilence(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        """Expire every silence in force that mutes this alert."""
        ...

    def status(self) -> dict[str, Any]:
        """``{"firing": [AlertView...], "watched": int}`` for a status reply."""
        ...

    def silences(self) -> list[dict[str, Any]]:
        """Silences in force as ``silence list --json`` shows them (with ``source``)."""
        ...


@dataclass(frozen=True, slots=True)
class NotifierContext:
    """What the core hands a factory: the entry's name, its validated config, a
    logger, durable state scoped to this entry, and ``actions`` for notifiers that
    let people act on alerts (None where there is no running daemon, e.g. notify-test).

    ``redactor`` masks every form of this entry's secrets (its SecretStr fields):
    the core already applies it to ``logger`` and to the errors ``send`` raises;
    apply it yourself where text leaves by another way, e.g. a library's own
    logger (``redactor.install(logger.getChild("httpx"))``), and before cutting
    a receiver's answer short (a cut secret no longer matches).

    A notifier that listens for something (e.g. Slack button clicks) may define
    ``start()`` and ``close()``: the core calls ``start()`` when it puts the
    notifier in service and ``close()`` when it leaves it (reload, shutdown).
    """

    name: str
    config: BaseModel
    logger: logging.Logger
    state: NotifierState
    actions: AlertActions | None = None
    redactor: Redactor = field(default_factory=Redactor)


@dataclass(frozen=True, slots=True)
class NotifierType:
    name: str
    config: type[BaseModel]
    factory: Callable[[NotifierContext], Notifier]
    description: str = ""
    plugin: str = field(default="", compare=False)


Register = Callable[[NotifierType], None]
