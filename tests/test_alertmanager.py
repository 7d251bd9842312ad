"""The alert manager over a real SQLite state file: grouping, repeats, resolutions, silences,
routing, and that all of it survives a restart. Time is a shifted clock, never a sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog import silences
from watchdog.alertmanager import AlertingConfig, AlertManager, Policy, Route
from watchdog.alerts import Alert, Notification, Status, fingerprint
from watchdog.matchers import parse_matchers
from watchdog.problems import ConfigError
from watchdog.store import Store

from .helpers import at


def alert(
    participant: str,
    status: Status = "firing",
    *,
    rule: str = "poor-video",
    meeting: str = "m-1",
    start: float = 10,
    severity: str = "warning",
    labels: dict[str, str] | None = None,
) -> Alert:
    return Alert(
        fingerprint=fingerprint(rule, "s-1", participant),
        rule=rule,
        status=status,
        severity=severity,
        metric="qualityScore.video",
        op="<",
        threshold=3,
        value=2.0 if status == "firing" else 4.1,
        session_id="s-1",
        participant_id=participant,
        starts_at=at(start),
        fired_at=at(start + 20),
        sample_time=at(start + 20 if status == "firing" else start + 60),
        ends_at=at(start + 60) if status == "resolved" else None,
        meeting_id=meeting,
        participant_name=participant.title(),
        labels={"alertname": rule, "severity": severity, **(labels or {})},
    )


class Clock:
    """Wall-clock time shifted on demand: the store stamps changes with the real clock."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def advance(self, seconds: float) -> None:
        self.shift += timedelta(seconds=seconds)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def manager(
    path: Path, clock: Clock, config: AlertingConfig | None = None
) -> tuple[Store, AlertManager]:
    store = Store(str(path))
    return store, AlertManager(store, config or one("slack"), clock=clock)


def one(name: str, **policy: object) -> AlertingConfig:
    return AlertingConfig(policies={name: Policy(**policy)})  # type: ignore[arg-type]


def queued(store: Store) -> list[Notification]:
    """What the outbox holds, in order; taking it out as a notifier accepting it would."""
    entries = store.outbox()
    for entry in entries:
        store.delivered(entry.id)
    return [e.notification for e in entries]


def record(store: Store, *alerts: Alert, notify: tuple[str, ...] = ()) -> None:
    store.record_alerts((a, notify) for a in alerts)


def test_alerts_of_one_meeting_travel_together_in_one_thread(db: Path) -> None:
    clock = Clock()
    store, am = manager(db, clock)
    record(store, alert("alice"), alert("bob"), alert("carol", meeting="m-2"))
    am.flush()
    first = queued(store)
    assert sorted(len(n.alerts) for n in first) == [1, 2]
    both = next(n for n in first if len(n.alerts) == 2)
    assert both.status == "firing"
    assert {a.participant_id for a in both.alerts} == {"alice", "bob"}
    assert not both.repeat

    record(store, alert("alice", "resolved"))
    am.flush()
    (update,) = queued(store)
    assert update.thread == both.thread
    assert update.status == "firing"  # bob still fires
    assert [(a.participant_id, a.status) for a in update.alerts] == [
        ("bob", "firing"),
        ("alice", "resolved"),
    ]

    record(store, alert("bob", "resolved"))
    am.flush()
    (over,) = queued(store)
    assert (over.thread, over.status) == (both.thread, "resolved")
    assert [a.participant_id for a in over.alerts] == ["bob"]

    record(store, alert("bob", start=500))  # a new episode gets a new thread
    am.flush()
    (again,) = queued(store)
    assert again.thread != both.thread
    assert am.flush() == 0
    assert store.active_alerts()[0].alert.participant_id in {"bob", "carol"}


def test_the_same_transition_twice_notifies_once(db: Path) -> None:
    store, am = manager(db, Clock())
    record(store, alert("alice"))
    record(store, alert("alice"))
    am.flush()
    record(store, alert("alice"))
    am.flush()
    assert len(queued(store)) == 1


def test_group_wait_collects_and_survives_a_crash(db: Path) -> None:
    clock = Clock()
    config = one("slack", group_wait=timedelta(seconds=30))
    store, am = manager(db, clock, config)
    record(store, alert("alice"))
    assert am.flush() == 0
    clock.advance(10)
    record(store, alert("bob"))
    assert am.flush() == 0
    store.close()  # the daemon dies while the group waits

    clock.advance(25)
    store, am = manager(db, clock, config)
    assert am.flush() == 1
    (notification,) = queued(store)
    assert {a.participant_id for a in notification.alerts} == {"alice", "bob"}
    assert am.flush() == 0
    assert am.flush(final=True) == 0


def test_repeat_interval_reminds_in_the_thread_and_remembers_across_restarts(db: Path) -> None:
    clock = Clock()
    config = one("slack", repeat_interval=timedelta(hours=1))
    store, am = manager(db, clock, config)
    record(store, alert("alice"))
    am.flush()
    (first,) = queued(store)
    clock.advance(3500)
    assert am.flush() == 0
    clock.advance(100)
    am.flush()
    (reminder,) = queued(store)
    assert reminder.repeat
    assert reminder.thread == first.thread
    assert [a.participant_id for a in reminder.alerts] == ["alice"]
    store.close()

    clock.advance(60)
    store, am = manager(db, clock, config)  # restarted: no re-send, and no reminder forgotten
    assert am.flush() == 0
    clock.advance(3600)
    assert am.flush() == 1
    assert queued(store)[0].repeat


