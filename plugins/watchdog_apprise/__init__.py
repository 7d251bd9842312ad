"""Apprise notifier: one entry, a list of Apprise URLs, the ~100 services Apprise knows.

Written against the public plugin API only, as an outside plugin would be. Each URL is a
secret (tokens live in it) and its own target: a notification goes to every target at
once, and the core's retry of a notification that some targets accepted goes only to
those that did not (remembered in memory per notification: after a restart or a reload a
retry goes to every URL again, a duplicate rather than a loss; nothing derived from a URL
is written to the state database). Apprise's ``notify()`` answers per service; a service
that failed is retried through the outbox, unless Apprise's own words say the service
refused the request with a 4xx other than 408 and 429 (a revoked token, an unknown chat),
which retrying cannot fix; the error is permanent only when every target still owed the
notification refused it so. Apprise reads a service's answer whole, so each send runs
through a process of its own (:mod:`watchdog_apprise.worker`, kept between sends): an
answer may take at most 256 MB of its memory, and it is killed ``timeout`` + 2 s after
the send began, whatever the targets answer.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    WithJsonSchema,
    field_validator,
)

from watchdog.alerts import Notification
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DeliveryError,
    NotifierConfig,
    NotifierContext,
    NotifierType,
    Redactor,
    Register,
)
from watchdog_apprise import targets, worker
from watchdog_apprise.render import DEFAULT_TITLE, render, title_problem
from watchdog_apprise.targets import Target
from watchdog_apprise.worker import Answer, Group, WorkerFailed

if TYPE_CHECKING:  # Apprise itself is imported once an entry is checked or built (targets)
    from apprise import NotifyFormat, NotifyType

__version__ = "0.1.0"
KNOWN_EVENTS = ("alert", "acknowledged", "unacknowledged")  # what this renders

MAX_URLS = 32
MAX_DETAIL = 300  # characters of what Apprise said about one failed target
REMEMBERED = 1000  # notifications whose partial delivery is remembered, oldest forgotten
GRACE = 2.0  # seconds past the deadline before a send stops waiting on Apprise itself


def _usable(url: SecretStr) -> SecretStr:
    """A URL Apprise cannot parse or load is a config error at ``check``, not at first send."""
    reason = targets.problem(url.get_secret_value())
    if reason is not None:
        raise ValueError(reason)
    return url


def _split(value: object) -> object:
    """URLs in one string, separated by blanks, as Apprise's own ``APPRISE_URLS`` takes
    them: what an environment variable can hold (``WATCHDOG_NOTIFIERS__CHAT__URLS``)."""
    return value.split() if isinstance(value, str) else value


AppriseURL = Annotated[SecretStr, AfterValidator(_usable)]
_URL_SCHEMA = {"type": "string", "format": "password", "writeOnly": True, "minLength": 1}
AppriseURLs = Annotated[
    list[AppriseURL],
    BeforeValidator(_split),
    Field(min_length=1, max_length=MAX_URLS),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": _URL_SCHEMA, "minItems": 1, "maxItems": MAX_URLS},
                {**_URL_SCHEMA, "pattern": r"\S"},
            ]
        }
    ),
]


class AppriseConfig(NotifierConfig):
    urls: AppriseURLs
    """Apprise URLs, one per destination (``discord://...``, ``tgram://...``), or one
    string of them separated by blanks; each is secret, as the tokens live in it."""
    format: Literal["text", "markdown"] = "markdown"
    """``markdown``: services that read Markdown (or HTML, converted by Apprise) get the
    Markdown rendering and the rest plain text; ``text``: plain text everywhere."""
    title: str = Field(default=DEFAULT_TITLE, min_length=1, max_length=500)
    """Title template; fields: ``{status}``, ``{severity}``, ``{rule}``, ``{who}``,
    ``{place}``, ``{count}``, ``{firing}``."""
    max_alerts: int = Field(default=10, ge=1, le=100)
    """A group lists this many alerts, worst first, then "… and N more"."""
    timeout: float = Field(default=20.0, gt=0, le=120)
    """Seconds for one notification to every URL; keep it under ``delivery.timeout``."""

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        problem = title_problem(value)
        if problem:
            raise ValueError(problem)
        return value


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one target took a notification: ``ok``, else why, and whether a retry can help."""

    target: Target
    ok: bool
    detail: str = ""
    permanent: bool = False


class AppriseNotifier:
    def __init__(self, config: AppriseConfig, redactor: Redactor) -> None:
        self.config = config
        urls = [u.get_secret_value() for u in config.urls]
        self.redact = redactor | Redactor(s for url in urls for s in targets.secret_parts(url))
        self.targets = targets.load(urls, config.format, config.timeout)
        self._sent: OrderedDict[str, frozenset[int]] = OrderedDict()  # id -> targets that took it
        self._lock = threading.Lock()
        self.workers = worker.Workers()  # the processes sends run in

    def __repr__(self) -> str:
        services = [t.service for t in self.targets]
        return f"AppriseNotifier(services={services!r}, format={self.config.format!r})"

    def close(self) -> None:
        """Called by the core when the entry leaves service: its processes end."""
        self.workers.close()

    def send(self, notification: Notification) -> None:
        if notification.event not in KNOWN_EVENTS:
            return  # a report or digest, or a newer event: not ours to render
        done = self._done(notification.id)
        owed = [t for t in self.targets if t.index not in done]
        outcomes = self._deliver(notification, owed)
        took = {o.target.index for o in outcomes if o.ok}
        failed = [o for o in outcomes if not o.ok]
        self._remember(notification.id, done | took, finished=not failed)
        if failed:
            raise self._error(failed, len(done | took))

    def _done(self, notification_id: str) -> frozenset[int]:
        with self._lock:
            return self._sent.get(notification_id, frozenset())

    def _remember(self, notification_id: str, took: frozenset[int], *, finished: bool) -> None:
        with self._lock:
            if finished:
                self._sent.pop(notification_id, None)
                return
            self._sent[notification_id] = took
            self._sent.move_to_end(notification_id)
            while len(self._sent) > REMEMBERED:
                self._sent.popitem(last=False)

    def _deliver(self, notification: Notification, owed: list[Target]) -> list[Outcome]:
        """Every owed target at once, grouped by the body it reads, each group through a
        process of its own (:mod:`watchdog_apprise.worker`); back by the deadline."""
        from apprise import NotifyFormat  # noqa: PLC0415  # loaded by targets.load already

        shown = render(notification, self.config.title, self.config.max_alerts)
        groups: dict[NotifyFormat, list[Target]] = {}
        for target in owed:
            groups.setdefault(target.body_format, []).append(target)
        kind = _notify_type(notification)
        timeout = self.config.timeout
        pool = ThreadPoolExecutor(max_workers=max(len(groups), 1), thread_name_prefix="apprise")
        try:
            futures: dict[Future[list[Answer]], list[Target]] = {
                pool.submit(
                    self.workers.run,
                    Group(
                        [t.url for t in group],
                        shown.markdown if body == NotifyFormat.MARKDOWN else shown.text,
                        str(body.value),
                    ),
                    title=shown.title,
                    kind=str(kind.value),
                    timeout=timeout,
                    grace=GRACE,
                ): group
                for body, group in groups.items()
            }
            wait(futures)  # each ends by timeout + GRACE: its process is killed then
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        outcomes: list[Outcome] = []
        for future, group in futures.items():
            error = future.exception()
            if error is None:
                outcomes += [
                    Outcome(t, a.ok, a.detail, a.permanent)
                    for t, a in zip(group, future.result(), strict=True)
                ]
                continue
            why = str(error) if isinstance(error, WorkerFailed) else type(error).__name__
            outcomes += [Outcome(t, False, why) for t in group]
        return outcomes

    def _error(self, failed: list[Outcome], accepted: int) -> DeliveryError:
        details = "; ".join(
            f"{o.target.label}: {self.redact(o.detail)[:MAX_DETAIL]}" for o in failed
        )
        total = len(self.targets)
        message = f"Apprise: {len(failed)} of {total} targets failed: {details}"
        if accepted:
            message += f" (accepted by {accepted}, which a retry skips)"
        return DeliveryError(message, permanent=all(o.permanent for o in failed))


def _notify_type(notification: Notification) -> NotifyType:
    """Apprise's type (a service's colour or icon): success for a resolve, else severity."""
    from apprise import NotifyType  # noqa: PLC0415  # loaded by targets.load already

    if notification.event == "alert" and all(a.status == "resolved" for a in notification.alerts):
        return NotifyType.SUCCESS
    severities = {a.severity for a in notification.alerts if a.status == "firing"}
    if "critical" in severities:
        return NotifyType.FAILURE
    if "warning" in severities:
        return NotifyType.WARNING
    return NotifyType.INFO


def _make(context: NotifierContext[AppriseConfig]) -> AppriseNotifier:
    return AppriseNotifier(context.config, context.redactor)


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="apprise",
            config=AppriseConfig,
            factory=_make,
            description="Any of the ~100 services Apprise knows (Discord, Telegram, Matrix, "
            "SMS...), from a list of Apprise URLs.",
        )
    )
