"""The ``history:`` section: how long alert history and minute summaries are kept (issue 20)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

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


class HistorySettings(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

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
