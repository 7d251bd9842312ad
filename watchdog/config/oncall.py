"""Settings of who is on call (``oncall:``) and of named time windows (``time_intervals:``).

``time_intervals`` is Alertmanager's syntax, checked as its own ``amtool check-config``
checks it (tests/test_timeintervals.py runs both on the same files); the values are
parsed here once, so the alert manager only compares numbers.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from watchdog.config.problems import closest
from watchdog.durations import Duration, at_least

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_CLOCK = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name; ValueError names the closest known one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = closest(name, available_timezones())
        also = f": did you mean {hint!r}?" if hint else " (e.g. Europe/Berlin, America/New_York)"
        raise ValueError(f"unknown time zone {name!r}{also}") from None


def minute_of_day(text: str) -> int:
    """``"HH:MM"`` (24-hour, ``24:00`` allowed) as minutes since midnight."""
    if not isinstance(text, str) or not _CLOCK.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a time of day: write HH:MM, 24-hour, e.g. 09:00 or 24:00"
        )
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _member(text: str, names: tuple[str, ...], first: int, what: str, numbers: bool) -> int:
    word = text.strip().lower()
    if word in names:
        return names.index(word) + first
    if numbers and re.fullmatch(r"-?\d{1,5}", word):
        return int(word)
    hint = closest(word, names)
    example = f"e.g. {names[1]}:{names[5]}"
    raise ValueError(
        f"{text!r} is not a {what}"
        + (f": did you mean {hint!r}?" if hint else f" ({example}; names: {', '.join(names)})")
    )


def parse_range(
    value: Any, names: tuple[str, ...] = (), first: int = 0, what: str = "", numbers: bool = True
) -> tuple[int, int]:
    """``"monday:friday"``, ``"3"`` or ``3`` as an inclusive (begin, end) pair."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} is not a {what} or a range of them (e.g. 1:5)")
    text = str(value)
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"{text!r} is not a {what} or a range 'first:last'")
    begin = _member(parts[0], names, first, what, numbers)
    end = _member(parts[-1], names, first, what, numbers)
    return begin, end


def weekday_range(value: Any) -> tuple[int, int]:
    begin, end = parse_range(value, WEEKDAYS, 0, "weekday", numbers=False)
    if begin > end:
        raise ValueError(
            f"{value!r}: start day cannot be after end day (weeks run sunday to saturday): "
            f"list the parts, e.g. [{WEEKDAYS[begin]}, sunday] or "
            f"['{WEEKDAYS[begin]}:saturday', 'sunday:{WEEKDAYS[end]}']"
        )
    return begin, end


def day_of_month_range(value: Any) -> tuple[int, int]:
    begin, end = parse_range(value, what="day of the month")
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(
                f"{value!r}: {day} is not a day of the month (1..31, or -1 for the last)"
            )
    if begin < 0 < end:
        raise ValueError(f"{value!r}: the end day must be negative if the start day is")
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise ValueError(f"{value!r}: the end day is always before the start day")
    return begin, end


def month_range(value: Any) -> tuple[int, int]:
    begin, end = parse_range(value, MONTHS, 1, "month")
    for month in (begin, end):
        if not 1 <= month <= 12:
            raise ValueError(f"{value!r}: {month} is not a month (1..12 or january..december)")
    if begin > end:
        raise ValueError(
            f"{value!r}: the end month is before the start month: list the parts, "
            "e.g. ['november:december', 'january:february']"
        )
    return begin, end


def year_range(value: Any) -> tuple[int, int]:
    begin, end = parse_range(value, what="year")
    for year in (begin, end):
        if not 1 <= year <= 9999:
            raise ValueError(f"{value!r}: {year} is not a year")
    if begin > end:
        raise ValueError(f"{value!r}: the end year is before the start year")
    return begin, end


class TimeRangeSettings(_Section):
    """Minutes of a day: from ``start_time`` (included) to ``end_time`` (excluded)."""

    start_time: str
    """``HH:MM``, 24-hour, local to the interval's ``location``."""
    end_time: str
    """``HH:MM``, excluded; ``24:00`` is the end of the day. After ``start_time``: a range
    over midnight is two ranges (``22:00``-``24:00`` and ``00:00``-``06:00``)."""

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        minute_of_day(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeRangeSettings:
        if minute_of_day(self.start_time) >= minute_of_day(self.end_time):
            raise ValueError(
                f"start_time {self.start_time} is not before end_time {self.end_time}: a range "
                "over midnight is two ranges (e.g. 22:00-24:00 and 00:00-06:00)"
            )
        return self

    @property
    def minutes(self) -> tuple[int, int]:
        return minute_of_day(self.start_time), minute_of_day(self.end_time)


Ranges = list[str | int]


class TimeIntervalSettings(_Section):
    """One window: every field given must match (an absent one matches all)."""

    times: list[TimeRangeSettings] | None = None
    """Times of day; any of them."""
    weekdays: Ranges | None = None
    """``monday``, ``monday:friday`` (weeks run sunday to saturday)."""
    days_of_month: Ranges | None = None
    """``1``, ``1:15``, ``-1`` (the last day), ``-7:-1`` (the last week)."""
    months: Ranges | None = None
    """``january``, ``3``, ``june:august``."""
    years: Ranges | None = None
    """``2026``, ``2026:2027``."""
    location: str = "UTC"
    """The IANA time zone the fields are read in (``Europe/Berlin``); default UTC."""

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: Ranges | None) -> Ranges | None:
        for item in value or []:
            weekday_range(item)
        return value

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, value: Ranges | None) -> Ranges | None:
        for item in value or []:
            day_of_month_range(item)
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: Ranges | None) -> Ranges | None:
        for item in value or []:
            month_range(item)
        return value

    @field_validator("years")
    @classmethod
    def _years(cls, value: Ranges | None) -> Ranges | None:
        for item in value or []:
            year_range(item)
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value


