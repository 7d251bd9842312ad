"""The meeting view's core (``group_by: [meeting_id]``): what a notification says about its
meeting, how many of the meeting are watched, and one notification a poll cycle at most.
Time is a shifted clock, never a sleep."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy
from watchdog.alerts import (
    DEFAULT_GROUP_BY,
    MEETING_VIEW,
    Alert,
    Notification,
    meeting_changes,
    why_over,
    worst_first,
)
from watchdog.config.settings import Settings
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord
from watchdog.testing import make_alert, make_notification, resolved

from .helpers import record_alerts

MEETING = "abcd-efgh-ijkl"
BASE = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def person(n: int, start: float = 0, **kw: Any) -> Alert:
    return make_alert(
        participant_id=f"p{n}",
        participant_name=f"Person {n}",
        starts_at=BASE + timedelta(seconds=start),
        **kw,
    )


def view(*alerts: Alert, **kw: Any) -> Notification:
    return replace(make_notification(*alerts, group_by=MEETING_VIEW, thread="t"), **kw)


class Clock:
    """Wall-clock time shifted on demand: the store stamps changes with the real clock."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def advance(self, seconds: float) -> None:
        self.shift += timedelta(seconds=seconds)


def test_notifications_written_before_keep_reading() -> None:
    """An outbox row from before ``watched`` and ``mention`` existed reads as it did."""
    old = make_notification(group_by=MEETING_VIEW).to_dict()
    del old["watched"], old["mention"]
    read = Notification.from_dict(old)
    assert (read.watched, read.mention) == (None, False)
    told = replace(read, watched=12, mention=True)
    assert Notification.from_dict(told.to_dict()) == told


def test_the_meeting_view_is_group_by_meeting_id_alone() -> None:
    assert view(person(1)).meeting == MEETING
    assert make_notification(person(1), group_by=DEFAULT_GROUP_BY).meeting is None
    assert make_notification(person(1), group_by=("...",)).meeting is None


def test_worst_first_by_severity_then_how_far_past_the_threshold() -> None:
    score = person(1, value=2.9)  # 3% under its threshold of 3
    rtt = person(2, metric="averageVideoRtt", op=">", threshold=300.0, value=700.0)  # 133% over
    critical = person(3, value=2.95, severity="critical")
    over = resolved(person(4, severity="critical"))
    assert [a.participant_id for a in worst_first([over, score, rtt, critical])] == [
        "p3",
        "p2",
        "p1",
        "p4",
    ]


def test_changes_between_notifications_and_the_same_one_retried() -> None:
    alice, bob, carol = person(1), person(2, 10), person(3, 20, severity="critical")
    first = meeting_changes(view(alice, bob, created_at=BASE + timedelta(minutes=2)))
    assert [a.participant_id for a in first.degraded] == ["p1", "p2"]
    assert (first.recovered, first.over, first.since) == ((), False, BASE)
    assert first.lasted == timedelta(minutes=2)

    second = view(resolved(alice), bob, carol)
    changes = meeting_changes(second, first.memory)
    assert [a.participant_id for a in changes.degraded] == ["p3"]
    assert [a.participant_id for a in changes.recovered] == ["p1"]
    assert [x.worst.participant_id for x in changes.affected] == ["p3", "p2"]  # worst first
    again = meeting_changes(second, changes.memory)  # sent twice: the core retried it
    assert (again.degraded, again.recovered) == (changes.degraded, changes.recovered)

    bob_again = replace(bob, starts_at=bob.starts_at + timedelta(minutes=3))
    refired = meeting_changes(view(bob_again, carol), changes.memory)
    assert [a.participant_id for a in refired.degraded] == ["p2"]  # it resolved in between
    assert refired.peak == 2

    end = view(resolved(bob_again), resolved(carol))
    done = meeting_changes(end, refired.memory)
    assert done.over
    assert done.since == BASE  # the trouble began with Alice, who recovered long before
    assert done.ended_at == max(a.ends_at for a in end.alerts if a.ends_at)
    assert done.lasted == done.ended_at - BASE


