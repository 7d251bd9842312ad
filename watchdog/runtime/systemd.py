"""The sd_notify protocol: tell systemd the daemon is ready, reloading, stopping or alive.

The protocol is one datagram of ``KEY=value`` lines to the unix socket named in
``NOTIFY_SOCKET`` (``@name`` is an abstract socket), so it is written here on the
standard library rather than pulled in with libsystemd. Outside systemd the
variable is unset and every call is a no-op, so ``run`` behaves the same in a
terminal. A failed send is logged once and never stops the daemon: losing a
status line must not lose an alert.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def _address(raw: str) -> str | bytes:
    """``@name`` is Linux's abstract namespace: a leading NUL byte on the wire."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


class SystemdNotifier:
    """One datagram socket to systemd, opened once; thread-safe."""

    def __init__(self, address: str | None = None) -> None:
        raw = address if address is not None else os.environ.get(NOTIFY_SOCKET, "")
        self.enabled = raw.startswith(("/", "@"))
        self._address = _address(raw) if self.enabled else ""
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        if raw and not self.enabled:
            log.warning("ignoring NOTIFY_SOCKET: only unix socket paths and @abstract names work")

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (``ready=1`` becomes ``READY=1``); True if systemd got it."""
        if not self.enabled:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")  # one line per field is the protocol
            lines.append(f"{key.upper()}={text}")
        message = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(message, self._address)
            except OSError as exc:
                if not self._warned:
                    log.warning("cannot notify systemd (%s); carrying on without it", exc)
                    self._warned = True
                return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(ready=1, status=status)

    def reloading(self) -> bool:
        """RELOADING=1 carries the monotonic time, as Type=notify-reload requires."""
        return self.notify(
            reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def stopping(self, status: str) -> bool:
        return self.notify(stopping=1, status=status)

    def status(self, status: str) -> bool:
        return self.notify(status=status)

    def alive(self) -> bool:
        return self.notify(watchdog=1)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WatchdogSec=``), or None if unarmed.

    systemd sets ``WATCHDOG_USEC`` and ``WATCHDOG_PID``; a PID other than ours
    means the variables were inherited by a child and are not for us.
    """
    raw = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID")
    if not raw.isdigit() or int(raw) == 0:
        return None
    if pid is not None and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(raw) / 1_000_000 / 2
