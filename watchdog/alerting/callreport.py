"""What one call was like, from the history: the figures of the per-call report (issue 20).

For one meeting: how long the call lasted, who was in it, each participant's minutes with
data and minutes degraded (those an alert about them was firing in), the worst figure
of each metric the rules watch (the low side of a ``<`` rule, the high side of a ``>``
one) and whose it was, the alerts that fired with their likely cause and who
acknowledged them. Pure over the minute summaries (watchdog.state.minutes) and the
history's events (watchdog.state.history); ``report meeting`` prints it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from watchdog.alerts import format_number
from watchdog.durations import format_duration, format_time
from watchdog.state.history import Event
from watchdog.state.minutes import Minute
from watchdog.videosdk.stats import ParticipantInfo

Side = Literal["low", "high"]
MINUTE = timedelta(minutes=1)


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
