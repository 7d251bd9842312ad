"""YAML loading that remembers where every value came from.

Validation errors are only useful to an operator with a line number, so we
compose the node tree ourselves and record the line of every mapping key and
list item while building plain Python data for pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchdog.problems import ConfigError, Problem

Loc = tuple[str | int, ...]


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


class _Loader(yaml.SafeLoader):
    pass


def _build(
    loader: _Loader, node: yaml.Node, loc: Loc, doc: Document, problems: list[Problem]
) -> Any:
    doc.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                problems.append(Problem(doc.path, key_node.start_mark.line + 1, "unsupported key"))
                continue
            if key in result:
                problems.append(
                    Problem(doc.path, key_node.start_mark.line + 1, f"duplicate key {key!r}")
                )
            child: Loc = (*loc, key if isinstance(key, str | int) else str(key))
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, child, doc, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            items.append(_build(loader, item, (*loc, index), doc, problems))
        return items
    return loader.construct_object(node, deep=True)


def parse(text: str, path: str) -> Document:
    """Parse YAML text; raise ConfigError with ``path:line`` problems."""
    doc = Document(path=path, data=None)
    loader = _Loader(text)
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _build(loader, node, (), doc, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError([Problem(path, line, f"YAML syntax error: {message}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(path, None, f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    return doc


def load(path: str | Path) -> Document:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.single(name, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.single(name, None, f"cannot read: {exc}") from None
    return parse(text, name)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_problems(doc: Document, error: Any, base: Loc = ()) -> list[Problem]:
    """Turn a pydantic ValidationError into problems at the offending lines.

    Input values are never echoed: a secret in the wrong place must not reach a log.
    """
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = (*base, *(p for p in item["loc"] if not isinstance(p, str) or p[:1] != "_"))
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        where = format_loc(loc)
        problems.append(doc.problem(loc, f"{where}: {message}" if where else message))
    return problems
