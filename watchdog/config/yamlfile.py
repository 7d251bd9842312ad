"""YAML loading that remembers where every value came from, within fixed bounds.

Validation errors are only useful to an operator with a line number, so we
compose the node tree ourselves and record the line of every mapping key and
list item while building plain Python data for pydantic.

A config or rules file is hostile until bounded: its size, its nesting and what
its aliases expand to are checked on the node graph (where an alias is one
shared node) before any plain data is built, so a 400-byte alias bomb or a
thousand nested brackets is a ``file:line`` error in milliseconds.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from watchdog.config.problems import ConfigError, Problem, closest

Loc = tuple[str | int, ...]

MAX_BYTES = 512 * 1024
"""A rules file is at most 512 KiB: thousands of rules, parsed within seconds."""
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A config file is at most 4 MiB: static lists of tens of thousands of participants
(10,000 take 600 KB and two seconds to parse); pure-Python YAML reads ~300 KB a second."""
MAX_DEPTH = 64
"""Nesting, aliases followed; real files nest fewer than ten levels."""
MAX_ALIAS_VALUES = 10_000
"""Values that aliases may add to a file: plenty for ``<<: *defaults`` in every rule."""


@dataclass(slots=True)
class Document:
    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_for(self, loc: Loc) -> int | None:
        """The line of the deepest known prefix of ``loc``."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(self.path, self.line_for(loc), message)

    def value_at(self, loc: Loc) -> Any:
        """The data at ``loc``, or None where the path does not lead."""
        value = self.data
        for part in loc:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                return None
        return value


class _Refused(Exception):
    """A document past a bound: refused at a line, before any data is built."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _line(mark: yaml.Mark | None) -> int:
    return mark.line + 1 if mark is not None else 1


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and aliases into their own node while composing."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0
        self.open_anchors: list[str | None] = []
        self.aliases: list[tuple[int, yaml.Node]] = []  # (line, the node it refers to)
        self.merged: dict[int, int] = {}  # mapping node id -> pairs its ``<<`` keys added

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """PyYAML's ``<<`` merge, once per node, remembering how many pairs it put first."""
        if id(node) in self.merged:
            return
        own = sum(key.tag != "tag:yaml.org,2002:merge" for key, _ in node.value)
        super().flatten_mapping(node)
        self.merged[id(node)] = len(node.value) - own

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        alias = self.check_event(yaml.AliasEvent)
        event = self.current_event  # what check_event peeked at
        if alias:
            if event.anchor in self.open_anchors:
                raise _Refused(
                    _line(event.start_mark),
                    f"alias *{event.anchor} is inside its own anchor &{event.anchor}: "
                    "a value cannot contain itself",
                )
            node = super().compose_node(parent, index)
            if node is not None:
                self.aliases.append((_line(event.start_mark), node))
            return node
        if self.depth >= MAX_DEPTH:
            raise _Refused(
                _line(event.start_mark),
                f"nested deeper than {MAX_DEPTH} levels: no config or rules file needs that",
            )
        self.depth += 1
        self.open_anchors.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.pop()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(root: yaml.Node) -> dict[int, tuple[int, int]]:
    """Per node (by id): how many values and how many levels it becomes once built.

    Iterative and memoised on the node graph, so it costs the file's size however
    far its aliases would expand.
    """
    built: dict[int, tuple[int, int]] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in built:
            continue
        children = _children(node)
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        sizes = [built[id(child)] for child in children]
        built[id(node)] = (
            1 + sum(size for size, _ in sizes),
            1 + max((depth for _, depth in sizes), default=0),
        )
    return built


