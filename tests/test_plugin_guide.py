"""The plugin guide's example works as written: its plugin, packaged, passes its own tests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from watchdog.testing import NotifierContract

from .sitedirs import PYTHON, env_with_path, fake_distribution

GUIDE = Path(__file__).parent.parent / "docs" / "plugins.md"


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
