"""A local server that answers like Slack's Web API and its incoming webhooks.

Enough of ``chat.postMessage`` and ``chat.update`` to test threading and
updates for real: bearer-token checks, channel IDs, ``ts`` values, threads,
``ok``/``error`` bodies, and whatever faults a test queues on the receiver.
Also what acting from Slack uses: ``apps.connections.open`` (app-level token,
hands out ``socket_url``), ``usergroups.users.list``, interaction
``response_url`` posts, and the ``files_upload_v2`` flow
(``files.getUploadURLExternal``, the upload POST, ``files.completeUploadExternal``).
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from watchdog.testing import HttpReceiver, Received, Reply


def _body(request: Received, query: str) -> dict[str, Any]:
    """A Web API call's arguments: JSON, a form, or a GET's query string, as Slack takes."""
    if query:
        return {k: v[0] for k, v in parse_qs(query).items()}
    if request.headers.get("content-type", "").startswith("application/json"):
        data = request.json()
        return data if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(request.text()).items()}


TOKEN = "xoxb-test-1234-5678-secret-token"
APP_TOKEN = "xapp-1-A0001-test-app-level-secret"
RESPONSE_PATH = "/actions/T0001/response-url"
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


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int
    data: bytes = b""
    channel: str | None = None
    thread_ts: str | None = None
    title: str | None = None


class FakeSlack:
    def __init__(self, tls: Any = None) -> None:
        self.messages: dict[str, Message] = {}
        self.webhook_posts: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # what was posted to a response_url
        self.uploads: dict[str, Upload] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.usergroup_calls = 0
        self.socket_url = ""  # what apps.connections.open hands out
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

    @property
    def response_url(self) -> str:
        return self.receiver.url + RESPONSE_PATH

    def completed_uploads(self) -> list[Upload]:
        return [u for u in self.uploads.values() if u.channel is not None]

    def _handle(self, request: Received) -> Reply:
        if request.path == RESPONSE_PATH:
            with self._lock:
                self.responses.append(request.json())
            return Reply(200, "ok")
        if request.path.startswith("/upload/"):
            return self._upload(request)
        if request.path.startswith("/api/apps.connections.open"):
            if request.headers.get("authorization") != f"Bearer {APP_TOKEN}":
                return Reply(200, {"ok": False, "error": "invalid_auth"})
            return Reply(200, {"ok": True, "url": self.socket_url})
        if request.path == WEBHOOK_PATH:
            with self._lock:
                self.webhook_posts.append(request.json())
            return Reply(200, "ok")
        if request.path.startswith("/services/"):
            return Reply(404, "no_service")
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        method, _, query = request.path.removeprefix("/api/").partition("?")
        body = _body(request, query)
        with self._lock:
            if method == "chat.postMessage":
                return self._post(body)
            if method == "chat.update":
                return self._update(body)
            if method == "usergroups.users.list":
                self.usergroup_calls += 1
                users = self.usergroups.get(str(body.get("usergroup", "")))
                if users is None:
                    return Reply(200, {"ok": False, "error": "no_such_subteam"})
                return Reply(200, {"ok": True, "users": users})
            if method == "files.getUploadURLExternal":
                file_id = f"F{len(self.uploads) + 1:08d}"
                self.uploads[file_id] = Upload(file_id, str(body["filename"]), int(body["length"]))
                url = f"{self.receiver.url}/upload/{file_id}"
                return Reply(200, {"ok": True, "upload_url": url, "file_id": file_id})
            if method == "files.completeUploadExternal":
                return self._complete(body)
        return Reply(404, {"ok": False, "error": "unknown_method"})

    def _upload(self, request: Received) -> Reply:
        with self._lock:
            upload = self.uploads.get(request.path.removeprefix("/upload/"))
            if upload is None or len(request.body) != upload.length:
                return Reply(400, "bad upload")
            upload.data = request.body
        return Reply(200, f"OK - {len(request.body)}")

    def _complete(self, body: dict[str, Any]) -> Reply:
        files = json.loads(str(body.get("files", "[]")))
        channel = CHANNELS.get(str(body.get("channel_id", "")))
        if channel is None:
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        done = []
        for entry in files:
            upload = self.uploads.get(entry["id"])
            if upload is None or not upload.data:
                return Reply(200, {"ok": False, "error": "file_not_found"})
            upload.channel, upload.thread_ts = channel, body.get("thread_ts")
            upload.title = entry.get("title")
            done.append({"id": upload.file_id, "title": upload.title})
        return Reply(200, {"ok": True, "files": done})

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
