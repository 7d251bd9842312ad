"""A local server that answers like Slack's Web API and its incoming webhooks.

Enough of ``chat.postMessage`` and ``chat.update`` to test threading and
updates for real: bearer-token checks, channel IDs, ``ts`` values, threads,
``ok``/``error`` bodies, and whatever faults a test queues on the receiver.
Also what acting from Slack uses: ``apps.connections.open`` (app-level token,
hands out ``socket_url``), ``usergroups.users.list``, interaction
``response_url`` posts, and the ``files_upload_v2`` flow
(``files.getUploadURLExternal``, the upload POST, ``files.completeUploadExternal``).

Every message it receives (posted, updated, through a webhook or a response_url)
is checked against Slack's limits with slack-sdk's own Block Kit models, plus the
limits those models do not check (:func:`message_problems`). A message that breaks
one is answered as Slack would (``invalid_blocks``, ``msg_too_long``) and recorded,
and the server fails the test when it stops, even if the sender recovered.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block

from watchdog.testing import HttpReceiver, Received, Reply

# Slack's documented limits that slack-sdk's models leave unchecked (they check the rest:
# section text 3,000, 10 fields, header 150, context 10 and actions 25 elements, button
# text 75 and value 2,000, action_id and block_id 255; tests/test_slack.py proves it).
MESSAGE_BLOCKS = 50
FIELD_TEXT = 2000
TEXT_OBJECT = 3000
MESSAGE_TEXT = 40_000  # Slack truncates ``text`` past this
MAX_ATTACHMENTS = 100
# and the limits the models do check, counted again in UTF-16 code units (the models
# count code points; Slack does not say which it counts, so the larger must fit)
UNITS_LIMITS = {"section": 3000, "header": 150, "button": 75}


def units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _text_problems(obj: Any, limit: int, where: str) -> list[str]:
    text = obj.get("text") if isinstance(obj, dict) else None
    if not isinstance(text, str) or not text:
        return [f"{where}: a text object needs at least 1 character"]
    if units(text) > limit:
        return [f"{where}: {units(text)} characters, more than {limit}"]
    return []


def _unchecked_problems(block: dict[str, Any], where: str) -> list[str]:
    """What Slack refuses in one block that slack-sdk's models let through."""
    kind = block.get("type")
    problems: list[str] = []
    if kind == "section":
        if "text" in block:
            problems += _text_problems(block["text"], UNITS_LIMITS["section"], f"{where}.text")
        for i, item in enumerate(block.get("fields", [])):
            problems += _text_problems(item, FIELD_TEXT, f"{where}.fields[{i}]")
    elif kind == "header":
        problems += _text_problems(block.get("text"), UNITS_LIMITS["header"], f"{where}.text")
    elif kind == "context":
        for i, element in enumerate(block.get("elements", [])):
            if element.get("type") in {"mrkdwn", "plain_text"}:
                problems += _text_problems(element, TEXT_OBJECT, f"{where}.elements[{i}]")
    elif kind == "actions":
        for i, element in enumerate(block.get("elements", [])):
            if element.get("type") == "button":
                label = element.get("text")
                problems += _text_problems(label, UNITS_LIMITS["button"], f"{where}.elements[{i}]")
    return problems


def block_problems(blocks: Any, where: str = "blocks") -> list[str]:
    """Why Slack would answer ``invalid_blocks`` to these blocks; empty if it would not.

    Each block goes through slack-sdk's ``Block.parse(...)``, ``validate_json()`` and
    ``to_dict()`` (which validates what the block holds, e.g. its buttons) and must
    read back unchanged (no key the models do not know); then the limits they miss.
    """
    if not isinstance(blocks, list):
        return [f"{where}: not a list"]
    problems = []
    if len(blocks) > MESSAGE_BLOCKS:
        problems.append(f"{where}: {len(blocks)} blocks, more than {MESSAGE_BLOCKS}")
    ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and "block_id" in b]
    if len(ids) != len(set(ids)):
        problems.append(f"{where}: a block_id appears twice")
    for i, raw in enumerate(blocks):
        here = f"{where}[{i}]"
        parsed = Block.parse(raw) if isinstance(raw, dict) else None
        if parsed is None:
            problems.append(f"{here}: not a block slack-sdk knows: {raw!r:.80}")
            continue
        try:
            parsed.validate_json()
            if parsed.to_dict() != raw:
                problems.append(f"{here}: slack-sdk reads it differently: {raw!r:.200}")
        except SlackObjectFormationError as exc:
            problems.append(f"{here}: {exc}")
        problems += _unchecked_problems(raw, here)
    return problems


