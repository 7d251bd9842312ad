"""Escalation ladders: for each firing alert episode on a route with an escalation policy
(or whose acknowledgements someone hears of), when its ladder started, the time it spent
paused, the owner its notifiers were last told of, and the steps it ran.

watchdog.alerting.escalation decides; these are its rows. A step is claimed by inserting
its row (primary key: alert episode, step, round) in the same transaction as the
notifications it sends: a second instance, a restart or a retried flush that decides
the same step inserts nothing and sends nothing, so each step runs exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from watchdog.alerts import Notification
from watchdog.durations import format_time
from watchdog.state.database import Cursor, Database
from watchdog.state.outbox import Outbox
from watchdog.state.rows import now_text, read_time
from watchdog.state.silences import Ack, AuditEntry, Silences

Queued = tuple[str, str, Notification]  # (dedup key, order key, notification)


@dataclass(frozen=True, slots=True)
class StepRun:
    """A step of a ladder that ran (or was passed over outside its time intervals)."""

    step: int  # its index in the policy's steps
    round: int  # 0, then 1, 2... for each repeat of the last step
    done_at: datetime
    running: float  # the ladder's running seconds when it ran (see Ladder.running)
    outcome: str  # whom it reached, or why it was passed over
    notifiers: tuple[str, ...] = ()  # notify-step notifiers it sent the alert to


@dataclass(frozen=True, slots=True)
class Ladder:
    fingerprint: str
    starts_at: datetime  # the alert episode
    route: str  # the route whose policy runs it, as ``alerting.routes[N]``
    started_at: datetime  # when the alert was first notified
    paused_at: datetime | None = None  # acknowledged, silenced or inhibited since then
    paused_seconds: float = 0.0  # paused before that, in total
    owner: str | None = None  # the acknowledgement its notifiers were last told of
    steps: tuple[StepRun, ...] = ()

    def running(self, now: datetime) -> float:
        """Seconds the ladder has run: since it started, less the time it was paused."""
        paused = self.paused_seconds
        if self.paused_at is not None:
            paused += max(0.0, (now - self.paused_at).total_seconds())
        return (now - self.started_at).total_seconds() - paused


@dataclass(slots=True)
class EscalationWrite:
    """What one pass decided, applied in one transaction."""

    ladders: list[Ladder] = field(default_factory=list)  # new or changed (not their steps)
    steps: list[tuple[Ladder, StepRun, list[Queued]]] = field(default_factory=list)
    notices: list[Queued] = field(default_factory=list)  # acknowledgements, resolves
    expired: list[tuple[Ack, AuditEntry, list[Queued]]] = field(default_factory=list)
    ended: list[tuple[str, datetime]] = field(default_factory=list)  # episodes over
    audit: list[AuditEntry] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ladders or self.steps or self.notices or self.expired or self.ended)


@dataclass(frozen=True, slots=True)
class Applied:
    """What a pass changed: notifications queued, steps run here, acknowledgements ended."""

    queued: int = 0
    ran: tuple[tuple[Ladder, StepRun], ...] = ()
    expired: tuple[Ack, ...] = ()


class Escalations:
    """The ``esc_ladders`` and ``esc_steps`` tables; queues into ``outbox`` and ends acks
    through ``silences`` (their owners) in its own transaction."""

    def __init__(self, db: Database, outbox: Outbox, silences: Silences) -> None:
        self._db = db
        self._outbox = outbox
        self._silences = silences
        # rows as last read, parsed: read every flush, they rarely change (see ladders())
        self._heads: dict[tuple[Any, ...], Ladder] = {}
        self._runs: dict[tuple[Any, ...], StepRun] = {}

    def ladders(self) -> dict[str, Ladder]:
        """Every ladder with its steps, by fingerprint.

        Read whole each time (another instance may have written them); a row unchanged
        since the last read is not parsed again, which was most of this read's cost."""
        with self._db.lock:
            heads = self._db.execute(
                "SELECT fingerprint, starts_at, route, started_at, paused_at, paused_seconds,"
                " owner FROM esc_ladders"
            ).fetchall()
            runs = self._db.execute(
                "SELECT fingerprint, starts_at, step, round, done_at, running, outcome,"
                " notifiers FROM esc_steps ORDER BY fingerprint, step, round"
            ).fetchall()
        parsed_runs = {key: self._runs.get(key) or _run(key) for key in map(tuple, runs)}
        parsed_heads = {key: self._heads.get(key) or _ladder(key) for key in map(tuple, heads)}
        self._runs, self._heads = parsed_runs, parsed_heads
        steps: dict[tuple[str, str], list[StepRun]] = {}
        for key, run in parsed_runs.items():
            steps.setdefault((key[0], key[1]), []).append(run)
        out = {}
        for key, head in parsed_heads.items():
            done = steps.get((key[0], key[1]))
            out[head.fingerprint] = replace(head, steps=tuple(done)) if done else head
        return out

    def apply(self, write: EscalationWrite) -> Applied:
        """One pass's decisions, atomically.

        A step whose row is already there (claimed by another instance, or by this one
        before a crash) queues nothing; an acknowledgement that changed meanwhile is
        not expired and its reminder not sent.
        """
        now = now_text()
        queued = 0
        ran: list[tuple[Ladder, StepRun]] = []
        expired: list[Ack] = []
        with self._db.transaction() as cur:
            for fingerprint, starts_at in write.ended:
                for table in ("esc_steps", "esc_ladders"):
                    cur.execute(
                        f"DELETE FROM {table} WHERE fingerprint = ? AND starts_at = ?",  # noqa: S608
                        (fingerprint, format_time(starts_at)),
                    )
            for ladder in write.ladders:
                cur.execute(
                    "DELETE FROM esc_steps WHERE fingerprint = ? AND starts_at <> ?",
                    (ladder.fingerprint, format_time(ladder.starts_at)),
                )
                cur.execute(
                    "DELETE FROM esc_ladders WHERE fingerprint = ? AND starts_at <> ?",
                    (ladder.fingerprint, format_time(ladder.starts_at)),
                )
                cur.execute(
                    "INSERT INTO esc_ladders (fingerprint, starts_at, route, started_at,"
                    " paused_at, paused_seconds, owner) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (fingerprint, starts_at) DO UPDATE SET"
                    " paused_at = excluded.paused_at, paused_seconds = excluded.paused_seconds,"
                    " owner = excluded.owner",
                    (
                        ladder.fingerprint,
                        format_time(ladder.starts_at),
                        ladder.route,
                        format_time(ladder.started_at),
                        None if ladder.paused_at is None else format_time(ladder.paused_at),
                        ladder.paused_seconds,
                        ladder.owner,
                    ),
                )
            for ladder, run, outbox in write.steps:
                cur.execute(
                    "INSERT INTO esc_steps (fingerprint, starts_at, step, round, done_at,"
                    " running, outcome, notifiers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (fingerprint, starts_at, step, round) DO NOTHING",
                    (
                        ladder.fingerprint,
                        format_time(ladder.starts_at),
                        run.step,
                        run.round,
                        format_time(run.done_at),
                        run.running,
                        run.outcome,
                        json.dumps(list(run.notifiers)),
                    ),
                )
                if cur.rowcount <= 0:
                    continue  # another instance ran it: nothing more
                queued += self._queue(cur, outbox, now)
                ran.append((ladder, run))
            for ack, audit, outbox in write.expired:
                if self._silences.expire_ack(cur, ack, audit):
                    queued += self._queue(cur, outbox, now)
                    expired.append(ack)
            queued += self._queue(cur, write.notices, now)
            for entry in write.audit:
                self._silences.insert_audit(cur, entry)
        return Applied(queued, tuple(ran), tuple(expired))

    def _queue(self, cur: Cursor, outbox: Sequence[Queued], now: str) -> int:
        return sum(self._outbox.insert(cur, key, n, now, order) for key, order, n in outbox)


def _ladder(row: Sequence[Any]) -> Ladder:
    """An ``esc_ladders`` row, without its steps."""
    fp, starts, route, started, paused_at, paused_seconds, owner = row
    return Ladder(
        fingerprint=fp,
        starts_at=read_time(starts) or datetime.now(UTC),
        route=route,
        started_at=read_time(started) or datetime.now(UTC),
        paused_at=read_time(paused_at),
        paused_seconds=float(paused_seconds),
        owner=owner,
    )


def _run(row: Sequence[Any]) -> StepRun:
    """An ``esc_steps`` row (its first two columns name its ladder)."""
    _, _, step, rnd, done, running, outcome, notifiers = row
    return StepRun(
        int(step),
        int(rnd),
        read_time(done) or datetime.now(UTC),
        float(running),
        outcome,
        tuple(json.loads(notifiers)),
    )
