"""Sphinx directives that render the reference tables from the code at build time.

``watchdog-settings SECTION``, ``watchdog-notifier-config TYPE``, ``watchdog-metrics`` and
``watchdog-commands`` write Markdown tables and lists from :mod:`watchdog_reference` and
parse them as the page's own text. Once every page is read, anything the code has that
no page rendered is a warning, and the build runs with warnings as errors: a new setting
section, notifier type, metric or command cannot go undocumented.
"""

from __future__ import annotations

from collections.abc import Iterable, Set

import watchdog_reference as ref
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

log = logging.getLogger(__name__)

# what a page rendered, by page: {docname: {"settings:poll", "notifier:slack", ...}}
RENDERED = "watchdog_rendered"
TOP_LEVEL = "top-level"  # the SECTION argument for the file's keys that are not sections


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _default(text: str) -> str:
    """A value as code; the words for none (``unset``, ``required``) as words."""
    return text if text in ref.NO_VALUE or not text else f"`{text}`"


def _settings_table(settings: Iterable[ref.Setting]) -> str:
    return _table(
        ("key", "type", "default", "description"),
        ((f"`{s.path}`", s.type, _default(s.default), s.description) for s in settings),
    )


class _Rendering(SphinxDirective):
    """A directive that remembers what it rendered, for the completeness check."""

    def _note(self, what: str) -> None:
        rendered: dict[str, set[str]] = getattr(self.env, RENDERED, {})
        rendered.setdefault(self.env.docname, set()).add(what)
        setattr(self.env, RENDERED, rendered)


class SettingsDirective(_Rendering):
    """The keys of one config section (``poll``), or the top-level keys (``top-level``)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        section = self.arguments[0]
        if section == "notifiers":
            rows = ref.notifier_options()
        else:
            wanted = ref.ROOT_SECTION if section == TOP_LEVEL else section
            rows = [s for s in ref.settings() if s.section == wanted]
        if not rows:
            raise self.error(f"no config section {section!r}")
        self._note(f"settings:{section}")
        return self.parse_text_to_nodes(_settings_table(rows))


class NotifierConfigDirective(_Rendering):
    """One notifier type's entry keys, from its plugin's config model."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        kind = ref.notifier_types().get(self.arguments[0])
        if kind is None:
            raise self.error(
                f"notifier type {self.arguments[0]!r} is not installed "
                f"(installed: {', '.join(ref.notifier_types())})"
            )
        self._note(f"notifier:{kind.name}")
        intro = f"{kind.description} Plugin: `{kind.plugin}`.\n\n" if kind.description else ""
        return self.parse_text_to_nodes(intro + _settings_table(ref.notifier_settings(kind)))


class MetricsDirective(_Rendering):
    """Every metric /metrics exports; ``name: text`` lines in the content add notes."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        found = {m.name: m for m in ref.metrics()}
        notes: dict[str, str] = {}
        for line in self.content:
            name, sep, note = line.partition(":")
            if not sep or name.strip() not in found:
                raise self.error(f"note for {name.strip()!r}, which no daemon exports")
            notes[name.strip()] = note.strip()
        self._note("metrics")
        rows = []
        for metric in found.values():
            text = f"{metric.help}. {notes.get(metric.name, '')}".strip()
            if metric.postgresql_only:
                text = f"PostgreSQL only: {text}"
            labels = ", ".join(f"`{label}`" for label in metric.labels)
            rows.append((f"`{metric.name}`", metric.type, labels, text))
        return self.parse_text_to_nodes(_table(("metric", "type", "labels", "meaning"), rows))


class CommandsDirective(_Rendering):
    """Every command of ``videosdk-watchdog``: its usage and options."""

    def run(self) -> list[nodes.Node]:
        self._note("commands")
        lines = []
        for command in ref.commands():
            lines.append(f"- **`{command.name}`**: {command.help}. `{command.usage}`")
            lines += [f"  - `{written}`: {text}" if text else f"  - `{written}`"
                      for written, text in command.options]  # fmt: skip
        return self.parse_text_to_nodes("\n".join(lines) + "\n")


def _expected() -> set[str]:
    sections = {s.section for s in ref.settings()} - {ref.ROOT_SECTION}
    return (
        {f"settings:{s}" for s in (*sections, TOP_LEVEL, "notifiers")}
        | {f"notifier:{name}" for name in ref.notifier_types()}
        | {"metrics", "commands"}
    )


def _check_complete(app: Sphinx, env: BuildEnvironment) -> None:
    rendered: dict[str, set[str]] = getattr(env, RENDERED, {})
    done: Set[str] = set().union(*rendered.values()) if rendered else set()
    for missing in sorted(_expected() - done):
        log.warning("the docs render no reference for %s", missing, type="watchdog")


def _purge(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    getattr(env, RENDERED, {}).pop(docname, None)


def _merge(app: Sphinx, env: BuildEnvironment, docnames: Set[str], other: BuildEnvironment) -> None:
    rendered: dict[str, set[str]] = getattr(env, RENDERED, {})
    rendered.update(getattr(other, RENDERED, {}))
    setattr(env, RENDERED, rendered)


def setup(app: Sphinx) -> ExtensionMetadata:
    app.add_directive("watchdog-settings", SettingsDirective)
    app.add_directive("watchdog-notifier-config", NotifierConfigDirective)
    app.add_directive("watchdog-metrics", MetricsDirective)
    app.add_directive("watchdog-commands", CommandsDirective)
    app.connect("env-check-consistency", _check_complete)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
