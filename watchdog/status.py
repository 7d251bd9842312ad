"""``videosdk-watchdog status``: who is watched, since when, their newest sample, what fires.

Read from the state database, so it answers while the daemon runs (SQLite
in WAL mode lets a reader in beside the writer) and after it stopped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from watchdog import cluster
from watchdog.alerts import fingerprint
from watchdog.problems import ConfigError
from watchdog.settings import Config
from watchdog.stats import format_time
from watchdog.store import Ack, AuditEntry, Store, WatchRecord, WatchStatus
from watchdog.watchlist import SLOW_AFTER

RECENT_ACTIONS = 10
COLUMNS = ("SESSION", "PARTICIPANT", "NAME", "ROOM", "SOURCE", "STATE", "SINCE", "LAST SAMPLE")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _ack(acks: dict[str, Ack], rule: str, record: WatchRecord) -> Ack | None:
    return acks.get(fingerprint(rule, record.session_id, record.participant_id))


def _ack_json(ack: Ack | None) -> dict[str, Any]:
    if ack is None:
        return {}
    return {"ackedBy": ack.acked_by, "ackedAt": format_time(ack.acked_at), "ackSource": ack.source}


def _row(status: WatchStatus, acks: dict[str, Ack]) -> dict[str, Any]:
    r = status.record
    return {
        "sessionId": r.session_id,
        "participantId": r.participant_id,
        "name": r.name,
        "roomId": r.room_id,
        "source": r.source,
        "state": r.status,
        "reason": r.reason,
        "deadlineMisses": r.deadline_misses,
        "since": format_time(r.since),
        "lastSample": format_time(status.last_sample) if status.last_sample else None,
        "firing": [
            {
                "rule": rule,
                "firedAt": format_time(at) if at else None,
                **_ack_json(_ack(acks, rule, r)),
            }
            for rule, at in status.firing
        ],
    }


def _member(m: cluster.InstanceRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "host": m.host,
        "pid": m.pid,
        "startedAt": m.started_at,
        "lastHeartbeat": format_time(datetime.fromtimestamp(m.heartbeat_at, UTC)),
        "heartbeatAgeSeconds": round(m.heartbeat_age, 3),
        "participantsHeld": m.held,
        "leader": "leader" in m.roles.split(","),
    }


def _instances(members: list[cluster.InstanceRow], out: TextIO) -> None:
    """Several instances on one PostgreSQL: who is alive and how much each one polls."""
    out.write(f"{len(members)} instances share this database:\n")
    table = [("INSTANCE", "HOST", "PID", "LAST HEARTBEAT", "PARTICIPANTS", "ROLE")]
    for m in members:
        age = f"{m.heartbeat_age:.1f}s ago"
        table.append((m.id, m.host, str(m.pid), age, str(m.held), m.roles or "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        out.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    out.write("\n")


def print_status(config: Config, out: TextIO, as_json: bool = False) -> int:
    url = config.state_url
    if "://" not in url and url != ":memory:" and not Path(url).exists():
        raise ConfigError.single(url, None, "no state database yet: has the daemon run?")
    store = Store(url)
    try:
        rows = store.watch_status()
        members = cluster.instances(store) if store.kind == "postgresql" else []
        acks = {a.fingerprint: a for a in store.acks()}
        actions = store.audit(limit=RECENT_ACTIONS)
    finally:
        store.close()
    if as_json:
        participants = [_row(s, acks) for s in rows]
        if store.kind == "postgresql":  # several instances: who they are, as the text shows
            document: Any = {
                "instances": [_member(m) for m in members],
                "participants": participants,
            }
        else:
            document = participants  # one instance on SQLite: the list, as it always was
        out.write(json.dumps(document, indent=2) + "\n")
        return 0
    if members:
        _instances(members, out)
    watched = sum(1 for s in rows if s.record.status != "excluded")
    leaving = sum(1 for s in rows if s.record.status == "leaving")
    excluded = len(rows) - watched
    firing = sum(len(s.firing) for s in rows)
    slow = sum(1 for s in rows if s.record.deadline_misses >= SLOW_AFTER)
    slow_note = f", {slow} slow (stats requests hitting the deadline)" if slow else ""
    out.write(
        f"{watched} participants watched ({leaving} leaving), {excluded} excluded by filters, "
        f"{firing} alerts firing{slow_note}; times in UTC\n"
    )
    if not rows:
        _actions(actions, out)
        return 0
    table = [COLUMNS]
    for s in rows:
        r = s.record
        state = r.status if r.status == "watching" else f"{r.status}: {r.reason or '?'}"
        if r.deadline_misses:
            polls = "poll" if r.deadline_misses == 1 else f"{r.deadline_misses} polls"
            state += f" (request deadline hit on the last {polls})"
        table.append(
            (
                r.session_id,
                r.participant_id,
                r.name or "-",
                r.room_id or "-",
                r.source,
                state,
                _when(r.since),
                _when(s.last_sample),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for index, row in enumerate(table):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
        if index and rows[index - 1].firing:
            for rule, at in rows[index - 1].firing:
                ack = _ack(acks, rule, rows[index - 1].record)
                seen = (
                    f", acknowledged by {ack.acked_by} ({ack.source}) at {_when(ack.acked_at)}"
                    if ack
                    else ""
                )
                out.write(f"    FIRING {rule} since {_when(at)}{seen}\n")
    _actions(actions, out)
    return 0


def _actions(actions: list[AuditEntry], out: TextIO) -> None:
    """The audit log's newest entries: who acknowledged, silenced or unsilenced what."""
    if not actions:
        return
    out.write("recent actions (acknowledge, silence, unsilence):\n")
    for entry in actions:
        out.write(
            f"  {_when(entry.at)}  {entry.action:<11}  {entry.target[:16]}  "
            f"by {entry.actor} from {entry.source}  {entry.detail}".rstrip()
            + "\n"
        )
