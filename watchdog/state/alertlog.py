"""The alert manager's durable log: every alert it tracks with its version, what each
notifier was told of it, each notification group's thread and schedule, and which
firing alerts an inhibition rule holds back.

The alert manager (watchdog.alerting.manager) owns the behaviour; these are its rows.
A poll's alerts reach the log in the poll's own transaction (``record_alert``), the
daemon's own alerts in one of their own (``AlertLog.record``), and one flush of the
manager's decisions is one transaction (``AlertLog.apply_alerting``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from watchdog.alerts import Alert, Notification
from watchdog.durations import format_time
from watchdog.state import history, leases
from watchdog.state.database import Cursor, Database
from watchdog.state.outbox import Outbox
from watchdog.state.rows import now_text, read_time
from watchdog.state.silences import AuditEntry, Silence, Silences

# the newest audit entries kept of each action a flush writes (inhibit, uninhibit)
AUDIT_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """The alert manager's durable view of one alert: its latest status and version."""

    alert: Alert
    version: int  # bumps on every change of status or start time
    changed_at: datetime  # wall-clock time of that change: group_wait counts from it
    notify: tuple[str, ...]  # the rule's own notifiers


@dataclass(frozen=True, slots=True)
class Notified:
    version: int  # the alert version this notifier has handled
    status: str  # what it was told last: firing | resolved | none


@dataclass(frozen=True, slots=True)
class GroupState:
    thread: str
    notified_at: datetime
    sent: int


@dataclass(frozen=True, slots=True)
class Inhibited:
    """A firing alert an inhibition rule holds back, and the firing alert that mutes it."""

    alertname: str  # the held-back alert's rule
    inhibit_rule: str  # the inhibition rule's name
    source: str  # the muting alert's fingerprint
    source_alertname: str
    since: datetime


@dataclass(frozen=True, slots=True)
class AlertingSnapshot:
    alerts: list[ActiveAlert]
    notified: dict[tuple[str, str], Notified]  # (notifier, fingerprint)
    groups: dict[tuple[str, str], GroupState]  # (notifier, group key)
    silences: list[Silence]
    acked: frozenset[str] = frozenset()  # fingerprints whose current episode is acknowledged
    ended_silences: tuple[Silence, ...] = ()  # the last ones to end, newest end first
    inhibited: dict[str, Inhibited] = field(default_factory=dict)  # by fingerprint


@dataclass(slots=True)
class AlertingWrite:
    """What one alert-manager flush decided, applied in one transaction."""

    outbox: list[tuple[str, str, Notification]] = field(default_factory=list)  # key, order
    notified: dict[tuple[str, str], Notified] = field(default_factory=dict)
    groups: dict[tuple[str, str], GroupState] = field(default_factory=dict)
    ended_groups: set[tuple[str, str]] = field(default_factory=set)
    done_alerts: set[str] = field(default_factory=set)  # resolved and handled everywhere
    inhibited: dict[str, Inhibited] = field(default_factory=dict)  # newly held back, or by another
    uninhibited: set[str] = field(default_factory=set)  # no longer held back
    audit: list[AuditEntry] = field(default_factory=list)  # when and why those changed

    def __bool__(self) -> bool:
        return bool(
            self.outbox
            or self.notified
            or self.groups
            or self.ended_groups
            or self.done_alerts
            or self.inhibited
            or self.uninhibited
        )


def record_alert(cur: Cursor, alert: Alert, notify: Sequence[str], now: str) -> None:
    """Upsert an alert's latest status inside the caller's transaction; the same
    transition twice changes nothing."""
    starts = format_time(alert.starts_at)
    row = cur.execute(
        "SELECT status, starts_at, version FROM am_alerts WHERE fingerprint = ?",
        (alert.fingerprint,),
    ).fetchone()
    if row is not None and (row[0], row[1]) == (alert.status, starts):
        return
    if row is not None and row[1] == starts and alert.cause is None:
        alert = _with_cause_of(cur, alert)
    payload = json.dumps(alert.to_dict(), separators=(",", ":"))
    notify_json = json.dumps(list(notify))
    history.record_transition(cur, alert, now)
    if row is None:
        cur.execute(
            "INSERT INTO am_alerts (fingerprint, status, starts_at, version, changed_at,"
            " notify, payload) VALUES (?, ?, ?, 1, ?, ?, ?)",
            (alert.fingerprint, alert.status, starts, now, notify_json, payload),
        )
        return
    cur.execute(
        "UPDATE am_alerts SET status = ?, starts_at = ?, version = version + 1,"
        " changed_at = ?, notify = ?, payload = ? WHERE fingerprint = ?",
        (alert.status, starts, now, notify_json, payload, alert.fingerprint),
    )