def message_problems(body: dict[str, Any]) -> list[str]:
    """Why Slack would refuse (or truncate) this message body; empty if it would not."""
    problems = []
    text = body.get("text", "")
    if not isinstance(text, str) or units(text) > MESSAGE_TEXT:
        problems.append(f"text: longer than {MESSAGE_TEXT} characters")
    if "blocks" in body:
        problems += block_problems(body["blocks"])
    attachments = body.get("attachments", [])
    if isinstance(attachments, str):  # a form post carries them as JSON
        attachments = json.loads(attachments)
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        return [*problems, "attachments: not a list of at most 100"]
    for i, attachment in enumerate(attachments):
        try:
            model = BlockAttachment(**attachment)
            if model.to_dict() != attachment:
                problems.append(f"attachments[{i}]: slack-sdk reads it differently")
        except (TypeError, SlackObjectFormationError) as exc:
            problems.append(f"attachments[{i}]: {exc}")
        problems += block_problems(attachment.get("blocks", []), f"attachments[{i}].blocks")
    return problems


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
        self.violations: list[str] = []  # what broke Slack's limits, by request
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

    def _refused(self, where: str, body: dict[str, Any]) -> str | None:
        """The error Slack answers to a message breaking its limits (recorded), or None."""
        problems = message_problems(body) + self._file_problems(body)
        if not problems:
            return None
        self.violations += [f"{where}: {p}" for p in problems]
        return "msg_too_long" if problems[0].startswith("text:") else "invalid_blocks"

    def _file_problems(self, body: dict[str, Any]) -> list[str]:
        """An image block's ``slack_file`` must be a file uploaded and shared here."""
        attachments = body.get("attachments", [])
        if isinstance(attachments, str):
            attachments = json.loads(attachments)
        every = [*body.get("blocks", [])]
        for attachment in attachments if isinstance(attachments, list) else []:
            every += attachment.get("blocks", []) if isinstance(attachment, dict) else []
        problems = []
        for block in every:
            reference = block.get("slack_file") if isinstance(block, dict) else None
            if isinstance(reference, dict):
                upload = self.uploads.get(str(reference.get("id")))
                if upload is None or upload.channel is None:
                    problems.append(f"image: {reference} is no file shared in a channel")
        return problems

    def image_files(self, message: Message) -> list[str]:
        """The file IDs a message's image blocks show."""
        return [
            str(block["slack_file"]["id"])
            for attachment in message.attachments
            for block in attachment.get("blocks", [])
            if block.get("type") == "image" and "slack_file" in block
        ]

    def _handle(self, request: Received) -> Reply:
        if request.path == RESPONSE_PATH:
            with self._lock:
                error = self._refused("response_url", request.json())
                if error is None:
                    self.responses.append(request.json())
            return Reply(400, error) if error else Reply(200, "ok")
        if request.path.startswith("/upload/"):
            return self._upload(request)
        if request.path.startswith("/api/apps.connections.open"):
            if request.headers.get("authorization") != f"Bearer {APP_TOKEN}":
                return Reply(200, {"ok": False, "error": "invalid_auth"})
            return Reply(200, {"ok": True, "url": self.socket_url})
        if request.path == WEBHOOK_PATH:
            with self._lock:
                error = self._refused("incoming webhook", request.json())
                if error is None:
                    self.webhook_posts.append(request.json())
            return Reply(400, error) if error else Reply(200, "ok")
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
        error = self._refused("chat.postMessage", body)
        if error is not None:
            return Reply(200, {"ok": False, "error": error})
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
        error = self._refused("chat.update", body)
        if error is not None:
            return Reply(200, {"ok": False, "error": error})
        before = {"text": message.text, "attachments": message.attachments}
        message.text = body.get("text", message.text)
        message.attachments = body.get("attachments", message.attachments)
        # recorded last: a test that sees the edit (from its own thread) sees the new text
        message.edits.append(before)
        return Reply(200, {"ok": True, "channel": message.channel, "ts": message.ts})

    def __enter__(self) -> FakeSlack:
        self.receiver.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.receiver.stop()
        if kind is None and self.violations:
            raise AssertionError("messages Slack would refuse:\n" + "\n".join(self.violations))
