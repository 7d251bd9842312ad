"""The VideoSDK REST client: one pooled session, retries, typed errors.

Transient trouble (network errors, 406, 429, 5xx) is retried by urllib3 with
exponential backoff and jitter, honouring Retry-After up to a cap; a 401 gets
one fresh token; everything else becomes a typed error the poller can count.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import quote

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from watchdog.settings import VideoSDKSettings
from watchdog.telemetry import API_ERRORS, API_REQUESTS, API_RETRIES
from watchdog.tokens import TokenSource

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({406, 429, 500, 502, 503, 504})
USER_AGENT = "videosdk-watchdog/0.1"


class VideoSDKError(Exception):
    """A call to the VideoSDK API failed; ``status`` is the HTTP status if there was one."""

    kind = "error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(VideoSDKError):
    kind = "unauthorized"


class PermissionDeniedError(VideoSDKError):
    kind = "forbidden"


class NotFoundError(VideoSDKError):
    kind = "not_found"


class RateLimitedError(VideoSDKError):
    kind = "rate_limited"


class ServerError(VideoSDKError):
    kind = "server_error"


class TransportError(VideoSDKError):
    kind = "network"


class BadResponseError(VideoSDKError):
    kind = "bad_response"


class _CountingRetry(Retry):
    """urllib3's retry policy, counting each retry so operators see flakiness."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        reason = f"http_{response.status}" if response is not None else type(error).__name__
        API_RETRIES.labels(reason).inc()
        log.debug("retrying VideoSDK request after %s", reason)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _error_for(status: int, message: str) -> VideoSDKError:
    if status == 401:
        return AuthenticationError(message, status)
    if status == 403:
        return PermissionDeniedError(message, status)
    if status == 404:
        return NotFoundError(message, status)
    if status == 429:
        return RateLimitedError(message, status)
    if status >= 500 or status == 406:
        return ServerError(message, status)
    return VideoSDKError(message, status)


@functools.lru_cache(maxsize=16)
def server_time(header: str | None) -> datetime | None:
    """An HTTP ``Date`` header as UTC; None when missing or unparseable.

    Cached: the header changes once a second while every poll reads it.
    """
    if not header:
        return None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _describe(response: requests.Response) -> str:
    """A short, safe summary of an error body (VideoSDK error shapes are undocumented)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "error"
    if isinstance(body, dict):
        for key in ("message", "error", "msg"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
    return response.reason or "error"


def _session(base_url: str) -> requests.Session:
    """A session that reads the proxy and CA bundle environment once, not on every request.

    With ``trust_env`` on, requests re-reads the environment and stats ``~/.netrc``
    for each call, a fifth of a poll's CPU; the daemon talks to one base URL, so
    the same settings are resolved here once (netrc is not used: the JWT is the auth).
    """
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


class VideoSDKClient:
    def __init__(self, settings: VideoSDKSettings, pool_size: int = 16) -> None:
        self.base_url = settings.base_url
        self.tokens = TokenSource(settings)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._max_bytes = settings.max_response_bytes
        retry = _CountingRetry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            other=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=TRANSIENT_STATUSES,
            backoff_factor=settings.backoff,
            backoff_jitter=settings.backoff,
            backoff_max=30.0,
            retry_after_max=int(settings.max_retry_after),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = _session(self.base_url)
        adapter = HTTPAdapter(
            pool_connections=1, pool_maxsize=pool_size, max_retries=retry, pool_block=True
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # the base URL as requests normalises it (IDNA host, quoting), prepared once
        self._base = self.session.prepare_request(
            requests.Request("GET", self.base_url)
        ).url.rstrip("/")  # type: ignore[union-attr]

    def close(self) -> None:
        self.session.close()

    def participant_stats(self, session_id: str, participant_id: str) -> Any:
        return self.participant_stats_at(session_id, participant_id)[0]

    def participant_stats_at(
        self, session_id: str, participant_id: str
    ) -> tuple[Any, datetime | None]:
        """The stats response and the API server's time (its ``Date`` header), if it sent one.

        Absent-data rules measure silence against the server's clock, which is
        immune to skew on the machine the daemon runs on.
        """
        path = (
            f"/v2/sessions/{quote(session_id, safe='')}"
            f"/participant/{quote(participant_id, safe='')}/stats"
        )
        return self.get_json_at(path, endpoint="participant_stats")

    def get_json(
        self, path: str, params: dict[str, Any] | None = None, *, endpoint: str = "other"
    ) -> Any:
        """GET ``path`` and decode JSON; one token re-mint on 401."""
        return self.get_json_at(path, params, endpoint=endpoint)[0]

    def get_json_at(
        self, path: str, params: dict[str, Any] | None = None, *, endpoint: str = "other"
    ) -> tuple[Any, datetime | None]:
        """Like ``get_json``, with the server's ``Date`` header as an aware datetime."""
        token = self.tokens.get()
        response = self._send(path, params, token, endpoint)
        if response.status_code == 401 and self.tokens.renewable:
            response.close()
            self.tokens.invalidate(token)
            log.info("VideoSDK refused the token (401); minting a new one and retrying once")
            response = self._send(path, params, self.tokens.get(), endpoint)
        try:
            if response.status_code != 200:
                error = _error_for(response.status_code, _describe(response))
                API_ERRORS.labels(error.kind).inc()
                raise error
            return self._decode(response), server_time(response.headers.get("Date"))
        finally:
            response.close()

    def _request(
        self, path: str, params: dict[str, Any] | None, token: str
    ) -> requests.PreparedRequest:
        """The GET to send. Without query parameters (every stats poll) it is built
        directly: ``path`` is already percent-encoded and the base URL normalised once,
        so requests' per-call preparation (merging settings, re-parsing the URL), a
        sixth of a poll's CPU, is skipped. The session holds no auth or cookies to merge.
        """
        if params:
            return self.session.prepare_request(
                requests.Request(
                    "GET", self.base_url + path, params=params, headers={"Authorization": token}
                )
            )
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = self._base + path
        request.headers = CaseInsensitiveDict(cast(Mapping[str, str], self.session.headers))
        request.headers["Authorization"] = token
        return request

    def _send(
        self, path: str, params: dict[str, Any] | None, token: str, endpoint: str
    ) -> requests.Response:
        try:
            response = self.session.send(
                self._request(path, params, token), timeout=self._timeout, stream=True
            )
        except requests.RequestException as exc:
            API_ERRORS.labels("network").inc()
            raise TransportError(f"{type(exc).__name__} talking to VideoSDK") from None
        API_REQUESTS.labels(endpoint, str(response.status_code)).inc()
        return response

    def _decode(self, response: requests.Response) -> Any:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            API_ERRORS.labels("too_large").inc()
            raise BadResponseError(f"response of {declared} bytes exceeds max_response_bytes")
        try:
            body = response.raw.read(self._max_bytes + 1, decode_content=True)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            API_ERRORS.labels("network").inc()
            raise TransportError(f"{type(exc).__name__} reading VideoSDK response") from None
        if len(body) > self._max_bytes:
            API_ERRORS.labels("too_large").inc()
            raise BadResponseError(f"response exceeds max_response_bytes ({self._max_bytes})")
        try:
            return orjson.loads(body)
        except ValueError:  # orjson.JSONDecodeError is one
            API_ERRORS.labels("malformed_json").inc()
            raise BadResponseError("response is not valid JSON", response.status_code) from None

    def __repr__(self) -> str:
        return f"VideoSDKClient({self.base_url!r}, {self.tokens!r})"