class NamedTimeIntervalSettings(_Section):
    """A named window routes and escalation steps refer to (Alertmanager's syntax)."""

    name: str = Field(min_length=1, max_length=200)
    """What ``mute_time_intervals`` and ``active_time_intervals`` name."""
    time_intervals: list[TimeIntervalSettings] = Field(default_factory=list)
    """The window is open when any of these matches."""


def unique_names(value: list[NamedTimeIntervalSettings]) -> list[NamedTimeIntervalSettings]:
    seen: set[str] = set()
    for item in value:
        if item.name in seen:
            raise ValueError(f"time interval {item.name!r} is defined twice: names are unique")
        seen.add(item.name)
    return value


TimeIntervalList = Annotated[list[NamedTimeIntervalSettings], AfterValidator(unique_names)]


# -- who is on call --------------------------------------------------------------


class PersonSettings(_Section):
    """How to reach one person of a team."""

    slack_user: str | None = None
    """Slack user ID (``U0123ABC``): mentions, and who may ``/watchdog oncall take``."""
    email: str | None = None
    """Email address; a calendar event's ATTENDEE with it names this person too."""

    @field_validator("slack_user")
    @classmethod
    def _slack_id(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_USER.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a Slack user ID (U0123ABC: a member's profile, "
                "'Copy member ID'); a display name changes and cannot be mentioned"
            )
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^@\s]{1,64}@[^@\s]{1,255}", value):
            raise ValueError(f"{value!r} is not an email address")
        return value


class RotationSettings(_Section):
    """People take turns: each is on call for ``every``, handing over at ``handoff``."""

    people: list[str] = Field(min_length=1)
    """The order of turns (names from the team's ``people``; one may appear twice)."""
    start: date
    """The day the first person's first turn begins (at ``handoff``, ``time_zone``)."""
    handoff: str = "09:00"
    """The local time of day turns change (``HH:MM``); stays at that wall-clock time across
    DST changes."""
    every: Annotated[Duration, at_least(timedelta(days=1))] = timedelta(days=7)
    """The length of a turn: whole days (``1d``, ``7d``, ``14d``)."""
    time_zone: str = "UTC"
    """IANA time zone of ``start`` and ``handoff``."""

    @field_validator("handoff")
    @classmethod
    def _clock(cls, value: str) -> str:
        if minute_of_day(value) >= 24 * 60:
            raise ValueError("handoff is a time within the day (00:00..23:59)")
        return value

    @field_validator("every")
    @classmethod
    def _days(cls, value: timedelta) -> timedelta:
        if value % timedelta(days=1):
            raise ValueError(
                "every is whole days (1d, 7d, 14d): turns change at the same local time "
                "each day; shorter shifts belong in a calendar feed"
            )
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value


class TeamSettings(_Section):
    """One team's people and schedule: a ``calendar`` feed or a ``rotation``."""

    people: dict[str, PersonSettings] = Field(default_factory=dict)
    """Who may be on call, by the name the schedule uses."""
    calendar: SecretStr | None = None
    """An iCalendar feed: an ``https://`` URL (PagerDuty, Opsgenie, Google, Outlook export
    one) or a file path relative to the config; a secret (such URLs carry a token). Each
    event names its person in SUMMARY (or by an ATTENDEE's email)."""
    rotation: RotationSettings | None = None
    """A rotation written here instead of a calendar."""
    refresh: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(minutes=5)
    """How often the calendar is fetched again (at least 1s; a calendar service may
    rate-limit a feed fetched more often than every few minutes)."""

    @field_validator("calendar")
    @classmethod
    def _feed(cls, value: SecretStr | None) -> SecretStr | None:
        text = value.get_secret_value() if value is not None else ""
        if value is not None and (not text.strip() or ("://" in text and not _web(text))):
            raise ValueError("calendar is an http(s):// URL or a file path")
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> TeamSettings:
        if (self.calendar is None) == (self.rotation is None):
            raise ValueError(
                "a team has a calendar: (feed URL or file) or a rotation:, one of them"
            )
        if not self.people:
            raise ValueError("a team needs people: {name: {slack_user: U0123ABC, email: ...}}")
        unknown = [
            p for p in (self.rotation.people if self.rotation else []) if p not in self.people
        ]
        if unknown:
            raise ValueError(
                f"rotation.people names {unknown[0]!r}, who is not in the team's people "
                f"({', '.join(sorted(self.people))})"
            )
        return self


def _web(text: str) -> bool:
    return text.startswith(("http://", "https://"))


class OnCallSettings(_Section):
    """Teams and who of them is on call; the feed limits guard against hostile feeds."""

    teams: dict[str, TeamSettings] = Field(default_factory=dict)
    """By team name (what ``--team``, ``/watchdog oncall take TEAM`` and escalation steps
    name)."""
    max_feed_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """A larger calendar feed is refused (the last good copy stays in use)."""
    max_events: int = Field(default=5000, ge=1, le=100_000)
    """A feed with more events, or more occurrences around the present, is refused."""
    feed_timeout: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(seconds=20)
    """A feed download (connect, redirects, whole body) ends after this."""

    @field_validator("teams")
    @classmethod
    def _names(cls, value: dict[str, TeamSettings]) -> dict[str, TeamSettings]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError(
                    f"team name {name!r}: letters, digits, '.', '_' and '-' only "
                    "(it is typed in /watchdog oncall take TEAM)"
                )
        return value
