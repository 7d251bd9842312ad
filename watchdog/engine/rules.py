"""Rule files: the operator's main interface, validated with a line for every mistake."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    with_config,
)

from watchdog.alerts import BUILTIN_LABELS, DAEMON_ALERTS, Severity
from watchdog.config.numbers import refuse_non_number
from watchdog.config.patterns import PatternError, Regex, compile_regex
from watchdog.config.problems import ConfigError, Problem, closest, did_you_mean
from watchdog.config.yamlfile import (
    Document,
    Loc,
    format_loc,
    load,
    model_fields_at,
    unknown_key,
)
from watchdog.durations import Duration, PositiveDuration, format_duration, parse_duration
from watchdog.engine.templates import template_problem
from watchdog.videosdk.derived import METRICS
from watchdog.videosdk.stats import ParticipantInfo

LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # Prometheus's label names

Op = Literal["<", "<=", ">", ">=", "==", "!="]
Aggregate = Literal["avg", "min", "max", "p95", "count", "rate"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")

RULE_HORIZON = timedelta(days=1)
"""A rule looks at most this far back: a window keeps every sample it covers, for every
participant, and a call-quality rule has no use for more."""

_within_horizon = BeforeValidator(functools.partial(parse_duration, limit=RULE_HORIZON))
RuleDuration = Annotated[Duration, _within_horizon]
PositiveRuleDuration = Annotated[PositiveDuration, _within_horizon]


@with_config(ConfigDict(arbitrary_types_allowed=True))  # the compiled Regex is kept as is
@dataclass(frozen=True, slots=True)
class Pattern:
    """One filter value: any of some exact strings, or an anchored RE2 regular expression."""

    exact: frozenset[str] = frozenset()
    regex: Regex | None = None

    def matches(self, value: str | None) -> bool:
        text = value or ""
        if self.regex is not None:
            return self.regex.fullmatch(text)
        return text in self.exact


def _pattern(value: Any) -> Pattern:
    if isinstance(value, Pattern):
        return value
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return Pattern(exact=frozenset({str(value)}))
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return Pattern(exact=frozenset(str(v) for v in value))
    if isinstance(value, dict) and set(value) == {"regex"} and isinstance(value["regex"], str):
        try:
            return Pattern(regex=compile_regex(value["regex"]))
        except PatternError as exc:
            raise ValueError(f"invalid regex {value['regex']!r}: {exc}") from None
    raise ValueError("expected a string, a list of strings, or {regex: PATTERN}")


PatternField = Annotated[
    Pattern,
    BeforeValidator(_pattern),
    PlainSerializer(lambda p: {"regex": p.regex.pattern} if p.regex else sorted(p.exact)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "exact value"},
                {"type": "array", "items": {"type": "string"}, "description": "any of these"},
                {
                    "type": "object",
                    "properties": {"regex": {"type": "string"}},
                    "required": ["regex"],
                    "additionalProperties": False,
                    "description": "anchored regular expression (RE2 syntax)",
                },
            ]
        }
    ),
]

# filter key -> ParticipantInfo attribute
FILTER_FIELDS: dict[str, str] = {
    "meeting": "meeting_id",
    "session": "session_id",
    "participant": "name",
    "participant_id": "participant_id",
    "device": "device",
    "device_version": "device_version",
    "sdk": "sdk_name",
    "sdk_version": "sdk_version",
    "country": "country",
    "city": "city",
    "region": "region",
    "org": "org",
    "asn": "asn",
}


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_non_number(cls, value, info, text=False)


class Filter(_Model):
    """Which participants a rule watches: every given key must match (exact or regex)."""

    meeting: PatternField | None = None
    session: PatternField | None = None
    participant: PatternField | None = Field(default=None, description="participant name")
    participant_id: PatternField | None = None
    device: PatternField | None = Field(default=None, description="browser or device name")
    device_version: PatternField | None = None
    sdk: PatternField | None = Field(default=None, description="SDK name (react, js, ...)")
    sdk_version: PatternField | None = None
    country: PatternField | None = None
    city: PatternField | None = None
    region: PatternField | None = None
    org: PatternField | None = Field(default=None, description="network organisation (ISP)")
    asn: PatternField | None = None

    def matches(self, info: ParticipantInfo) -> bool:
        for key, attribute in FILTER_FIELDS.items():
            pattern: Pattern | None = getattr(self, key)
            if pattern is not None and not pattern.matches(getattr(info, attribute)):
                return False
        return True

    def any_matches(self, info: ParticipantInfo) -> bool:
        """For ``exclude``: does any given key match."""
        for key, attribute in FILTER_FIELDS.items():
            pattern: Pattern | None = getattr(self, key)
            if pattern is not None and pattern.matches(getattr(info, attribute)):
                return True
        return False


class Spike(_Model):
    """The current value (or a short window's average) against a rolling baseline's average."""

    baseline: PositiveRuleDuration = Field(
        description="rolling baseline window before the current one"
    )
    over: RuleDuration = Field(
        default=timedelta(0), description="current window (0: the current sample alone)"
    )
    factor: float | None = Field(default=None, gt=1, description="current >= factor x baseline")
    min_change: float | None = Field(
        default=None, ge=0, description="and current differs from baseline by at least this"
    )
    min_baseline: RuleDuration | None = Field(
        default=None, description="history needed before the rule can fire (default: baseline)"
    )
    direction: Literal["up", "down"] = "up"

    @property
    def needed(self) -> timedelta:
        return self.baseline if self.min_baseline is None else self.min_baseline


class MeetingScope(_Model):
    """Fire once per meeting when enough of its watched participants meet the condition."""

    fraction: float | None = Field(default=None, gt=0, le=1)
    count: int | None = Field(default=None, ge=1)
    min_participants: int = Field(
        default=1, ge=1, description="watched participants with data needed to decide"
    )
    within: RuleDuration = Field(
        default=timedelta(minutes=1),
        description="a participant's condition counts if its newest sample is this recent",
    )


MAX_SAMPLES = 50
"""The longest ``samples.of``: the outcomes are one integer's bits per rule and participant
(50 keep it an exact JSON number); a longer stretch is an aggregate's window."""


class SampleCount(_Model):
    """Fire while at least ``need`` of the last ``of`` samples meet the condition."""

    need: int = Field(ge=1, description="samples of the last `of` that must meet the condition")
    of: int = Field(
        ge=1,
        description=f"how many recent samples are counted (at most {MAX_SAMPLES})",
        json_schema_extra={"maximum": MAX_SAMPLES},
    )

    @field_validator("of")
    @classmethod
    def _of(cls, value: int) -> int:
        if value > MAX_SAMPLES:
            raise ValueError(
                f"counts at most {MAX_SAMPLES} samples; for a longer stretch use an "
                "aggregate over a window (aggregate: avg, over: 5m)"
            )
        return value


class Rule(_Model):
    """One rule: a threshold, a window aggregate, a spike or absent data, per participant
    or per meeting. ``for`` follows Prometheus's pending/firing semantics on sample times;
    ``samples`` instead counts bad samples among the latest (Twilio's call-quality warnings)."""

    name: str
    metric: str | None = Field(
        default=None, json_schema_extra={"enum": [*METRICS, None]}, description="sample field"
    )
    op: Op | None = None
    threshold: float | None = None
    for_: RuleDuration = Field(default=timedelta(0), alias="for")
    samples: SampleCount | None = Field(
        default=None,
        description="fire while need of the last of samples meet the condition (instead of for)",
    )
    warmup: RuleDuration = Field(
        default=timedelta(0),
        description="ignore a participant's samples this soon after its first one",
    )
    keep_firing_for: RuleDuration = timedelta(0)
    recovery_threshold: float | None = Field(
        default=None, description="a firing alert resolves only once past this value"
    )
    aggregate: Aggregate | None = None
    over: PositiveRuleDuration | None = None
    spike: Spike | None = None
    absent: PositiveRuleDuration | None = Field(
        default=None, description="fire when no stats arrive for this long"
    )
    match: Filter | None = None
    exclude: Filter | None = None
    meeting: MeetingScope | None = None
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
        if value in DAEMON_ALERTS:
            raise ValueError(f"{value!r} is the name of the watchdog's own alert; choose another")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        """Labels receivers and Alertmanager templates can use: Prometheus names, a value."""
        for name, text in value.items():
            if not LABEL_NAME.match(name):
                raise ValueError(f"{name!r} is not a label name: use letters, digits and _")
            if name in BUILTIN_LABELS:
                raise ValueError(f"{name!r} is set by the watchdog; choose another name")
            if not str(text):
                raise ValueError(f"{name!r} has no value (omit the label instead)")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str | None) -> str | None:
        if value is not None and value not in METRICS:
            raise ValueError(unknown_metric(value))
        return value

    @field_validator("notify", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("summary", "description")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            problem = template_problem(value)
            if problem is not None:
                raise ValueError(f"bad template: {problem}")
        return value

    @property
    def kind(self) -> Literal["threshold", "aggregate", "spike", "absent"]:
        if self.absent is not None:
            return "absent"
        if self.spike is not None:
            return "spike"
        if self.aggregate is not None:
            return "aggregate"
        return "threshold"

    @property
    def window(self) -> timedelta:
        """How much history this rule looks at (0 for a plain threshold)."""
        if self.spike is not None:
            return self.spike.over + max(self.spike.baseline, self.spike.needed)
        return self.over or timedelta(0)

    @property
    def label(self) -> str:
        """The metric as an alert shows it: ``p95(averageVideoRtt over 2m)``."""
        if self.kind == "absent":
            return "seconds without stats"
        if self.aggregate is not None and self.over is not None:
            return f"{self.aggregate}({self.metric} over {format_duration(self.over)})"
        if self.spike is not None and self.spike.over:
            return f"avg({self.metric} over {format_duration(self.spike.over)})"
        return str(self.metric)

    @property
    def shown_op(self) -> str:
        """The comparison an alert shows: a spike up is ``>=`` its baseline-relative limit."""
        if self.op is not None:
            return self.op
        if self.spike is not None and self.spike.direction == "down":
            return "<="
        return ">="

    def applies_to(self, info: ParticipantInfo) -> bool:
        if self.match is not None and not self.match.matches(info):
            return False
        return self.exclude is None or not self.exclude.any_matches(info)

    def holds(self, value: float, firing: bool = False) -> bool:
        """The condition; a firing alert with a recovery threshold holds until past it."""
        if self.op is None or self.threshold is None:
            return False
        limit = self.threshold
        if firing and self.recovery_threshold is not None:
            limit = self.recovery_threshold
        return OPERATORS[self.op](value, limit)


def unknown_metric(name: str) -> str:
    """What to say about a metric name that is not one: the closest, else all of them."""
    match = closest(name, METRICS)
    if match is not None:
        return f"unknown metric {name!r}: did you mean {match!r}?"
    return f"unknown metric {name!r}; valid metrics: {', '.join(METRICS)}"


_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "absent": (
        *("metric", "op", "threshold", "for", "keep_firing_for", "recovery_threshold"),
        *("aggregate", "over", "spike", "meeting", "samples", "warmup"),
    ),
    "spike": ("op", "threshold", "recovery_threshold", "aggregate", "over"),
}


