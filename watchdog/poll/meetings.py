"""The states of meeting-level rules, one per (rule, meeting), between cycles.

Meeting-level rules run where the meetings' participants all are: on the one
instance, or on several instances on the leader only. :class:`MeetingStates`
is their one owner; a new leader reloads them (:meth:`reload`) to continue
from what the previous one committed.
"""

from __future__ import annotations

import threading

from watchdog.engine.evaluate import AlertState, MeetingKey
from watchdog.state.polls import PollState


class MeetingStates:
    def __init__(self, polls: PollState) -> None:
        self._polls = polls
        self._lock = threading.Lock()
        self._states: dict[MeetingKey, AlertState] = polls.load_meeting_states()

    def get(self) -> dict[MeetingKey, AlertState]:
        with self._lock:
            return self._states

    def set(self, states: dict[MeetingKey, AlertState]) -> None:
        with self._lock:
            self._states = states

    def reload(self) -> None:
        """Continue from the committed states (this instance just became the leader)."""
        states = self._polls.load_meeting_states()
        with self._lock:
            self._states = states
