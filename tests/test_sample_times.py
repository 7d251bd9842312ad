"""Sample times are sane: a sample stamped in the future never blinds a participant.

A device with a wrong clock stamps a sample tomorrow or in the year 9999. Such a
sample is dropped (counted, logged once per participant), the cursor never
passes the API's clock, later samples are evaluated and alert, and a cursor an
older release saved in the future is repaired at startup. The simulator's
clock starts a few minutes before the real one, so the startup repair (which
has only the local clock) and the API's ``Date`` header agree as they do live.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from watchdog.config.settings import Config, VideoSDKSettings, WatchedParticipant
from watchdog.durations import format_time
from watchdog.engine.evaluate import AlertState, Memory
from watchdog.engine.rules import load_rules
from watchdog.engine.series import Series, micros
from watchdog.obs.telemetry import SAMPLE_ERRORS
from watchdog.poll.membership import Alone
from watchdog.poll.poller import Poller
from watchdog.runtime.build import build
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.videosdk.client import VideoSDKClient
from watchdog.videosdk.stats import parse_stats

from .conftest import API_KEY, POOR_VIDEO, SECRET
from .helpers import response, sample

MakeConfig = Callable[..., Config]
KEY = ("s", "p")
FAR = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
FUTURE_LOG = "ahead of the API's clock"
REPAIR_LOG = "whose saved cursor or rule state lay in the future"
SHORT_FOR = POOR_VIDEO.replace("for: 20s", "for: 10s")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A manual clock five minutes behind the real one (overrides conftest's ``sim``)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with Simulator(
        api_key=API_KEY, secret=SECRET, manual_clock=True, start=start, sample_period=10.0
    ) as simulator:
        yield simulator


def stamped(sim: Simulator, seconds: float, video: float) -> dict[str, Any]:
    """A healthy sample but for its video score, at sim time zero + ``seconds``."""
    return {**sample(0, video=video), "time": format_time(sim.zero + timedelta(seconds=seconds))}


def future_errors() -> float:
    return float(SAMPLE_ERRORS.labels("future_time")._value.get())


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


def cursor(config: Config) -> datetime:
    store = Store(config.state_url)
    try:
        return store.polls.load_cursors()[KEY]
    finally:
        store.close()


@pytest.mark.parametrize("future", ["9999-12-31T23:59:59.999Z", "tomorrow"])
def test_a_future_sample_is_dropped_and_later_samples_still_alert_across_a_restart(
    sim: Simulator, config_for: MakeConfig, caplog: pytest.LogCaptureFixture, future: str
) -> None:
    stamp = future if future != "tomorrow" else format_time(sim.zero + timedelta(days=1))
    series = [stamped(sim, t, 4) for t in (0, 10, 20)]
    series.append({**sample(0, video=1), "time": stamp, "_shown_at": 25})
    series += [stamped(sim, t, 2) for t in (30, 40, 50, 60)]
    sim.add_participant(*KEY, samples=series)
    config = config_for([KEY])
    caplog.set_level(logging.INFO)
    runtime = build(config)
    try:
        before = future_errors()
        sim.advance(25)
        first = runtime.poller.cycle()
        assert (first.failed, first.samples) == (0, 3)  # 0, 10, 20; the future one dropped
        assert future_errors() == before + 1
        sim.advance(15)
        second = runtime.poller.cycle()
        assert second.samples == 2  # 30 and 40: the cursor did not jump to the future
        assert future_errors() == before + 2  # counted each poll it is served ...
        (warning,) = messages(caplog, FUTURE_LOG)  # ... logged once for the participant
        assert warning.levelno == logging.WARNING
        assert getattr(warning, "participant_id", None) == "p"
        assert cursor(config) == sim.zero + timedelta(seconds=40) <= sim.now()
    finally:
        runtime.close()

    caplog.clear()
    runtime = build(config)  # a restart: nothing to repair, nothing lost
    try:
        assert not messages(caplog, REPAIR_LOG)
        sim.advance(20)
        third = runtime.poller.cycle()
        assert third.samples == 2  # 50 and 60
        (firing,) = third.transitions
        assert (firing.state, firing.time) == ("firing", sim.zero + timedelta(seconds=50))
        assert firing.active_since == sim.zero + timedelta(seconds=30)
        assert len(messages(caplog, FUTURE_LOG)) == 1  # once again in this process's life
        assert cursor(config) == sim.zero + timedelta(seconds=60)
    finally:
        runtime.close()


def test_a_sample_within_the_allowed_skew_is_evaluated_once_and_the_cursor_stops_at_the_api_clock(
    sim: Simulator, config_for: MakeConfig
) -> None:
    series = [stamped(sim, 0, 4), stamped(sim, 10, 4)]
    series.append({**stamped(sim, 35, 4), "_shown_at": 20})  # 15 s ahead: a device clock
    series.append({**stamped(sim, 60, 4), "_shown_at": 20})  # 40 s ahead: beyond 30s
    sim.add_participant(*KEY, samples=series)
    config = config_for([KEY], poll={"max_clock_skew": "30s"})
    runtime = build(config)
    try:
        sim.advance(20)
        assert runtime.poller.cycle().samples == 3  # 0, 10 and 35
        assert (
            runtime.poller.participants.cursor(KEY) == sim.now()
        )  # not 35 s: never past the API's now
        sim.advance(5)
        assert runtime.poller.cycle().samples == 0  # 35 is shown again, not evaluated again
        sim.advance(6)  # the API's clock is at 31 s: 60 s is within the skew now
        assert runtime.poller.cycle().samples == 1
        assert runtime.poller.participants.cursor(KEY) == sim.now()
    finally:
        runtime.close()


def test_a_future_cursor_saved_by_an_older_release_is_repaired_at_startup(
    sim: Simulator, config_for: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for([KEY])
    old = Store(config.state_url)  # what evaluating a 9999 sample left before this fix
    old.polls.commit_poll(
        KEY,
        FAR,
        {"poor-video": AlertState("pending", active_since=FAR, value=2.0)},
        {"poor-video"},
        memory=Memory(
            last_time=FAR,
            first_time=sim.zero,
            series={
                "qualityScore.video": Series.load([(micros(sim.zero), 4.0), (micros(FAR), 2.0)])
            },
        ),
    )
    old.close()
    # poor video all along, a sample every 2 s; what was sent while the participant was
    # blinded (before the startup, about 300 s) stays history
    sim.add_participant(*KEY, samples=[stamped(sim, t, 2) for t in range(0, 330, 2)])
    caplog.set_level(logging.INFO)
    started = datetime.now(UTC)
    runtime = build(config_for([KEY], rules=SHORT_FOR))
    try:
        (repaired,) = messages(caplog, REPAIR_LOG)
        assert "repaired 1 participants" in repaired.getMessage()
        repaired_to = runtime.poller.participants.cursor(KEY)
        assert repaired_to is not None
        assert started <= repaired_to <= datetime.now(UTC)
        saved = cursor(config)
        assert started <= saved <= datetime.now(UTC)
        sim.advance(328)  # the API's clock a little past the real one, as clocks are
        report = runtime.poller.cycle()
        firing = [t for t in report.transitions if t.state == "firing"]
        assert len(firing) == 1  # pending since 9999 would never have fired
        assert firing[0].active_since == saved  # pending since the repair, which held
        assert firing[0].time - firing[0].active_since >= timedelta(seconds=10)
        memory = runtime.poller.participants.memory(KEY)
        assert memory is not None
        assert memory.last_time == sim.now()
        assert all(t <= micros(memory.last_time) for t in memory.series["qualityScore.video"].times)
    finally:
        runtime.close()
    caplog.clear()
    build(config).close()  # repaired for good: the next start finds nothing to repair
    assert not messages(caplog, REPAIR_LOG)


class _NoDate(BaseHTTPRequestHandler):
    """A stats API whose answers carry no ``Date`` header (a proxy stripped it)."""

    protocol_version = "HTTP/1.1"
    body = b""

    def do_GET(self) -> None:
        self.send_response_only(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_without_a_date_header_the_local_clock_judges(tmp_path: Any) -> None:
    now = datetime.now(UTC)
    samples = [
        {**sample(0, video=4), "time": format_time(now - timedelta(seconds=20))},
        {**sample(0, video=4), "time": format_time(now + timedelta(days=1))},
    ]
    _NoDate.body = orjson.dumps(response(samples, "s", "p"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoDate)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    settings = VideoSDKSettings(
        base_url=f"http://127.0.0.1:{server.server_address[1]}",
        api_key=API_KEY,
        secret_key=SECRET,  # type: ignore[arg-type]
    )
    (tmp_path / "rules.yaml").write_text(POOR_VIDEO)
    store = Store(str(tmp_path / "state.db"))
    client = VideoSDKClient(settings)
    target = WatchedParticipant(session="s", participant="p")
    poller = Poller(
        client,
        store.polls,
        load_rules([tmp_path / "rules.yaml"]),
        membership=Alone(lambda: [target]),
    )
    try:
        before = future_errors()
        report = poller.cycle()
        assert (report.failed, report.samples) == (0, 1)
        assert future_errors() == before + 1
        assert (
            poller.participants.cursor(KEY)
            == parse_stats(response(samples[:1]), "s", "p").samples[0].time
        )
    finally:
        poller.close()
        client.close()
        store.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