def test_what_ended_it() -> None:
    alice, bob = person(1), person(2)
    assert why_over(view(resolved(alice), resolved(bob), watched=3)) == "everyone recovered"
    ended = [resolved(a, reason="the session ended") for a in (alice, bob)]
    assert why_over(view(*ended, watched=0)) == "the session ended"
    mixed = view(resolved(alice), resolved(bob, reason="participant left the session"))
    assert why_over(mixed) == "1 recovered, 1 participant left the session"


def test_the_meeting_view_defaults_to_one_notification_a_poll_cycle() -> None:
    def policies(alerting: dict[str, object]) -> dict[str, Policy]:
        settings = Settings.model_validate(
            {
                "poll": {"interval": "20s"},
                "alerting": alerting,
                "notifiers": {
                    "room": {"type": "console", "group_by": ["meeting_id"]},
                    "rules": {"type": "console"},
                    "fast": {"type": "console", "group_by": ["meeting_id"], "group_interval": "0s"},
                },
            }
        )
        return dict(AlertingConfig.from_settings(settings).policies)

    found = policies({})
    assert found["room"].group_interval == timedelta(seconds=20)
    assert found["rules"].group_interval == timedelta(0)
    assert found["fast"].group_interval == timedelta(0)
    assert policies({"group_interval": "1m"})["room"].group_interval == timedelta(minutes=1)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state.db"))


def test_a_groups_changes_wait_for_group_interval_then_travel_together(store: Store) -> None:
    clock = Clock()
    policy = Policy(group_by=MEETING_VIEW, group_interval=timedelta(seconds=30))
    am = AlertManager(
        store.alert_log, store.silences, AlertingConfig(policies={"slack": policy}), clock=clock
    )

    def flush() -> list[Notification]:
        am.flush()
        entries = store.outbox.entries()
        for entry in entries:
            store.outbox.delivered(entry.id)
        return [e.notification for e in entries]

    record_alerts(store, [(person(1), ())])
    (first,) = flush()  # the first notification of a meeting goes at once
    for n, after in ((2, 5), (3, 10)):  # others go bad later in the same cycle
        clock.advance(after)
        record_alerts(store, [(person(n), ())])
        assert flush() == []
    record_alerts(store, [(resolved(person(2)), ())])  # and one flaps back
    clock.advance(15)
    (update,) = flush()
    assert update.thread == first.thread
    assert update.reason == "new alerts added"
    assert {(a.participant_id, a.status) for a in update.alerts} == {
        ("p1", "firing"),
        ("p2", "resolved"),
        ("p3", "firing"),
    }
    clock.advance(1)
    assert flush() == []


def test_notifications_say_how_many_of_the_meeting_are_watched(store: Store) -> None:
    now = datetime.now(UTC)
    store.watchlist.save(
        [
            *(
                WatchRecord("s-1", f"p{n}", MEETING, None, "discovery", "watching", now)
                for n in range(5)
            ),
            WatchRecord("s-1", "p5", MEETING, None, "discovery", "leaving", now),
            WatchRecord("s-2", "q1", "other-room", None, "discovery", "watching", now),
        ]
    )
    config = AlertingConfig(
        policies={
            "room": Policy(group_by=MEETING_VIEW),
            "all": Policy(group_by=("...",)),
            "rules": Policy(group_by=("alertname",)),
        }
    )
    record_alerts(store, [(person(1), ()), (person(2), ())])
    AlertManager(
        store.alert_log, store.silences, config, watching_in=store.watchlist.watching_in
    ).flush()
    told = {e.notification.notifier: e.notification for e in store.outbox.entries()}
    assert told["room"].watched == 5  # the one leaving is watched no more
    assert told["all"].watched == 5  # any group of one meeting carries it
    assert told["rules"].watched is None  # a group across meetings has no such count
