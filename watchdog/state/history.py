"""Alert history: every transition, notification, acknowledgement, silence and inhibition,
kept for ``history.retention`` and read by ``history``, ``/api/history`` and ``report``.

What the state database already records is read where it is, not written twice:
acknowledgements, silences and inhibitions are the audit log's (``audit``, owned by
watchdog.state.silences), silences that ran out are the ``silences`` table's. This
module writes the rest, in the transaction of what caused it: an alert's transitions
(``record_transition``, from the alert log's ``record_alert``), each notification
delivered or failed (``record_notification``, from the outbox), and whatever another
module records through :meth:`History.record` (escalations, say). Each alert's labels
are kept once (``history_alerts``), so every source is filtered by rule, meeting and
participant alike.

Pruning deletes rows older than the retention in batches of ``BATCH`` rows, each batch
its own short transaction, on a timer of its own: never on the poll path.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.alerts import Alert, Notification, alert_labels
from watchdog.durations import format_time
from watchdog.state.database import Cursor, Database
from watchdog.state.rows import read_time

log = logging.getLogger(__name__)

BATCH = 5_000  # rows one pruning statement deletes at most
MAX_LIMIT = 1_000  # events one query returns at most
NOTIFIED_ALERTS = 100  # alerts of one notification recorded (a storm's digest names more)
TEXT = 500  # longest detail kept
QUERY_SECONDS = 2.0  # one query's budget (``Database.read``)

# audit actions as history kinds; other actions keep their own name
_AUDIT_KINDS = {
    "acknowledge": "acknowledged",
    "unacknowledge": "unacknowledged",
    "silence": "silenced",
    "unsilence": "unsilenced",
    "inhibit": "inhibited",
    "uninhibit": "released",
    "take": "taken",  # issue 18's escalation: someone took over an acknowledged alert
    "escalate": "escalated",  # an escalation step ran
}
# the same actions on a silence rather than an alert
_SILENCE_KINDS = {"silence": "silence-created", "unsilence": "silence-expired"}
_UPSERT_ALERT = (
    "INSERT INTO history_alerts (fingerprint, rule, meeting_id, session_id, participant_id,"
    " labels, last_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fingerprint) DO UPDATE SET"
    " rule = excluded.rule, meeting_id = excluded.meeting_id, labels = excluded.labels,"
    " last_at = excluded.last_at"
)
_INSERT_EVENT = (
    "INSERT INTO history_events (id, at, kind, fingerprint, value, notifier, actor, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TRANSITION = (
    "INSERT INTO history_events (id, at, kind, fingerprint, value, detail, cause)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to an alert or a silence."""

    at: datetime
    kind: str  # firing | resolved | sent | failed | acknowledged | silenced | inhibited | ...
    fingerprint: str | None = None
    rule: str | None = None
    meeting_id: str | None = None
    session_id: str | None = None
    participant_id: str | None = None
    value: float | None = None
    notifier: str | None = None
    actor: str | None = None
    source: str | None = None  # where an operator's action came from: slack, cli, ...
    silence_id: str | None = None
    target: str | None = None  # what else an audited action was about (an on-call override)
    detail: str | None = None
    cause: str | None = None  # a transition's likely cause, when the alert named one

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": format_time(self.at), "kind": self.kind}
        for name in (
            "rule",
            "meeting_id",
            "session_id",
            "participant_id",
            "fingerprint",
            "value",
            "notifier",
            "actor",
            "source",
            "silence_id",
            "target",
            "detail",
            "cause",
        ):
            value = getattr(self, name)
            if value is not None and value != "":
                out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class Filters:
    """What ``history`` and ``/api/history`` ask for; ``until`` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    rule: str | None = None
    meeting: str | None = None  # a meeting ID, or a session ID
    participant: str | None = None
    kind: str | None = None
    limit: int = 100

    @property
    def labelled(self) -> bool:
        return any((self.rule, self.meeting, self.participant))


@dataclass(frozen=True, slots=True)
class Page:
    events: list[Event]  # oldest first
    more: bool  # older events match too: ask again with ``until`` = the first one's time


@dataclass(slots=True)
class Pruned:
    rows: dict[str, int] = field(default_factory=dict)  # by table
    statements: int = 0
    done: bool = True  # False: stopped by its time budget; the next run goes on

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def record_transition(cur: Cursor, alert: Alert, now: str) -> None:
    """An alert fired or resolved (inside the alert log's transaction): its labels, and the
    event at its sample time with its value and, for a resolution no sample showed, why."""
    participant = alert.participant_id or None
    cur.execute(
        _UPSERT_ALERT,
        (
            alert.fingerprint,
            alert.rule,
            alert.meeting_id,
            alert.session_id or None,
            participant,
            json.dumps(alert_labels(alert), separators=(",", ":"), sort_keys=True),
            now,
        ),
    )
    value = alert.value if alert.value is not None and alert.value == alert.value else None
    cause = getattr(alert, "cause", None)  # the likely cause, where the core names one
    cur.execute(
        _INSERT_TRANSITION,
        (
            uuid.uuid4().hex,
            format_time(alert.sample_time),
            alert.status,
            alert.fingerprint,
            value,
            _clip(alert.reason),
            _clip(cause) if isinstance(cause, str) else None,
        ),
    )


def record_notification(
    cur: Cursor, notification: Notification, kind: str, detail: str | None = None
) -> None:
    """A notification was delivered (``sent``) or an attempt failed (``failed``): one event
    per alert it carried (at most NOTIFIED_ALERTS), inside the outbox's transaction."""
    told: str = notification.event if notification.event != "alert" else notification.status
    if notification.repeat:
        told = "reminder"
    text = told if detail is None else f"{told}: {detail}"
    at = format_time(datetime.now(UTC))
    rows = [
        (uuid.uuid4().hex, at, kind, a.fingerprint, None, notification.notifier, None, _clip(text))
        for a in notification.alerts[:NOTIFIED_ALERTS]
    ]
    if rows:
        cur.executemany(_INSERT_EVENT, rows)


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= TEXT else text[: TEXT - 1] + "\u2026"


class History:
    """Reads the history (``history_events`` and ``history_alerts`` with ``audit`` and
    ``silences``), records what other modules report, and prunes it."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- recording: the one call for other modules -------------------------------

    def record(
        self,
        kind: str,
        *,
        fingerprint: str | None = None,
        at: datetime | None = None,
        value: float | None = None,
        notifier: str | None = None,
        actor: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record one event about an alert (by fingerprint: its rule, meeting and
        participant come from its transitions) in a transaction of its own, e.g.
        ``history.record("escalated", fingerprint=fp, actor="step 2", detail="paged ana")``.
        ``kind`` is a short lower-case word; it is what ``history --kind`` filters on."""
        with self._db.transaction() as cur:
            self.record_in(
                cur,
                kind,
                fingerprint=fingerprint,
                at=at,
                value=value,
                notifier=notifier,
                actor=actor,
                detail=detail,
            )

    def record_in(
        self,
        cur: Cursor,
        kind: str,
        *,
        fingerprint: str | None = None,
        at: datetime | None = None,
        value: float | None = None,
        notifier: str | None = None,
        actor: str | None = None,
        detail: str | None = None,
    ) -> None:
        """:meth:`record` inside the caller's transaction."""
        if not kind or len(kind) > 40:
            raise ValueError(f"a history kind is a short word, not {kind[:50]!r}")
        cur.execute(
            _INSERT_EVENT,
            (
                uuid.uuid4().hex,
                format_time(at or datetime.now(UTC)),
                kind,
                fingerprint,
                value,
                notifier,
                _clip(actor),
                _clip(detail),
            ),
        )

    # -- reading ---------------------------------------------------------------

    def query(self, filters: Filters, now: datetime | None = None) -> Page:
        """The newest ``limit`` events matching, oldest first. Each source is read with
        the same filters and limit (indexed by time), then merged: the cost is bounded by
        the limit, and by QUERY_SECONDS per statement (QueryTimeout)."""
        now = now or datetime.now(UTC)
        limit = max(1, min(filters.limit, MAX_LIMIT))
        since = format_time(filters.since) if filters.since else ""
        until = format_time(filters.until) if filters.until else "9999"  # after any time
        labels, params = _label_filter(filters)
        # any kind may be in the history's own table (History.record), even an audited one
        events = self._events(since, until, where=(labels, params), kind=filters.kind, limit=limit)
        if filters.kind not in _OWN_KINDS:
            events += self._audit(
                since, until, where=(labels, params), kind=filters.kind, limit=limit
            )
        if not filters.labelled and filters.kind in (None, "silence-expired"):
            events += self._ran_out(since, min(until, format_time(now)), limit)  # ended by now
        events.sort(key=_order, reverse=True)
        page = events[:limit]
        page.reverse()
        return Page(page, len(events) > limit)

    def _events(
        self,
        since: str,
        until: str,
        *,
        where: tuple[str, list[Any]],
        kind: str | None,
        limit: int,
    ) -> list[Event]:
        labels, params = where
        condition = "e.at >= ? AND e.at < ?" + labels + (" AND e.kind = ?" if kind else "")
        sql = (
            "SELECT e.at, e.kind, e.fingerprint, a.rule, a.meeting_id, a.session_id,"  # noqa: S608
            " a.participant_id, e.value, e.notifier, e.actor, e.detail, e.cause"
            " FROM history_events e"
            f" LEFT JOIN history_alerts a ON a.fingerprint = e.fingerprint WHERE {condition}"
            " ORDER BY e.at DESC LIMIT ?"
        )
        args = [since, until, *params, *([kind] if kind else []), limit + 1]
        return [_event(row) for row in self._db.read(sql, args, QUERY_SECONDS)]

    def _audit(
        self,
        since: str,
        until: str,
        *,
        where: tuple[str, list[Any]],
        kind: str | None,
        limit: int,
    ) -> list[Event]:
        labels, params = where
        condition = "u.at >= ? AND u.at < ?" + labels
        actions: list[str] = []
        if kind is not None:  # the actions shown as this kind, or an action by its own name
            named = {**_AUDIT_KINDS, **_SILENCE_KINDS}
            actions = [a for a, k in named.items() if k == kind] or [kind]
            condition += f" AND u.action IN ({', '.join('?' for _ in actions)})"
        sql = (
            "SELECT u.at, u.action, u.target, a.fingerprint, a.rule, a.meeting_id,"  # noqa: S608
            " a.session_id,"
            " a.participant_id, u.actor, u.source, u.detail FROM audit u"
            f" LEFT JOIN history_alerts a ON a.fingerprint = u.target WHERE {condition}"
            " ORDER BY u.at DESC LIMIT ?"
        )
        rows = self._db.read(sql, [since, until, *params, *actions, limit + 1], QUERY_SECONDS)
        out = []
        for at, action, target, fp, rule, meeting, session, participant, actor, src, detail in rows:
            on_silence = fp is None and action in _SILENCE_KINDS
            found = _SILENCE_KINDS[action] if on_silence else _AUDIT_KINDS.get(action, action)
            if kind is not None and found != kind:
                continue
            out.append(
                Event(
                    at=read_time(at) or datetime.now(UTC),
                    kind=found,
                    fingerprint=target if fp is not None else None,
                    rule=rule,
                    meeting_id=meeting,
                    session_id=session,
                    participant_id=participant,
                    actor=actor,
                    source=src,
                    silence_id=target if on_silence else None,
                    target=target if fp is None and not on_silence else None,
                    detail=detail or None,
                )
            )
        return out

    def _ran_out(self, since: str, until: str, limit: int) -> list[Event]:
        """Silences that ended at their set time (one expired by hand is in the audit)."""
        sql = (
            "SELECT s.ends_at, s.id, s.created_by, s.comment FROM silences s"
            " WHERE s.ends_at >= ? AND s.ends_at < ? AND NOT EXISTS (SELECT 1 FROM audit u"
            " WHERE u.target = s.id AND u.action = 'unsilence') ORDER BY s.ends_at DESC LIMIT ?"
        )
        return [
            Event(
                at=read_time(at) or datetime.now(UTC),
                kind="silence-expired",
                actor=by,
                source="ran out",
                silence_id=sid,
                detail=_clip(comment) or None,
            )
            for at, sid, by, comment in self._db.read(sql, [since, until, limit + 1], QUERY_SECONDS)
        ]

    def transitions(self, since: datetime, until: datetime) -> Iterator[tuple[Any, ...]]:
        """(at, kind, fingerprint, rule, labels, cause) of every firing and resolution in
        the range, oldest first, read a page at a time as they are consumed (``report
        rules`` and the digest read weeks of them: never all at once)."""
        after = (format_time(since), "")
        end = format_time(until)
        while True:
            page = self._db.read(
                "SELECT e.at, e.id, e.kind, e.fingerprint, a.rule, a.labels, e.cause"
                " FROM history_events e"
                " JOIN history_alerts a ON a.fingerprint = e.fingerprint"
                " WHERE e.kind IN ('firing', 'resolved') AND e.at < ?"
                " AND (e.at > ? OR (e.at = ? AND e.id > ?)) ORDER BY e.at, e.id LIMIT ?",
                [end, after[0], after[0], after[1], BATCH],
                60.0,
            )
            for r in page:
                yield read_time(r[0]), r[2], r[3], r[4], r[5], r[6]
            if len(page) < BATCH:
                return
            after = (page[-1][0], page[-1][1])

    def actions(self, since: datetime, actions: Sequence[str]) -> list[tuple[datetime, str, str]]:
        """(at, action, target) of these audit actions since ``since`` (for ``report``)."""
        marks = ", ".join("?" for _ in actions)
        rows = self._db.read(
            f"SELECT at, action, target FROM audit WHERE at >= ? AND action IN ({marks})"  # noqa: S608
            " ORDER BY at",
            [format_time(since), *actions],
            60.0,
        )
        return [(read_time(at) or datetime.now(UTC), a, t) for at, a, t in rows]

    # -- retention ---------------------------------------------------------------

    def prune(
        self,
        retention: timedelta,
        now: datetime | None = None,
        *,
        batch: int = BATCH,
        seconds: float = 5.0,
    ) -> Pruned:
        """Delete what is older than ``retention``, ``batch`` rows per statement and
        transaction, for at most ``seconds`` (the rest on the next run): events, the audit
        log, ended silences, minute summaries, and alert and participant identities last
        seen before the cutoff."""
        now = now or datetime.now(UTC)
        cutoff = now - retention
        text = format_time(cutoff)
        minute = int(cutoff.timestamp()) // 60
        deadline = time.monotonic() + seconds
        out = Pruned()
        plans: Iterable[tuple[str, str, str, Any]] = (
            ("history_events", "id", "at < ?", text),
            ("audit", "id", "at < ?", text),
            (
                "silence_meetings",
                "silence_id",
                "silence_id IN (SELECT id FROM silences WHERE ends_at < ?)",
                text,
            ),
            ("silences", "id", "ends_at < ?", text),
            ("history_minutes", "start, who", "start < ?", minute),
            ("history_alerts", "fingerprint", "last_at < ?", text),
            ("history_participants", "who", "last_minute < ?", minute),
        )
        for table, key, where, bound in plans:
            while True:
                if time.monotonic() > deadline:
                    out.done = False
                    return out
                keys = f"({key})" if "," in key else key
                with self._db.transaction() as cur:
                    cur.execute(
                        f"DELETE FROM {table} WHERE {keys} IN"  # noqa: S608
                        f" (SELECT {key} FROM {table} WHERE {where} LIMIT ?)",
                        (bound, batch),
                    )
                    deleted = max(cur.rowcount, 0)
                out.statements += 1
                out.rows[table] = out.rows.get(table, 0) + deleted
                if deleted < batch:
                    break
        if out.total:
            log.info("history: pruned %d rows older than %s", out.total, text)
        return out


# the kinds only the history's own table holds (the audit log is not asked for them)
_OWN_KINDS = frozenset({"firing", "resolved", "sent", "failed"})


def _event(row: Sequence[Any]) -> Event:
    """A ``history_events`` row joined with its alert's labels (``History._events``)."""
    at, kind, fp, rule, meeting, session, participant, value, notifier, actor, detail, cause = row
    return Event(
        at=read_time(at) or datetime.now(UTC),
        kind=kind,
        fingerprint=fp,
        rule=rule,
        meeting_id=meeting,
        session_id=session,
        participant_id=participant,
        value=None if value is None else float(value),
        notifier=notifier,
        actor=actor,
        detail=detail,
        cause=cause,
    )


def _order(event: Event) -> tuple[datetime, str, str, str]:
    """Time, then a stable order among events of one moment (one notification's alerts)."""
    return (event.at, event.kind, event.rule or "", event.participant_id or "")


def _label_filter(filters: Filters) -> tuple[str, list[Any]]:
    """The SQL (on ``history_alerts a``) and parameters of the label filters."""
    sql, params = "", []
    if filters.rule:
        sql += " AND a.rule = ?"
        params.append(filters.rule)
    if filters.meeting:
        sql += " AND (a.meeting_id = ? OR a.session_id = ?)"
        params += [filters.meeting, filters.meeting]
    if filters.participant:
        sql += " AND a.participant_id = ?"
        params.append(filters.participant)
    return sql, params
