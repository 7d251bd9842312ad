"""The rule language in the daemon's poll path: server time, persisted windows, meetings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from watchdog.config.settings import Config
from watchdog.runtime.build import build
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.videosdk.client import VideoSDKClient
from watchdog.videosdk.stats import parse_stats

from .helpers import at, video_series

MakeConfig = Callable[..., Config]

ABSENT = """\
rules:
  - name: stats-stopped
    absent: 1m
    summary: "no stats from {{ participant }} for {{ value | number }}s"
"""


def test_server_date_follows_the_simulator_clock(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_participant("s", "p", scenario="video-degradation")
    sim.advance(125.4)
    client = VideoSDKClient(config_for([("s", "p")]).settings.videosdk)
    try:
        raw, now = client.participant_stats_at("s", "p")
    finally:
        client.close()
    assert now == at(125)  # HTTP dates have whole seconds
    stats = parse_stats(raw, "s", "p")
    by_score = {s.values["resolution"] for s in stats.samples if s.values["qualityScore.video"] < 3}
    assert by_score == {180.0}  # the simulator's resolutionUsage follows video quality


def test_absent_data_fires_on_server_time_once_and_resolves(
    sim: Simulator, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_participant(
        "s", "p", name="Alice", samples=video_series([(0, 4), (10, 4), (20, 4), (130, 4)])
    )
    config = config_for([("s", "p")], rules=ABSENT)
    sim.advance(50)
    runtime = build(config)
    try:
        assert runtime.poller.cycle().transitions == []
        sim.advance(35)  # server time 85: silent since 20 for 65s
        (fired,) = runtime.poller.cycle().transitions
        assert (fired.state, fired.time, fired.value) == ("firing", at(80), 60)
        runtime.manager.flush()
        runtime.dispatcher.drain(5)
        assert "no stats from Alice for 60s" in capsys.readouterr().out
    finally:
        runtime.close()
    sim.advance(10)
    runtime = build(config)  # a restart remembers the alert: no second notification
    try:
        assert runtime.poller.cycle().transitions == []
        sim.advance(40)
        (resolved,) = runtime.poller.cycle().transitions
        assert (resolved.state, resolved.time, resolved.value) == ("resolved", at(130), 110)
    finally:
        runtime.close()


COUNT = """\
rules:
  - name: dense
    metric: qualityScore.video
    aggregate: count
    over: 1m
    op: ">="
    threshold: 5
"""


def test_windows_survive_a_restart(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_participant("s", "p", samples=video_series([(t, 4) for t in range(0, 60, 10)]))
    config = config_for([("s", "p")], rules=COUNT)
    sim.advance(30)
    runtime = build(config)
    try:
        assert runtime.poller.cycle().transitions == []  # 4 samples in the window
    finally:
        runtime.close()
    sim.advance(10)
    runtime = build(config)
    try:
        (fired,) = runtime.poller.cycle().transitions  # the fifth, counted with the four
        assert (fired.time, fired.value) == (at(40), 5)
    finally:
        runtime.close()


MEETING = """\
rules:
  - name: meeting-poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {fraction: 0.5, min_participants: 2}
    summary: "{{ affected }} of {{ watched }} in {{ meeting }} have poor video"
"""


def test_meeting_rule_sends_one_alert_per_meeting(
    sim: Simulator, config_for: MakeConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = video_series([(0, 4), (10, 2), (20, 2)])
    good = video_series([(0, 4), (10, 4), (20, 4)])
    for participant, series in (("a", bad), ("b", bad), ("c", good), ("d", bad)):
        meeting = "other-room" if participant == "d" else "room-1"
        sim.add_participant("s", participant, samples=series, meeting_id=meeting, name=participant)
    config = config_for([("s", p) for p in "abcd"], rules=MEETING)
    sim.advance(20)
    runtime = build(config)
    try:
        transitions = runtime.poller.cycle().transitions
        assert [(t.scope, t.info.meeting_id, t.affected) for t in transitions] == [
            ("meeting", "room-1", ("a", "b"))  # other-room has one participant: below minimum
        ]
        assert runtime.manager.flush() == 1
        runtime.dispatcher.drain(5)
        assert "2 of 3 in room-1 have poor video" in capsys.readouterr().out
    finally:
        runtime.close()
    store = Store(config.state_url)
    try:
        assert list(store.polls.load_meeting_states()) == [("meeting-poor-video", "room-1")]
    finally:
        store.close()
    runtime = build(config)
    try:
        assert runtime.poller.cycle().transitions == []  # remembered, not re-sent
    finally:
        runtime.close()


def test_a_departed_participant_leaves_no_rule_memory(
    sim: Simulator, config_for: MakeConfig
) -> None:
    sim.add_participant("s", "p", samples=video_series([(t, 4) for t in range(0, 40, 10)]))
    config = config_for([("s", "p")], rules=COUNT)
    sim.advance(30)
    runtime = build(config)
    try:
        runtime.poller.cycle()
        assert ("s", "p") in runtime.store.polls.load_memories()
        info = runtime.poller.participants.committed(("s", "p")).info
        assert info is not None
        runtime.poller.depart(("s", "p"), "participant left the session", info)
        assert runtime.store.polls.load_memories() == {}
        assert runtime.poller.participants.memory(("s", "p")) is None
    finally:
        runtime.close()
