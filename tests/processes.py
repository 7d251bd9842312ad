"""Run the real CLI in a subprocess and watch its output line by line."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
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
        for name, stream, sink in (
            ("out", self.proc.stdout, self.out),
            ("err", self.proc.stderr, self.err),
        ):
            threading.Thread(target=self._pump, args=(name, stream, sink), daemon=True).start()

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
            if left <= 0 or (self.proc.poll() is not None and self._lines.empty()):
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s; "
                    f"stdout={self.out!r} stderr={self.err[-20:]!r}"
                )
            with contextlib.suppress(queue.Empty):
                self._lines.get(timeout=min(left, 0.2))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.05)  # let the pump threads drain the pipes
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def all_output(self) -> str:
        return "\n".join(self.out + self.err)
