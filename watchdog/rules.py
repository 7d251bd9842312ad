"""Rule files: the operator's main interface, validated with a line for every mistake."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from watchdog.durations import Duration
from watchdog.fields import SAMPLE_FIELDS
from watchdog.problems import ConfigError, Problem
from watchdog.yamlfile import Document, format_loc, load, parse

Op = Literal["<", "<=", ">", ">=", "==", "!="]
Severity = Literal["info", "warning", "critical"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


class Rule(BaseModel):
    """One threshold rule; ``for`` follows Prometheus's pending/firing semantics on sample times."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    metric: str
    op: Op
    threshold: float
    for_: Duration = Field(default=timedelta(0), alias="for")
    severity: Severity = "warning"
    notify: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("use letters, digits and - _ . : (starting with a letter or digit)")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in SAMPLE_FIELDS:
            known = ", ".join(SAMPLE_FIELDS)
            raise ValueError(f"unknown metric {value!r}; valid metrics: {known}")
        return value

    @field_validator("notify", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    sources: tuple[str, ...] = ()
    lines: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def __iter__(self) -> Any:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def by_name(self) -> dict[str, Rule]:
        return {rule.name: rule for rule in self.rules}


def _rule_label(item: Any, index: int) -> str:
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        return f"rule {item['name']!r}"
    return f"rules[{index}]"


def _validate_rules(doc: Document) -> tuple[list[Rule], list[Problem], dict[str, int | None]]:
    problems: list[Problem] = []
    rules: list[Rule] = []
    lines: dict[str, int | None] = {}
    data = doc.data
    if data is None:
        return rules, problems, lines
    if not isinstance(data, dict) or set(data) - {"rules", "tests"}:
        extra = sorted(set(data) - {"rules", "tests"}) if isinstance(data, dict) else []
        where = doc.line_for((extra[0],)) if extra else 1
        message = (
            f"unknown top-level key {extra[0]!r}; a rules file has 'rules:'"
            if extra
            else "a rules file is a mapping with a 'rules:' list"
        )
        problems.append(Problem(doc.path, where, message))
        return rules, problems, lines
    items = data.get("rules") or []
    if not isinstance(items, list):
        problems.append(doc.problem(("rules",), "'rules' must be a list of rules"))
        return rules, problems, lines
    for index, item in enumerate(items):
        loc = ("rules", index)
        label = _rule_label(item, index)
        if not isinstance(item, dict):
            problems.append(doc.problem(loc, f"{label}: a rule is a mapping (name, metric, ...)"))
            continue
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                at = (*loc, *error["loc"])
                message = error["msg"].removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = "unknown field"
                elif error["type"] == "missing":
                    message = "is required"
                elif error["type"] == "literal_error" and error["loc"] == ("op",):
                    message = f"unknown operator; use one of {' '.join(OPERATORS)}"
                problems.append(
                    doc.problem(at, f"{label}: {format_loc(tuple(error['loc']))} {message}")
                )
            continue
        if rule.name in lines:
            problems.append(
                doc.problem(
                    (*loc, "name"),
                    f"duplicate rule name {rule.name!r} (first defined at line {lines[rule.name]})",
                )
            )
            continue
        lines[rule.name] = doc.line_for(loc)
        rules.append(rule)
    return rules, problems, lines


def check_notifiers(
    ruleset: RuleSet, notifiers: Iterable[str], docs: dict[str, Document] | None = None
) -> list[Problem]:
    """Every ``notify`` name must exist in the config's ``notifiers:``."""
    known = set(notifiers)
    problems = []
    for rule in ruleset.rules:
        for name in rule.notify:
            if name not in known:
                file, line = ruleset.lines.get(rule.name, ("rules", None))
                hint = ", ".join(sorted(known)) or "none configured"
                problems.append(
                    Problem(
                        file,
                        line,
                        f"rule {rule.name!r}: notify names unknown notifier {name!r} "
                        f"(configured: {hint})",
                    )
                )
    return problems


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Load and validate rule files; all problems at once as a ConfigError."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    lines: dict[str, tuple[str, int | None]] = {}
    sources = []
    for path in paths:
        sources.append(str(path))
        try:
            doc = load(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        file_rules, file_problems, file_lines = _validate_rules(doc)
        problems.extend(file_problems)
        for rule in file_rules:
            if rule.name in lines:
                first = lines[rule.name]
                problems.append(
                    Problem(
                        str(path),
                        file_lines[rule.name],
                        f"duplicate rule name {rule.name!r} "
                        f"(first defined at {first[0]}:{first[1]})",
                    )
                )
                continue
            lines[rule.name] = (str(path), file_lines[rule.name])
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return RuleSet(rules=tuple(rules), sources=tuple(sources), lines=lines)


def parse_rules(text: str, path: str = "<rules>") -> RuleSet:
    """Rules from a string (tests, the demo)."""
    doc = parse(text, path)
    rules, problems, lines = _validate_rules(doc)
    if problems:
        raise ConfigError(problems)
    return RuleSet(
        rules=tuple(rules), sources=(path,), lines={k: (path, v) for k, v in lines.items()}
    )
