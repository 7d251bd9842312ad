"""The notifier contract: what a plugin implements and what the core gives it.

Public plugin API. A plugin registers a :class:`NotifierType`; the core
validates each ``notifiers:`` entry of that type against its pydantic
``config`` model and calls ``factory`` once per entry with a
``NotifierContext`` typed by that model. The core then calls ``send``
directly for each notification, never as a broadcast hook, with its own
timeout and retries around each call, so one broken notifier cannot
silence another. :func:`delivery_error_for` is the one retry policy for
HTTP answers that every built-in notifier follows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeVar

from watchdog.alerts import Alert, Notification
from watchdog.redaction import MASK, Redactor, secret_values

DEFAULT_RETENTION = timedelta(days=30)  # ``history.retention``'s default

__all__ = [
    "ANSWER_BYTES",
    "MASK",
    "MAX_RETRY_AFTER",
    "RETRIED_STATUSES",
    "ActionResult",
    "AlertActions",
    "AlertView",
    "AnswerBody",
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
    "StreamedAnswer",
    "delivery_error_for",
    "host_of",
    "innermost_reason",
    "read_answer",
    "retry_after_seconds",
    "secret_values",
    "transport_error",
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


def innermost_reason(exc: BaseException) -> str:
    """``Type: message`` of the innermost cause of a transport error, for a
    ``DeliveryError``: requests wraps the real reason (refused, timed out, a bad
    certificate) in errors whose text repeats the request line and its URL, which may
    hold a secret."""
    reason = exc
    while reason.__context__ is not None and reason.__context__ is not reason:
        reason = reason.__context__
    return f"{type(reason).__name__}: {reason}"


def host_of(url: str, unknown: str = "the destination") -> str:
    """``host:port`` of a URL without any ``user:password@``: where a request went, as
    an error may name it (never the path or query, which may hold a secret)."""
    return urlsplit(url).netloc.rpartition("@")[2] or unknown


def transport_error(exc: BaseException, host: str, service: str | None = None) -> DeliveryError:
    """The retried ``DeliveryError`` for a request that got no answer: refused, timed out,
    reset, or a certificate not trusted. ``host`` is where it went (:func:`host_of`),
    ``service`` what is there: ``cannot reach Teams at host:443: ConnectTimeout: ...``.
    Worded from :func:`innermost_reason`, so without the URL ``requests`` would quote; a
    TLS failure says that a private CA goes in ``ca_file``."""
    reason = innermost_reason(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return DeliveryError(
            f"TLS certificate of {host} is not trusted or invalid "
            f"(ca_file adds a private CA): {reason}"
        )
    return DeliveryError(f"cannot reach {f'{service} at {host}' if service else host}: {reason}")


ANSWER_BYTES = 4096  # what :func:`read_answer` reads of an answer by default


class AnswerBody(Protocol):
    """The raw body of a streamed answer (``requests.Response.raw``, urllib3's)."""

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes: ...


class StreamedAnswer(Protocol):
    """What :func:`read_answer` reads: a ``requests.Response`` got with ``stream=True``."""

    @property
    def raw(self) -> AnswerBody: ...


def read_answer(
    response: StreamedAnswer, limit: int = ANSWER_BYTES, *, deadline: float | None = None
) -> str:
    """What a destination answered, for an error message: at most ``limit`` bytes of the
    body, read until ``deadline`` (a ``time.monotonic()`` value), as text.

    Post with ``stream=True``: without it ``requests`` reads the whole body before it
    returns, however large or slow a broken or hostile server makes it. Each read takes
    what one receive brings and waits at most the request's ``timeout``, so this returns
    by ``deadline`` plus that timeout even from a server that sends a byte at a time. A
    body that breaks off, or is still coming at the deadline, leaves what came: the status
    decides, the answer only explains it. Mask the text before cutting it short
    (``ctx.redactor(text)[:200]``).
    """
    got = bytearray()
    raw = response.raw
    try:
        while len(got) < limit and (deadline is None or time.monotonic() < deadline):
            chunk = raw.read1(limit - len(got), decode_content=True)
            if not chunk:
                break
            got += chunk
    except (OSError, ValueError, urllib3.exceptions.HTTPError):
        pass  # what came is what there is
    return bytes(got[:limit]).decode("utf-8", "replace")


# Statuses below 500 that are still worth another try: the request timed out (408) or was
# rate-limited (429). Every 5xx is retried as well.
RETRIED_STATUSES: frozenset[int] = frozenset({408, 429})


def delivery_error_for(
    status: int,
    retry_after: str | None,
    message: str,
    *,
    retried: Collection[int] = RETRIED_STATUSES,
) -> DeliveryError:
    """The ``DeliveryError`` for an HTTP answer outside 2xx: retried, or permanent.

    One policy for every notifier that talks HTTP, after Alertmanager's shared
    ``Retrier``: a 5xx, or a status in ``retried`` (by default 408 and 429), is retried,
    after ``retry_after`` (the answer's ``Retry-After`` header, read by
    :func:`retry_after_seconds`) when the destination gave one and the core's backoff
    otherwise. Any other status is permanent: a 4xx says the request itself is wrong
    (credentials, URL, payload) and a 3xx is a redirect not followed, so sending it
    again cannot help. A destination with more retryable statuses passes its own
    ``retried``, e.g. ``RETRIED_STATUSES | {409}``. ``message`` is what the operator
    reads: who answered, the status and the answer, masked (``NotifierContext.redactor``).
    """
    if 200 <= status < 300:
        raise ValueError(f"HTTP {status} is a success, not a failed delivery")
    if 500 <= status < 600 or status in retried:
        return DeliveryError(message, retry_after=retry_after_seconds(retry_after))
    return DeliveryError(message, permanent=True)


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

    def forget(self, prefix: str, before: datetime) -> int:
        """Delete the records whose key starts with ``prefix`` not written since
        ``before``; returns how many. For records nothing else may come to delete, e.g. a
        meeting's thread kept for a call report that is never sent."""


class MemoryState:
    """NotifierState in a dict: for tests and one-off sends, lost at exit."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[datetime, dict[str, Any]]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._data.get(key)
        return None if found is None else dict(found[1])

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._data[key] = (datetime.now(UTC), dict(value))

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def forget(self, prefix: str, before: datetime) -> int:
        old = [k for k, (at, _) in self._data.items() if k.startswith(prefix) and at <= before]
        for key in old:
            del self._data[key]
        return len(old)


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
    ack_expires_at: datetime | None = None  # None: the acknowledgement lasts until it resolves
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

    def acknowledge(
        self, fingerprint: str, actor: str, source: str, note: str = ""
    ) -> ActionResult:
        """Own this alert episode: reminders and its escalation stop (a new firing is not
        acknowledged); it expires after the route's ``ack_timeout`` if it still fires."""
        ...

    def unacknowledge(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        """Give the alert back: reminders and its escalation resume."""
        ...

    def take(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        """Make ``actor`` the owner (*Take it*), acknowledged by someone else or not."""
        ...

    def snooze(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        """Silence the alert until the next 09:00 of its on-call team's time zone."""
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

    def oncall(self) -> list[dict[str, Any]]:
        """Who is on call now and next, per team, as ``oncall --json`` shows ``teams``."""
        ...

    def take_oncall(
        self, user: str, actor: str, source: str, *, team: str | None, duration: timedelta | None
    ) -> tuple[bool, str]:
        """Put the person whose ``slack_user`` is ``user`` on call for ``team`` (None: their
        only team) for ``duration`` (None: until the current shift ends); (done, message)."""
        ...


ConfigT_co = TypeVar("ConfigT_co", bound=BaseModel, default=BaseModel, covariant=True)
ModelT = TypeVar("ModelT", bound=BaseModel, default=BaseModel)


# frozen without slots: with slots, calling ``NotifierContext[MyConfig](...)`` fails on
# Python 3.11 (typing sets ``__orig_class__``; the slotted frozen __setattr__ raises TypeError)
@dataclass(frozen=True)
class NotifierContext(Generic[ConfigT_co]):
    """What the core hands a factory: the entry's name, its validated config, a
    logger, durable state scoped to this entry, and ``actions`` for notifiers that
    let people act on alerts (None where there is no running daemon, e.g. notify-test).

    ``config`` is an instance of the model the ``NotifierType`` names, and typed so:
    a factory declared as ``make(ctx: NotifierContext[MyConfig])`` reads
    ``ctx.config.url`` with no ``isinstance`` check. (A bare ``NotifierContext`` is
    ``NotifierContext[BaseModel]``, so a factory that still checks keeps working.)

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
    config: ConfigT_co
    logger: logging.Logger
    state: NotifierState
    actions: AlertActions | None = None
    redactor: Redactor = field(default_factory=Redactor)
    # ``history.retention``: what a notifier remembers for the history's sake (a meeting's
    # thread for its call report) need not outlive it (``NotifierState.forget``)
    retention: timedelta = DEFAULT_RETENTION


@dataclass(frozen=True)
class NotifierType(Generic[ModelT]):
    """A kind of notifier: the ``type:`` name operators write, the pydantic model that
    validates an entry, and the factory that builds one notifier from a validated entry.

    ``factory`` receives a ``NotifierContext`` of that same model, so mypy checks that
    ``NotifierType("pager", PagerConfig, make)`` pairs a model with a factory for it.
    """

    name: str
    config: type[ModelT]
    factory: Callable[[NotifierContext[ModelT]], Notifier]
    description: str = ""
    plugin: str = field(default="", compare=False)
    # whether entries of this type get acknowledgement notices (``Notification.event``)
    # unless an entry says otherwise with ``send_acknowledged``; a pager wants them
    send_acknowledged: bool = False
    # whether it renders reports (``Notification.event`` ``"report"``, ``"digest"``): only
    # entries of such types are sent the call reports and the daily digest
    reports: bool = False


class Register(Protocol):
    """The ``register`` callback the ``register_notifier_types`` hook receives."""

    def __call__(self, kind: NotifierType[ModelT], /) -> None: ...