def rule_problems(raw: dict[str, Any], rule: Rule) -> list[tuple[str | None, str]]:
    """Combinations pydantic cannot see: (field or None for the rule, message)."""
    problems: list[tuple[str | None, str]] = []
    kind = rule.kind
    if rule.absent is not None and rule.spike is not None:
        problems.append(("spike", "a rule is either absent-data or a spike, not both"))
    forbidden = _ONLY_FOR.get(kind, ())
    for key in forbidden:
        if key in raw:
            problems.append(
                (key, f"has no meaning in a{'n' if kind == 'absent' else ''} {kind} rule")
            )
    if kind == "absent":
        return problems
    if rule.metric is None:
        problems.append((None, "metric is required"))
    if kind in ("threshold", "aggregate"):
        for key in ("op", "threshold"):
            if key not in raw:
                problems.append((None, f"{key} is required"))
    if (rule.aggregate is None) != (rule.over is None) and kind != "spike":
        missing = "over" if rule.over is None else "aggregate"
        problems.append(
            (None, f"{missing} is required with {'aggregate' if missing == 'over' else 'over'}")
        )
    if rule.spike is not None and rule.spike.factor is None and rule.spike.min_change is None:
        problems.append(("spike", "set factor, min_change or both"))
    if rule.recovery_threshold is not None and rule.op is not None and rule.threshold is not None:
        if rule.op in ("==", "!="):
            problems.append(("recovery_threshold", f"needs an ordering op, not {rule.op}"))
        elif rule.op in ("<", "<=") and rule.recovery_threshold < rule.threshold:
            problems.append(
                (
                    "recovery_threshold",
                    f"must be >= threshold ({rule.threshold:g}) with op {rule.op}",
                )
            )
        elif rule.op in (">", ">=") and rule.recovery_threshold > rule.threshold:
            problems.append(
                (
                    "recovery_threshold",
                    f"must be <= threshold ({rule.threshold:g}) with op {rule.op}",
                )
            )
    if rule.meeting is not None and (rule.meeting.fraction is None) == (rule.meeting.count is None):
        problems.append(("meeting", "set exactly one of fraction or count"))
    problems.extend(_sample_count_problems(raw, rule))
    return problems


