"""Rule files that test themselves, like ``promtool test rules``.

A rules file may carry ``tests:``: input series per participant and the
transitions expected at given sample times. ``videosdk-watchdog test-rules``
runs them through the same engine as the daemon and prints a readable diff
for every test that fails.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from watchdog.config.problems import ConfigError, Problem
from watchdog.config.yamlfile import load, validation_problems
from watchdog.durations import Duration, PositiveDuration, format_duration
from watchdog.engine import backtest
from watchdog.engine.evaluate import Transition
from watchdog.engine.rules import RuleSet, _Model, load_rules, unknown_metric
from watchdog.videosdk.derived import METRICS, derive
from watchdog.videosdk.stats import ParticipantInfo, Sample

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
_TOKEN = re.compile(r"^(?P<a>-?\d+(?:\.\d+)?)(?:(?P<sign>[+-])(?P<b>\d+(?:\.\d+)?))?x(?P<n>\d+)$")
_BLANKS = re.compile(r"^_x(?P<n>\d+)$")


MAX_SERIES = 10_000
"""Values in one series: a day of samples 10 s apart, and the bound on what ``1x100000000``
may cost."""
MAX_FILE_VALUES = 100_000
"""Values in all the series of one file's tests together."""


def expand(value: Any) -> list[float | None]:
    """promtool's expanding notation: ``1 2 _ 3x2 1+1x3 _x2`` (None is no sample).

    ``a+bxn`` is the n+1 values a, a+b, ... a+n*b; ``axn`` is a repeated n+1 times;
    ``_`` is a missing sample and ``_xn`` n of them. A YAML list of numbers works too.
    A series longer than MAX_SERIES is refused before it is built.
    """
    out: list[float | None] = []
    for item in value if isinstance(value, list) else [value]:
        if item is None:
            out.append(None)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(_finite(float(item), repr(item)))
        elif isinstance(item, str):
            out.extend(_words(item, len(out)))
        else:
            raise ValueError("a series is a string like '4 4 2x5 _ 3' or a list of numbers")
        if len(out) > MAX_SERIES:
            raise ValueError(f"a series holds at most {MAX_SERIES:,} values")
    return out


def _words(text: str, before: int) -> list[float | None]:
    """One string of promtool notation; ``before`` values precede it in the series."""
    result: list[float | None] = []
    for word in text.split():
        if word == "_":
            result.append(None)
        elif blanks := _BLANKS.match(word):
            result.extend([None] * _repeat(blanks["n"], 0, before + len(result)))
        elif match := _TOKEN.match(word):
            start = _finite(float(match["a"]), word)
            step = _finite(float(match["b"] or 0), word)
            step = -step if match["sign"] == "-" else step
            count = _repeat(match["n"], 1, before + len(result))
            result.extend(_finite(start + step * k, word) for k in range(count))
        else:
            try:
                number = float(word)
            except ValueError:
                raise ValueError(f"{word!r} is not a number, _, axn, a+bxn or _xn") from None
            result.append(_finite(number, word))
    return result


def _repeat(digits: str, extra: int, before: int) -> int:
    """How many values ``xn`` adds (n + extra), refused past MAX_SERIES before building them."""
    count = int(digits) + extra if len(digits) <= len(str(MAX_SERIES)) else MAX_SERIES + 1
    if before + count > MAX_SERIES:
        raise ValueError(f"a series holds at most {MAX_SERIES:,} values")
    return count


def _finite(number: float, word: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"{word!r} is not a finite number")
    return number


@dataclass
class _Budget:
    """What the series of one file may still hold, passed as validation context."""

    left: int = MAX_FILE_VALUES

    def take(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise ValueError(
                f"the tests of one file hold at most {MAX_FILE_VALUES:,} values: split them"
            )


def _series(value: Any, info: ValidationInfo) -> list[float | None]:
    """A series, charged to the file's budget when validation was given one."""
    values = expand(value)
    if isinstance(info.context, _Budget):
        info.context.take(len(values))
    return values


Series = Annotated[
    list[float | None],
    BeforeValidator(_series),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "promtool notation: '4 4 2x5 _ 1+1x3'"},
                {"type": "array", "items": {"type": ["number", "null"]}},
            ]
        }
    ),
]


class TestParticipant(_Model):
    """One participant's context and input series (one value per ``interval``)."""

    participant: str = Field(description="participant id")
    session: str = "test-session"
    meeting: str | None = "test-meeting"
    name: str | None = None
    device: str | None = None
    device_version: str | None = None
    sdk: str | None = None
    sdk_version: str | None = None
    country: str | None = None
    city: str | None = None
    region: str | None = None
    org: str | None = None
    asn: str | None = None
    series: dict[str, Series] = Field(description="metric name -> values")
    left: bool = Field(
        default=False,
        description="the participant leaves the call after its last sample: alerts still "
        "firing then resolve with reason 'left while degraded'",
    )

    @field_validator("series")
    @classmethod
    def _metrics(cls, value: dict[str, list[float | None]]) -> dict[str, list[float | None]]:
        for metric in value:
            if metric not in METRICS:
                raise ValueError(unknown_metric(metric))
        return value

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(
            session_id=self.session,
            participant_id=self.participant,
            meeting_id=self.meeting,
            name=self.name,
            device=self.device,
            device_version=self.device_version,
            sdk_name=self.sdk,
            sdk_version=self.sdk_version,
            country=self.country,
            city=self.city,
            region=self.region,
            asn=self.asn,
            org=self.org,
        )

    def samples(self, start: datetime, interval: timedelta) -> list[Sample]:
        """A sample per step where any metric has a value; steps with none are gaps."""
        length = max((len(values) for values in self.series.values()), default=0)
        out = []
        for step in range(length):
            values = {
                metric: value
                for metric, series in self.series.items()
                if step < len(series) and (value := series[step]) is not None
            }
            if values:
                derive(values)
                out.append(Sample(time=start + interval * step, values=values))
        return out


