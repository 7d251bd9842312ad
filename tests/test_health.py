"""Progress (systemd's watchdog) and health (/healthz) are different questions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchdog.config.settings import Settings
from watchdog.runtime.health import CycleSummary, Liveness, stale_after, stall_after, status_line

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def cycle(polled: int, failed: int) -> CycleSummary:
    return CycleSummary(ended=NOW, seconds=0.5, polled=polled, failed=failed)


def test_defaults_follow_the_poll_settings() -> None:
    settings = Settings.model_validate({"poll": {"interval": "30s"}})
    assert stale_after(settings) == 90
    # one poll can legitimately take minutes with retries: never kill a slow-API daemon
    assert stall_after(settings) > 30 + 3 * (5 + 30)
    custom = Settings.model_validate({"health": {"stale_after": "5m", "stall_after": "2m"}})
    assert (stale_after(custom), stall_after(custom)) == (300, 120)


def test_progress_stops_when_polls_stop_finishing() -> None:
    live = Liveness(stale_after=10, stall_after=5)
    start = live.started
    assert live.progressing(last_poll=start, now=start + 5)
    assert not live.progressing(last_poll=start, now=start + 6)
    assert live.progressing(last_poll=start + 3, now=start + 6)


def test_health_fails_when_no_cycle_succeeds_but_progress_goes_on() -> None:
    live = Liveness(stale_after=10, stall_after=100)
    t = live.started
    assert live.health(t, now=t + 1)[0]  # starting
    live.cycle_done(cycle(polled=3, failed=3))
    ok, reason = live.health(t + 11, now=t + 11)
    assert not ok
    assert "no successful poll cycle since start" in reason
    assert "3 of 3 polls failed" in reason
    assert live.progressing(t + 11, now=t + 11)  # VideoSDK is down, the daemon is not


def test_health_recovers_with_a_partly_successful_cycle() -> None:
    live = Liveness(stale_after=10, stall_after=100)
    live.cycle_done(cycle(polled=3, failed=2))
    now = live.started + 1
    ok, reason = live.health(now, now=now)
    assert ok
    assert reason.startswith("ok: last successful poll cycle")


def test_stalled_loop_is_unhealthy_too() -> None:
    live = Liveness(stale_after=1000, stall_after=5)
    ok, reason = live.health(live.started, now=live.started + 60)
    assert not ok
    assert reason.startswith("poll loop stalled")


def test_status_line_is_one_line_for_systemctl_status() -> None:
    assert status_line(3, 0, 0, None) == (
        "watching 3 participants, 0 alerts firing; first poll cycle running"
    )
    line = status_line(3, 1, 2, CycleSummary(NOW + timedelta(seconds=3), 0.25, 3, 1))
    assert line == (
        "watching 3 participants, 1 alert firing, 2 notifications waiting; "
        "last poll cycle 10:00:03 UTC: 2/3 ok in 0.2s"
    )
