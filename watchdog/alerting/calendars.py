"""iCalendar feeds of on-call schedules: fetched within bounds, parsed, expanded.

A feed is hostile input: it is read up to ``max_feed_bytes`` within ``feed_timeout``
(a total deadline, not a per-read one), its events are counted before parsing, and
each recurrence rule's expansion work up to the horizon is estimated before any is
done (an ``RRULE:FREQ=SECONDLY`` from 1970 is refused in microseconds instead of
expanding for hours). A feed that fails any of it is refused whole and the last good
copy stays in use (watchdog.alerting.oncall).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import recurring_ical_events
import requests

from watchdog.videosdk.deadlines import DeadlineAdapter, within

MAX_EXPANSION = 100_000
"""Recurrence steps all rules of a feed may take to reach the horizon (a weekly rotation
since 2000 takes 1,400; expanding 100,000 takes about a second)."""
_PERIOD = {
    "SECONDLY": 1,
    "MINUTELY": 60,
    "HOURLY": 3600,
    "DAILY": 86400,
    "WEEKLY": 7 * 86400,
    "MONTHLY": 28 * 86400,
    "YEARLY": 365 * 86400,
}
MARGIN = timedelta(days=1)
_BY = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")


class FeedError(Exception):
    """A feed that cannot be used; the message names why, never the feed's URL."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One event occurrence: when, and what names its person."""

    start: datetime
    end: datetime
    summary: str
    attendees: tuple[str, ...]  # email addresses, lower case


def fetch(source: str, resolve: Callable[[str], Path], max_bytes: int, timeout: float) -> bytes:
    """The feed's body: an http(s) URL or a file path; FeedError past the bounds."""
    if not source.startswith(("http://", "https://")):
        path = resolve(source)
        try:
            with path.open("rb") as stream:
                body = stream.read(max_bytes + 1)
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise FeedError(f"cannot read the calendar file: {why}") from None
        if len(body) > max_bytes:
            raise FeedError(f"the calendar file is larger than {max_bytes:,} bytes")
        return body
    session = requests.Session()
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        with within(timeout), session.get(source, stream=True, timeout=timeout) as answer:
            if answer.status_code != 200:
                raise FeedError(f"the feed answered HTTP {answer.status_code}")
            declared = answer.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FeedError(
                    f"the feed is larger than {max_bytes:,} bytes ({declared} declared)"
                )
            chunks, size = [], 0
            for chunk in answer.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise FeedError(f"the feed is larger than {max_bytes:,} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as exc:
        # the exception's text quotes the URL, which may carry the feed's secret token
        raise FeedError(f"fetching the feed failed ({type(exc).__name__})") from None
    except OSError as exc:
        raise FeedError(f"fetching the feed failed ({type(exc).__name__})") from None
    finally:
        session.close()


def parse(body: bytes, max_events: int) -> icalendar.Calendar:
    """A VCALENDAR with at most ``max_events`` events; FeedError otherwise."""
    events = body.count(b"BEGIN:VEVENT")
    if events > max_events:
        raise FeedError(f"the feed has {events:,} events (at most {max_events:,}: max_events)")
    try:
        found = icalendar.Calendar.from_ical(body)
    except Exception as exc:  # the parser raises what it likes on hostile text
        raise FeedError(f"not an iCalendar feed: {_short(exc)}") from None
    if not isinstance(found, icalendar.Calendar):
        raise FeedError("not an iCalendar feed: no VCALENDAR")
    return found


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:119] + "…"


def check_expansion(calendar: icalendar.Calendar, until: datetime) -> None:
    """Refuse rules whose expansion up to ``until`` would take more than MAX_EXPANSION
    steps (dateutil walks every period from DTSTART, whatever window is asked for)."""
    work = 0.0
    for event in calendar.walk("VEVENT"):
        rules = event.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
            work += _steps(rule, event.get("DTSTART"), until)
            if work > MAX_EXPANSION:
                raise FeedError(
                    f"event {_text(event.get('SUMMARY'))!r} recurs too often to expand "
                    f"(RRULE FREQ={_first(rule, 'FREQ')}): on-call shifts recur at most "
                    "hourly and the feed's rules may take at most "
                    f"{MAX_EXPANSION:,} steps up to two months ahead"
                )


