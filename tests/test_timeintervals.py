"""time_intervals: Alertmanager's syntax (checked against its own amtool), DST, and routes'
mute_time_intervals / active_time_intervals in the alert manager (injected clock)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy, Route
from watchdog.alerting.timeintervals import TimeIntervals
from watchdog.cli.main import main
from watchdog.config.oncall import NamedTimeIntervalSettings, TimeIntervalSettings
from watchdog.state.store import Store
from watchdog.testing import make_alert, resolved

from .helpers import record_alerts


def windows(*intervals: dict[str, Any], name: str = "w") -> TimeIntervals:
    named = NamedTimeIntervalSettings.model_validate({"name": name, "time_intervals": intervals})
    return TimeIntervals.from_settings([named])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def open_minutes(found: TimeIntervals, start: datetime, hours: int) -> int:
    """Real minutes the window is open, scanning each UTC minute (no clock waits)."""
    return sum(found.active("w", start + timedelta(minutes=m)) for m in range(hours * 60))


@pytest.mark.parametrize(
    ("zone", "night", "minutes"),
    [
        # clocks go forward at 02:00: 01:30-02:00 exists, 02:00-03:00 does not
        ("Europe/Berlin", "2026-03-28T22:00:00+00:00", 30),
        ("America/New_York", "2026-03-08T04:00:00+00:00", 30),
        # Berlin goes back at 03:00: 01:30-03:00 CEST, then 02:00-03:00 CET again
        ("Europe/Berlin", "2026-10-24T22:00:00+00:00", 150),
        # New York goes back at 02:00: 01:30-02:00 EDT, then 01:30-03:00 EST
        ("America/New_York", "2026-11-01T03:00:00+00:00", 120),
    ],
)
def test_a_night_window_on_both_dst_changes_is_read_in_wall_clock_time(
    zone: str, night: str, minutes: int
) -> None:
    found = windows({"times": [{"start_time": "01:30", "end_time": "03:00"}], "location": zone})
    assert open_minutes(found, at(night), 8) == minutes
    # and on an ordinary night it is 90 minutes
    assert open_minutes(found, at(night) - timedelta(days=7), 8) == 90


def test_fields_combine_as_in_alertmanager() -> None:
    found = windows(
        {
            "weekdays": ["monday:friday"],
            "times": [{"start_time": "09:00", "end_time": "17:00"}],
            "location": "Europe/Berlin",
        },
        {"days_of_month": ["-1"], "months": ["december"], "years": ["2026:2027"]},
    )
    assert found.active("w", at("2026-11-30T09:00:00+01:00"))  # a Monday
    assert not found.active("w", at("2026-11-30T17:00:00+01:00"))  # end excluded
    assert not found.active("w", at("2026-11-29T12:00:00+01:00"))  # a Sunday
    assert found.active("w", at("2026-12-31T23:59:00+00:00"))  # the last day of December
    assert not found.active("w", at("2026-12-30T23:59:00+00:00"))
    assert not found.active("w", at("2028-12-31T12:00:00+00:00"))  # outside the years
    weekend = windows(
        {
            "weekdays": ["saturday", "sunday"],
            "times": [{"start_time": "00:00", "end_time": "24:00"}],
        }
    )
    assert weekend.active("w", at("2026-11-28T23:59:00+00:00"))
    assert not weekend.active("w", at("2026-11-30T00:00:00+00:00"))
    assert TimeIntervals().muted([], [], at("2026-11-30T00:00:00+00:00")) is False


# (interval, accepted) pairs, judged by amtool check-config as well as by our model
CASES: list[tuple[dict[str, Any], bool]] = [
    ({"weekdays": ["monday:friday"], "location": "Europe/Berlin"}, True),
    ({"weekdays": ["saturday:sunday"]}, False),
    ({"weekdays": ["funday"]}, False),
    ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, True),
    ({"times": [{"start_time": "22:00", "end_time": "06:00"}]}, False),
    ({"times": [{"start_time": "9:00", "end_time": "10:00"}]}, False),
    ({"days_of_month": ["1:5", "-3:-1"]}, True),
    ({"days_of_month": ["-1:5"]}, False),
    ({"days_of_month": ["0"]}, False),
    ({"days_of_month": ["32"]}, False),
    ({"months": ["january:march", "12"]}, True),
    ({"months": ["december:january"]}, False),
    ({"years": ["2026:2030"]}, True),
    ({"years": ["2030:2026"]}, False),
    ({"location": "Mars/Olympus"}, False),
]


@pytest.mark.parametrize(("interval", "accepted"), CASES)
def test_syntax_agrees_with_amtool(
    interval: dict[str, Any], accepted: bool, tmp_path: Path
) -> None:
    try:
        TimeIntervalSettings.model_validate(interval)
        ours = True
    except ValidationError:
        ours = False
    assert ours is accepted
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian prometheus-alertmanager) is not installed")
    config = {
        "route": {"receiver": "x"},
        "receivers": [{"name": "x"}],
        "time_intervals": [{"name": "w", "time_intervals": [interval]}],
    }
    path = tmp_path / "am.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, timeout=30, check=False
    )
    assert (done.returncode == 0) is accepted, done.stdout + done.stderr


def test_check_names_the_line_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "rules: []\n"
        "notifiers: {pager: {type: console}}\n"
        "time_intervals:\n"
        "  - name: office\n"
        "    time_intervals:\n"
        "      - weekdays: [saturday:sunday]\n"
        "        location: Europe/Berln\n"
        "alerting:\n"
        "  routes:\n"
        "    - notify: pager\n"
        "      mute_time_intervals: [ofice]\n"
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{config}:6: time_intervals[0].time_intervals[0].weekdays: 'saturday:sunday': start day"
        in err
    )
    assert "list the parts, e.g. [saturday, sunday]" in err
    assert "did you mean 'Europe/Berlin'?" in err
    config.write_text(
        config.read_text().replace("saturday:sunday", "saturday, sunday").replace("Berln", "Berlin")
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    where = f"{config}:11: alerting.routes[0].mute_time_intervals[0]: "
    assert f"{where}no time interval named 'ofice': did you mean 'office'?" in err


# -- routes --------------------------------------------------------------------------

OUT_OF_HOURS = NamedTimeIntervalSettings.model_validate(
    {
        "name": "office-hours",
        "time_intervals": [
            {
                "weekdays": ["monday:friday"],
                "times": [{"start_time": "09:00", "end_time": "17:00"}],
                "location": "Europe/Berlin",
            }
        ],
    }
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def monday(hour: int, minute: int = 0, *, days: int = 0) -> datetime:
    """Berlin's ``hour:minute`` on a Monday one to two weeks ahead (plus ``days``). The
    store stamps each change with the wall clock and ``group_wait`` counts from it, so the
    alert manager's clock in these tests must run ahead of the real one."""
    today = datetime.now(BERLIN).date()
    first = today + timedelta(days=14 - today.weekday())
    return datetime.combine(first + timedelta(days=days), time(hour, minute), BERLIN)


