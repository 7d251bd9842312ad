"""The daily digest (issue 20): the day's worst meetings, top causes, per-rule noise, and
what changed since the day before.

Read from the alert history alone: the episodes (``report rules``' own, see
watchdog.alerting.noise) give each rule's noise and each meeting's degraded minutes (per
participant, the minutes any of its alerts fired in); the firings' recorded causes give
the top causes. The same figures for the 24 hours before make the comparison.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchdog.alerting.noise import Episode, NoiseTally, RuleNoise, episodes
from watchdog.alerts import Report
from watchdog.durations import format_duration, format_time
from watchdog.engine.series import duration_micros, micros
from watchdog.state.history import History
from watchdog.state.silences import Silences

DAY = timedelta(days=1)
MINUTE_MICROS = duration_micros(timedelta(minutes=1))


@dataclass(frozen=True, slots=True)
class Day:
    """One day's figures."""

    since: datetime
    until: datetime
    noise: list[RuleNoise]
    degraded: dict[str, int]  # meeting -> degraded participant-minutes
    causes: Counter[str]

    @property
    def fires(self) -> int:
        return sum(n.fires for n in self.noise)


class DegradedMinutes:
    """Per meeting, the participant-minutes some alert about the participant fired in
    (overlapping alerts count once), clipped to the window; fed one episode at a time,
    holding two integers an episode, not the episodes."""

    def __init__(self, since: datetime, until: datetime) -> None:
        self._since, self._until = since, until
        self._spans: dict[tuple[str, str], array[int]] = {}  # start, end in microseconds

    def add(self, episode: Episode) -> None:
        meeting = episode.labels.get("meeting_id")
        participant = episode.labels.get("participant_id")
        if not meeting or not participant:
            return
        start = max(episode.fired, self._since)
        end = min(episode.ended or self._until, self._until)
        if end > start:
            spans = self._spans.get((meeting, participant))
            if spans is None:
                spans = self._spans[(meeting, participant)] = array("q")
            spans.extend((micros(start), micros(end)))

    def result(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        since = micros(self._since)
        for (meeting, _), spans in self._spans.items():
            covered, reach = 0, since
            for start, end in sorted(zip(spans[::2], spans[1::2], strict=True)):
                if end > reach:
                    covered += end - max(start, reach)
                    reach = end
            out[meeting] += round(covered / MINUTE_MICROS)
        return dict(out)


def read_day(history: History, silences: Silences, since: datetime, until: datetime) -> Day:
    """One pass over the day's transitions, as they stream from the history."""
    actions = history.actions(since, ("acknowledge", "inhibit"))
    noise = NoiseTally(actions, silences.all(), since, until)
    degraded = DegradedMinutes(since, until)
    causes: Counter[str] = Counter()  # of every alert that fired: not a page of the newest
    for episode in episodes(history.transitions(since, until)):
        noise.add(episode)
        degraded.add(episode)
        if episode.cause:
            causes[episode.cause] += 1
    return Day(since, until, noise.result(), degraded.result(), causes)


def _change(now: int, before: int) -> str:
    if now == before:
        return "same as the day before"
    return f"{now - before:+d} on the day before ({before})"


def digest(today: Day, before: Day, top: int) -> Report:
    """The digest as the plain data a notifier renders (``Notification.report``)."""
    title = (
        f"Daily digest {today.since:%Y-%m-%d %H:%M}-{today.until:%Y-%m-%d %H:%M} UTC: "
        f"{today.fires} alerts fired, {sum(today.degraded.values())} participant-minutes "
        "degraded"
    )
    lines = [
        f"  alerts fired: {today.fires}, {_change(today.fires, before.fires)}",
        "  degraded participant-minutes: "
        f"{sum(today.degraded.values())}, "
        f"{_change(sum(today.degraded.values()), sum(before.degraded.values()))}",
    ]
    worst = sorted(today.degraded.items(), key=lambda item: (-item[1], item[0]))[:top]
    if worst:
        lines.append("  most degraded meetings: " + ", ".join(f"{m} ({n} min)" for m, n in worst))
    causes = sorted(today.causes.items(), key=lambda item: (-item[1], item[0]))[:top]
    if causes:
        lines.append("  top causes: " + ", ".join(f"{c} ({n})" for c, n in causes))
    earlier = {n.rule: n.fires for n in before.noise}
    for n in today.noise[:top]:
        median = "-" if n.median is None else format_duration(n.median)
        lines.append(
            f"  {n.rule}: {n.fires} fires ({_change(n.fires, earlier.get(n.rule, 0))}), "
            f"median {median}, flapping {n.flapping:.0%}, acknowledged {n.acknowledged:.0%}"
        )
    quiet = sorted(set(earlier) - {n.rule for n in today.noise})[:top]
    if quiet:
        lines.append("  quiet since the day before: " + ", ".join(quiet))
    return Report(
        kind="digest",
        title=title,
        lines=tuple(lines),
        start=today.since,
        end=today.until,
        figures={
            "since": format_time(today.since),
            "until": format_time(today.until),
            "fires": today.fires,
            "fires_day_before": before.fires,
            "degraded_minutes": sum(today.degraded.values()),
            "degraded_minutes_day_before": sum(before.degraded.values()),
            "meetings": [{"meeting_id": m, "degraded_minutes": n} for m, n in worst],
            "causes": [{"cause": c, "alerts": n} for c, n in causes],
            "rules": [
                {**n.to_json(), "fires_day_before": earlier.get(n.rule, 0)} for n in today.noise
            ],
        },
    )
