"""Run the real CLI in a subprocess and watch its output line by line."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path


class Daemon:
    """``python -m watchdog ARGS`` with stdout and stderr collected by threads."""

    def __init__(
        self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchdog", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=cwd,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(name, stream, sink), daemon=True)
            for name, stream, sink in (
                ("out", self.proc.stdout, self.out),
                ("err", self.proc.stderr, self.err),
            )
        ]
        for pump in self._pumps:
            pump.start()

    def _pump(self, name: str, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line.rstrip("\n"))
            self._lines.put((name, line))

    def wait_for(self, pattern: str, timeout: float = 20.0, stream: str = "out") -> str:
        """The first line (seen so far or later) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            lines = self.out if stream == "out" else self.err
            for line in lines[seen:]:
                if regex.search(line):
                    return line
            seen = len(lines)
            left = deadline - time.monotonic()
            ended = self.proc.poll() is not None and self._drained() and seen == len(lines)
            if left <= 0 or ended:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s; "
                    f"stdout={self.out!r} stderr={self.err[-20:]!r}"
                )
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=min(left, 0.2))

    def _drained(self, timeout: float = 5.0) -> bool:
        """Whether every line the process wrote is in ``out``/``err`` (pipes read to EOF)."""
        for pump in self._pumps:
            pump.join(timeout)
        return not any(pump.is_alive() for pump in self._pumps)

    def wait(self, timeout: float = 20.0) -> int:
        """The exit code, once the process has exited and all its output has been read."""
        code = self.proc.wait(timeout=timeout)
        self._drained()
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.wait(10)

    def all_output(self) -> str:
        return "\n".join(self.out + self.err)


class NotifySocket:
    """A real unix datagram socket standing in for systemd's ``NOTIFY_SOCKET``.

    ``abstract=True`` binds an ``@name`` in Linux's abstract namespace.
    """

    def __init__(self, directory: Path | None = None, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract or directory is None:
            name = f"videosdk-watchdog-test-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + name.encode())
            self.address = "@" + name
        else:
            path = directory / "notify.sock"
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def wait_for(
        self, key: str, value: str | None = None, timeout: float = 20.0, after: int = 0
    ) -> int:
        """Index of the first message from ``after`` on that sets ``key`` (to ``value``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, message in enumerate(self.messages[after:], start=after):
                if key in message and (value is None or message[key] == value):
                    return index
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} from the daemon; got {self.messages!r}")

    def count(self, key: str, after: int = 0) -> int:
        return sum(1 for message in self.messages[after:] if key in message)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        self._thread.join(timeout=2)
