"""The package layout's promises that import-linter cannot see: what a command loads at run
time, and the console script's name surviving the move of the CLI into ``watchdog.cli``."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from watchdog.cli.main import main

ROOT = Path(__file__).parent.parent


def imported_modules(*args: str) -> list[str]:
    """The modules ``python -X importtime -m watchdog ARGS`` imported, by name."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "watchdog", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.rpartition("|")[2].strip() for line in result.stderr.splitlines()]
    return [name for name in rows if name.startswith("watchdog")]


def test_check_imports_no_simulator_code() -> None:
    modules = imported_modules("check", "--rules", "rules.example.yaml")
    assert "watchdog.engine.rules" in modules  # the trace is real: check did load the rules
    assert [m for m in modules if m.startswith("watchdog.sim")] == []


def test_the_console_script_still_names_watchdog_cli_main() -> None:
    (script,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts")
        if e.name == "videosdk-watchdog"
    ]  # fmt: skip
    assert script.value == "watchdog.cli:main"
    assert script.load() is main
