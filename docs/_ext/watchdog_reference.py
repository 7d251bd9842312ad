"""What the docs generate from the code, and what tests/test_docs.py holds the pages to.

Every import of project code the docs need is in this module, so a module that moves
inside ``watchdog`` costs one line here. It knows nothing of Sphinx: the extension beside
it (``watchdog_sphinx``) renders these facts, and the doc tests read them.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from prometheus_client import REGISTRY
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from watchdog import hookspecs
from watchdog.cli import _parser as cli_parser  # the parser `videosdk-watchdog` runs
from watchdog.cluster import METRICS as POSTGRESQL_METRICS  # exported on PostgreSQL only
from watchdog.durations import format_duration
from watchdog.gauges import LiveCollector  # registered by the running service
from watchdog.notifiers import NotifierType
from watchdog.plugins import load_plugins
from watchdog.settings import NotifierOptions, Settings
from watchdog.templates import VARIABLES

# The public plugin API: the modules plugins may import, each documented by autodoc on the
# plugin author's page. ``Redactor`` lives in watchdog.redaction but is public through
# watchdog.notifiers, which re-exports it.
PUBLIC_MODULES = (
    "watchdog.hookspecs",
    "watchdog.notifiers",
    "watchdog.alerts",
    "watchdog.durations",
    "watchdog.charts",
    "watchdog.listener",
    "watchdog.testing",
)

# the daemon: importing it imports every module that registers a metric at import
DAEMON = "watchdog.service"

ROOT_SECTION = ""  # the config file's top-level keys that are not sections themselves
ENTRY = "NAME"  # stands for a ``notifiers:`` entry's name in a dotted path
UNSET, REQUIRED = "unset", "required"
NO_VALUE = (UNSET, REQUIRED)  # how a default that is no value reads


@dataclass(frozen=True)
class Setting:
    """One key of a config file, as the reference shows it."""

    path: str  # dotted: ``poll.interval``; ``[]`` marks a list's entries
    type: str
    default: str
    description: str
    section: str  # the top-level key it belongs to, or ROOT_SECTION


# -- settings and notifier config models --------------------------------------------------


def settings() -> list[Setting]:
    """Every key of the config file, depth first, sections included."""
    return list(_walk(Settings, "", ROOT_SECTION))


def notifier_options() -> list[Setting]:
    """The alert-manager keys any ``notifiers:`` entry may set beside its plugin's own."""
    return list(_walk(NotifierOptions, f"notifiers.{ENTRY}.", ROOT_SECTION))


def notifier_types() -> dict[str, NotifierType]:
    """The notifier types installed where the docs are built, by ``type:`` name."""
    return dict(sorted(load_plugins().notifier_types.items()))


def notifier_settings(kind: NotifierType) -> list[Setting]:
    """The keys of one notifier type's entries (its plugin's config model)."""
    return list(_walk(kind.config, "", ROOT_SECTION))


def _walk(model: type[BaseModel], prefix: str, section: str) -> Iterator[Setting]:
    for name, field in model.model_fields.items():
        key = field.alias or name  # what the file says: the email plugin's ``from``
        path = prefix + key
        top = section if prefix else (key if _model_in(field.annotation) else ROOT_SECTION)
        yield Setting(path, _type(field), _default(field), _description(field), top)
        nested = _model_in(field.annotation)
        if nested is not None:
            many = get_origin(_optional(field.annotation)) is list
            yield from _walk(nested, f"{path}[]." if many else f"{path}.", top)


def _optional(annotation: Any) -> Any:
    """``X | None`` as ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a section or a list of entries holds, if the field is one."""
    inner = _optional(annotation)
    if get_origin(inner) is list:
        inner = get_args(inner)[0]
    if inspect.isclass(inner) and issubclass(inner, BaseModel):
        return inner
    return None


def _description(field: FieldInfo) -> str:
    return " ".join((field.description or "").split())


def _type(field: FieldInfo) -> str:
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[annotation, *field.metadata]
    text = _type_name(annotation)
    if text == "duration" and _refuses_zero(annotation):
        text = "duration > 0"
    shown = ", ".join(b for b in map(_bound, _constraints(annotation)) if b)
    return f"{text} ({shown})" if shown else text


def _constraints(annotation: Any) -> list[Any]:
    """The annotated-types constraints on a type, looking inside ``X | None``."""
    inner = _optional(annotation)
    return list(get_args(inner)[1:]) if get_origin(inner) is Annotated else []


def _refuses_zero(annotation: Any) -> bool:
    """Whether a duration's own validators refuse ``0s`` (a positive duration)."""
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    try:
        adapter.validate_python("0s")
    except ValidationError:
        return True
    return False


