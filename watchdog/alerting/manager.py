"""The alert manager: from alert changes to notifications (routing, grouping, repeats, silences,
inhibition).

The poller records each alert's latest status in the state database (in
the poll's own transaction). A flush, after every poll cycle and every
second, compares those statuses with what each notifier was already told
and writes the notifications that close the gap into the outbox, together
with the new "told" state, in one transaction. Everything it needs is in
the database, so a crash or restart neither forgets a waiting group or a
reminder nor sends anything twice; the decision itself (:func:`plan`) is a
pure function of that state and the clock, which makes it easy to test.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from watchdog.alerting import inhibition
from watchdog.alerting.actions import end_meeting_silences
from watchdog.alerting.escalation import EscalationConfig, Escalator, step_problems
from watchdog.alerting.inhibition import Inhibition, InhibitRule
from watchdog.alerting.timeintervals import TimeIntervals
from watchdog.alerts import (
    BUILTIN_LABELS,
    DEFAULT_GROUP_BY,
    GROUP_BY_ALL,
    MEETING_VIEW,
    Notification,
    Status,
    group_key,
    group_labels,
)
from watchdog.alerts import alert_labels as receiver_labels
from watchdog.config.matchers import (
    KNOWN_LABELS,
    RENAMED_LABELS,
    RETIRED_LABELS,
    Matcher,
    alert_labels,
    matcher_label,
    matches_all,
    old_label_warning,
    parse_matchers,
)
from watchdog.config.problems import Problem
from watchdog.config.settings import (
    NOTIFIER_CORE_KEYS,
    AlertingSettings,
    Config,
    NotifierOptions,
    Settings,
)
from watchdog.config.yamlfile import format_loc
from watchdog.durations import format_time
from watchdog.obs.telemetry import QUEUED, SILENCED
from watchdog.state.alertlog import (
    ActiveAlert,
    AlertingSnapshot,
    AlertingWrite,
    AlertLog,
    GroupState,
    Notified,
)
from watchdog.state.faults import StorageFault
from watchdog.state.silences import Silence, Silences

log = logging.getLogger(__name__)

# what a notifier was told last about an alert (am_notified.status): "firing",
# "resolved", "none" (a resolution dropped by a silence or an inhibition), or this: told
# it fired, then it was silenced or inhibited; when that ends while it still fires, it is
# told again
SILENCED_WHILE_FIRING = "silenced"
TOLD_FIRING = ("firing", SILENCED_WHILE_FIRING)


@dataclass(frozen=True, slots=True)
class Policy:
    """How one notifier hears about alerts."""

    send_resolved: bool = True
    repeat_interval: timedelta = timedelta(hours=4)  # 0: never remind
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    group_wait: timedelta = timedelta(0)
    group_interval: timedelta = timedelta(0)  # least time between a group's notifications


# group_by's old names: the label meant, or every label for ``fingerprint`` (one alert a group)
GROUP_BY_RENAMED = {**RENAMED_LABELS, **RETIRED_LABELS, "fingerprint": GROUP_BY_ALL}


def grouping(names: Iterable[str]) -> tuple[str, ...]:
    """``group_by`` as written, in the current label names."""
    return tuple(dict.fromkeys(GROUP_BY_RENAMED.get(n, n) for n in names))


@dataclass(frozen=True, slots=True)
class Route:
    matchers: tuple[Matcher, ...]
    notify: tuple[str, ...]
    mute_time_intervals: tuple[str, ...] = ()  # names in AlertingConfig.time_intervals
    active_time_intervals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    policies: Mapping[str, Policy]  # one per configured notifier
    routes: tuple[Route, ...] = ()
    default_notify: tuple[str, ...] | None = None  # None: every notifier
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: TimeIntervals = field(default_factory=TimeIntervals)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)

    def targets(
        self, labels: Mapping[str, str], rule_notify: Sequence[str], never: str | None = None
    ) -> list[str]:
        """A rule's ``notify`` always applies, plus every matching route; else the default.

        ``never``: the notifier a ``notifier-failing`` alert is about, which never hears
        it; when that leaves nobody, every other notifier does.
        """
        names = list(dict.fromkeys(rule_notify))
        for route in self.routes:
            if matches_all(route.matchers, labels):
                names.extend(n for n in route.notify if n not in names)
        if not names:
            names = list(self.default_notify if self.default_notify is not None else self.policies)
        found = [n for n in names if n in self.policies and n != never]
        if never is not None and not found:
            found = [n for n in self.policies if n != never]
        return found

    def windows(self, labels: Mapping[str, str], rule_notify: Sequence[str]) -> dict[str, set[int]]:
        """The notifiers that only routes with time windows bring this alert to, each with
        those routes (by index): it hears of the alert only while one of them is open."""
        always = set(rule_notify)
        timed: dict[str, set[int]] = {}
        for index, route in enumerate(self.routes):
            if not matches_all(route.matchers, labels):
                continue
            windowed = route.mute_time_intervals or route.active_time_intervals
            for name in route.notify:
                if windowed:
                    timed.setdefault(name, set()).add(index)
                else:
                    always.add(name)
        return {name: routes for name, routes in timed.items() if name not in always}

    def closed_routes(self, now: datetime) -> frozenset[int]:
        """The routes muted at ``now`` by their time windows (Alertmanager's rule)."""
        return frozenset(
            index
            for index, route in enumerate(self.routes)
            if (route.mute_time_intervals or route.active_time_intervals)
            and self.time_intervals.muted(
                route.mute_time_intervals, route.active_time_intervals, now
            )
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, acknowledging_types: Mapping[str, bool] | None = None
    ) -> AlertingConfig:
        """``acknowledging_types``: each notifier type's ``send_acknowledged``."""
        base = settings.alerting
        return cls(
            policies={
                name: policy_for(base, notifier_options(entry), settings.poll.interval)
                for name, entry in settings.notifiers.items()
            },
            routes=tuple(
                Route(
                    parse_matchers(r.match),
                    tuple(r.notify),
                    tuple(r.mute_time_intervals),
                    tuple(r.active_time_intervals),
                )
                for r in base.routes
            ),
            default_notify=tuple(base.default_notify) if base.default_notify is not None else None,
            inhibit_rules=inhibition.rules_from(base.inhibit_rules),
            time_intervals=TimeIntervals.from_settings(settings.time_intervals),
            escalation=EscalationConfig.from_settings(settings, acknowledging_types or {}),
        )


def notifier_options(entry: Mapping[str, object]) -> NotifierOptions:
    """The core's keys of a ``notifiers:`` entry (the plugin never sees them)."""
    return NotifierOptions.model_validate(
        {k: v for k, v in entry.items() if k in NOTIFIER_CORE_KEYS and k != "type"}
    )


def policy_for(
    base: AlertingSettings, options: NotifierOptions, poll_interval: timedelta = timedelta(0)
) -> Policy:
    group_by = grouping(base.group_by if options.group_by is None else options.group_by)
    return Policy(
        send_resolved=(
            base.send_resolved if options.send_resolved is None else options.send_resolved
        ),
        repeat_interval=(
            base.repeat_interval if options.repeat_interval is None else options.repeat_interval
        ),
        group_by=group_by,
        group_wait=base.group_wait if options.group_wait is None else options.group_wait,
        group_interval=next(
            (i for i in (options.group_interval, base.group_interval) if i is not None),
            # the meeting view edits one message: at most once a poll cycle by default
            poll_interval if group_by == MEETING_VIEW else timedelta(0),
        ),
    )


def problems(config: Config, rule_labels: Iterable[str] = ()) -> list[Problem]:
    """``check``'s view of the alert manager's settings: names exist, options are valid.

    A label name that neither the core nor any rule sets is a warning: a matcher or
    ``group_by`` on it is most likely a typo (``meetingid``), and would silently
    match nothing or group everything together. An old label name (``meetingId``)
    still works and is a warning naming the new one.
    """
    settings = config.settings
    found: list[Problem] = []
    known_labels = {*KNOWN_LABELS, *rule_labels}

    def check_label(name: str, *loc: str | int, group_by: bool = False) -> None:
        file, line = config.line_for(*loc)
        where = format_loc(loc)
        if group_by and name in (GROUP_BY_ALL, "fingerprint"):
            if name == GROUP_BY_ALL:
                return
            message = (
                "'fingerprint' is not a label: write '...' (every label: one notification "
                "per alert; the old name still works)"
            )
        elif (warning := old_label_warning(name)) is not None:
            message = warning
        elif name not in known_labels:
            message = (
                f"no alert has a label {name!r} (built-in: {', '.join(BUILTIN_LABELS)}; "
                "or a rule's labels)"
            )
        else:
            return
        found.append(Problem(file, line, f"{where}: {message}", "warning"))

    names = set(settings.notifiers)
    for name, entry in settings.notifiers.items():
        try:
            notifier_options(entry)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                key = str(error["loc"][0])
                file, line = config.line_for("notifiers", name, key)
                message = error["msg"].removeprefix("Value error, ")
                found.append(Problem(file, line, f"notifiers.{name}.{key}: {message}"))
    alerting = settings.alerting
    for at, label in enumerate(alerting.group_by):
        check_label(label, "alerting", "group_by", at, group_by=True)
    for name, entry in settings.notifiers.items():
        labels = entry.get("group_by")
        for at, label in enumerate(labels if isinstance(labels, list) else []):
            check_label(str(label), "notifiers", name, "group_by", at, group_by=True)
    for index, route in enumerate(alerting.routes):
        for at, text in enumerate(route.match):
            check_label(matcher_label(text) or "", "alerting", "routes", index, "match", at)
        for name in route.notify:
            if name not in names:
                file, line = config.line_for("alerting", "routes", index, "notify")
                found.append(
                    Problem(
                        file,
                        line,
                        f"alerting.routes[{index}].notify: unknown notifier {name!r} "
                        f"(configured: {', '.join(sorted(names)) or 'none'})",
                    )
                )
    intervals = {n.name for n in settings.time_intervals}
    for index, route in enumerate(alerting.routes):
        if route.escalation is not None:
            for where, message in step_problems(
                route.escalation,
                settings.notifiers,
                route.notify,
                intervals=intervals,
                teams=settings.oncall.teams,
            ):
                file, line = config.line_for("alerting", "routes", index, *where)
                found.append(
                    Problem(
                        file,
                        line,
                        f"{format_loc(('alerting', 'routes', index, *where))}: {message}",
                    )
                )
    for name in alerting.default_notify or []:
        if name not in names:
            file, line = config.line_for("alerting", "default_notify")
            found.append(Problem(file, line, f"alerting.default_notify: unknown notifier {name!r}"))
    found.extend(inhibition.problems(config, rule_labels))
    return found


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence]) -> Silence | None:
    return next((s for s in silences if matches_all(s.matchers, labels)), None)


