"""The daemon's small HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` for checks.

prometheus-client renders the exposition; we only add the health route and a
threaded server so a slow scrape never blocks a health check. Loopback by
default (``http.listen``), off when unset: it reveals rule names and counts,
not secrets, but it is nobody else's business.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]
StartResponse = Callable[..., Any]


def make_app(health: Health, registry: CollectorRegistry = REGISTRY) -> Any:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "use GET\n", [("Allow", "GET")])
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, reason = health()
            status = "200 OK" if ok else "503 Service Unavailable"
            return _text(start_response, status, reason + "\n")
        return _text(start_response, "404 Not Found", "try /metrics or /healthz\n")

    return app


def _text(
    start_response: StartResponse,
    status: str,
    body: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = body.encode()
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
        *(extra or []),
    ]
    start_response(status, headers)
    return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every 15 s would drown the journal; errors still go to stderr."""


class HttpEndpoint:
    """Serves until ``close``; ``url`` is where it listens (port 0 picks a free port)."""

    def __init__(self, host: str, port: int, health: Health) -> None:
        server_class: type[_Server] = _Server
        if ":" in host:

            class _Server6(_Server):
                address_family = socket.AF_INET6

            server_class = _Server6
        self._server = make_server(
            host, port, make_app(health), server_class=server_class, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="http",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
