"""Several instances on one PostgreSQL: heartbeats, participant leases, one leader.

PostgreSQL is the coordinator; there is no protocol of our own. Each instance
heartbeats into ``instances`` every third of a lease; watched participants are
spread over the live instances by leases in ``leases``, claimed with
``FOR UPDATE SKIP LOCKED`` so two instances never wait on or take the same row.
A lease is valid while its owner's heartbeat is younger than ``state.lease``
(default three poll intervals), so renewing every lease an instance holds is one
row, its heartbeat, whatever it holds. A lease is free when nobody owns it or its
owner's heartbeat is a lease old (or gone); each instance claims its share of the
free ones every poll cycle, and also at the moment another instance's leases
fall due (the service schedules :meth:`Cluster.take_over` for then and polls
what it gets at once), so a dead instance's participants are polled again
within one lease and one interval of its last heartbeat.

Every claim bumps the lease's generation, and every per-participant write is
fenced by it in the same transaction, which locks the lease row
(watchdog.state.leases): a paused instance whose lease was claimed meanwhile cannot
write over its successor; one whose heartbeat went stale but whose lease nobody
claimed still owns it, and its write and any claim are ordered by that row lock.

One instance at a time, the leader (a session-level advisory lock on its own
connection, released by the server when that instance dies), runs discovery,
the alert manager, meeting-level rules and the lease bookkeeping; its meeting-rule
writes are fenced by the lock's connection still holding it. Times are the database's clock,
never the instances' own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import REGISTRY, Counter, Gauge

from watchdog.config.settings import WatchedParticipant
from watchdog.durations import format_time
from watchdog.engine.causes import MAX_PLACE, SHARED_PLACES
from watchdog.poll.failures import PollTally, pooled
from watchdog.poll.meetings import MeetingStates
from watchdog.poll.participants import Participants
from watchdog.state import leases
from watchdog.state.database import ROUND_TRIPS, Cursor
from watchdog.state.leases import Fence, InstanceRow, Leadership
from watchdog.state.outbox import OutboxEntry
from watchdog.state.rows import Key
from watchdog.state.store import Store

log = logging.getLogger(__name__)

# LEADER_LOCK (watchdog.state.leases): discovery, alert manager, meeting rules, lease bookkeeping

REPORTED_REASONS = 10  # the commonest failure reasons an instance reports of its cycle

# on PostgreSQL only: exported by a Cluster, so on SQLite they are absent rather than 0
LEASES_HELD = Gauge("watchdog_leases_held", "Participant leases this instance holds", registry=None)
LEASE_TAKEOVERS = Counter(
    "watchdog_lease_takeovers",
    "Leases taken over from an instance whose heartbeat went stale",
    registry=None,
)
LEASES_CLAIMED = Counter(
    "watchdog_leases_claimed", "Leases claimed (new or taken over)", registry=None
)
LEASES_RELEASED = Counter(
    "watchdog_leases_released", "Leases handed back for rebalancing", registry=None
)
LEASES_LOST = Counter(
    "watchdog_leases_lost", "Leases this instance found taken by another", registry=None
)
STALE_WRITES = Counter(
    "watchdog_stale_writes_rejected",
    "Poll results rejected because the lease had moved on",
    registry=None,
)
INSTANCES_LIVE = Gauge("watchdog_instances_live", "Instances with a fresh heartbeat", registry=None)
LEADER = Gauge(
    "watchdog_leader",
    "1 while this instance runs discovery and the alert manager",
    registry=None,
)
DATABASE_UP = Gauge(
    "watchdog_database_up", "1 while the last heartbeat reached the database", registry=None
)
METRICS = (
    LEASES_HELD,
    LEASE_TAKEOVERS,
    LEASES_CLAIMED,
    LEASES_RELEASED,
    LEASES_LOST,
    STALE_WRITES,
    INSTANCES_LIVE,
    LEADER,
    DATABASE_UP,
    ROUND_TRIPS,
)


def summed_places(reports: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Instances' place loads (JSON objects of place -> [degraded, meetings]), summed per
    place; at most :data:`SHARED_PLACES` places and names of :data:`MAX_PLACE` characters
    from each, whatever a row holds."""
    total: dict[str, tuple[int, int]] = {}
    for text in reports:
        try:
            loads = json.loads(text)
        except ValueError:
            continue
        if not isinstance(loads, dict):
            continue
        for place, load in itertools.islice(loads.items(), SHARED_PLACES):
            if not (
                isinstance(load, list)
                and len(load) == 2
                and all(type(n) is int and n >= 0 for n in load)
            ):
                continue
            key = str(place)[:MAX_PLACE]
            degraded, meetings = total.get(key, (0, 0))
            total[key] = (degraded + min(load[0], load[1]), meetings + load[1])
    return total


