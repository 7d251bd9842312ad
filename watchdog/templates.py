"""Alert text templates: Jinja2 in a sandbox, strict about names.

Rule authors write ``summary``/``description`` with the participant's context;
the sandbox keeps a template from reaching Python internals, and StrictUndefined
makes a misspelt variable a ``check`` error instead of an empty string at 3 a.m.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from watchdog.alerts import format_number
from watchdog.durations import format_duration, parse_duration

log = logging.getLogger(__name__)


def _duration(value: Any) -> str:
    try:
        return format_duration(parse_duration(value))
    except ValueError:
        return str(value)


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.filters["number"] = format_number
_ENV.filters["duration"] = _duration

# Every variable a template may use, with the value ``check`` renders it against.
VARIABLES: dict[str, Any] = {
    "rule": "poor-video",
    "severity": "warning",
    "state": "firing",
    "metric": "qualityScore.video",
    "op": "<",
    "threshold": 3.0,
    "value": 2.4,
    "values": [4.2, 4.1, 3.2, 2.6, 2.4],
    "sparkline": "██▄▂▁",
    "participant": "Alice",
    "participant_id": "fj9jxhtw",
    "participant_name": "Alice",
    "meeting": "61bw-723k-p4mp",
    "session": "62d13ccea0f6ac85649d7931",
    "device": "Chrome",
    "device_version": "130.0",
    "sdk": "react",
    "sdk_version": "0.1.90",
    "country": "India",
    "city": "Mumbai",
    "region": "Maharashtra",
    "asn": "AS55836",
    "org": "Reliance Jio",
    "labels": {"team": "video"},
    "since": "2026-11-24T10:00:00.000Z",
    "time": "2026-11-24T10:01:00.000Z",
    "affected": 0,
    "watched": 0,
    "participants": [],
}


@lru_cache(maxsize=1024)
def _compile(source: str) -> Any:
    return _ENV.from_string(source)


def template_problem(source: str) -> str | None:
    """Why ``source`` cannot be rendered (syntax, unknown name, unsafe access), or None."""
    try:
        _ENV.parse(source)
        _compile(source).render(VARIABLES)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        line = f" (template line {lineno})" if lineno else ""
        return f"{type(exc).__name__}: {exc.message or exc}{line}"
    except Exception as exc:  # a filter on the sample values failing: still the author's error
        return f"{type(exc).__name__}: {exc}"
    return None


def render(source: str, context: dict[str, Any]) -> str:
    """Render for an alert; a failure shows the raw template rather than losing the alert."""
    try:
        return str(_compile(source).render(context))
    except Exception as exc:
        log.warning("alert template failed to render (%s); sending it unrendered", exc)
        return source