def _sample_count_problems(raw: dict[str, Any], rule: Rule) -> list[tuple[str | None, str]]:
    """``samples`` is an alternative to ``for``, on a participant's own samples."""
    counted = rule.samples
    if counted is None:
        return []
    problems: list[tuple[str | None, str]] = []
    if "for" in raw:
        problems.append(
            (
                "samples",
                "and for are alternatives: keep samples to fire on "
                f"{counted.need} bad of the last {counted.of} samples (a good one among them "
                "does not reset it), or for to need the condition unbroken for that long",
            )
        )
    if rule.meeting is not None:
        problems.append(
            (
                "samples",
                "has no meaning in a meeting rule: the meeting is judged once a poll cycle "
                "over its participants' latest samples; use for to hold the verdict",
            )
        )
    if counted.need > counted.of:
        problems.append(
            (
                "samples",
                f"need ({counted.need}) is more than of ({counted.of}): it could never fire; "
                "lower need or count more samples",
            )
        )
    return problems


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    sources: tuple[str, ...] = ()
    lines: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    empty: tuple[str, ...] = ()  # files that hold no rule at all

    def empty_problems(self) -> list[Problem]:
        """A warning per empty file: it watches nothing, which is rarely what was meant."""
        return [
            Problem(
                path,
                1,
                "no rules in this file, so it watches nothing: add rules under 'rules:' "
                "(check --allow-empty accepts an empty file on purpose)",
                "warning",
            )
            for path in self.empty
        ]

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
            f"unknown top-level key {extra[0]!r}{did_you_mean(extra[0], ('rules', 'tests'))}"
            "; a rules file has 'rules:' (and 'tests:')"
            if extra
            else "a rules file is a mapping with a 'rules:' list"
        )
        if extra[:1] == ["inhibit_rules"]:  # where an Alertmanager user would look next
            message += "; inhibit_rules go in the config file, under alerting: (beside routes)"
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
            problems.extend(_rule_errors(doc, loc, label, item, exc))
            continue
        combination = rule_problems(item, rule)
        for key, message in combination:
            at = (*loc, key) if key is not None else loc
            prefix = f"{'for' if key == 'for_' else key} " if key is not None else ""
            problems.append(doc.problem(at, f"{label}: {prefix}{message}"))
        if combination:
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


