"""Who is on call: each team's schedule (a calendar feed or a rotation), with overrides.

``OnCall`` is what escalation steps, mentions, ``/watchdog oncall`` and the CLI ask:
``now(team, at)`` and ``next(team, at)``. :class:`Schedules` answers from the config's
rotations, the calendar feeds :class:`Feeds` keeps, and the overrides in the state
database (an override wins over the schedule while it lasts). Feeds are refreshed on
an interval; a feed that fails keeps its last good copy (in memory and in the state
database, so a restart while the feed is down still knows), and the failure is logged
once, counted and shown in ``status``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import icalendar

from watchdog.alerting.calendars import (
    FeedError,
    Occurrence,
    PersonMatcher,
    check_expansion,
    fetch,
    occurrences,
    parse,
)
from watchdog.config.oncall import (
    OnCallSettings,
    RotationSettings,
    TeamSettings,
    minute_of_day,
    zone,
)
from watchdog.durations import format_time
from watchdog.obs.telemetry import ONCALL_FEED_FAILURES, ONCALL_OVERRIDES
from watchdog.state.oncall import FeedCopy, FeedHealth, OnCallState, Override
from watchdog.state.silences import AuditEntry

log = logging.getLogger(__name__)

HORIZON = timedelta(days=62)
"""How far ahead ``next`` looks, and how far a feed is checked when fetched."""
MAX_OVERRIDE = timedelta(days=90)
"""An override longer than this is a typo (or belongs in the schedule)."""
MAX_TAKE = timedelta(days=7)
"""Taking on-call from Slack lasts at most this long."""
DEFAULT_TAKE = timedelta(hours=8)  # "take" with no length and nobody scheduled to end at


@dataclass(frozen=True)
class Person:
    name: str
    slack_user: str | None
    email: str | None


@dataclass(frozen=True)
class Shift:
    team: str
    person: Person
    start: datetime
    end: datetime
    override: bool


class OnCall(Protocol):
    """Who of a team is on call at an instant, and who takes over after them."""

    def now(self, team: str, at: datetime) -> Shift | None: ...

    def next(self, team: str, at: datetime) -> Shift | None: ...


# -- rotations -----------------------------------------------------------------------


def _handoff(rotation: RotationSettings, turn: int) -> datetime:
    """When turn ``turn`` (0 = the first) begins: the handoff's wall-clock time on its day
    (a time the DST change skips is read with the offset before the change)."""
    day = rotation.start + timedelta(days=turn * (rotation.every // timedelta(days=1)))
    minutes = minute_of_day(rotation.handoff)
    local = datetime.combine(
        day, time(minutes // 60, minutes % 60), tzinfo=zone(rotation.time_zone)
    )
    return local.astimezone(UTC)


def rotation_turn(rotation: RotationSettings, at: datetime) -> tuple[int, datetime, datetime]:
    """The turn in force at ``at`` (negative before ``start``) with its start and end."""
    days = rotation.every // timedelta(days=1)
    local = at.astimezone(zone(rotation.time_zone))
    turn = (local.date() - rotation.start).days // days
    for _ in range(3):  # the estimate is off by at most one turn around the handoff
        if at < _handoff(rotation, turn):
            turn -= 1
        elif at >= _handoff(rotation, turn + 1):
            turn += 1
        else:
            break
    return turn, _handoff(rotation, turn), _handoff(rotation, turn + 1)


# -- calendar feeds ------------------------------------------------------------------


@dataclass
class FeedState:
    """One team's feed: the calendar in use and how its last refreshes went."""

    calendar: icalendar.Calendar | None = None
    fetched_at: datetime | None = None  # of the copy in use
    error: str | None = None  # the last refresh's, None once one works again
    failing_since: datetime | None = None
    checked_at: datetime | None = None  # the last refresh, whatever its outcome
    logged: bool = False  # this run of failures was logged (once a process)