def _with_cause_of(cur: Cursor, alert: Alert) -> Alert:
    """``alert`` (a resolution, say) with the likely cause its episode fired with: set once,
    so its ``cause`` labels, and with them its groups, stay what they were."""
    row = cur.execute(
        "SELECT payload FROM am_alerts WHERE fingerprint = ?", (alert.fingerprint,)
    ).fetchone()
    try:
        before = json.loads(row[0]) if row is not None else {}
    except ValueError:
        return alert
    cause = before.get("cause") if isinstance(before, dict) else None
    if not isinstance(cause, str):
        return alert
    lines = before.get("evidence")
    who = before.get("cause_participant")
    return replace(
        alert,
        cause=cause,
        evidence=tuple(map(str, lines)) if isinstance(lines, list) else (),
        cause_participant=who if isinstance(who, str) else None,
    )


_ALERT_ROWS = "SELECT fingerprint, version, changed_at, notify, payload FROM am_alerts"
_READ_CHUNK = 500  # fingerprints per IN (...) list: far below every engine's bound


def _cached(known: Mapping[str, ActiveAlert], fingerprint: str, version: int) -> ActiveAlert | None:
    cached = known.get(fingerprint)
    return cached if cached is not None and cached.version == version else None


def _active(row: Sequence[Any]) -> ActiveAlert:
    _, version, changed_at, notify, payload = row
    return ActiveAlert(
        alert=Alert.from_dict(json.loads(payload)),
        version=int(version),
        changed_at=read_time(changed_at) or datetime.now(UTC),
        notify=tuple(json.loads(notify)),
    )


def _notified(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], Notified]:
    """``am_notified`` by (notifier, fingerprint). Most rows say the same few things (told
    version 1, firing): they share one immutable value instead of one object each."""
    values: dict[tuple[int, str], Notified] = {}
    out = {}
    for notifier, fingerprint, version, status in rows:
        told = values.get((version, status))
        if told is None:
            told = values[(version, status)] = Notified(int(version), status)
        out[(notifier, fingerprint)] = told
    return out


