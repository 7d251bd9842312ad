"""The set of watched participants: static ones from the config plus those discovered.

Discovery (polling) and the webhook receiver add and remove participants
here; the poller reads its targets from here every cycle and reports each
poll's outcome back. A participant who left is not dropped at once: it is
polled one final time to drain its last samples, then its firing alerts are
resolved with the reason ("left while degraded", or "the session ended") and it
is forgotten. Every change is written to the state database's watch list
(watchdog.state.watchlist), so a restart resumes with the same list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from watchdog.alerts import LEFT_WHILE_DEGRADED, SESSION_ENDED
from watchdog.config.settings import WatchedParticipant
from watchdog.obs.telemetry import SLOW_PARTICIPANTS, WATCH_CHANGES, WATCHED
from watchdog.poll.poller import Departure, Outcome
from watchdog.state.rows import Key
from watchdog.state.watchlist import WatchList as SavedWatchList
from watchdog.state.watchlist import WatchRecord
from watchdog.videosdk.stats import ParticipantInfo
from watchdog.watch.filters import Filters

log = logging.getLogger(__name__)

LEFT = "participant left the session"
SLOW_AFTER = 3  # polls in a row hitting the request deadline before a participant is "slow"
# why a participant leaves the list -> what its firing alerts' resolutions say (a firing
# alert is the degradation it left with); other reasons are said as they are
RESOLVED_BECAUSE = {LEFT: LEFT_WHILE_DEGRADED}


@dataclass(frozen=True, slots=True)
class Seen:
    """A participant as discovery or a webhook saw it."""

    room_id: str | None = None
    name: str | None = None
    custom_room_id: str | None = None


class WatchList:
    """Thread-safe: the poller's workers, the discovery job and the webhook server share it."""

    def __init__(
        self,
        saved: SavedWatchList,
        static: Sequence[WatchedParticipant],
        filters: Filters,
        missing_polls: int = 3,
        persist: bool = True,
    ) -> None:
        self._saved = saved if persist else None  # a dry run writes nothing
        self._filters = filters
        self._missing_polls = missing_polls
        self._lock = threading.RLock()
        self._entries: dict[Key, WatchRecord] = {}
        self._info: dict[Key, ParticipantInfo] = {}  # from the latest stats, for departures
        self._departing: dict[Key, str] = {}
        self._resolving: dict[Key, WatchRecord] = {}  # handed to the poller by cycle_done
        self._left_at: dict[Key, datetime] = {}  # when a leave was learned, against stale passes
        self._dirty: set[Key] = set()
        self._deleted: set[Key] = set()
        self._entries = {(r.session_id, r.participant_id): r for r in saved.load()}
        configured = {(p.session, p.participant) for p in static}
        with self._lock:
            for key, record in list(self._entries.items()):
                if record.source == "static" and key not in configured:
                    self._remove(key)  # no longer in the config
            now = datetime.now(UTC)
            for key in sorted(configured):
                existing = self._entries.get(key)
                if existing is None or existing.source != "static":
                    self._put(WatchRecord(key[0], key[1], None, None, "static", "watching", now))
            self._flush()

    # -- what the poller reads -----------------------------------------------------

    def targets(self) -> list[WatchedParticipant]:
        """Everyone to poll this cycle: the watched, and the leaving for one final poll."""
        with self._lock:
            return [
                WatchedParticipant(session=r.session_id, participant=r.participant_id)
                for r in self._entries.values()
                if r.status != "excluded"
            ]

    def count(self) -> int:
        """How many :meth:`targets` would return, without building them (``STATUS=`` reads
        it every second)."""
        with self._lock:
            return sum(1 for r in self._entries.values() if r.status != "excluded")

    def keys(self, status: str = "watching") -> set[Key]:
        with self._lock:
            return {k for k, r in self._entries.items() if r.status == status}

    def records(self) -> list[WatchRecord]:
        with self._lock:
            return list(self._entries.values())

    def get(self, key: Key) -> WatchRecord | None:
        with self._lock:
            return self._entries.get(key)

    def refresh(self) -> None:
        """Several instances share the list: adopt what the others wrote since (joins from
        their webhooks, leaves from the leader's discovery, departures by lease holders).
        Changes of this instance not yet written win; one read a cycle."""
        if self._saved is None:
            return
        stored = {(r.session_id, r.participant_id): r for r in self._saved.load()}
        with self._lock:
            for key in [k for k in self._entries if k not in stored and k not in self._dirty]:
                self._entries.pop(key)
                self._info.pop(key, None)
                self._left_at.pop(key, None)
                self._departing.pop(key, None)
            for key, record in stored.items():
                if key not in self._dirty and key not in self._deleted:
                    self._entries[key] = record
            self._set_gauges()

    # -- what discovery and webhooks change ----------------------------------------

    def join(self, key: Key, seen: Seen, source: Literal["discovery", "webhook"]) -> bool:
        """Start watching ``key`` unless a filter says no; True if it is watched now."""
        with self._lock:
            changed = self._join(key, seen, source)
            self._flush()
            return changed

    def leave(self, key: Key, reason: str = LEFT) -> bool:
        """Poll ``key`` once more, then resolve its alerts with ``reason`` and forget it."""
        with self._lock:
            left = self._leave(key, reason)
            self._flush()
            return left

    def end_session(self, session_id: str, reason: str = SESSION_ENDED) -> int:
        with self._lock:
            keys = [k for k in self._entries if k[0] == session_id]
            count = sum(self._leave(k, reason) for k in keys)
            self._flush()
            return count

    def reconcile(
        self,
        found: Mapping[Key, Seen],
        gone: Callable[[Key], str | None],
        started: datetime,
    ) -> tuple[int, int]:
        """Make the discovered part of the list match one discovery pass.

        ``gone(key)`` says why a participant the pass did not find is known to
        be gone (None when the pass could not tell, e.g. a listing failed).
        Entries added after the pass started (by a webhook) are left alone.
        Returns (joined, left).
        """
        joined = left = 0
        with self._lock:
            for key, seen in found.items():
                record = self._entries.get(key)
                if record is None:
                    joined += self._join(key, seen, "discovery")
                elif record.status == "leaving" and self._left_at.get(key, started) < started:
                    joined += self._join(key, seen, "discovery")  # back since it was seen leaving
            for key, record in list(self._entries.items()):
                if record.source == "static" or key in found or record.status == "leaving":
                    continue
                if record.since >= started:
                    continue
                reason = gone(key)
                if reason is not None:
                    left += self._leave(key, reason)
            self._flush()
        return joined, left

    # -- what the poller reports (watchdog.poll.poller.PollObserver) --------------------

    def admit(self, target: WatchedParticipant, info: ParticipantInfo) -> bool:
        """The first stats tell the SDK (and maybe the name): apply those filters now.

        A participant fixed in the config is always watched; its name and meeting
        are learnt from its stats all the same, for ``status``.
        """
        key = (target.session, target.participant)
        with self._lock:
            self._info[key] = info
            record = self._entries.get(key)
            if record is None:
                return True
            if record.source == "static":
                self._learn(record, info)
                return True
            if record.status == "excluded":
                return False
            why = self._filters.sdk(info.sdk_name) or (
                None if record.name else self._filters.name(info.name)
            )
            if why is None:
                self._learn(record, info)
                return True
            log.info(
                "not watching %s: %s",
                info.name or target.participant,
                why,
                extra={"session_id": target.session, "participant_id": target.participant},
            )
            WATCH_CHANGES.labels("excluded").inc()
            self._put(replace(record, status="excluded", reason=why))
            self._departing.pop(key, None)
            self._flush()
            return False

    def polled(self, target: WatchedParticipant, outcome: Outcome) -> None:
        key = (target.session, target.participant)
        ids = {"session_id": target.session, "participant_id": target.participant}
        with self._lock:
            record = self._entries.get(key)
            if record is None or record.status == "excluded":
                return
            misses = record.deadline_misses + 1 if outcome == "deadline" else 0
            if misses != record.deadline_misses:
                record = self._deadline_misses(record, misses)
            if outcome == "ok":
                if record.missing:
                    self._put(replace(record, missing=0))
                if record.status == "leaving":
                    self._departing[key] = record.reason or LEFT
            elif record.status == "leaving" and outcome == "not_found":
                self._departing[key] = record.reason or LEFT  # nothing left to drain
            elif outcome in ("error", "deadline") and record.status == "watching":
                pass  # a failing API says nothing about the participant; 404s count alone
            else:
                missing = record.missing + 1
                self._put(replace(record, missing=missing))
                if missing >= self._missing_polls:
                    if record.status == "leaving":
                        log.warning(
                            "could not fetch the final stats of a participant who left "
                            "(%d attempts); forgetting it",
                            missing,
                            extra=ids,
                        )
                        self._departing[key] = record.reason or LEFT
                    elif outcome == "not_found":
                        reason = f"stats not found (404) for {missing} polls in a row"
                        log.warning("dropping participant: %s", reason, extra=ids)
                        WATCH_CHANGES.labels("dropped").inc()
                        self._departing[key] = reason
            # no flush here: a flush writes and recounts the whole list's gauges, and in an
            # outage every poll changes its record; cycle_done writes them together

    def cycle_done(self) -> list[Departure]:
        """Write what this cycle's polls changed; say who had their final poll (the poller
        resolves their alerts, then tells :meth:`departed`)."""
        with self._lock:
            self._flush()  # 404 and deadline counts, names
            departing, self._departing = self._departing, {}
            self._resolving = {}
            departures = []
            for key, reason in departing.items():
                record = self._entries.get(key)
                if record is None:
                    continue
                info = self._info.get(key) or ParticipantInfo(
                    session_id=key[0],
                    participant_id=key[1],
                    meeting_id=record.room_id,
                    name=record.name,
                )
                departures.append(Departure(key, RESOLVED_BECAUSE.get(reason, reason), info))
                self._resolving[key] = record
            return departures

    def departed(self, departure: Departure) -> None:
        """Its alerts are resolved and its rows gone (in the poller's transaction): forget
        it here too, unless it joined again meanwhile."""
        key = departure.key
        with self._lock:
            record = self._resolving.pop(key, None)
            if record is None or self._entries.get(key) is not record:
                return
            del self._entries[key]
            self._info.pop(key, None)
            self._left_at.pop(key, None)
            self._dirty.discard(key)
            WATCH_CHANGES.labels("left").inc()
            self._set_gauges()

    # -- internals (lock held) ------------------------------------------------------

    def _learn(self, record: WatchRecord, info: ParticipantInfo) -> None:
        """Keep the name and meeting the stats told, where the record has none yet."""
        learnt = replace(
            record,
            name=record.name or info.name or None,
            room_id=record.room_id or info.meeting_id or None,
        )
        if learnt != record:
            self._put(learnt)  # written with the cycle's other changes (cycle_done)

    def _deadline_misses(self, record: WatchRecord, misses: int) -> WatchRecord:
        """Count polls in a row that hit the request deadline (``status`` shows them); log
        once when a participant becomes slow and once when it answers in time again."""
        ids = {"session_id": record.session_id, "participant_id": record.participant_id}
        if misses == SLOW_AFTER:
            log.warning(
                "stats requests hit the request deadline %d polls in a row: this participant "
                "is polled late, the others are not held up",
                misses,
                extra=ids,
            )
        elif misses == 0 and record.deadline_misses >= SLOW_AFTER:
            log.info(
                "stats requests answer within the request deadline again (after %d misses)",
                record.deadline_misses,
                extra=ids,
            )
        updated = replace(record, deadline_misses=misses)
        self._put(updated)
        return updated

    def _join(self, key: Key, seen: Seen, source: Literal["discovery", "webhook"]) -> bool:
        ids = {"session_id": key[0], "participant_id": key[1]}
        record = self._entries.get(key)
        if record is not None:
            if record.status == "leaving":  # back before the final poll: keep watching
                self._departing.pop(key, None)
                self._left_at.pop(key, None)
                self._put(replace(record, status="watching", reason=None, missing=0))
                log.info("participant is back; still watching", extra=ids)
                return True
            return record.status == "watching"
        why = self._filters.room(seen.room_id, seen.custom_room_id) or self._filters.name(seen.name)
        if why is not None:
            log.debug("not watching %s: %s", seen.name or key[1], why, extra=ids)
            return False
        now = datetime.now(UTC)
        self._put(WatchRecord(key[0], key[1], seen.room_id, seen.name, source, "watching", now))
        WATCH_CHANGES.labels("joined").inc()
        log.info(
            "watching %s in room %s (%s)",
            seen.name or key[1],
            seen.room_id or "?",
            source,
            extra=ids,
        )
        return True

    def _leave(self, key: Key, reason: str) -> bool:
        record = self._entries.get(key)
        if record is None or record.source == "static" or record.status == "leaving":
            return False
        if record.status == "excluded":
            self._remove(key)
            return False
        self._put(replace(record, status="leaving", reason=reason, missing=0))
        self._left_at[key] = datetime.now(UTC)
        log.info(
            "%s: one final poll, then its alerts resolve",
            reason,
            extra={"session_id": key[0], "participant_id": key[1]},
        )
        return True

    def _put(self, record: WatchRecord) -> None:
        key = (record.session_id, record.participant_id)
        self._entries[key] = record
        self._dirty.add(key)
        self._deleted.discard(key)

    def _remove(self, key: Key) -> None:
        self._entries.pop(key, None)
        self._info.pop(key, None)
        self._left_at.pop(key, None)
        self._dirty.discard(key)
        self._deleted.add(key)

    def _set_gauges(self) -> None:
        watched = slow = 0
        for record in self._entries.values():
            if record.status != "excluded":
                watched += 1
                slow += record.deadline_misses >= SLOW_AFTER
        WATCHED.set(watched)
        SLOW_PARTICIPANTS.set(slow)

    def _flush(self) -> None:
        """Write what changed; a poll that changed nothing costs nothing here (every
        poll of every participant comes through, so nothing may scan the whole list)."""
        if not self._dirty and not self._deleted:
            return
        dirty = [self._entries[k] for k in self._dirty if k in self._entries]
        deleted = list(self._deleted)
        self._dirty.clear()
        self._deleted.clear()
        self._set_gauges()
        if self._saved is None:
            return
        if dirty:
            self._saved.save(dirty)
        if deleted:
            self._saved.delete(deleted)
