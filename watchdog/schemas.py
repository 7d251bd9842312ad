"""JSON Schemas for the config and rule files, generated from the models that validate them.

Editors' YAML language servers use them for completion and inline errors;
being generated, they cannot drift from what ``check`` accepts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from watchdog.rules import Rule
from watchdog.ruletests import RuleTest
from watchdog.settings import Settings

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class RulesFile(BaseModel):
    """A videosdk-watchdog rules file."""

    model_config = ConfigDict(extra="forbid", title="videosdk-watchdog rules")

    rules: list[Rule] = Field(default_factory=list)
    tests: list[RuleTest] = Field(
        default_factory=list, description="test cases run by `videosdk-watchdog test-rules`"
    )


def schema(kind: Literal["config", "rules"]) -> dict[str, Any]:
    model: type[BaseModel] = RulesFile if kind == "rules" else Settings
    document = model.model_json_schema(by_alias=True)
    if kind == "config":
        document["title"] = "videosdk-watchdog config"
    return {"$schema": DIALECT, **document}
