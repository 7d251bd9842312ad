"""The JSON Schemas an editor uses, checked with jsonschema itself against what ``check`` does.

An editor trusts the schema; the daemon trusts ``check``. Where the two disagree an operator
gets a red squiggle under a valid file, or a clean editor and a refused reload.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from watchdog.cli.main import main

ROOT = Path(__file__).parent.parent
Schema = dict[str, Any]


@pytest.fixture(scope="module")
def schemas() -> dict[str, Schema]:
    """Both schemas as ``videosdk-watchdog schema`` prints them (plugins loaded for config)."""
    out: dict[str, Schema] = {}
    for kind in ("config", "rules"):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["schema", kind]) == 0
        out[kind] = json.loads(printed.getvalue())
        # checked once here, ``$defs`` included: checking them again for each validator below
        # cost a minute of the suite and found nothing more
        jsonschema.Draft202012Validator.check_schema(out[kind])
    return out


def _validator(schema: Schema, sub: Schema | None = None) -> jsonschema.Draft202012Validator:
    """A validator for ``sub`` (default: the whole schema) that resolves the file's ``$defs``.

    The whole schema was checked by the ``schemas`` fixture; a ``sub`` is checked on its own
    (a metaschema check does not follow ``$ref``, so its ``$defs`` add nothing to it)."""
    if sub is None:
        return jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(sub)
    return jsonschema.Draft202012Validator({**sub, "$defs": schema.get("$defs", {})})


def _defaults(node: Any, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every subschema that declares a default, with where it is."""
    if isinstance(node, dict):
        if "default" in node:
            yield path, node
        for key, value in node.items():
            yield from _defaults(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _defaults(value, f"{path}/{i}")


@pytest.mark.parametrize("kind", ["config", "rules"])
def test_every_default_validates_against_its_own_schema(
    schemas: dict[str, Schema], kind: str
) -> None:
    found = list(_defaults(schemas[kind]))
    assert len(found) > 10
    for path, node in found:
        sub = {k: v for k, v in node.items() if k != "default"}
        errors = [e.message for e in _validator(schemas[kind], sub).iter_errors(node["default"])]
        assert not errors, f"{kind}{path}: default {node['default']!r}: {errors}"
        assert "PT" not in json.dumps(node["default"]), f"{kind}{path}: ISO-8601 default"


def test_duration_defaults_are_written_as_the_project_writes_them(
    schemas: dict[str, Schema],
) -> None:
    poll = schemas["config"]["$defs"]["PollSettings"]["properties"]["interval"]
    assert poll["default"] == "30s"
    repeat = schemas["config"]["$defs"]["AlertingSettings"]["properties"]["repeat_interval"]
    assert repeat["default"] == "4h"


def test_each_notifier_entry_is_its_plugins_own_config(schemas: dict[str, Schema]) -> None:
    """An editor completes a slack entry's keys and refuses a misspelt one, as ``check`` does."""
    config = schemas["config"]
    slack = config["$defs"]["slack_notifier"]
    assert {"channel", "token", "type", "repeat_interval", "group_wait"} <= set(slack["properties"])
    assert slack["properties"]["type"]["const"] == "slack"
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    _validator(config).validate(example)
    for entry in (
        {"type": "slack", "token": "xoxb-1", "chanel": "#oncall"},  # a misspelt key
        {"type": "console", "repeat_interval": "often"},  # an option's own type
        {"type": "nosuchplugin"},
    ):
        errors = list(_validator(config).iter_errors({"notifiers": {"n": entry}}))
        assert errors, entry


RULES = "rules:\n  - {name: r, metric: qualityScore.video, op: '<', threshold: 3}\n"


def _check_config(tmp_path: Path, body: str) -> int:
    """``check`` on a config that is valid but for ``body``'s sections."""
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "config.yaml"
    base = "videosdk: {api_key: key, secret_key: secret}\nrules: [rules.yaml]\n"
    if not body.startswith("notifiers:"):
        base += "notifiers: {console: {type: console}}\n"
    path.write_text(base + body)
    return main(["check", "--config", str(path)])


NOTIFIER_ENTRIES = [
    {"type": "console"},
    {"type": "console", "repeat_interval": "30 s"},
    {"type": "slack", "token": "xoxb-1", "channel": "#oncall"},
    {"type": "slack", "token": "xoxb-1", "chanel": "#oncall"},
    {"type": "webhook", "url": "https://example.com/hook", "timeout": True},
    {"type": "webhook", "url": "https://example.com/hook", "timeout": 5},
    {"type": "teams", "url": "https://example.com/workflows/w/invoke?sig=s1"},
    {"type": "teams", "url": "https://example.com/workflows/w/invoke?sig=s1", "timeout": 0},
    {"type": "teams", "url": "https://example.com/workflows/w/invoke?sig=s1", "chanel": "x"},
    {"type": "teams"},
    {"type": "apprise", "urls": ["json://127.0.0.1/hook", "ntfy://127.0.0.1/oncall"]},
    {"type": "apprise", "urls": "json://127.0.0.1/hook ntfy://127.0.0.1/oncall"},
    {"type": "apprise", "urls": []},
    {"type": "apprise", "urls": ["json://127.0.0.1/hook"], "format": "html"},
]


@pytest.mark.parametrize("entry", NOTIFIER_ENTRIES, ids=json.dumps)
def test_schema_and_check_agree_on_notifier_entries(
    schemas: dict[str, Schema], tmp_path: Path, entry: dict[str, Any]
) -> None:
    document = {"notifiers": {"n": entry}}
    by_schema = _validator(schemas["config"]).is_valid(document)
    by_check = _check_config(tmp_path, yaml.safe_dump({"notifiers": {"n": entry}})) == 0
    assert by_schema == by_check, f"schema says {by_schema}, check says {by_check}"


DURATIONS: list[Any] = ["30s", "30 s", "1h 30m", " 5m ", "3 0s", "30", "PT30S", True, -1, 0, 2.5]


@pytest.mark.parametrize("value", DURATIONS, ids=repr)
def test_schema_and_check_agree_on_durations(
    schemas: dict[str, Schema], tmp_path: Path, value: Any
) -> None:
    document = {"poll": {"interval": value}}
    by_schema = _validator(schemas["config"]).is_valid(document)
    by_check = _check_config(tmp_path, yaml.safe_dump(document)) == 0
    assert by_schema == by_check, f"schema says {by_schema}, check says {by_check}"


THRESHOLDS: list[Any] = [3, 3.5, True, False, "3", None]


@pytest.mark.parametrize("value", THRESHOLDS, ids=repr)
def test_schema_and_check_agree_on_thresholds(
    schemas: dict[str, Schema], tmp_path: Path, value: Any
) -> None:
    rule = {"name": "r", "metric": "qualityScore.video", "op": "<", "threshold": value}
    document = {"rules": [rule]}
    by_schema = _validator(schemas["rules"]).is_valid(document)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(document))
    by_check = main(["check", "--rules", str(rules)]) == 0
    assert by_schema == by_check, f"schema says {by_schema}, check says {by_check}"


def test_check_says_what_to_write_instead_of_a_bool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check_config(tmp_path, "poll:\n  interval: 30s\n  concurrency: yes\n") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'config.yaml'}:6: " in err
    assert "a number is expected, not true" in err
