"""A local peer that speaks Slack's Socket Mode envelope protocol over a real WebSocket.

It greets each connection with ``hello``, sends envelopes (``envelope_id``,
``type``, ``payload``) and collects the client's acks, as Slack does; the
``websockets`` server runs on its own asyncio loop in a thread.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import uuid
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.acks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._connection: ServerConnection | None = None
        self._server: Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket=test"

    async def _serve(self, connection: ServerConnection) -> None:
        self._connection = connection
        await connection.send(
            json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "local"}})
        )
        self.connected.set()
        async for raw in connection:
            data = json.loads(raw)
            if "envelope_id" in data:
                self.acks.put(data)

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()

        async def start() -> Server:
            return await serve(self._serve, "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def send(self, kind: str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send one envelope and return the client's ack for it."""
        assert self.connected.wait(timeout), "the Socket Mode client never connected"
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind == "slash_commands",
        }
        connection = self._connection
        assert connection is not None
        asyncio.run_coroutine_threadsafe(connection.send(json.dumps(envelope)), self.loop).result(
            timeout
        )
        while True:
            ack = self.acks.get(timeout=timeout)
            if ack["envelope_id"] == envelope_id:
                return ack