GroupLabels = tuple[tuple[str, str], ...]  # a group's group_by labels, as a dict key


@dataclass(frozen=True, slots=True)
class _Placed:
    """Where one version of an alert goes: its labels, and its group at each notifier."""

    active: ActiveAlert
    labels: Mapping[str, str]  # as matchers see them
    groups: tuple[tuple[str, GroupLabels], ...]  # (notifier, the group's labels) per target
    windows: Mapping[str, set[int]]  # see AlertingConfig.windows


class Routing:
    """Each alert's routes and groups, and each group's identity: pure functions of the
    alert (or the group's labels) and the config, kept from one plan to the next.

    A flush plans over every alert the manager tracks; under load it runs several times a
    second with thousands of alerts, nearly all unchanged since the last one. Their
    labels, routes, group labels and group keys are computed once per alert version (the
    snapshot hands back the same :class:`ActiveAlert` while its version stands) and once
    per group; what the last plan no longer saw is forgotten.
    """

    def __init__(self, config: AlertingConfig) -> None:
        self.config = config
        self._alerts: dict[str, _Placed] = {}
        self._groups: dict[tuple[str, GroupLabels], tuple[str, str]] = {}
        self._earlier_groups: dict[tuple[str, GroupLabels], tuple[str, str]] = {}

    def place(self, alerts: Iterable[ActiveAlert]) -> list[_Placed]:
        """Every alert's place, in order; starts a new plan (see :meth:`group`)."""
        earlier, self._alerts = self._alerts, {}
        self._earlier_groups, self._groups = self._groups, {}
        placed = []
        for active in alerts:
            fp = active.alert.fingerprint
            known = earlier.get(fp)
            if known is None or known.active is not active:
                known = self._place(active)
            self._alerts[fp] = known
            placed.append(known)
        return placed

    def _place(self, active: ActiveAlert) -> _Placed:
        labels = alert_labels(active.alert)
        carried = receiver_labels(active.alert)
        formed: dict[tuple[str, ...], GroupLabels] = {}  # by group_by: notifiers share them
        groups = []
        # the daemon's notifier-failing alert never goes to the notifier it is about
        about = carried.get("notifier") if active.alert.scope == "daemon" else None
        for name in self.config.targets(labels, active.notify, never=about):
            group_by = self.config.policies[name].group_by
            if group_by not in formed:
                formed[group_by] = tuple(group_labels(carried, group_by).items())
            groups.append((name, formed[group_by]))
        windows = self.config.windows(labels, active.notify) if self.config.routes else {}
        return _Placed(active, labels, tuple(groups), windows)

    def groups_of(self, fingerprint: str) -> tuple[tuple[str, GroupLabels], ...]:
        """The (notifier, group labels) of an alert the last plan placed."""
        placed = self._alerts.get(fingerprint)
        return placed.groups if placed is not None else ()

    def group(self, notifier: str, formed_by: GroupLabels) -> tuple[str, str]:
        """A group's key (Alertmanager's) and its short key in the database."""
        identity = (notifier, formed_by)
        found = self._groups.get(identity) or self._earlier_groups.get(identity)
        if found is None:
            key = group_key(notifier, dict(formed_by))
            found = (key, hashlib.sha256(key.encode()).hexdigest()[:16])
        self._groups[identity] = found
        return found


