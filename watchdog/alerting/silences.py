"""``silence add | list | expire``: mute alerts for a while, with a name and a reason.

Silences live in the state database, so the running daemon sees a new one
at its next alert-manager tick (within a second) and they survive restarts.
They are checked when a notification would be sent, never when an alert is
evaluated: a silenced alert keeps its state, and if it still fires when the
silence ends, it is notified then.
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.config.matchers import (
    KNOWN_LABELS,
    Matcher,
    alert_labels,
    matcher_label,
    matches_all,
    matches_anything,
    old_label_warning,
    parse_matchers,
)
from watchdog.config.problems import ConfigError, Problem
from watchdog.durations import format_duration, format_time, parse_duration
from watchdog.state.alertlog import AlertLog
from watchdog.state.silences import AuditEntry, Silence, Silences

MAX_DURATION = timedelta(days=366)


def author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def add(
    silences: Silences,
    matchers: Sequence[str],
    duration: timedelta | str,
    comment: str,
    *,
    created_by: str | None = None,
    now: datetime | None = None,
    source: str = "cli",
) -> Silence:
    """Create a silence; ConfigError (exit 2) for an unusable request, nothing stored."""
    problems = []
    parsed: tuple[Matcher, ...] = ()
    try:
        duration = parse_duration(duration)
    except ValueError as exc:
        problems.append(f"--for: {exc}")
        duration = timedelta(hours=1)
    if not matchers:
        problems.append("give at least one --match (e.g. --match alertname=poor-video)")
    try:
        parsed = parse_matchers(matchers)
    except ValueError as exc:
        problems.append(f"--match {exc}")
    if not comment.strip():
        problems.append("--comment is required: say why, for whoever is on call next")
    if not timedelta(0) < duration <= MAX_DURATION:
        problems.append("--for must be more than 0s and at most 366d")
    if parsed and all(matches_anything(m) for m in parsed):
        problems.append(
            f"--match {' '.join(matchers)}: these matchers match every alert (each "
            "accepts an empty or arbitrary value); name a rule, participant or label value, "
            "e.g. --match alertname=poor-video"
        )
    if problems:
        raise ConfigError(Problem("silence add", None, p) for p in problems)
    now = now or datetime.now(UTC)
    silence = Silence(
        id=uuid.uuid4().hex,
        matchers=parsed,
        starts_at=now,
        ends_at=now + duration,
        created_by=created_by or author(),
        comment=comment.strip(),
        created_at=now,
    )
    silences.add(silence)
    silences.add_audit(
        AuditEntry(
            uuid.uuid4().hex,
            now,
            silence.created_by,
            "silence",
            silence.id,
            source,
            " ".join(map(str, parsed)),
        )
    )
    return silence


def find(silences: Silences, prefix: str) -> Silence:
    """A silence by its ID or a unique prefix of it (at least 4 characters)."""
    candidates = [s for s in silences.all() if s.id.startswith(prefix.lower())]
    if len(prefix) < 4 or len(candidates) != 1:
        reason = "no silence has" if not candidates else "give more of"
        if len(prefix) < 4:
            reason = "give at least 4 characters of"
        raise ConfigError([Problem("silence expire", None, f"{reason} the ID {prefix!r}")])
    return candidates[0]


def expire(
    silences: Silences,
    prefix: str,
    now: datetime | None = None,
    *,
    actor: str | None = None,
    source: str = "cli",
) -> tuple[Silence, bool]:
    """End a silence now; returns it and whether it was still in force (then audited)."""
    silence = find(silences, prefix)
    now = now or datetime.now(UTC)
    ended = silences.expire(silence.id, now)
    if ended:
        silences.add_audit(
            AuditEntry(
                uuid.uuid4().hex, now, actor or author(), "unsilence", silence.id, source, ""
            )
        )
    return silence, ended


def describe(
    silences: Silences,
    alert_log: AlertLog,
    include_expired: bool = False,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Silences as JSON-ready dicts, with how many tracked firing alerts each one mutes."""
    now = now or datetime.now(UTC)
    firing = [
        alert_labels(a.alert) for a in alert_log.active_alerts() if a.alert.status == "firing"
    ]
    out = []
    origin = {
        e.target: e.source for e in reversed(silences.audit(limit=10_000)) if e.action == "silence"
    }
    ends = {
        e.target: f"{e.actor} ({e.source})"
        for e in reversed(silences.audit(limit=10_000))
        if e.action == "unsilence"
    }
    for silence in silences.all():
        state = (
            "active"
            if silence.active(now)
            else ("pending" if silence.starts_at > now else "expired")
        )
        if state == "expired" and not include_expired:
            continue
        out.append(
            {
                "id": silence.id,
                "state": state,
                "matchers": [str(m) for m in silence.matchers],
                "startsAt": format_time(silence.starts_at),
                "endsAt": format_time(silence.ends_at),
                "createdBy": silence.created_by,
                "source": origin.get(silence.id, "cli"),
                "expiredBy": ends.get(silence.id),
                "comment": silence.comment,
                "silencedAlerts": sum(matches_all(silence.matchers, lab) for lab in firing)
                if state == "active"
                else 0,
            }
        )
    return out


def render(rows: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    if not rows:
        return "no silences"
    now = now or datetime.now(UTC)
    lines = []
    for row in rows:
        ends = datetime.fromisoformat(row["endsAt"])
        left = (
            f"ends in {format_duration(ends - now)}"
            if row["state"] == "active"
            else f"ended {format_duration(now - ends)} ago"
            if row["state"] == "expired"
            else f"starts {row['startsAt']}"
        )
        lines.append(
            f"{row['id'][:8]}  {row['state']:<7}  {' '.join(row['matchers'])}\n"
            f"          {left} ({row['endsAt']}), by {row['createdBy']} "
            f"from {row.get('source', 'cli')}"
            + (f", expired by {row['expiredBy']}" if row.get("expiredBy") else "")
            + ", "
            f"{row['silencedAlerts']} firing alerts silenced\n"
            f"          {row['comment']}"
        )
    return "\n".join(lines)


def unknown_names(matchers: Sequence[str], labels: set[str]) -> list[str]:
    """Label names no rule defines and no alert carries: probably a typo."""
    known = set(KNOWN_LABELS) | labels
    return sorted({m.name for m in parse_matchers(matchers)} - known)


def old_names(matchers: Sequence[str]) -> list[str]:
    """A warning for each matcher on an old label name (it still works): what to write."""
    return [
        f"--match {text}: {warning}"
        for text in matchers
        if (warning := old_label_warning(matcher_label(text) or "")) is not None
    ]


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2)
