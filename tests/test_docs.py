"""The docs cover the code: every setting, metric, command, template variable and hook.

As datasette's docs tests do, each test below fails when something the code has is not
documented in docs/, so adding a setting or a hook without its documentation fails here
(``make docs`` also fails when a reference table is rendered nowhere). The examples are
held to the code too: every rules file on the pages is checked and its test cases run,
every config example passes ``check``, and README.md stays a short door into the docs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import watchdog_reference as ref

from watchdog.cli.main import main

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = {path.name: path.read_text() for path in sorted(DOCS.glob("*.md"))}

API_KEY, SECRET = "docs-key", "docs-secret-0123456789abcdef0123456789"
A_RULE = """rules:
  - {name: poor-video, metric: qualityScore.video, op: "<", threshold: 3, labels: {team: video}}
"""


def _directives(name: str) -> list[str]:
    """The arguments of every ``{name}`` directive on the pages."""
    return [
        match.group(1).strip()
        for text in PAGES.values()
        for match in re.finditer(rf"^```\{{{name}\}}(.*)$", text, re.M)
    ]


def _captioned(caption: str) -> list[tuple[str, str]]:
    """(page, text) of every YAML block captioned as this file, in page order."""
    pattern = re.compile(r"^```\{code-block\} yaml\n:caption: (\S+)\n\n(.*?)^```$", re.M | re.S)
    return [
        (page, match.group(2))
        for page, text in PAGES.items()
        for match in pattern.finditer(text)
        if match.group(1) == caption
    ]


# -- settings -----------------------------------------------------------------------------


def test_every_setting_is_documented() -> None:
    """Each config key is in a rendered reference table, with a description."""
    rendered = set(_directives("watchdog-settings"))
    covered = {s.path for s in ref.settings() if (s.section or "top-level") in rendered}
    if "notifiers" in rendered:
        covered |= {s.path for s in ref.notifier_options()}
    every = ref.settings() + ref.notifier_options()
    assert sorted({s.path for s in every} - covered) == [], "config keys in no reference table"
    assert [s.path for s in every if not s.description] == [], "config keys without description"


def test_every_notifier_types_keys_are_documented() -> None:
    rendered = set(_directives("watchdog-notifier-config"))
    types = ref.notifier_types()
    assert {"console", "slack", "email", "webhook", "teams", "apprise"} <= set(types)
    assert sorted(set(types) - rendered) == [], "notifier types without a reference table"
    for name, kind in types.items():
        assert kind.description, name
        missing = [s.path for s in ref.notifier_settings(kind) if not s.description]
        assert missing == [], f"{name}: keys without description"


def test_the_reference_shows_defaults_as_config_files_write_them() -> None:
    shown = {s.path: s for s in ref.settings()}
    assert shown["poll.interval"].default == "30s"
    assert shown["poll.interval"].type == "duration > 0"
    assert shown["alerting.repeat_interval"].default == "4h"
    assert shown["alerting.group_by"].default == "[meeting_id, alertname]"
    assert shown["poll.concurrency"].type == "integer (≥ 1, ≤ 512)"
    assert shown["health.stale_after"].type == "duration > 0"
    assert shown["videosdk.request_deadline"].default == ref.UNSET
    assert shown["watch.participants[].session"].default == ref.REQUIRED
    email = {s.path: s for s in ref.notifier_settings(ref.notifier_types()["email"])}
    assert "from" in email  # the key the file writes, not the model's field name


# -- metrics, commands, template variables, hooks ------------------------------------------


def test_every_metric_is_documented() -> None:
    """The metrics table is generated; each metric needs a meaning (its HELP text).

    tests/test_metrics_docs.py holds the generated list to what real daemons export.
    """
    assert _directives("watchdog-metrics") == [""], "one metrics table"
    found = ref.metrics()
    assert len(found) > 30
    assert [m.name for m in found if len(m.help) < 10] == []
    # the pages name only metrics that exist (histograms also by their series); plugin
    # modules (watchdog_slack, the guide's watchdog_pager) share the prefix
    modules = {f"watchdog_{name}" for name in ref.notifier_types()} | {"watchdog_pager"}
    mentioned = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for text in PAGES.values()
        for name in re.findall(r"\b(watchdog_[a-z_]+[a-z])\b", text)
    }
    assert sorted(mentioned - modules - {m.name for m in found}) == []


def test_every_command_is_documented() -> None:
    """Each command has a row in the commands table of docs/cli.md."""
    table = PAGES["cli.md"]
    commands = ref.commands()
    assert {"run", "check", "replay", "silence add", "outbox retry"} <= {c.name for c in commands}
    undocumented = [
        c.name for c in commands if not re.search(rf"^\| `{re.escape(c.name)}[ `]", table, re.M)
    ]
    assert undocumented == []
    assert _directives("watchdog-commands") == [""]
    assert [c.name for c in commands if not c.help] == []


def test_every_template_variable_is_documented() -> None:
    text = PAGES["rules.md"]
    table = text[text.index("(template-variables)=") :]
    table = table[: table.index("\n\n")]
    documented = set(
        re.findall(r"`([a-z_]+)`", "\n".join(re.findall(r"^\| ([^|]*)\|", table, re.M)))
    )
    assert sorted(set(ref.template_variables()) - documented) == []
    assert sorted(documented - set(ref.template_variables())) == [], "documented, not given"


def test_every_hook_is_documented() -> None:
    hooks = ref.hooks()
    assert hooks == ["register_notifier_types"]
    for hook in hooks:
        assert f"**`{hook}(" in PAGES["plugins.md"], hook


def test_the_public_api_is_one_list() -> None:
    """The guide's table of public modules and the API reference name the same modules."""
    guide = PAGES["plugins.md"]
    table = guide[guide.index("## The public API") : guide.index("## Hooks")]
    listed = re.findall(r"^\| `(watchdog\.[a-z_]+)` \|", table, re.M)
    assert listed == list(ref.PUBLIC_MODULES)
    documented = re.findall(r"^\.\. automodule:: (\S+)$", PAGES["api.md"], re.M)
    assert documented == list(ref.PUBLIC_MODULES)


