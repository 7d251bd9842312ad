"""The state database failing under the real daemon: a full disk, a file system turning
read-only, the file deleted or replaced, a corrupt page.

Each test runs ``videosdk-watchdog run`` against the simulator and breaks its state
storage for real: a small tmpfs filled up and an ext4 loop file system put into its
read-only-after-error state where this machine lets root mount them, otherwise a file
size limit (RLIMIT_FSIZE) set on the daemon process, which fails its writes in the
kernel just the same. Which method ran is printed and asserted, never skipped. Each
asserts /healthz 503 naming the fault, the count in /metrics, one log line for the
episode (no traceback), and exit 1 after ``state.max_failed_cycles``.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store

from .conftest import POOR_VIDEO, write_config
from .helpers import video_series
from .processes import Daemon

PARTICIPANTS = [("s1", "p1"), ("s2", "p2")]
INTERVAL = "250ms"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def _faults(url: str, reason: str) -> float:
    metrics = _get(url + "/metrics")[1]
    found = re.search(rf'^watchdog_state_faults_total\{{reason="{reason}"\}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


class Run:
    """The daemon on a state directory, with its /healthz and /metrics."""

    def __init__(self, tmp_path: Path, sim: Simulator, state_dir: Path, failed_cycles: int):
        self.db = state_dir / "state.db"
        self.failed_cycles = failed_cycles
        config = write_config(
            tmp_path,
            sim.url,
            PARTICIPANTS,
            POOR_VIDEO,
            poll={"interval": INTERVAL},
            http={"listen": "127.0.0.1:0"},
            state={
                "url": str(self.db),
                "max_failed_cycles": failed_cycles,
                "quick_check_interval": INTERVAL,
            },
        )
        self.daemon = Daemon(["run", "--config", str(config)])
        self.url = self.daemon.wait_for(r"serving /metrics", stream="err").rsplit(" ", 1)[1]
        _until(lambda: _get(self.url + "/healthz")[0] == 200, "healthy")

    def fault_seen(self, words: str) -> str:
        """The 503 body once /healthz names the fault."""

        def named() -> str | None:
            assert self.daemon.proc.poll() is None, self.daemon.err[-10:]
            code, body = _get(self.url + "/healthz")
            return body if code == 503 and words in body else None

        return str(_until(named, f"/healthz 503 naming {words!r}"))

    def exits_1(self, reason_words: str) -> None:
        assert self.daemon.wait(60) == 1, self.daemon.err[-20:]
        last = [line for line in self.daemon.err if "exiting with status 1" in line]
        assert len(last) == 1, self.daemon.err
        assert (
            f"failed in {self.failed_cycles} poll cycles in a row (state.max_failed_cycles): "
            f"{reason_words}"
        ) in last[0]

    def quiet(self, episodes: int) -> None:
        """One ERROR line an episode, no traceback, and a short log all told."""
        err = self.daemon.err
        assert not any("Traceback" in line for line in err), err
        opened = [line for line in err if "ERROR watchdog.state.faults" in line]
        assert len(opened) == episodes, opened
        assert len(err) < 40, err


@pytest.fixture
def run(tmp_path: Path, sim: Simulator) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []
    for session, participant in PARTICIPANTS:
        sim.add_participant(session, participant, samples=video_series([(0, 4.0), (10, 4.0)]))

    def start(state_dir: Path, failed_cycles: int = 12) -> Run:
        runs.append(Run(tmp_path, sim, state_dir, failed_cycles))
        return runs[-1]

    yield start
    for started in runs:
        started.daemon.kill()


# -- breaking the storage -------------------------------------------------------------


def _mount(args: list[str] | None, where: Path) -> bool:
    """Mount as root; False where this machine does not let us (or ``args`` is None)."""
    where.mkdir(parents=True, exist_ok=True)
    if args is None:
        return False
    try:
        done = subprocess.run(
            ["mount", *args, str(where)], check=False, capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@contextmanager
def _mounted(args: list[str] | None, where: Path) -> Iterator[bool]:
    mounted = _mount(args, where)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False, timeout=30)


def _limit_file_size(pid: int, size: int | None) -> None:
    """RLIMIT_FSIZE on the daemon: writes past ``size`` bytes fail (EFBIG); None lifts it."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard if size is None else size, hard))


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full (bounded: the tmpfs is 16 MiB)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left") as full:
            _write_chunks(fd, 100_000)
    finally:
        os.close(fd)
    assert full.value.errno == errno.ENOSPC
    return filler


def _write_chunks(fd: int, count: int) -> None:
    for _ in range(count):
        os.write(fd, b"\0" * 65536)


def _state_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def test_a_full_disk_is_one_episode_then_recovers_then_exits_1(
    tmp_path: Path, run: Callable[..., Run]
) -> None:
    state_dir = tmp_path / "small"
    with _mounted(["-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs"], state_dir) as tmpfs:
        method = "tmpfs" if tmpfs else "RLIMIT_FSIZE"
        print(f"disk full by: {method}")
        daemon = run(state_dir, failed_cycles=12)
        pid = daemon.daemon.proc.pid
        # SQLite says SQLITE_FULL on a full disk; a write past the size limit is an I/O error
        words, reason = ("disk full", "disk_full") if tmpfs else ("I/O error", "io_error")

        def full() -> Path | None:
            if tmpfs:
                return _fill(state_dir)
            _limit_file_size(pid, max(p.stat().st_size for p in _state_files(daemon.db)))
            return None

        filler = full()
        body = daemon.fault_seen(words)
        assert f"state database {daemon.db}: {words}" in body
        assert re.search(r"\d+ of 12 poll cycles failed in a row before the daemon exits", body)
        assert _faults(daemon.url, reason) >= 1
        if filler is not None:  # space comes back: the episode ends with one line
            filler.unlink()
        else:
            _limit_file_size(pid, None)
        back = daemon.daemon.wait_for(
            rf"state database .* works again after \d+s \(\d+ failed operations?; {words}\)",
            stream="err",
        )
        failed = re.search(r"\((\d+) failed", back)
        assert failed is not None
        assert _faults(daemon.url, reason) == float(failed.group(1))  # each one counted
        _until(lambda: _get(daemon.url + "/healthz")[0] == 200, "healthy again")

        full()  # and for good this time
        daemon.fault_seen(words)
        daemon.exits_1(words)
        daemon.quiet(episodes=2)
    assert method in ("tmpfs", "RLIMIT_FSIZE")


