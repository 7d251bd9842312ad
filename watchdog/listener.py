"""One bounded, quiet HTTP/1.1 listener for every endpoint the daemon serves.

``/metrics`` and ``/healthz``, VideoSDK's webhooks and the Slack plugin's
interactivity endpoint all face clients we do not control, some the internet.
Each request gets one connection (answered with ``Connection: close``), a
deadline for the whole request (request line, headers and body: a client
trickling a byte a second is cut off), a body cap checked before a byte of it is
read (``Content-Length`` or chunks counted as they stream), and a bounded number
of connections in service: beyond that, new ones wait in the listen backlog
instead of each costing a thread. Anything malformed gets a short status, one
log line through the caller's logger and a count in
``watchdog_http_refused_total``; never a traceback on stderr.

Plugins may use it: it is part of the public plugin API.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from watchdog.obs.telemetry import HTTP_REFUSED

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["Handler", "Limits", "Listener", "Request", "Response"]

_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # no control characters, no folded lines
_LENGTH = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_LINE = 1024  # longest chunk-size or trailer line
_TRAILERS = 32
_CHUNKS = 10_000  # a body in more pieces than this is refused, whatever its size
_LINGER_SECONDS = 2.0  # after an early answer, read and drop what the client still sends...
_LINGER_BYTES = 8 << 20  # ...so it reads our answer instead of a connection reset
_POLL = 0.2  # how often the accept loop looks whether it should stop
_DETAIL = 160  # longest client-supplied text quoted in a log line


@dataclass(frozen=True)
class Limits:
    """What one listener allows; the defaults suit small API and webhook requests."""

    max_body: int = 64 * 1024  # bytes; a larger body gets 413 before it is read
    timeout: float = 5.0  # seconds to receive one whole request, and to send the answer
    connections: int = 16  # requests in service at once; more wait in the listen backlog
    backlog: int = 512  # connections the kernel holds until one is in service


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    query: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    client: str  # the peer's address


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, text.encode(), headers=headers)

    @classmethod
    def json(cls, status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        body = b"" if value is None else json.dumps(value).encode()
        return cls(status, body, "application/json", headers)


Handler = Callable[[Request], Response]


class Listener:
    """Serves ``routes`` (path to handler) on ``host:port`` from ``start`` until ``close``.

    Port 0 picks a free port (``port`` and ``url`` tell which). Requests with
    another path get 404, other methods 405, both before any body is read.
    ``name`` labels log lines and the refusal counter.
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Handler],
        *,
        name: str,
        methods: Collection[str] = ("POST",),
        limits: Limits | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.host, self.name = host, name
        self.routes = dict(routes)
        self.methods = frozenset(methods)
        self.limits = limits = limits or Limits()
        self.log = logger or logging.getLogger(__name__)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=limits.backlog)
        self._socket.settimeout(_POLL)
        self.port = int(self._socket.getsockname()[1])
        self._slots = threading.BoundedSemaphore(limits.connections)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=name, daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stops accepting; requests in service finish within their own deadline."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._socket.close()

    def _refused(self, reason: str, client: str, detail: str) -> None:
        """One line and one count for a request the listener itself turned away."""
        HTTP_REFUSED.labels(self.name, reason).inc()
        self.log.warning("%s: refused a request from %s: %s", self.name, client, detail[:_DETAIL])

    def _accept(self) -> None:
        failing = False
        while not self._closing.is_set():
            if not self._slots.acquire(timeout=_POLL):
                continue  # all in service: the kernel holds newcomers in the backlog
            try:
                conn, address = self._socket.accept()
            except TimeoutError:
                self._slots.release()
                continue
            except OSError as exc:  # out of file descriptors, or closed under us
                self._slots.release()
                if not failing and not self._closing.is_set():
                    self.log.warning("%s: cannot accept connections: %s", self.name, exc)
                failing = True
                self._closing.wait(_POLL)
                continue
            failing = False
            try:
                threading.Thread(
                    target=self._converse, args=(conn, address), name=self.name, daemon=True
                ).start()
            except RuntimeError:  # no thread to be had: refuse this one, keep serving
                conn.close()
                self._slots.release()

    def _converse(self, conn: socket.socket, address: Any) -> None:
        try:
            _Exchange(conn, address, self)
        except Exception:  # a bug of ours, not the client's doing
            self.log.exception("%s: handling a request failed", self.name)
        finally:
            conn.close()
            self._slots.release()