def plan(
    snapshot: AlertingSnapshot,
    config: AlertingConfig,
    now: datetime,
    final: bool = False,
    routing: Routing | None = None,
) -> AlertingWrite:
    """Decide what to send: pure, so every rule below is tested without a clock or a disk.

    - A group is what a notifier's ``group_by`` labels make of the alerts it hears
      about; every notification carries the group's identity (Alertmanager's group
      key and group labels), the same from its first firing to its resolve.
    - An alert change waits ``group_wait`` (counted from the change itself) so that
      alerts of one group changing together travel in one notification; ``final``
      (the one-shot ``once`` command) sends without waiting.
    - A group already notified is not notified again sooner than ``group_interval``
      after: the changes in between travel together (a flapping meeting's message is
      edited once a cycle, not once a participant).
    - A notification carries the group's firing alerts plus the resolutions to tell.
    - A resolution is told only to notifiers that were told the alert fired and have
      ``send_resolved``; an alert that fired and resolved before anyone was told is
      told once, as resolved, so it is never lost.
    - A silenced alert's changes wait while it is silenced: a firing one is told when
      the silence ends (if it still fires, even if it was told before the silence,
      at once and with the reason "still firing; silence … ended"); its resolution is
      told to the notifiers that were told it fired (prometheus/alertmanager#226: a
      receiver must never be left believing it still fires), and dropped elsewhere.
    - A group still firing is re-sent with ``repeat=True`` every ``repeat_interval``,
      unless every firing alert in it is acknowledged (issue 10).
    - An alert an inhibition rule holds back is treated like a silenced one, except
      that its resolution is told to a notifier that was told it fired
      (watchdog.alerting.inhibition).
    - A notifier that only routes with time windows bring an alert to treats it like an
      inhibited one while every such route is muted (``mute_time_intervals`` open, or
      ``active_time_intervals`` all closed): told when a window opens if it still fires,
      its resolution told if it was told it fired (watchdog.alerting.timeintervals).

    ``routing`` is what earlier plans with this config learnt about alerts that have not
    changed since (the manager keeps one); without it everything is worked out afresh.
    """
    if routing is None or routing.config is not config:
        routing = Routing(config)
    write = AlertingWrite()
    placed = routing.place(snapshot.alerts)
    labels = {p.active.alert.fingerprint: p.labels for p in placed}
    muted: set[str] = set()
    if snapshot.silences:
        silences = snapshot.silences
        muted = {fp for fp, lab in labels.items() if silenced_by(lab, silences) is not None}
    routed: dict[str, dict[GroupLabels, list[ActiveAlert]]] = {}
    for place in placed:
        for name, formed_by in place.groups:
            routed.setdefault(name, {}).setdefault(formed_by, []).append(place.active)
    closed = config.closed_routes(now) if config.routes else frozenset()
    windows = {p.active.alert.fingerprint: p.windows for p in placed if p.windows}
    held = inhibition.inhibitions(snapshot.alerts, labels, config.inhibit_rules)
    inhibition.record(write, held, snapshot, now)
    unhandled: set[str] = set()
    visited: set[tuple[str, str]] = set()
    for name, groups in routed.items():
        policy = config.policies[name]
        for formed_by, members in groups.items():
            key, state_key = routing.group(name, formed_by)
            group_held: Mapping[str, Inhibition] = held
            if policy.group_by == MEETING_VIEW and held:
                group_held = _shown_in_meeting_view(held, members)
            group = _Group(
                name,
                key,
                state_key,
                dict(formed_by),
                policy,
                members,
                snapshot,
                muted,
                labels,
                now,
                final,
                inhibited=group_held,
            )
            if windows:
                _apply_windows(group, windows, closed)
            visited.add((name, state_key))
            _plan_group(group, write, unhandled)
    for name_key in snapshot.groups.keys() - visited:
        write.ended_groups.add(name_key)
    write.done_alerts = {
        a.alert.fingerprint
        for a in snapshot.alerts
        if a.alert.status == "resolved" and a.alert.fingerprint not in unhandled
    }
    return write


