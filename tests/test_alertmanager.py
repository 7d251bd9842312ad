"""The alert manager over a real SQLite state file: grouping, repeats, resolutions, silences,
routing, and that all of it survives a restart. Time is a shifted clock, never a sleep."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.alerting import silences
from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy, Route
from watchdog.alerts import Alert, Notification, Status, fingerprint, group_key
from watchdog.config.matchers import parse_matchers
from watchdog.config.problems import ConfigError
from watchdog.config.settings import Settings, load_config
from watchdog.engine.rules import load_rules
from watchdog.runtime.build import build
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.testing import HttpReceiver, make_notification

from .amwebhook import Message
from .conftest import write_config
from .helpers import at, record_alerts, sample


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
    return store, AlertManager(store.alert_log, store.silences, config or one("slack"), clock=clock)


def one(name: str, **policy: object) -> AlertingConfig:
    return AlertingConfig(policies={name: Policy(**policy)})  # type: ignore[arg-type]


def queued(store: Store) -> list[Notification]:
    """What the outbox holds, in order; taking it out as a notifier accepting it would."""
    entries = store.outbox.entries()
    for entry in entries:
        store.outbox.delivered(entry.id)
    return [e.notification for e in entries]


def record(store: Store, *alerts: Alert, notify: tuple[str, ...] = ()) -> None:
    record_alerts(store, [(a, notify) for a in alerts])


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
    assert store.alert_log.active_alerts()[0].alert.participant_id in {"bob", "carol"}


def test_a_notification_queued_before_groups_had_an_identity_gets_the_default_one() -> None:
    old = make_notification(alert("alice"), notifier="slack").to_dict()
    for key in ("group_key", "group_labels", "reason"):
        del old[key]
    restored = Notification.from_dict(old)
    assert restored.group_labels == {"alertname": "poor-video", "meeting_id": "m-1"}
    assert restored.group_key == '{}/{receiver="slack"}:{alertname="poor-video", meeting_id="m-1"}'


def test_an_alert_survives_the_outbox_round_trip_whole_and_its_dict_is_a_copy() -> None:
    original = replace(
        alert("alice", "resolved", labels={"team": "video"}),
        context={"device": "web"},
        values=[3.5, 2.0],
        sparkline="▇▁",
        reason="participant left the session",
    )
    data = original.to_dict()
    assert data["ends_at"] == "2026-11-24T10:01:10.000Z"
    assert Alert.from_dict(json.loads(json.dumps(data))) == original
    data["labels"]["team"], data["context"]["device"] = "audio", "ios"
    data["values"].append(9.0)
    assert (original.labels["team"], original.context["device"]) == ("video", "web")
    assert original.values == [3.5, 2.0]


def test_group_keys_quote_values_as_go_does() -> None:
    """Alertmanager writes label values with Go's strconv.Quote; so do we, so no two label
    sets ever share a key (a quote or a newline in a value cannot fake another label)."""
    labels = {"team": 'a", b="c', "note": "line\nbreak\x01 é ✓"}
    assert group_key("pager", labels) == (
        '{}/{receiver="pager"}:{note="line\\nbreak\\x01 é ✓", team="a\\", b=\\"c"}'
    )


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


def test_reminders_go_on_when_group_by_changes_under_a_firing_group(db: Path) -> None:
    clock = Clock()
    store, am = manager(db, clock)
    record(store, alert("alice"))
    am.flush()
    (first,) = queued(store)
    reloaded = one("slack", group_by=("...",))  # a reload
    regrouped = AlertManager(store.alert_log, store.silences, reloaded, clock=clock)
    assert regrouped.flush() == 0  # nothing changed: nothing to tell
    clock.advance(4 * 3600)
    regrouped.flush()
    (reminder,) = queued(store)
    assert reminder.repeat
    assert reminder.group_key != first.group_key
    assert reminder.group_labels["participant_id"] == "alice"


def test_send_resolved_false_stays_quiet_when_it_is_over(db: Path) -> None:
    store, am = manager(db, Clock(), one("pager", send_resolved=False))
    record(store, alert("alice"))
    am.flush()
    assert len(queued(store)) == 1
    record(store, alert("alice", "resolved"))
    assert am.flush() == 0
    assert store.alert_log.active_alerts() == []  # handled: nothing lingers


def test_an_alert_that_resolved_before_anyone_heard_is_still_told(db: Path) -> None:
    store, am = manager(db, Clock(), one("slack", group_wait=timedelta(seconds=30)))
    record(store, alert("alice"))
    record(store, alert("alice", "resolved"))
    am.flush(final=True)
    (told,) = queued(store)
    assert told.status == "resolved"
    assert told.alerts[0].ends_at is not None


def test_silences_mute_until_they_end_but_never_hold_back_a_resolution(db: Path) -> None:
    clock = Clock()
    store, am = manager(db, clock)
    silence = silences.add(
        store.silences,
        ["alertname=poor-video", "participant_id=~al.*"],
        timedelta(hours=1),
        "known issue",
    )
    record(store, alert("alice"), alert("bob"))
    am.flush()
    (only_bob,) = queued(store)
    assert [a.participant_id for a in only_bob.alerts] == ["bob"]
    assert silences.describe(store.silences, store.alert_log)[0]["silencedAlerts"] == 1

    silences.expire(store.silences, silence.id[:6])
    am.flush()  # alice still fires: she is told now, with bob, in bob's thread
    (after,) = queued(store)
    assert after.thread == only_bob.thread
    assert {a.participant_id for a in after.alerts} == {"alice", "bob"}

    bobs = silences.add(store.silences, ["participant_id=bob"], timedelta(hours=1), "bob's wifi")
    assert am.flush() == 0  # bob was told already; silenced now
    silences.expire(store.silences, bobs.id)
    am.flush()  # the silence is over and bob still fires: he is told again
    (told_again,) = queued(store)
    assert told_again.thread == only_bob.thread
    assert not told_again.repeat

    silences.add(store.silences, ["participant_id=bob"], timedelta(hours=1), "bob's wifi, again")
    record(store, alert("bob", "resolved"))
    am.flush()  # told bob fired, so told he resolved, silenced or not (alertmanager#226)
    (bob_over,) = queued(store)
    assert {(a.participant_id, a.status) for a in bob_over.alerts} == {
        ("alice", "firing"),
        ("bob", "resolved"),
    }
    clock.advance(7200)
    record(store, alert("alice", "resolved"))
    am.flush()
    (end,) = queued(store)
    assert [(a.participant_id, a.status) for a in end.alerts] == [("alice", "resolved")]
    assert store.alert_log.active_alerts() == []


def test_a_silence_ending_while_the_alert_fires_re_notifies_once_with_a_note(db: Path) -> None:
    clock = Clock()
    store, am = manager(db, clock)  # repeat_interval: 4h
    record(store, alert("alice"), alert("bob"))
    am.flush()
    (first,) = queued(store)
    assert {a.reason for a in first.alerts} == {None}

    silence = silences.add(
        store.silences,
        ["participant_id=alice"],
        timedelta(minutes=30),
        "customer network",
        now=clock(),
    )
    clock.advance(600)
    assert am.flush() == 0  # alice is muted; nothing changed for bob
    silences.expire(store.silences, silence.id, now=clock(), actor="carol")
    am.flush()  # at once, not after the repeat interval
    (again,) = queued(store)
    assert (again.thread, again.repeat, again.reason) == (first.thread, False, "new alerts added")
    told = {a.participant_id: a.reason for a in again.alerts}
    assert told == {
        "alice": f"still firing; silence {silence.id[:8]} ended "
        f"({silence.created_by}: customer network)",
        "bob": None,  # never silenced: carried as the group's current state, no note
    }

    lapsing = silences.add(
        store.silences, ["participant_id=bob"], timedelta(minutes=5), "x" * 200, now=clock()
    )
    assert am.flush() == 0
    clock.advance(301)  # this one simply runs out
    am.flush()
    (lapsed,) = queued(store)
    (note,) = [a.reason for a in lapsed.alerts if a.participant_id == "bob"]
    assert (
        note == f"still firing; silence {lapsing.id[:8]} ended ({lapsing.created_by}: {'x' * 79}…)"
    )

    assert am.flush() == 0  # once
    clock.advance(4 * 3600)
    am.flush()
    (reminder,) = queued(store)
    assert reminder.repeat
    assert {a.reason for a in reminder.alerts} == {None}


def test_old_label_names_keep_working(db: Path) -> None:
    """Silences stored with the old names (``rule``, ``participantId``) still mute, read under
    the new names; routes and group_by written the old way still route and group."""
    config = AlertingConfig.from_settings(
        Settings.model_validate(
            {
                "notifiers": {
                    "slack": {"type": "console", "group_by": ["meetingId", "rule"]},
                    "pager": {"type": "console", "group_by": ["fingerprint"]},
                },
                "alerting": {
                    "routes": [{"match": ["rule=high-rtt"], "notify": ["pager"]}],
                    "default_notify": ["slack"],
                },
            }
        )
    )
    assert config.policies["slack"].group_by == ("meeting_id", "alertname")
    assert config.policies["pager"].group_by == ("...",)
    store, am = manager(db, Clock(), config)
    with store.transaction() as cur:  # as an older version wrote it
        cur.execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                "0ld5113nce",
                json.dumps(["rule=poor-video", "participantId=alice"]),
                "2000-01-01T00:00:00.000Z",
                "2999-01-01T00:00:00.000Z",
                "ops",
                "old silence",
                "2000-01-01T00:00:00.000Z",
            ),
        )
    (old,) = store.silences.all()
    assert [str(m) for m in old.matchers] == ["alertname=poor-video", "participant_id=alice"]
    record(
        store,
        alert("alice"),
        alert("bob"),
        alert("carol", rule="high-rtt"),
        alert("dan", rule="high-rtt"),
    )
    am.flush()
    got = sorted((n.notifier, n.group_key, len(n.alerts)) for n in queued(store))
    assert got == [  # high-rtt routed to the pager, one group an alert; alice muted
        (
            "pager",
            '{}/{receiver="pager"}:{alertname="high-rtt", meeting_id="m-1", '
            'metric="qualityScore.video", participant_id="carol", scope="participant", '
            'session_id="s-1", severity="warning"}',
            1,
        ),
        (
            "pager",
            '{}/{receiver="pager"}:{alertname="high-rtt", meeting_id="m-1", '
            'metric="qualityScore.video", participant_id="dan", scope="participant", '
            'session_id="s-1", severity="warning"}',
            1,
        ),
        ("slack", '{}/{receiver="slack"}:{alertname="poor-video", meeting_id="m-1"}', 1),
    ]


def test_rule_labels_must_be_label_names_with_values(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: a, metric: qualityScore.video, op: '<', threshold: 3, labels: {team-x: v}}\n"
        "  - {name: b, metric: qualityScore.video, op: '<', threshold: 3, labels: {severity: p}}\n"
        "  - {name: c, metric: qualityScore.video, op: '<', threshold: 3, labels: {team: ''}}\n"
        "  - {name: d, metric: qualityScore.video, op: '<', threshold: 3, labels: {team_x: v}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (2, "rule 'a': labels 'team-x' is not a label name: use letters, digits and _"),
        (3, "rule 'b': labels 'severity' is set by the watchdog; choose another name"),
        (4, "rule 'c': labels 'team' has no value (omit the label instead)"),
    ]


def test_silence_requests_are_checked() -> None:
    store = Store(":memory:")
    with pytest.raises(ConfigError) as caught:
        silences.add(store.silences, ["alertname=~(", "team"], timedelta(0), " ")
    text = str(caught.value)
    assert "invalid regular expression" in text
    assert "--comment is required" in text
    assert "--for must be more than 0s" in text
    with pytest.raises(ConfigError, match="match every alert"):
        silences.add(store.silences, ["alertname=~.*"], timedelta(hours=1), "everything")
    assert store.silences.all() == []


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


def test_a_reload_regroups_and_reroutes_alerts_that_did_not_change(db: Path) -> None:
    """The manager keeps each alert's routes and group from one flush to the next; a
    reload (a new config on the same manager, as the service does it) must not be
    answered from what it kept."""
    clock = Clock()
    store, am = manager(db, clock)
    record(store, alert("alice"), alert("bob"))
    am.flush()
    (first,) = queued(store)
    assert sorted(a.participant_id for a in first.alerts) == ["alice", "bob"]
    am.config = AlertingConfig(
        policies={"slack": Policy(group_by=("...",)), "pager": Policy()},
        routes=(Route(parse_matchers(["participant_id=bob"]), ("pager",)),),
        default_notify=("slack",),
    )
    am.flush()
    (paged,) = queued(store)  # bob matches a route now: pager instead of the default
    assert (paged.notifier, [a.participant_id for a in paged.alerts]) == ("pager", ["bob"])
    clock.advance(4 * 3600 + 1)
    am.flush()
    reminders = sorted(
        (n.notifier, n.group_labels.get("participant_id"), len(n.alerts)) for n in queued(store)
    )
    assert reminders == [("pager", None, 1), ("slack", "alice", 1)]  # slack: alice alone


def _wait_for_outbox(store: Store, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not store.outbox.entries() and time.monotonic() < deadline:
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


RUN_RULES = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: warning
    labels: {team: video}
  - name: high-rtt
    metric: averageVideoRtt
    op: ">"
    threshold: 300
    severity: critical
  - name: meeting-poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: critical
    meeting: {fraction: 0.5, min_participants: 2, within: 30s}
"""


