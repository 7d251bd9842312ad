"""``outbox list``: what is waiting to be delivered, and why.

Every notification sits in the outbox until its notifier accepts it, so
this is where an operator looks when an alert did not arrive: how long it
has waited, how many attempts failed, the last error, and whether the
notifier called the error permanent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.durations import format_duration, format_time
from watchdog.state.outbox import Outbox, OutboxEntry


def state(entry: OutboxEntry, warn_after: timedelta, now: datetime) -> str:
    """pending (not tried yet), retrying, overdue (past warn_after) or rejected (permanent)."""
    if entry.permanent:
        return "rejected"
    if entry.warned_at is not None or now - entry.created_at >= warn_after:
        return "overdue"
    return "retrying" if entry.attempts else "pending"


def describe(
    outbox: Outbox, warn_after: timedelta, now: datetime | None = None
) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    rows = []
    for entry in outbox.entries():
        n = entry.notification
        rows.append(
            {
                "id": entry.id,
                "notifier": entry.notifier,
                "state": state(entry, warn_after, now),
                "status": n.status,
                "repeat": n.repeat,
                "thread": n.thread,
                "rules": sorted({a.rule for a in n.alerts}),
                "alerts": [
                    {
                        "fingerprint": a.fingerprint,
                        "rule": a.rule,
                        "status": a.status,
                        "sessionId": a.session_id,
                        "participantId": a.participant_id,
                        "meetingId": a.meeting_id,
                    }
                    for a in n.alerts
                ],
                "createdAt": format_time(entry.created_at),
                "ageSeconds": round((now - entry.created_at).total_seconds(), 3),
                "attempts": entry.attempts,
                "nextAttemptAt": format_time(entry.next_attempt_at),
                "lastError": entry.last_error,
            }
        )
    return rows


def render(rows: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    if not rows:
        return "the outbox is empty: every notification was delivered"
    now = now or datetime.now(UTC)
    lines = []
    for row in rows:
        age = format_duration(timedelta(seconds=row["ageSeconds"]))
        kind = "reminder" if row["repeat"] else row["status"]
        who = row["alerts"][0]["participantId"] if row["alerts"] else "?"
        count = len(row["alerts"])
        what = f"{', '.join(row['rules'])} ({who}{f' +{count - 1} more' if count > 1 else ''})"
        next_at = datetime.fromisoformat(row["nextAttemptAt"])
        wait = next_at - now
        retry = f"next try in {format_duration(wait)}" if wait > timedelta(0) else "due now"
        lines.append(
            f"{row['id'][:12]}  {row['state']:<8}  {row['notifier']}  {kind} {what}\n"
            f"              age {age}, {row['attempts']} attempts, {retry}"
            + (f"\n              last error: {row['lastError']}" if row["lastError"] else "")
        )
    return "\n".join(lines)


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2)