def _bound(item: Any) -> str:
    if isinstance(item, annotated_types.Ge):
        return f"≥ {item.ge}"
    if isinstance(item, annotated_types.Gt):
        return f"> {item.gt}"
    if isinstance(item, annotated_types.Le):
        return f"≤ {item.le}"
    if isinstance(item, annotated_types.Lt):
        return f"< {item.lt}"
    if isinstance(item, annotated_types.MinLen) and item.min_length:
        return "not empty"
    return ""


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        model = _model_in(annotation)
        return "list of entries" if model else f"list of {_type_name(args[0])}"
    if origin is dict:
        if get_args(args[1]) == (str, Any):
            return f"mapping of {_type_name(args[0])} to entries"
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "section"
    names = {
        timedelta: "duration",
        SecretStr: "secret text",
        str: "text",
        int: "integer",
        float: "number",
        bool: "true or false",
    }
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    """The default as a config file would write it: ``30s``, ``[meeting_id, alertname]``."""
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]  # takes no data here
        if isinstance(value, BaseModel):
            return ""  # a section: its keys have the defaults
    elif field.default is PydanticUndefined:
        return REQUIRED
    else:
        value = field.default
    return _yaml(value)


def _yaml(value: Any) -> str:
    if value is None:
        return UNSET
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, SecretStr):
        return "(secret)"
    return str(value)


# -- metrics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One metric family as /metrics exposes it."""

    name: str  # the exposed name: counters end in ``_total``
    type: str
    labels: tuple[str, ...]
    help: str
    postgresql_only: bool


def metrics() -> list[Metric]:
    """Every ``watchdog_*`` family a daemon can export, sorted by name.

    Read from the registry once the daemon's modules are imported, plus the collectors
    that are registered later: the service's scrape-time gauges, and the PostgreSQL-only
    metrics a cluster member registers (absent on SQLite rather than 0).
    """
    importlib.import_module(DAEMON)
    postgresql = [family for metric in POSTGRESQL_METRICS for family in metric.describe()]
    live = LiveCollector(dict, lambda: (0, None))
    # a test process may have registered the later collectors too: one entry per name
    families = {f.name: f for f in (*REGISTRY.collect(), *live.collect(), *postgresql)}
    only = {family.name for family in postgresql}
    found = [_metric(family, name in only) for name, family in sorted(families.items())]
    return sorted((m for m in found if m.name.startswith("watchdog_")), key=lambda m: m.name)


def _metric(family: Any, postgresql_only: bool) -> Metric:
    name = f"{family.name}_total" if family.type == "counter" else family.name
    return Metric(name, family.type, _labels(family), family.documentation, postgresql_only)


def _labels(family: Any) -> tuple[str, ...]:
    """A family's label names: from its samples, else from what made it.

    prometheus-client has no public way to ask a labelled metric with no series yet for
    its label names, so this reads the attribute its constructors store them in.
    """
    for sample in family.samples:
        return tuple(k for k in sample.labels if k not in ("le", "quantile"))
    instruments: list[Any] = [*REGISTRY._collector_to_names, *POSTGRESQL_METRICS]
    for maker in (family, *instruments):
        if getattr(maker, "_name", family.name) == family.name and hasattr(maker, "_labelnames"):
            return tuple(maker._labelnames)
    return ()


# -- the command line, templates and hooks -------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of ``videosdk-watchdog`` (``silence add`` for a nested one)."""

    name: str
    help: str
    usage: str
    options: tuple[tuple[str, str], ...]  # (how it is written, its help)


def commands() -> list[Command]:
    """Every command, nested ones by their full name, in the parser's order."""
    return list(_commands(cli_parser(), ""))


def _commands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[Command]:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix}{name}"
            nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
            if not nested:
                yield Command(full, helps.get(name, ""), _usage(sub), tuple(_options(sub)))
            else:
                yield Command(full, helps.get(name, ""), _usage(sub), ())
                yield from _commands(sub, f"{full} ")


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage:").split())


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        choices = "{" + ",".join(action.choices) + "}" if action.choices else None
        value = str(action.metavar or choices or action.dest)
        if not action.option_strings:
            yield value, " ".join((action.help or "").split())
            continue
        written = ", ".join(action.option_strings)
        if action.nargs != 0:
            written += f" {action.metavar or choices or action.dest.upper()}"
        yield written, " ".join((action.help or "").split())


def template_variables() -> list[str]:
    """The names a rule's ``summary`` and ``description`` templates may use."""
    return list(VARIABLES)


def hooks() -> list[str]:
    """Every hook specification a plugin can implement."""
    return [
        name
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, f"{hookspecs.PROJECT}_spec")
    ]