def _ext4_image(image: Path) -> list[str] | None:
    """``mount`` arguments for a 16 MiB ext4 image that turns read-only on an error."""
    with open(image, "wb") as out:
        out.truncate(16 * 1024 * 1024)
    try:
        made = subprocess.run(
            ["mkfs.ext4", "-q", "-F", str(image)], check=False, capture_output=True
        )
    except OSError:  # no e2fsprogs
        return None
    return ["-o", "loop,errors=remount-ro", str(image)] if made.returncode == 0 else None


def _ext4_device(mountpoint: Path) -> str:
    """The block device's name (``loop3``) whose /sys/fs/ext4/ directory controls it."""
    found = os.stat(mountpoint)
    return Path(
        os.readlink(f"/sys/dev/block/{os.major(found.st_dev)}:{os.minor(found.st_dev)}")
    ).name


def test_a_file_system_turning_read_only_exits_1(tmp_path: Path, run: Callable[..., Run]) -> None:
    """ext4 with errors=remount-ro after an error, as Debian mounts it by default."""
    state_dir = tmp_path / "ext4"
    with _mounted(_ext4_image(tmp_path / "fs.img"), state_dir) as ext4:
        method = "ext4 read-only after an error" if ext4 else "RLIMIT_FSIZE"
        print(f"read-only by: {method}")
        daemon = run(state_dir, failed_cycles=8)
        if ext4:
            trigger = Path(f"/sys/fs/ext4/{_ext4_device(state_dir)}/trigger_fs_error")
            trigger.write_text("test: the disk failed\n")
            words, reason = "read-only", "read_only"
        else:
            _limit_file_size(daemon.daemon.proc.pid, 0)
            words, reason = "I/O error", "io_error"
        body = daemon.fault_seen(words)
        assert f"state database {daemon.db}: {words}" in body
        assert _faults(daemon.url, reason) >= 1
        daemon.exits_1(words)
        daemon.quiet(episodes=1)


def test_a_deleted_state_file_is_noticed_and_a_restart_says_it_starts_afresh(
    tmp_path: Path, run: Callable[..., Run]
) -> None:
    state_dir = tmp_path / "state"
    daemon = run(state_dir, failed_cycles=8)
    for path in _state_files(daemon.db):  # rm state.db*, say
        path.unlink()
    body = daemon.fault_seen("file deleted")
    assert f"{daemon.db} no longer exists" in body
    assert _faults(daemon.url, "deleted") >= 1
    daemon.exits_1("file deleted")
    daemon.quiet(episodes=1)

    again = run(state_dir)  # what systemd does next: a new, empty state, and it says so
    again.daemon.wait_for(
        r"WARNING .*state database .* does not exist: creating a new", stream="err"
    )
    assert again.daemon.stop() == 0


def test_a_replaced_state_file_is_noticed(tmp_path: Path, run: Callable[..., Run]) -> None:
    state_dir = tmp_path / "state"
    daemon = run(state_dir, failed_cycles=8)
    other = tmp_path / "restored.db"
    Store(str(other)).close()  # a backup put in place while the daemon runs
    os.replace(other, daemon.db)
    body = daemon.fault_seen("file replaced")
    assert f"{daemon.db} is another file now" in body
    assert _faults(daemon.url, "replaced") >= 1
    daemon.exits_1("file replaced")
    daemon.quiet(episodes=1)


def _corrupt_a_page(db: Path, table: str) -> int:
    """Checkpoint (as any other process may), then overwrite the page header of a table
    the daemon reads but never writes; returns the page number."""
    with sqlite3.connect(db, timeout=10) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as file:
        file.seek((page[0] - 1) * size)
        file.write(b"\xee" * 64)
    return int(page[0])


def test_a_corrupt_page_is_found_and_a_restart_refuses_the_file(
    tmp_path: Path, run: Callable[..., Run]
) -> None:
    state_dir = tmp_path / "state"
    daemon = run(state_dir, failed_cycles=8)
    page = _corrupt_a_page(daemon.db, "silences")
    body = daemon.fault_seen("corrupt")
    assert f"state database {daemon.db}: corrupt" in body
    assert _faults(daemon.url, "corrupt") >= 1
    daemon.exits_1("corrupt")
    daemon.quiet(episodes=1)

    again = Daemon(["run", "--config", str(tmp_path / "config.yaml")])
    try:
        assert again.wait(30) == 1
    finally:
        again.kill()
    (line,) = [line for line in again.err if "exiting with status 1" in line]
    assert f"the state database {daemon.db} is not usable: corrupt:" in line
    assert f"Page {page}" in line or "malformed" in line
    assert "move the file aside and restore a backup" in line
    assert not any("Traceback" in line for line in again.err)