def _apply_windows(
    group: _Group, windows: Mapping[str, Mapping[str, set[int]]], closed: frozenset[int]
) -> None:
    """Which of the group's alerts reach its notifier only through routes with time
    windows, and which of those are muted now (every such route closed)."""
    name = group.notifier
    routes = {
        fp: found[name]
        for a in group.members
        if (found := windows.get(fp := a.alert.fingerprint)) is not None and name in found
    }
    group.windowed = routes.keys()
    group.timed = {fp for fp, indexes in routes.items() if indexes <= closed}


def _shown_in_meeting_view(
    held: Mapping[str, Inhibition], members: Sequence[ActiveAlert]
) -> Mapping[str, Inhibition]:
    """A meeting view's message is already the meeting's one message: the alerts its own
    meeting-level alert inhibits are listed in it (they are held back everywhere else)."""
    here = {a.alert.fingerprint for a in members}
    return {fp: why for fp, why in held.items() if why.source.alert.fingerprint not in here}


@dataclass(slots=True)  # not frozen: a frozen one costs 6 µs to build, a plan builds thousands
class _Group:
    notifier: str
    key: str  # Alertmanager's group key: {}/{receiver="slack"}:{alertname="x", ...}
    # the group's key in the database (am_groups, the outbox's order): short, fixed size
    state_key: str
    labels: dict[str, str]  # the group_by labels its alerts share
    policy: Policy
    members: list[ActiveAlert]
    snapshot: AlertingSnapshot
    muted: AbstractSet[str]  # fingerprints of the alerts a silence holds back now
    alert_labels: Mapping[str, Mapping[str, str]]  # by fingerprint, as matchers see them
    now: datetime
    final: bool
    inhibited: Mapping[str, Inhibition] = field(default_factory=dict)  # by fingerprint
    # fingerprints whose way to this notifier is only through routes with time windows,
    # and those of them whose every such route is muted now
    windowed: AbstractSet[str] = frozenset()
    timed: AbstractSet[str] = frozenset()


