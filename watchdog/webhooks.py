"""Discovery by VideoSDK webhooks: an HTTP endpoint that updates the watch list at once.

VideoSDK signs each delivery: ``videosdk-signature`` is a base64 RSA-SHA256
(PKCS#1 v1.5) signature over the raw body, checked against VideoSDK's public
key (configured, or fetched from ``GET /v2/public/rsa-public-key`` and cached;
refetched at most once per ``key_refresh_interval`` when a signature fails, in
case the key rotated). Unsigned or badly signed requests get 401, bodies over
``max_body_bytes`` 413, anything else malformed 400. Polling discovery keeps
reconciling in the background, so a missed or refused webhook heals.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from watchdog.discovery import Discovery
from watchdog.settings import WebhookSettings
from watchdog.storagefaults import StorageFault
from watchdog.telemetry import WEBHOOKS
from watchdog.videosdk import VideoSDKClient, VideoSDKError
from watchdog.watchlist import LEFT, WatchList

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "videosdk-signature"
PUBLIC_KEY_PATH = "/v2/public/rsa-public-key"
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{64,}")


class KeyUnavailableError(Exception):
    """VideoSDK's public key could not be fetched; the sender should retry later."""


def load_public_key(text: str | bytes) -> RSAPublicKey:
    """An RSA public key from PEM (SPKI or PKCS#1) or bare base64 DER; ValueError otherwise."""
    raw = text.encode() if isinstance(text, str) else text
    raw = raw.strip()
    try:
        if raw.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(raw)
        else:
            key = serialization.load_der_public_key(base64.b64decode(raw, validate=True))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a usable public key ({type(exc).__name__})") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key


def read_public_key(value: str, resolve: Callable[[str], Path]) -> RSAPublicKey:
    """The configured key: PEM or base64 text in the config, or a file path (relative to it)."""
    text = value.strip()
    if not text.startswith("-----BEGIN") and not _BASE64.fullmatch(text):
        path = resolve(text)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read public key file {str(path)!r}: {exc}") from None
    return load_public_key(text)


