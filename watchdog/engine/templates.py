"""Alert text templates: Jinja2 in a sandbox bounded in reach, size and time.

Rule authors write ``summary``/``description`` with the participant's context;
the sandbox keeps a template from reaching Python internals, and StrictUndefined
makes a misspelt variable a ``check`` error instead of an empty string at 3 a.m.

A template is code, and it runs in the daemon for every alert, so Jinja's own
sandbox (attributes) is not enough: each render has a budget of steps (loop
items, calls, operators, filters) and a deadline; every value a template builds
is at most MAX_TEXT characters or items, and operators and filters that multiply
(``9 ** 9 ** 9``, ``'a' * 10 ** 9``, ``join``, ``replace``, printf widths) are
checked before they run. Layout filters meant for HTML pages (``center``,
``indent``, ``wordwrap``, ``batch``, ``slice``, ``urlize``) and ``lipsum`` are
not offered: alert text has no use for them and each multiplies its input.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from watchdog.alerts import format_number
from watchdog.config.problems import did_you_mean
from watchdog.durations import format_duration, parse_duration

log = logging.getLogger(__name__)

MAX_TEXT = 16 * 1024
"""Characters (or items) in any value a template builds, and in what it renders."""
MAX_INT_BITS = 4096
"""Integers a template builds: about 1,200 digits."""
MAX_STEPS = 100_000
"""Loop items, calls, operators and filters in one render."""
MAX_SECONDS = 1.0
"""Wall-clock time one render may take, whatever its steps cost."""

# methods a template may call on text, lists and dicts: none mutates or multiplies
_METHODS = frozenset(
    {
        *("upper", "lower", "title", "capitalize", "casefold", "swapcase"),
        *("strip", "lstrip", "rstrip", "removeprefix", "removesuffix"),
        *("startswith", "endswith", "split", "rsplit", "splitlines", "partition"),
        *("rpartition", "count", "find", "rfind", "index", "rindex"),
        *("isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"),
        *("items", "keys", "values", "get"),
    }
)
_DROPPED_FILTERS = ("center", "indent", "wordwrap", "batch", "slice", "urlize")
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _too_big(what: str) -> SecurityError:
    return SecurityError(f"{what} would exceed the template size limit ({MAX_TEXT:,})")


@dataclass(slots=True)
class _Budget:
    """One render's allowance of steps and time."""

    steps: int = MAX_STEPS
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)

    def charge(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise SecurityError(f"the template takes more than {MAX_STEPS:,} steps")
        if time.monotonic() > self.deadline:
            raise SecurityError(f"the template takes longer than {MAX_SECONDS:g}s to render")


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _charge(count: int = 1) -> None:
    """Charge the render in progress (compile-time constant folding has no budget)."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.charge(count)


def _size(value: Any, limit: int = MAX_TEXT) -> int:
    """Characters and items in ``value`` as a tree (a shared part counts each time it
    appears, as ``str()`` would print it); stops counting once past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(itertools.islice(itertools.chain(item, item.values()), limit))
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(itertools.islice(item, limit))
        elif isinstance(item, range):
            total += len(item)
        else:
            total += 1
    return total


def _bounded(value: Any, what: str = "a value") -> Any:
    """``value`` if it is within the limits, else SecurityError."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SecurityError(f"{what} would be an integer above {MAX_INT_BITS} bits")
    if _size(value) > MAX_TEXT:
        raise _too_big(what)
    return value


def _check_printf(template: str, values: Any) -> None:
    """``template % values`` stays small: explicit widths add up below MAX_TEXT, no ``*``."""
    width = 0
    for match in _PRINTF.finditer(template):
        for part in match.groups():
            if part == "*":
                raise SecurityError("'*' widths are not supported in templates")
            width += int(part) if part and len(part) < 7 else (MAX_TEXT + 1 if part else 0)
    if width + len(template) + _size(values) > MAX_TEXT:
        raise _too_big("formatting")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse, before computing it, a result that would be huge."""
    ints = isinstance(left, int) and isinstance(right, int)
    sequence = (str, list, tuple)
    if operator == "**" and ints and right > 0 and abs(left) > 1:
        if right * left.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"** would be an integer above {MAX_INT_BITS} bits")
    elif operator == "*" and ints:
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise SecurityError(f"* would be an integer above {MAX_INT_BITS} bits")
    elif operator == "*" and (isinstance(left, sequence) or isinstance(right, sequence)):
        times = right if isinstance(right, int) else left
        if isinstance(times, int) and times * _size(left if times is right else right) > MAX_TEXT:
            raise _too_big("repeating")
    elif operator == "+" and isinstance(left, sequence) and isinstance(right, sequence):
        if _size(left) + _size(right) > MAX_TEXT:
            raise _too_big("+")
    elif operator == "%" and isinstance(left, str):
        _check_printf(left, right)