def _plan_group(group: _Group, write: AlertingWrite, unhandled: set[str]) -> None:
    name, policy, now, muted = group.notifier, group.policy, group.now, group.muted
    inhibited, timed = group.inhibited, group.timed

    def seen(fp: str) -> Notified | None:
        return write.notified.get((name, fp)) or group.snapshot.notified.get((name, fp))

    changed = []
    for active in group.members:
        fp = active.alert.fingerprint
        told = seen(fp)
        if told is None or told.version < active.version:
            changed.append(active)
        elif (
            told.status == SILENCED_WHILE_FIRING
            and fp not in muted
            and fp not in inhibited
            and fp not in timed
        ):
            changed.append(active)  # its silence or inhibition ended, it still fires: tell again
        elif (
            told.status == "firing"
            and active.alert.status == "firing"
            and (fp in muted or fp in inhibited or fp in timed)
        ):
            write.notified[(name, fp)] = Notified(told.version, SILENCED_WHILE_FIRING)
    actionable = []
    for active in changed:
        fp = active.alert.fingerprint
        told = seen(fp)
        told_firing = told is not None and told.status in TOLD_FIRING
        held = inhibition.held_back(inhibited, group.snapshot.inhibited, active, told_firing)
        held = held or (fp in timed and (active.alert.status == "firing" or not told_firing))
        # a resolution is told to whoever was told it fired, silenced or not (#226)
        told_over = told_firing and active.alert.status == "resolved"
        if (fp not in muted or told_over) and not held:
            actionable.append(active)
        elif active.alert.status == "resolved":
            write.notified[(name, fp)] = Notified(active.version, "none")
            if fp in muted:
                SILENCED.inc()
        else:
            unhandled.add(fp)
    firing_now = [
        a
        for a in group.members
        if a.alert.status == "firing"
        and a.alert.fingerprint not in muted
        and a.alert.fingerprint not in inhibited
        and a.alert.fingerprint not in timed
    ]
    state = group.snapshot.groups.get((name, group.state_key))
    if actionable:
        first_change = min(a.changed_at for a in actionable)
        spaced = state is not None and state.notified_at + policy.group_interval > now
        if not group.final and (first_change + policy.group_wait > now or spaced):
            unhandled.update(a.alert.fingerprint for a in actionable)
            return
        resolved: list[ActiveAlert] = []
        for active in actionable:
            if active.alert.status != "resolved":
                continue
            told = seen(active.alert.fingerprint)
            if told is None or told.status not in TOLD_FIRING or policy.send_resolved:
                resolved.append(active)
        news = [a for a in actionable if a.alert.status == "firing"]
        if news or resolved:
            reason = (
                "first notification"
                if state is None
                else "new alerts added"
                if news
                else "some alerts resolved"
                if firing_now
                else "all alerts resolved"
            )
            notes = {
                a.alert.fingerprint: note
                for a in news
                if (
                    note := inhibition.ended_note(group.snapshot, a)
                    or _silence_note(group, a, seen(a.alert.fingerprint))
                )
                is not None
            }
            state = _send(
                group, state, firing_now + resolved, reason=reason, write=write, notes=notes
            )
        for active in actionable:
            status = "firing" if active.alert.status == "firing" else "resolved"
            write.notified[(name, active.alert.fingerprint)] = Notified(active.version, status)
    elif (
        state is not None
        and firing_now
        and not all(a.alert.fingerprint in group.snapshot.acked for a in firing_now)
        and policy.repeat_interval > timedelta(0)
        and state.notified_at + policy.repeat_interval <= now
    ):
        state = _send(group, state, firing_now, reason="repeat interval elapsed", write=write)
    open_episode = any(
        (told := seen(a.alert.fingerprint)) is not None and told.status in TOLD_FIRING
        for a in group.members
    )
    if state is not None and not open_episode:
        write.groups.pop((name, group.state_key), None)
        write.ended_groups.add((name, group.state_key))
    elif state is None and open_episode:
        # told it fires, yet its group is new: group_by changed (a reload, an upgrade that
        # renamed labels); the group starts here, so its reminders go on
        write.groups[(name, group.state_key)] = GroupState(
            f"{group.state_key}@{format_time(now)}", now, 0
        )


