"""Backtests: saved stats responses through the same engine the daemon runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from watchdog.config.problems import ConfigError, Problem
from watchdog.engine import backtest
from watchdog.engine.evaluate import Transition
from watchdog.engine.rules import RuleSet
from watchdog.videosdk.stats import ParticipantInfo, Sample, StatsShapeError, parse_stats


@dataclass
class _Series:
    info: ParticipantInfo
    samples: dict[Any, Sample] = field(default_factory=dict)


def _responses(path: Path) -> Iterator[Any]:
    """A file holds one stats response, a JSON list of them, or one per line."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError.single(str(path), number, f"not JSON: {exc.msg}") from None
        return
    if isinstance(data, list):
        yield from data
    else:
        yield data


def load_series(paths: Iterable[str | Path]) -> list[_Series]:
    """Merge responses per participant, de-duplicating samples by time."""
    series: dict[tuple[str, str], _Series] = {}
    for path in map(Path, paths):
        try:
            responses = list(_responses(path))
        except OSError as exc:
            raise ConfigError.single(str(path), None, f"cannot read: {exc.strerror}") from None
        for index, raw in enumerate(responses):
            try:
                stats = parse_stats(raw, "", "")
            except StatsShapeError as exc:
                raise ConfigError.single(str(path), None, f"response {index}: {exc}") from None
            key = (stats.info.session_id, stats.info.participant_id)
            entry = series.setdefault(key, _Series(stats.info))
            for sample in stats.samples:
                entry.samples[sample.time] = sample
    return list(series.values())


def replay(
    rules: RuleSet,
    paths: Iterable[str | Path],
    now: datetime | timedelta | None = None,
    *,
    left: bool = False,
) -> list[Transition]:
    """Transitions the daemon would have produced over the saved responses.

    ``now`` is the reference time at the end of the recording for absent-data
    rules: a time, or an offset after the newest sample in the files (the same
    answer whenever it runs); without it only gaps inside the recorded series count.
    ``left``: every participant left the call after its last recorded sample.
    """
    series = [
        (entry.info, [entry.samples[t] for t in sorted(entry.samples)])
        for entry in load_series(paths)
    ]
    if isinstance(now, timedelta):
        newest = max((samples[-1].time for _, samples in series if samples), default=None)
        now = newest + now if newest is not None else None
    return backtest.run(rules, series, now=now, left=range(len(series)) if left else ())


def problems_for_missing(paths: Iterable[str]) -> list[Problem]:
    return [Problem(p, None, "file not found") for p in paths if not Path(p).exists()]