@dataclass
class Feeds:
    """The calendar of every team that has one; :meth:`refresh` on an interval."""

    settings: OnCallSettings
    resolve: Callable[[str], Path]
    state: OnCallState | None = None  # where last good copies survive a restart
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _feeds: dict[str, FeedState] = field(default_factory=dict)
    _attempts: dict[str, datetime] = field(default_factory=dict)  # last refresh per team
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def teams(self) -> list[str]:
        return [n for n, t in self.settings.teams.items() if t.calendar is not None]

    def load_saved(self) -> None:
        """The copies saved by earlier runs: the schedule is known before any fetch."""
        if self.state is None:
            return
        for team in self.teams():
            health = self.state.health(team)
            if health is not None:  # a failure goes on counting from its first
                with self._lock:
                    feed = self._feeds.setdefault(team, FeedState())
                    feed.checked_at, feed.error = health.checked_at, health.error
                    feed.failing_since = health.failing_since
            saved = self.state.feed(team)
            if saved is None:
                continue
            try:
                calendar = parse(saved.body, self.settings.max_events)
            except FeedError as exc:
                log.warning("team %s: the saved copy of its calendar is unusable: %s", team, exc)
                continue
            with self._lock:
                self._feeds.setdefault(team, FeedState()).calendar = calendar
                self._feeds[team].fetched_at = saved.fetched_at

    def refresh(self, team: str) -> bool:
        """Fetch and check one team's feed; on failure keep the last good copy."""
        source = self.settings.teams[team].calendar
        if source is None:
            return False
        now = self.clock()
        try:
            body = fetch(
                source.get_secret_value(),
                self.resolve,
                self.settings.max_feed_bytes,
                self.settings.feed_timeout.total_seconds(),
            )
            calendar = parse(body, self.settings.max_events)
            check_expansion(calendar, now + HORIZON)
            # one look around the present proves the feed expands within the bounds
            occurrences(calendar, now - timedelta(days=1), now + HORIZON, self.settings.max_events)
        except FeedError as exc:
            self._failed(team, str(exc), now)
            return False
        with self._lock:
            feed = self._feeds.setdefault(team, FeedState())
            if feed.error is not None:
                log.info("team %s: its calendar feed works again", team)
            feed.calendar, feed.fetched_at, feed.checked_at = calendar, now, now
            feed.error, feed.failing_since, feed.logged = None, None, False
        if self.state is not None:
            self.state.save_feed(FeedCopy(team, body, now))
            self.state.save_health(FeedHealth(team, now))
        return True

    def _failed(self, team: str, why: str, now: datetime) -> None:
        reason = why.split(" ", 3)[:3]
        ONCALL_FEED_FAILURES.labels(team, "_".join(reason).lower()[:40]).inc()
        with self._lock:
            feed = self._feeds.setdefault(team, FeedState())
            first, feed.logged = not feed.logged, True
            feed.error, feed.checked_at = why, now
            if feed.failing_since is None:
                feed.failing_since = now
            kept, since = feed.fetched_at, feed.failing_since
        if self.state is not None:  # `status` shows it, a restart keeps its start
            self.state.save_health(FeedHealth(team, now, why, since))
        if first:  # once per run of failures; `status` shows it meanwhile
            kept_note = (
                f"the copy fetched {format_time(kept)} stays in use"
                if kept is not None
                else "no earlier copy: nobody is on call from it until it works"
            )
            log.error("team %s: its calendar feed failed: %s; %s", team, why, kept_note)

    def refresh_all(self, *, due_only: bool = False) -> None:
        """Every feed, or those whose ``refresh`` interval has passed since their last
        attempt (the scheduler's job, every few seconds; never raises)."""
        now = self.clock()
        for team in self.teams():
            every = self.settings.teams[team].refresh
            last = self._attempts.get(team)
            if due_only and last is not None and now < last + every:
                continue
            self._attempts[team] = now
            try:
                self.refresh(team)
            except Exception:  # a bug must not stop the other teams' feeds
                log.exception("team %s: refreshing its calendar failed unexpectedly", team)

    def reconfigure(self, settings: OnCallSettings) -> None:
        """A reload: a team whose feed source is unchanged keeps its copy and schedule."""
        with self._lock:
            old, self.settings = self.settings, settings
            for team in list(self._feeds):
                new, before = settings.teams.get(team), old.teams.get(team)
                if new is None or before is None or new.calendar != before.calendar:
                    self._feeds.pop(team)
                    self._attempts.pop(team, None)

    def calendar(self, team: str) -> icalendar.Calendar | None:
        with self._lock:
            feed = self._feeds.get(team)
            return feed.calendar if feed is not None else None

    def status(self) -> dict[str, dict[str, Any]]:
        """Per team with a feed: when its copy in use was fetched, and the current failure."""
        with self._lock:
            return {
                team: {
                    "fetchedAt": format_time(f.fetched_at) if f.fetched_at else None,
                    "checkedAt": format_time(f.checked_at) if f.checked_at else None,
                    "error": f.error,
                    "failingSince": format_time(f.failing_since) if f.failing_since else None,
                }
                for team in self.teams()
                for f in [self._feeds.get(team, FeedState())]
            }


