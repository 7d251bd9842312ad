"""JSON Schemas for the config and rule files, generated from the models that validate them.

Editors' YAML language servers use them for completion and inline errors;
being generated, they cannot drift from what ``check`` accepts. Each
``notifiers:`` entry is the installed plugin's own config model plus the
alert-manager options, told apart by ``type`` (a discriminated union), so an
editor completes a Slack entry's keys once it reads ``type: slack``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from pydantic.json_schema import GenerateJsonSchema

from watchdog.config.settings import NotifierOptions, Settings
from watchdog.durations import format_duration
from watchdog.engine.rules import Rule
from watchdog.engine.ruletests import RuleTest
from watchdog.notifiers import NotifierType

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class RulesFile(BaseModel):
    """A videosdk-watchdog rules file."""

    model_config = ConfigDict(extra="forbid", title="videosdk-watchdog rules")

    rules: list[Rule] = Field(default_factory=list)
    tests: list[RuleTest] = Field(
        default_factory=list, description="test cases run by `videosdk-watchdog test-rules`"
    )


class _ProjectSchema(GenerateJsonSchema):
    """Defaults written as people write them: ``30s``, not pydantic's ISO-8601 ``PT30S``."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def schema(
    kind: Literal["config", "rules"], notifier_types: Mapping[str, NotifierType[Any]] | None = None
) -> dict[str, Any]:
    """The file's schema; for the config, ``notifiers`` entries as the given types validate them."""
    model: type[BaseModel] = RulesFile if kind == "rules" else Settings
    document = model.model_json_schema(by_alias=True, schema_generator=_ProjectSchema)
    if kind == "config":
        document["title"] = "videosdk-watchdog config"
        if notifier_types:
            _type_notifiers(document, notifier_types)
    return {"$schema": DIALECT, **document}


def _type_notifiers(
    document: dict[str, Any], notifier_types: Mapping[str, NotifierType[Any]]
) -> None:
    entries = [_entry_model(kind) for _, kind in sorted(notifier_types.items())]
    entry: Any = entries[0] if len(entries) == 1 else Union[tuple(entries)]  # noqa: UP007
    adapter: TypeAdapter[Any] = TypeAdapter(
        dict[str, Annotated[entry, Field(discriminator="type")]]
    )
    notifiers = adapter.json_schema(by_alias=True, schema_generator=_ProjectSchema)
    document.setdefault("$defs", {}).update(notifiers.pop("$defs", {}))
    notifiers["description"] = (
        "Named notifier entries; `type` picks the plugin whose config model validates the rest "
        f"(installed: {', '.join(sorted(notifier_types))})."
    )
    notifiers["title"] = "Notifiers"
    document["properties"]["notifiers"] = notifiers


def _entry_model(kind: NotifierType[Any]) -> type[BaseModel]:
    """The plugin's config with ``type`` and the alert-manager options beside its own keys."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in NotifierOptions.model_fields.items()
    }
    tag: Any = Literal[kind.name]  # a Literal built at run time, one per installed type
    fields["type"] = (tag, Field(description=f"the {kind.name} plugin ({kind.plugin})"))
    model: type[BaseModel] = create_model(
        f"{kind.name}_notifier",
        __base__=kind.config,
        __doc__=kind.description or kind.config.__doc__,
        **fields,
    )
    return model
