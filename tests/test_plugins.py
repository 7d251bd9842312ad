"""Plugins load through the entry-point group, one at a time; the console notifier is one."""

from __future__ import annotations

import importlib
import inspect
import io
import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import watchdog_console
from watchdog_console import ConsoleConfig, ConsoleNotifier

from watchdog import hookspecs
from watchdog.alerts import Notification
from watchdog.cli.main import main
from watchdog.cli.notifytest import sample_alert
from watchdog.config.problems import ConfigError
from watchdog.delivery.host import PluginHost, load_plugins
from watchdog.notifiers import Register, retry_after_seconds
from watchdog.state.store import Store

from .sitedirs import PYTHON, env_with_path, fake_distribution


def test_every_hookspec_is_documented() -> None:
    specs = [
        f
        for name, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(f, "videosdk_watchdog_spec")
    ]
    assert specs
    for spec in specs:
        assert spec.__doc__, spec.__name__
        assert len(spec.__doc__.strip()) > 40, spec.__name__


def test_console_plugin_registers_through_the_entry_point() -> None:
    host = load_plugins()
    assert host.plugins["console"].distribution == "videosdk-watchdog"
    assert host.notifier_types["console"].plugin == "console"


def test_console_notifier_output_is_readable() -> None:
    out = io.StringIO()
    ConsoleNotifier(ConsoleConfig(), stream=out).send(
        Notification(id="n1", notifier="console", status="firing", alerts=(sample_alert(),))
    )
    text = out.getvalue()
    assert "FIRING [info] watchdog-test: Test Participant (test-participant)" in text
    assert "meeting test-meeting, session test-session" in text
    assert "qualityScore.video = 2.4 (threshold < 3)" in text


def test_console_shows_an_acknowledgement_notice_as_one_not_as_a_firing() -> None:
    out = io.StringIO()
    notice = Notification(
        id="n2",
        notifier="console",
        status="firing",
        alerts=(sample_alert(),),
        event="acknowledged",
        actor="alice (U0ALICE01)",
    )
    console = ConsoleNotifier(ConsoleConfig(), stream=out)
    console.send(notice)
    console.send(replace(notice, event="unacknowledged", actor="watchdog (ack_timeout)"))
    assert out.getvalue().splitlines() == [
        "👀 ACKNOWLEDGED by alice (U0ALICE01): watchdog-test: Test Participant "
        "(test-participant) in meeting test-meeting, session test-session",
        "↩️ UNACKNOWLEDGED by watchdog (ack_timeout): watchdog-test: Test Participant "
        "(test-participant) in meeting test-meeting, session test-session",
    ]


BUILT_IN = {  # plugin: its notifier types, as `plugins` lists them (issue 19 added four)
    "alertmanager": "alertmanager",
    "apprise": "apprise",
    "console": "console",
    "email": "email",
    "pagerduty": "pagerduty",
    "slack": "slack",
    "teams": "teams",
    "webhook": "webhook",
    "ntfy": "ntfy",  # the example plugin, its own distribution
}


def test_plugins_lists_every_built_in_type_with_its_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert BUILT_IN.keys() <= listed.keys()
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, kind in BUILT_IN.items():
        plugin = listed[name]
        version = importlib.import_module(plugin["module"]).__version__
        assert (plugin["version"], plugin["notifier_types"], plugin["error"]) == (
            version,
            [kind],
            None,
        )
        assert plugin["distribution"] == (
            "videosdk-watchdog-ntfy" if name == "ntfy" else "videosdk-watchdog"
        )
        line = f"{name} {version} ({plugin['module']}): notifier types: {kind}"
        assert line in lines


def test_notifier_config_is_validated_with_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_LOAD_PLUGINS", "console")  # a fixed list of available types
    host = load_plugins()
    with pytest.raises(ConfigError) as caught:
        host.validate(
            {"c": {"type": "console", "stream": "printer"}, "x": {"type": "pager"}},
            where=lambda *loc: ("config.yaml", len(loc)),
        )
    assert [str(p) for p in caught.value.problems] == [
        "config.yaml:3: notifiers.c.stream: Input should be 'stdout' or 'stderr'",
        "config.yaml:2: notifiers.x: unknown type 'pager' (available: console)",
    ]


def test_a_broken_plugin_is_reported_and_the_others_load(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "watchdog-broken",
        "0.3",
        entry_points={"broken": "watchdog_broken", "raises": "watchdog_raises"},
        modules={
            "watchdog_broken": "raise RuntimeError('missing dependency')\n",
            "watchdog_raises": (
                "from watchdog.hookspecs import hookimpl\n"
                "@hookimpl\n"
                "def register_notifier_types(register):\n"
                "    raise ValueError('bad registration')\n"
            ),
        },
    )
    result = subprocess.run(
        [PYTHON, "-m", "watchdog", "plugins", "--json"],
        env=env_with_path(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1  # a deploy script's `plugins` check notices
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["console"]["notifier_types"] == ["console"]
    assert plugins["console"]["error"] is None
    assert plugins["broken"]["error"] == "import failed: RuntimeError: missing dependency"
    assert plugins["broken"]["version"] == "0.3"
    assert plugins["raises"]["error"] == "registration failed: ValueError: bad registration"
    text = subprocess.run(
        [PYTHON, "-m", "watchdog", "plugins"],
        env=env_with_path(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert text.returncode == 1
    assert "ERROR: import failed: RuntimeError: missing dependency" in text.stdout

    limited = subprocess.run(
        [PYTHON, "-m", "watchdog", "plugins", "--json"],
        env=env_with_path(tmp_path, WATCHDOG_LOAD_PLUGINS="console"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert [p["name"] for p in json.loads(limited.stdout)] == ["console"]  # all loaded: exit 0


def test_duplicate_type_names_are_refused() -> None:
    host = PluginHost()
    host.add(watchdog_console, "console")
    info = host.add(_Clone(), "clone")
    assert info.error == "notifier type 'console' is already registered by console"


class _Clone:
    """A second plugin object that registers the same type name."""

    @hookspecs.hookimpl
    def register_notifier_types(self, register: Register) -> None:
        watchdog_console.register_notifier_types(register)


def test_notifier_state_is_durable_per_entry(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.db"))
    slack, email = (
        store.notifier_memory.for_notifier("slack"),
        store.notifier_memory.for_notifier("email"),
    )
    slack.put("thread-1", {"ts": "1700000000.000100", "channel": "C1"})
    assert email.get("thread-1") is None
    store.close()
    reopened = Store(str(tmp_path / "state.db")).notifier_memory.for_notifier("slack")
    assert reopened.get("thread-1") == {"ts": "1700000000.000100", "channel": "C1"}
    reopened.delete("thread-1")
    assert reopened.get("thread-1") is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("12", 12.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Tue, 24 Nov 2026 10:00:30 GMT", 30.0),  # an HTTP date, 30 s from now
        ("Tue, 24 Nov 2026 09:59:00 GMT", 0.0),  # already past: at once
        ("-5", 0.0),
        ("86400", 3600.0),  # capped at an hour
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now=now) == seconds
