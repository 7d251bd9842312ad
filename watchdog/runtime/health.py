"""Is the daemon making progress, and is it doing its job? What systemd and /healthz ask.

Two different questions with two different answers:

- *progress* (systemd's watchdog): did a poll finish recently? A wedged
  scheduler or a hung poll loop stops it, and a restart can fix that. VideoSDK
  being down does not stop it: a restart would not bring VideoSDK back.
- *health* (``/healthz``): did a poll cycle *succeed* recently? That fails
  when VideoSDK refuses us or is unreachable, which is what a load balancer
  or an uptime check should hear about.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from watchdog.config.settings import Settings

SLACK_SECONDS = 30.0


def stale_after(settings: Settings) -> float:
    """Seconds after which a missing successful cycle makes /healthz fail."""
    if settings.health.stale_after is not None:
        return settings.health.stale_after.total_seconds()
    return 3 * settings.poll.interval.total_seconds()


def stall_after(settings: Settings) -> float:
    """Seconds without a finished poll after which systemd's watchdog is no longer fed.

    By default long enough for the slowest legitimate poll (every retry timing
    out and waiting the longest Retry-After, twice for a token re-mint) after
    a full interval, so a slow API never gets a healthy daemon killed.
    """
    if settings.health.stall_after is not None:
        return settings.health.stall_after.total_seconds()
    api = settings.videosdk
    attempts = api.retries + 1
    one_try = api.connect_timeout + api.read_timeout
    waits = api.retries * max(30.0, float(api.max_retry_after))
    return settings.poll.interval.total_seconds() + 2 * (attempts * one_try + waits) + SLACK_SECONDS


@dataclass(frozen=True, slots=True)
class CycleSummary:
    ended: datetime
    seconds: float
    polled: int
    failed: int

    @property
    def succeeded(self) -> bool:
        """Some poll worked (or there was nobody to poll): VideoSDK answered us."""
        return self.polled == 0 or self.failed < self.polled


class Liveness:
    """What the poll loop last achieved; written by the scheduler, read by everyone."""

    def __init__(self, stale_after: float, stall_after: float) -> None:
        self.stale_after = stale_after
        self.stall_after = stall_after
        self.started = time.monotonic()
        self.last_cycle: CycleSummary | None = None
        self._last_cycle_at: float | None = None
        self._last_success_at: float | None = None
        self._lock = threading.Lock()

    def reconfigure(self, stale_after: float, stall_after: float) -> None:
        """A reload's poll interval moves both limits."""
        with self._lock:
            self.stale_after = stale_after
            self.stall_after = stall_after

    def cycle_done(self, summary: CycleSummary) -> None:
        with self._lock:
            now = time.monotonic()
            self.last_cycle = summary
            self._last_cycle_at = now
            if summary.succeeded:
                self._last_success_at = now

    def progressing(self, last_poll: float, now: float | None = None) -> bool:
        """True while polls or cycles keep finishing (``last_poll`` is monotonic time)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            latest = max(self.started, last_poll, self._last_cycle_at or 0.0)
        return now - latest <= self.stall_after

    def health(self, last_poll: float, now: float | None = None) -> tuple[bool, str]:
        """(healthy, one-line reason) for /healthz."""
        now = time.monotonic() if now is None else now
        with self._lock:
            success, cycle = self._last_success_at, self.last_cycle
        if not self.progressing(last_poll, now):
            idle = now - max(last_poll, self.started)
            return False, f"poll loop stalled: no poll finished for {idle:.0f}s"
        limit = f"(limit {self.stale_after:g}s)"
        if success is None:
            waited = now - self.started
            if waited <= self.stale_after:
                return True, f"starting: no poll cycle has finished yet ({waited:.0f}s)"
            failed = f"; last cycle: {cycle.failed} of {cycle.polled} polls failed" if cycle else ""
            return False, f"no successful poll cycle since start {waited:.0f}s ago {limit}{failed}"
        age = now - success
        if age > self.stale_after:
            failed = f"; last cycle: {cycle.failed} of {cycle.polled} polls failed" if cycle else ""
            return False, f"last successful poll cycle was {age:.0f}s ago {limit}{failed}"
        return True, f"ok: last successful poll cycle {age:.0f}s ago"


def status_line(watched: int, firing: int, pending: int, cycle: CycleSummary | None) -> str:
    """systemd's STATUS=: what ``systemctl status`` shows at a glance."""
    text = f"watching {_count(watched, 'participant')}, {_count(firing, 'alert')} firing"
    if pending:
        text += f", {_count(pending, 'notification')} waiting"
    if cycle is None:
        return text + "; first poll cycle running"
    ended = cycle.ended.astimezone(UTC).strftime("%H:%M:%S UTC")
    return (
        f"{text}; last poll cycle {ended}: {cycle.polled - cycle.failed}/{cycle.polled} ok "
        f"in {cycle.seconds:.1f}s"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
