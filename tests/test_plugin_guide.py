"""The plugin guide's example works as written: its plugin, packaged, passes its own tests
and mypy --strict, whichever way its factory is written."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from mypy import api as mypy_api

from watchdog.testing import NotifierContract

from .sitedirs import PYTHON, env_with_path, fake_distribution

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "plugins.md"

# Factories as plugins write them, against the guide's PagerConfig and Pager: typed, and the
# isinstance-checking kind written before NotifierContext was generic (still valid). The
# last registration pairs a factory with another type's model: mypy must refuse it.
FACTORIES = """
from watchdog.notifiers import NotifierConfig, NotifierContext, NotifierType, Register
from watchdog_pager import Pager, PagerConfig


class OtherConfig(NotifierConfig):
    topic: str


def make(ctx: NotifierContext[PagerConfig]) -> Pager:
    return Pager(ctx.config)


def checked(ctx: NotifierContext) -> Pager:
    assert isinstance(ctx.config, PagerConfig)
    return Pager(ctx.config)


def register_all(register: Register) -> None:
    register(NotifierType("pager", config=PagerConfig, factory=make))
    register(NotifierType("pager", PagerConfig, checked))
    register(NotifierType("other", OtherConfig, make))
"""


def test_the_guides_plugin_passes_the_guides_tests(tmp_path: Path) -> None:
    plugin, tests = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)[:2]
    site = tmp_path / "site"
    fake_distribution(
        site,
        "videosdk-watchdog-pager",
        "0.1.0",
        entry_points={"pager": "watchdog_pager"},
        modules={"watchdog_pager": plugin},
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_pager.py").write_text(tests)
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests")],
        env=env_with_path(site),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    contract = [name for name in dir(NotifierContract) if name.startswith("test_")]
    assert f"{len(contract)} passed" in result.stdout


def test_the_guides_plugin_and_its_factories_pass_mypy_strict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYPYPATH", str(ROOT))  # the editable install hides the core from mypy
    plugin = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)[0]
    (tmp_path / "watchdog_pager.py").write_text(plugin)
    (tmp_path / "factories.py").write_text(FACTORIES)
    out, err, status = mypy_api.run(
        [
            "--strict",
            "--no-incremental",
            "--python-version=3.11",
            "--config-file=",  # not the project's: only these two files, as a plugin has them
            str(tmp_path / "watchdog_pager.py"),
            str(tmp_path / "factories.py"),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    wrong = FACTORIES.splitlines().index('    register(NotifierType("other", OtherConfig, make))')
    assert (status, len(errors)) == (1, 1), out + err
    assert f'factories.py:{wrong + 1}: error: Argument 3 to "NotifierType"' in errors[0], out
