"""`make demo`'s command: readable alerts within 30 seconds, then runs until Ctrl-C."""

from __future__ import annotations

import signal

from .processes import Daemon


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