class AlertLog:
    """The ``am_alerts``, ``am_notified`` and ``am_groups`` tables; a flush queues its
    notifications in ``outbox`` and reads silences and acks from ``silences``."""

    def __init__(self, db: Database, outbox: Outbox, silences: Silences) -> None:
        self._db = db
        self._outbox = outbox
        self._silences = silences
        # am_inhibited rows as last read, parsed: a flush every second re-reads thousands of
        # them, nearly all unchanged (guarded by the database lock)
        self._held: dict[str, tuple[tuple[str, ...], Inhibited]] = {}

    def record(
        self, alerts: Sequence[tuple[Alert, Sequence[str]]], *, leader: int | None = None
    ) -> None:
        """Alerts no poll raised (the daemon's own), in one transaction; ``leader``: with
        several instances, fenced by the leader lock's connection like meeting rules'."""
        now = now_text()
        with self._db.transaction() as cur:
            if leader is not None:
                leases.check_leader(cur, leader)
            for alert, notify in alerts:
                record_alert(cur, alert, notify, now)

    def active_alerts(self, known: Mapping[str, ActiveAlert] | None = None) -> list[ActiveAlert]:
        """Every alert the manager still tracks; ``known`` (by fingerprint) saves re-parsing.

        With ``known``, only the alerts it lacks or holds at an older version are read
        whole: the flush runs several times a second under load, and reading every
        alert's stored JSON, to throw nearly all of it away, made this read 2.4 times
        as costly.
        """
        if not known:
            with self._db.lock:
                rows = self._db.execute(
                    f"{_ALERT_ROWS} ORDER BY changed_at, fingerprint"
                ).fetchall()
            return [_active(row) for row in rows]
        with self._db.lock:
            heads = self._db.execute(
                "SELECT fingerprint, version FROM am_alerts ORDER BY changed_at, fingerprint"
            ).fetchall()
            wanted = [fp for fp, version in heads if _cached(known, fp, version) is None]
            fresh: dict[str, Sequence[Any]] = {}
            for start in range(0, len(wanted), _READ_CHUNK):
                chunk = wanted[start : start + _READ_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                sql = f"{_ALERT_ROWS} WHERE fingerprint IN ({marks})"
                fresh.update((row[0], row) for row in self._db.execute(sql, chunk).fetchall())
        out = []
        for fingerprint, version in heads:
            cached = _cached(known, fingerprint, version)
            if cached is not None:
                out.append(cached)
            elif fingerprint in fresh:  # else gone meanwhile (another instance's write)
                out.append(_active(fresh[fingerprint]))
        return out

    def alerting_snapshot(
        self, now: datetime, known: Mapping[str, ActiveAlert] | None = None
    ) -> AlertingSnapshot:
        with self._db.lock:
            notified = self._db.execute(
                "SELECT notifier, fingerprint, version, status FROM am_notified"
            ).fetchall()
            groups = self._db.execute(
                "SELECT notifier, group_key, thread, notified_at, sent FROM am_groups"
            ).fetchall()
            return AlertingSnapshot(
                alerts=self.active_alerts(known),
                notified=_notified(notified),
                groups={
                    (n, k): GroupState(t, read_time(at) or datetime.now(UTC), int(sent))
                    for n, k, t, at, sent in groups
                },
                silences=self._silences.active(now),
                acked=frozenset(a.fingerprint for a in self._silences.acks()),
                ended_silences=tuple(self._silences.ended(now)),
                inhibited=self._read_inhibited(),
            )

    def apply_alerting(self, write: AlertingWrite) -> int:
        """One flush's decisions, atomically; returns how many notifications were queued."""
        now = now_text()
        queued = 0
        with self._db.transaction() as cur:
            for dedup_key, order_key, notification in write.outbox:
                queued += self._outbox.insert(cur, dedup_key, notification, now, order_key)
            for (notifier, fingerprint), seen in write.notified.items():
                cur.execute(
                    "INSERT INTO am_notified (notifier, fingerprint, version, status)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (notifier, fingerprint) DO UPDATE SET"
                    " version = excluded.version, status = excluded.status",
                    (notifier, fingerprint, seen.version, seen.status),
                )
            for (notifier, key), group in write.groups.items():
                cur.execute(
                    "INSERT INTO am_groups (notifier, group_key, thread, notified_at, sent)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (notifier, group_key) DO UPDATE SET"
                    " thread = excluded.thread, notified_at = excluded.notified_at,"
                    " sent = excluded.sent",
                    (notifier, key, group.thread, format_time(group.notified_at), group.sent),
                )
            for notifier, key in write.ended_groups:
                cur.execute(
                    "DELETE FROM am_groups WHERE notifier = ? AND group_key = ?", (notifier, key)
                )
            for fingerprint in write.uninhibited | write.done_alerts:
                cur.execute("DELETE FROM am_inhibited WHERE fingerprint = ?", (fingerprint,))
            for fingerprint, held in write.inhibited.items():
                cur.execute(
                    "INSERT INTO am_inhibited (fingerprint, alertname, inhibit_rule, source,"
                    " source_alertname, since) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (fingerprint) DO UPDATE SET alertname = excluded.alertname,"
                    " inhibit_rule = excluded.inhibit_rule, source = excluded.source,"
                    " source_alertname = excluded.source_alertname, since = excluded.since",
                    (
                        fingerprint,
                        held.alertname,
                        held.inhibit_rule,
                        held.source,
                        held.source_alertname,
                        format_time(held.since),
                    ),
                )
            for entry in write.audit:
                self._silences.insert_audit(cur, entry)
            for action in sorted({entry.action for entry in write.audit}):
                self._silences.trim_audit(cur, action, AUDIT_KEPT)
            for fingerprint in write.done_alerts:
                cur.execute("DELETE FROM acks WHERE fingerprint = ?", (fingerprint,))
                cur.execute("DELETE FROM am_alerts WHERE fingerprint = ?", (fingerprint,))
                cur.execute("DELETE FROM am_notified WHERE fingerprint = ?", (fingerprint,))
        return queued

    def inhibited(self) -> dict[str, Inhibited]:
        """The firing alerts held back by an inhibition rule, by fingerprint (for ``status``)."""
        with self._db.lock:
            return self._read_inhibited()

    def _read_inhibited(self) -> dict[str, Inhibited]:
        """``am_inhibited`` by fingerprint, reusing the rows parsed last time; under the lock."""
        rows = self._db.execute(
            "SELECT fingerprint, alertname, inhibit_rule, source, source_alertname, since"
            " FROM am_inhibited"
        ).fetchall()
        held = {}
        for row in rows:
            key = tuple(row)
            cached = self._held.get(key[0])
            held[key[0]] = (key, cached[1] if cached and cached[0] == key else _inhibited(key))
        self._held = held
        return {fp: parsed for fp, (_, parsed) in held.items()}

    def meeting_in_progress(self, meeting_id: str) -> bool:
        """Someone of the meeting is still watched, or one of its alerts still fires."""
        with self._db.lock:
            watched = self._db.execute(
                "SELECT 1 FROM watchlist WHERE room_id = ? AND status = 'watching' LIMIT 1",
                (meeting_id,),
            ).fetchone()
            if watched is not None:
                return True
            rows = self._db.execute(
                "SELECT payload FROM am_alerts WHERE status = 'firing'"
            ).fetchall()
        return any(json.loads(p).get("meeting_id") == meeting_id for (p,) in rows)


def _inhibited(row: Sequence[str]) -> Inhibited:
    _, alertname, rule, source, source_alertname, since = row
    moment = read_time(since) or datetime.now(UTC)
    return Inhibited(alertname, rule, source, source_alertname, moment)
