"""The on-call loop after the first notification: acknowledgement notices and timeouts,
and each route's escalation ladder.

Runs on every alert-manager flush (the leader's, with several instances), after the
plan, over the same snapshot. All of its state is in the database
(watchdog.state.escalations), so any instance can carry on where another stopped:

- A ladder starts when its alert is first notified, and runs on a clock that stops
  while the alert is acknowledged, silenced or inhibited: a step of ``after: 5m`` runs
  after five minutes of nobody owning the alert. Un-acknowledging, an expired
  acknowledgement or a silence that ends resumes the ladder at the step where it
  stopped, with what was left of that step's delay. Resolving ends it (and the
  notifiers a step paged hear the resolution).
- Each step runs once per alert episode: its row's primary key is claimed in the
  transaction that queues its notifications.
- An acknowledgement older than ``ack_timeout`` (the route's, else ``alerting``'s) of
  an alert still firing expires: the alert's thread hears "still firing;
  acknowledgement by … expired after …", and the ladder resumes.
- Notifiers with ``send_acknowledged`` hear ``acknowledged`` / ``unacknowledged``
  notices whenever the owner changes, from any source.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from watchdog.alerts import Alert, Notification, NotificationEvent, group_key, group_labels
from watchdog.alerts import alert_labels as receiver_labels
from watchdog.config.escalation import EscalationPolicy, EscalationStep, parse_target, zone
from watchdog.config.matchers import Matcher, alert_labels, matches_all, parse_matchers
from watchdog.config.problems import did_you_mean
from watchdog.config.settings import Settings
from watchdog.durations import format_duration, format_time
from watchdog.obs.telemetry import ACK_EXPIRIES, ESCALATION_STEPS
from watchdog.state.alertlog import ActiveAlert, AlertingSnapshot, AlertingWrite
from watchdog.state.escalations import (
    Escalations,
    EscalationWrite,
    Ladder,
    Queued,
    StepRun,
)
from watchdog.state.silences import Ack, AuditEntry, Silences

log = logging.getLogger(__name__)

SLACK_TYPE = "slack"  # the notifier type whose threads carry a step's mentions by default


# -- who is on call, and when a step may run: built by watchdog.alerting.oncall and
# -- watchdog.alerting.timeintervals; only what escalation reads of them is named here


class Person(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def slack_user(self) -> str | None: ...


class Shift(Protocol):
    @property
    def person(self) -> Person: ...

    @property
    def start(self) -> datetime: ...


class OnCall(Protocol):
    """Who is on call for a team at a moment (watchdog.alerting.oncall.OnCall)."""

    def now(self, team: str, at: datetime) -> Shift | None: ...

    def time_zone(self, team: str, at: datetime) -> ZoneInfo | None: ...


class TimeWindows(Protocol):
    """Named ``time_intervals`` (watchdog.alerting.timeintervals.TimeIntervals)."""

    def active(self, name: str, at: datetime) -> bool: ...


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    label: str  # alerting.routes[N]
    matchers: tuple[Matcher, ...]
    notify: tuple[str, ...]
    escalation: EscalationPolicy | None
    ack_timeout: timedelta | None
    time_zone: str | None


@dataclass(frozen=True, slots=True)
class EscalationConfig:
    routes: tuple[RoutePolicy, ...] = ()
    ack_timeout: timedelta = timedelta(0)
    time_zone: str = "UTC"
    acknowledged: frozenset[str] = frozenset()  # notifiers that hear acknowledgement notices
    send_resolved: Mapping[str, bool] = field(default_factory=dict)
    slack: frozenset[str] = frozenset()  # notifiers of the slack type

    @classmethod
    def from_settings(
        cls, settings: Settings, acknowledging_types: Mapping[str, bool]
    ) -> EscalationConfig:
        """``acknowledging_types``: each notifier type's ``send_acknowledged`` default."""
        base = settings.alerting
        acknowledged = set()
        for name, entry in settings.notifiers.items():
            option = entry.get("send_acknowledged")
            kind = str(entry.get("type", ""))
            wanted = option if isinstance(option, bool) else acknowledging_types.get(kind, False)
            if wanted:
                acknowledged.add(name)
        resolved = {
            name: bool(entry.get("send_resolved", base.send_resolved))
            for name, entry in settings.notifiers.items()
        }
        return cls(
            routes=tuple(
                RoutePolicy(
                    f"alerting.routes[{index}]",
                    parse_matchers(route.match),
                    tuple(route.notify),
                    route.escalation,
                    route.ack_timeout,
                    route.time_zone,
                )
                for index, route in enumerate(base.routes)
            ),
            ack_timeout=base.ack_timeout,
            time_zone=base.time_zone,
            acknowledged=frozenset(acknowledged),
            send_resolved=resolved,
            slack=frozenset(
                n for n, e in settings.notifiers.items() if e.get("type") == SLACK_TYPE
            ),
        )

    def ladder_route(self, labels: Mapping[str, str]) -> RoutePolicy | None:
        """The first matching route with an escalation policy: it runs the alert's ladder."""
        return next(
            (r for r in self.routes if r.escalation and matches_all(r.matchers, labels)), None
        )

    def ack_timeout_for(self, labels: Mapping[str, str]) -> timedelta:
        for route in self.routes:
            if route.ack_timeout is not None and matches_all(route.matchers, labels):
                return route.ack_timeout
        return self.ack_timeout

    def time_zone_for(self, labels: Mapping[str, str]) -> str:
        for route in self.routes:
            if route.time_zone is not None and matches_all(route.matchers, labels):
                return route.time_zone
        return self.time_zone