def _samples(video: tuple[int, int] = (0, 0), rtt: tuple[int, int] = (0, 0)) -> list[Any]:
    """Samples every 10 s for 2 min: video score 2 and video RTT 500 ms inside the spans."""
    return [
        sample(
            t,
            video=2.0 if video[0] <= t < video[1] else 4.2,
            averageVideoRtt=500.0 if rtt[0] <= t < rtt[1] else 42.0,
        )
        for t in range(0, 130, 10)
    ]


def test_group_identity_over_a_multi_rule_multi_participant_run(
    tmp_path: Path, sim: Simulator
) -> None:
    """The bodies a real run sends decode into Alertmanager's webhook structs, and each group
    keeps one groupKey from first firing through reminders to its resolve: one key per group,
    never shared by another group or another receiver; groupLabels are its group_by labels."""
    people = {
        ("s-1", "p1", "m-1"): _samples(video=(10, 60)),
        ("s-1", "p2", "m-1"): _samples(video=(20, 70), rtt=(20, 70)),
        ("s-1", "p3", "m-1"): _samples(),
        ("s-2", "p4", "m-2"): _samples(video=(10, 80)),
        ("s-2", "p5", "m-2"): _samples(rtt=(30, 90)),
    }
    for (session, participant, meeting), samples in people.items():
        sim.add_participant(session, participant, samples=samples, meeting_id=meeting)
    with HttpReceiver() as receiver:
        path = write_config(tmp_path, sim.url, [(s, p) for s, p, _ in people], RUN_RULES)
        data = yaml.safe_load(path.read_text())
        data["notifiers"] = {
            "hook": {"type": "webhook", "url": receiver.url + "/hook"},
            "incidents": {
                "type": "webhook",
                "url": receiver.url + "/incidents",
                "group_by": ["meeting_id"],
            },
        }
        data["alerting"] = {"repeat_interval": "1h"}
        path.write_text(yaml.safe_dump(data))
        runtime = build(load_config(str(path)))
        clock = Clock()
        am = AlertManager(
            runtime.store.alert_log,
            runtime.store.silences,
            AlertingConfig.from_settings(runtime.config.settings),
            clock=clock,
        )
        try:
            for step in range(13):
                runtime.poller.cycle()
                am.flush()
                if step in (4, 6):  # 0:40 and 1:00 in sample time: a reminder is due
                    clock.advance(3601)
                    am.flush()
                assert runtime.dispatcher.drain(10) == 0
                sim.advance(10)
                clock.advance(10)  # a cycle later for the alert manager too (group_interval)
        finally:
            runtime.close()
        bodies = [Message.model_validate_json(r.body) for r in receiver.requests]

    group_by = {"hook": {"meeting_id", "alertname"}, "incidents": {"meeting_id"}}
    groups: dict[str, list[Message]] = defaultdict(list)
    for body in bodies:
        groups[body.groupKey].append(body)
    identities = set()
    for key, told in groups.items():
        (receiver_name,) = {b.receiver for b in told}
        (labels,) = {tuple(sorted(b.groupLabels.items())) for b in told}
        assert {name for name, _ in labels} == group_by[receiver_name]
        shown = ", ".join(f'{name}="{value}"' for name, value in labels)
        assert key == f'{{}}/{{receiver="{receiver_name}"}}:{{{shown}}}'
        identities.add((receiver_name, labels))
        for body in told:
            for item in body.alerts:
                assert set(labels) <= set(item.labels.items())  # the alerts carry them
                assert all(item.labels.values())  # no empty label, ever
        assert told[0].notification_reason == "first notification"
        assert told[-1].status == "resolved"  # the resolve comes under the same key
    assert len(identities) == len(groups)  # one key per group, per receiver

    def group(receiver_name: str, **labels: str) -> list[Message]:
        return next(
            told
            for told in groups.values()
            if told[0].receiver == receiver_name and told[0].groupLabels == labels
        )

    video = group("hook", alertname="poor-video", meeting_id="m-1")
    assert {len(b.alerts) for b in video} == {1, 2}  # p1 alone, p2 joins, p2 alone again
    reminders = [b for b in video if b.notification_reason == "repeat interval elapsed"]
    assert [len(b.alerts) for b in reminders] == [2, 1]
    m1 = group("incidents", meeting_id="m-1")
    names = {a.labels["alertname"] for b in m1 for a in b.alerts}
    assert names == {"poor-video", "high-rtt", "meeting-poor"}  # once a colliding key
    assert m1[0].groupKey != group("incidents", meeting_id="m-2")[0].groupKey
    (meeting_alert, *_) = [
        a for b in m1 for a in b.alerts if a.labels["alertname"] == "meeting-poor"
    ]
    assert "participant_id" not in meeting_alert.labels
