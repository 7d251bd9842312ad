"""Faults of the state database's storage: counted, logged once an episode, told to /healthz.

A disk that fills up or turns read-only, a state file deleted or replaced under the
daemon, a corrupt page, a PostgreSQL server gone: each makes writes fail (or, for a
deleted file, vanish into an inode nobody will open again). The backend that ran the
statement (watchdog.state.database) reports each such failure here and raises it as a
:class:`StorageFault`, which callers let go without a traceback: the first failure
opens a *fault episode* with one ERROR line (a new cause within it adds one more),
the first poll cycle without a failure closes it with one line saying what it cost,
and nothing in between repeats. The service asks :meth:`StorageFaults.cycle_done`
after every poll cycle and gives up after ``state.max_failed_cycles`` in a row.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from watchdog.obs.telemetry import STATE_FAILED_CYCLES, STATE_FAULTS

log = logging.getLogger(__name__)

# reason (the metric's label) -> what the operator reads, and what to do about it
REASONS: dict[str, tuple[str, str]] = {
    "disk_full": ("disk full", "free space on its file system"),
    "read_only": (
        "read-only",
        "make it writable again (a file system that turned read-only after an error "
        "needs checking and remounting)",
    ),
    "io_error": ("I/O error", "check the disk (dmesg) and the file"),
    "corrupt": (
        "corrupt",
        "stop the daemon, move the file aside and restore a backup (or let a new one be "
        "created at the next start)",
    ),
    "locked": ("locked by another process", "find the process that holds it (fuser, lsof)"),
    "cannot_open": ("cannot open", "check the path and its permissions"),
    "deleted": ("file deleted", "it was deleted while the daemon ran: a restart creates a new one"),
    "replaced": (
        "file replaced",
        "another file took its place while the daemon ran: a restart opens that one",
    ),
    "unreachable": ("unreachable", "check the PostgreSQL server and the network to it"),
    "other": ("failed", "see the message"),
}


class StorageFault(Exception):
    """A state database operation failed because of its storage (see ``REASONS``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{REASONS[reason][0]}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def hint(self) -> str:
        return REASONS[self.reason][1]


@dataclass(slots=True)
class _Episode:
    last: StorageFault
    since: float  # monotonic
    reasons: set[str] = field(default_factory=set)
    failures: int = 0


class StorageFaults:
    """The one owner of "is the state database's storage failing?", for one database.

    ``name`` is the database as messages show it (a path, or a URL without password).
    Thread-safe: polls, deliveries and the alert manager report from their own threads.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed_cycles = 0  # poll cycles in a row with a fault
        self._lock = threading.Lock()
        self._episode: _Episode | None = None
        self._cycle_failed = False

    def report(self, fault: StorageFault) -> StorageFault:
        """Count a failure (log it if it opens an episode or adds a cause); returns it."""
        STATE_FAULTS.labels(fault.reason).inc()
        with self._lock:
            self._cycle_failed = True
            episode = self._episode
            if episode is None:
                episode = self._episode = _Episode(fault, time.monotonic())
            new = fault.reason not in episode.reasons
            episode.last = fault
            episode.reasons.add(fault.reason)
            episode.failures += 1
        if new:
            log.error(
                "state database %s: %s; %s. /healthz fails until a poll cycle works again",
                self.name,
                fault,
                fault.hint,
            )
        return fault

    def cycle_done(self) -> int:
        """A poll cycle ended: how many in a row had a fault (0 ends an episode)."""
        with self._lock:
            failed, self._cycle_failed = self._cycle_failed, False
            if failed:
                self.failed_cycles += 1
            else:
                self.failed_cycles = 0
            count, episode = self.failed_cycles, None
            if not failed:
                episode, self._episode = self._episode, None
        STATE_FAILED_CYCLES.set(count)
        if episode is not None:
            log.warning(
                "state database %s works again after %.0fs (%s; %s)",
                self.name,
                time.monotonic() - episode.since,
                _failed(episode.failures),
                ", ".join(REASONS[r][0] for r in sorted(episode.reasons)),
            )
        return count

    def ongoing(self, reason: str) -> bool:
        """Is the current episode (if any) one with this cause?"""
        with self._lock:
            return self._episode is not None and reason in self._episode.reasons

    @property
    def hint(self) -> str:
        """What to do about the current episode's latest fault."""
        with self._lock:
            return self._episode.last.hint if self._episode is not None else ""

    @property
    def fault(self) -> str | None:
        """The current episode, for /healthz and STATUS=; None while the storage works."""
        with self._lock:
            episode = self._episode
        if episode is None:
            return None
        age = time.monotonic() - episode.since
        return f"{episode.last} (for {age:.0f}s, {_failed(episode.failures)})"


def _failed(count: int) -> str:
    return f"{count} failed operation{'' if count == 1 else 's'}"