class _Refusal(Exception):
    def __init__(self, status: int, detail: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


class _DeadlineReader(io.RawIOBase):
    """The socket, read only while the request's deadline lasts."""

    def __init__(self, conn: socket.socket, deadline: float) -> None:
        super().__init__()
        self.conn, self.deadline = conn, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self.conn.settimeout(left)
        return self.conn.recv_into(buffer)


class _Writer(io.BufferedIOBase):
    """Unbuffered and whole: an interim ``100 Continue`` goes out before the body is read."""

    def __init__(self, conn: socket.socket) -> None:
        super().__init__()
        self.conn = conn

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        self.conn.sendall(data)
        return memoryview(data).nbytes


class _Exchange(BaseHTTPRequestHandler):
    """One request and its answer; http.server parses, we bound and route."""

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # no HTTP/0.9: every answer has a status line
    server_version = "videosdk-watchdog"
    sys_version = ""

    def __init__(self, conn: socket.socket, address: Any, listener: Listener) -> None:
        """BaseRequestHandler's life cycle, with the listener in place of a socketserver."""
        self.listener = listener
        self.settled = False  # the whole request was read: nothing to drain before closing
        self.request, self.client_address = conn, address
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        self.connection = self.request
        deadline = time.monotonic() + self.listener.limits.timeout
        self.rfile = io.BufferedReader(_DeadlineReader(self.request, deadline))
        self.wfile = _Writer(self.request)

    def handle(self) -> None:
        try:
            self.handle_one_request()
        except OSError as exc:  # reset, broken pipe: the client went away
            self.listener.log.debug("%s: connection lost: %s", self.listener.name, exc)
            self.settled = True

    def finish(self) -> None:
        self.request.settimeout(self.listener.limits.timeout)
        super().finish()
        if not self.settled:
            _linger(self.request)

    def _serve(self) -> None:
        """Every method comes here: the route decides what is allowed."""
        try:
            handler = self._route()
            body = self._body()
        except _Refusal as refusal:
            self._refuse(refusal)
            return
        request = Request(
            method=self.command,
            path=self.path.partition("?")[0],
            query=self.path.partition("?")[2],
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client=self.client_address[0],
        )
        try:
            response = handler(request)
        except Exception:
            self.listener.log.exception("%s: handling %s failed", self.listener.name, request.path)
            response = Response.text(500, "internal error\n")
        self._reply(response)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def handle_expect_100(self) -> bool:
        """Promise ``100 Continue`` only to a body we would read."""
        try:
            self._route()
            self._declared_length()
        except _Refusal as refusal:
            self._refuse(refusal)
            return False
        return super().handle_expect_100()

    def _route(self) -> Handler:
        """The handler for a well-formed head; _Refusal otherwise (nothing of the body read)."""
        if not _well_formed(self.headers):
            raise _Refusal(400, "malformed header fields")
        handler = self.listener.routes.get(self.path.partition("?")[0])
        if handler is None:
            raise _Refusal(404, "not found")
        if self.command not in self.listener.methods:
            allow = ", ".join(sorted(self.listener.methods))
            raise _Refusal(405, f"use {allow}", (("Allow", allow),))
        return handler

    def _declared_length(self) -> int | None:
        """The body's length from Content-Length, None if chunked; _Refusal if not acceptable."""
        limit = self.listener.limits.max_body
        codings = ",".join(self.headers.get_all("Transfer-Encoding") or [])
        lengths = self.headers.get_all("Content-Length") or []
        if codings:
            if lengths:
                raise _Refusal(400, "both Transfer-Encoding and Content-Length")
            if [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
                raise _Refusal(501, "transfer coding other than chunked")
            return None
        if not lengths:
            if self.command in ("POST", "PUT", "PATCH"):
                raise _Refusal(411, "no Content-Length")
            return 0
        if len(lengths) > 1 or not _LENGTH.fullmatch(lengths[0].strip()):
            raise _Refusal(400, f"Content-Length {', '.join(lengths)[:40]!r}")
        length = int(lengths[0])
        if length > limit:
            raise _Refusal(413, f"a body of {length} bytes (at most {limit})")
        return length

    def _body(self) -> bytes:
        length = self._declared_length()
        if length is None:
            body = self._chunks()
        else:
            body = self.rfile.read(length)
            if len(body) < length:
                raise _Refusal(400, f"the body ended after {len(body)} of {length} bytes")
        self.settled = True
        return body

    def _chunks(self) -> bytes:
        limit = self.listener.limits.max_body
        parts: list[bytes] = []
        total = 0
        for _ in range(_CHUNKS):
            line = self.rfile.readline(_LINE)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
                raise _Refusal(400, "a malformed chunk size line")
            size = int(size_text, 16)
            if size == 0:
                self._trailers()
                return b"".join(parts)
            total += size
            if total > limit:
                raise _Refusal(413, f"a chunked body over {limit} bytes")
            data = self.rfile.read(size)
            if len(data) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _Refusal(400, "a chunk shorter than announced")
            parts.append(data)
        raise _Refusal(413, f"a body in more than {_CHUNKS} chunks")

    def _trailers(self) -> None:
        for _ in range(_TRAILERS):
            line = self.rfile.readline(_LINE)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                raise _Refusal(400, "a malformed trailer")
        raise _Refusal(431, "too many trailers")

    def _refuse(self, refusal: _Refusal) -> None:
        if refusal.status in (404, 405):  # an ordinary answer, not an attack
            self.listener.log.debug("%s: %s %r", self.listener.name, refusal.status, self.path)
            self._reply(Response.text(refusal.status, refusal.detail + "\n", refusal.headers))
        else:
            self.send_error(refusal.status, refusal.detail)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's errors (bad request line, headers) and ours: one line, a short answer."""
        status = HTTPStatus(code)
        reason = "too_large" if code in (413, 414, 431) else "malformed"
        self.listener._refused(reason, self.client_address[0], f"{code} {message or status.phrase}")
        self._reply(Response.text(code, status.phrase + "\n"))

    def log_error(self, format: str, *args: Any) -> None:
        """Only http.server's timeout lands here (``send_error`` is ours)."""
        detail = f"cut off after {self.listener.limits.timeout:g}s"
        self.listener._refused("timeout", self.client_address[0], detail)
        self.settled = True  # nothing more to wait for

    def log_message(self, format: str, *args: Any) -> None:
        self.listener.log.debug(
            "%s: %s " + format, self.listener.name, self.address_string(), *args
        )

    def _reply(self, response: Response) -> None:
        self.request.settimeout(self.listener.limits.timeout)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


def _well_formed(headers: Message) -> bool:
    """Names are tokens, values free of control characters and folds, every line a field.

    The email parser behind http.server takes a line without a colon as the start
    of a body: the fields after it would silently vanish.
    """
    if headers.defects or headers.get_payload():
        return False
    return all(_NAME.fullmatch(k) and _VALUE.fullmatch(v) for k, v in headers.items())


def _linger(conn: socket.socket) -> None:
    """Drops what the client still sends, briefly: closing with unread data would reset it."""
    scratch = bytearray(64 * 1024)
    end = time.monotonic() + _LINGER_SECONDS
    try:
        conn.shutdown(socket.SHUT_WR)
        for _ in range(_LINGER_BYTES // len(scratch)):
            left = end - time.monotonic()
            if left <= 0:
                return
            conn.settimeout(left)
            if not conn.recv_into(scratch):
                return
    except OSError:
        return