def verify(key: RSAPublicKey, body: bytes, signature: str) -> bool:
    try:
        decoded = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(decoded, body, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


class PublicKeys:
    """VideoSDK's webhook signing key: configured, or fetched once and cached."""

    def __init__(
        self,
        client: VideoSDKClient,
        configured: RSAPublicKey | None = None,
        refresh_interval: timedelta = timedelta(minutes=5),
    ) -> None:
        self._client = client
        self._key = configured
        self._configured = configured is not None
        self._interval = refresh_interval.total_seconds()
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def current(self) -> RSAPublicKey:
        with self._lock:
            if self._key is None:
                self._key = self._fetch()
            return self._key

    def rotated(self) -> RSAPublicKey | None:
        """A refetched key after a failed check, at most once per interval; None if not now."""
        with self._lock:
            if self._configured:
                return None
            if (
                self._fetched_at is not None
                and time.monotonic() - self._fetched_at < self._interval
            ):
                return None
            fresh = self._fetch()
            changed = self._key is None or fresh.public_numbers() != self._key.public_numbers()
            self._key = fresh
            return fresh if changed else None

    def _fetch(self) -> RSAPublicKey:
        self._fetched_at = time.monotonic()
        try:
            body = self._client.get_json(PUBLIC_KEY_PATH, endpoint="public_key")
        except VideoSDKError as exc:
            raise KeyUnavailableError(f"fetching VideoSDK's public key failed: {exc}") from None
        text = body.get("publicKey") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise KeyUnavailableError("VideoSDK's public key response has no 'publicKey'")
        try:
            key = load_public_key(text)
        except ValueError as exc:
            raise KeyUnavailableError(f"VideoSDK's public key: {exc}") from None
        log.info("fetched VideoSDK's webhook public key")
        return key


def apply_event(event: Any, watchlist: WatchList, discovery: Discovery) -> str:
    """Update the watch list from one webhook; returns the outcome, ValueError if malformed."""
    if not isinstance(event, dict) or not isinstance(event.get("webhookType"), str):
        raise ValueError("expected a JSON object with a webhookType")
    kind = event["webhookType"]
    data = event.get("data")
    if not isinstance(data, dict):
        data = {}
    text = {k: v for k, v in data.items() if isinstance(v, str) and v}
    session, participant = text.get("sessionId", ""), text.get("participantId", "")
    room = text.get("meetingId") or text.get("roomId")
    if kind in ("participant-joined", "participant-left") and not (session and participant):
        raise ValueError(f"{kind} without sessionId and participantId")
    if kind == "session-ended" and not session:
        raise ValueError("session-ended without sessionId")
    log.debug("webhook %s", kind, extra={"session_id": session, "participant_id": participant})
    if kind == "participant-joined":
        if not discovery.in_scope(room):
            return "out_of_scope"
        seen = discovery.seen(room, text.get("participantName"))
        return "joined" if watchlist.join((session, participant), seen, "webhook") else "filtered"
    if kind == "participant-left":
        return "left" if watchlist.leave((session, participant), LEFT) else "unknown"
    if kind == "session-ended":
        return "ended" if watchlist.end_session(session) else "unknown"
    return "ignored"  # session-started and events we do not use: acknowledged, nothing to do


Handler = Callable[[Any], str]


class WebhookReceiver:
    """The HTTP endpoint; ``start`` binds (port 0 picks a free one), ``stop`` closes it."""

    def __init__(self, settings: WebhookSettings, keys: PublicKeys, handle: Handler) -> None:
        self.settings = settings
        self.keys = keys
        self.handle = handle
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = _Server(self.settings.address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="webhooks",
            daemon=True,
        )
        self._thread.start()
        log.info("receiving VideoSDK webhooks on %s", self.url)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.settings.address[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{self.settings.path}"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def receive(self, body: bytes, signature: str | None) -> tuple[int, str]:
        """Status and message for one delivery whose body is already size-checked."""
        if not signature:
            WEBHOOKS.labels("unsigned").inc()
            return 401, "missing videosdk-signature"
        try:
            key = self.keys.current()
            if not verify(key, body, signature):
                fresh = self.keys.rotated()
                if fresh is None or not verify(fresh, body, signature):
                    WEBHOOKS.labels("bad_signature").inc()
                    log.warning("refused a webhook with a bad signature")
                    return 401, "bad signature"
        except KeyUnavailableError as exc:
            WEBHOOKS.labels("key_unavailable").inc()
            log.warning("cannot verify a webhook: %s", exc)
            return 503, "cannot verify signatures right now"
        try:
            event = json.loads(body)
            outcome = self.handle(event)
        except ValueError as exc:
            WEBHOOKS.labels("bad_request").inc()
            log.warning("refused a malformed webhook: %s", exc)
            return 400, str(exc)[:200]
        except StorageFault:  # counted and logged once by the store; VideoSDK sends it again
            WEBHOOKS.labels("state_error").inc()
            return 503, "the state database is failing"
        WEBHOOKS.labels(outcome).inc()
        return 200, outcome


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], receiver: WebhookReceiver) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.receiver = receiver
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip the reverse DNS lookup
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "videosdk-watchdog"
    sys_version = ""
    timeout = 30.0

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        receiver = cast(_Server, self.server).receiver
        if urlsplit(self.path).path != receiver.settings.path:
            self._answer(404, "not found", close=True)
            return
        if "Transfer-Encoding" in self.headers:
            self._answer(411, "send Content-Length", close=True)
            return
        length_header = self.headers.get("Content-Length", "")
        if not length_header.isdigit():
            WEBHOOKS.labels("bad_request").inc()
            self._answer(411 if not length_header else 400, "Content-Length required", close=True)
            return
        length = int(length_header)
        if length > receiver.settings.max_body_bytes:
            WEBHOOKS.labels("too_large").inc()
            self._answer(413, "body too large", close=True)
            return
        body = self.rfile.read(length)
        status, message = receiver.receive(body, self.headers.get(SIGNATURE_HEADER))
        self._answer(status, message)

    def do_GET(self) -> None:
        self._answer(405, "POST only", close=True)

    do_PUT = do_DELETE = do_GET

    def _answer(self, status: int, message: str, close: bool = False) -> None:
        body = json.dumps({"ok": status == 200, "message": message}).encode()
        if close:
            self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status == 503:
                self.send_header("Retry-After", "30")
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