# -- examples -------------------------------------------------------------------------------

RULES = _captioned("rules.yaml")
CONFIGS = _captioned("config.yaml")


def test_every_rules_example_on_the_rules_page_is_run() -> None:
    """No YAML block on the rules page escapes the tests below, and most carry tests."""
    page = PAGES["rules.md"]
    yaml_blocks = re.findall(r"^```(?:\{code-block\} )?yaml\n(?::caption: (\S+))?", page, re.M)
    assert yaml_blocks
    assert all(caption == "rules.yaml" for caption in yaml_blocks)
    with_tests = [text for page, text in RULES if page == "rules.md" and "\ntests:" in text]
    assert len(with_tests) >= 8


@pytest.mark.parametrize(
    "text", [t for _, t in RULES], ids=[f"{p}-{i}" for i, (p, _) in enumerate(RULES)]
)
def test_a_rules_example_is_valid_and_its_tests_pass(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    assert main(["check", "--rules", str(path)]) == 0, capsys.readouterr()
    if "\ntests:" in text:
        assert main(["test-rules", str(path)]) == 0, capsys.readouterr().out
        assert ", 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text", [t for _, t in CONFIGS], ids=[f"{p}-{i}" for i, (p, _) in enumerate(CONFIGS)]
)
def test_a_config_example_passes_check(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As an operator would use it: a rules file beside it, credentials and the secrets the
    example says come from the environment (``# token: from WATCHDOG_...``) set there."""
    (tmp_path / "rules.yaml").write_text(A_RULE)
    # an example showing one section gets the rest a config needs
    if not re.search(r"^rules:", text, re.M):
        text += "rules: [rules.yaml]\n"
    if not re.search(r"^notifiers:", text, re.M):
        text += "notifiers: {console: {type: console}}\n"
    (tmp_path / "config.yaml").write_text(text)
    monkeypatch.setenv("VIDEOSDK_API_KEY", API_KEY)
    monkeypatch.setenv("VIDEOSDK_SECRET_KEY", SECRET)
    monkeypatch.setenv("WATCHDOG_STATE__URL", str(tmp_path / "state.db"))
    for variable in re.findall(r"from (WATCHDOG_[A-Z0-9_]+)", text):
        # 32 letters and digits: fits every secret's shape, a PagerDuty routing key's too;
        # a Slack app-level token is told apart from a bot token by its prefix
        shape = "xapp-1-A0-1-" if variable.endswith("__APP_TOKEN") else ""
        monkeypatch.setenv(variable, shape + "SecretFromTheEnvironment01234567")
    assert main(["check", "--config", str(tmp_path / "config.yaml")]) == 0, capsys.readouterr()
    assert "warning" not in capsys.readouterr().err


def test_the_pages_carry_config_examples() -> None:
    assert {page for page, _ in CONFIGS} >= {
        "configuration.md",
        "alerting.md",
        "notifiers.md",
        "simulator.md",
    }


# -- README -------------------------------------------------------------------------------


def test_the_readme_is_a_short_door_into_the_docs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    first = re.match(r"# [^\n]+\n\n```\n(.*?)```", text, re.S)  # right under the title
    assert first, "the two commands come first"
    assert re.findall(r"^make (\w+)", first.group(1), re.M) == ["demo", "test"]
    linked = set(re.findall(r"\]\(docs/([a-z-]+)\.md", text))
    assert linked >= {p.removesuffix(".md") for p in PAGES} - {"index"}


def _slug(heading: str) -> str:
    """A heading's anchor as MyST (and a forge) makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("path", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_lead_somewhere(path: Path) -> None:
    """Links work on a forge as in the built site: files exist, anchors are headings."""
    for target in re.findall(r"\]\(([^):]+)\)", path.read_text()):
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: {target}"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.M)
            assert anchor in {_slug(h) for h in headings}, f"{path.name}: {target}"
