"""Operators' mistakes, each told how to fix it: the closest known name, the key a typo
leaves missing, YAML indentation in words, ignored variables, plugins that need a restart.

Through the real CLI (``check``) in-process, and a daemon for startup and reload.
"""

from __future__ import annotations

import contextlib
import io
import signal
from pathlib import Path

import pytest
import yaml

from watchdog.cli.main import main
from watchdog.sim.simulator import Simulator

from .conftest import POOR_VIDEO, write_config
from .processes import Daemon
from .sitedirs import env_with_path, fake_distribution


def check(*args: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", *args])
    return code, err.getvalue().splitlines()


def check_rules(tmp_path: Path, text: str) -> list[str]:
    """The problems of a rules file, without the path (check must exit 2)."""
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    code, err = check("--rules", str(path))
    assert code == 2, err
    assert all(line.startswith(f"{path}:") for line in err), err
    return [line.removeprefix(f"{path}:") for line in err]


def test_a_typo_in_a_required_key_says_which_key_is_then_missing(tmp_path: Path) -> None:
    text = POOR_VIDEO.replace("threshold: 3", "thresold: 3")
    assert check_rules(tmp_path, text) == [
        "5: rule 'poor-video': unknown key 'thresold': did you mean 'threshold'? "
        "(and 'threshold' is then missing)"
    ]


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        ("severty: critical", "unknown key 'severty': did you mean 'severity'?"),
        ("fro: 30s", "unknown key 'fro': did you mean 'for'?"),
        ("match: {devcie: Chrome}", "match: unknown key 'devcie': did you mean 'device'?"),
        (
            "spike: {basline: 5m, factor: 3}",
            "spike: unknown key 'basline': did you mean 'baseline'? (and 'baseline' is then "
            "missing)",
        ),
        ("zzzz: 1", "unknown key 'zzzz'; known keys: absent, aggregate, description, exclude"),
    ],
)
def test_unknown_rule_keys_name_the_closest(tmp_path: Path, typo: str, expected: str) -> None:
    (problem,) = check_rules(tmp_path, POOR_VIDEO + f"    {typo}\n")
    assert problem.startswith(f"8: rule 'poor-video': {expected}")


def test_a_misspelt_name_is_reported_once_not_also_as_missing(tmp_path: Path) -> None:
    text = POOR_VIDEO.replace("  - name: poor-video", "  - nmae: poor-video")
    assert check_rules(tmp_path, text) == [
        "2: rules[0]: unknown key 'nmae': did you mean 'name'? (and 'name' is then missing)"
    ]


def test_unknown_metric_names_suggest_the_closest(tmp_path: Path) -> None:
    text = POOR_VIDEO.replace("qualityScore.video", "qualityScore.vidoe") + (
        "tests:\n  - name: t\n    input:\n      - participant: p\n"
        "        series: {averageVideoRt: '1 2'}\n"
    )
    assert check_rules(tmp_path, text) == [
        "3: rule 'poor-video': metric unknown metric 'qualityScore.vidoe': "
        "did you mean 'qualityScore.video'?"
    ]
    text = POOR_VIDEO + (
        "tests:\n  - name: t\n    input:\n      - participant: p\n"
        "        series: {averageVideoRt: '1 2'}\n"
    )
    assert check_rules(tmp_path, text) == [
        "12: tests[0].input[0].series: unknown metric 'averageVideoRt': "
        "did you mean 'averageVideoRtt'?"
    ]


def test_unknown_template_variables_suggest_the_closest(tmp_path: Path) -> None:
    text = POOR_VIDEO + '    summary: "{{ participant }}\\n{{ partcipant_name }} is unhappy"\n'
    assert check_rules(tmp_path, text) == [
        "8: rule 'poor-video': summary bad template: unknown variable 'partcipant_name': "
        "did you mean 'participant_name'? (template line 2)"
    ]


def test_an_unknown_top_level_key_suggests_rules(tmp_path: Path) -> None:
    text = POOR_VIDEO.replace("rules:", "rule:")
    assert check_rules(tmp_path, text) == [
        "1: unknown top-level key 'rule': did you mean 'rules'?; a rules file has 'rules:' "
        "(and 'tests:')"
    ]


