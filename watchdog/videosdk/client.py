"""The VideoSDK REST client: one pooled session, retries, typed errors.

Transient trouble (network errors, 406, 429, 5xx) is retried by urllib3 with
exponential backoff and jitter, honouring Retry-After up to a cap; a 401 gets
one fresh token; everything else becomes a typed error the poller can count.
Every call, retries and waits included, ends by its total deadline
(watchdog.videosdk.deadlines), and its body is bounded in size while it streams.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast
from urllib.parse import quote

import orjson
import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from watchdog.config.settings import VideoSDKSettings
from watchdog.obs.telemetry import API_ERRORS, API_REQUESTS, API_RETRIES, API_TEXT_REPLACED
from watchdog.videosdk import deadlines
from watchdog.videosdk.deadlines import Deadline, DeadlineAdapter, DeadlineExceeded
from watchdog.videosdk.jsontext import bad_text, loads_lenient
from watchdog.videosdk.tokens import TokenSource

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({406, 429, 500, 502, 503, 504})
USER_AGENT = "videosdk-watchdog/0.1"
DEFAULT_DEADLINE = 30.0  # seconds; the daemon passes watchdog.config.settings.request_deadline
ERROR_BODY_BYTES = 64 * 1024  # what is read of an error answer to describe it


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


class DeadlineError(VideoSDKError):
    """No complete answer within the call's total deadline (connect, retries, whole body)."""

    kind = "deadline"


