"""Backtests: saved stats responses through the same engine the daemon runs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.engine import AlertState, Transition, evaluate
from watchdog.problems import ConfigError, Problem
from watchdog.rules import RuleSet
from watchdog.stats import ParticipantInfo, Sample, StatsShapeError, parse_stats


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


def replay(rules: RuleSet, paths: Iterable[str | Path]) -> list[Transition]:
    transitions: list[Transition] = []
    for entry in load_series(paths):
        samples = [entry.samples[t] for t in sorted(entry.samples)]
        states: dict[str, AlertState] = {}
        transitions.extend(evaluate(rules, entry.info, samples, states).transitions)
    transitions.sort(key=lambda t: (t.time, t.info.session_id, t.info.participant_id, t.rule.name))
    return transitions


def problems_for_missing(paths: Iterable[str]) -> list[Problem]:
    return [Problem(p, None, "file not found") for p in paths if not Path(p).exists()]