# -- the schedules ---------------------------------------------------------------------


class Schedules:
    """:class:`OnCall` over the config's teams, their feeds and the stored overrides.

    An unknown team has nobody on call (``check`` refuses configs naming one).
    """

    def __init__(
        self,
        settings: OnCallSettings,
        feeds: Feeds,
        state: OnCallState | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.feeds = feeds
        self.state = state
        self.clock = clock
        self._matchers = _matchers(settings)

    def reconfigure(self, settings: OnCallSettings) -> None:
        """A reload's teams and people; feeds whose source is unchanged are kept."""
        self.feeds.reconfigure(settings)
        self.settings, self._matchers = settings, _matchers(settings)

    def teams(self) -> list[str]:
        return list(self.settings.teams)

    def person(self, team: str, name: str) -> Person | None:
        found = self.settings.teams[team].people.get(name) if team in self.settings.teams else None
        return None if found is None else Person(name, found.slack_user, found.email)

    def by_slack_user(self, user: str) -> list[tuple[str, Person]]:
        """(team, person) for each team whose people include this Slack user."""
        return [
            (team, Person(name, p.slack_user, p.email))
            for team, settings in self.settings.teams.items()
            for name, p in settings.people.items()
            if p.slack_user == user
        ]

    def time_zone(self, team: str, at: datetime) -> ZoneInfo | None:
        """The team's own time zone (a Snooze until 09:00 is their 09:00): its rotation's,
        else the zone its calendar's current shift is written in; None if it has none."""
        settings = self.settings.teams.get(team)
        if settings is None:
            return None
        if settings.rotation is not None:
            return ZoneInfo(settings.rotation.time_zone)
        shift = self.now(team, at)
        zone = shift.start.tzinfo if shift is not None else None
        return zone if isinstance(zone, ZoneInfo) else None

    # -- OnCall --

    def now(self, team: str, at: datetime) -> Shift | None:
        if team not in self.settings.teams:
            return None
        overrides = self._overrides(team, at)
        return self._at(team, at, overrides)

    def next(self, team: str, at: datetime) -> Shift | None:
        if team not in self.settings.teams:
            return None
        overrides = self._overrides(team, at)
        current = self._at(team, at, overrides)
        after = current.end if current is not None else at
        if after - at > HORIZON:
            return None
        found = self._at(team, after, overrides)
        if found is None:
            starts = [o.starts_at for o in overrides if o.starts_at > after]
            scheduled = self._scheduled_after(team, after)
            if scheduled is not None:
                starts.append(scheduled.start)
            starts = [s for s in starts if s - at <= HORIZON]
            if not starts:
                return None
            after = min(starts)
            found = self._at(team, after, overrides)
        return None if found is None else replace(found, start=max(found.start, after))

    # -- the timeline --

    def _overrides(self, team: str, at: datetime) -> list[Override]:
        return [] if self.state is None else self.state.overrides(team, ending_after=at)

    def _at(self, team: str, at: datetime, overrides: list[Override]) -> Shift | None:
        """The shift in force at ``at``: the newest override covering it, else the schedule's
        (ending where the next override begins)."""
        covering = [o for o in overrides if o.covers(at)]
        if covering:
            chosen = max(covering, key=lambda o: (o.created_at, o.id))
            person = self.person(team, chosen.person)
            if person is not None:
                return Shift(team, person, chosen.starts_at, chosen.ends_at, override=True)
        shift = self._scheduled(team, at)
        if shift is None:
            return None
        cut = [
            o.starts_at
            for o in overrides
            if shift.start < o.starts_at < shift.end and o.starts_at > at
        ]
        return replace(shift, end=min(cut)) if cut else shift

    def _scheduled(self, team: str, at: datetime) -> Shift | None:
        settings = self.settings.teams[team]
        if settings.rotation is not None:
            return self._rotation(team, settings, at)
        found = None
        for occurrence, person in self._occurrences(team, at, at + timedelta(microseconds=1)):
            if occurrence.start <= at and (found is None or occurrence.start > found.start):
                found = Shift(team, person, occurrence.start, occurrence.end, override=False)
        return found

    def _scheduled_after(self, team: str, at: datetime) -> Shift | None:
        """The first scheduled shift starting after ``at`` (within the horizon)."""
        settings = self.settings.teams[team]
        if settings.rotation is not None:
            turn, start, _ = rotation_turn(settings.rotation, at)
            return self._rotation(
                team, settings, start if turn >= 0 else _handoff(settings.rotation, 0)
            )
        for occurrence, person in self._occurrences(team, at, at + HORIZON):
            if occurrence.start > at:
                return Shift(team, person, occurrence.start, occurrence.end, override=False)
        return None

    def _rotation(self, team: str, settings: TeamSettings, at: datetime) -> Shift | None:
        rotation = settings.rotation
        assert rotation is not None
        try:
            turn, start, end = rotation_turn(rotation, at)
        except OverflowError:  # an instant near year 9999
            return None
        if turn < 0:
            return None
        person = self.person(team, rotation.people[turn % len(rotation.people)])
        return None if person is None else Shift(team, person, start, end, override=False)

    def _occurrences(
        self, team: str, start: datetime, end: datetime
    ) -> list[tuple[Occurrence, Person]]:
        calendar = self.feeds.calendar(team)
        if calendar is None:
            return []
        matcher = self._matchers[team]
        found = []
        try:
            for occurrence in occurrences(calendar, start, end, self.settings.max_events):
                name = matcher.person(occurrence)
                person = self.person(team, name) if name is not None else None
                if person is not None:
                    found.append((occurrence, person))
        except FeedError as exc:
            log.warning(
                "team %s: its calendar cannot be read around %s: %s", team, format_time(start), exc
            )
        return found

    # -- overrides --

    def add_override(  # noqa: PLR0917 - the override's fields, then who and from where
        self,
        team: str,
        person: str,
        starts_at: datetime,
        ends_at: datetime,
        actor: str,
        source: str,
    ) -> Override:
        """Record an override (with its audit entry); ValueError says what is wrong."""
        if self.state is None:
            raise ValueError("overrides need the state database")
        if team not in self.settings.teams:
            raise ValueError(
                f"no team {team!r} (teams: {', '.join(self.settings.teams) or 'none'})"
            )
        if self.person(team, person) is None:
            people = ", ".join(self.settings.teams[team].people)
            raise ValueError(f"{person!r} is not one of team {team}'s people ({people})")
        if ends_at <= starts_at:
            raise ValueError("the override must end after it starts")
        if ends_at - starts_at > MAX_OVERRIDE:
            raise ValueError("an override lasts at most 90 days; change the schedule instead")
        now = self.clock()
        if ends_at <= now:
            raise ValueError("the override would end in the past")
        override = Override(uuid.uuid4().hex, team, person, starts_at, ends_at, actor, now, source)
        detail = f"{team}: {person} from {format_time(starts_at)} until {format_time(ends_at)}"
        self.state.add_override(
            override,
            AuditEntry(
                uuid.uuid4().hex, now, actor, "oncall-override", override.id, source, detail
            ),
        )
        ONCALL_OVERRIDES.labels(team, source).inc()
        return override

    def remove_override(self, prefix: str, actor: str, source: str) -> Override:
        """Remove the override whose ID starts with ``prefix``; ValueError if none or several."""
        if self.state is None:
            raise ValueError("overrides need the state database")
        now = self.clock()
        found = [o for o in self.state.overrides(ending_after=now) if o.id.startswith(prefix)]
        if len(found) != 1:
            raise ValueError(
                f"no override {prefix!r} in force or to come"
                if not found
                else f"{prefix!r} names {len(found)} overrides: give more of the ID"
            )
        override = found[0]
        detail = (
            f"{override.team}: {override.person} from {format_time(override.starts_at)} "
            f"until {format_time(override.ends_at)}"
        )
        self.state.remove_override(
            override.id,
            AuditEntry(
                uuid.uuid4().hex, now, actor, "oncall-unoverride", override.id, source, detail
            ),
        )
        return override

    def take(
        self, user: str, actor: str, source: str, *, team: str | None, duration: timedelta | None
    ) -> tuple[bool, str]:
        """ "I take on-call" from Slack: the person with Slack user ID ``user`` is on call
        for ``team`` (their only team when None) for ``duration``, else until the shift in
        force ends (at most MAX_TAKE)."""
        mine = self.by_slack_user(user)
        if team is not None:
            mine = [(t, p) for t, p in mine if t == team]
        if not mine:
            where = f"team {team}'s" if team else "any team's"
            return False, f"You are not one of {where} people (slack_user in the config)."
        if len(mine) > 1:
            names = ", ".join(t for t, _ in mine)
            return False, f"You are in several teams ({names}): name one, e.g. `take {mine[0][0]}`."
        chosen, person = mine[0]
        now = self.clock()
        if duration is None:
            current = self.now(chosen, now)
            ends = current.end if current is not None else now + DEFAULT_TAKE
        else:
            ends = now + duration
        ends = min(ends, now + MAX_TAKE)
        try:
            self.add_override(chosen, person.name, now, ends, actor, source)
        except ValueError as exc:
            return False, str(exc)
        return True, f"{person.name} is on call for {chosen} until {format_time(ends)}."

    def overrides(self, team: str | None = None) -> list[Override]:
        if self.state is None:
            return []
        return self.state.overrides(team, ending_after=self.clock())

    def summary(self, at: datetime, team: str | None = None) -> list[dict[str, Any]]:
        """Plain data for ``oncall --json``, ``/watchdog oncall`` and ``status``."""
        feeds = self.feeds.status()
        out = []
        for name in [team] if team is not None else self.teams():
            out.append(
                {
                    "team": name,
                    "schedule": "calendar" if self.settings.teams[name].calendar else "rotation",
                    "now": shift_data(self.now(name, at)),
                    "next": shift_data(self.next(name, at)),
                    **({"feed": feeds[name]} if name in feeds else {}),
                }
            )
        return out


def _matchers(settings: OnCallSettings) -> dict[str, PersonMatcher]:
    return {
        name: PersonMatcher({p: s.email for p, s in team.people.items()})
        for name, team in settings.teams.items()
    }


def shift_data(shift: Shift | None) -> dict[str, Any] | None:
    if shift is None:
        return None
    return {
        "person": shift.person.name,
        "slackUser": shift.person.slack_user,
        "email": shift.person.email,
        "start": format_time(shift.start),
        "end": format_time(shift.end),
        "override": shift.override,
    }
