"""A discovery pass costs what the ongoing calls cost, not the account's session history.

The simulator holds 10,000 ended sessions beside a few ongoing ones, and can answer as
either reading of VideoSDK's docs allows: with or without the ``status`` filter honoured,
newest first or not, the active participants as a list or a single object. Each test counts
the requests a pass makes and checks the watch list against the simulator's truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from watchdog.config.settings import Config
from watchdog.runtime.build import Runtime, build
from watchdog.sim.simulator import Simulator
from watchdog.watch.discovery import PER_PAGE

MakeConfig = Callable[..., Config]
ROOMS = ("room-a", "room-b")
ENDED = 10_000


def _history(sim: Simulator, ended: int = ENDED) -> None:
    """``ended`` sessions over the past day, each over before the simulator's time zero."""
    for room in ROOMS:
        sim.add_room(room)
    for i in range(ended):
        session = f"old-{i:05d}"
        sim.start_session(ROOMS[i % 2], session, at=-86_400 + i * 8)
        sim.end_session(session, at=-86_400 + i * 8 + 5)


@pytest.fixture
def runtime(sim: Simulator, config_for: MakeConfig) -> Iterator[Runtime]:
    built = build(config_for([], watch={"all_rooms": True, "discovery_interval": "30s"}))
    try:
        yield built
    finally:
        built.close()


def _pass(sim: Simulator, runtime: Runtime) -> tuple[int, int]:
    """One discovery pass: (listing requests, all requests), the watch list checked exact."""
    assert runtime.discovery is not None
    before = len(sim.requests)
    report = runtime.discovery.run()
    assert report.complete
    made = sim.requests[before:]
    assert runtime.watchlist.keys("watching") == sim.active_participants()
    listings = sum(1 for _, path, _ in made if path.rstrip("/") == "/v2/sessions")
    return listings, len(made)


def test_the_status_filter_keeps_a_pass_to_the_ongoing_sessions(
    sim: Simulator, runtime: Runtime
) -> None:
    _history(sim)
    sim.start_session("room-a", "live-1", at=0)
    sim.join("live-1", "alice", name="Alice", at=0)
    sim.join("live-1", "bob", name="Bob", at=0)
    listings, total = _pass(sim, runtime)
    assert (listings, total) == (1, 2)  # one listing page, one active-participants call


def test_without_the_filter_only_the_first_pass_reads_the_whole_history(
    sim: Simulator, runtime: Runtime
) -> None:
    """Newest first, a session new to us started since the last pass: paging stops there."""
    sim.rooms.honour_status_filter = False
    _history(sim)
    sim.start_session("room-a", "live-1", at=0)
    sim.join("live-1", "alice", name="Alice", at=0)
    first, _ = _pass(sim, runtime)
    assert first == (ENDED + 1 + PER_PAGE - 1) // PER_PAGE  # the whole history, once
    counts = []
    for step in range(6):
        sim.advance(30)
        if step == 1:  # a new call, and a participant joining the old one
            sim.start_session("room-b", "live-2")
            sim.join("live-2", "carol", name="Carol")
            sim.join("live-1", "dave", name="Dave")
        if step == 3:  # the first call ends; its session is older than the cut-off by now
            sim.end_session("live-1")
        counts.append(_pass(sim, runtime))
    assert max(listings for listings, _ in counts) == 1
    assert max(total for _, total in counts) <= 4
    watching = runtime.watchlist.keys("watching")
    assert watching == {("live-2", "carol")}


def test_a_long_call_older_than_the_cut_off_stays_watched(sim: Simulator, runtime: Runtime) -> None:
    sim.rooms.honour_status_filter = False
    _history(sim, ended=500)
    sim.start_session("room-a", "all-day", at=-3600 * 6)  # began six hours ago, still on
    sim.join("all-day", "erin", name="Erin", at=-3600 * 6)
    _pass(sim, runtime)
    for _ in range(4):
        sim.advance(600)
        listings, _ = _pass(sim, runtime)
        assert listings == 1
    sim.leave("all-day", "erin")
    sim.advance(30)
    _pass(sim, runtime)  # nobody is active: its session is asked whether it ended (no)
    assert runtime.watchlist.keys("watching") == set()
    sim.join("all-day", "frank", name="Frank")
    sim.advance(30)
    _pass(sim, runtime)
    assert runtime.watchlist.keys("watching") == {("all-day", "frank")}


def test_a_listing_out_of_order_is_read_whole_and_said_once(
    sim: Simulator, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    sim.rooms.honour_status_filter = False
    sim.rooms.sessions_newest_first = False
    _history(sim, ended=1_000)
    sim.start_session("room-a", "live-1", at=0)
    sim.join("live-1", "alice", name="Alice", at=0)
    pages = (1_000 + 1 + PER_PAGE - 1) // PER_PAGE
    with caplog.at_level(logging.WARNING, logger="watchdog.watch.discovery"):
        for _ in range(3):
            listings, _ = _pass(sim, runtime)
            assert listings == pages
            sim.advance(30)
    said = [r for r in caplog.records if "not newest first" in r.getMessage()]
    assert len(said) == 1


@pytest.mark.parametrize("as_object", [False, True])
def test_active_participants_as_a_list_or_a_single_object(
    sim: Simulator, runtime: Runtime, as_object: bool
) -> None:
    sim.rooms.active_data_as_object = as_object
    sim.add_room("room-a")
    sim.start_session("room-a", "live-1", at=0)
    for name in ("alice", "bob", "carol"):
        sim.join("live-1", name, name=name.title(), at=0)
    _pass(sim, runtime)
    assert runtime.watchlist.keys("watching") == {
        ("live-1", "alice"),
        ("live-1", "bob"),
        ("live-1", "carol"),
    }
