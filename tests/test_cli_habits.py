"""Small things operators hit, through the real CLI: a pipe closed early, a short secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def test_schema_into_a_reader_that_stops_early_exits_quietly() -> None:
    """``schema config | head``: the reader goes away; no traceback, SIGPIPE's status."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchdog", "schema", "config"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # before the command writes: every write meets a closed pipe
    try:
        assert proc.wait(timeout=60) == 141
        assert proc.stderr.read() == b""
    finally:
        proc.stderr.close()


def test_a_short_secret_is_one_clear_log_warning_not_pyjwts_raw_one(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"videosdk": {"api_key": "key", "secret_key": "only-16-bytes-xx"}})
    )
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", "token", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # the JWT, minted all the same
    (line,) = result.stderr.splitlines()
    assert " WARNING watchdog.videosdk.tokens: videosdk.secret_key is 16 bytes, shorter" in line
    assert "copied whole" in line
    assert "only-16-bytes-xx" not in result.stderr
