"""The daemon's small HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` for checks,
and read-only APIs such as ``/api/history`` (watchdog.runtime.history_api).

prometheus-client renders the exposition (its WSGI app, so content negotiation
and gzip stay its business); :mod:`watchdog.listener` bounds every request, so
a slow or hostile client never blocks a health check. Loopback by default
(``http.listen``), off when unset: it reveals rule names and counts, not
secrets, but it is nobody else's business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

from watchdog.listener import Handler, Limits, Listener, Request, Response

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, str]]
NO_STORE = (("Cache-Control", "no-store"),)
LIMITS = Limits(max_body=0)  # GET and HEAD only: a body is refused unread


def health_handler(health: Health) -> Callable[[Request], Response]:
    def serve(request: Request) -> Response:
        ok, reason = health()
        return Response.text(200 if ok else 503, reason + "\n", NO_STORE)

    return serve


def metrics_handler(registry: CollectorRegistry = REGISTRY) -> Callable[[Request], Response]:
    app = make_wsgi_app(registry)

    def serve(request: Request) -> Response:
        environ = {
            "REQUEST_METHOD": "GET",  # HEAD too: the listener leaves the body out
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query,
            "HTTP_ACCEPT": request.headers.get("accept", ""),
            "HTTP_ACCEPT_ENCODING": request.headers.get("accept-encoding", ""),
        }
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
            started.append((status, headers))

        body = b"".join(app(environ, start_response))
        status, headers = started[0]
        content_type = dict(headers).get("Content-Type", "text/plain")
        extra = tuple((k, v) for k, v in headers if k.lower() != "content-type")
        return Response(int(status.split()[0]), body, content_type, extra + NO_STORE)

    return serve


class HttpEndpoint:
    """Serves until ``close``; ``url`` is where it listens (port 0 picks a free port)."""

    def __init__(
        self, host: str, port: int, health: Health, more: Mapping[str, Handler] | None = None
    ) -> None:
        routes = {"/metrics": metrics_handler(), "/healthz": health_handler(health), **(more or {})}
        self._listener = Listener(
            host, port, routes, name="http", methods=("GET", "HEAD"), limits=LIMITS, logger=log
        )
        self.host, self.port = host, self._listener.port
        self._listener.start()

    @property
    def url(self) -> str:
        return self._listener.url

    def close(self) -> None:
        self._listener.close()
