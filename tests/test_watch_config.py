"""The watch section: discovery, filters and webhook settings fail ``check`` with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli import main

from .conftest import POOR_VIDEO, write_config


def _check(tmp_path: Path, watch: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = write_config(tmp_path, "http://127.0.0.1:9", [], POOR_VIDEO)
    text = path.read_text().replace("watch:\n  participants: []\n", watch)
    assert text != path.read_text()
    path.write_text(text)
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_full_watch_section_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    watch = """\
watch:
  all_rooms: true
  discovery_interval: 20s
  missing_polls: 5
  filters:
    exclude_rooms: [staging]
    exclude_names: ["(?i)recorder|bot"]
    include_sdks: [react, js]
  webhook:
    listen: 127.0.0.1:8788
    path: /hooks/videosdk
    max_body_bytes: 65536
"""
    code, out = _check(tmp_path, watch, capsys)
    assert code == 0, out
    assert "OK" in out


@pytest.mark.parametrize(
    ("watch", "needle", "message"),
    [
        (
            "watch:\n  filters:\n    exclude_names: ['bot(']\n",
            "exclude_names",
            "watch.filters.exclude_names: invalid regular expression 'bot('",
        ),
        ("watch:\n  rooms: [a]\n  all_rooms: true\n", "watch:", "watch: give rooms or all_rooms"),
        (
            "watch:\n  webhook:\n    listen: localhost\n",
            "listen:",
            "watch.webhook.listen: must be host:port",
        ),
        (
            "watch:\n  discovery_interval: 0s\n",
            "discovery_interval",
            "watch.discovery_interval: must be at least 1s",
        ),
        (
            "watch:\n  webhook:\n    listen: 127.0.0.1:0\n    public_key: missing.pem\n",
            "public_key",
            "watch.webhook.public_key: cannot read public key file",
        ),
        (
            "watch:\n  webhook:\n    listen: 127.0.0.1:0\n"
            "    public_key: '-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----'\n",
            "public_key",
            "watch.webhook.public_key: not a usable public key",
        ),
        ("watch:\n  room: [a]\n", "room:", "watch: unknown key 'room': did you mean 'rooms'?"),
    ],
)
def test_mistakes_fail_check_with_file_and_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    watch: str,
    needle: str,
    message: str,
) -> None:
    code, out = _check(tmp_path, watch, capsys)
    assert code == 2
    path = tmp_path / "config.yaml"
    assert f"{path}:{_line(path, needle)}: {message}" in out


def test_the_example_config_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "config.example.yaml").read_text()
    text = text.replace("/var/lib/videosdk-watchdog/state.db", "state.db")
    (tmp_path / "config.yaml").write_text(text)
    (tmp_path / "rules.yaml").write_text((root / "rules.example.yaml").read_text())
    monkeypatch.setenv("VIDEOSDK_API_KEY", "key")
    monkeypatch.setenv("VIDEOSDK_SECRET_KEY", "secret")
    # notifier secrets come from the environment file, as the example says
    monkeypatch.setenv("WATCHDOG_NOTIFIERS__ONCALL__TOKEN", "xoxb-example")
    monkeypatch.setenv("WATCHDOG_NOTIFIERS__MAIL__PASSWORD", "example-password")
    assert main(["check", "--config", str(tmp_path / "config.yaml")]) == 0, capsys.readouterr()
