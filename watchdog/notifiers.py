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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from watchdog.alerts import Notification


class NotifierConfig(BaseModel):
    """Base for notifier config models: unknown keys are mistakes, so they are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
class NotifierContext:
    """What the core hands a factory: the entry's name, its validated config, a
    logger, and durable state scoped to this entry."""

    name: str
    config: BaseModel
    logger: logging.Logger
    state: NotifierState


@dataclass(frozen=True, slots=True)
class NotifierType:
    name: str
    config: type[BaseModel]
    factory: Callable[[NotifierContext], Notifier]
    description: str = ""
    plugin: str = field(default="", compare=False)


Register = Callable[[NotifierType], None]
