"""Clicks over HTTP: Slack's interactivity and slash-command requests, signature checked.

For installations that prefer a request URL to Socket Mode. The core's
:mod:`watchdog.listener` bounds each request (1 MiB, 5 s, 16 at once) before
the signature is checked. Every request must carry a valid ``X-Slack-Signature`` (v0 HMAC-SHA256 of
``v0:{timestamp}:{body}`` with the app's signing secret, checked by slack-sdk's
``SignatureVerifier``) and a timestamp at most 5 minutes old; a signature seen
before within that window is a replay. Anything else gets 401 and changes
nothing.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from watchdog.listener import Limits, Listener, Request, Response
from watchdog_slack.interactions import Interactions

WINDOW = 300  # seconds: Slack's own advice, and the verifier's
PATH = "/slack/events"
# Slack's interactive payloads are at most a few hundred KB; bigger is refused unread
LIMITS = Limits(max_body=1 << 20)
MAX_FIELDS = 64  # a slash command has about a dozen form fields, a click one
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


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
        self._listener: Listener | None = None

    def __repr__(self) -> str:
        return f"InteractionEndpoint({self.host}:{self.port})"

    @property
    def url(self) -> str:
        assert self._listener is not None
        return self._listener.url + PATH

    def start(self) -> None:
        self._listener = Listener(
            self.host,
            self.port,
            {PATH: self._serve},
            name="slack-interactions",
            limits=LIMITS,
            logger=self.log,
        )
        self._listener.start()
        self.log.info("listening for Slack clicks on %s", self.url)

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _serve(self, request: Request) -> Response:
        status, answer = self.handle(request.body, dict(request.headers))
        return Response.json(status, answer)

    def _signed(self, body: bytes, timestamp: str, signature: str) -> bool:
        """slack-sdk's check, given only what it can take (it raises on non-ASCII or non-UTF-8)."""
        if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            return False
        try:
            return self.verifier.is_valid(body, timestamp, signature)
        except UnicodeDecodeError:
            return False

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        """(status, JSON answer) for one request; 401 unless signed, fresh and new."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not self._signed(body, timestamp, signature):
            self.log.warning("refused a Slack request with a missing, bad or stale signature")
            return 401, {"error": "invalid signature"}
        if not self.replays.first_time(signature, time.time()):
            self.log.warning("refused a replayed Slack request")
            return 401, {"error": "replayed request"}
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=MAX_FIELDS)
            payload = json.loads(form["payload"][0]) if "payload" in form else None
        except (ValueError, RecursionError) as exc:
            self.log.warning("refused a signed Slack request that is not readable: %.200s", exc)
            return 400, {"error": "not a form with a JSON payload"}
        try:
            if isinstance(payload, dict):
                if payload.get("type") == "block_actions":
                    self.interactions.block_actions(payload)
                return 200, None
            fields = {k: v[0] for k, v in form.items()}
            if payload is None and fields.get("command"):
                return 200, self.interactions.command(fields)
        except Exception:
            self.log.exception("handling a Slack request failed")
            return 200, {
                "response_type": "ephemeral",
                "text": "Something went wrong; see the watchdog's log.",
            }
        return 400, {"error": "not an interaction or a command"}