def step_problems(
    policy: EscalationPolicy,
    notifiers: Mapping[str, Mapping[str, object]],
    route_notify: list[str],
    *,
    intervals: Collection[str] = (),
    teams: Collection[str] = (),
) -> list[tuple[tuple[str | int, ...], str]]:
    """What a policy's model cannot check alone: (location under the route, message).

    ``intervals`` and ``teams``: the names ``time_intervals:`` and ``oncall.teams`` define;
    a step naming another would be passed over, or mention nobody, at 3 a.m. instead of
    failing ``check`` now."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    names = sorted(notifiers)
    for index, step in enumerate(policy.steps):
        found.extend(_name_problems(index, step, intervals, teams))
        for key in ("notify", "via"):
            for name in getattr(step, key) or []:
                if name not in notifiers:
                    found.append(
                        (
                            ("escalation", "steps", index, key),
                            f"unknown notifier {name!r} (configured: {', '.join(names) or 'none'})",
                        )
                    )
        slack = any(notifiers.get(n, {}).get("type") == SLACK_TYPE for n in route_notify)
        if step.mention and step.via is None and not slack:
            found.append(
                (
                    ("escalation", "steps", index, "mention"),
                    "no slack notifier in the route's notify carries the mention: "
                    "add one, or name it with `via: [NAME]`",
                )
            )
    return found


def _name_problems(
    index: int, step: EscalationStep, intervals: Collection[str], teams: Collection[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    found: list[tuple[tuple[str | int, ...], str]] = []
    for at, name in enumerate(step.active_time_intervals):
        if name not in intervals:
            found.append(
                (
                    ("escalation", "steps", index, "active_time_intervals", at),
                    f"no time interval named {name!r}{did_you_mean(name, intervals)} (define "
                    f"it under top-level time_intervals:; defined: "
                    f"{', '.join(sorted(intervals)) or 'none'})",
                )
            )
    for at, text in enumerate(step.mention):
        kind, team = parse_target(text)
        if kind == "oncall" and team not in teams:
            found.append(
                (
                    ("escalation", "steps", index, "mention", at),
                    f"{text!r}: no team named {team!r}{did_you_mean(team, teams)} (define it "
                    f"under oncall.teams:; teams: {', '.join(sorted(teams)) or 'none'})",
                )
            )
    return found


# -- the pass ------------------------------------------------------------------------------


class Groups(Protocol):
    """Where the alert manager put each alert (watchdog.alerting.manager.Routing)."""

    def groups_of(self, fingerprint: str) -> Iterable[tuple[str, tuple[tuple[str, str], ...]]]: ...

    def group(self, notifier: str, formed_by: tuple[tuple[str, str], ...]) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class _Thread:
    thread: str
    key: str  # Alertmanager's group key
    labels: dict[str, str]
    order: str  # the outbox lane: the group's, so a reply follows its message


@dataclass(frozen=True, slots=True)
class _Routed:
    """What the config says of one alert version: its labels, the route running its
    ladder, its ``ack_timeout``."""

    active: ActiveAlert
    config: EscalationConfig
    labels: Mapping[str, str]
    route: RoutePolicy | None
    timeout: timedelta


class _Routes:
    """Each alert version's :class:`_Routed`, worked out once: the alert log hands back
    the same ActiveAlert while its version holds (as the manager's Routing relies on),
    and matching every route against every firing alert's labels on every flush was
    most of this pass's cost."""

    def __init__(self) -> None:
        self._known: dict[str, _Routed] = {}
        self._earlier: dict[str, _Routed] = {}

    def begin(self) -> None:
        """A new pass: what the last one saw is kept only for the alerts seen again."""
        self._earlier, self._known = self._known, {}

    def of(self, active: ActiveAlert, config: EscalationConfig) -> _Routed:
        fp = active.alert.fingerprint
        found = self._known.get(fp) or self._earlier.get(fp)
        if found is None or found.active is not active or found.config is not config:
            labels = alert_labels(active.alert)
            found = _Routed(
                active, config, labels, config.ladder_route(labels), config.ack_timeout_for(labels)
            )
        self._known[fp] = found
        return found


class Escalator:
    """Runs the acknowledgement and escalation rules over one flush's snapshot."""

    def __init__(
        self,
        escalations: Escalations,
        silences: Silences,
        oncall: OnCall | None = None,
    ) -> None:
        self.escalations = escalations
        self.silences = silences
        self.oncall = oncall
        self.routes = _Routes()

    def run(
        self,
        snapshot: AlertingSnapshot,
        planned: AlertingWrite,
        config: EscalationConfig,
        now: datetime,
        groups: Groups,
        *,
        windows: TimeWindows | None = None,
    ) -> int:
        """Decide and apply; how many notifications were queued. ``windows``: the config's
        ``time_intervals``, which steps' ``active_time_intervals`` name."""
        ladders = self.escalations.ladders()
        if not ladders and not _worth_a_look(snapshot, config):
            return 0
        acks = {a.fingerprint: a for a in self.silences.acks()}
        write = EscalationWrite()
        self.routes.begin()
        current = {a.alert.fingerprint for a in snapshot.alerts}
        for gone in ladders.keys() - current:
            write.ended.append((gone, ladders[gone].starts_at))
        decide = _Pass(self, snapshot, planned, config, now, groups, write, windows)
        for active in snapshot.alerts:
            fp = active.alert.fingerprint
            decide.alert(active, ladders.get(fp), acks.get(fp))
        if not write:
            return 0
        applied = self.escalations.apply(write)
        ACK_EXPIRIES.inc(len(applied.expired))
        for ladder, run in applied.ran:
            ESCALATION_STEPS.labels(ladder.route, _counted_as(run)).inc()
            log.info(
                "escalation of %s (%s) step %d%s: %s",
                ladder.fingerprint,
                ladder.route,
                run.step + 1,
                f" repeat {run.round}" if run.round else "",
                run.outcome,
            )
        for ack in applied.expired:
            log.info("acknowledgement of %s by %s expired", ack.fingerprint, ack.acked_by)
        return applied.queued

    def mentions(self, step: EscalationStep, now: datetime) -> tuple[list[str], list[str]]:
        """The Slack IDs a step mentions, and what it could not resolve."""
        ids: list[str] = []
        missing: list[str] = []
        for text in step.mention:
            kind, value = parse_target(text)
            if kind != "oncall":
                ids.append(value)
                continue
            shift = self.oncall.now(value, now) if self.oncall is not None else None
            if shift is None or not shift.person.slack_user:
                missing.append(
                    f"nobody on call for {value}" if shift is None else shift.person.name
                )
            else:
                ids.append(shift.person.slack_user)
        return list(dict.fromkeys(ids)), missing


def snooze_until(
    labels: Mapping[str, str], config: EscalationConfig, oncall: OnCall | None, now: datetime
) -> datetime:
    """The next 09:00 in the alert's team's time zone (that of its ladder's first
    ``oncall:`` team: its rotation's, or its calendar's), else the route's or
    ``alerting.time_zone``."""
    where = _team_zone(labels, config, oncall, now) or zone(config.time_zone_for(labels))
    return next_nine(now, where)


def _team_zone(
    labels: Mapping[str, str], config: EscalationConfig, oncall: OnCall | None, now: datetime
) -> ZoneInfo | None:
    route = config.ladder_route(labels)
    if route is None or route.escalation is None or oncall is None:
        return None
    for step in route.escalation.steps:
        for text in step.mention:
            kind, team = parse_target(text)
            where = oncall.time_zone(team, now) if kind == "oncall" else None
            if where is not None:
                return where
    return None


def next_nine(now: datetime, where: ZoneInfo, at: time = time(9)) -> datetime:
    """The next ``at`` (09:00) after ``now`` on the wall clock of ``where``, in UTC."""
    local = now.astimezone(where)
    candidate = datetime.combine(local.date(), at, tzinfo=where)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=where)
    return candidate.astimezone(UTC)


