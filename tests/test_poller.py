"""The poll path in-process: simulator -> client -> engine -> SQLite outbox -> console."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from watchdog.config.settings import Config, WatchedParticipant
from watchdog.obs.telemetry import POLLS
from watchdog.poll.membership import Alone
from watchdog.poll.poller import Departure, Outcome, Poller
from watchdog.runtime.build import build
from watchdog.sim.simulator import Fault, Simulator
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo

from .helpers import at, video_series

MakeConfig = Callable[..., Config]


def test_degradation_fires_once_with_readable_alert(
    sim: Simulator, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_participant(
        "sess-1", "part-1", scenario="video-degradation", name="Alice", meeting_id="abcd-efgh-ijkl"
    )
    sim.add_participant(
        "sess-1", "part-2", scenario="healthy", name="Bob", meeting_id="abcd-efgh-ijkl"
    )
    runtime = build(config_for([("sess-1", "part-1"), ("sess-1", "part-2")]))
    try:
        sim.advance(120)
        report = runtime.poller.cycle()
        assert report.polled == 2
        assert report.failed == 0
        assert report.samples == 26  # 13 samples each, 0..120 s
        (firing,) = report.transitions
        assert firing.state == "firing"
        assert firing.info.participant_id == "part-1"
        assert firing.time - firing.active_since >= runtime.rules.rules[0].for_
        assert runtime.manager.flush() == 1
        assert runtime.dispatcher.drain(5) == 0
        out = capsys.readouterr().out
        assert "FIRING [warning] poor-video: Alice (part-1) in meeting abcd-efgh-ijkl" in out
        assert "qualityScore.video = " in out
        assert "(threshold < 3)" in out

        # a second cycle sees no new samples: nothing evaluated, nothing sent
        again = runtime.poller.cycle()
        assert again.samples == 0
        assert again.transitions == []
        sim.advance(10)
        assert runtime.poller.cycle().samples == 2  # only the one new sample each
        assert runtime.manager.flush() == 0
        runtime.dispatcher.drain(5)
        assert "FIRING" not in capsys.readouterr().out
    finally:
        runtime.close()


def test_cursor_and_alert_state_persist_in_sqlite(sim: Simulator, config_for: MakeConfig) -> None:
    series = video_series([(0, 4), (10, 2), (20, 2), (30, 2), (40, 2), (50, 4)])
    sim.add_participant("s", "p", samples=series)
    config = config_for([("s", "p")])
    sim.advance(40)
    runtime = build(config)
    runtime.poller.cycle()
    runtime.manager.flush()
    runtime.close()
    store = Store(config.state_url)
    try:
        assert store.polls.load_cursors() == {("s", "p"): at(40)}
        states = store.polls.load_alert_states()[("s", "p")]
        assert states["poor-video"].phase == "firing"
        assert states["poor-video"].active_since == at(10)
        assert store.outbox.depth() == 1  # written before any notifier saw it
    finally:
        store.close()


def test_api_failures_are_counted_and_the_cycle_goes_on(
    sim: Simulator, config_for: MakeConfig
) -> None:
    sim.add_participant("s", "p1")
    sim.add_participant("s", "p2")
    sim.advance(20)
    runtime = build(config_for([("s", "p1"), ("s", "p2"), ("s", "gone")]))
    try:
        before = POLLS.labels("bad_response")._value.get()
        sim.inject(Fault(malformed=True, count=1, participant="p1"))
        report = runtime.poller.cycle()
        assert (report.polled, report.failed) == (3, 2)  # malformed p1, 404 for "gone"
        assert (
            POLLS.labels("bad_response")._value.get() - before == 0
        )  # malformed JSON is an API error
        assert report.samples == 3
        retry = runtime.poller.cycle()
        assert retry.failed == 1
        assert retry.samples == 3  # p1's samples were not lost, only delayed
    finally:
        runtime.close()


def test_dry_run_saves_nothing(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 2), (10, 2), (20, 2), (30, 2)]))
    sim.advance(30)
    config = config_for([("s", "p")])
    runtime = build(config, dry_run=True)
    try:
        report = runtime.poller.cycle()
        assert [t.state for t in report.transitions] == ["firing"]
        assert runtime.store.outbox.depth() == 0
        assert runtime.store.polls.load_cursors() == {}
    finally:
        runtime.close()


class _TakeOverMidCycle:
    """An observer that, at the first poll of a cycle, hands the poller a participant just
    taken over (as watchdog.runtime.service does when a dead instance's leases fall due)."""

    def __init__(self, taken: WatchedParticipant) -> None:
        self.taken, self.done = taken, False
        self.poller: Poller | None = None

    def admit(self, target: WatchedParticipant, info: ParticipantInfo) -> bool:
        return True

    def polled(self, target: WatchedParticipant, outcome: Outcome) -> None:
        if not self.done and self.poller is not None:
            self.done = True
            self.poller.poll_now([self.taken])

    def cycle_done(self) -> list[Departure]:
        return []

    def departed(self, departure: Departure) -> None:
        raise AssertionError("nobody departs here")


def test_a_participant_taken_over_mid_cycle_is_polled_next_and_once(
    sim: Simulator, config_for: MakeConfig
) -> None:
    names = ["a", "b", "c", "d"]
    for name in names:
        sim.add_participant("s", name, samples=video_series([(0, 4)]))
    runtime = build(config_for([("s", n) for n in names]))
    cycle_targets = [WatchedParticipant(session="s", participant=n) for n in "abc"]
    taken = WatchedParticipant(session="s", participant="d")
    observer = _TakeOverMidCycle(taken)
    poller = Poller(
        runtime.client,
        runtime.store.polls,
        runtime.rules,
        membership=Alone(lambda: cycle_targets),
        concurrency=1,
        observer=observer,
    )
    observer.poller = poller
    try:
        report = poller.cycle()
        polled = [path.split("/")[-2] for _, path, _ in sim.requests if path.endswith("/stats")]
        assert polled == ["a", "d", "b", "c"]  # at the head of the running cycle's queue
        assert report.polled == 4

        poller.poll_now([taken, taken])  # no cycle running: a short cycle of its own
        polled = [path.split("/")[-2] for _, path, _ in sim.requests if path.endswith("/stats")]
        assert polled[4:] == ["d"]
        assert poller.participants.cursor(("s", "d")) is not None
    finally:
        poller.close()
        runtime.close()


def test_poll_now_waits_while_a_reload_pauses_the_poller(
    sim: Simulator, config_for: MakeConfig
) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 4)]))
    runtime = build(config_for([("s", "p")]))
    poller = runtime.poller
    target = WatchedParticipant(session="s", participant="p")
    try:
        with poller.paused():
            waiting = threading.Thread(target=poller.poll_now, args=([target],))
            waiting.start()
            waiting.join(0.2)
            assert waiting.is_alive()
            assert not [p for _, p, _ in sim.requests if p.endswith("/stats")]
        waiting.join(5)
        assert not waiting.is_alive()
        assert [p for _, p, _ in sim.requests if p.endswith("/stats")]
    finally:
        runtime.close()