def test_an_unquoted_template_is_explained(tmp_path: Path) -> None:
    text = POOR_VIDEO + "    description: {{ participant }}\n"
    assert check_rules(tmp_path, text) == [
        "8: a key must be text or a number; a value that starts with '{' is a mapping, so quote "
        'templates: summary: "{{ participant }} ..."'
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            POOR_VIDEO.replace("threshold: 3", "threshold:3"),
            5,
            "could not find expected ':': this line is not 'key: value': put a space after "
            "the ':' (threshold: 3, not threshold:3)",
        ),
        (
            POOR_VIDEO.replace("    op:", "      op:"),
            4,
            "mapping values are not allowed here: a ':' YAML cannot take here: either this "
            "line is indented deeper than the key above it (keys of one mapping start in the "
            "same column), or a value contains ': ' and must be quoted",
        ),
        (
            POOR_VIDEO.replace("    op:", "   op:"),
            4,
            "this line's indentation matches no block above it: keys of one mapping, and the "
            "'- ' of the items of one list, start in the same column",
        ),
        (
            POOR_VIDEO.replace("    op:", "\top:"),
            4,
            "a tab: YAML indents with spaces only; replace it with spaces",
        ),
        (
            POOR_VIDEO + "    summary: video: poor\n",
            8,
            "or a value contains ': ' and must be quoted (summary: \"video: poor\")",
        ),
        (
            POOR_VIDEO + "    labels: {team: video\n",
            9,
            "a '{' mapping is not closed with '}' or lacks a ',' between entries",
        ),
        (
            POOR_VIDEO + "    summary: 'unclosed\n",
            9,
            "a quote or bracket opened here is never closed (the quote opens at line 8)",
        ),
        (POOR_VIDEO + "    notify: @oncall\n", 8, "a value cannot start with this character"),
    ],
)
def test_yaml_syntax_errors_are_explained_in_words(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    (problem,) = check_rules(tmp_path, text)
    assert problem.startswith(f"{line}: YAML syntax error: ")
    assert words in problem


def line_of(config: Path, key: str) -> int:
    text = config.read_text().splitlines()
    return 1 + next(i for i, line in enumerate(text) if line.strip().startswith(key))


def test_config_typos_name_the_closest_section_and_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        [("s", "p")],
        POOR_VIDEO,
        pol={"interval": "5s"},
        poll={"intervl": "5s"},
    )
    assert check("--config", str(config)) == (
        2,
        [
            f"{config}:{line_of(config, 'intervl:')}: poll: unknown key 'intervl': "
            "did you mean 'interval'?",
            f"{config}:{line_of(config, 'pol:')}: unknown key 'pol': did you mean 'poll'?",
        ],
    )


def test_notifier_typos_name_the_closest_option_and_type(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        [("s", "p")],
        POOR_VIDEO,
        notifiers={"a": {"type": "console", "strem": "stdout"}, "b": {"type": "consle"}},
    )
    code, err = check("--config", str(config))
    assert code == 2
    assert err[0] == (
        f"{config}:{line_of(config, 'strem:')}: notifiers.a: unknown key 'strem': "
        "did you mean 'stream'?"
    )
    hint, available = err[1].split(" (available: ")
    assert hint == (
        f"{config}:{line_of(config, 'b:')}: notifiers.b: unknown type 'consle': "
        "did you mean 'console'?"
    )
    # every installed type, in order (alertmanager and apprise now come before console)
    types = available.removesuffix(")").split(", ")
    assert "console" in types
    assert types == sorted(types)


def test_an_unknown_watchdog_variable_is_a_warning_naming_the_closest_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO)
    monkeypatch.setenv("WATCHDOG_POL__INTERVAL", "5s")
    monkeypatch.setenv("WATCHDOG_POLL_CONCURRENCY", "2")
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # systemd's watchdog, not a setting
    monkeypatch.setenv("WATCHDOG_LOG__LEVEL", "info")
    code, err = check("--config", str(config))
    assert code == 0
    assert err == [
        "environment variable WATCHDOG_POLL_CONCURRENCY: warning: unknown settings section "
        "'poll_concurrency'; nested keys take two underscores: WATCHDOG_POLL__...; "
        "the variable is ignored",
        "environment variable WATCHDOG_POL__INTERVAL: warning: unknown settings section 'pol': "
        "did you mean 'poll'?; the variable is ignored",
    ]


PAGER_PLUGIN = """
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import NotifierConfig, NotifierType


class PagerConfig(NotifierConfig):
    pass


class Pager:
    def __init__(self, context):
        pass

    def send(self, notification):
        pass


@hookimpl
def register_notifier_types(register):
    register(NotifierType("pager", PagerConfig, Pager))
"""


def test_startup_warns_of_unknown_variables_and_reload_asks_for_a_restart_for_new_plugins(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.add_participant("sess-1", "part-1", samples=[])
    config = write_config(tmp_path, sim.url, [("sess-1", "part-1")], POOR_VIDEO)
    site = tmp_path / "site"
    site.mkdir()
    daemon = Daemon(
        ["run", "--config", str(config)],
        env=env_with_path(site, WATCHDOG_POL__INTERVAL="5s"),
    )
    try:
        warned = daemon.wait_for(r"WATCHDOG_POL__INTERVAL", stream="err")
        assert "unknown settings section 'pol': did you mean 'poll'?" in warned
        daemon.wait_for(r"watching 1 participants", stream="err")

        # the pager plugin is installed while the daemon runs, and the config starts using it
        fake_distribution(
            site,
            "watchdog-pager",
            entry_points={"pager": "watchdog_pager"},
            modules={"watchdog_pager": PAGER_PLUGIN},
        )
        settings = yaml.safe_load(config.read_text())
        settings["notifiers"]["oncall"] = {"type": "pager"}
        config.write_text(yaml.safe_dump(settings))
        daemon.proc.send_signal(signal.SIGHUP)
        rejected = daemon.wait_for(r"reload rejected", stream="err")
        assert (
            "notifiers.oncall: notifier type 'pager' comes from plugin 'pager', installed after "
            "the daemon started: restart to load new plugins" in rejected
        )
        assert daemon.stop() == 0
    finally:
        daemon.kill()

    # after the restart the plugin loads and the same config runs
    restarted = Daemon(["run", "--config", str(config)], env=env_with_path(site))
    try:
        restarted.wait_for(r"watching 1 participants.*2 notifiers: console, oncall", stream="err")
        assert restarted.stop() == 0
    finally:
        restarted.kill()
