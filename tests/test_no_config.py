"""No config means no state: commands that read the daemon's state or credentials refuse.

Without ``--config``, ``$WATCHDOG_CONFIG`` or the default file, defaults would point them
at a fresh state database no daemon reads: a silence written there is enforced by nobody.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from watchdog.config.settings import DEFAULT_CONFIG

COMMANDS = [
    ["silence", "add", "--match", "alertname=poor-video", "--comment", "maintenance"],
    ["silence", "list"],
    ["silence", "expire", "abcd1234"],
    ["status"],
    ["status", "--json"],
    ["outbox", "list"],
    ["outbox", "retry"],
    ["token"],
    ["notify-test", "oncall"],
    ["once"],
    ["run"],
    ["migrate", "--dry-run"],
]


@pytest.mark.skipif(
    Path(DEFAULT_CONFIG).exists(), reason=f"this machine has a real {DEFAULT_CONFIG}"
)
@pytest.mark.timeout(300)  # one CLI process after another, each bounded by its own timeout
def test_state_and_credential_commands_exit_2_naming_where_they_looked(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "STATE_DIRECTORY": str(state_dir),  # where the default state database would go
        "VIDEOSDK_API_KEY": "key",  # credentials in the environment change nothing
        "VIDEOSDK_SECRET_KEY": "secret-from-the-environment-0123456789",
    }
    for args in COMMANDS:
        result = subprocess.run(
            [sys.executable, "-m", "watchdog", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == "", args
        assert result.stderr.startswith(f"{DEFAULT_CONFIG}: no config file: not found here"), (
            args,
            result.stderr,
        )
        assert "--config PATH" in result.stderr
        assert "WATCHDOG_CONFIG" in result.stderr
        assert "Traceback" not in result.stderr
    assert not state_dir.exists()  # nothing was written anywhere


def test_a_config_named_by_the_environment_is_used(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("state: {url: state.db}\n")
    env = {**os.environ, "HOME": str(tmp_path), "WATCHDOG_CONFIG": str(config)}
    listing = subprocess.run(
        [sys.executable, "-m", "watchdog", "silence", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    assert (tmp_path / "state.db").exists()
