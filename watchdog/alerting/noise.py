"""Rule noise from the alert history: which rules fire too often, flap, or go unread.

``report rules`` (and the daily digest) ask this of the history: per rule, how often it
fired per day, how long its alerts lasted (median), the share resolved within a minute
(flapping), the share someone acknowledged, and how many alerts an inhibition rule or a
silence held back. Pure over what watchdog.state.history reads, so it is tested on a
hand-built history.
"""

from __future__ import annotations

import json
import statistics
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watchdog.config.matchers import matches_all
from watchdog.durations import format_duration
from watchdog.state.silences import Silence

FLAP = timedelta(minutes=1)  # an alert resolved sooner than this flapped
SLACK = timedelta(minutes=1)  # an inhibition recorded this close to an episode is its own


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert from firing to resolved (``ended`` None: still firing at the end)."""

    fingerprint: str
    rule: str
    labels: dict[str, str]
    fired: datetime
    ended: datetime | None
    cause: str | None = None  # the likely cause its firing named


@dataclass(frozen=True, slots=True)
class RuleNoise:
    rule: str
    fires: int
    per_day: float
    median: timedelta | None  # of the episodes that resolved
    flapping: float  # share of fires resolved within FLAP
    acknowledged: float  # share of fires someone acknowledged
    inhibited: int  # fires an inhibition rule held back
    silenced: int  # fires a silence muted when they started

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "fires": self.fires,
            "fires_per_day": round(self.per_day, 2),
            "median_duration_seconds": None
            if self.median is None
            else round(self.median.total_seconds(), 1),
            "flapping_share": round(self.flapping, 3),
            "acknowledged_share": round(self.acknowledged, 3),
            "inhibited": self.inhibited,
            "silenced": self.silenced,
        }


def episodes(transitions: Iterable[Sequence[Any]]) -> Iterator[Episode]:
    """(at, kind, fingerprint, rule, labels JSON, cause) in time order, as episodes: each as it
    resolves, then those still firing at the end. A resolution without its firing (fired
    before the window) is left out; a firing again while one is open (a restart re-fired
    it) keeps the first. Holds only the open ones: a long range is read as it streams."""
    open_: dict[str, Episode] = {}
    for at, kind, fingerprint, rule, labels, cause in transitions:
        if kind == "firing":
            if fingerprint not in open_:
                open_[fingerprint] = Episode(fingerprint, rule, _labels(labels), at, None, cause)
        elif kind == "resolved" and fingerprint in open_:
            start = open_.pop(fingerprint)
            yield Episode(start.fingerprint, rule, start.labels, start.fired, at, start.cause)
    yield from sorted(open_.values(), key=lambda e: (e.fired, e.fingerprint))


def _labels(text: str | None) -> dict[str, str]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


@dataclass(slots=True)
class _Tally:
    fires: int = 0
    lasted: array[float] = field(default_factory=lambda: array("d"))  # seconds, resolved ones
    flapping: int = 0
    acknowledged: int = 0
    inhibited: int = 0
    silenced: int = 0


class NoiseTally:
    """:func:`rule_noise` one episode at a time: per rule a few counts and the durations
    (8 bytes an episode), so a week of a noisy deployment's history is read as it streams
    instead of held. ``actions`` are the audit log's (at, action, target) of
    ``acknowledge`` and ``inhibit``."""

    def __init__(
        self,
        actions: Iterable[tuple[datetime, str, str]],
        silences: Sequence[Silence],
        since: datetime,
        until: datetime,
    ) -> None:
        self._acked: dict[str, list[datetime]] = {}
        self._held: dict[str, list[datetime]] = {}
        for at, action, target in actions:
            moments = self._acked if action == "acknowledge" else self._held
            moments.setdefault(target, []).append(at)
        self._silences = silences
        self._since, self._until = since, until
        self._rules: dict[str, _Tally] = {}

    def add(self, episode: Episode) -> None:
        tally = self._rules.get(episode.rule)
        if tally is None:
            tally = self._rules[episode.rule] = _Tally()
        tally.fires += 1
        if episode.ended is not None:
            lasted = episode.ended - episode.fired
            tally.lasted.append(lasted.total_seconds())
            tally.flapping += lasted < FLAP
        tally.acknowledged += _during(episode, self._acked, self._until, timedelta(0))
        tally.inhibited += _during(episode, self._held, self._until, SLACK)
        tally.silenced += _silenced(episode, self._silences)

    def result(self) -> list[RuleNoise]:
        """Per rule, most fires first."""
        days = max((self._until - self._since) / timedelta(days=1), 1 / 24)
        out = [
            RuleNoise(
                rule=rule,
                fires=t.fires,
                per_day=t.fires / days,
                median=_median(t.lasted),
                flapping=t.flapping / t.fires,
                acknowledged=t.acknowledged / t.fires,
                inhibited=t.inhibited,
                silenced=t.silenced,
            )
            for rule, t in self._rules.items()
        ]
        return sorted(out, key=lambda n: (-n.fires, n.rule))


def rule_noise(
    found: Iterable[Episode],
    actions: Iterable[tuple[datetime, str, str]],
    silences: Sequence[Silence],
    since: datetime,
    until: datetime,
) -> list[RuleNoise]:
    """Per rule (most fires first): the figures above. ``actions`` are the audit log's
    (at, action, target) of ``acknowledge`` and ``inhibit``."""
    tally = NoiseTally(actions, silences, since, until)
    for episode in found:
        tally.add(episode)
    return tally.result()


def _median(seconds: Sequence[float]) -> timedelta | None:
    if not seconds:
        return None
    return timedelta(seconds=statistics.median(seconds))


def _during(
    episode: Episode, moments: dict[str, list[datetime]], until: datetime, slack: timedelta
) -> bool:
    end = (episode.ended or until) + slack
    return any(episode.fired - slack <= at <= end for at in moments.get(episode.fingerprint, ()))


def _silenced(episode: Episode, silences: Sequence[Silence]) -> bool:
    return any(
        s.starts_at <= episode.fired < s.ends_at and matches_all(s.matchers, episode.labels)
        for s in silences
    )


def render(noise: Sequence[RuleNoise], since: datetime, until: datetime) -> str:
    """The table ``report rules`` prints."""
    head = f"rule noise from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"
    if not noise:
        return f"{head}: no alert fired"
    rows = [("rule", "fires", "per day", "median", "flapping", "acked", "inhibited", "silenced")]
    for n in noise:
        rows.append(
            (
                n.rule,
                str(n.fires),
                f"{n.per_day:.1f}",
                "-" if n.median is None else format_duration(n.median),
                f"{n.flapping:.0%}",
                f"{n.acknowledged:.0%}",
                str(n.inhibited),
                str(n.silenced),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([head, *lines])
