"""Durations as people write them in rule and config files (``90s``, ``2m``, ``1h30m``),
and instants in the API's own ISO-8601 form."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = [
    "MAX_DURATION",
    "PATTERN",
    "Duration",
    "PositiveDuration",
    "at_least",
    "format_duration",
    "format_time",
    "parse_duration",
    "parse_instant",
    "parse_time",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# one part: a number, its unit, blanks around both (`30s`, `30 s`, `1h 30m`); the JSON
# Schema's pattern is built from the same text, so an editor and `check` agree
_NUMBER_UNIT = r"\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)"
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
PATTERN = rf"^\s*(?:{_NUMBER_UNIT}\s*)+$|^\s*0\s*$"
_ZERO = r"^\s*(?:0+(?:\.0+)?\s*(?:ms|s|m|h|d)\s*)+$|^\s*0\s*$"
MAX_DURATION = timedelta(days=30)
"""No setting or rule means more than this; larger numbers are typos (or attacks)."""


def parse_duration(value: Any, limit: timedelta = MAX_DURATION) -> timedelta:
    """Accept ``30s``/``1h30m`` strings, plain numbers of seconds, or timedeltas, up to limit."""
    if isinstance(value, timedelta):
        return _bounded(value.total_seconds(), limit)
    if isinstance(value, bool):
        raise ValueError("a duration like 30s, 5m or 1h30m is expected")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded(value, limit)
    if not isinstance(value, str):
        raise ValueError("a duration like 30s, 5m or 1h30m is expected")
    text = value.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("a duration like 30s, 5m or 1h30m is expected")
        return timedelta(0)
    pos, total = 0, 0.0
    # each part matched where the last ended: a failed search from every later position
    # (finditer) would cost the square of a long run of blanks
    while match := _PART.match(text, pos):
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{value!r} is not a duration like 30s, 5m or 1h30m (units: ms s m h d)")
    return _bounded(total, limit)


def _bounded(seconds: float, limit: timedelta) -> timedelta:
    """Seconds as a timedelta, refusing NaN and anything above ``limit``."""
    if math.isnan(seconds):
        raise ValueError("a duration is a number of seconds, not NaN")
    if seconds > limit.total_seconds():
        raise ValueError(f"is too long (at most {format_duration(limit)})")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Shortest readable form: ``1h30m``, ``45s``, ``500ms``."""
    seconds = value.total_seconds()
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "a duration: 30s, 5m, 1h30m (ms s m h d), or seconds",
        }
    ),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than 0s")
    return value


PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PATTERN, "not": {"pattern": _ZERO}},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "a duration greater than 0: 30s, 5m, 1h30m (ms s m h d), or seconds",
        }
    ),
]


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 to an aware UTC datetime; None if unusable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


MAX_INSTANT_TEXT = 64  # longer text is no time anyone typed
MAX_LOOKBACK = timedelta(days=400)


def parse_instant(value: str, now: datetime) -> datetime:
    """What ``--since 7d`` and ``?until=...`` mean: an ISO-8601 time (UTC unless it says),
    ``now``, or a duration before ``now`` (``7d``, ``7d ago``, ``1h30m ago``, at most
    400d). ValueError says what is accepted."""
    text = value.strip().lower()
    if len(text) > MAX_INSTANT_TEXT:
        raise ValueError(f"a time is at most {MAX_INSTANT_TEXT} characters")
    if text == "now":
        return now
    found = parse_time(value.strip())
    if found is not None:
        return found
    try:
        return now - parse_duration(text.removesuffix("ago").strip(), MAX_LOOKBACK)
    except ValueError:
        raise ValueError(
            f"{value[:MAX_INSTANT_TEXT]!r} is neither an ISO-8601 time "
            "(2026-05-01T09:00:00Z) nor a duration ago (7d, 90m ago, at most 400d)"
        ) from None


def format_time(value: datetime) -> str:
    """The API's own format: UTC, milliseconds, ``Z``."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def at_least(minimum: timedelta, why: str = "") -> AfterValidator:
    """A floor for a ``Duration`` field, ``why`` said in the error:
    ``Annotated[Duration, at_least(timedelta(seconds=10), "each refetch is an API call")]``."""
    message = f"must be at least {format_duration(minimum)}" + (f": {why}" if why else "")

    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise ValueError(message)
        return value

    return AfterValidator(check)
