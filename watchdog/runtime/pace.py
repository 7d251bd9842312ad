"""Does polling keep up with ``poll.interval``?

A cycle that takes longer than the interval makes every poll after it late: the scheduler
starts the next cycle as soon as this one ends, never two at once. Each such cycle is
counted (``watchdog_cycle_overruns_total``); the log says so once when cycles fall behind,
once more if they keep falling behind, and once when they keep up again, so a one-off slow
cycle (a fresh start reading every participant's recent history) is one line and an
instance watching more than it can poll is not a line per cycle.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from prometheus_client import Counter

from watchdog.durations import format_duration

log = logging.getLogger(__name__)

CYCLE_OVERRUNS = Counter(
    "watchdog_cycle_overruns",
    "Poll cycles that took longer than poll.interval: the polls after them ran late",
)
STILL_BEHIND = 3  # overruns in a row after which the log says it again, as a lasting state


class Pace:
    """Cycle durations against the interval; fed by the scheduler's poll job alone."""

    def __init__(self, interval: timedelta) -> None:
        self.interval = interval  # a reload sets it
        self.behind = 0  # cycles in a row that overran

    def cycle_done(self, seconds: float) -> None:
        if seconds <= self.interval.total_seconds():
            if self.behind:
                log.info(
                    "poll cycles keep up again: %.1fs of the %s interval, after %d that overran",
                    seconds,
                    format_duration(self.interval),
                    self.behind,
                )
            self.behind = 0
            return
        CYCLE_OVERRUNS.inc()
        self.behind += 1
        interval = format_duration(self.interval)
        if self.behind == 1:
            log.warning(
                "poll cycle took %.1fs, longer than poll.interval (%s): the polls after it "
                "run late. A cycle that meets many participants for the first time (a fresh "
                "start, a wave of joins) reads their recent history and costs about twice a "
                "normal one; if the next cycles keep up, nothing needs doing",
                seconds,
                interval,
            )
        elif self.behind == STILL_BEHIND:
            log.warning(
                "poll cycles keep taking longer than poll.interval (%s; the last %.1fs, %d in "
                "a row): this instance watches more participants than it can poll in time. "
                "Raise poll.interval, share the participants with another instance (Running "
                "several instances in the docs) or give it a faster CPU",
                interval,
                seconds,
                self.behind,
            )
