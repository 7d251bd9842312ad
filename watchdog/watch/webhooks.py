"""Discovery by VideoSDK webhooks: an HTTP endpoint that updates the watch list at once.

VideoSDK signs each delivery: ``videosdk-signature`` is a base64 RSA-SHA256
(PKCS#1 v1.5) signature over the raw body, checked against VideoSDK's public
key (configured, or fetched from ``GET /v2/public/rsa-public-key`` and cached;
refetched at most once per ``key_refresh_interval`` when a signature fails, in
case the key rotated, and never more often than :class:`PublicKeys` allows
while fetches fail, so forged requests cannot make us call the API). Unsigned
or badly signed requests get 401, bodies over ``max_body_bytes`` 413 (unread,
by :mod:`watchdog.listener`), anything else malformed 400. Polling discovery
keeps reconciling in the background, so a missed or refused webhook heals.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from watchdog.config.settings import WebhookSettings
from watchdog.listener import Limits, Listener, Request, Response
from watchdog.obs.telemetry import WEBHOOKS
from watchdog.state.faults import StorageFault
from watchdog.videosdk.client import VideoSDKClient, VideoSDKError
from watchdog.watch.discovery import Discovery
from watchdog.watch.watchlist import LEFT, WatchList

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
    """VideoSDK's webhook signing key: configured, or fetched and cached.

    Fetches are rate-limited whatever the requests say, so forged webhooks
    cannot make us call VideoSDK's API: after a fetch that worked, the next one
    (a signature failed: did the key rotate?) waits ``refresh_interval``; after
    one that failed, it waits ``RETRY_AFTER_FAILURE`` seconds, doubling while
    it keeps failing, up to ``refresh_interval``. Meanwhile requests get the
    cached key, or KeyUnavailableError at once.
    """

    RETRY_AFTER_FAILURE = 5.0

    def __init__(
        self,
        client: VideoSDKClient,
        configured: RSAPublicKey | None = None,
        refresh_interval: timedelta = timedelta(minutes=5),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._key = configured
        self._configured = configured is not None
        self._interval = refresh_interval.total_seconds()
        self._clock = clock
        self._next_fetch = clock()  # no fetch before this time
        self._failures = 0
        self._lock = threading.Lock()

    def current(self) -> RSAPublicKey:
        with self._lock:
            if self._key is None:
                self._key = self._fetch()
            return self._key

    def rotated(self) -> RSAPublicKey | None:
        """A refetched key after a failed check, if a fetch is due and the key changed."""
        with self._lock:
            if self._configured or self._clock() < self._next_fetch:
                return None
            fresh = self._fetch()
            changed = self._key is None or fresh.public_numbers() != self._key.public_numbers()
            self._key = fresh
            return fresh if changed else None

    def retry_after(self) -> float:
        """Seconds until a fetch may be tried again (0: now)."""
        with self._lock:
            return max(0.0, self._next_fetch - self._clock())

    def _fetch(self) -> RSAPublicKey:
        now = self._clock()
        if now < self._next_fetch:
            raise KeyUnavailableError(
                f"VideoSDK's public key is not available; next try in {self._next_fetch - now:.0f}s"
            )
        try:
            key = self._download()
        except KeyUnavailableError:
            wait = self.RETRY_AFTER_FAILURE * 2 ** min(self._failures, 16)
            self._failures += 1
            self._next_fetch = now + min(wait, max(self._interval, self.RETRY_AFTER_FAILURE))
            raise
        self._failures = 0
        self._next_fetch = now + self._interval
        return key

    def _download(self) -> RSAPublicKey:
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
        self._listener: Listener | None = None

    def start(self) -> None:
        host, port = self.settings.address
        self._listener = Listener(
            host,
            port,
            {self.settings.path: self._serve},
            name="webhooks",
            limits=Limits(max_body=self.settings.max_body_bytes),
            logger=log,
        )
        self._listener.start()
        log.info("receiving VideoSDK webhooks on %s", self.url)

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.port

    @property
    def url(self) -> str:
        assert self._listener is not None
        return self._listener.url + self.settings.path

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _serve(self, request: Request) -> Response:
        status, message = self.receive(request.body, request.headers.get(SIGNATURE_HEADER))
        headers: tuple[tuple[str, str], ...] = ()
        if status == 503:
            headers = (("Retry-After", str(max(1, math.ceil(self.keys.retry_after())))),)
        return Response.json(status, {"ok": status == 200, "message": message}, headers)

    def receive(self, body: bytes, signature: str | None) -> tuple[int, str]:
        """Status and message for one delivery whose body is already size-checked."""
        if not signature:
            WEBHOOKS.labels("unsigned").inc()
            return 401, "missing videosdk-signature"
        if not _signature_shaped(signature):  # refused before any key is needed
            WEBHOOKS.labels("bad_signature").inc()
            log.warning("refused a webhook with a malformed signature")
            return 401, "bad signature"
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
        except (ValueError, RecursionError) as exc:
            WEBHOOKS.labels("bad_request").inc()
            log.warning("refused a malformed webhook: %s", str(exc)[:200])
            return 400, str(exc)[:200]
        except StorageFault:  # counted and logged once by the store; VideoSDK sends it again
            WEBHOOKS.labels("state_error").inc()
            return 503, "the state database is failing"
        WEBHOOKS.labels(outcome).inc()
        return 200, outcome


def _signature_shaped(signature: str) -> bool:
    """Base64 of at least 2048 bits, as any RSA signature VideoSDK makes."""
    try:
        return len(base64.b64decode(signature.strip(), validate=True)) >= 256
    except (binascii.Error, ValueError):
        return False
