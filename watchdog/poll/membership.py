"""Who polls what, and how a result is fenced: the one seam between one instance and many.

The poller is given a :class:`Membership` at build time. :class:`Alone` is the
single instance: it polls every watched participant, writes unfenced and runs
meeting-level rules itself. ``watchdog.cluster.coordinator.Cluster`` is the
other implementation: it polls the participants it leases, fences each write by
the lease's generation and runs meeting-level rules only while it leads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from watchdog.config.settings import WatchedParticipant
from watchdog.state.leases import Fence
from watchdog.state.rows import Key

log = logging.getLogger(__name__)


class Membership(Protocol):
    """This instance's part among the instances sharing the state database."""

    @property
    def shared(self) -> bool:
        """Other instances poll too: meeting rules read their committed participants."""

    def targets(self) -> Sequence[WatchedParticipant]:
        """Whom this instance polls this cycle."""

    def fence(self, key: Key) -> Fence | None:
        """What a write for ``key`` is fenced with (None: unfenced)."""

    def lost(self, key: Key, why: str) -> None:
        """A write for ``key`` was refused: another instance holds its lease now."""

    def leads(self) -> bool:
        """This instance runs discovery, meeting rules and the alert manager."""

    def leader_fence(self) -> int | None:
        """What a leader-only write is fenced with (None: unfenced)."""

    def lost_leadership(self, why: str) -> None:
        """A leader-only write was refused: another instance leads now."""

    def share_places(self, mine: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """Tell the other instances this one's place loads ((degraded, meetings) per
        region or network); returns theirs, summed per place (empty: no others)."""


class Alone:
    """The only instance: every watched participant is its own, nothing is fenced."""

    shared = False

    def __init__(self, targets: Callable[[], Sequence[WatchedParticipant]]) -> None:
        self._targets = targets

    def targets(self) -> Sequence[WatchedParticipant]:
        return self._targets()

    def fence(self, key: Key) -> Fence | None:
        return None

    def lost(self, key: Key, why: str) -> None:  # unfenced writes are never refused
        log.warning("%s", why, extra={"session_id": key[0], "participant_id": key[1]})

    def leads(self) -> bool:
        return True

    def leader_fence(self) -> int | None:
        return None

    def lost_leadership(self, why: str) -> None:
        log.warning("%s", why)

    def share_places(self, mine: Mapping[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        return {}  # nobody else sees meetings