def _silence_note(group: _Group, active: ActiveAlert, told: Notified | None) -> str | None:
    """ "still firing; silence … ended" for an alert told now because its silence ended.

    The silence is the last to end of those matching the alert that ended after the
    alert's latest change, i.e. while it was firing; None when no silence held it back.
    """
    labels = group.alert_labels[active.alert.fingerprint]
    silence = next(
        (
            s
            for s in group.snapshot.ended_silences
            if s.ends_at > active.changed_at and matches_all(s.matchers, labels)
        ),
        None,
    )
    if silence is None:
        held = told is not None and told.status == SILENCED_WHILE_FIRING
        if held and active.alert.fingerprint in group.windowed:
            return "still firing; its route's time window opened"
        return "still firing; its silence ended" if held else None
    comment = silence.comment if len(silence.comment) <= 80 else silence.comment[:79] + "…"
    return f"still firing; silence {silence.id[:8]} ended ({silence.created_by}: {comment})"


def _send(
    group: _Group,
    state: GroupState | None,
    members: list[ActiveAlert],
    *,
    reason: str,
    write: AlertingWrite,
    notes: Mapping[str, str] | None = None,
) -> GroupState:
    notes = notes or {}
    firing = sorted(
        (
            replace(a.alert, reason=notes[a.alert.fingerprint])
            if a.alert.fingerprint in notes
            else a.alert
            for a in members
            if a.alert.status == "firing"
        ),
        key=lambda a: a.starts_at,
    )
    resolved = sorted(
        (a.alert for a in members if a.alert.status == "resolved"),
        key=lambda a: a.ends_at or a.sample_time,
    )
    status: Status = "firing" if firing else "resolved"
    if state is None:
        state = GroupState(f"{group.state_key}@{format_time(group.now)}", group.now, 0)
    state = GroupState(state.thread, group.now, state.sent + 1)
    notification = Notification(
        id=uuid.uuid4().hex,
        notifier=group.notifier,
        status=status,
        alerts=(*firing, *resolved),
        created_at=group.now,
        thread=state.thread,
        repeat=reason == "repeat interval elapsed",
        group_key=group.key,
        group_labels=dict(group.labels),
        reason=reason,
    )
    dedup = f"{group.notifier}|{state.thread}|{state.sent}"
    write.outbox.append((dedup, f"group:{group.state_key}", notification))
    write.groups[(group.notifier, group.state_key)] = state
    return state