class Expected(_Model):
    """A transition the test expects: at an offset from the start of the series."""

    at: Duration
    rule: str
    state: Literal["firing", "resolved"]
    participant: str | None = Field(default=None, description="participant id (participant rules)")
    meeting: str | None = Field(default=None, description="meeting id (meeting-level rules)")
    value: float | None = None
    reason: str | None = Field(
        default=None, description="a resolution's reason, e.g. 'left while degraded'"
    )


class RuleTest(_Model):
    name: str
    interval: PositiveDuration = Field(
        default=timedelta(seconds=10), description="time between samples"
    )
    start: datetime = DEFAULT_START
    now: Duration | None = Field(
        default=None, description="reference time at the end (offset), for absent-data rules"
    )
    input: list[TestParticipant]
    expect: list[Expected] = Field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    test: RuleTest
    line: int | None
    missing: list[str]
    unexpected: list[str]

    @property
    def passed(self) -> bool:
        return not self.missing and not self.unexpected


Row = tuple[timedelta, str, str, str]
Produced = tuple[Row, float, str | None]  # a transition: its row, value and reason


def _row_text(row: Row, value: float | None, reason: str | None = None) -> str:
    at, rule, who, state = row
    shown = f"  value={value:g}" if value is not None else ""
    why = f"  ({reason})" if reason is not None else ""
    return f"{format_duration(at):>8}  {rule}  {who}  {state}{shown}{why}"


def load_tests(path: str | Path, rules: RuleSet) -> list[tuple[RuleTest, int | None]]:
    """The file's ``tests:``, validated; every problem at once as ConfigError."""
    doc = load(path)
    items = doc.data.get("tests") if isinstance(doc.data, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError([doc.problem(("tests",), "'tests' must be a list of test cases")])
    problems: list[Problem] = []
    tests = []
    names = set(rules.by_name())
    budget = _Budget()
    for index, item in enumerate(items):
        loc = ("tests", index)
        try:
            test = RuleTest.model_validate(item, context=budget)
        except ValidationError as exc:
            problems.extend(validation_problems(doc, exc, base=loc, model=RuleTest))
            continue
        for number, expected in enumerate(test.expect):
            if expected.rule not in names:
                problems.append(
                    doc.problem(
                        (*loc, "expect", number, "rule"),
                        f"test {test.name!r}: expects unknown rule {expected.rule!r}",
                    )
                )
        tests.append((test, doc.line_for(loc)))
    if problems:
        raise ConfigError(problems)
    return tests


def _who(transition: Transition) -> str:
    if transition.scope == "meeting":
        return f"meeting {transition.info.meeting_id or transition.info.session_id}"
    return transition.info.participant_id


def _matches(item: Produced, row: Row, expected: Expected) -> bool:
    """Same time, rule, state and participant (any one if the test names none); the value
    and reason where the test gives them."""
    (at, rule, who, state), got, reason = item
    if (at, rule, state) != (row[0], row[1], row[3]) or (row[2] and who != row[2]):
        return False
    if expected.reason is not None and reason != expected.reason:
        return False
    value = expected.value
    return value is None or math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-6)


def run_test(rules: RuleSet, test: RuleTest, line: int | None = None) -> Outcome:
    series = [(p.info(), p.samples(test.start, test.interval)) for p in test.input]
    now = test.start + test.now if test.now is not None else None
    left = [index for index, p in enumerate(test.input) if p.left]
    produced = backtest.run(rules, series, now=now, left=left)
    got: list[Produced] = [
        ((t.time - test.start, t.rule.name, _who(t), t.state), t.value, t.reason) for t in produced
    ]
    missing: list[str] = []
    unmatched = list(got)
    for expected in test.expect:
        who = f"meeting {expected.meeting}" if expected.meeting else (expected.participant or "")
        row: Row = (expected.at, expected.rule, who, expected.state)
        found = next((item for item in unmatched if _matches(item, row, expected)), None)
        if found is None:
            missing.append(_row_text(row, expected.value, expected.reason))
        else:
            unmatched.remove(found)
    unexpected = [_row_text(row, value, reason) for row, value, reason in unmatched]
    return Outcome(test, line, missing, unexpected)


def run_file(path: str | Path) -> tuple[list[Outcome], RuleSet]:
    """Load (ConfigError on any problem) and run every test in the file."""
    rules = load_rules([path])
    tests = load_tests(path, rules)
    return [run_test(rules, test, line) for test, line in tests], rules


def report(path: str | Path, outcomes: list[Outcome]) -> list[str]:
    lines = []
    for outcome in outcomes:
        where = f"{path}:{outcome.line}" if outcome.line else str(path)
        if outcome.passed:
            lines.append(f"PASS  {outcome.test.name}")
            continue
        lines.append(f"FAIL  {outcome.test.name}  ({where})")
        if outcome.missing:
            lines.append("  expected, not produced:")
            lines.extend(f"    - {row}" for row in outcome.missing)
        if outcome.unexpected:
            lines.append("  produced, not expected:")
            lines.extend(f"    + {row}" for row in outcome.unexpected)
    failed = sum(not o.passed for o in outcomes)
    lines.append(f"{path}: {len(outcomes)} tests, {failed} failed")
    return lines