def _worth_a_look(snapshot: AlertingSnapshot, config: EscalationConfig) -> bool:
    """Anything for this pass at all: cheap when nobody uses the on-call loop."""
    if not snapshot.alerts:
        return False
    return bool(
        config.acknowledged
        or config.ack_timeout
        or any(r.escalation or r.ack_timeout for r in config.routes)
    )


@dataclass(slots=True)
class _Pass:
    escalator: Escalator
    snapshot: AlertingSnapshot
    planned: AlertingWrite
    config: EscalationConfig
    now: datetime
    groups: Groups
    write: EscalationWrite
    windows: TimeWindows | None

    def alert(self, active: ActiveAlert, ladder: Ladder | None, ack: Ack | None) -> None:
        alert = active.alert
        fp = alert.fingerprint
        if alert.status != "firing":
            if ladder is not None:
                self._resolved(alert, ladder)
            return
        routed = self.escalator.routes.of(active, self.config)
        labels, route, timeout = routed.labels, routed.route, routed.timeout
        targets = [name for name, _ in self.groups.groups_of(fp)]
        hears_acks = any(n in self.config.acknowledged for n in targets)
        if ladder is None or ladder.starts_at != alert.starts_at:
            if route is None and not timeout and not hears_acks:
                return
            if not self._told(fp, targets):
                return  # the ladder starts with the alert's first notification
            ladder = Ladder(fp, alert.starts_at, route.label if route else "", self.now)
            self.write.ladders.append(ladder)
        if ack is not None and ack.starts_at != alert.starts_at:
            ack = None
        before, gave_back, resumed = ladder, None, self.now
        if ack is not None and timeout and self.now >= ack.acked_at + timeout:
            self._expire(alert, ack, timeout, targets)
            resumed = ack.acked_at + timeout
            ack, gave_back = None, "watchdog (ack_timeout)"
        ladder = self._owner(alert, ladder, ack, targets, gave_back)
        if ack is not None:  # paused since the acknowledgement itself, not since seen
            ladder = self._pause(ladder, True, min(max(ack.acked_at, ladder.started_at), self.now))
        else:
            ladder = self._pause(ladder, self._muted(fp, labels), resumed)
        if ladder != before:
            self._changed(ladder)
        if ladder.paused_at is None and route is not None and route.escalation is not None:
            self._climb(alert, ladder, route, route.escalation)

    # -- acknowledgements ---------------------------------------------------------------

    def _told(self, fp: str, targets: list[str]) -> bool:
        for name in targets:
            told = self.planned.notified.get((name, fp)) or self.snapshot.notified.get((name, fp))
            if told is not None and told.status in ("firing", "silenced"):
                return True
        return False

    def _muted(self, fp: str, labels: Mapping[str, str]) -> bool:
        if fp in self.snapshot.inhibited or fp in self.planned.inhibited:
            return fp not in self.planned.uninhibited
        return any(matches_all(s.matchers, labels) for s in self.snapshot.silences)

    def _expire(self, alert: Alert, ack: Ack, timeout: timedelta, targets: list[str]) -> None:
        note = (
            f"still firing; acknowledgement by {ack.acked_by} expired after "
            f"{format_duration(timeout)}"
        )
        reminded = replace(alert, reason=note)
        outbox = []
        for name in targets:
            where = self._thread(alert, name)
            outbox.append(
                (
                    f"ack-expired|{name}|{alert.fingerprint}|{format_time(ack.acked_at)}",
                    where.order,
                    self._notification(
                        name, reminded, where, reason=note, repeat=True, mentions=(ack.acked_by,)
                    ),
                )
            )
        audit = _audit(
            "watchdog",
            action="ack-expired",
            target=alert.fingerprint,
            source="ack_timeout",
            detail=note,
            at=self.now,
        )
        self.write.expired.append((ack, audit, outbox))

    def _owner(
        self,
        alert: Alert,
        ladder: Ladder,
        ack: Ack | None,
        targets: list[str],
        gave_back: str | None,
    ) -> Ladder:
        """Tell the notifiers that asked whenever the alert's owner changes."""
        owner = ack.acked_by if ack is not None else None
        if owner == ladder.owner:
            return ladder
        event: NotificationEvent = "acknowledged" if owner is not None else "unacknowledged"
        actor = owner or gave_back or self._who_gave_back(alert.fingerprint)
        since = format_time(ack.acked_at) if ack is not None else format_time(self.now)
        paged = {n for run in ladder.steps for n in run.notifiers}
        for name in dict.fromkeys([*targets, *sorted(paged)]):
            if name not in self.config.acknowledged:
                continue
            where = self._thread(alert, name) if name in targets else self._paged(alert, name)
            self.write.notices.append(
                (
                    f"{event}|{name}|{alert.fingerprint}|{format_time(alert.starts_at)}|{since}",
                    where.order,
                    replace(
                        self._notification(name, alert, where, reason=event),
                        event=event,
                        actor=actor,
                    ),
                )
            )
        return replace(ladder, owner=owner)

    def _who_gave_back(self, fingerprint: str) -> str:
        for entry in self.escalator.silences.audit(fingerprint, limit=5):
            if entry.action == "unacknowledge":
                return entry.actor
        return "watchdog"

    def _pause(self, ladder: Ladder, paused: bool, at: datetime) -> Ladder:
        """Pause or resume the ladder's clock as of ``at``."""
        if paused and ladder.paused_at is None:
            return replace(ladder, paused_at=at)
        if not paused and ladder.paused_at is not None:
            spent = max(0.0, (at - ladder.paused_at).total_seconds())
            return replace(ladder, paused_at=None, paused_seconds=ladder.paused_seconds + spent)
        return ladder

    def _changed(self, ladder: Ladder) -> None:
        kept = [x for x in self.write.ladders if x.fingerprint != ladder.fingerprint]
        self.write.ladders = [*kept, ladder]

    # -- the ladder -------------------------------------------------------------------------

    def _climb(
        self,
        alert: Alert,
        ladder: Ladder,
        route: RoutePolicy,
        policy: EscalationPolicy,
    ) -> None:
        """Run every step now due, in order (several when their delays have passed)."""
        running = ladder.running(self.now)
        done = list(ladder.steps)
        for _ in range(len(policy.steps) + 1):  # bounded: at most each step and one repeat
            nxt = next_step(policy, done)
            if nxt is None or running < nxt[2]:
                return
            index, rnd, _due = nxt
            done.append(self._run(alert, ladder, route, policy.steps[index], index=index, rnd=rnd))
            if rnd > 0:
                return  # one repeat a pass; the next is repeat_last_every later

    def _run(
        self,
        alert: Alert,
        ladder: Ladder,
        route: RoutePolicy,
        step: EscalationStep,
        *,
        index: int,
        rnd: int,
    ) -> StepRun:
        running = ladder.running(self.now)
        name = f"step {index + 1}" + (f" (repeat {rnd})" if rnd else "")
        windows = self.windows
        if step.active_time_intervals and not any(
            windows is not None and windows.active(w, self.now) for w in step.active_time_intervals
        ):
            run = StepRun(
                index,
                rnd,
                self.now,
                running,
                f"passed over: outside {', '.join(step.active_time_intervals)}",
            )
            self.write.steps.append((ladder, run, []))
            return run
        outbox: list[Queued] = []
        reached: list[str] = []
        unacked = format_duration(timedelta(seconds=round(running)))
        if step.mention:
            ids, missing = self.escalator.mentions(step, self.now)
            via = (
                step.via
                if step.via is not None
                else [n for n in route.notify if n in self.config.slack]
            )
            note = f"escalation {name}: unacknowledged for {unacked}"
            if missing:
                note += f" ({'; '.join(missing)})"
            for notifier in via:
                where = self._thread(alert, notifier)
                outbox.append(
                    (
                        _step_key(alert, index, rnd, notifier),
                        where.order,
                        self._notification(
                            notifier,
                            replace(alert, reason=note),
                            where,
                            reason=note,
                            repeat=True,
                            mentions=tuple(ids),
                        ),
                    )
                )
            reached.append("mentioned " + (", ".join(ids) or "nobody") + f" via {', '.join(via)}")
        for notifier in step.notify:
            where = self._paged(alert, notifier)
            note = f"escalated ({name}): unacknowledged for {unacked}"
            outbox.append(
                (
                    _step_key(alert, index, rnd, notifier),
                    where.order,
                    self._notification(notifier, replace(alert, reason=note), where, reason=note),
                )
            )
        if step.notify:
            reached.append("notified " + ", ".join(step.notify))
        run = StepRun(index, rnd, self.now, running, "; ".join(reached), tuple(step.notify))
        self.write.steps.append((ladder, run, outbox))
        self.write.audit.append(
            _audit(
                "watchdog",
                action="escalate",
                target=alert.fingerprint,
                source=route.label,
                detail=f"{name}: {run.outcome}",
                at=self.now,
            )
        )
        return run

    def _resolved(self, alert: Alert, ladder: Ladder) -> None:
        """The ladder is over; the notifiers a step paged hear the resolution."""
        paged = dict.fromkeys(n for run in ladder.steps for n in run.notifiers)
        for name in paged:
            if not self.config.send_resolved.get(name, True):
                continue
            where = self._paged(alert, name)
            self.write.notices.append(
                (
                    f"esc-resolved|{name}|{alert.fingerprint}|{format_time(ladder.starts_at)}",
                    where.order,
                    self._notification(name, alert, where, reason="all alerts resolved"),
                )
            )
        self.write.ended.append((alert.fingerprint, ladder.starts_at))

    # -- notifications ------------------------------------------------------------------------

    def _thread(self, alert: Alert, notifier: str) -> _Thread:
        """The alert's group thread at ``notifier`` (its reminders' thread)."""
        for name, formed in self.groups.groups_of(alert.fingerprint):
            if name != notifier:
                continue
            key, state_key = self.groups.group(name, formed)
            state = self.planned.groups.get((name, state_key)) or self.snapshot.groups.get(
                (name, state_key)
            )
            if state is not None:
                return _Thread(state.thread, key, dict(formed), f"group:{state_key}")
        return self._paged(alert, notifier)

    def _paged(self, alert: Alert, notifier: str) -> _Thread:
        """The thread of an alert a step sent to a notifier outside its routes: its own."""
        labels = group_labels(receiver_labels(alert), ("...",))
        thread = f"esc:{alert.fingerprint}@{format_time(alert.starts_at)}"
        return _Thread(thread, group_key(notifier, labels), labels, thread)

    def _notification(
        self,
        notifier: str,
        alert: Alert,
        where: _Thread,
        *,
        reason: str,
        repeat: bool = False,
        mentions: tuple[str, ...] = (),
    ) -> Notification:
        return Notification(
            id=uuid.uuid4().hex,
            notifier=notifier,
            status=alert.status,
            alerts=(alert,),
            created_at=self.now,
            thread=where.thread,
            repeat=repeat,
            group_key=where.key,
            group_labels=where.labels,
            reason=reason,
            mention=bool(mentions) or repeat,
            mentions=mentions,
        )


