"""What one call was like, from the history: the figures of the per-call report (issue 20).

For one meeting: how long the call lasted, who was in it, each participant's minutes with
data and minutes degraded (those an alert about them was firing in), the worst figure
of each metric the rules watch (the low side of a ``<`` rule, the high side of a ``>``
one) and whose it was, the alerts that fired with their likely cause and who
acknowledged them. Pure over the minute summaries (watchdog.state.minutes) and the
history's events (watchdog.state.history); :func:`read_call` reads those for one meeting.
``report meeting`` prints it; the reporter (watchdog.alerting.reports) sends it, as a
``Report`` with a chart of quality over the call, when the session ends.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from watchdog.alerts import Report, ReportSeries, format_number
from watchdog.durations import format_duration, format_time
from watchdog.engine.rules import RuleSet
from watchdog.state.history import MAX_LIMIT, Event, Filters, History
from watchdog.state.minutes import Minute, Minutes
from watchdog.videosdk.stats import ParticipantInfo

Side = Literal["low", "high"]
MINUTE = timedelta(minutes=1)
AROUND = timedelta(hours=1)  # an alert may fire, or be acknowledged, just around the call
# the chart's metric: the first of these the call has, else the first metric the rules watch
CHART_METRICS = ("qualityScore.video", "qualityScore.audio")
CHART_SERIES = 8  # participants drawn at most (the most degraded first)


@dataclass(frozen=True, slots=True)
class Fired:
    """One alert of the call, from firing to resolved (``ended`` None: still firing)."""

    rule: str
    participant_id: str | None  # None: a meeting-level alert
    fired: datetime
    ended: datetime | None
    value: float | None
    cause: str | None
    acked_by: str | None


@dataclass(frozen=True, slots=True)
class Attendee:
    info: ParticipantInfo
    minutes: int  # minutes with data
    degraded: int  # of those, minutes an alert about them was firing in


@dataclass(frozen=True, slots=True)
class Worst:
    metric: str
    value: float
    participant_id: str


@dataclass(frozen=True, slots=True)
class CallReport:
    meeting_id: str
    start: datetime
    end: datetime
    attendees: list[Attendee]
    worst: list[Worst]
    alerts: list[Fired]
    causes: list[tuple[str, int]] = field(default_factory=list)  # most frequent first

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "meeting_id": self.meeting_id,
            "start": format_time(self.start),
            "end": format_time(self.end),
            "duration_seconds": self.duration.total_seconds(),
            "participants": [
                {
                    "participant_id": a.info.participant_id,
                    "session_id": a.info.session_id,
                    "name": a.info.name,
                    "minutes": a.minutes,
                    "degraded_minutes": a.degraded,
                }
                for a in self.attendees
            ],
            "worst": [
                {"metric": w.metric, "value": w.value, "participant_id": w.participant_id}
                for w in self.worst
            ],
            "alerts": [
                {
                    "rule": f.rule,
                    "participant_id": f.participant_id,
                    "fired": format_time(f.fired),
                    "resolved": None if f.ended is None else format_time(f.ended),
                    "value": f.value,
                    "cause": f.cause,
                    "acknowledged_by": f.acked_by,
                }
                for f in self.alerts
            ],
            "causes": [{"cause": c, "alerts": n} for c, n in self.causes],
        }


def sides(rules: RuleSet) -> dict[str, Side]:
    """Which side of each metric the rules call bad: ``<`` the low one, ``>`` the high one."""
    out: dict[str, Side] = {}
    for rule in rules:
        if rule.metric is not None and rule.op in ("<", "<=", ">", ">="):
            out.setdefault(rule.metric, "low" if rule.op.startswith("<") else "high")
    return out


@dataclass(frozen=True, slots=True)
class Call:
    """A call's report and the minutes it was made of (the chart draws them)."""

    report: CallReport
    attendees: dict[int, ParticipantInfo]
    minutes: dict[int, list[Minute]]
    told: tuple[str, ...] = ()  # the notifiers its alerts were delivered to


def read_call(
    minutes: Minutes, history: History, meeting_id: str, bad: Mapping[str, Side]
) -> Call | None:
    """One meeting's (or session's) report from the state database; None when no minute
    of it was kept (unknown, or pruned)."""
    who, start, end = minutes.meeting(meeting_id)
    kept = minutes.read(start, end, who)
    page = history.query(
        Filters(meeting=meeting_id, since=start - AROUND, until=end + AROUND, limit=MAX_LIMIT)
    )
    report = call_report(meeting_id, who, kept, page.events, bad)
    if report is None:
        return None
    told = dict.fromkeys(e.notifier for e in page.events if e.kind == "sent" and e.notifier)
    return Call(report, who, kept, tuple(n for n in told if n is not None))


def as_report(call: Call, meeting_id: str | None, session_id: str | None) -> Report:
    """The call's report as the plain data a notifier renders (``Notification.report``)."""
    report = replace(call.report, meeting_id=meeting_id or call.report.meeting_id)
    title, *lines = render(report).splitlines()
    metric = _chart_metric(call)
    return Report(
        kind="call",
        title=title,
        lines=tuple(lines),
        start=report.start,
        end=report.end,
        figures={**report.to_json(), "session_id": session_id},
        meeting_id=meeting_id,
        session_id=session_id,
        chart_metric=metric,
        chart=_series(call, metric) if metric is not None else (),
    )


