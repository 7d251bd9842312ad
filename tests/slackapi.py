"""A local server that answers like Slack's Web API and its incoming webhooks.

Enough of ``chat.postMessage`` and ``chat.update`` to test threading and
updates for real: bearer-token checks, channel IDs, ``ts`` values, threads,
``ok``/``error`` bodies, and whatever faults a test queues on the receiver.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from watchdog.testing import HttpReceiver, Received, Reply

TOKEN = "xoxb-test-1234-5678-secret-token"
CHANNEL_ID = "C0ALERTS01"
CHANNELS = {"#alerts": CHANNEL_ID, "alerts": CHANNEL_ID, CHANNEL_ID: CHANNEL_ID}
WEBHOOK_PATH = "/services/T0001/B0001/webhook-secret-part-9c2d"


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    attachments: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    broadcast: bool = False


class FakeSlack:
    def __init__(self, tls: Any = None) -> None:
        self.messages: dict[str, Message] = {}
        self.webhook_posts: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.receiver = HttpReceiver(self._handle, ssl_context=tls)

    @property
    def api_url(self) -> str:
        return self.receiver.url + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.receiver.url + WEBHOOK_PATH

    def top_level(self) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts is None]

    def replies(self, ts: str) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts == ts]

    def _handle(self, request: Received) -> Reply:
        if request.path == WEBHOOK_PATH:
            with self._lock:
                self.webhook_posts.append(request.json())
            return Reply(200, "ok")
        if request.path.startswith("/services/"):
            return Reply(404, "no_service")
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        body = request.json()
        method = request.path.removeprefix("/api/")
        with self._lock:
            if method == "chat.postMessage":
                return self._post(body)
            if method == "chat.update":
                return self._update(body)
        return Reply(404, {"ok": False, "error": "unknown_method"})

    def _post(self, body: dict[str, Any]) -> Reply:
        channel = CHANNELS.get(body.get("channel", ""))
        if channel is None:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        if not body.get("text") and not body.get("attachments") and not body.get("blocks"):
            return Reply(200, {"ok": False, "error": "no_text"})
        thread = body.get("thread_ts")
        if thread is not None and thread not in self.messages:
            return Reply(200, {"ok": False, "error": "thread_not_found"})
        ts = f"1764000000.{next(self._ts):06d}"
        self.messages[ts] = Message(
            channel,
            ts,
            body.get("text", ""),
            body.get("attachments", []),
            thread,
            broadcast=bool(body.get("reply_broadcast")),
        )
        return Reply(200, {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts}})

    def _update(self, body: dict[str, Any]) -> Reply:
        message = self.messages.get(body.get("ts", ""))
        if message is None or body.get("channel") != message.channel:
            return Reply(200, {"ok": False, "error": "message_not_found"})
        message.edits.append({"text": message.text, "attachments": message.attachments})
        message.text = body.get("text", message.text)
        message.attachments = body.get("attachments", message.attachments)
        return Reply(200, {"ok": True, "channel": message.channel, "ts": message.ts})

    def __enter__(self) -> FakeSlack:
        self.receiver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()
