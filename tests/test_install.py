"""The install path of docs/getting-started.md, as a new operator follows it: build a wheel,
install it into a fresh virtual environment, then a plugin after the core. No package index
has either, so this is the only way in; a missing package, entry point or shipped file
breaks it here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "systemd" / "videosdk-watchdog.service"
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SHIPPED_PREFIX = "/opt/videosdk-watchdog"


# the module's fixture builds a wheel and installs it and a plugin into a fresh venv, each
# step bounded by _run's own timeout: several minutes when test workers share the CPUs
pytestmark = pytest.mark.timeout(480)

# nothing of the test run's own environment may leak into the fresh one
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env=CLEAN_ENV
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the core wheel and then the ntfy plugin, as the docs say."""
    work = tmp_path_factory.mktemp("install")
    # build from a copy: setuptools leaves build/ and an .egg-info beside the sources, and an
    # .egg-info in the checkout would register the entry points twice in this test run
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "*_cache", ".hypothesis", "__pycache__"
    ))  # fmt: skip
    dist = work / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)])
    wheels = sorted(dist.glob("videosdk_watchdog-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, str(wheels[0])])
    _run([*pip, str(source / "plugins" / "videosdk-watchdog-ntfy")])
    return venv


def test_a_built_wheel_installs_the_daemon_and_its_builtin_plugins(installed: Path) -> None:
    listing = _run([str(installed / "bin" / "videosdk-watchdog"), "plugins"]).stdout
    for name in ("console", "slack", "email", "webhook", "apprise", "pagerduty", "ntfy"):
        assert re.search(
            rf"^{name} \S+ \(watchdog_{name}\): notifier types: {name}$", listing, re.M
        )
    assert "error" not in listing.lower()


def test_the_wheel_ships_the_documents_the_unit_points_to(installed: Path) -> None:
    """``Documentation=`` names files under the venv: the operations page and the README,
    whose links into the docs pages work there too; the examples the guide installs are
    beside them."""
    pointed = re.findall(r"^Documentation=file:(\S+)$", UNIT.read_text(), re.M)
    assert len(pointed) == 2, "the unit names the operations page and the README"
    source = installed.parent / "source"
    shared = installed / "share" / "doc" / "videosdk-watchdog"
    for uri in pointed:
        shipped = Path(uri)
        assert shipped.is_relative_to(SHIPPED_PREFIX)
        relative = shipped.relative_to(Path(SHIPPED_PREFIX) / "share" / "doc" / "videosdk-watchdog")
        assert (shared / relative).read_text() == (source / relative).read_text(), uri
    for page in sorted((source / "docs").glob("*.md")):
        assert (shared / "docs" / page.name).read_text() == page.read_text(), page.name
    for name in ("config.example.yaml", "rules.example.yaml", "videosdk-watchdog.service"):
        assert (shared / name).is_file(), name


def test_the_installed_daemon_checks_the_shipped_example_config(installed: Path) -> None:
    """The examples in share/doc validate with the installed code, not the checkout's."""
    docs = installed / "share" / "doc" / "videosdk-watchdog"
    result = subprocess.run(
        [str(installed / "bin" / "videosdk-watchdog"), "check", "--rules",
         str(docs / "rules.example.yaml")],
        capture_output=True, text=True, timeout=60, check=False, cwd=installed, env=CLEAN_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_document_tells_people_to_install_from_an_index() -> None:
    texts = [README, *sorted(DOCS.glob("*.md")), ROOT / "plugins" / "README.md", UNIT]
    texts.append(ROOT / "watchdog" / "runtime" / "clash.py")
    texts.append(ROOT / "plugins" / "videosdk-watchdog-ntfy" / "README.md")
    for path in texts:
        for line in path.read_text().splitlines():
            assert not re.search(r"pip install (-U )?['\"]?videosdk-watchdog(-\w+)?\b", line), (
                f"{path.name}: {line}"
            )
