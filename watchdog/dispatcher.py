"""Delivers the outbox: each notifier in its own lane, with timeouts and backoff.

A notification leaves the outbox only when its notifier accepted it. A
notifier that raises, hangs or rate-limits only delays its own lane; alerts
for one fingerprint go out in the order they were written (a "resolved"
never overtakes its "firing").
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from watchdog.alerts import Notification
from watchdog.logs import about
from watchdog.notifiers import DeliveryError, Notifier
from watchdog.store import OutboxEntry, Store
from watchdog.telemetry import NOTIFICATIONS, OUTBOX_DEPTH

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0


def backoff(attempts: int, cap: timedelta) -> timedelta:
    """Exponential with full jitter in its upper half: 1s, 2s, 4s ... up to ``cap``."""
    ceiling = min(cap.total_seconds(), FIRST_BACKOFF * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


class Dispatcher:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        timeout: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(minutes=5),
    ) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.timeout = timeout.total_seconds()
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # one small pool per notifier: a hung send only ever occupies its own lane
        self._lanes = {
            name: ThreadPoolExecutor(2, thread_name_prefix=f"notify-{name}") for name in notifiers
        }
        self._warned_unknown: set[str] = set()

    def wake(self) -> None:
        self._wake.set()

    def set_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        """Swap in reloaded notifiers; a dropped name's rows wait in the outbox until it is back."""
        for name in notifiers:
            if name not in self._lanes:
                self._lanes[name] = ThreadPoolExecutor(2, thread_name_prefix=f"notify-{name}")
        self.notifiers = dict(notifiers)
        self._warned_unknown.clear()
        self.wake()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> int:
        """Deliver what can go within ``grace`` seconds; the rest stays in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=grace + self.timeout)
        remaining = self.drain(grace)
        for lane in self._lanes.values():
            lane.shutdown(wait=False, cancel_futures=True)
        return remaining

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:
                log.exception("outbox delivery pass failed; retrying")
            self._wake.wait(timeout=1.0)
            self._wake.clear()

    def drain(self, seconds: float) -> int:
        """Deliver until the outbox has nothing due or ``seconds`` pass; returns what is left."""
        deadline = datetime.now(UTC) + timedelta(seconds=seconds)
        while (left := (deadline - datetime.now(UTC)).total_seconds()) > 0:
            if self.deliver_due(timeout=left) == 0:
                break
        return self.store.outbox_depth()

    def deliver_due(self, timeout: float | None = None) -> int:
        """One pass over the outbox; returns how many were delivered."""
        entries = self.store.outbox()
        OUTBOX_DEPTH.set(len(entries))
        now = datetime.now(UTC)
        lanes: dict[str, list[OutboxEntry]] = {}
        blocked: set[tuple[str, str]] = set()
        for entry in entries:
            key = (entry.notifier, entry.fingerprint)
            if key in blocked:
                continue
            blocked.add(key)  # later entries of this alert wait for this one
            if entry.next_attempt_at <= now:
                lanes.setdefault(entry.notifier, []).append(entry)
        pending: dict[Future[None], OutboxEntry] = {}
        for lane in lanes.values():
            for entry in lane:
                future = self._submit(entry)
                if future is not None:
                    pending[future] = entry
        delivered = 0
        done, late = wait(pending, timeout=min(self.timeout, timeout or self.timeout))
        for future in done:
            delivered += self._settle(pending[future], future)
        for future in late:
            self._retry(pending[future], f"timed out after {self.timeout:g}s", None)
        if delivered:
            OUTBOX_DEPTH.set(self.store.outbox_depth())
        return delivered

    def _submit(self, entry: OutboxEntry) -> Future[None] | None:
        notifier = self.notifiers.get(entry.notifier)
        if notifier is None:
            if entry.notifier not in self._warned_unknown:
                self._warned_unknown.add(entry.notifier)
                log.warning(
                    "outbox holds notifications for notifier %r, which is not configured; "
                    "they wait until it is",
                    entry.notifier,
                )
            return None
        notification = replace(entry.notification, attempt=entry.attempts + 1)
        return self._lanes[entry.notifier].submit(_send, notifier, notification)

    def _settle(self, entry: OutboxEntry, future: Future[None]) -> bool:
        ids = _ids(entry)
        try:
            future.result()
        except DeliveryError as exc:
            self._retry(entry, str(exc) or type(exc).__name__, exc.retry_after)
            return False
        except Exception as exc:
            self._retry(entry, f"{type(exc).__name__}: {exc}", None)
            return False
        self.store.delivered(entry.id)
        NOTIFICATIONS.labels(entry.notifier, "sent").inc()
        log.info(
            "delivered %s notification for %s to %s",
            entry.notification.status,
            entry.notification.alerts[0].rule if entry.notification.alerts else "?",
            entry.notifier,
            extra=ids,
        )
        return True

    def _retry(self, entry: OutboxEntry, error: str, retry_after: float | None) -> None:
        attempts = entry.attempts + 1
        delay = (
            timedelta(seconds=retry_after)
            if retry_after is not None
            else backoff(attempts, self.max_backoff)
        )
        NOTIFICATIONS.labels(entry.notifier, "failed").inc()
        log.warning(
            "notifier %s failed (attempt %d): %s; retrying in %.1fs",
            entry.notifier,
            attempts,
            error,
            delay.total_seconds(),
            extra=_ids(entry),
        )
        self.store.failed(entry.id, attempts, datetime.now(UTC) + delay, error)


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