def with_watched(
    outbox: list[tuple[str, str, Notification]],
    watching_in: Callable[[Iterable[str]], Mapping[str, int]],
) -> list[tuple[str, str, Notification]]:
    """Each notification of one meeting's group, with how many of its participants are
    watched now (a meeting view's "affected 7 of 12 watched"); one query for them all."""
    meetings = {
        n.group_labels["meeting_id"] for _, _, n in outbox if "meeting_id" in n.group_labels
    }
    if not meetings:
        return outbox
    watched = watching_in(meetings)
    return [
        (key, order, replace(n, watched=watched.get(n.group_labels["meeting_id"], 0)))
        if "meeting_id" in n.group_labels
        else (key, order, n)
        for key, order, n in outbox
    ]


GATHER = 0.25  # seconds: alerts of polls finishing this close together travel together
MAX_PAUSE = 2.0  # seconds: the longest wait between flushes, however long the last one took


class AlertManager:
    """Runs :func:`plan` against the alert log: shortly after a poll records alerts, at the end
    of every poll cycle, and on the periodic tick (group_wait, repeats, silences).

    With inhibition rules it sends nothing after a start, a reload or a change of leader
    until a poll cycle that began after it, on the leader, has ended: until then the
    alert log may lack sources that fire, and a target would go out that should be
    muted. Everything waits in the alert log meanwhile; nothing is lost.
    """

    def __init__(
        self,
        alert_log: AlertLog,
        silences: Silences,
        config: AlertingConfig,
        on_queued: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        leads: Callable[[], bool] = lambda: True,
        watching_in: Callable[[Iterable[str]], Mapping[str, int]] | None = None,
        escalator: Escalator | None = None,
    ) -> None:
        self.alert_log = alert_log
        self.escalator = escalator  # acknowledgement notices and timeouts, ladders
        self.silences = silences
        # how many each meeting has watched (WatchList.watching_in), for Notification.watched
        self.watching_in = watching_in
        self.config = config
        self.on_queued = on_queued
        self.clock = clock
        self._lock = threading.RLock()
        self._known: dict[str, ActiveAlert] = {}
        self._routing = Routing(config)
        # several instances (watchdog.cluster.coordinator): only the leader flushes
        self._leads = leads
        self._intake = threading.Event()  # a poll recorded alerts not flushed yet
        # inhibition: whether a whole poll cycle established which sources fire; a reload
        # bumps the generation, so a cycle that began before it establishes nothing
        self._established = not config.inhibit_rules
        self._generation = 0
        self._exported: set[tuple[str, str]] = set()  # watchdog_alerts_inhibited series
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def reconfigure(self, config: AlertingConfig) -> None:
        """A reload's routes, grouping and repeats: they apply from the next flush on (a
        removed rule's ``notify`` may name notifiers that are gone: they are skipped)."""
        with self._lock:
            self.config = config
            self._generation += 1
            self._established = not config.inhibit_rules

    def intake(self) -> None:
        """A poll just recorded alerts (the poller's ``on_enqueue``): flush within ``GATHER``.

        The periodic tick alone would add up to a second to every alert's way out,
        and holding alerts until the cycle ends, a whole cycle at thousands of
        participants. The short wait lets alerts that polls find at nearly the same
        moment (a meeting's participants are polled one after another) share one
        notification even with ``group_wait: 0s``.
        """
        self._intake.set()

    def start(self) -> None:
        """The thread that turns ``intake()`` into flushes (the service starts it)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="alert-manager", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._intake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        took = 0.0
        while True:
            self._intake.wait()
            # a flush reads and plans every active alert: under a storm of them it takes a
            # good part of a second, and back to back flushes would leave the polls that
            # find the alerts too little of the process; so the next one waits as long
            if self._stopping.wait(max(GATHER, min(took, MAX_PAUSE))):
                return
            self._intake.clear()  # what arrives while this flush runs starts the next one
            began = time.monotonic()
            with self._lock:
                try:
                    self.flush()
                except StorageFault:  # counted and logged once by the store
                    pass
                except Exception:
                    log.exception("alert manager flush failed; retrying on the next tick")
            took = time.monotonic() - began

    @contextmanager
    def poll_cycle(self) -> Iterator[None]:
        """A poll cycle: what it found and did not go out yet goes once it ends (and, with
        inhibition rules, the first one run as leader since a start or reload lets the
        alert manager send at all)."""
        with self._lock:
            began = (self._generation, self._leads())
        try:
            yield
        finally:
            with self._lock:
                if began == (self._generation, True) and self._leads():
                    self._established = True
                self.tick()

    def flush(self, final: bool = False) -> int:
        """Queue what is due; returns how many notifications were written to the outbox."""
        if not self._leads():
            with self._lock:  # a leader again later waits for a cycle of its own first
                self._established = not self.config.inhibit_rules
                self._exported = inhibition.export({}, self._exported)
            return 0
        with self._lock:
            if not self._established:
                return 0
            now = self.clock()
            end_meeting_silences(self.silences, self.alert_log, now)
            snapshot = self.alert_log.alerting_snapshot(now, self._known)
            self._known = {a.alert.fingerprint: a for a in snapshot.alerts}
            if self._routing.config is not self.config:  # reloaded
                self._routing = Routing(self.config)
            write = plan(snapshot, self.config, now, final, self._routing)
            queued = 0
            if not write:
                self._exported = inhibition.export(snapshot.inhibited, self._exported)
            else:
                if self.watching_in is not None:
                    write.outbox = with_watched(write.outbox, self.watching_in)
                queued = self.alert_log.apply_alerting(write)
                after = inhibition.after(snapshot, write)
                self._exported = inhibition.export(after, self._exported)
            if self.escalator is not None:
                queued += self.escalator.run(
                    snapshot,
                    write,
                    self.config.escalation,
                    now,
                    self._routing,
                    windows=self.config.time_intervals,
                )
        for _, _, notification in write.outbox:
            kind = "reminder" if notification.repeat else notification.status
            QUEUED.labels(notification.notifier).inc()
            log.info(
                "queued %s notification for %s to %s (%d alerts)",
                kind,
                ", ".join(sorted({a.rule for a in notification.alerts})),
                notification.notifier,
                len(notification.alerts),
            )
        if queued and self.on_queued is not None:
            self.on_queued()
        return queued

    def tick(self) -> None:
        """The periodic job: never raises, so the scheduler keeps calling it.

        Returns at once while a flush runs elsewhere: a tick waiting behind it would
        only pile up in the scheduler; and while the intake thread is about to flush.
        """
        if self._thread is not None and self._intake.is_set():
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            self.flush()
        except StorageFault:  # counted and logged once by the store; retried next tick
            pass
        except Exception:
            log.exception("alert manager flush failed; retrying on the next tick")
        finally:
            self._lock.release()