BERLIN = ZoneInfo("Europe/Berlin")


def manager(tmp_path: Path, clock: Clock, **route: Any) -> tuple[Store, AlertManager]:
    store = Store(str(tmp_path / "state.db"))
    config = AlertingConfig(
        policies={"chat": Policy(group_by=("...",)), "pager": Policy(group_by=("...",))},
        routes=(Route((), ("pager",), **route),),
        time_intervals=TimeIntervals.from_settings([OUT_OF_HOURS]),
    )
    return store, AlertManager(store.alert_log, store.silences, config, clock=clock)


def sent(store: Store) -> list[tuple[str, str, str | None]]:
    out = []
    for entry in store.outbox.entries():
        n = entry.notification
        out.append((n.notifier, n.status, n.alerts[0].reason))
        store.outbox.delivered(entry.id)
    return sorted(out)


def test_pages_only_out_of_hours_and_when_the_mute_ends_while_still_firing(tmp_path: Path) -> None:
    clock = Clock(monday(16, 30))  # office hours
    store, alerts = manager(tmp_path, clock, mute_time_intervals=("office-hours",))
    try:
        alert = make_alert(starts_at=clock.now)
        record_alerts(store, [(alert, ["chat"])])
        alerts.flush()
        assert sent(store) == [("chat", "firing", None)]  # the route to the pager is muted
        assert [a.alert.status for a in store.alert_log.active_alerts()] == ["firing"]
        clock.now += timedelta(minutes=29)
        alerts.flush()
        assert sent(store) == []
        clock.now += timedelta(minutes=1)  # 17:00: out of hours, still firing
        alerts.flush()
        assert sent(store) == [("pager", "firing", None)]
        clock.now = monday(9, days=1)  # office hours again: chat is reminded,
        alerts.flush()  # the muted pager is not, but hears the resolution it was told of
        assert sent(store) == [("chat", "firing", None)]
        record_alerts(store, [(resolved(alert, clock.now - alert.starts_at), ["chat"])])
        alerts.flush()
        assert sent(store) == [("chat", "resolved", None), ("pager", "resolved", None)]
    finally:
        store.close()


def test_told_again_when_the_window_opens_and_active_intervals_invert_it(tmp_path: Path) -> None:
    clock = Clock(monday(16))
    store, alerts = manager(tmp_path, clock, active_time_intervals=("office-hours",))
    try:
        alert = make_alert(starts_at=clock.now)
        record_alerts(store, [(alert, [])])
        alerts.flush()
        assert sent(store) == [("pager", "firing", None)]  # within office hours: active
        clock.now = monday(17)
        alerts.flush()
        assert sent(store) == []
        clock.now = monday(9, days=1)  # open again while it still fires
        alerts.flush()
        assert sent(store) == [("pager", "firing", "still firing; its route's time window opened")]
        # resolved outside the window and never told since: nothing held back goes out
        clock.now = monday(18, days=1)
        other = make_alert(fingerprint="f2", participant_id="p2", starts_at=clock.now)
        record_alerts(store, [(other, [])])
        alerts.flush()
        record_alerts(store, [(resolved(other, timedelta(minutes=1)), [])])
        clock.now += timedelta(minutes=1)
        alerts.flush()
        assert sent(store) == []
    finally:
        store.close()
