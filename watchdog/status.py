"""``videosdk-watchdog status``: who is watched, since when, their newest sample, what fires.

Read from the state database, so it answers while the daemon runs (SQLite
in WAL mode lets a reader in beside the writer) and after it stopped.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from watchdog import cluster
from watchdog.problems import ConfigError
from watchdog.settings import Config
from watchdog.stats import format_time
from watchdog.store import Store, WatchStatus

COLUMNS = ("SESSION", "PARTICIPANT", "NAME", "ROOM", "SOURCE", "STATE", "SINCE", "LAST SAMPLE")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _row(status: WatchStatus) -> dict[str, Any]:
    r = status.record
    return {
        "sessionId": r.session_id,
        "participantId": r.participant_id,
        "name": r.name,
        "roomId": r.room_id,
        "source": r.source,
        "state": r.status,
        "reason": r.reason,
        "since": format_time(r.since),
        "lastSample": format_time(status.last_sample) if status.last_sample else None,
        "firing": [
            {"rule": rule, "firedAt": format_time(at) if at else None} for rule, at in status.firing
        ],
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
    finally:
        store.close()
    if as_json:
        out.write(json.dumps([_row(s) for s in rows], indent=2) + "\n")
        return 0
    if members:
        _instances(members, out)
    watched = sum(1 for s in rows if s.record.status != "excluded")
    leaving = sum(1 for s in rows if s.record.status == "leaving")
    excluded = len(rows) - watched
    firing = sum(len(s.firing) for s in rows)
    out.write(
        f"{watched} participants watched ({leaving} leaving), {excluded} excluded by filters, "
        f"{firing} alerts firing; times in UTC\n"
    )
    if not rows:
        return 0
    table = [COLUMNS]
    for s in rows:
        r = s.record
        state = r.status if r.status == "watching" else f"{r.status}: {r.reason or '?'}"
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
                out.write(f"    FIRING {rule} since {_when(at)}\n")
    return 0