class _CountingRetry(Retry):
    """urllib3's retry policy, counting each retry so operators see flakiness, and never
    waiting (nor starting another attempt) past the call's deadline."""

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Retry.sleep's choice (Retry-After, else backoff), checked against the deadline.

        urllib3 calls this exactly once before each retry (requests follows redirects
        itself), so this is where a retry is counted.
        """
        wait = None
        if self.respect_retry_after_header and response is not None:
            wait = self.get_retry_after(response)
        if not wait:
            wait = self.get_backoff_time()
        deadline = deadlines.current()
        if deadline is not None and time.monotonic() + wait >= deadline.at:
            raise DeadlineExceeded(response.status if response is not None else None, wait)
        last = self.history[-1]  # what this retry follows (increment recorded it)
        reason = f"http_{last.status}" if last.status is not None else type(last.error).__name__
        API_RETRIES.labels(reason).inc()
        log.debug("retrying VideoSDK request after %s", reason)
        if wait > 0:
            time.sleep(wait)


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


def _describe(body: bytes, reason: str | None) -> str:
    """A short, safe summary of an error body (VideoSDK error shapes are undocumented)."""
    try:
        document = orjson.loads(body)
    except ValueError:
        return reason or "error"
    if isinstance(document, dict):
        for key in ("message", "error", "msg"):
            if isinstance(document.get(key), str):
                return str(document[key])[:200]
    return reason or "error"


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
    def __init__(
        self, settings: VideoSDKSettings, pool_size: int = 16, deadline: float | None = None
    ) -> None:
        """``deadline``: seconds one call may take in all (default: the settings'
        ``request_deadline``, else 30 s; the daemon derives it from the poll interval)."""
        self.base_url = settings.base_url
        self.tokens = TokenSource(settings)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._max_bytes = settings.max_response_bytes
        if deadline is None and settings.request_deadline is not None:
            deadline = settings.request_deadline.total_seconds()
        self.deadline = deadline if deadline is not None else DEFAULT_DEADLINE
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
        adapter = DeadlineAdapter(
            pool_connections=1, pool_maxsize=pool_size, max_retries=retry, pool_block=True
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._adapter = adapter
        # what the session's send would pass its adapter (its settings never change)
        self._direct: dict[str, Any] = {
            "stream": True,
            "timeout": self._timeout,
            "verify": True if self.session.verify is None else self.session.verify,
            "cert": self.session.cert,
            "proxies": dict(self.session.proxies),
        }
        # the base URL as requests normalises it (IDNA host, quoting), prepared once
        self._base = self.session.prepare_request(
            requests.Request("GET", self.base_url)
        ).url.rstrip("/")  # type: ignore[union-attr]

    def close(self) -> None:
        self.session.close()

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
        """Like ``get_json``, with the server's ``Date`` header as an aware datetime.

        The whole call (a token re-mint's second request, retries and their waits,
        the body) ends within ``self.deadline`` seconds, or raises DeadlineError.
        """
        with deadlines.within(self.deadline) as deadline:
            token = self.tokens.get()
            response = self._send(path, params, token, endpoint, deadline)
            if response.status_code == 401 and self.tokens.renewable:
                response.close()
                self.tokens.invalidate(token)
                log.info("VideoSDK refused the token (401); minting a new one and retrying once")
                response = self._send(path, params, self.tokens.get(), endpoint, deadline)
            try:
                if response.status_code != 200:
                    body = self._read(response, ERROR_BODY_BYTES, deadline, bounded=False)
                    error = _error_for(response.status_code, _describe(body, response.reason))
                    API_ERRORS.labels(error.kind).inc()
                    raise error
                body = self._read(response, self._max_bytes, deadline, bounded=True)
                return (
                    self._decode(body, response.status_code, endpoint, deadline),
                    server_time(response.headers.get("Date")),
                )
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
        self,
        path: str,
        params: dict[str, Any] | None,
        token: str,
        endpoint: str,
        deadline: Deadline,
    ) -> requests.Response:
        try:
            request = self._request(path, params, token)
            if params:
                response = self.session.send(request, timeout=self._timeout, stream=True)
            else:
                response = self._send_direct(request)
        except DeadlineExceeded as exc:
            if exc.status is None:
                raise self._deadline_error(deadline) from None
            error = _error_for(
                exc.status,
                f"HTTP {exc.status}; retrying after {exc.wait:g}s would pass "
                f"the {deadline.seconds:g}s request deadline",
            )
            API_ERRORS.labels(error.kind).inc()
            raise error from None
        except requests.RequestException as exc:
            if deadline.expired:
                raise self._deadline_error(deadline) from None
            API_ERRORS.labels("network").inc()
            raise TransportError(f"{type(exc).__name__} talking to VideoSDK") from None
        API_REQUESTS.labels(endpoint, str(response.status_code)).inc()
        return response

    def _send_direct(self, request: requests.PreparedRequest) -> requests.Response:
        """A poll's GET straight through the session's adapter: the session's own ``send``
        would only add what a poll has no use for (response hooks, none; storing cookies
        that a poll never sends back; the proxies, resolved once already), a quarter of
        the HTTP client's CPU per poll. A redirect, which VideoSDK is not known to send,
        is followed as the session follows one."""
        response = self._adapter.send(request, **self._direct)
        if not response.is_redirect:
            return response
        full = requests.Request("GET", request.url, headers=dict(request.headers))
        followed = self.session.resolve_redirects(
            response, self.session.prepare_request(full), **self._direct
        )
        history = list(followed)  # each redirect's body read and released, as requests does
        return history[-1] if history else response

    def _read(
        self, response: requests.Response, limit: int, deadline: Deadline, *, bounded: bool
    ) -> bytes:
        """At most ``limit`` bytes of the body (one more if it is longer), while the deadline
        lasts; ``bounded``: a longer body is an error, else it is cut (error answers)."""
        declared = response.headers.get("Content-Length")
        if bounded and declared and declared.isdigit() and int(declared) > limit:
            API_ERRORS.labels("too_large").inc()
            raise BadResponseError(f"response of {declared} bytes exceeds max_response_bytes")
        try:
            body = response.raw.read(limit + 1 if bounded else limit, decode_content=True)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            if deadline.expired:
                raise self._deadline_error(deadline) from None
            API_ERRORS.labels("network").inc()
            raise TransportError(f"{type(exc).__name__} reading VideoSDK response") from None
        if bounded and len(body) > limit:
            API_ERRORS.labels("too_large").inc()
            raise BadResponseError(f"response exceeds max_response_bytes ({limit})")
        return body

    def _decode(self, body: bytes, status: int, endpoint: str, deadline: Deadline) -> Any:
        try:
            return orjson.loads(body)
        except ValueError:  # orjson.JSONDecodeError is one
            pass
        if deadline.expired:  # cut off mid-body without the read noticing (no length given)
            raise self._deadline_error(deadline)
        if bad_text(body):
            try:
                document, repaired = loads_lenient(body)
            except ValueError:
                pass
            else:
                if repaired:
                    API_TEXT_REPLACED.labels(endpoint).inc(repaired)
                    log.debug(
                        "%d strings with invalid text repaired in a %s answer", repaired, endpoint
                    )
                return document
        API_ERRORS.labels("malformed_json").inc()
        raise BadResponseError("response is not valid JSON", status)

    def _deadline_error(self, deadline: Deadline) -> DeadlineError:
        API_ERRORS.labels("deadline").inc()
        return DeadlineError(
            f"no complete answer within the {deadline.seconds:g}s request deadline"
        )

    def __repr__(self) -> str:
        return f"VideoSDKClient({self.base_url!r}, {self.tokens!r})"
