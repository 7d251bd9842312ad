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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def episodes(transitions: Iterable[Sequence[Any]]) -> list[Episode]:
    """(at, kind, fingerprint, rule, labels JSON) in time order, as episodes. A resolution
    without its firing (fired before the window) is left out; a firing again while one
    is open (a restart re-fired it) keeps the first."""
    open_: dict[str, Episode] = {}
    out: list[Episode] = []
    for at, kind, fingerprint, rule, labels in transitions:
        if kind == "firing":
            if fingerprint not in open_:
                open_[fingerprint] = Episode(fingerprint, rule, _labels(labels), at, None)
        elif kind == "resolved" and fingerprint in open_:
            start = open_.pop(fingerprint)
            out.append(Episode(start.fingerprint, rule, start.labels, start.fired, at))
    out.extend(open_.values())
    return sorted(out, key=lambda e: (e.fired, e.fingerprint))


def _labels(text: str | None) -> dict[str, str]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def rule_noise(
    found: Sequence[Episode],
    actions: Iterable[tuple[datetime, str, str]],
    silences: Sequence[Silence],
    since: datetime,
    until: datetime,
) -> list[RuleNoise]:
    """Per rule (most fires first): the figures above. ``actions`` are the audit log's
    (at, action, target) of ``acknowledge`` and ``inhibit``."""
    acked: dict[str, list[datetime]] = {}
    held: dict[str, list[datetime]] = {}
    for at, action, target in actions:
        (acked if action == "acknowledge" else held).setdefault(target, []).append(at)
    days = max((until - since) / timedelta(days=1), 1 / 24)
    by_rule: dict[str, list[Episode]] = {}
    for episode in found:
        by_rule.setdefault(episode.rule, []).append(episode)
    out = []
    for rule, mine in by_rule.items():
        lasted = [e.ended - e.fired for e in mine if e.ended is not None]
        fires = len(mine)
        out.append(
            RuleNoise(
                rule=rule,
                fires=fires,
                per_day=fires / days,
                median=_median(lasted),
                flapping=sum(d < FLAP for d in lasted) / fires,
                acknowledged=sum(_during(e, acked, until, timedelta(0)) for e in mine) / fires,
                inhibited=sum(_during(e, held, until, SLACK) for e in mine),
                silenced=sum(_silenced(e, silences) for e in mine),
            )
        )
    return sorted(out, key=lambda n: (-n.fires, n.rule))


def _median(lasted: Sequence[timedelta]) -> timedelta | None:
    if not lasted:
        return None
    return timedelta(seconds=statistics.median(d.total_seconds() for d in lasted))


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
