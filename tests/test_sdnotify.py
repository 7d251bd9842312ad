"""The sd_notify protocol against a real unix datagram socket, path and abstract."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from watchdog.runtime.systemd import SystemdNotifier, watchdog_interval

from .processes import NotifySocket


@pytest.mark.parametrize("abstract", [False, True])
def test_messages_arrive_as_key_value_lines(tmp_path: Path, abstract: bool) -> None:
    server = NotifySocket(tmp_path, abstract=abstract)
    notifier = SystemdNotifier(server.address)
    try:
        assert notifier.enabled
        assert notifier.ready("watching 2 participants\nand more")
        assert notifier.reloading()
        assert notifier.alive()
        assert notifier.stopping("bye")
        server.wait_for("STOPPING")
    finally:
        notifier.close()
        server.close()
    ready, reloading, alive, stopping = server.messages
    assert ready == {"READY": "1", "STATUS": "watching 2 participants and more"}
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) > 0
    assert alive == {"WATCHDOG": "1"}
    assert stopping == {"STOPPING": "1", "STATUS": "bye"}


def test_without_systemd_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.ready("x") is False


def test_a_vanished_socket_is_survived(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    assert notifier.enabled
    assert notifier.status("still here") is False  # logged once, never raised
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "120000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert watchdog_interval() is None
