"""A hostile or broken VideoSDK API costs at most what it broke, and never time.

Bad text (a lone surrogate, as Node's JSON.stringify emits for a name cut
mid-emoji, or bytes that are not UTF-8) costs only the strings holding it, in
stats, sessions and active-participants answers. A slow answer (a body or
headers trickling a byte at a time, or no answer at all) ends at the call's
total deadline: the other participants are polled meanwhile, the cycle ends,
and a participant that keeps hitting its deadline shows in ``status`` and
``/metrics``. Real servers on 127.0.0.1: the simulator, and raw sockets for
what it cannot misbehave at.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY, generate_latest

from watchdog.cli.status import print_status
from watchdog.config.settings import Config, Settings, VideoSDKSettings, request_deadline
from watchdog.obs.telemetry import API_TEXT_REPLACED, POLLS, SLOW_PARTICIPANTS
from watchdog.runtime.build import build
from watchdog.sim.simulator import Fault, Simulator
from watchdog.videosdk import deadlines
from watchdog.videosdk.client import (
    BadResponseError,
    DeadlineError,
    RateLimitedError,
    VideoSDKClient,
)
from watchdog.videosdk.jsontext import loads_lenient
from watchdog.videosdk.stats import parse_stats
from watchdog.watch.watchlist import SLOW_AFTER

from .conftest import API_KEY, SECRET
from .helpers import video_series

MakeConfig = Callable[..., Config]
ROOM = "abcd-efgh-ijkl"
LONE = "Al\ud83d"  # "Al" and the first half of an emoji
GENEROUS = 4.0  # seconds of slack over a deadline on a shared, loaded machine


def client_for(url: str, **kw: Any) -> VideoSDKClient:
    deadline = kw.pop("deadline", 1.0)
    values = {"base_url": url, "api_key": API_KEY, "secret_key": SECRET, "backoff": 0.01}
    return VideoSDKClient(VideoSDKSettings.model_validate({**values, **kw}), deadline=deadline)


def replaced(endpoint: str) -> float:
    return float(API_TEXT_REPLACED.labels(endpoint)._value.get())


# -- bad text ------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_name_costs_only_the_name(
    sim: Simulator, config_for: MakeConfig
) -> None:
    poor = video_series([(0, 4), (10, 2), (20, 2), (30, 2)])
    sim.add_participant("s", "p", samples=poor, name=LONE)  # served as the escape "\ud83d"
    sim.add_participant("s", "q", samples=poor, name="Bob")
    runtime = build(config_for([("s", "p"), ("s", "q")]))
    try:
        before = replaced("participant_stats")
        sim.advance(30)
        report = runtime.poller.cycle()
        assert (report.failed, report.samples) == (0, 8)
        names = {t.info.participant_id: t.info.name for t in report.transitions}
        assert names == {"p": "Al\ufffd", "q": "Bob"}  # both fired
        assert replaced("participant_stats") == before + 1
    finally:
        runtime.close()


def test_invalid_text_anywhere_in_a_stats_body_costs_only_those_strings(sim: Simulator) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 4), (10, 2)]))
    sim.advance(10)
    client = client_for(sim.url)
    good = orjson.dumps(client.participant_stats_at("s", "p")[0])
    bad = (
        good.replace(b'"participantName":"p"', b'"participantName":"Al\xff\xfe"')  # not UTF-8
        .replace(b'"deviceName":', b'"device\xed\xa0\xbdName":"x","deviceName":')  # CESU-8
        .replace(b'"qualityScore":{', b'"note\\udc00":"\\udc00x","qualityScore":{', 1)
        .replace(b'"stats":[', b'"stats":[{"time":"\\ud83d"},')  # a sample without a time
    )
    before = replaced("participant_stats")
    sim.inject(Fault(raw=bad))
    raw, _ = client.participant_stats_at("s", "p")
    assert raw["participantName"] == "Al\ufffd\ufffd"
    assert raw["stats"][1]["note\ufffd"] == "\ufffdx"  # keys too
    assert "device\ufffd\ufffd\ufffdName" in raw["deviceInfo"]
    stats = parse_stats(raw, "s", "p")
    assert [s.values["qualityScore.video"] for s in stats.samples] == [4.0, 2.0]
    assert stats.dropped == 1  # only the sample whose time was the broken string
    assert replaced("participant_stats") == before + 5
    client.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"participantName":"Al\xff","stats":[',  # cut off: still not JSON
        b'{"participantName":"Al\\ud83d","stats":[{"x":NaN}]}',  # NaN, refused as orjson does
        b'{"participantName":"Al\\ud83d","n":1e400}',  # infinity, likewise
        b'{"participantName":"Al\\ud83d"} trailing',
    ],
)
def test_bad_text_does_not_let_other_garbage_through(sim: Simulator, body: bytes) -> None:
    sim.add_participant("s", "p")
    client = client_for(sim.url)
    sim.inject(Fault(raw=body))
    with pytest.raises(BadResponseError, match="not valid JSON"):
        client.participant_stats_at("s", "p")[0]
    client.close()


def test_lenient_decoding_reads_numbers_as_orjson_does_and_stays_linear() -> None:
    document, repaired = loads_lenient(
        b'{"a":"\\ud83d","big":123456789012345678901234567890,"u":18446744073709551615}'
    )
    assert (repaired, document["a"]) == (1, "\ufffd")
    assert document["big"] == orjson.loads(b"123456789012345678901234567890")
    assert isinstance(document["big"], float)
    assert document["u"] == 18446744073709551615
    # deep and wide: one pass, no recursion in the repair
    deep = b'{"n":"\\udc00","x":' + b"[" * 500 + b'"\\ud800"' + b"]" * 500 + b"}"
    document, repaired = loads_lenient(deep)
    assert repaired == 2
    with pytest.raises(ValueError):
        loads_lenient(b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def _discovering(config_for: MakeConfig) -> Any:
    return build(config_for([], watch={"rooms": [ROOM], "discovery_interval": "30s"}))


def test_a_lone_surrogate_in_session_and_participant_listings_costs_only_the_name(
    sim: Simulator, config_for: MakeConfig
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name=LONE, at=0)
    sim.join("sess-1", "bob", name="Bob", at=0)
    runtime = _discovering(config_for)
    assert runtime.discovery is not None
    try:
        before = replaced("sessions"), replaced("active_participants")
        sim.advance(20)
        report = runtime.discovery.run()
        assert report.complete
        assert runtime.watchlist.keys() == {("sess-1", "alice"), ("sess-1", "bob")}
        record = runtime.watchlist.get(("sess-1", "alice"))
        assert record is not None
        assert record.name == "Al\ufffd"
        assert replaced("sessions") == before[0] + 1
        assert replaced("active_participants") == before[1] + 1
        assert runtime.poller.cycle().samples == 6  # and both are polled
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        (r"/v2/sessions/?", "sessions"),
        (r"/v2/sessions/sess-1/participants/active/?", "active_participants"),
    ],
)
def test_invalid_utf8_in_a_listing_costs_only_that_string(
    sim: Simulator, config_for: MakeConfig, path: str, endpoint: str
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0)
    sim.join("sess-1", "bob", name="Bob", at=0)
    sim.advance(20)
    client = client_for(sim.url)
    listing = path.replace("/?", "/").replace(r"\\", "")
    good = orjson.dumps(client.get_json(listing, {"roomId": ROOM, "page": 1, "perPage": 100}))
    client.close()
    assert b'"Alice"' in good
    sim.inject(Fault(path=path, raw=good.replace(b'"Alice"', b'"Al\xc3\x28ice"')))
    runtime = _discovering(config_for)
    assert runtime.discovery is not None
    try:
        before = replaced(endpoint)
        report = runtime.discovery.run()
        assert report.complete
        assert not report.failed_sessions
        assert runtime.watchlist.keys() == {("sess-1", "alice"), ("sess-1", "bob")}
        assert replaced(endpoint) == before + 1
    finally:
        runtime.close()


# -- deadlines -----------------------------------------------------------------------


def test_the_default_deadline_follows_the_poll_interval_within_bounds() -> None:
    def deadline(**kw: Any) -> float:
        return request_deadline(Settings.model_validate(kw)).total_seconds()

    assert deadline() == 30  # the default interval
    assert deadline(poll={"interval": "200ms"}) == 5
    assert deadline(poll={"interval": "10m"}) == 60
    assert deadline(poll={"interval": "10m"}, videosdk={"request_deadline": "2s"}) == 2


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """An HTTP server written by hand on 127.0.0.1, for misbehaviour no library does."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(30)
                request = b""
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                handle(conn, stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def _trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(600):  # at most 30 s; the client hanging up ends it sooner
        if stop.wait(0.05):
            return
        conn.sendall(b"x")


def _never_answer(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def _endless_chunks(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    block = b"x" * 65536
    for _ in range(64):  # 4 MiB at most, no Content-Length to refuse it by
        if stop.is_set():
            return
        conn.sendall(b"%x\r\n%s\r\n" % (len(block), block))


@pytest.mark.parametrize("handle", [_trickle_headers, _never_answer], ids=["headers", "silent"])
def test_headers_trickling_or_never_coming_end_at_the_deadline(
    handle: Callable[[socket.socket, threading.Event], None],
) -> None:
    with raw_server(handle) as url:
        client = client_for(url, read_timeout=30, retries=2, deadline=1.0)
        start = time.monotonic()
        with pytest.raises(DeadlineError, match="1s request deadline"):
            client.participant_stats_at("s", "p")[0]
        assert time.monotonic() - start < 1.0 + GENEROUS  # not 30 s a read, three times
        client.close()


def test_the_deadline_holds_through_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with raw_server(_trickle_headers) as proxy:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy)
        client = client_for("http://videosdk.invalid", read_timeout=30, deadline=1.0)
        start = time.monotonic()
        with pytest.raises(DeadlineError):
            client.participant_stats_at("s", "p")[0]
        assert time.monotonic() - start < 1.0 + GENEROUS
        client.close()


def test_a_body_without_length_is_bounded_while_it_streams() -> None:
    with raw_server(_endless_chunks) as url:
        client = client_for(url, max_response_bytes=1_000_000)
        with pytest.raises(BadResponseError, match="max_response_bytes"):
            client.participant_stats_at("s", "p")[0]
        client.close()


def test_a_trickling_body_ends_at_the_deadline_and_the_pool_recovers(sim: Simulator) -> None:
    sim.add_participant("s", "p")
    sim.advance(30)
    client = client_for(sim.url, read_timeout=30, deadline=1.0)
    sim.inject(Fault(trickle=0.05))  # a 1.5 kB body: over a minute
    start = time.monotonic()
    with pytest.raises(DeadlineError):
        client.participant_stats_at("s", "p")[0]
    assert time.monotonic() - start < 1.0 + GENEROUS
    assert client.participant_stats_at("s", "p")[0]["participantId"] == "p"
    client.close()


def test_a_retry_after_past_the_deadline_is_not_waited_for(sim: Simulator) -> None:
    sim.add_participant("s", "p")
    client = client_for(sim.url, deadline=1.0)
    sim.inject(Fault(status=429, retry_after=30))
    start = time.monotonic()
    with pytest.raises(RateLimitedError, match="would pass the 1s request deadline"):
        client.participant_stats_at("s", "p")[0]
    assert time.monotonic() - start < GENEROUS
    client.close()


def _metrics() -> str:
    return generate_latest(REGISTRY).decode()


def test_a_slow_participant_delays_nobody_and_shows_in_status_and_metrics(
    sim: Simulator, config_for: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    for participant in ("slow", "p1", "p2"):
        sim.add_participant("s", participant)
    keys = [("s", "slow"), ("s", "p1"), ("s", "p2")]
    config = config_for(keys, videosdk={"request_deadline": "1s", "read_timeout": 30})
    runtime = build(config)
    caplog.set_level(logging.INFO)
    try:
        before = POLLS.labels("deadline")._value.get()
        sim.inject(Fault(trickle=0.05, participant="slow", count=SLOW_AFTER))
        for cycle in range(1, SLOW_AFTER + 1):
            sim.advance(10)
            report = runtime.poller.cycle()
            assert (report.polled, report.failed) == (3, 1)  # the others were polled
            assert report.samples == (4 if cycle == 1 else 2)  # 0 and 10 s each, then one
            assert report.seconds < 1.0 + GENEROUS  # the trickle alone takes over a minute
            record = runtime.watchlist.get(("s", "slow"))
            assert record is not None
            assert record.deadline_misses == cycle
        assert POLLS.labels("deadline")._value.get() == before + SLOW_AFTER
        slow_logs = [r for r in caplog.records if "polls in a row" in r.getMessage()]
        assert len(slow_logs) == 1
        assert getattr(slow_logs[0], "participant_id", None) == "slow"
        assert SLOW_PARTICIPANTS._value.get() == 1
        metrics = _metrics()
        assert "watchdog_slow_participants 1.0" in metrics
        assert 'watchdog_polls_total{outcome="deadline"}' in metrics
        assert 'watchdog_api_errors_total{kind="deadline"}' in metrics

        text = io.StringIO()
        assert print_status(config, text) == 0
        assert "1 slow (stats requests hitting the deadline)" in text.getvalue()
        (line,) = [
            row for row in text.getvalue().splitlines() if row.startswith("s ") and "slow" in row
        ]
        assert f"(request deadline hit on the last {SLOW_AFTER} polls)" in line
        out = io.StringIO()
        assert print_status(config, out, as_json=True) == 0
        rows = {r["participantId"]: r["deadlineMisses"] for r in json.loads(out.getvalue())}
        assert rows == {"slow": SLOW_AFTER, "p1": 0, "p2": 0}

        sim.advance(10)  # the fault is spent: it answers in time again
        report = runtime.poller.cycle()
        assert report.failed == 0
        record = runtime.watchlist.get(("s", "slow"))
        assert record is not None
        assert record.deadline_misses == 0
        assert SLOW_PARTICIPANTS._value.get() == 0
        assert any("within the request deadline again" in r.getMessage() for r in caplog.records)
    finally:
        runtime.close()


def test_the_deadline_thread_ends_once_no_call_is_in_flight() -> None:
    """A stopping daemon must not find it still running (it would be reported as stuck)."""
    with deadlines.within(30):
        assert any(t.name == "deadlines" for t in threading.enumerate())
    limit = time.monotonic() + 5
    while any(t.name == "deadlines" for t in threading.enumerate()):
        assert time.monotonic() < limit, "the deadline thread outlived every call"
        time.sleep(0.05)