def _counted_as(run: StepRun) -> str:
    """A step run's ``outcome`` label: what it did at most (a page is more than a mention)."""
    if run.notifiers:
        return "notified"
    return "passed_over" if run.outcome.startswith("passed over") else "mentioned"


def next_step(policy: EscalationPolicy, done: list[StepRun]) -> tuple[int, int, float] | None:
    """The next (step, round) of a ladder and the running seconds it is due at."""
    last = max(done, key=lambda r: (r.step, r.round), default=None)
    steps = policy.steps
    if last is None:
        return 0, 0, steps[0].after.total_seconds()
    if last.step < len(steps) - 1:
        step = steps[last.step + 1]
        base = 0.0 if step.from_ == "firing" else last.running
        return last.step + 1, 0, base + step.after.total_seconds()
    if policy.repeat_last_every is None:
        return None
    return last.step, last.round + 1, last.running + policy.repeat_last_every.total_seconds()


def _step_key(alert: Alert, index: int, rnd: int, notifier: str) -> str:
    return f"esc|{alert.fingerprint}|{format_time(alert.starts_at)}|{index}|{rnd}|{notifier}"


def _audit(
    actor: str, *, action: str, target: str, source: str, detail: str, at: datetime
) -> AuditEntry:
    return AuditEntry(uuid.uuid4().hex, at, actor, action, target, source, detail)


