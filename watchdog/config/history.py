"""The ``history:`` section: how long alert history and minute summaries are kept (issue 20)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from watchdog.config.escalation import TimeZoneName
from watchdog.config.oncall import minute_of_day
from watchdog.durations import PositiveDuration, format_duration, parse_duration

MAX_RETENTION = timedelta(days=400)


def _retention(value: Any) -> timedelta:
    found = parse_duration(value, MAX_RETENTION)
    if found < timedelta(hours=1):
        raise ValueError("keep at least 1h of history (the reports read the last day)")
    return found


Retention = Annotated[
    timedelta,
    BeforeValidator(_retention),
    PlainSerializer(format_duration, return_type=str),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


class ReportSettings(_Model):
    """The report after every call (``history.report``, or a route's ``report``)."""

    when: Literal["alerts", "always", "never"] = "alerts"
    """Which calls get a report when their session ends: those that had alerts
    (``alerts``), every watched call (``always``), or none (``never``)."""
    notify: list[str] | None = None
    """Notifier entries the report goes to; unset: those the call's alerts went to (for a
    call without alerts, ``alerting.default_notify``, else every notifier), of the types
    that render reports (slack, email, webhook, console)."""


class DigestSettings(_Model):
    """The daily digest (``history.digest``): once a day, at ``at`` in ``time_zone``."""

    at: str = "09:00"
    """Local time of day (HH:MM) the digest of the 24 hours before is sent; a daemon
    down then sends it when it comes back that day."""
    time_zone: TimeZoneName = "UTC"
    """IANA time zone of ``at`` (e.g. ``Europe/Berlin``)."""
    notify: list[str] | None = None
    """Notifier entries the digest goes to; unset: ``alerting.default_notify``, else every
    notifier, of the types that render reports."""
    top: int = Field(default=5, ge=1, le=50)
    """How many meetings, causes and rules each list shows."""

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if minute_of_day(value) >= 24 * 60:
            raise ValueError("at is a time within the day (00:00..23:59)")
        return value


class HistorySettings(_Model):
    retention: Retention = timedelta(days=30)
    """How long transitions, notifications, acknowledgements, silences, inhibitions and
    minute summaries are kept (1h to 400d); older rows are pruned in batches."""
    prune_interval: PositiveDuration = timedelta(minutes=10)
    """How often the daemon prunes what is older than ``retention`` (a few seconds' work
    at most per run; what is left goes on the next)."""
    summaries: bool = True
    """Keep per-participant minute summaries (min/avg/max) of the rules' metrics, for
    ``replay --from-history`` and reports; ~29 bytes a participant-minute with 8 metrics."""
    metrics: list[str] = Field(default_factory=list)
    """Metrics summarised beside those the rules look at (e.g. ``qualityScore.audio``;
    any rule metric name)."""
    report: ReportSettings = Field(default_factory=ReportSettings)
    """The report after every call: which calls, to whom (a route's ``report`` overrides
    it for the meetings whose alerts it matches)."""
    digest: DigestSettings | None = None
    """The daily digest; unset: none."""