def test_send_resolved_false_stays_quiet_when_it_is_over(db: Path) -> None:
    store, am = manager(db, Clock(), one("pager", send_resolved=False))
    record(store, alert("alice"))
    am.flush()
    assert len(queued(store)) == 1
    record(store, alert("alice", "resolved"))
    assert am.flush() == 0
    assert store.active_alerts() == []  # handled: nothing lingers


def test_an_alert_that_resolved_before_anyone_heard_is_still_told(db: Path) -> None:
    store, am = manager(db, Clock(), one("slack", group_wait=timedelta(seconds=30)))
    record(store, alert("alice"))
    record(store, alert("alice", "resolved"))
    am.flush(final=True)
    (told,) = queued(store)
    assert told.status == "resolved"
    assert told.alerts[0].ends_at is not None


def test_silences_mute_until_they_end_and_drop_resolutions(db: Path) -> None:
    clock = Clock()
    store, am = manager(db, clock)
    silence = silences.add(
        store, ["rule=poor-video", "participantId=~al.*"], timedelta(hours=1), "known issue"
    )
    record(store, alert("alice"), alert("bob"))
    am.flush()
    (only_bob,) = queued(store)
    assert [a.participant_id for a in only_bob.alerts] == ["bob"]
    assert silences.describe(store)[0]["silencedAlerts"] == 1

    silences.expire(store, silence.id[:6])
    am.flush()  # alice still fires: she is told now, with bob, in bob's thread
    (after,) = queued(store)
    assert after.thread == only_bob.thread
    assert {a.participant_id for a in after.alerts} == {"alice", "bob"}

    bobs = silences.add(store, ["participantId=bob"], timedelta(hours=1), "bob's wifi")
    assert am.flush() == 0  # bob was told already; silenced now
    silences.expire(store, bobs.id)
    am.flush()  # the silence is over and bob still fires: he is told again
    (told_again,) = queued(store)
    assert told_again.thread == only_bob.thread
    assert not told_again.repeat

    silences.add(store, ["participantId=bob"], timedelta(hours=1), "bob's wifi, again")
    record(store, alert("bob", "resolved"))
    assert am.flush() == 0  # a silenced resolution is not sent
    clock.advance(7200)  # even once that silence is over
    record(store, alert("alice", "resolved"))
    am.flush()
    (end,) = queued(store)
    assert [(a.participant_id, a.status) for a in end.alerts] == [("alice", "resolved")]
    assert store.active_alerts() == []


def test_silence_requests_are_checked() -> None:
    store = Store(":memory:")
    with pytest.raises(ConfigError) as caught:
        silences.add(store, ["rule=~(", "team"], timedelta(0), " ")
    text = str(caught.value)
    assert "invalid regular expression" in text
    assert "--comment is required" in text
    assert "--for must be more than 0s" in text
    with pytest.raises(ConfigError, match="match every alert"):
        silences.add(store, ["rule=~.*"], timedelta(hours=1), "everything")
    assert store.silences() == []


def test_routes_add_notifiers_and_a_rule_notify_always_applies(db: Path) -> None:
    policies = {name: Policy() for name in ("slack", "pager", "email")}
    config = AlertingConfig(
        policies=policies,
        routes=(
            Route(parse_matchers(["severity=critical"]), ("pager",)),
            Route(parse_matchers(["team=~video|audio"]), ("email",)),
        ),
        default_notify=("slack",),
    )
    store, am = manager(db, Clock(), config)
    record(store, alert("alice", severity="critical"), notify=("email",))
    record(store, alert("bob", rule="high-rtt", labels={"team": "video"}))
    record(store, alert("carol", rule="low-audio"))
    am.flush()
    got = sorted((n.notifier, n.alerts[0].participant_id) for n in queued(store))
    assert got == [("email", "alice"), ("email", "bob"), ("pager", "alice"), ("slack", "carol")]


def _wait_for_outbox(store: Store, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not store.outbox() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_alerts_recorded_mid_cycle_go_out_before_the_cycle_ends_and_together(db: Path) -> None:
    store, am = manager(db, Clock())
    am.start()
    try:
        with am.poll_cycle():  # a long poll cycle: thousands of participants still to poll
            record(store, alert("alice"))
            am.intake()
            record(store, alert("bob"))  # polled right after alice: same meeting
            am.intake()
            _wait_for_outbox(store)
            (together,) = queued(store)
            assert {a.participant_id for a in together.alerts} == {"alice", "bob"}
            record(store, alert("carol", meeting="m-2"))
            am.intake()
            _wait_for_outbox(store)
            (later,) = queued(store)
            assert [a.participant_id for a in later.alerts] == ["carol"]
    finally:
        am.stop()
    assert am.flush() == 0  # nothing was left for the end of the cycle