def describe(
    ladders: Mapping[str, Ladder],
    alerts: Iterable[ActiveAlert],
    acks: Mapping[str, Ack],
    config: EscalationConfig,
    now: datetime,
) -> list[dict[str, object]]:
    """Each firing alert's ladder, as ``escalations --json`` prints it."""
    out: list[dict[str, object]] = []
    for active in alerts:
        alert = active.alert
        if alert.status != "firing":
            continue
        labels = alert_labels(alert)
        route = config.ladder_route(labels)
        ladder = ladders.get(alert.fingerprint)
        if route is None or route.escalation is None:
            continue
        ack = acks.get(alert.fingerprint)
        row: dict[str, object] = {
            "fingerprint": alert.fingerprint,
            "alertname": alert.rule,
            "where": alert.place,
            "route": route.label,
            "startedAt": None,
            "steps": [],
            "next": None,
            "ackedBy": ack.acked_by if ack else None,
            "paused": False,
        }
        if ladder is not None and ladder.starts_at == alert.starts_at:
            row["startedAt"] = format_time(ladder.started_at)
            row["paused"] = ladder.paused_at is not None
            row["steps"] = [
                {
                    "step": r.step + 1,
                    "round": r.round,
                    "at": format_time(r.done_at),
                    "outcome": r.outcome,
                }
                for r in sorted(ladder.steps, key=lambda r: (r.step, r.round))
            ]
            nxt = next_step(route.escalation, list(ladder.steps))
            if nxt is not None:
                index, rnd, due = nxt
                wait = timedelta(seconds=max(0.0, due - ladder.running(now)))
                row["next"] = {
                    "step": index + 1,
                    "round": rnd,
                    "due": None if ladder.paused_at is not None else format_time(now + wait),
                    "in": format_duration(wait),
                    "does": _does(route.escalation.steps[index]),
                }
        out.append(row)
    return out


def _does(step: EscalationStep) -> str:
    parts = []
    if step.mention:
        parts.append("mention " + ", ".join(step.mention))
    if step.notify:
        parts.append("notify " + ", ".join(step.notify))
    return "; ".join(parts)
