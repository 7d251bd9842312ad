"""The shared listener's own rules: framing, routing, bounded connections, one line a refusal."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from watchdog.listener import Limits, Listener, Request, Response

from .rawhttp import concurrently, exchange, status_of, trickle

LIMITS = Limits(max_body=1024, timeout=1.0, connections=2)


def echo(request: Request) -> Response:
    return Response.json(200, {"body": request.body.decode(), "query": request.query})


@pytest.fixture
def listener() -> Iterator[Listener]:
    served = Listener(
        "127.0.0.1", 0, {"/echo": echo}, name="test-echo", methods=("POST", "HEAD"), limits=LIMITS
    )
    served.start()
    yield served
    served.close()


def refused(reason: str) -> float:
    labels = {"listener": "test-echo", "reason": reason}
    return REGISTRY.get_sample_value("watchdog_http_refused_total", labels) or 0.0


def test_a_chunked_body_is_put_together(listener: Listener) -> None:
    raw = (
        b"POST /echo?x=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    answer = exchange(listener.port, raw)
    assert status_of(answer) == 200
    assert answer.endswith(b'{"body": "hello world", "query": "x=1"}')


def test_a_chunked_body_past_the_cap_is_refused_as_it_streams(listener: Listener) -> None:
    before = refused("too_large")
    chunk = b"200\r\n" + b"x" * 512 + b"\r\n"
    raw = b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
    assert status_of(exchange(listener.port, raw)) == 413
    assert refused("too_large") == before + 1


def test_other_paths_and_methods_are_answered_before_the_body_is_read(
    listener: Listener,
) -> None:
    big = "Content-Length: 999999999\r\n\r\n"
    assert status_of(exchange(listener.port, f"POST /other HTTP/1.1\r\n{big}".encode())) == 404
    answer = exchange(listener.port, f"PUT /echo HTTP/1.1\r\n{big}".encode())
    assert status_of(answer) == 405
    assert b"\r\nAllow: HEAD, POST\r\n" in answer
    head = exchange(listener.port, b"HEAD /echo HTTP/1.1\r\n\r\n")
    assert status_of(head) == 200
    assert head.endswith(b"\r\n\r\n")  # no body


def test_continue_is_promised_only_to_a_body_that_will_be_read(listener: Listener) -> None:
    expect = "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
        conn.sendall(expect.format(4096).encode())
        assert conn.recv(100).startswith(b"HTTP/1.1 413 ")
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
        conn.sendall(expect.format(2).encode())
        assert conn.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.sendall(b"ok")
        assert conn.recv(1000).startswith(b"HTTP/1.1 200 ")


def serving(name: str) -> int:
    """Threads of the named listener: its accept loop and one per connection in service."""
    return sum(1 for thread in threading.enumerate() if thread.name == name)


def test_connections_beyond_the_limit_wait_instead_of_costing_threads(
    listener: Listener,
) -> None:
    idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(2)]
    try:
        for _ in range(250):  # until both are in service (bounded: 5 s)
            if serving("test-echo") == 3:
                break
            time.sleep(0.02)
        started = time.monotonic()
        statuses: list[int] = []
        request = b"POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        crowd = threading.Thread(
            target=lambda: statuses.extend(concurrently(listener.port, request, 30))
        )
        crowd.start()
        most = 0
        for _ in range(25):  # the idle two hold both slots for a second: nobody else gets one
            most = max(most, serving("test-echo"))
            time.sleep(0.02)
        crowd.join(timeout=30)
    finally:
        for conn in idle:
            conn.close()
    assert most == 3
    assert statuses == [200] * 30  # served once the idle ones were cut off, none dropped
    assert time.monotonic() - started >= 0.5


def test_a_trickling_client_is_cut_off_at_the_deadline_and_counted(listener: Listener) -> None:
    before = refused("timeout")
    seconds = trickle(listener.port, b"POST /echo HTTP/1.1\r\nX-Slow: ", every=0.1, limit=10)
    assert 0.9 < seconds < 3
    assert refused("timeout") == before + 1


def test_a_handler_that_fails_gets_a_500_and_the_listener_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    served = Listener("127.0.0.1", 0, {"/": broken}, name="test-broken", limits=LIMITS)
    served.start()
    try:
        raw = b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        with caplog.at_level(logging.ERROR):
            assert status_of(exchange(served.port, raw)) == 500
            assert status_of(exchange(served.port, raw)) == 500
        assert caplog.messages == ["test-broken: handling / failed"] * 2
    finally:
        served.close()


def test_closing_stops_accepting() -> None:
    served = Listener("127.0.0.1", 0, {"/echo": echo}, name="test-close", limits=LIMITS)
    served.start()
    port = served.port
    served.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[Listener, Lines]]:
    lines = Lines()
    logger = logging.getLogger("tests.fuzzed-listener")
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    served = Listener(
        "127.0.0.1",
        0,
        {"/echo": echo},
        name="test-fuzz",
        methods=("POST", "GET"),
        limits=Limits(max_body=256, timeout=2.0),
        logger=logger,
    )
    served.start()
    yield served, lines
    served.close()
    logger.removeHandler(lines)


REQUEST_LINES = st.one_of(
    st.binary(max_size=60),
    st.builds(
        lambda method, path, version: b" ".join([method, path, version]),
        st.sampled_from([b"POST", b"GET", b"HEAD", b"PUT", b"X"]),
        st.sampled_from([b"/echo", b"/echo?q", b"/", b"*", b"//echo"]),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1x", b""]),
    ),
)
FIELDS = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"Content-Length: 5",
                b"Content-Length: -1",
                b"Content-Length: 99999",
                b"Content-Length:  3 ",
                b"Transfer-Encoding: chunked",
                b"Transfer-Encoding: chunked, gzip",
                b"Expect: 100-continue",
                b"Connection: keep-alive",
            ]
        ),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=REQUEST_LINES, fields=FIELDS, body=st.binary(max_size=300))
def test_any_bytes_get_an_answer_and_at_most_one_warning(
    fuzzed: tuple[Listener, Lines], line: bytes, fields: list[bytes], body: bytes
) -> None:
    listener, lines = fuzzed
    lines.records.clear()
    raw = line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body
    answer = exchange(listener.port, raw, timeout=5)
    if raw.split(b"\n", 1)[0].decode("latin-1").split():  # a request line: it gets an answer
        assert 200 <= status_of(answer) < 600, answer[:80]
    assert len(lines.records) <= 1, [r.getMessage() for r in lines.records]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines.records)
