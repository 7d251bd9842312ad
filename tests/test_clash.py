"""PyPI's filesystem `watchdog` shares our import name: refuse with a clear message."""

import shutil
import subprocess
from pathlib import Path

import watchdog

from .sitedirs import PYTHON, env_with_path, fake_distribution


def test_import_fails_clearly_beside_the_other_watchdog(tmp_path: Path) -> None:
    fake_distribution(tmp_path, "watchdog", "6.0.0")
    result = subprocess.run(
        [PYTHON, "-c", "import watchdog"],
        env=env_with_path(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "ImportClashError" in result.stderr
    assert "PyPI package 'watchdog' 6.0.0 (filesystem events) is installed here" in result.stderr
    assert "own virtual environment" in result.stderr


def test_cli_reports_the_clash_when_the_other_init_replaced_ours(tmp_path: Path) -> None:
    """Both packages installed into one site-packages: theirs overwrites our __init__.py."""
    fake_distribution(tmp_path, "watchdog", "6.0.0")
    merged = tmp_path / "watchdog"
    shutil.copytree(Path(watchdog.__file__).parent, merged)
    (merged / "__init__.py").write_text('"""Filesystem events monitoring."""\n')
    result = subprocess.run(
        [PYTHON, "-m", "watchdog", "plugins"],
        env=env_with_path(tmp_path),
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: videosdk-watchdog cannot run in this Python environment"
    )


def test_no_clash_in_our_environment() -> None:
    result = subprocess.run(
        [PYTHON, "-c", "import watchdog; print(watchdog.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "0.1.0"
