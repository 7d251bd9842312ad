"""How every table stores what they share: times as ISO-8601 text in UTC, and a
participant as its (session id, participant id) key.

One place, so each repository reads what the others wrote.
"""

from __future__ import annotations

from datetime import UTC, datetime

from watchdog.durations import format_time, parse_time

Key = tuple[str, str]  # (session id, participant id)


def now_text() -> str:
    """The current time as stored."""
    return format_time(datetime.now(UTC))


def read_time(value: str | None) -> datetime | None:
    """A stored time (None stays None)."""
    return parse_time(value) if value is not None else None
