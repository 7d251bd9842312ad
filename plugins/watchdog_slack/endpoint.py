"""Clicks over HTTP: Slack's interactivity and slash-command requests, signature checked.

For installations that prefer a request URL to Socket Mode. Every request
must carry a valid ``X-Slack-Signature`` (v0 HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the app's signing secret, checked by slack-sdk's
``SignatureVerifier``) and a timestamp at most 5 minutes old; a signature seen
before within that window is a replay. Anything else gets 401 and changes
nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from watchdog_slack.interactions import Interactions

WINDOW = 300  # seconds: Slack's own advice, and the verifier's
MAX_BODY = 1 << 20


class ReplayGuard:
    """Remembers signatures for the window in which their timestamp is still accepted."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, signature: str, now: float) -> bool:
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if t > now}
            if signature in self._seen:
                return False
            self._seen[signature] = now + WINDOW * 2  # covers timestamps up to 5 min ahead too
            return True


class InteractionEndpoint:
    def __init__(
        self,
        host: str,
        port: int,
        signing_secret: str,
        interactions: Interactions,
        logger: logging.Logger,
    ) -> None:
        self.host, self.port = host, port
        self.verifier = SignatureVerifier(signing_secret)
        self.interactions = interactions
        self.log = logger
        self.replays = ReplayGuard()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"InteractionEndpoint({self.host}:{self.port})"

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/slack/events"

    def start(self) -> None:
        endpoint = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(413, {"error": "too large"})
                    return
                body = self.rfile.read(length)
                status, answer = endpoint.handle(
                    body, {k.lower(): v for k, v in self.headers.items()}
                )
                self._answer(status, answer)

            def _answer(self, status: int, answer: dict[str, Any] | None) -> None:
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="slack-interactions", daemon=True
        )
        self._thread.start()
        self.log.info("listening for Slack clicks on %s", self.url)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        """(status, JSON answer) for one request; 401 unless signed, fresh and new."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not timestamp or not signature or not self.verifier.is_valid(body, timestamp, signature):
            self.log.warning("refused a Slack request with a missing, bad or stale signature")
            return 401, {"error": "invalid signature"}
        if not self.replays.first_time(signature, time.time()):
            self.log.warning("refused a replayed Slack request")
            return 401, {"error": "replayed request"}
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        try:
            if "payload" in form:
                payload = json.loads(form["payload"])
                if payload.get("type") == "block_actions":
                    self.interactions.block_actions(payload)
                return 200, None
            if form.get("command"):
                return 200, self.interactions.command(form)
        except Exception:
            self.log.exception("handling a Slack request failed")
            return 200, {
                "response_type": "ephemeral",
                "text": "Something went wrong; see the watchdog's log.",
            }
        return 400, {"error": "not an interaction or a command"}
