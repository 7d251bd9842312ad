"""VideoSDK webhooks: signed deliveries from the simulator update the watch list at once."""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config
from watchdog.runtime.build import Runtime, build, start_webhooks
from watchdog.sim.simulator import Fault, Simulator
from watchdog.watch.webhooks import PublicKeys, WebhookReceiver, apply_event

from .conftest import POOR_VIDEO, SECRET, write_config
from .processes import Daemon
from .rawhttp import concurrently, exchange

MakeConfig = Callable[..., Config]
ROOM = "abcd-efgh-ijkl"


@pytest.fixture
def receiving(
    sim: Simulator, config_for: MakeConfig
) -> Iterator[Callable[..., tuple[Runtime, WebhookReceiver]]]:
    started: list[tuple[Runtime, WebhookReceiver]] = []

    def start(**webhook: object) -> tuple[Runtime, WebhookReceiver]:
        settings = {"listen": "127.0.0.1:0", "max_body_bytes": 4096, **webhook}
        runtime = build(config_for([], watch={"webhook": settings}))
        receiver = start_webhooks(runtime)
        assert receiver is not None
        sim.webhook_url = receiver.url
        started.append((runtime, receiver))
        return runtime, receiver

    yield start
    for runtime, receiver in started:
        receiver.stop()
        runtime.close()


def test_joins_and_leaves_update_the_watch_list_at_once(
    sim: Simulator, receiving: Callable[..., tuple[Runtime, WebhookReceiver]]
) -> None:
    runtime, _ = receiving()
    sim.add_room(ROOM)
    sim.start_session(ROOM, "s1")
    sim.join("s1", "alice", name="Alice")
    sim.join("s1", "bob", name="Bob")
    sim.advance(0)  # due now: delivered before advance returns
    assert sim.rooms.deliveries == [
        ("session-started", 200),
        ("participant-joined", 200),
        ("participant-joined", 200),
    ]
    assert runtime.watchlist.keys() == {("s1", "alice"), ("s1", "bob")}  # no discovery pass ran
    assert runtime.watchlist.get(("s1", "alice")).source == "webhook"  # type: ignore[union-attr]
    sim.leave("s1", "alice", at=5)
    sim.advance(10)
    assert runtime.watchlist.keys("leaving") == {("s1", "alice")}
    sim.end_session("s1", at=20)
    sim.advance(10)
    assert runtime.watchlist.keys("leaving") == {("s1", "alice"), ("s1", "bob")}
    assert sim.rooms.deliveries[-1] == ("session-ended", 200)
    runtime.poller.cycle()  # final polls, then both are forgotten
    assert runtime.watchlist.records() == []


def test_bad_requests_are_refused(
    sim: Simulator, receiving: Callable[..., tuple[Runtime, WebhookReceiver]]
) -> None:
    runtime, receiver = receiving()
    event = {
        "webhookType": "participant-joined",
        "data": {"meetingId": ROOM, "sessionId": "s1", "participantId": "mallory"},
    }
    body = json.dumps(event).encode()

    def post(data: bytes, signature: str | None = None, url: str = receiver.url) -> int:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["videosdk-signature"] = signature
        return requests.post(url, data=data, headers=headers, timeout=10).status_code

    assert post(body) == 401  # unsigned
    assert post(body, sim.rooms.sign(body + b" ")) == 401  # signed, but not this body
    assert post(body, "not base64 at all!") == 401
    assert post(body, base64.b64encode(b"x" * 256).decode()) == 401
    assert post(b"{" + b" " * 5000 + b"}", sim.rooms.sign(b"{}")) == 413
    assert post(b"not json", sim.rooms.sign(b"not json")) == 400
    assert post(b"\xff\xfe", sim.rooms.sign(b"\xff\xfe")) == 400  # not UTF-8
    assert post(b"[" * 4000, sim.rooms.sign(b"[" * 4000)) == 400  # nested past the parser's depth
    assert post(b"{}", sim.rooms.sign(b"{}")) == 400  # no webhookType
    assert post(body, sim.rooms.sign(body), url=receiver.url + "/elsewhere") == 404
    assert requests.get(receiver.url, timeout=10).status_code == 405
    assert runtime.watchlist.keys() == set()
    assert post(body, sim.rooms.sign(body)) == 200
    assert runtime.watchlist.keys() == {("s1", "mallory")}
    fetches = [p for _, p, _ in sim.requests if p.endswith("rsa-public-key")]
    assert len(fetches) == 1  # fetched once and cached; bad signatures do not refetch within 5m


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked(
    sim: Simulator, config_for: MakeConfig
) -> Iterator[tuple[Runtime, WebhookReceiver, Clock]]:
    """The daemon's receiver, its key cache on a clock the test moves."""
    runtime = build(config_for([], watch={"webhook": {"listen": "127.0.0.1:0"}}))
    settings, discovery = runtime.config.settings.watch.webhook, runtime.discovery
    assert settings is not None
    assert discovery is not None
    clock = Clock()
    keys = PublicKeys(runtime.client, refresh_interval=settings.key_refresh_interval, clock=clock)
    receiver = WebhookReceiver(
        settings, keys, lambda event: apply_event(event, runtime.watchlist, discovery)
    )
    receiver.start()
    sim.webhook_url = receiver.url
    yield runtime, receiver, clock
    receiver.stop()
    runtime.close()


def key_fetches(sim: Simulator) -> int:
    return sum(1 for _, path, _ in sim.requests if path.endswith("rsa-public-key"))


def test_a_rotated_key_is_refetched_once_the_interval_has_passed(
    sim: Simulator, clocked: tuple[Runtime, WebhookReceiver, Clock]
) -> None:
    runtime, _, clock = clocked
    sim.add_room(ROOM)
    sim.start_session(ROOM, "s1")
    sim.join("s1", "alice")
    sim.advance(0)
    sim.rooms._key = None  # VideoSDK rotates its signing key
    sim.join("s1", "bob")
    sim.advance(0)
    assert sim.rooms.deliveries[-1] == ("participant-joined", 401)  # within 5m of the fetch
    clock.now += 300  # key_refresh_interval
    sim.join("s1", "carol")
    sim.advance(0)
    assert sim.rooms.deliveries[-1] == ("participant-joined", 200)
    assert runtime.watchlist.keys() == {("s1", "alice"), ("s1", "carol")}
    assert key_fetches(sim) == 2


def test_forged_webhooks_during_a_key_outage_cost_one_fetch_per_backoff(
    sim: Simulator, clocked: tuple[Runtime, WebhookReceiver, Clock]
) -> None:
    runtime, receiver, clock = clocked
    # three failing fetches' worth: each is the client's try and its one retry
    sim.inject(Fault(status=503, count=6, path=r"/v2/public/rsa-public-key"))
    forged = b'{"webhookType":"participant-joined","data":{"sessionId":"s","participantId":"x"}}'
    signature = base64.b64encode(bytes(256)).decode()  # shaped like one, signed by nobody
    request = (
        f"POST /videosdk/webhook HTTP/1.1\r\nvideosdk-signature: {signature}\r\n"
        f"Content-Length: {len(forged)}\r\n\r\n"
    ).encode() + forged
    for waited, fetches in ((0, 2), (5, 4), (10, 6)):  # backoff 5s, then 10s, 20s...
        clock.now += waited
        assert concurrently(receiver.port, request, 200) == [503] * 200
        assert key_fetches(sim) == fetches  # one fetch (and its retry) for the whole burst
    answer = exchange(receiver.port, request)
    assert b"\r\nRetry-After: 20\r\n" in answer  # when the next fetch may happen
    clock.now += 20  # VideoSDK is back: the next webhook fetches the key, forged ones get 401
    assert concurrently(receiver.port, request, 200) == [401] * 200
    assert key_fetches(sim) == 7
    body = json.dumps(
        {"webhookType": "participant-joined", "data": {"sessionId": "s", "participantId": "p"}}
    ).encode()
    genuine = requests.post(
        receiver.url, data=body, headers={"videosdk-signature": sim.rooms.sign(body)}, timeout=10
    )
    assert genuine.status_code == 200
    assert runtime.watchlist.keys() == {("s", "p")}
    assert key_fetches(sim) == 7


def test_the_refresh_interval_cannot_be_set_to_hammer_the_api(config_for: MakeConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        config_for([], watch={"webhook": {"listen": "127.0.0.1:0", "key_refresh_interval": "1s"}})
    (problem,) = caught.value.problems
    assert problem.line is not None
    assert "key_refresh_interval: must be at least 10s" in problem.message


def test_rooms_outside_the_watched_ones_are_ignored(sim: Simulator, config_for: MakeConfig) -> None:
    sim.add_room(ROOM, "production")
    sim.add_room("zzzz-zzzz-zzzz", "elsewhere")
    runtime = build(
        config_for([], watch={"rooms": ["production"], "webhook": {"listen": "127.0.0.1:0"}})
    )
    receiver = start_webhooks(runtime)
    assert receiver is not None
    assert runtime.discovery is not None
    try:
        runtime.discovery.run()  # no sessions yet, but the room's customRoomId is now known
        sim.webhook_url = receiver.url
        for room, session in ((ROOM, "in"), ("zzzz-zzzz-zzzz", "out")):
            sim.start_session(room, session)
            sim.join(session, "p")
        sim.advance(0)
        assert runtime.watchlist.keys() == {("in", "p")}
    finally:
        receiver.stop()
        runtime.close()


def test_the_daemon_follows_webhooks_and_status_reports_while_it_runs(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0, scenario="video-degradation")
    config = write_config(
        tmp_path,
        sim.url,
        [],
        POOR_VIDEO,
        watch={
            "participants": [],
            "all_rooms": True,
            "discovery_interval": "1h",  # only the start-up pass and the webhooks
            "webhook": {"listen": "127.0.0.1:0"},
        },
    )
    daemon = Daemon(["run", "--config", str(config)])
    try:
        line = daemon.wait_for(r"receiving VideoSDK webhooks on http://", stream="err")
        url = re.search(r"(http://\S+)", line)
        assert url is not None
        sim.webhook_url = url.group(1)
        # the first poll cycle starts with a discovery pass (READY=1 does not wait for it)
        daemon.wait_for(r"watching Alice in room abcd-efgh-ijkl \(discovery\)", stream="err")
        sim.advance(120)
        assert "Alice (alice)" in daemon.wait_for("FIRING")

        sim.join("sess-1", "bob", name="Bob")
        sim.advance(0)
        assert sim.rooms.deliveries[-1] == ("participant-joined", 200)
        daemon.wait_for(r"watching Bob in room abcd-efgh-ijkl \(webhook\)", stream="err")
        status = subprocess.run(
            [sys.executable, "-m", "watchdog", "status", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert status.returncode == 0
        assert "Alice" in status.stdout
        assert "Bob" in status.stdout
        assert "FIRING poor-video since" in status.stdout

        sim.leave("sess-1", "alice")
        sim.advance(10)
        resolved = daemon.wait_for("RESOLVED")
        assert "Alice (alice)" in resolved
        assert "left while degraded" in daemon.wait_for("left while degraded")
        assert daemon.stop(signal.SIGTERM) == 0
    finally:
        daemon.kill()
    assert SECRET not in daemon.all_output()
