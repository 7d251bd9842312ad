"""`make demo`'s command: readable alerts within 30 seconds, then runs until Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

from .processes import Daemon

ROOT = Path(__file__).parent.parent


def test_demo_prints_alerts_quickly_and_stops_on_ctrl_c() -> None:
    demo = Daemon(["demo"])
    try:
        first = demo.wait_for(r"FIRING", timeout=30)
        assert " in meeting " in first
        detail = demo.wait_for(r"\(threshold ")  # the line under the headline
        assert demo.out.index(detail) == demo.out.index(first) + 1
        assert demo.proc.poll() is None  # still running
        assert demo.stop(signal.SIGINT) == 0
    finally:
        demo.kill()


def test_demo_says_when_its_scenarios_have_played_out() -> None:
    demo = Daemon(["demo"])
    try:
        done = demo.wait_for(r"every scenario has played out", timeout=90)
        # the last scenario change (the packet-loss burst ends) was answered before it
        resolved = demo.wait_for(r"RESOLVED \[critical\] packet-loss-spike", timeout=1)
        assert demo.out.index(resolved) < demo.out.index(done)
        assert "Ctrl-C to stop" in done
        assert demo.proc.poll() is None  # what still fires stays on screen until Ctrl-C
        assert demo.stop(signal.SIGINT) == 0
    finally:
        demo.kill()


def test_make_demo_installs_the_daemon_without_the_dev_extras(tmp_path: Path) -> None:
    """From a fresh clone `make demo` installs only what the demo runs on; `make test` the
    dev extras; a dev install serves the demo as it is. (``make -n``: nothing installed.)"""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)

    def planned(target: str) -> list[str]:
        result = subprocess.run(
            ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        return [line for line in result.stdout.splitlines() if "pip install" in line]

    assert planned("demo")[-1].endswith("pip install --quiet -e .")
    assert not any("[dev]" in line for line in planned("demo"))
    assert any(line.endswith("pip install --quiet -e '.[dev]'") for line in planned("lint"))
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    (tmp_path / ".venv" / ".installed").touch()  # after pyproject.toml: up to date
    assert planned("demo") == []
