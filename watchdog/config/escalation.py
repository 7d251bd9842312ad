"""Settings of the on-call loop: a route's escalation policy, ``ack_timeout`` and the time
zone a *Snooze until 09:00* counts in (watchdog.alerting.escalation runs them).

Alertmanager has no escalation (prometheus/alertmanager#2150), so the shape borrows its
vocabulary: durations as it writes them, ``active_time_intervals`` as its routes take
them, and targets as Slack writes them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from watchdog.durations import Duration, PositiveDuration

MAX_STEPS = 20  # a ladder longer than this is a mistake, and each flush walks it
MAX_TARGETS = 20  # mentions or notifiers of one step

_USER = re.compile(r"[UW][A-Z0-9]{2,30}")
_GROUP = re.compile(r"@group:(S[A-Z0-9]{2,30})")
_ONCALL = re.compile(r"oncall:([A-Za-z0-9_.-]{1,64})")
TARGET_HELP = (
    'a Slack user ID ("U0123ABCD"), a user group ("@group:S0123ABCD") or the on-call '
    'person of a team ("oncall:video")'
)


def parse_target(text: str) -> tuple[Literal["user", "group", "oncall"], str]:
    """What a ``mention:`` entry names: ("user", U...), ("group", S...) or ("oncall", team)."""
    if _USER.fullmatch(text):
        return "user", text
    if found := _GROUP.fullmatch(text):
        return "group", found.group(1)
    if found := _ONCALL.fullmatch(text):
        return "oncall", found.group(1)
    raise ValueError(f"{text!r} is not {TARGET_HELP}")


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; ValueError says what is wrong."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)") from exc


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        populate_by_name=True,
    )


class EscalationStep(_Model):
    """One rung of a ladder: after a delay, mention people in the alert's thread and/or
    send the alert to more notifiers."""

    after: Duration = timedelta(0)
    """How long after ``from`` this step is due (time acknowledged or silenced not counted)."""
    from_: Literal["firing", "previous"] = Field(default="previous", alias="from")
    """``firing``: ``after`` counts from the alert's first notification; ``previous``:
    from the step before (the first step: from the first notification)."""
    mention: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    """Who is mentioned in the alert's thread: Slack user IDs (``U0123ABCD``), user groups
    (``@group:S0123ABCD``), the on-call person of a team (``oncall:video``)."""
    via: list[str] | None = Field(default=None, max_length=MAX_TARGETS)
    """The notifiers whose thread carries the mention; unset: the route's ``slack`` ones."""
    notify: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    """Notifiers the alert is sent to at this step (a channel, email, a pager)."""
    active_time_intervals: list[str] = Field(default_factory=list)
    """The step runs only inside one of these ``time_intervals`` (by name); outside them
    it is passed over when due. Empty: always."""

    @field_validator("mention", "notify", "active_time_intervals", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("mention")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_target(text)
        return value

    @model_validator(mode="after")
    def _does_something(self) -> EscalationStep:
        if not self.mention and not self.notify:
            raise ValueError("a step needs `mention: [...]`, `notify: [...]` or both")
        return self


class EscalationPolicy(_Model):
    """A route's ladder: while an alert fires unacknowledged, its steps run in order."""

    steps: list[EscalationStep] = Field(min_length=1, max_length=MAX_STEPS)
    """The steps, in order; each runs once per alert episode."""
    repeat_last_every: PositiveDuration | None = None
    """Run the last step again this often while nobody acknowledges; unset: once."""


def _zone_name(value: str) -> str:
    zone(value)
    return value


TimeZoneName = Annotated[str, AfterValidator(_zone_name)]
"""An IANA time zone name, checked when the config loads."""
