"""``notify-test NAME`` sends a real test alert through each built-in notifier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from watchdog.cli.main import main
from watchdog.delivery.host import PluginHost
from watchdog.testing import HttpReceiver, Reply, TLSCertificates

from .slackapi import TOKEN, FakeSlack
from .smtpserver import PASSWORD, USER, SMTPServer


def _notify_test(config: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchdog", "notify-test", name, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_notify_test_reaches_slack_email_and_webhook(
    tmp_path: Path, slack: FakeSlack, tls_certificates: TLSCertificates
) -> None:
    with (
        SMTPServer(tls_certificates.server_context) as smtp,
        HttpReceiver() as hook,
    ):
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "notifiers": {
                        "oncall-slack": {
                            "type": "slack",
                            "token": TOKEN,
                            "channel": "#alerts",
                            "base_url": slack.api_url,
                        },
                        "oncall-mail": {
                            "type": "email",
                            "host": "127.0.0.1",
                            "port": smtp.port,
                            "username": USER,
                            "password": PASSWORD,
                            "from": "watchdog@example.com",
                            "to": ["oncall@example.com"],
                            "ca_file": tls_certificates.ca_file,
                        },
                        "incidents": {"type": "webhook", "url": hook.url + "/hook"},
                        "broken": {"type": "webhook", "url": hook.url + "/hook"},
                    }
                }
            )
        )
        results = {name: _notify_test(config, name) for name in ("oncall-slack", "oncall-mail")}
        results["incidents"] = _notify_test(config, "incidents")
        for name, result in results.items():
            assert result.returncode == 0, (name, result.stderr)
            assert f"{name}: test alert delivered" in result.stdout
            assert TOKEN not in result.stdout + result.stderr
            assert PASSWORD not in result.stdout + result.stderr
        (message,) = slack.top_level()
        assert message.text.startswith("(test) 🔵 FIRING [info] watchdog-test")
        assert smtp.messages[0]["Subject"].startswith("[videosdk-watchdog] [TEST] [FIRING:info]")
        assert hook.requests[-1].json()["alerts"][0]["labels"]["alertname"] == "watchdog-test"

        hook.reply(Reply(503, "down for maintenance"))
        failed = _notify_test(config, "broken")
        assert failed.returncode == 1
        assert "broken: delivery failed: webhook 127.0.0.1" in failed.stderr
        assert "HTTP 503" in failed.stderr


def test_builtin_notifiers_come_with_the_core_distribution() -> None:
    host = PluginHost()
    host.load_entry_points()
    for name in ("slack", "email", "webhook"):
        info = host.plugins[name]
        assert info.distribution == "videosdk-watchdog", name
        assert info.error is None
        assert host.notifier_types[name].plugin == name


def test_check_reports_notifier_config_errors_with_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - name: r\n    metric: qualityScore.video\n    op: '<'\n    threshold: 3\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "videosdk:\n"
        "  api_key: k\n"
        "  secret_key: s\n"
        "rules: [rules.yaml]\n"
        "notifiers:\n"
        "  oncall:\n"
        "    type: slack\n"
        f"    token: {TOKEN}\n"
        "  mail:\n"
        "    type: email\n"
        "    host: smtp.example.com\n"
        "    from: watchdog@example.com\n"
        "    to: [oncall@example.com]\n"
        "    port: 99999\n"
        "  hook:\n"
        "    type: webhook\n"
        "    url: https://example.com/hook\n"
        "    verify: false\n"
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:6: notifiers.oncall: channel is required with a token" in err
    assert f"{config}:14: notifiers.mail.port: Input should be less than or equal to 65535" in err
    assert f"{config}:18: notifiers.hook: unknown key 'verify'" in err
    assert TOKEN not in err
