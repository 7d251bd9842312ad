"""What the notifier re-sends: the alerts it was told fire, and those resolved lately.

Kept in the entry's ``NotifierState`` (the state database), so a restart, a reload or
another instance sharing the database re-sends the same set. Prometheus keeps a resolved
alert for 15 minutes and re-sends it too, so an Alertmanager that missed the resolve
(down, or answering 5xx at the time) still hears it; the same here (``retention``).

The state API is a key-value memory without listing, so the alerts live in a fixed set
of buckets (by fingerprint): one notification rewrites only the buckets of its alerts,
and a re-send reads them all without an index that could go stale. Between instances a
bucket's read-modify-write is checked by reading it back, and done again if another
instance's write replaced it meanwhile.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from watchdog.durations import format_time, parse_time
from watchdog.notifiers import NotifierState

BUCKETS = 64
WRITE_TRIES = 3


@dataclass(frozen=True, slots=True)
class Remembered:
    """One alert to re-send: its postable body (no ``endsAt``) and, once resolved, when."""

    body: dict[str, Any]
    resolved_at: datetime | None

    def to_json(self, seen: datetime) -> dict[str, Any]:
        ended = None if self.resolved_at is None else format_time(self.resolved_at)
        return {"alert": self.body, "resolved_at": ended, "seen": format_time(seen)}


def bucket(fingerprint: str) -> str:
    return f"alerts:{zlib.crc32(fingerprint.encode()) % BUCKETS:02d}"


class AlertMemory:
    """The re-send set of one notifier entry, over its ``NotifierState``.

    Callers serialise their calls (the notifier's lock); ``retention`` is how long a
    resolved alert is still re-sent, ``forget_after`` how long a firing alert nothing
    told about again is kept (None: until its resolve).
    """

    def __init__(
        self, state: NotifierState, retention: timedelta, forget_after: timedelta | None
    ) -> None:
        self.state = state
        self.retention = retention
        self.forget_after = forget_after

    def record(self, alerts: Mapping[str, Remembered], now: datetime) -> None:
        """Remember these alerts (by fingerprint), replacing what was known of them."""
        by_bucket: dict[str, dict[str, dict[str, Any]]] = {}
        for fingerprint, alert in alerts.items():
            by_bucket.setdefault(bucket(fingerprint), {})[fingerprint] = alert.to_json(now)
        for key, entries in by_bucket.items():
            self._update(key, partial(_merged, new=entries))

    def due(self, now: datetime) -> list[Remembered]:
        """Every alert to re-send now; forgets those past retention (or ``forget_after``)."""
        out: list[Remembered] = []
        for key in (f"alerts:{n:02d}" for n in range(BUCKETS)):
            stored = _alerts(self.state.get(key))
            kept = {fp: entry for fp, entry in stored.items() if self._keep(entry, now)}
            if len(kept) != len(stored):
                gone = stored.keys() - kept.keys()
                self._update(key, partial(_without, gone=gone))
            out.extend(alert for _, alert in _read(kept))
        return out

    def _keep(self, entry: dict[str, Any], now: datetime) -> bool:
        """Counted from when we were told (``seen``), not from the samples' times."""
        seen = parse_time(entry.get("seen"))
        if seen is None:
            return False
        if entry.get("resolved_at") is not None:
            return now - seen <= self.retention
        return self.forget_after is None or now - seen <= self.forget_after

    def _update(
        self, key: str, change: Callable[[dict[str, dict[str, Any]]], dict[str, Any]]
    ) -> None:
        """Read, change, write; read back and do it again if another writer won the race."""
        for _ in range(WRITE_TRIES):
            wanted = change(_alerts(self.state.get(key)))
            if wanted:
                self.state.put(key, {"alerts": wanted})
            else:
                self.state.delete(key)
            if _alerts(self.state.get(key)) == wanted:
                return


def _alerts(value: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    alerts = (value or {}).get("alerts")
    if not isinstance(alerts, dict):
        return {}
    return {str(k): v for k, v in alerts.items() if isinstance(v, dict)}


def _merged(stored: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {**stored, **new}


def _without(stored: dict[str, dict[str, Any]], gone: set[str]) -> dict[str, Any]:
    return {fp: entry for fp, entry in stored.items() if fp not in gone}


def _read(entries: Mapping[str, dict[str, Any]]) -> Iterator[tuple[str, Remembered]]:
    """Stored entries back as ``Remembered``; one a bad row cannot stop the others."""
    for fingerprint, entry in entries.items():
        body = entry.get("alert")
        if isinstance(body, dict) and isinstance(body.get("labels"), dict):
            yield fingerprint, Remembered(body, parse_time(entry.get("resolved_at")))