def _chart_metric(call: Call) -> str | None:
    seen = {name for found in call.minutes.values() for m in found for name in m.values}
    worst = [w.metric for w in call.report.worst]
    return next((m for m in (*CHART_METRICS, *worst) if m in seen), None)


def _series(call: Call, metric: str) -> tuple[ReportSeries, ...]:
    """Each participant's minute averages of ``metric``, the most degraded first."""
    degraded = {a.info.participant_id: a.degraded for a in call.report.attendees}
    order = sorted(
        call.attendees.items(),
        key=lambda item: (-degraded.get(item[1].participant_id, 0), item[1].participant_id),
    )
    out = []
    for key, info in order:
        mine = call.minutes.get(key, ())
        points = [(m.at, m.values[metric][1]) for m in mine if metric in m.values]
        points = [(at, v) for at, v in points if math.isfinite(v)]  # a minute without it: NaN
        if points:
            name = info.name or info.participant_id
            out.append(ReportSeries(name, tuple(t for t, _ in points), tuple(v for _, v in points)))
        if len(out) == CHART_SERIES:
            break
    return tuple(out)


def call_report(
    meeting_id: str,
    attendees: Mapping[int, ParticipantInfo],
    minutes: Mapping[int, Sequence[Minute]],
    events: Sequence[Event],
    sides: Mapping[str, Side],
) -> CallReport | None:
    """The report of one meeting; None when no minute of it was kept. ``sides``: which
    side of each metric is the bad one (from the rules' operators)."""
    kept = [m for found in minutes.values() for m in found]
    if not kept:
        return None
    start = min(m.at for m in kept)
    end = max(m.at for m in kept) + MINUTE
    fired = _alerts(events, end)
    people = []
    worst: dict[str, Worst] = {}
    for key, info in sorted(attendees.items(), key=lambda item: item[1].participant_id):
        mine = minutes.get(key, ())
        if not mine:
            continue
        episodes = [f for f in fired if f.participant_id == info.participant_id]
        degraded = sum(any(_overlaps(m.at, f, end) for f in episodes) for m in mine)
        people.append(Attendee(info, len(mine), degraded))
        for minute in mine:
            for metric, (low, _, high) in minute.values.items():
                side = sides.get(metric)
                if side is None:
                    continue
                value = low if side == "low" else high
                best = worst.get(metric)
                if best is None or (value < best.value if side == "low" else value > best.value):
                    worst[metric] = Worst(metric, value, info.participant_id)
    causes = Counter(f.cause for f in fired if f.cause)
    return CallReport(
        meeting_id,
        start,
        end,
        people,
        [worst[m] for m in sorted(worst)],
        fired,
        sorted(causes.items(), key=lambda item: (-item[1], item[0])),
    )


def _overlaps(minute: datetime, alert: Fired, end: datetime) -> bool:
    return minute < (alert.ended or end) and minute + MINUTE > alert.fired


def _alerts(events: Sequence[Event], end: datetime) -> list[Fired]:
    """The episodes among the events (oldest first), with who acknowledged each."""
    open_: dict[str, Fired] = {}
    out: list[Fired] = []
    for event in sorted(events, key=lambda e: e.at):
        fp = event.fingerprint
        if fp is None:
            continue
        if event.kind == "firing" and fp not in open_:
            open_[fp] = Fired(
                event.rule or "?", event.participant_id, event.at, None, event.value,
                event.cause, None,
            )  # fmt: skip
        elif event.kind == "acknowledged" and fp in open_ and open_[fp].acked_by is None:
            open_[fp] = replace(open_[fp], acked_by=event.actor)
        elif event.kind == "resolved" and fp in open_:
            out.append(replace(open_.pop(fp), ended=event.at))
    out.extend(open_.values())
    return sorted(out, key=lambda f: (f.fired, f.rule))


def render(report: CallReport) -> str:
    """The report as text (what a chat message or a terminal shows)."""
    lines = [
        f"Call report: meeting {report.meeting_id}, {report.start:%Y-%m-%d %H:%M}-"
        f"{report.end:%H:%M} UTC ({format_duration(report.duration)}), "
        f"{len(report.attendees)} participants, {len(report.alerts)} alerts",
    ]
    for a in report.attendees:
        name = a.info.name or a.info.participant_id
        lines.append(
            f"  {name} ({a.info.participant_id}): {a.degraded} of {a.minutes} min degraded"
        )
    if report.worst:
        lines.append(
            "  worst: "
            + ", ".join(
                f"{w.metric} {format_number(w.value)} ({w.participant_id})" for w in report.worst
            )
        )
    for f in report.alerts:
        who = f.participant_id or "the meeting"
        until = "still firing" if f.ended is None else f"for {format_duration(f.ended - f.fired)}"
        extra = "".join(
            [
                f", cause: {f.cause}" if f.cause else "",
                f", acknowledged by {f.acked_by}" if f.acked_by else "",
            ]
        )
        lines.append(f"  {f.fired:%H:%M} {f.rule} on {who} {until}{extra}")
    if report.causes:
        lines.append("  likely causes: " + ", ".join(f"{c} ({n})" for c, n in report.causes))
    return "\n".join(lines)
