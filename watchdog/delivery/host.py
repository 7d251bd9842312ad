"""Loads plugins from the ``videosdk_watchdog`` entry points, one at a time.

A plugin that fails to import or to register is recorded with its error
(``videosdk-watchdog plugins`` shows it) and the others still load.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pluggy
from pydantic import BaseModel, ValidationError

from watchdog import hookspecs
from watchdog.config.numbers import number_problem
from watchdog.config.problems import ConfigError, Problem, did_you_mean
from watchdog.config.settings import NOTIFIER_CORE_KEYS, Config
from watchdog.config.yamlfile import model_fields_at, unknown_key
from watchdog.notifiers import (
    DEFAULT_RETENTION,
    AlertActions,
    Notifier,
    NotifierContext,
    NotifierState,
    NotifierType,
)
from watchdog.redaction import Redactor, secret_values

log = logging.getLogger(__name__)

LOAD_ENV = "WATCHDOG_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    notifier_types: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "notifier_types": self.notifier_types,
            "error": self.error,
        }


def _allowed() -> set[str] | None:
    raw = os.environ.get(LOAD_ENV)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginHost:
    """The plugin manager plus the notifier types plugins registered."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.notifier_types: dict[str, NotifierType[Any]] = {}
        self.build_errors: dict[str, str] = {}
        # entry points installed when this host loaded them (None: it never did)
        self.entry_points: set[str] | None = None

    def load_entry_points(self, only: set[str] | None = None) -> None:
        """Load every allowed entry point (or ``only`` these) and remember which existed."""
        allowed = _allowed()
        found = importlib.metadata.entry_points(group=hookspecs.PROJECT)
        self.entry_points = {entry.name for entry in found}
        for entry in found:
            if (allowed is not None and entry.name not in allowed) or (
                only is not None and entry.name not in only
            ):
                continue
            dist = entry.dist
            info = PluginInfo(
                name=entry.name,
                module=entry.value,
                distribution=dist.metadata["Name"] if dist else None,
                version=dist.version if dist else None,
            )
            try:
                plugin = entry.load()
            except Exception as exc:
                info.error = f"import failed: {type(exc).__name__}: {exc}"
                log.error("plugin %s failed to load: %s", entry.name, info.error)
                log.debug("%s", traceback.format_exc())
                self.plugins[entry.name] = info
                continue
            self.add(plugin, info)

    def add(self, plugin: object, info: PluginInfo | str) -> PluginInfo:
        """Register one plugin object and collect its notifier types."""
        if isinstance(info, str):
            info = PluginInfo(name=info, module=getattr(plugin, "__name__", repr(plugin)))
        self.plugins[info.name] = info
        try:
            self.manager.register(plugin, name=info.name)
            others = [p for p in self.manager.get_plugins() if p is not plugin]
            caller = self.manager.subset_hook_caller("register_notifier_types", others)
            registered: list[NotifierType[Any]] = []
            caller(register=registered.append)
        except Exception as exc:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            info.error = f"registration failed: {type(exc).__name__}: {exc}"
            log.error("plugin %s failed to register: %s", info.name, info.error)
            return info
        for kind in registered:
            if kind.name in self.notifier_types:
                owner = self.notifier_types[kind.name].plugin
                info.error = f"notifier type {kind.name!r} is already registered by {owner}"
                log.error("plugin %s: %s", info.name, info.error)
                continue
            # every field the plugin set (send_acknowledged too), with the plugin's name
            self.notifier_types[kind.name] = replace(kind, plugin=info.name)
            info.notifier_types.append(kind.name)
        return info

    def validate(
        self, entries: Mapping[str, Mapping[str, Any]], where: Any = None
    ) -> dict[str, BaseModel]:
        """Validate each ``notifiers:`` entry against its type's model.

        ``where(*loc) -> (file, line)`` places problems in the config file.
        """
        problems: list[Problem] = []
        configs: dict[str, BaseModel] = {}
        for name, entry in entries.items():
            file, line = where("notifiers", name) if where else ("config", None)
            kind = self.notifier_types.get(str(entry.get("type")))
            if kind is None:
                message = self._unknown_type(str(entry.get("type")))
                problems.append(Problem(file, line, f"notifiers.{name}: {message}"))
                continue
            # the alert manager's keys (send_resolved, repeat_interval, ...) are the core's
            body = {k: v for k, v in entry.items() if k not in NOTIFIER_CORE_KEYS}
            # true/false for a number: the schema refuses it, so check does too (any plugin)
            wrong = [
                (key, p) for key, v in body.items() if (p := number_problem(kind.config, key, v))
            ]
            for key, message in wrong:
                efile, eline = where("notifiers", name, key) if where else (file, line)
                problems.append(Problem(efile, eline, f"notifiers.{name}.{key}: {message}"))
            if wrong:
                continue
            try:
                configs[name] = kind.config.model_validate(body)
            except ValidationError as exc:
                for error in exc.errors(include_url=False, include_input=False):
                    loc = tuple(error["loc"])
                    efile, eline = where("notifiers", name, *loc) if where else (file, line)
                    message = error["msg"].removeprefix("Value error, ")
                    if error["type"] == "extra_forbidden":
                        loc, message = loc[:-1], _unknown_key(kind.config, loc, body)
                    field_name = "".join(f".{p}" for p in loc)  # empty: the entry as a whole
                    problems.append(
                        Problem(efile, eline, f"notifiers.{name}{field_name}: {message}")
                    )
        if problems:
            raise ConfigError(problems)
        return configs

    def _unknown_type(self, kind: str) -> str:
        """Why a type is unknown: a typo, or a plugin installed after this host loaded."""
        new = self.new_types()
        if kind in new:
            return (
                f"notifier type {kind!r} comes from plugin {new[kind]!r}, installed after the "
                "daemon started: restart to load new plugins"
            )
        known = ", ".join(sorted(self.notifier_types)) or "none loaded"
        hint = did_you_mean(kind, self.notifier_types)
        return f"unknown type {kind!r}{hint} (available: {known})"

    def new_types(self) -> dict[str, str]:
        """Notifier types of plugins installed since this host loaded its entry points
        (type -> plugin), read by loading only those into a separate host."""
        if self.entry_points is None:
            return {}
        installed = {e.name for e in importlib.metadata.entry_points(group=hookspecs.PROJECT)}
        if not installed - self.entry_points:
            return {}
        scratch = PluginHost()
        scratch.load_entry_points(only=installed - self.entry_points)
        return {name: kind.plugin for name, kind in scratch.notifier_types.items()}

    def build(
        self,
        entries: Mapping[str, Mapping[str, Any]],
        state: Callable[[str], NotifierState],
        where: Any = None,
        actions: AlertActions | None = None,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> dict[str, Notifier]:
        """One notifier per entry; ``state(name)`` gives each its durable memory,
        ``retention`` (``history.retention``) how long what it keeps for reports may live.

        A factory that raises or returns something without ``send`` is logged and
        recorded in ``build_errors``; the other notifiers are built regardless, and
        the broken one's notifications wait in the outbox until it works.
        """
        configs = self.validate(entries, where)
        notifiers: dict[str, Notifier] = {}
        self.build_errors = {}
        for name, config in configs.items():
            kind = self.notifier_types[str(entries[name]["type"])]
            redactor = Redactor.of(config)
            context = NotifierContext(
                name=name,
                config=config,
                logger=redactor.install(logging.getLogger(f"watchdog.notifier.{name}")),
                state=state(name),
                actions=actions,
                redactor=redactor,
                retention=retention,
            )
            try:
                notifier: object = kind.factory(context)
            except Exception as exc:
                self.build_errors[name] = redactor(f"{type(exc).__name__}: {exc}")
            else:
                if isinstance(notifier, Notifier):
                    notifiers[name] = notifier
                    continue
                self.build_errors[name] = f"factory returned {type(notifier).__name__}, no send()"
            log.error(
                "notifier %s (type %s from plugin %s) failed to start: %s",
                name,
                kind.name,
                kind.plugin,
                self.build_errors[name],
            )
        return notifiers


def _unknown_key(model: type[BaseModel], loc: tuple[Any, ...], body: Mapping[str, Any]) -> str:
    """An unknown key in a notifier entry, with the closest key its plugin (or the core)
    accepts there."""
    fields = model_fields_at(model, loc[:-1])
    if fields is not None and not loc[:-1]:
        fields = (fields[0] | NOTIFIER_CORE_KEYS, fields[1])
    present: Any = body
    for part in loc[:-1]:
        present = present.get(part) if isinstance(present, dict) else None
    message, _ = unknown_key(str(loc[-1]), fields, present)
    return message


def config_redactor(config: Config, host: PluginHost) -> Redactor:
    """Every secret a config holds: the core's settings and each notifier entry's.

    The state URL's password counts too. A notifier entry that does not validate,
    or whose plugin is not installed, cannot say which of its values are secret,
    so all of its text values are.
    """
    settings = config.settings
    found = [*secret_values(settings)]
    password = _password(settings.state.url)
    if password:
        found.append(password)
    for name, entry in settings.notifiers.items():
        try:
            model = host.validate({name: entry})[name]
        except ConfigError:
            found += _texts({k: v for k, v in entry.items() if k not in NOTIFIER_CORE_KEYS})
        else:
            found += secret_values(model)
    return Redactor(found)


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


def load_plugins() -> PluginHost:
    host = PluginHost()
    host.load_entry_points()
    return host
