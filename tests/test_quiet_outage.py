"""An outage is said once a cycle, refused credentials once: the real daemon's stderr, counted.

Before: three WARNINGs per failed poll (two of urllib3's "Retrying ..." lines, with no
participant, and ours), and a WARNING per participant per cycle for a refused token.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from watchdog.sim.simulator import Simulator

from .conftest import POOR_VIDEO, write_config
from .processes import Daemon

PEOPLE = [("s1", f"p{i}") for i in range(1, 7)]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_count(daemon: Daemon, pattern: str, count: int, timeout: float = 30.0) -> None:
    """Until ``count`` stderr lines match (bounded: the daemon polls every second)."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while sum(bool(regex.search(line)) for line in list(daemon.err)) < count:
        assert time.monotonic() < deadline, (
            f"fewer than {count} lines {pattern!r}: {daemon.err[-20:]}"
        )
        assert daemon.proc.poll() is None, daemon.err[-20:]
        time.sleep(0.1)


def _warnings(daemon: Daemon) -> list[str]:
    return [line for line in daemon.err if " WARNING " in line or line.startswith("WARNING")]


def test_an_unreachable_api_is_one_warning_per_cycle(tmp_path: Path, sim: Simulator) -> None:
    config = write_config(
        tmp_path, f"http://127.0.0.1:{_closed_port()}", PEOPLE, POOR_VIDEO,
        poll={"interval": "1s"}, videosdk={"retries": 2, "backoff": 0.01},
    )  # fmt: skip
    daemon = Daemon(["run", "--config", str(config)])
    try:
        _wait_count(daemon, r"6/6 polls failed: ConnectionError", 3)  # three cycles
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    # of the poller and the HTTP client, nothing else at WARNING: no per-participant, no urllib3
    warnings = [
        line for line in _warnings(daemon) if "watchdog.poll.poller" in line or "urllib3" in line
    ]
    summaries = [line for line in warnings if "polls failed" in line]
    assert len(summaries) >= 3
    assert warnings == summaries
    assert not any("urllib3" in line or "Retrying (" in line for line in daemon.err)
    # each participant's failure is still there at INFO, with who it was
    assert any(
        re.search(r"INFO watchdog.poll.poller: stats request failed: .*participant_id=p3", line)
        for line in daemon.err
    )


def test_refused_credentials_are_one_clear_error(tmp_path: Path, sim: Simulator) -> None:
    for session, participant in PEOPLE:
        sim.add_participant(session, participant, samples=[])
    config = write_config(
        tmp_path, sim.url, PEOPLE, POOR_VIDEO, poll={"interval": "1s"},
        videosdk={"secret_key": "not-the-account-secret-0123456789abcdef"},
    )  # fmt: skip
    daemon = Daemon(["run", "--config", str(config)])
    try:
        _wait_count(daemon, r"6/6 polls failed: credentials refused \(HTTP 401: ", 3)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    errors = [line for line in daemon.err if "refuses the credentials" in line]
    assert len(errors) == 1
    assert "ERROR" in errors[0]
    assert "VIDEOSDK_API_KEY" in errors[0]
    assert not any("stats request failed" in line for line in _warnings(daemon))


def test_one_participants_own_trouble_is_named(tmp_path: Path, sim: Simulator) -> None:
    """A 404 for one participant stays a WARNING naming them, beside the cycle's summary."""
    sim.add_participant("s1", "p1", samples=[])
    sim.add_participant("s1", "p2", samples=[])
    config = write_config(
        tmp_path, sim.url, [("s1", "p1"), ("s1", "p2"), ("s1", "ghost")], POOR_VIDEO,
        poll={"interval": "1s"},
    )  # fmt: skip
    daemon = Daemon(["run", "--config", str(config)])
    try:
        daemon.wait_for(r"1/3 polls failed: stats not found \(404\)", stream="err", timeout=30)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    named = [line for line in _warnings(daemon) if "participant_id=ghost" in line]
    assert named
    assert not any("participant_id=p1" in line for line in _warnings(daemon))