def _first(rule: Mapping[str, Any], key: str) -> Any:
    value = rule.get(key)
    return value[0] if isinstance(value, list) and value else value


def _steps(rule: Mapping[str, Any], dtstart: Any, until: datetime) -> float:
    period = _PERIOD.get(str(_first(rule, "FREQ") or "").upper())
    if period is None:
        return 0.0  # dateutil refuses it: the series is skipped
    start = _instant(getattr(dtstart, "dt", None)) or until
    end = _instant(_first(rule, "UNTIL")) or until
    span = max(0.0, (min(end, until) - start).total_seconds())
    interval = _first(rule, "INTERVAL")
    every = period * (interval if isinstance(interval, int) and interval > 0 else 1)
    factor = math.prod(max(1, len(v)) for k in _BY if isinstance(v := rule.get(k), list))
    return (span / every + 1) * factor


def _instant(value: Any) -> datetime | None:
    """A DTSTART/UNTIL value as an aware datetime (floating and all-day ones as UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def occurrences(
    calendar: icalendar.Calendar, start: datetime, end: datetime, limit: int
) -> list[Occurrence]:
    """Occurrences overlapping [start, end), in order of start (RRULE, EXDATE and
    RECURRENCE-ID applied by recurring-ical-events); FeedError past ``limit`` of them.

    The expansion's work is bounded by :func:`check_expansion`, run on every feed before
    it is used.
    """
    query = recurring_ical_events.of(calendar, skip_bad_series=True)
    try:
        # a day's margin each side: its window test takes a DST-spanning occurrence's
        # nominal length (DURATION:P7D) as exact hours, though the DTEND it returns is right
        events = query.between(start - MARGIN, end + MARGIN)
    except Exception as exc:  # a rule dateutil cannot follow, a date out of range
        raise FeedError(f"the feed's events cannot be expanded: {_short(exc)}") from None
    if len(events) > limit:
        raise FeedError(f"more than {limit:,} occurrences within two months (max_events)")
    found = []
    for event in events:
        began = _instant(event.get("DTSTART").dt if event.get("DTSTART") else None)
        if began is None:
            continue
        ended = _instant(event.get("DTEND").dt if event.get("DTEND") else None)
        if ended is None:
            duration = event.get("DURATION")
            ended = began + (duration.dt if duration is not None else timedelta(days=1))
        if began < end and start < ended and began < ended:
            found.append(Occurrence(began, ended, _text(event.get("SUMMARY")), _attendees(event)))
    return sorted(found, key=lambda o: o.start)


def _text(value: Any) -> str:
    return str(value)[:500] if value is not None else ""


def _attendees(event: Any) -> tuple[str, ...]:
    found = event.get("ATTENDEE")
    items = found if isinstance(found, list) else [found] if found is not None else []
    return tuple(
        str(a)[7:].lower() if str(a).lower().startswith("mailto:") else str(a).lower()
        for a in items[:50]
    )


class PersonMatcher:
    """Who an event names: an ATTENDEE's email, else the SUMMARY, which is a person's name
    or contains exactly one person's name as whole words (``On call: Alice``)."""

    def __init__(self, names: Mapping[str, str | None]) -> None:
        """``names``: each person's name and email (or None)."""
        self._exact = {name.casefold(): name for name in names}
        self._emails = {e.lower(): name for name, e in names.items() if e}
        self._words = {
            name: re.compile(rf"(?<!\w){re.escape(name.casefold())}(?!\w)") for name in names
        }

    def person(self, occurrence: Occurrence) -> str | None:
        for email in occurrence.attendees:
            if email in self._emails:
                return self._emails[email]
        summary = occurrence.summary.strip().casefold()
        if summary in self._exact:
            return self._exact[summary]
        found = [name for name, word in self._words.items() if word.search(summary)]
        return found[0] if len(found) == 1 else None
