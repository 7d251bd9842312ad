"""Durations as people write them in rule and config files: ``90s``, ``2m``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# one part: a number, its unit, blanks around both (`30s`, `30 s`, `1h 30m`); the JSON
# Schema's pattern is built from the same text, so an editor and `check` agree
_NUMBER_UNIT = r"\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)"
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
PATTERN = rf"^\s*(?:{_NUMBER_UNIT}\s*)+$|^\s*0\s*$"
_ZERO = r"^\s*(?:0+(?:\.0+)?\s*(?:ms|s|m|h|d)\s*)+$|^\s*0\s*$"


def parse_duration(value: Any) -> timedelta:
    """Accept ``30s``/``1h30m`` strings, plain numbers of seconds, or timedeltas."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration like 30s, 5m or 1h30m is expected")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration like 30s, 5m or 1h30m is expected")
    text = value.strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("a duration like 30s, 5m or 1h30m is expected")
        return timedelta(0)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"{value!r} is not a duration like 30s, 5m or 1h30m (units: ms s m h d)")
    return timedelta(seconds=total)


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


def at_least(minimum: timedelta, why: str = "") -> AfterValidator:
    """A floor for a ``Duration`` field, ``why`` said in the error:
    ``Annotated[Duration, at_least(timedelta(seconds=10), "each refetch is an API call")]``."""
    message = f"must be at least {format_duration(minimum)}" + (f": {why}" if why else "")

    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise ValueError(message)
        return value

    return AfterValidator(check)
