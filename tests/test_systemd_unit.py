"""The shipped unit file, checked by systemd's own tools (Debian's systemd package)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "videosdk-watchdog.service"
SHIPPED_BINARY = "/opt/videosdk-watchdog/bin/videosdk-watchdog"


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this venv's console script (verify needs it to exist)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (.ci/run does)"
    script = Path(sys.executable).parent / "videosdk-watchdog"
    assert script.exists()
    text = UNIT.read_text()
    assert SHIPPED_BINARY in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(SHIPPED_BINARY, str(script)))
    return copy


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_has_what_operators_rely_on() -> None:
    found = directives(UNIT.read_text())
    assert found["Type"] == ["notify"]
    assert found["NotifyAccess"] == ["main"]
    assert found["WatchdogSec"]
    assert found["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert found["EnvironmentFile"] == ["-/etc/videosdk-watchdog/env"]
    assert found["Environment"] == ["MALLOC_ARENA_MAX=2"]  # peak RSS: benchmarks/README.md
    assert found["StateDirectory"] == ["videosdk-watchdog"]
    assert found["ConfigurationDirectory"] == ["videosdk-watchdog"]
    assert found["Restart"] == ["on-failure"]
    assert found["RestartPreventExitStatus"] == ["2"]
    env = (UNIT.parent / "env.example").read_text()
    assert "VIDEOSDK_SECRET_KEY=" in env


def test_systemd_analyze_verify_is_clean(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_security_exposure_is_at_most_2(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout
