"""The simulator's rooms, sessions and webhooks answer in VideoSDK's documented shapes."""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from pydantic import SecretStr

from watchdog.config.settings import VideoSDKSettings
from watchdog.sim.simulator import Simulator
from watchdog.videosdk.client import VideoSDKClient
from watchdog.watch.discovery import active_participants, iter_rooms, pages, session_pages
from watchdog.watch.webhooks import load_public_key, verify

from .conftest import API_KEY, SECRET

ROOM = "abcd-efgh-ijkl"


def _client(sim: Simulator) -> VideoSDKClient:
    return VideoSDKClient(
        VideoSDKSettings(base_url=sim.url, api_key=API_KEY, secret_key=SecretStr(SECRET))
    )


def _get(sim: Simulator, path: str, **params: Any) -> Any:
    client = _client(sim)
    try:
        return client.get_json(path, params)
    finally:
        client.close()


def test_sessions_are_paginated_newest_first_with_timelogs(sim: Simulator) -> None:
    sim.add_room(ROOM, "support")
    for k in range(5):
        sim.start_session(ROOM, f"s{k}", at=k * 10)
    sim.join("s4", "alice", name="Alice", at=40)
    sim.leave("s4", "alice", at=45)
    sim.end_session("s0", at=30)
    sim.advance(50)
    body = _get(sim, "/v2/sessions/", roomId=ROOM, page=2, perPage=2)
    assert body["pageInfo"] == {"currentPage": 2, "perPage": 2, "lastPage": 3, "total": 5}
    assert [s["id"] for s in body["data"]] == ["s2", "s1"]
    first = _get(sim, "/v2/sessions/", customRoomId="support")["data"][0]
    assert first["status"] == "ongoing"
    assert first["end"] is None
    assert first["participants"] == [
        {
            "participantId": "alice",
            "name": "Alice",
            "timelog": [{"start": "2026-11-24T10:00:40.000Z", "end": "2026-11-24T10:00:45.000Z"}],
        }
    ]
    ended = _get(sim, "/v2/sessions/s0")
    assert (ended["status"], ended["end"]) == ("ended", "2026-11-24T10:00:30.000Z")
    assert _get(sim, "/v2/sessions/", customRoomId="nope")["data"] == []


def test_active_participants_and_the_404_when_nobody_is_there(sim: Simulator) -> None:
    sim.add_room(ROOM)
    sim.start_session(ROOM, "s1", at=0)
    for n in range(25):
        sim.join("s1", f"p{n:02d}", at=0)
    sim.leave("s1", "p00", at=5)
    sim.advance(10)
    body = _get(sim, "/v2/sessions/s1/participants/active", perPage=10, page=3)
    assert body["pageInfo"]["total"] == 24
    assert body["data"][0]["status"] == "ongoing"
    assert [p["participantId"] for p in body["data"][0]["participants"]] == [
        "p21",
        "p22",
        "p23",
        "p24",
    ]
    client = _client(sim)
    try:
        assert len(active_participants(client, "s1")) == 24
        sim.end_session("s1")
        assert active_participants(client, "s1") == []  # 404 "No active participants found"
        assert active_participants(client, "unknown") == []
    finally:
        client.close()
    assert sim.requests[-1][2] == 404


def test_pages_are_fetched_only_as_far_as_they_are_read(sim: Simulator) -> None:
    for r in range(250):
        sim.add_room(f"room-{r:04d}-test", f"custom-{r}")
    client = _client(sim)
    try:
        before = len(sim.requests)
        first, _ = next(pages(client, "/v2/rooms", {}, "rooms"))
        assert len(first) == 100
        assert len(sim.requests) - before == 1
        rooms = list(iter_rooms(client))
        assert len(rooms) == 250
        assert len(sim.requests) - before == 1 + 3
        assert rooms[7]["customRoomId"] == "custom-7"
        assert [page for page, _ in itertools.islice(session_pages(client, {}), 1)] == [[]]
    finally:
        client.close()


def test_webhooks_are_signed_with_the_key_the_api_serves(sim: Simulator) -> None:
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["videosdk-signature"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sim.webhook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        sim.add_room(ROOM)
        sim.start_session(ROOM, "s1", at=5)
        sim.join("s1", "alice", name="Alice", at=6)
        sim.advance(5)
        assert len(received) == 1  # the join is not due yet
        sim.advance(1)
        assert sim.rooms.deliveries == [("session-started", 204), ("participant-joined", 204)]
    finally:
        server.shutdown()
        server.server_close()
    answer = requests.get(sim.url + "/v2/public/rsa-public-key", timeout=10)  # no token needed
    key = load_public_key(answer.json()["publicKey"])
    body, signature = received[1]
    assert verify(key, body, signature)
    assert not verify(key, body.replace(b"alice", b"mallory"), signature)
    assert body == (
        b'{"webhookType":"participant-joined","data":{"meetingId":"abcd-efgh-ijkl",'
        b'"sessionId":"s1","participantId":"alice","participantName":"Alice"}}'
    )