def required_keys(item: dict[str, Any]) -> set[str]:
    """The keys a rule of this shape cannot do without (what ``rule_problems`` demands)."""
    if "absent" in item:
        return {"name", "absent"}
    if "spike" in item:
        return {"name", "metric", "spike"}
    required = {"name", "metric", "op", "threshold"}
    if "aggregate" in item or "over" in item:
        required |= {"aggregate", "over"}
    return required


def _rule_errors(
    doc: Document, loc: Loc, label: str, item: dict[str, Any], exc: ValidationError
) -> list[Problem]:
    """A rule's validation errors in the operator's words; a key a typo left missing is
    named once, by the typo ("did you mean 'threshold'? (and 'threshold' is then missing)")."""
    errors = exc.errors(include_url=False, include_input=False)
    problems: list[Problem] = []
    explained: set[Loc] = set()
    for error in errors:
        if error["type"] != "extra_forbidden":
            continue
        parent = tuple(error["loc"][:-1])
        fields = model_fields_at(Rule, parent)
        if fields is not None and not parent:
            fields = (fields[0], required_keys(item))
        message, missing = unknown_key(str(error["loc"][-1]), fields, doc.value_at((*loc, *parent)))
        if missing is not None:
            explained.add((*parent, missing))
        where = f"{format_loc(parent)}: " if parent else ""
        problems.append(doc.problem((*loc, *error["loc"]), f"{label}: {where}{message}"))
    for error in errors:
        at = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" or at in explained:
            continue
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "literal_error" and at == ("op",):
            message = f"unknown operator; use one of {' '.join(OPERATORS)}"
        elif error["type"] == "string_type" and at in (("summary",), ("description",)):
            message += '; quote a template that starts with "{{" (summary: "{{ participant }} ...")'
        problems.append(doc.problem((*loc, *at), f"{label}: {format_loc(at)} {message}"))
    return sorted(problems, key=lambda p: p.line or 0)


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
    sources, empty = [], []
    for path in paths:
        sources.append(str(path))
        try:
            doc = load(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        file_rules, file_problems, file_lines = _validate_rules(doc)
        problems.extend(file_problems)
        if not file_rules and not file_problems:
            empty.append(str(path))
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
    return RuleSet(rules=tuple(rules), sources=tuple(sources), lines=lines, empty=tuple(empty))