def instance_id(configured: str | None = None) -> str:
    """Unique per process: a restarted instance is a new one (its old leases just expire)."""
    if configured:
        return configured
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Cluster:
    """This instance's membership (a :class:`watchdog.poll.membership.Membership`): call
    ``tick()`` before every poll cycle.

    A lease won loads its participant's committed state into ``participants``, a lease
    lost forgets it there; becoming the leader reloads ``meetings``.
    """

    shared = True

    def __init__(
        self,
        store: Store,
        lease_seconds: float,
        ident: str,
        participants: Participants,
        meetings: MeetingStates,
    ) -> None:
        for metric in METRICS:
            with contextlib.suppress(ValueError):  # exported by an earlier member of this process
                REGISTRY.register(metric)
        self.store = store
        self.id = ident
        self.lease = lease_seconds
        self.leader = False
        self.held: dict[Key, int] = {}  # key -> generation
        self._participants = participants
        self._meetings = meetings
        self._leadership = Leadership(store.url)
        self._started = format_time(datetime.now(UTC))
        self._last_ok = 0.0  # monotonic time of the last heartbeat that reached the database
        self._lock = threading.Lock()
        self._claim_lock = threading.Lock()

    # -- the membership the poller is given (watchdog.poll.membership) -----------------

    def targets(self) -> list[WatchedParticipant]:
        with self._lock:
            return [WatchedParticipant(session=s, participant=p) for s, p in sorted(self.held)]

    def fence(self, key: Key) -> Fence:
        with self._lock:
            generation = self.held.get(key)
        return (self.id, generation if generation is not None else -1)

    def lost(self, key: Key, why: str) -> None:
        STALE_WRITES.inc()
        log.warning("%s", why, extra={"session_id": key[0], "participant_id": key[1]})
        with self._lock:
            self.held.pop(key, None)

    def leads(self) -> bool:
        return self.leader

    def leader_fence(self) -> int:
        """What a leader-only write (meeting-rule states) is fenced by: the backend of the
        lock's connection (0, which no backend is, once that connection is gone)."""
        pid = self._leadership.backend_pid if self.leader else None
        return 0 if pid is None else pid

    def lost_leadership(self, why: str) -> None:
        STALE_WRITES.inc()
        log.warning("%s", why)
        self.leader = False
        LEADER.set(0)

    def claim(self, entry: OutboxEntry, seconds: float) -> bool:
        """Take an outbox row for ``seconds`` before delivering it (no other instance
        delivers it meanwhile)."""
        return self.store.outbox.claim(entry.id, self.id, seconds)

    def pool_polls(self, tally: PollTally) -> PollTally | None:
        """Self-monitoring: this instance's latest cycle, as the API answered it, goes into
        its ``instances`` row; the leader gets every live instance's latest cycle pooled
        (the others None), so one API outage is judged once, for the whole cluster."""
        reasons = tally.top(REPORTED_REASONS)
        with self.store.transaction() as cur:
            now = leases.database_now(cur)
            leases.report_polls(
                cur, self.id, now, tally.answered, tally.failed, json.dumps(reasons)
            )
            if not self.leader:
                return None
            reports = leases.poll_reports(cur, now - self.lease)
        return pooled(PollTally(a, f, _reasons(text)) for a, f, text in reports)

    def share_places(self, mine: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """This instance's place loads go into its ``instances`` row; the other live
        instances' (reported within a lease) come back summed per place. A report that
        does not parse is skipped: it costs its instance's part, never the cycle."""
        with self.store.transaction() as cur:
            now = leases.database_now(cur)
            leases.report_places(cur, self.id, now, json.dumps(mine))
            reports = leases.place_reports(cur, self.id, now - self.lease)
        return summed_places(reports)

    def database_ok(self) -> bool:
        """Did a heartbeat reach the database within one lease length?"""
        return time.monotonic() - self._last_ok < self.lease

    # -- the cycle -------------------------------------------------------------------------

    def tick(self) -> None:
        """Heartbeat, leadership, rebalance and claim; never raises."""
        try:
            was, self.leader = self.leader, self._leadership.check()
            LEADER.set(1 if self.leader else 0)
            if self.leader and not was:  # meeting rules go on from the previous leader's
                self._meetings.reload()
            if self.leader:
                self._bookkeeping()
            self._claim()
            self._last_ok = time.monotonic()
            DATABASE_UP.set(1)
        except Exception as exc:
            DATABASE_UP.set(0)
            log.error("cluster heartbeat failed: %s: %s", type(exc).__name__, exc)

    def renew(self) -> float | None:
        """Heartbeat on its own timer (every third of a lease), so a poll cycle longer than
        the lease does not hand this instance's participants away while it still polls
        them. A lease is valid while its owner's heartbeat is: this one row renews them
        all. Returns when (seconds from now) another instance's leases fall due if it
        stops heartbeating, for :meth:`take_over`. Never raises."""
        try:
            with self.store.transaction() as cur:
                now = leases.database_now(cur)
                self._heartbeat(cur, now, len(self.held))
                due = self._next_due(cur, now)
            self._last_ok = time.monotonic()
            DATABASE_UP.set(1)
        except Exception as exc:
            DATABASE_UP.set(0)
            log.error("cluster heartbeat failed: %s: %s", type(exc).__name__, exc)
            return None
        return due

    def take_over(self) -> tuple[list[WatchedParticipant], float | None]:
        """Claim now, between poll cycles: run when another instance's leases fall due, so
        its participants move within one lease of its last heartbeat, not at this
        instance's next cycle. Returns the participants just acquired (to poll at once)
        and when to look again. Never raises."""
        try:
            acquired, due = self._claim()
        except Exception as exc:
            log.error("cluster take-over failed: %s: %s", type(exc).__name__, exc)
            return [], None
        return [WatchedParticipant(session=s, participant=p) for s, p in sorted(acquired)], due

    def _bookkeeping(self) -> None:
        """The leader keeps one lease row per watched participant, and forgets the dead."""
        with self.store.transaction() as cur:
            leases.keep_one_per_watched(cur, forget_instances_after=self.lease * 20)

    def _next_due(self, cur: Cursor, now: float) -> float | None:
        """Seconds until the first other live instance holding leases would lose them,
        were it to stop heartbeating now (None: nobody else holds any)."""
        first = leases.first_other_heartbeat(cur, self.id, now - self.lease)
        return None if first is None else first + self.lease - now

    def _claim(self) -> tuple[set[Key], float | None]:
        """Rebalance and claim this instance's share; returns what it newly acquired.

        Nothing is written for the leases it keeps: they live on its heartbeat. A lease
        is free when nobody owns it, or its owner's heartbeat is a lease old (or gone).
        Serialised: the cycle's tick and a timed take-over must not interleave."""
        with self._claim_lock:
            return self._claim_locked()

    def _claim_locked(self) -> tuple[set[Key], float | None]:
        lease = self.lease
        with self.store.transaction() as cur:
            now = leases.database_now(cur)
            self._heartbeat(cur, now, len(self.held))
            live = leases.live_instances(cur, now - lease)
            total = leases.count(cur)
            share = math.ceil(total / max(live, 1))
            kept, strays = self._owned(cur)
            if len(kept) > share and live > 1:  # someone joined: hand back the surplus
                surplus = sorted(kept)[share:]
                leases.release(cur, surplus, self.id)
                for key in surplus:
                    del kept[key]
                LEASES_RELEASED.inc(len(surplus))
            taken = 0
            need = share - len(kept)
            if strays:  # ours in the database, not in memory (a commit whose answer got
                # lost): taken again with a new generation, which fences whoever wrote before
                kept |= leases.bump(cur, strays, self.id, owner=self.id)
            if need > len(strays):
                free = leases.lock_free(cur, now - lease, need - len(strays))
                if free:
                    claimed = leases.bump(cur, [key for key, _ in free], self.id)
                    kept |= claimed
                    taken = sum(1 for _, previous in free if previous is not None)
                    LEASES_CLAIMED.inc(len(claimed))
                    LEASE_TAKEOVERS.inc(taken)
            if len(kept) != len(self.held):
                self._heartbeat(cur, now, len(kept))
            due = self._next_due(cur, now)
            INSTANCES_LIVE.set(live)
        with self._lock:
            before, self.held = self.held, kept
        for key in before.keys() - kept.keys():
            LEASES_LOST.inc()
            self._participants.forget(key)
        acquired = {key for key, generation in kept.items() if before.get(key) != generation}
        for key in acquired:  # go on from what its previous holder committed
            self._participants.adopt(key)
        LEASES_HELD.set(len(kept))
        if taken:
            log.info("took over %d participants of an instance whose heartbeat stopped", taken)
        return acquired, due

    def _owned(self, cur: Cursor) -> tuple[dict[Key, int], list[Key]]:
        """The leases the database says are this instance's: those at the generation it
        knows, and strays (a generation it never saw). A lease claimed away meanwhile is
        simply not among them. Reads, writes nothing."""
        with self._lock:
            known = dict(self.held)
        kept: dict[Key, int] = {}
        strays = []
        for key, generation in leases.owned_by(cur, self.id):
            if known.get(key) == generation:
                kept[key] = generation
            else:
                strays.append(key)
        return kept, strays

    def _heartbeat(self, cur: Cursor, now: float, held: int) -> None:
        roles = "leader" if self.leader else ""
        host, pid = socket.gethostname(), os.getpid()
        leases.heartbeat(cur, self.id, host, pid, self._started, now, held, roles)

    def leave(self) -> None:
        """A clean stop hands every lease back at once, so nobody waits for expiry."""
        try:
            with self.store.transaction() as cur:
                leases.leave(cur, self.id)
        except Exception as exc:
            log.warning("could not hand back leases on stop (they expire by themselves): %s", exc)
        self._leadership.close()
        with self._lock:
            self.held = {}


def _reasons(text: str) -> dict[str, int]:
    """An instance's reported reasons (JSON it wrote itself; anything else counts nothing)."""
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, int) and v > 0}


def instances(store: Store) -> list[InstanceRow]:
    """Every registered instance, for ``status``."""
    return leases.instances(store.database)
