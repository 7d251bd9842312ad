"""The operator's commands for the alert manager (silence, outbox, notify-test, plugins) and
``check`` on its settings, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from watchdog.config.problems import ConfigError
from watchdog.config.settings import load_config
from watchdog.delivery.host import PluginHost, load_plugins
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import NotifierConfig, NotifierType, Register
from watchdog.runtime.build import build, validate
from watchdog.state.store import Store

from .conftest import POOR_VIDEO, write_config
from .sinks import Sink, install_plugin
from .sitedirs import PYTHON, env_with_path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "watchdog", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_silence_add_list_expire(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO))
    added = cli(
        "silence", "add", "--config", config, "--match", "alertname=poor-video",
        "--match", "participant_id=~p1|p2", "--for", "2h", "--comment", "known wifi issue",
        "--author", "alice",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    assert len(silence_id) == 32
    assert "silenced alertname=poor-video participant_id=~p1|p2 until" in added.stderr
    assert "warning" not in added.stderr

    listed = cli("silence", "list", "--config", config)
    assert silence_id[:8] in listed.stdout
    assert re.search(r"ends in (2h|1h59m\d*s?) \(", listed.stdout)
    assert "by alice" in listed.stdout
    assert "known wifi issue" in listed.stdout

    expired = cli("silence", "expire", silence_id[:6], "--config", config)
    assert expired.returncode == 0
    assert f"silence {silence_id} expired" in expired.stdout
    store = Store(str(tmp_path / "state.db"))
    (silence,) = store.silences.all()
    assert not silence.active(silence.ends_at)
    assert silence.created_by == "alice"
    audit = [(e.action, e.source, e.target) for e in store.silences.audit()]
    assert ("silence", "cli", silence_id) in audit  # the CLI is recorded as the source
    assert ("unsilence", "cli", silence_id) in audit
    store.close()
    listed = cli("silence", "list", "--expired", "--config", config)
    assert "by alice from cli" in listed.stdout
    assert "expired by" in listed.stdout
    status = cli("status", "--config", config)
    assert "recent actions" in status.stdout
    assert "unsilence" in status.stdout
    rows = json.loads(cli("silence", "list", "--json", "--expired", "--config", config).stdout)
    assert [(r["id"], r["state"]) for r in rows] == [(silence_id, "expired")]

    bad = cli("silence", "add", "--config", config, "--match", "alertname=~(", "--for", "soon")
    assert bad.returncode == 2
    assert "--for: 'soon' is not a duration" in bad.stderr
    assert "invalid regular expression" in bad.stderr
    assert "--comment is required" in bad.stderr


def test_notify_test_and_plugins_through_an_installed_plugin(tmp_path: Path) -> None:
    env = env_with_path(install_plugin(tmp_path / "site"))
    with Sink() as sink:
        path = write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO)
        data = yaml.safe_load(path.read_text())
        data["notifiers"] = {
            "hook": {"type": "sink", "url": sink.url, "send_resolved": False},
            "dead": {"type": "sink", "url": "http://127.0.0.1:9/nothing", "timeout": 2},
        }
        path.write_text(yaml.safe_dump(data))
        sent = cli("notify-test", "hook", "--config", str(path), env=env)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == "hook: test alert delivered"
        (received,) = sink.received
        assert received["test"] is True
        assert received["alerts"][0]["rule"] == "watchdog-test"

        failed = cli("notify-test", "dead", "--config", str(path), env=env)
        assert failed.returncode == 1
        assert "dead: delivery failed: sink unreachable: ConnectionError" in failed.stderr
        unknown = cli("notify-test", "nope", "--config", str(path), env=env)
        assert unknown.returncode == 2
        assert "no notifier named 'nope' (configured: dead, hook)" in unknown.stderr

    listed = cli("plugins", env=env)
    assert "testsink 0.1 (watchdog_testsink): notifier types: sink, raiser" in listed.stdout
    assert "console 0.1.0 (watchdog_console): notifier types: console" in listed.stdout


def test_check_reports_alerting_mistakes_with_lines(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO)
    data = yaml.safe_load(path.read_text())
    data["notifiers"]["console"].update({"send_resolved": "maybe", "group_wait": "soon"})
    data["alerting"] = {
        "group_by": ["meetingid"],
        "routes": [{"match": ["severity=critical"], "notify": ["pager"]}],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    lines = path.read_text().splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    _, problems = validate(load_config(str(path)))
    warnings = [str(p) for p in problems if p.severity == "warning"]
    assert (
        f"{path}:{line_of('meetingid')}: warning: alerting.group_by[0]: no alert has a label "
        "'meetingid'" in "\n".join(warnings)
    )
    messages = [str(p) for p in problems if p.severity == "error"]
    assert messages == [
        f"{path}:{line_of('send_resolved')}: notifiers.console.send_resolved: "
        "Input should be a valid boolean, unable to interpret input",
        f"{path}:{line_of('group_wait')}: notifiers.console.group_wait: "
        "'soon' is not a duration like 30s, 5m or 1h30m (units: ms s m h d)",
        f"{path}:{line_of('notify:')}: alerting.routes[0].notify: unknown notifier 'pager' "
        "(configured: console)",
    ]

    data["alerting"]["routes"][0]["match"] = ["severity=~("]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    lines = path.read_text().splitlines()
    assert str(caught.value).startswith(f"{path}:{line_of('match:')}: alerting.routes[0].match")
    assert "invalid regular expression" in str(caught.value)


class _BrokenConfig(NotifierConfig):
    pass


class _Broken:
    """A plugin whose factory fails: the other notifiers must still be built."""

    @hookimpl
    def register_notifier_types(self, register: Register) -> None:
        def factory(context: object) -> object:
            raise RuntimeError("cannot start")

        register(NotifierType("broken", _BrokenConfig, factory))  # type: ignore[arg-type]


def test_a_notifier_that_fails_to_start_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host: PluginHost = load_plugins()
    host.add(_Broken(), "broken-plugin")
    built = host.build(
        {"b": {"type": "broken"}, "c": {"type": "console"}},
        lambda _: Store(":memory:").notifier_memory.for_notifier("x"),
    )
    assert list(built) == ["c"]
    assert host.build_errors == {"b": "RuntimeError: cannot start"}
    assert "notifier b (type broken from plugin broken-plugin) failed to start" in caplog.text


def test_old_label_names_work_and_warn_at_check_startup_and_silence_add(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO)
    data = yaml.safe_load(path.read_text())
    data["notifiers"]["console"]["group_by"] = ["fingerprint"]
    data["alerting"] = {
        "group_by": ["meetingId", "rule"],
        "routes": [{"match": ["participantName=~A.*"], "notify": ["console"]}],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    lines = path.read_text().splitlines()

    def line_of(text: str) -> int:
        return next(i for i, line in enumerate(lines, 1) if text in line)

    expected = [
        f"{path}:{line_of('meetingId')}: warning: alerting.group_by[0]: 'meetingId' is the old "
        "name of label 'meeting_id': write meeting_id (the old name still works)",
        f"{path}:{line_of('meetingId') + 1}: warning: alerting.group_by[1]: 'rule' is the old "
        "name of label 'alertname': write alertname (the old name still works)",
        f"{path}:{line_of('fingerprint')}: warning: notifiers.console.group_by[0]: 'fingerprint' "
        "is not a label: write '...' (every label: one notification per alert; the old name "
        "still works)",
        f"{path}:{line_of('participantName')}: warning: alerting.routes[0].match[0]: "
        "'participantName' is not a label receivers see: use participant_id instead "
        "(it still works for now)",
    ]
    checked = cli("check", "--config", str(path))
    assert checked.returncode == 0, checked.stderr
    assert [line for line in checked.stderr.splitlines() if "warning" in line] == expected

    runtime = build(load_config(str(path)))  # what `run` does first: the same warnings, logged
    runtime.close()
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert set(expected) <= set(logged)

    added = cli(
        "silence", "add", "--config", str(path), "--match", "rule=poor-video",
        "--match", "meetingId=abcd-efgh-ijkl", "--comment", "maintenance",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stderr.splitlines()[:2] == [
        "warning: --match rule=poor-video: 'rule' is the old name of label 'alertname': write "
        "alertname (the old name still works)",
        "warning: --match meetingId=abcd-efgh-ijkl: 'meetingId' is the old name of label "
        "'meeting_id': write meeting_id (the old name still works)",
    ]
    assert "silenced alertname=poor-video meeting_id=abcd-efgh-ijkl until" in added.stderr