class _BoundedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox plus the budget: operators, calls and methods are checked here."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _charge()
        _check_binop(operator, left, right)
        return _bounded(super().call_binop(context, operator, left, right), operator)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _charge()
        result = SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)
        return _bounded(result, "a call")

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str | list | tuple | dict) and callable(value):
            return attr in _METHODS
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        """No ``str.format``: its widths (``{:>999999999}``) allocate before any check;
        templates have ``|format`` and ``%``, which are checked."""


def _counted(filter_: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A filter that costs a step and whose result is checked (Jinja's pass_* marks kept)."""

    @wraps(filter_)
    def run(*args: Any, **kwargs: Any) -> Any:
        _charge()
        return _bounded(filter_(*args, **kwargs), f"|{name}")

    return run


def _guards(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that multiply their input, each checked before it runs."""
    join, replace, tojson, round_ = (filters[n] for n in ("join", "replace", "tojson", "round"))
    format_ = filters["format"]

    @pass_eval_context
    def guarded_join(
        eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> Any:
        items = list(itertools.islice(value, MAX_TEXT + 1))
        if len(items) * len(str(d)) + _size(items) > MAX_TEXT:
            raise _too_big("|join")
        return join(eval_ctx, items, d, attribute)

    @pass_eval_context
    def guarded_replace(
        eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None
    ) -> Any:
        text, old_text = str(s), str(old)
        found = text.count(old_text) if old_text else len(text) + 1
        if count is not None and count >= 0:
            found = min(found, count)
        if len(text) + found * len(str(new)) > MAX_TEXT:
            raise _too_big("|replace")
        return replace(eval_ctx, s, old, new, count)

    def guarded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_printf(str(value), (args, kwargs))
        return format_(value, *args, **kwargs)

    @pass_eval_context
    def guarded_tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Any:
        if indent is not None and not 0 <= indent <= 8:
            raise SecurityError("|tojson indents by at most 8")
        return tojson(eval_ctx, value, indent)

    def guarded_round(value: Any, precision: int = 0, method: str = "common") -> Any:
        if not -20 <= precision <= 20:
            raise SecurityError("|round takes a precision between -20 and 20")
        return round_(value, precision, method)

    return {
        "join": guarded_join,
        "replace": guarded_replace,
        "format": guarded_format,
        "tojson": guarded_tojson,
        "round": guarded_round,
    }


def _each(iterable: Any) -> Iterator[Any]:
    """A ``for`` loop's items, one step each."""
    for item in iterable:
        _charge()
        yield item


class _Guard(NodeTransformer):
    """Routes what the sandbox cannot intercept through checks: loop items (``_each``),
    ``~`` (``_text``) and list, tuple and dict literals (``_sized``). Children are
    transformed in place first."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        if not node.recursive:
            node.iter = _call_filter(node.iter, "__each")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call_filter(node, "__text")

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return _call_filter(node, "__sized")

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return _call_filter(node, "__sized")

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return node if node.ctx != "load" else _call_filter(node, "__sized")


def _call_filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _duration(value: Any) -> str:
    try:
        return format_duration(parse_duration(value))
    except ValueError:
        return str(value)


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` value is checked before Jinja turns it into text."""
    return _bounded(value, "a printed value")


def _environment() -> _BoundedEnvironment:
    env = _BoundedEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
    env.globals.pop("lipsum")
    for name in _DROPPED_FILTERS:
        del env.filters[name]
    env.filters.update(_guards(env.filters))
    env.filters["number"] = format_number
    env.filters["duration"] = _duration
    env.filters = {name: _counted(f, name) for name, f in env.filters.items()}
    env.filters["__each"] = _each
    env.filters["__text"] = lambda text: _bounded(text, "~")
    env.filters["__sized"] = lambda value: _bounded(value, "a literal")
    return env


_ENV = _environment()

# Every variable a template may use, with the value ``check`` renders it against.
VARIABLES: dict[str, Any] = {
    "rule": "poor-video",
    "severity": "warning",
    "state": "firing",
    "metric": "qualityScore.video",
    "op": "<",
    "threshold": 3.0,
    "value": 2.4,
    "values": [4.2, 4.1, 3.2, 2.6, 2.4],
    "sparkline": "██▄▂▁",
    "participant": "Alice",
    "participant_id": "fj9jxhtw",
    "participant_name": "Alice",
    "meeting": "61bw-723k-p4mp",
    "session": "62d13ccea0f6ac85649d7931",
    "device": "Chrome",
    "device_version": "130.0",
    "sdk": "react",
    "sdk_version": "0.1.90",
    "country": "India",
    "city": "Mumbai",
    "region": "Maharashtra",
    "asn": "AS55836",
    "org": "Reliance Jio",
    "labels": {"team": "video"},
    "since": "2026-11-24T10:00:00.000Z",
    "time": "2026-11-24T10:01:00.000Z",
    "affected": 0,
    "watched": 0,
    "participants": [],
    "cause": "uplink",
    "evidence": ["send loss 12 (receive 0.4) over the last 60s"],
}


@lru_cache(maxsize=1024)
def _compile(source: str) -> Any:
    ast = _ENV.parse(source)
    return _ENV.from_string(_Guard().visit(ast))


def _render(source: str, context: dict[str, Any]) -> str:
    """Render within the budget; the output stops at MAX_TEXT characters."""
    token = _BUDGET.set(_Budget())
    try:
        out, length = [], 0
        for chunk in _compile(source).generate(context):
            length += len(chunk)
            if length > MAX_TEXT:
                raise _too_big("the rendered text")
            out.append(chunk)
        return "".join(out)
    finally:
        _BUDGET.reset(token)


def _unknown_names(source: str) -> str | None:
    """The first variable the template reads that no alert provides, with the closest."""
    ast = _ENV.parse(source)
    unknown = meta.find_undeclared_variables(ast) - set(VARIABLES) - set(_ENV.globals)
    if not unknown:
        return None
    name = min(unknown, key=lambda n: next(_lines(ast, n)))
    line = next(_lines(ast, name))
    where = f" (template line {line})" if line > 1 else ""
    return f"unknown variable {name!r}{did_you_mean(name, VARIABLES)}{where}"


def _lines(ast: nodes.Template, name: str) -> Iterator[int]:
    return (n.lineno for n in ast.find_all(nodes.Name) if n.name == name)


def template_problem(source: str) -> str | None:
    """Why ``source`` cannot be rendered (syntax, unknown name, unsafe access, too costly),
    or None."""
    try:
        unknown = _unknown_names(source)
        if unknown is not None:
            return unknown
        _render(source, VARIABLES)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        line = f" (template line {lineno})" if lineno else ""
        return f"{type(exc).__name__}: {exc.message or exc}{line}"
    except Exception as exc:  # a filter on the sample values failing: still the author's error
        return f"{type(exc).__name__}: {exc}"
    return None


def render(source: str, context: dict[str, Any]) -> str:
    """Render for an alert; a failure shows the raw template rather than losing the alert."""
    try:
        return _render(source, context)
    except Exception as exc:
        log.warning("alert template failed to render (%s); sending it unrendered", exc)
        return source
