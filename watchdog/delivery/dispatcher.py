"""Delivers the outbox: each notifier in its own lane, with timeouts and backoff.

A notification leaves the outbox only when its notifier accepted it. A
notifier that raises, hangs or rate-limits only delays its own lane; alerts
of one group (one alert, when not grouped) go out in the order they were
written, so a "resolved" never overtakes its "firing".

Each attempt runs in its own daemon thread and nothing ever waits on it:
past ``timeout`` the attempt counts as failed and is retried, and the
thread is left to finish (if it ever does, a late success still removes
the notification). A lane runs at most ``concurrency`` sends at once,
abandoned ones included, so a plugin that hangs forever holds a bounded
number of threads and never blocks another notifier or the daemon's exit.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from watchdog.alerts import Notification
from watchdog.config.settings import DeliverySettings
from watchdog.notifiers import DeliveryError, Notifier
from watchdog.obs.logs import about
from watchdog.obs.telemetry import ACCEPTED_LATE, DELIVERY_ATTEMPTS, OUTBOX_DEPTH, OUTBOX_OVERDUE
from watchdog.redaction import Redactor
from watchdog.state.faults import StorageFault
from watchdog.state.outbox import Outbox, OutboxEntry

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
IDLE_POLL = 1.0  # seconds between outbox passes when nothing wakes the dispatcher
DELIVERED = sys.maxsize


def backoff(attempts: int, cap: timedelta) -> timedelta:
    """Exponential with full jitter in its upper half: 1s, 2s, 4s ... up to ``cap``."""
    ceiling = min(cap.total_seconds(), FIRST_BACKOFF * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@dataclass(slots=True)
class _Attempt:
    entry: OutboxEntry
    notifier: Notifier
    deadline: float  # time.monotonic()
    error: BaseException | None = None
    settled: bool = False  # by its result or by its timeout, whichever came first


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        timeout: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(minutes=5),
        *,
        warn_after: timedelta = timedelta(minutes=10),
        concurrency: int = 4,
        redactor: Redactor | None = None,
        claim: Callable[[OutboxEntry], bool] | None = None,
    ) -> None:
        self.outbox = outbox
        self.notifiers = dict(notifiers)
        self.timeout = timeout.total_seconds()
        self.max_backoff = max_backoff
        self.warn_after = warn_after
        self.concurrency = concurrency
        # a plugin's error may quote its token or webhook URL: never log or store that
        self.redactor = redactor or Redactor()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inflight: dict[str, _Attempt] = {}  # entry id -> its running attempt
        self._busy: Counter[str] = Counter()  # lane -> threads still running a send
        self._abandoned: Counter[str] = Counter()  # lane -> of those, past their timeout
        # entry id -> attempts recorded (DELIVERED once gone): an outbox read that raced
        # with an outcome being recorded must not start the same delivery again
        self._recorded: dict[str, int] = {}
        self._warned_unknown: set[str] = set()
        self._warned_full: set[str] = set()
        self._next_due = IDLE_POLL
        # several instances (watchdog.cluster.coordinator): take a row before delivering it
        self.claim = claim

    def wake(self) -> None:
        self._wake.set()

    def reconfigure(
        self,
        notifiers: Mapping[str, Notifier],
        redactor: Redactor,
        delivery: DeliverySettings,
    ) -> None:
        """A reload's notifiers and delivery settings (``stop_grace`` is the service's)."""
        self.timeout = delivery.timeout.total_seconds()
        self.max_backoff = delivery.max_backoff
        self.warn_after = delivery.warn_after
        self.concurrency = delivery.concurrency
        self.set_notifiers(notifiers, redactor)

    def set_notifiers(
        self, notifiers: Mapping[str, Notifier], redactor: Redactor | None = None
    ) -> None:
        """Swap in reloaded notifiers; a dropped name's rows wait in the outbox until it is back.

        Sends in flight finish with the notifier they started with.
        """
        old = self.notifiers
        if self._thread is not None:  # in service: the old leave it, the new enter it
            lifecycle([n for n in old.values() if n not in notifiers.values()], "close")
            lifecycle([n for n in notifiers.values() if n not in old.values()], "start")
        self.notifiers = dict(notifiers)
        if redactor is not None:
            self.redactor = redactor
        self._warned_unknown.clear()
        self.wake()

    def start(self) -> None:
        lifecycle(self.notifiers.values(), "start")
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> int:
        """Deliver what can go within ``grace`` seconds; the rest stays in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        left = self.drain(grace)
        lifecycle(self.notifiers.values(), "close")
        return left

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except StorageFault:  # counted and logged once by the store; retried
                pass
            except Exception:
                log.exception("outbox delivery pass failed; retrying")
            self._wake.wait(timeout=max(0.02, min(IDLE_POLL, self._next_due)))
            self._wake.clear()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def drain(self, seconds: float) -> int:
        """Deliver until nothing is due or in flight, or ``seconds`` pass; returns what is left."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            started = self.deliver_due()
            if not started and not self.in_flight():
                break
            self._wake.wait(timeout=min(left, 0.05))
            self._wake.clear()
        return self.outbox.depth()

    def deliver_due(self) -> int:
        """One pass: settle timeouts, start what is due; returns how many started.

        Reads only what it may act on (each group's due head, for lanes with a free
        thread; notifications to report overdue), so a pass costs the same with a
        dead notifier's backlog of thousands as with an empty outbox.
        """
        self._expire()
        now = datetime.now(UTC)
        with self._lock:  # lanes that cannot start anything: full, or not configured
            skip = {lane for lane, busy in self._busy.items() if busy >= self.concurrency}
        skip |= self._warned_unknown
        entries = self.outbox.due(now, skip=sorted(skip))  # payloads read when started
        with self._lock:
            stale = {e.id for e in entries if e.attempts < self._recorded.get(e.id, -1)}
            self._recorded = {i: n for i, n in self._recorded.items() if i in stale}
            del stale  # re-checked below: an outcome may be recorded while we loop
        for header in self.outbox.overdue(now - self.warn_after):
            self._overdue(header, now)
        started = 0
        for entry in entries:
            with self._lock:
                running = entry.id in self._inflight or entry.attempts < self._recorded.get(
                    entry.id, -1
                )
            if not running and self._start(entry):
                started += 1
        OUTBOX_DEPTH.set(self.outbox.depth())
        next_retry = self.outbox.next_retry(now)
        next_due = IDLE_POLL
        if next_retry is not None:
            next_due = min(next_due, (next_retry - datetime.now(UTC)).total_seconds())
        with self._lock:
            for attempt in self._inflight.values():
                next_due = min(next_due, attempt.deadline - time.monotonic())
        self._next_due = next_due
        return started

    def _start(self, entry: OutboxEntry) -> bool:
        notifier = self.notifiers.get(entry.notifier)
        if notifier is None:
            if entry.notifier not in self._warned_unknown:
                self._warned_unknown.add(entry.notifier)
                log.warning(
                    "outbox holds notifications for notifier %r, which is not configured "
                    "or failed to start; they wait until it is",
                    entry.notifier,
                )
            return False
        with self._lock:  # a full lane first: a slow notifier's backlog costs no claims
            if self._busy[entry.notifier] >= self.concurrency:
                return False  # a burst: the next free thread takes it
        if self.claim is not None and not self.claim(entry):
            return False  # another live instance is delivering it
        loaded = self.outbox.with_payload(entry)
        if loaded is None:
            return False  # delivered meanwhile (by another instance)
        entry = loaded
        with self._lock:
            if self._busy[entry.notifier] >= self.concurrency:
                return False
            self._busy[entry.notifier] += 1
            attempt = _Attempt(entry, notifier, time.monotonic() + self.timeout)
            self._inflight[entry.id] = attempt
        threading.Thread(
            target=self._deliver, args=(attempt,), name=f"notify-{entry.notifier}", daemon=True
        ).start()
        return True

    def _deliver(self, attempt: _Attempt) -> None:
        notification = replace(attempt.entry.notification, attempt=attempt.entry.attempts + 1)
        try:
            _send(attempt.notifier, notification)
        except BaseException as exc:
            attempt.error = exc
        entry = attempt.entry
        with self._lock:
            late = attempt.settled
            attempt.settled = True
            if late:
                self._abandoned[entry.notifier] -= 1
                if not self._abandoned[entry.notifier]:
                    self._warned_full.discard(entry.notifier)
        recorded = None
        try:
            if late:
                if attempt.error is None:
                    self.outbox.delivered(entry.id)
                    recorded = DELIVERED
                    ACCEPTED_LATE.labels(entry.notifier).inc()
                    log.warning(
                        "notifier %s accepted a notification after its attempt had timed out",
                        entry.notifier,
                        extra=_ids(entry),
                    )
            else:
                recorded = self._settle(attempt)
        except StorageFault:  # counted and logged once by the store
            pass
        except Exception:
            if not self._stop.is_set():
                log.exception("recording the outcome of a delivery to %s failed", entry.notifier)
            else:  # a hung send returning after shutdown; its row stays for the next start
                log.warning("a delivery to %s finished after shutdown", entry.notifier)
        with self._lock:
            if recorded is not None:
                self._recorded[entry.id] = recorded
            if self._inflight.get(entry.id) is attempt:
                del self._inflight[entry.id]
            # the thread's slot frees only now: a late success must be recorded before the
            # lane has room to start its retry (which would deliver the notification again)
            self._busy[entry.notifier] -= 1
        self._wake.set()

    def _expire(self) -> None:
        now = time.monotonic()
        expired = []
        with self._lock:
            for attempt in self._inflight.values():
                if not attempt.settled and attempt.deadline <= now:
                    attempt.settled = True
                    self._abandoned[attempt.entry.notifier] += 1
                    expired.append(attempt)
            stuck = [
                (lane, hung)
                for lane, hung in self._abandoned.items()
                if hung >= self.concurrency and lane not in self._warned_full
            ]
            self._warned_full.update(lane for lane, _ in stuck)
        for lane, hung in stuck:
            log.error(
                "notifier %s: all %d delivery threads are stuck in sends that hung past the "
                "%gs timeout; its notifications wait, other notifiers go on",
                lane,
                hung,
                self.timeout,
            )
        for attempt in expired:
            entry = attempt.entry
            attempts = self._retry(entry, f"timed out after {self.timeout:g}s", None, "timeout")
            with self._lock:
                self._recorded[entry.id] = attempts
                if self._inflight.get(entry.id) is attempt:
                    del self._inflight[entry.id]

    def _settle(self, attempt: _Attempt) -> int:
        """Record an attempt's outcome; returns the attempts now recorded (or DELIVERED)."""
        entry, error = attempt.entry, attempt.error
        if isinstance(error, DeliveryError):
            text = self.redactor(str(error) or type(error).__name__)
            if error.permanent:
                return self._permanent(entry, text)
            return self._retry(entry, text, error.retry_after)
        if error is not None:
            text = self.redactor(f"{type(error).__name__}: {error}")
            return self._retry(entry, text, None)
        self.outbox.delivered(entry.id)
        DELIVERY_ATTEMPTS.labels(entry.notifier, "sent").inc()
        log.info(
            "delivered %s notification for %s to %s",
            "reminder" if entry.notification.repeat else entry.notification.status,
            entry.notification.alerts[0].rule if entry.notification.alerts else "?",
            entry.notifier,
            extra=_ids(entry),
        )
        return DELIVERED

    def _retry(
        self,
        entry: OutboxEntry,
        error: str,
        retry_after: float | None,
        outcome: Literal["failed", "timeout"] = "failed",
    ) -> int:
        attempts = entry.attempts + 1
        delay = (
            timedelta(seconds=max(0.0, retry_after))
            if retry_after is not None
            else backoff(attempts, self.max_backoff)
        )
        DELIVERY_ATTEMPTS.labels(entry.notifier, outcome).inc()
        log.warning(
            "notifier %s failed (attempt %d): %s; retrying in %.1fs",
            entry.notifier,
            attempts,
            error,
            delay.total_seconds(),
            extra=_ids(entry),
        )
        self.outbox.failed(entry.id, attempts, datetime.now(UTC) + delay, error)
        return attempts

    def _permanent(self, entry: OutboxEntry, error: str) -> int:
        """Retrying cannot help until someone fixes something: keep it, retry slowly."""
        attempts = entry.attempts + 1
        DELIVERY_ATTEMPTS.labels(entry.notifier, "rejected").inc()
        level = logging.WARNING if entry.permanent else logging.ERROR
        log.log(
            level,
            "notifier %s rejected notification %s permanently: %s; it stays in the outbox "
            "(videosdk-watchdog outbox list) and is retried every %gs",
            entry.notifier,
            entry.id,
            error,
            self.max_backoff.total_seconds(),
            extra=_ids(entry),
        )
        self.outbox.failed(
            entry.id, attempts, datetime.now(UTC) + self.max_backoff, error, permanent=True
        )
        return attempts

    def _overdue(self, header: OutboxEntry, now: datetime) -> None:
        entry = self.outbox.with_payload(header)
        if entry is None:
            return  # delivered meanwhile
        OUTBOX_OVERDUE.labels(entry.notifier).inc()
        alerts = entry.notification.alerts
        log.error(
            "notification %s for %s to %s is still undelivered after %s (%d attempts, "
            "last error: %s); it stays in the outbox: videosdk-watchdog outbox list",
            entry.id,
            alerts[0].rule if alerts else "?",
            entry.notifier,
            str(now - entry.created_at).split(".")[0],
            entry.attempts,
            entry.last_error or "none yet",
            extra=_ids(entry),
        )
        self.outbox.warned(entry.id, now)


def lifecycle(notifiers: Iterable[Notifier], method: str) -> None:
    """Call a notifier's optional ``start``/``close`` (e.g. Slack's click listener).

    A failure is logged, never raised: a listener that cannot start must not stop
    the notifier from sending, nor the daemon from running.
    """
    for notifier in notifiers:
        call = getattr(notifier, method, None)
        if not callable(call):
            continue
        try:
            call()
        except Exception:
            log.exception("notifier %r: %s() failed", notifier, method)


def _send(notifier: Notifier, notification: Notification) -> None:
    """In the lane's thread: what the plugin logs while sending names the participant."""
    alerts = notification.alerts
    if not alerts:
        notifier.send(notification)
        return
    with about(alerts[0].session_id, alerts[0].participant_id):
        notifier.send(notification)


def _ids(entry: OutboxEntry) -> dict[str, str]:
    alerts = entry.notification.alerts
    if not alerts:
        return {}
    return {"session_id": alerts[0].session_id, "participant_id": alerts[0].participant_id}
