"""The watch list follows reality: discovery by polling, departures, filters, 404s, restarts.

Everything runs against the simulator on its manual clock: a discovery pass
or a poll cycle is called directly at chosen sample times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchdog.cli.main import main
from watchdog.config.settings import Config, WatchFilters
from watchdog.runtime.build import Runtime, build
from watchdog.sim.churn import churn
from watchdog.sim.simulator import Fault, Simulator
from watchdog.state.store import Store
from watchdog.watch.filters import Filters
from watchdog.watch.watchlist import Seen, WatchList

from .conftest import POOR_VIDEO
from .helpers import video_series

MakeConfig = Callable[..., Config]
ROOM = "abcd-efgh-ijkl"


def discovering(config_for: MakeConfig, **watch: Any) -> Runtime:
    settings = {"discovery_interval": "30s", **watch}
    if "rooms" not in settings:
        settings.setdefault("all_rooms", True)
    return build(config_for([], watch=settings))


def test_churn_keeps_the_watch_list_exact_at_every_discovery_pass(
    sim: Simulator, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """100 rooms, 2,000 participants joining, leaving and coming back over ten minutes."""
    plan = churn(sim, rooms=100, participants=2000, duration=600)
    assert plan.stays > plan.participants  # some came back
    runtime = discovering(config_for, discovery_interval="30s")
    seen: set[tuple[str, str]] = set()
    try:
        for _ in range(24):  # every 30 s of sample time, past the end of the schedule
            report = runtime.discovery.run() if runtime.discovery else None
            assert report is not None
            assert report.complete
            truth = sim.active_participants()
            watching = runtime.watchlist.keys("watching")
            assert watching == truth  # nobody who left is watched, nobody present is missed
            seen |= truth
            cycle = runtime.poller.cycle()  # drains and forgets whoever left
            assert cycle.failed == 0
            assert runtime.watchlist.keys("leaving") == set()
            assert {(t.session, t.participant) for t in runtime.watchlist.targets()} == truth
            sim.advance(30)
        assert len(seen) > 1000
    finally:
        runtime.close()
    capsys.readouterr()


def test_a_participant_who_leaves_is_drained_then_resolved_with_the_reason(
    sim: Simulator, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0, scenario="video-degradation")
    sim.join("sess-1", "bob", name="Bob", at=0, scenario="healthy")
    runtime = discovering(config_for, rooms=[ROOM])
    assert runtime.discovery is not None
    try:
        runtime.discovery.run()
        assert runtime.watchlist.keys() == {("sess-1", "alice"), ("sess-1", "bob")}
        sim.advance(120)
        (firing,) = runtime.poller.cycle().transitions
        assert firing.info.participant_id == "alice"
        runtime.manager.flush()
        runtime.dispatcher.drain(5)
        assert "FIRING [warning] poor-video: Alice (alice)" in capsys.readouterr().out

        sim.advance(15)  # one more sample (130 s) before she leaves at 135 s
        sim.leave("sess-1", "alice")
        sim.advance(30)  # she is gone; her history stopped growing at 135 s
        report = runtime.discovery.run()
        assert report.left == 1
        assert runtime.watchlist.keys("leaving") == {("sess-1", "alice")}

        cycle = runtime.poller.cycle()
        assert cycle.samples == 1 + 4  # alice's final sample (drained) and bob's four
        runtime.manager.flush()
        assert runtime.dispatcher.drain(5) == 0
        out = capsys.readouterr().out
        assert "RESOLVED [warning] poor-video: Alice (alice) in meeting abcd-efgh-ijkl" in out
        assert "left while degraded; last qualityScore.video = " in out
        assert runtime.watchlist.keys() == {("sess-1", "bob")}
        assert runtime.watchlist.get(("sess-1", "alice")) is None
        assert ("sess-1", "alice") not in runtime.store.polls.load_cursors()
        assert ("sess-1", "alice") not in runtime.store.polls.load_alert_states()

        polls = len(sim.requests)
        runtime.poller.cycle()
        assert not any("/alice/" in path for _, path, _ in sim.requests[polls:])
    finally:
        runtime.close()


def test_filters_by_room_name_and_sdk(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_room(ROOM, "production")
    sim.add_room("test-room-0001", "staging")
    sim.start_session(ROOM, "prod", at=0)
    sim.start_session("test-room-0001", "stage", at=0)
    sim.join("prod", "alice", name="Alice", at=0, sdk="react")
    sim.join("prod", "bob", name="Bob", at=0, sdk="android")
    sim.join("prod", "rec", name="recorder-bot-7", at=0, sdk="js")
    sim.join("stage", "carol", name="Carol", at=0, sdk="react")
    runtime = discovering(
        config_for,
        filters={
            "exclude_rooms": ["staging"],
            "exclude_names": ["(?i)bot"],
            "exclude_sdks": ["Android"],
        },
    )
    assert runtime.discovery is not None
    try:
        sim.advance(20)
        runtime.discovery.run()
        # the room (by its customRoomId) and the name are known from the listings
        assert runtime.watchlist.keys() == {("prod", "alice"), ("prod", "bob")}
        cycle = runtime.poller.cycle()
        # the SDK is known only from the first stats: bob is dropped then, unevaluated
        assert cycle.samples == 3
        assert runtime.watchlist.keys() == {("prod", "alice")}
        assert runtime.watchlist.keys("excluded") == {("prod", "bob")}
        assert runtime.watchlist.count() == len(runtime.watchlist.targets()) == 1  # STATUS=
        runtime.discovery.run()
        runtime.poller.cycle()
        assert runtime.watchlist.keys() == {("prod", "alice")}  # remembered as excluded
        sim.leave("prod", "bob")
        runtime.discovery.run()
        assert runtime.watchlist.get(("prod", "bob")) is None
    finally:
        runtime.close()


def test_rooms_can_be_named_by_custom_room_id(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_room(ROOM, "production")
    sim.add_room("zzzz-zzzz-zzzz", "elsewhere")
    sim.start_session(ROOM, "prod", at=0)
    sim.start_session("zzzz-zzzz-zzzz", "other", at=0)
    sim.join("prod", "alice", at=0)
    sim.join("other", "dave", at=0)
    runtime = discovering(config_for, rooms=["production"])
    assert runtime.discovery is not None
    try:
        runtime.discovery.run()
        assert runtime.watchlist.keys() == {("prod", "alice")}
        assert runtime.discovery.in_scope(ROOM)
        assert not runtime.discovery.in_scope("zzzz-zzzz-zzzz")
    finally:
        runtime.close()


def test_a_failed_listing_removes_nobody(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_room(ROOM)
    sim.start_session(ROOM, "s1", at=0)
    sim.join("s1", "alice", at=0)
    sim.join("s1", "bob", at=0)
    runtime = discovering(config_for)
    assert runtime.discovery is not None
    try:
        runtime.discovery.run()
        assert len(runtime.watchlist.keys()) == 2
        sim.leave("s1", "alice", at=5)
        sim.advance(10)
        sim.inject(Fault(status=503, count=2, path=r"/v2/sessions/?"))  # the try and its retry
        report = runtime.discovery.run()
        assert not report.complete
        assert len(runtime.watchlist.keys()) == 2  # not seen is not gone
        sim.inject(Fault(status=500, count=2, path=r"/v2/sessions/s1/participants/active"))
        report = runtime.discovery.run()
        assert report.failed_sessions == {"s1"}
        assert len(runtime.watchlist.keys()) == 2
        runtime.discovery.run()
        assert runtime.watchlist.keys() == {("s1", "bob")}
    finally:
        runtime.close()


def test_404s_drop_a_participant_after_the_configured_polls(
    sim: Simulator,
    config_for: MakeConfig,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 2), (10, 2), (20, 2), (30, 2)]))
    sim.advance(30)
    runtime = build(config_for([("s", "p")], POOR_VIDEO, watch={"missing_polls": 2}))
    try:
        assert [t.state for t in runtime.poller.cycle().transitions] == ["firing"]
        sim.remove_participant("s", "p")
        with caplog.at_level(logging.INFO):
            runtime.poller.cycle()
            assert runtime.watchlist.keys() == {("s", "p")}  # one 404 is not enough
            runtime.poller.cycle()
        assert runtime.watchlist.keys() == set()
        assert any(
            "dropping participant: stats not found (404) for 2 polls in a row" in r.getMessage()
            for r in caplog.records
        )
        runtime.manager.flush()
        runtime.dispatcher.drain(5)
        assert "stats not found (404) for 2 polls in a row; last qualityScore.video = 2" in (
            capsys.readouterr().out
        )
        assert runtime.poller.cycle().polled == 0
    finally:
        runtime.close()


def test_the_watch_list_survives_a_restart_and_status_shows_it(
    sim: Simulator, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0, scenario="video-degradation")
    sim.join("sess-1", "bob", name="Bob", at=0)
    runtime = discovering(config_for)
    assert runtime.discovery is not None
    runtime.discovery.run()
    sim.advance(120)
    runtime.poller.cycle()
    config = runtime.config
    runtime.close()

    again = build(config)  # no discovery pass yet: the list comes from the state DB
    try:
        assert again.watchlist.keys() == {("sess-1", "alice"), ("sess-1", "bob")}
        assert again.poller.cycle().polled == 2
    finally:
        again.close()
    capsys.readouterr()
    assert main(["status", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 participants watched (0 leaving), 0 excluded by filters, 1 alerts")
    alice = next(line for line in out.splitlines() if "alice" in line)
    assert "Alice" in alice
    assert ROOM in alice
    assert "2026-11-24 10:02:00" in alice  # the last sample
    assert "    FIRING poor-video since 2026-11-24 10:00:50" in out
    assert main(["status", "--json", "--config", str(config.path)]) == 0
    assert '"participantId": "bob"' in capsys.readouterr().out


def test_status_without_a_state_database_says_so(
    tmp_path: Path, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for([])
    assert main(["status", "--config", str(config.path)]) == 2
    assert "no state database yet" in capsys.readouterr().err


def test_static_participants_stay_beside_discovered_ones(
    sim: Simulator, config_for: MakeConfig
) -> None:
    sim.add_room(ROOM)
    sim.start_session(ROOM, "s1", at=0)
    sim.join("s1", "alice", at=0)
    sim.add_participant("fixed", "p")
    runtime = build(config_for([("fixed", "p")], watch={"all_rooms": True}))
    assert runtime.discovery is not None
    try:
        runtime.discovery.run()
        assert runtime.watchlist.keys() == {("fixed", "p"), ("s1", "alice")}
        sim.leave("s1", "alice")
        runtime.discovery.run()
        runtime.poller.cycle()
        assert runtime.watchlist.keys() == {("fixed", "p")}
    finally:
        runtime.close()
    store = Store(runtime.config.state_url)
    try:
        assert [r.source for r in store.watchlist.load()] == ["static"]
    finally:
        store.close()


def test_a_pass_that_started_before_a_leave_does_not_bring_the_participant_back(
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "state.db"))
    try:
        watchlist = WatchList(store.watchlist, [], Filters.from_settings(WatchFilters()))
        key = ("s1", "alice")
        assert watchlist.join(key, Seen(ROOM, "Alice"), "webhook")
        started = datetime.now(UTC)  # a discovery pass starts and sees alice ...
        assert watchlist.leave(key)  # ... while her participant-left webhook arrives
        watchlist.reconcile({key: Seen(ROOM, "Alice")}, lambda _: None, started)
        assert watchlist.keys("leaving") == {key}
        later = datetime.now(UTC) + timedelta(seconds=1)  # a later pass still sees her: back
        watchlist.reconcile({key: Seen(ROOM, "Alice")}, lambda _: None, later)
        assert watchlist.keys() == {key}
        assert [r.status for r in store.watchlist.load()] == ["watching"]
    finally:
        store.close()
