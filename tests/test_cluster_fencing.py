"""Fencing beyond poll commits, on a real PostgreSQL: departures carry the lease
generation, meeting-rule states are the leader's and fenced by its advisory lock, and
``status --json`` lists the instances."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from prometheus_client import REGISTRY

from watchdog.cli.status import print_status
from watchdog.cluster.coordinator import Cluster
from watchdog.config.settings import Config
from watchdog.runtime.build import Runtime, build
from watchdog.sim.simulator import Simulator
from watchdog.state.leases import StaleLease
from watchdog.videosdk.stats import ParticipantInfo
from watchdog.watch.watchlist import Seen

from .helpers import as_instance, at, video_series

MakeConfig = Callable[..., Config]

POOR_VIDEO = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: warning
"""
MEETING = """\
rules:
  - name: meeting-poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {fraction: 0.5, min_participants: 2}
"""
LEFT = "participant left the session"


def _leads(member: Cluster) -> bool:
    return member.leader  # a call, so the type checker does not narrow across ticks


def _stale() -> float:
    return REGISTRY.get_sample_value("watchdog_stale_writes_rejected_total") or 0.0


@contextmanager
def _member(config: Config, ident: str) -> Iterator[tuple[Runtime, Cluster]]:
    """One instance as the service builds it: a runtime that joined the cluster."""
    runtime = build(as_instance(config, ident), join=True)
    assert runtime.cluster is not None
    try:
        yield runtime, runtime.cluster
    finally:
        runtime.close()  # hands its leases back