def _check_bounds(loader: _Loader, root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand past the budget or nest too deep."""
    built = _measure(root)
    values, depth = built[id(root)]
    added = values - len(built)
    if added <= MAX_ALIAS_VALUES and depth <= MAX_DEPTH:
        return
    index = 0 if added > MAX_ALIAS_VALUES else 1
    line, target = max(loader.aliases, key=lambda alias: built[id(alias[1])][index])
    size, levels = built[id(target)]
    if index == 0:
        message = (
            f"aliases expand this file by {added:,} values (at most {MAX_ALIAS_VALUES:,}); "
            f"this alias alone is {size:,}: use anchors for small shared blocks such as "
            "rule defaults, not to multiply data"
        )
    else:
        message = (
            f"nested deeper than {MAX_DEPTH} levels through aliases "
            f"(this alias adds {levels} levels)"
        )
    raise _Refused(line, message)


# what YAML refuses raw (all but tab, line feed, carriage return and NEL), also as "\e" escapes
_ESCAPED_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")


def _scalar(loader: _Loader, node: yaml.Node) -> Any:
    """A scalar's value; a value YAML's own constructors cannot read becomes ValueError.

    The value is never quoted back: a secret typed in the wrong place stays out of errors.
    """
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        tag = str(node.tag).rsplit(":", 1)[-1]
        digits = sum(c.isdigit() for c in str(node.value))
        if tag == "int" and digits > 100:
            raise ValueError(f"a number with {digits} digits is too large") from exc
        kinds = {"int": "an integer", "float": "a number", "bool": "true or false"}
        kind = kinds.get(tag, "a date or time" if tag == "timestamp" else f"!!{tag}")
        raise ValueError(f"cannot read this value as {kind}; quote it to mean text") from exc
    if isinstance(value, str) and (control := _ESCAPED_CONTROL.search(value)):
        raise ValueError(
            f"control character U+{ord(control[0]):04X} (written as an escape) is not allowed: "
            "it would reach terminals, logs and messages as is"
        )
    return value


_UNSUPPORTED_KEY = (
    "a key must be text or a number; a value that starts with '{' is a mapping, "
    'so quote templates: summary: "{{ participant }} ..."'
)


def _build(
    loader: _Loader, node: yaml.Node, loc: Loc, doc: Document, problems: list[Problem]
) -> Any:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        merged = loader.merged[id(node)]
        result: dict[Any, Any] = {}
        # the mapping's own keys first: they override what ``<<`` merged in
        for number, (key_node, value_node) in enumerate(node.value[merged:] + node.value[:merged]):
            inherited = number >= len(node.value) - merged
            line = key_node.start_mark.line + 1
            try:
                key = _scalar(loader, key_node)
            except ValueError as exc:
                problems.append(Problem(doc.path, line, f"key: {exc}"))
                continue
            if not isinstance(key, str | int | float | bool) or key is None:
                problems.append(Problem(doc.path, line, _UNSUPPORTED_KEY))
                continue
            if key in result and inherited:
                continue
            if key in result:
                problems.append(Problem(doc.path, line, f"duplicate key {key!r}"))
            child: Loc = (*loc, key if isinstance(key, str | int) else str(key))
            doc.lines[child] = line
            result[key] = _build(loader, value_node, child, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            items.append(_build(loader, item, (*loc, index), doc, problems))
        return items
    try:
        return _scalar(loader, node)
    except ValueError as exc:
        problems.append(Problem(doc.path, node.start_mark.line + 1, str(exc)))
        return None


def parse(text: str, path: str) -> Document:
    """Parse YAML text; raise ConfigError with ``path:line`` problems."""
    doc = Document(path=path, data=None)
    problems: list[Problem] = []
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_bounds(loader, node)
            doc.data = _build(loader, node, (), doc, problems)
    except _Refused as exc:
        raise ConfigError([Problem(path, exc.line, exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(path, exc)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        message = (
            f"control character U+{exc.character:04X} is not allowed in YAML: delete it "
            '(inside double quotes it can be written as an escape, e.g. "\\t")'
            if isinstance(exc.character, int)
            else f"YAML error: {exc.reason}"
        )
        raise ConfigError([Problem(path, line, message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(path, None, f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise ConfigError(problems)
    return doc


_HINTS: dict[str, str] = {
    "mapping values are not allowed here": (
        "a ':' YAML cannot take here: either this line is indented deeper than the key "
        "above it (keys of one mapping start in the same column), or a value contains "
        "': ' and must be quoted (summary: \"video: poor\")"
    ),
    "could not find expected ':'": (
        "this line is not 'key: value': put a space after the ':' (threshold: 3, not "
        "threshold:3), or line it up with the keys around it"
    ),
    "expected <block end>": (
        "this line's indentation matches no block above it: keys of one mapping, and "
        "the '- ' of the items of one list, start in the same column (indent with spaces)"
    ),
    "that cannot start any token": (
        "a value cannot start with this character unless quoted (\"@here\", '%')"
    ),
    "found undefined alias": (
        "a value starting with '*' refers to an anchor ('&name') defined above; "
        "quote it to mean text"
    ),
    "found unexpected end of stream": "a quote or bracket opened here is never closed",
    "expected ',' or ']'": "a '[' list is not closed with ']' or lacks a ',' between items",
    "expected ',' or '}'": (
        "a '{' mapping is not closed with '}' or lacks a ',' between entries "
        '(quote templates: summary: "{{ participant }} ...")'
    ),
    "but found another document": "a file holds one YAML document: remove this '---'",
}


_OPENERS = {
    "quoted scalar": "the quote opens",
    "flow": "the bracket opens",
    "block": "the enclosing block starts",
}


def _syntax_problem(path: str, exc: yaml.MarkedYAMLError) -> Problem:
    """A PyYAML error in words an operator can act on, at the line to fix."""
    problem = exc.problem or exc.context or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    if "could not find expected ':'" in problem and exc.context_mark is not None:
        mark = exc.context_mark  # the line missing its ':', not the one after it
    hint = next((text for key, text in _HINTS.items() if key in problem), None)
    if "'\\t'" in problem:
        hint = "a tab: YAML indents with spaces only; replace it with spaces"
    if hint is None:
        message = f"YAML syntax error: {' '.join(p for p in (exc.context, problem) if p)}"
    else:
        message = f"YAML syntax error: {problem}: {hint}"
    opened, context = exc.context_mark, exc.context or ""
    if opened is not None and mark is not None and opened.line != mark.line:
        for word, what in _OPENERS.items():
            if word in context:
                message += f" ({what} at line {opened.line + 1})"
                break
    return Problem(path, mark.line + 1 if mark is not None else None, message)


def load(path: str | Path, max_bytes: int = MAX_BYTES) -> Document:
    name = str(path)
    try:
        with Path(path).open("rb") as stream:
            raw = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError.single(name, None, "file not found") from None
    except OSError as exc:
        raise ConfigError.single(name, None, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        limit = (
            f"{max_bytes // 1024 // 1024} MiB"
            if max_bytes >= 1 << 20
            else f"{max_bytes // 1024} KiB"
        )
        raise ConfigError.single(name, None, f"larger than {limit}: split it into several files")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError.single(
            name, line, f"not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
        ) from None
    return parse(text, name)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_problems(
    doc: Document, error: ValidationError, base: Loc = (), model: type[BaseModel] | None = None
) -> list[Problem]:
    """Turn a pydantic ValidationError into problems at the offending lines.

    ``model`` (the class validated at ``base``) lets an unknown key name the closest
    known one. Input values are never echoed: a secret in the wrong place must not
    reach a log.
    """
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = (*base, *(p for p in item["loc"] if not isinstance(p, str) or p[:1] != "_"))
        message = item["msg"].removeprefix("Value error, ")
        where = format_loc(loc)
        if item["type"] == "extra_forbidden":
            fields = model_fields_at(model, tuple(item["loc"])[:-1]) if model else None
            message, _ = unknown_key(str(loc[-1]), fields, doc.value_at(loc[:-1]))
            where = format_loc(loc[:-1])
        problems.append(doc.problem(loc, f"{where}: {message}" if where else message))
    return problems


def unknown_key(
    key: str, fields: tuple[set[str], set[str]] | None, present: Any
) -> tuple[str, str | None]:
    """``unknown key 'thresold': did you mean 'threshold'? (and 'threshold' is then missing)``,
    and the required key the typo leaves missing, if any.

    ``fields`` are the keys accepted there and those required; ``present`` the mapping
    the key was found in.
    """
    if fields is None:
        return f"unknown key {key!r}", None
    known, required = fields
    match = closest(key, known)
    if match is None:
        return f"unknown key {key!r}; known keys: {', '.join(sorted(known))}", None
    message = f"unknown key {key!r}: did you mean {match!r}?"
    if match in required and not (isinstance(present, dict) and match in present):
        return f"{message} (and {match!r} is then missing)", match
    return message, None


def model_fields_at(model: type[BaseModel], loc: Loc) -> tuple[set[str], set[str]] | None:
    """The keys the model at ``loc`` under ``model`` accepts and those it requires.

    Follows fields, list items and dict values down; None where no model is found.
    """
    kinds: list[Any] = [model]
    for part in loc:
        kinds = [inner for kind in kinds for inner in _step(kind, part)]
    for kind in kinds:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            fields = kind.model_fields.items()
            known = {info.alias or name for name, info in fields}
            required = {info.alias or name for name, info in fields if info.is_required()}
            return known, required
    return None


def _step(kind: Any, part: str | int) -> list[Any]:
    """What a value of type ``kind`` holds at ``part`` (a field, an index or a dict key)."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        for name, info in kind.model_fields.items():
            if part in (name, info.alias):
                return _alternatives(info.annotation)
        return []
    args = typing.get_args(kind)
    if typing.get_origin(kind) is list and args:
        return _alternatives(args[0])
    if typing.get_origin(kind) is dict and len(args) == 2:
        return _alternatives(args[1])
    return []


def _alternatives(kind: Any) -> list[Any]:
    """The types an Optional, Union or Annotated type stands for."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(kind)[0])
    if origin in (typing.Union, types.UnionType):
        return [inner for arg in typing.get_args(kind) for inner in _alternatives(arg)]
    return [kind]
