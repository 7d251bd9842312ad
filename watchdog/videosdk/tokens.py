"""VideoSDK JWTs: minted with the account secret, or a ready-made one.

VideoSDK wants HS256 tokens with the crawler role for its v2 REST API, with
integer ``iat``/``exp``; we re-mint well before expiry so a poll never
carries a token that dies in flight.

PyJWT warns (``InsecureKeyLengthWarning``) on every HMAC key shorter than the
hash, raw on stderr and outside the log format; that warning is turned off
here, and :class:`TokenSource` says it once instead, in the log, about the
setting the operator can check.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from datetime import timedelta

import jwt
from pydantic import SecretStr

from watchdog.config.problems import ConfigError, Problem
from watchdog.config.settings import VideoSDKSettings

REFRESH_MARGIN = 0.2  # re-mint when less than this fraction of the lifetime is left
MIN_SECRET_BYTES = 32  # HS256: a key at least as long as the hash (RFC 7518, section 3.2)

log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)


def mint_token(api_key: str, secret: SecretStr, ttl: timedelta, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "apikey": api_key,
        "permissions": ["allow_join"],
        "version": 2,
        "roles": ["crawler"],
        "iat": issued,
        "exp": issued + int(ttl.total_seconds()),
    }
    return jwt.encode(claims, secret.get_secret_value(), algorithm="HS256")


class TokenSource:
    """Hands out a valid token; thread-safe, since polls run in a pool."""

    def __init__(self, settings: VideoSDKSettings, clock: Callable[[], float] = time.time) -> None:
        self._static = settings.token
        self._api_key = settings.api_key
        self._secret = settings.secret_key
        self._ttl = settings.token_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        if self._static is None and (self._api_key is None or self._secret is None):
            raise ConfigError(
                [
                    Problem(
                        "config",
                        None,
                        "videosdk: set api_key and secret_key (or VIDEOSDK_API_KEY and "
                        "VIDEOSDK_SECRET_KEY), or a ready-made token",
                    )
                ]
            )
        if self._secret is not None and self._static is None:
            length = len(self._secret.get_secret_value().encode())
            if length < MIN_SECRET_BYTES:
                log.warning(
                    "videosdk.secret_key is %d bytes, shorter than the %d HS256 needs to be "
                    "safe (RFC 7518, section 3.2): check it was copied whole from the "
                    "VideoSDK dashboard (API keys)",
                    length,
                    MIN_SECRET_BYTES,
                )

    @property
    def renewable(self) -> bool:
        return self._static is None

    def get(self) -> str:
        if self._static is not None:
            return self._static.get_secret_value()
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._refresh_at:
                assert self._api_key is not None
                assert self._secret is not None
                self._token = mint_token(self._api_key, self._secret, self._ttl, now)
                lifetime = self._ttl.total_seconds()
                self._refresh_at = now + lifetime * (1 - REFRESH_MARGIN)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after the API refused it, unless another thread already did."""
        with self._lock:
            if self._token == token:
                self._token = None

    def __repr__(self) -> str:
        kind = "static" if self._static is not None else f"minted, apikey={self._api_key}"
        return f"TokenSource({kind})"
