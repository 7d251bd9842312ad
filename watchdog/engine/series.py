"""The rule engine's per-metric history: two typed arrays instead of a deque of tuples.

At 10,000 watched participants the engine keeps dozens of points for each of a
participant's metrics. A deque of ``(datetime, float)`` tuples costs 624 bytes
empty and ~80 bytes a point; two ``array`` columns cost 16 bytes a point, copy
with one ``memcpy`` each and serialise as two plain JSON lists.

Times are integer microseconds since the Unix epoch, the resolution of
``datetime`` itself, so a window boundary such as ``start < t <= end`` decides
exactly as the datetimes it stands for would; float seconds would round and
flip points that sit on a boundary.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
INT64 = range(-(2**63), 2**63)  # what an array("q") holds


def micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact integer arithmetic)."""
    return (moment - EPOCH) // MICROSECOND


def duration_micros(duration: timedelta) -> int:
    """A duration in microseconds, exact, to compare against ``micros`` differences."""
    return duration // MICROSECOND


def _times() -> array[int]:
    return array("q")


def _values() -> array[float]:
    return array("d")


@dataclass(slots=True)
class Series:
    """One metric's recent points, oldest first, times strictly increasing.

    The engine appends only samples newer than any it has seen, and ``load``
    drops what would break the order, so windows can bisect instead of scan.
    """

    times: array[int] = field(default_factory=_times)  # microseconds since the epoch
    values: array[float] = field(default_factory=_values)

    def __len__(self) -> int:
        return len(self.times)

    def append(self, time: int, value: float) -> None:
        self.times.append(time)
        self.values.append(value)

    def trim(self, horizon: int, keep: int) -> None:
        """Drop points ``horizon`` or more before the newest, but never the newest ``keep``.

        Once after a batch of appends leaves what trimming after each append would
        have: the cutoff only moves forward, and no window reaches past the horizon.
        """
        times = self.times
        if len(times) > keep and times[0] <= (cutoff := times[-1] - horizon):
            drop = min(bisect_right(times, cutoff), len(times) - keep)
            self.times = times[drop:]  # new exact-size arrays: appends over-allocate
            self.values = self.values[drop:]

    def window(self, start: int, end: int) -> array[float]:
        """Values with ``start < time <= end``."""
        times = self.times
        return self.values[bisect_right(times, start) : bisect_right(times, end)]

    def span(self, start: int, end: int) -> tuple[array[int], array[float]]:
        """Times and values with ``start < time <= end``."""
        times = self.times
        low, high = bisect_right(times, start), bisect_right(times, end)
        return times[low:high], self.values[low:high]

    def last(self, count: int) -> tuple[float, ...]:
        """The newest ``count`` values (fewer if there are fewer), oldest first."""
        return tuple(self.values[-count:]) if count > 0 else ()

    def copy(self) -> Series:
        return Series(self.times[:], self.values[:])

    def to_json(self) -> list[list[Any]]:
        """``[[time, ...], [value, ...]]``: ints and floats, nothing to format per point."""
        return [self.times.tolist(), self.values.tolist()]

    @classmethod
    def from_json(cls, data: Any) -> Series:
        """Tolerant: a damaged point is dropped, never the daemon."""
        if not (isinstance(data, list) and len(data) == 2):
            return cls()
        times, values = data
        if not (isinstance(times, list) and isinstance(values, list)):
            return cls()
        if len(times) == len(values):
            try:
                series = cls(array("q", times), array("d", values))
            except (TypeError, OverflowError):
                pass  # some point is damaged: keep the others, below
            else:
                if all(a < b for a, b in pairwise(series.times)):
                    return series
        return cls.load(
            (time if isinstance(time, int) and time in INT64 else None, value)
            for time, value in zip(times, values, strict=False)
        )

    @classmethod
    def load(cls, points: Iterable[tuple[int | None, Any]]) -> Series:
        """Points from stored data: each needs a time later than the previous and a number."""
        series = cls()
        for time, value in points:
            if time is None or not isinstance(value, int | float):
                continue
            if series.times and time <= series.times[-1]:
                continue
            series.append(time, float(value))
        return series
