"""Named time windows (``time_intervals:``): is one open at a given instant?

Alertmanager's semantics (its ``timeinterval.ContainsTime``): the instant is read as
wall-clock time in the interval's ``location``, then every field given must match
(times of day with the end excluded, weekdays, days of the month with negatives
counted from the month's end, months, years); a named window is open when any of its
intervals matches. Wall-clock reading is what makes DST behave as people expect: a
window ``01:30``-``03:00`` on the night clocks go forward is open for 30 real minutes
(02:00-03:00 does not exist), on the night they go back for the repeated hour too.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from watchdog.config.oncall import (
    NamedTimeIntervalSettings,
    TimeIntervalSettings,
    day_of_month_range,
    month_range,
    weekday_range,
    year_range,
    zone,
)
from watchdog.config.problems import Problem, did_you_mean
from watchdog.config.settings import Config

Span = tuple[int, int]  # an inclusive range, or minutes [start, end)


@dataclass(frozen=True, slots=True)
class Interval:
    """One parsed ``time_intervals`` entry; None fields match everything."""

    location: ZoneInfo
    times: tuple[Span, ...] | None = None
    weekdays: tuple[Span, ...] | None = None  # 0 = sunday
    days_of_month: tuple[Span, ...] | None = None
    months: tuple[Span, ...] | None = None
    years: tuple[Span, ...] | None = None

    @classmethod
    def from_settings(cls, settings: TimeIntervalSettings) -> Interval:
        def spans(
            values: Sequence[str | int] | None, parse: Callable[[str | int], Span]
        ) -> tuple[Span, ...] | None:
            return None if values is None else tuple(parse(v) for v in values)

        return cls(
            location=zone(settings.location),
            times=None if settings.times is None else tuple(t.minutes for t in settings.times),
            weekdays=spans(settings.weekdays, weekday_range),
            days_of_month=spans(settings.days_of_month, day_of_month_range),
            months=spans(settings.months, month_range),
            years=spans(settings.years, year_range),
        )

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.location)
        if self.times is not None:
            minute = local.hour * 60 + local.minute
            if not any(start <= minute < end for start, end in self.times):
                return False
        if self.days_of_month is not None and not any(
            _day_matches(local, span) for span in self.days_of_month
        ):
            return False
        if self.months is not None and not _within(local.month, self.months):
            return False
        weekday = (local.weekday() + 1) % 7  # Python's monday = 0; Alertmanager's sunday = 0
        if self.weekdays is not None and not _within(weekday, self.weekdays):
            return False
        return self.years is None or _within(local.year, self.years)


def _within(value: int, spans: Iterable[Span]) -> bool:
    return any(begin <= value <= end for begin, end in spans)


def _day_matches(local: datetime, span: Span) -> bool:
    """Alertmanager's days_of_month: negatives count back from the month's last day
    (-1 = the last), a start past the month's end matches nothing, ends are clamped."""
    length = calendar.monthrange(local.year, local.month)[1]
    begin = length + span[0] + 1 if span[0] < 0 else span[0]
    end = length + span[1] + 1 if span[1] < 0 else span[1]
    if begin > length:
        return False
    return max(begin, -length) <= local.day <= min(end, length)


class TimeIntervals:
    """The config's named windows; ``active(name, at)`` for routes and escalation steps."""

    def __init__(self, windows: Mapping[str, Sequence[Interval]] | None = None) -> None:
        self._windows = {name: tuple(parts) for name, parts in (windows or {}).items()}

    @classmethod
    def from_settings(cls, named: Iterable[NamedTimeIntervalSettings]) -> TimeIntervals:
        return cls({n.name: [Interval.from_settings(i) for i in n.time_intervals] for n in named})

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._windows)

    def active(self, name: str, at: datetime) -> bool:
        """Whether window ``name`` is open at ``at`` (an aware datetime; naive means UTC).

        KeyError for a name the config does not define (``check`` refuses such configs).
        """
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return any(interval.contains(at) for interval in self._windows[name])

    def muted(self, mute: Iterable[str], active: Sequence[str], at: datetime) -> bool:
        """Alertmanager's route rule: muted while any ``mute`` window is open, or while
        ``active`` names windows and none of them is open."""
        if any(self.active(name, at) for name in mute):
            return True
        return bool(active) and not any(self.active(name, at) for name in active)


def problems(config: Config) -> list[Problem]:
    """Routes naming a window the config does not define (Alertmanager refuses those too)."""
    settings = config.settings
    defined = {n.name for n in settings.time_intervals}
    found = []
    for index, route in enumerate(settings.alerting.routes):
        for key in ("mute_time_intervals", "active_time_intervals"):
            for at, name in enumerate(getattr(route, key)):
                if name in defined:
                    continue
                file, line = config.line_for("alerting", "routes", index, key, at)
                known = ", ".join(sorted(defined)) or "none"
                found.append(
                    Problem(
                        file,
                        line,
                        f"alerting.routes[{index}].{key}[{at}]: no time interval named {name!r}"
                        f"{did_you_mean(name, defined)} (define it under top-level "
                        f"time_intervals:; defined: {known})",
                    )
                )
    return found
