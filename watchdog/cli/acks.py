"""``ack``, ``unack`` and ``escalations``: the on-call loop from a terminal.

They act through the same :class:`~watchdog.alerting.actions.StoreActions` the Slack
buttons use, so the audit log, the acknowledgement notices and the ladders see a CLI
action exactly as they see a click; the running daemon acts on it within a second.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from watchdog.alerting.actions import StoreActions
from watchdog.alerting.escalation import EscalationConfig, describe
from watchdog.alerting.silences import author
from watchdog.config.problems import ConfigError, Problem
from watchdog.config.settings import Config
from watchdog.state.store import Store

MIN_PREFIX = 4


def find_alert(store: Store, prefix: str, command: str) -> str:
    """A firing alert's fingerprint from a unique prefix of it (at least 4 characters)."""
    wanted = prefix.lower()
    candidates = sorted(
        {
            a.alert.fingerprint
            for a in store.alert_log.active_alerts()
            if a.alert.status == "firing" and a.alert.fingerprint.startswith(wanted)
        }
    )
    if len(prefix) < MIN_PREFIX:
        reason = "give at least 4 characters of"
    elif not candidates:
        reason = "no firing alert has"
    elif len(candidates) > 1:
        reason = f"{len(candidates)} firing alerts match; give more of"
    else:
        return candidates[0]
    hint = " (`videosdk-watchdog escalations` or `status --json` lists them)"
    raise ConfigError([Problem(command, None, f"{reason} the fingerprint {prefix!r}{hint}")])


def actions(config: Config, store: Store) -> StoreActions:
    return StoreActions(
        store.silences,
        store.alert_log,
        store.watchlist,
        escalation=EscalationConfig.from_settings(config.settings, {}),
    )


def ack(config: Config, store: Store, prefix: str, by: str | None, note: str) -> tuple[bool, str]:
    """Acknowledge as ``by`` (default: the current user); (done, what happened)."""
    fingerprint = find_alert(store, prefix, "ack")
    result = actions(config, store).acknowledge(fingerprint, by or author(), "cli", note)
    return result.ok, f"{fingerprint[:12]}: {result.message}"


def unack(config: Config, store: Store, prefix: str, by: str | None) -> tuple[bool, str]:
    fingerprint = find_alert(store, prefix, "unack")
    result = actions(config, store).unacknowledge(fingerprint, by or author(), "cli")
    return result.ok, f"{fingerprint[:12]}: {result.message}"


def escalations(config: Config, store: Store, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each firing alert on a route with an escalation policy, and where its ladder is."""
    return describe(
        store.escalations.ladders(),
        store.alert_log.active_alerts(),
        {a.fingerprint: a for a in store.silences.acks()},
        EscalationConfig.from_settings(config.settings, {}),
        now or datetime.now(UTC),
    )


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)


def render(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no firing alert is on an escalation ladder"
    lines = []
    for row in rows:
        state = f"acked by {row['ackedBy']}" if row["ackedBy"] else "unacknowledged"
        if row["paused"] and not row["ackedBy"]:
            state = "paused (silenced or inhibited)"
        lines.append(
            f"{row['fingerprint'][:12]}  {row['alertname']} in {row['where']}  "
            f"route {row['route']}  {state}"
        )
        if row["startedAt"] is None:
            lines.append("    waiting for its first notification")
            continue
        for step in row["steps"]:
            again = f" (repeat {step['round']})" if step["round"] else ""
            lines.append(f"    done  step {step['step']}{again} at {step['at']}: {step['outcome']}")
        nxt = row["next"]
        if nxt is None:
            lines.append("    ladder complete")
        elif nxt["due"] is None:
            lines.append(
                f"    next  step {nxt['step']} ({nxt['does']}): {nxt['in']} after it resumes"
            )
        else:
            lines.append(
                f"    next  step {nxt['step']} ({nxt['does']}) at {nxt['due']} (in {nxt['in']})"
            )
    return "\n".join(lines)
