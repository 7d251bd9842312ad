"""What notifier entries remember between runs (watchdog.notifiers.NotifierState): small
JSON values by (notifier, key), e.g. the Slack thread a group's messages go to."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from watchdog.durations import format_time
from watchdog.state.database import Database
from watchdog.state.rows import now_text


class NotifierMemory:
    """The ``notifier_state`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def for_notifier(self, notifier: str) -> StoredNotifierState:
        return StoredNotifierState(self, notifier)

    def get(self, notifier: str, key: str) -> dict[str, Any] | None:
        with self._db.lock:
            row = self._db.execute(
                "SELECT value FROM notifier_state WHERE notifier = ? AND key = ?", (notifier, key)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, notifier: str, key: str, value: dict[str, Any]) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO notifier_state (notifier, key, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (notifier, key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (notifier, key, json.dumps(value, separators=(",", ":")), now_text()),
            )

    def delete(self, notifier: str, key: str) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "DELETE FROM notifier_state WHERE notifier = ? AND key = ?", (notifier, key)
            )

    def forget(self, notifier: str, prefix: str, before: datetime) -> int:
        with self._db.transaction() as cur:
            cur.execute(
                "DELETE FROM notifier_state WHERE notifier = ? AND substr(key, 1, ?) = ?"
                " AND updated_at <= ?",
                (notifier, len(prefix), prefix, format_time(before)),
            )
            return max(cur.rowcount, 0)


class StoredNotifierState:
    """A notifier entry's durable key-value memory (see watchdog.notifiers.NotifierState)."""

    def __init__(self, memory: NotifierMemory, notifier: str) -> None:
        self._memory = memory
        self._notifier = notifier

    def get(self, key: str) -> dict[str, Any] | None:
        return self._memory.get(self._notifier, key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._memory.put(self._notifier, key, value)

    def delete(self, key: str) -> None:
        self._memory.delete(self._notifier, key)

    def forget(self, prefix: str, before: datetime) -> int:
        return self._memory.forget(self._notifier, prefix, before)