def _expire(url: str, owner: str) -> None:
    """As if ``owner`` had been paused for longer than its lease: its last heartbeat is old."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE instances SET heartbeat_at = 0 WHERE id = %s", (owner,))


def _outbox(runtime: Runtime) -> list[tuple[str, str]]:
    """What the alert manager (running on the leader) queued for delivery."""
    runtime.manager.flush()
    store = runtime.store
    return sorted(
        (e.notification.status, alert.participant_id or "-")
        for e in store.outbox.entries()
        for alert in e.notification.alerts
    )


def test_a_departure_is_written_only_by_the_lease_holder(
    sim: Simulator, config_for: MakeConfig, postgres_url: str
) -> None:
    for participant in ("p0", "p1"):
        sim.add_participant("s", participant, samples=video_series([(0, 2), (10, 2)]))
    sim.advance(10)
    config = config_for(
        [("s", "p0"), ("s", "p1")],
        rules=POOR_VIDEO,
        state={"url": postgres_url},
        alerting={"group_by": ["..."]},  # one notification an alert
    )
    key = ("s", "p0")
    info = ParticipantInfo(session_id="s", participant_id="p0", meeting_id=None, name=None)
    with _member(config, "a") as (one, a), _member(config, "b") as (two, b):
        a.tick()
        b.tick()
        assert len(a.held) == 2
        assert not b.held
        assert len(one.poller.cycle().transitions) == 2  # both fire, committed fenced
        store = one.store
        assert len(_outbox(one)) == 2

        before = _stale()
        assert two.poller.depart(key, LEFT, info) == 0  # b does not hold p0: refused
        assert _stale() == before + 1
        assert store.polls.load_alert_states()[key]["poor-video"].phase == "firing"
        assert key in store.polls.load_cursors()
        assert key in {(r.session_id, r.participant_id) for r in store.watchlist.load()}
        assert len(_outbox(one)) == 2  # no resolution went out

        _expire(postgres_url, "a")
        b.tick()  # takes p0 over with a new generation
        assert key in b.held
        generation = b.held[key]
        assert one.poller.depart(key, LEFT, info) == 0  # a's generation is stale now
        assert _stale() == before + 2
        assert key in store.polls.load_alert_states()

        assert two.poller.depart(key, LEFT, info) == 1  # the holder resolves and forgets
        assert key not in store.polls.load_alert_states()
        assert key not in store.polls.load_cursors()
        assert _outbox(one) == [("firing", "p0"), ("firing", "p1"), ("resolved", "p0")]
        with psycopg.connect(postgres_url) as conn:  # the lease went with the participant
            assert conn.execute(
                "SELECT COUNT(*) FROM leases WHERE participant_id = 'p0'"
            ).fetchone() == (0,)
        with pytest.raises(StaleLease):  # so a late write is fenced off: no lease, no write
            store.polls.commit_poll(key, at(30), {}, [], fence=("b", generation))
        assert key not in store.polls.load_cursors()


def test_meeting_rule_states_are_written_by_the_leader_only(
    sim: Simulator, config_for: MakeConfig, postgres_url: str
) -> None:
    for participant in ("a", "b"):
        sim.add_participant(
            "s",
            participant,
            samples=video_series([(0, 4), (10, 2), (20, 2), (30, 4)]),
            meeting_id="room-1",
        )
    sim.advance(20)
    config = config_for([("s", "a"), ("s", "b")], rules=MEETING, state={"url": postgres_url})
    with _member(config, "one") as (one, first), _member(config, "two") as (two, second):
        first.tick()
        second.tick()
        assert _leads(first)
        assert not _leads(second)
        assert two.poller.cycle().transitions == []  # not the leader: meeting rules skipped
        (fired,) = one.poller.cycle().transitions
        assert (fired.scope, fired.state, fired.info.meeting_id) == ("meeting", "firing", "room-1")
        store = one.store
        assert store.polls.load_meeting_states()[("meeting-poor-video", "room-1")].phase == "firing"
        pid = first.leader_fence()
        assert pid != 0
        assert second.leader_fence() == 0  # no backend is 0: a write would be refused

        with psycopg.connect(postgres_url, autocommit=True) as admin:  # one's lock connection dies
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        second.tick()
        assert _leads(second)  # the lock moved with the connection
        assert ("meeting-poor-video", "room-1") in two.poller.meetings.get()  # carried on

        sim.advance(10)  # video recovers: "one", still believing it leads, would resolve
        before = _stale()
        assert _leads(first)
        assert [t.scope for t in one.poller.cycle().transitions] == []
        assert _stale() == before + 1
        assert not _leads(first)  # it learned it lost the leadership
        assert store.polls.load_meeting_states()[("meeting-poor-video", "room-1")].phase == "firing"
        two.manager.flush()  # the new leader's alert manager: the firing, no resolution
        assert [e.notification.status for e in store.outbox.entries()] == ["firing"]

        state = store.polls.load_meeting_states()
        changed = [("meeting-poor-video", "room-1")]
        with pytest.raises(StaleLease):  # a meeting write from a lost leader
            store.polls.commit_meetings({}, changed, leader=pid)
        store.polls.commit_meetings(state, changed, leader=second.leader_fence())  # the leader's


def test_status_json_lists_the_instances(
    sim: Simulator, config_for: MakeConfig, postgres_url: str
) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 4)]))
    config = config_for([("s", "p")], rules=POOR_VIDEO, state={"url": postgres_url})
    with _member(config, "one") as (_, first), _member(config, "two") as (_, second):
        first.tick()
        second.tick()
        out = io.StringIO()
        assert print_status(config, out, as_json=True) == 0
        document = json.loads(out.getvalue())
    members = {m["id"]: m for m in document["instances"]}
    assert set(members) == {"one", "two"}
    assert (members["one"]["leader"], members["two"]["leader"]) == (True, False)
    assert (members["one"]["participantsHeld"], members["two"]["participantsHeld"]) == (1, 0)
    assert all(m["heartbeatAgeSeconds"] >= 0 and m["lastHeartbeat"] for m in members.values())
    assert [p["participantId"] for p in document["participants"]] == ["p"]


def test_the_leader_evaluates_a_meeting_split_over_instances(
    sim: Simulator, config_for: MakeConfig, postgres_url: str
) -> None:
    for participant in ("a", "b"):
        sim.add_participant(
            "s",
            participant,
            name=participant,
            samples=video_series([(0, 4), (10, 2), (20, 2)]),
            meeting_id="room-1",
        )
    sim.advance(20)
    config = config_for([("s", "a"), ("s", "b")], rules=MEETING, state={"url": postgres_url})
    with _member(config, "one") as (one, first), _member(config, "two") as (two, second):
        first.tick()
        second.tick()
        first.tick()  # two joined: one hands a participant back
        second.tick()  # and two claims it
        assert len(first.held) == len(second.held) == 1
        assert two.poller.cycle().transitions == []  # polls its half, commits its conditions
        (fired,) = one.poller.cycle().transitions  # the leader sees both halves
        assert (fired.scope, fired.info.meeting_id, fired.affected) == (
            "meeting",
            "room-1",
            ("a", "b"),
        )
        assert fired.watched == 2


def test_a_leave_seen_by_the_leader_is_resolved_by_the_instance_polling_it(
    sim: Simulator, config_for: MakeConfig, postgres_url: str
) -> None:
    for participant in ("p0", "p1"):
        sim.add_participant("s", participant, samples=video_series([(0, 2), (10, 2)]))
    sim.advance(10)
    config = config_for(
        [],
        rules=POOR_VIDEO,
        state={"url": postgres_url},
        alerting={"group_by": ["..."]},
    )
    with _member(config, "one") as (one, first), _member(config, "two") as (two, second):
        for participant in ("p0", "p1"):  # joined through the leader (discovery, a webhook)
            one.watchlist.join(("s", participant), Seen(), "webhook")
        first.tick()
        second.tick()
        first.tick()
        second.tick()
        assert len(first.held) == len(second.held) == 1
        (theirs,) = second.held
        two.watchlist.refresh()  # two learns of participants it did not see join
        assert theirs in {(t.session, t.participant) for t in two.watchlist.targets()}
        assert len(two.poller.cycle().transitions) == 1  # fires on two
        assert _outbox(one) == [("firing", theirs[1])]  # sent by the leader's alert manager

        assert one.watchlist.leave(theirs)  # the leader learns it left
        two.watchlist.refresh()
        assert two.watchlist.get(theirs) is not None
        assert two.watchlist.get(theirs).status == "leaving"  # type: ignore[union-attr]
        two.poller.cycle()  # the final poll, then two (the holder) resolves and forgets it
        store = one.store
        assert theirs not in store.polls.load_alert_states()
        assert theirs not in {(r.session_id, r.participant_id) for r in store.watchlist.load()}
        one.watchlist.refresh()
        assert one.watchlist.get(theirs) is None  # and the leader forgets it too
        assert _outbox(one) == [("firing", theirs[1]), ("resolved", theirs[1])]
