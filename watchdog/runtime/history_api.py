"""``GET /api/history``: the alert history as JSON, with the filters of ``history``.

Read-only, on the daemon's own listener (``http.listen``, loopback by default). The
query string is hostile until bounded: at most ``MAX_QUERY`` bytes and one of each known
parameter, each value at most ``MAX_VALUE`` characters, unknown parameters refused
with 400; a page holds at most ``watchdog.state.history.MAX_LIMIT`` events, and each
statement behind it runs on a read-only connection within a time budget (503 past it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from watchdog.durations import format_time, parse_instant
from watchdog.listener import Request, Response
from watchdog.state.database import QueryTimeout, database_errors
from watchdog.state.history import MAX_LIMIT, Filters, History

log = logging.getLogger(__name__)

MAX_QUERY = 2048  # bytes of query string
MAX_VALUE = 256  # characters of one parameter
PARAMETERS = ("rule", "meeting", "participant", "kind", "since", "until", "limit")
NO_STORE = (("Cache-Control", "no-store"),)


class BadQuery(ValueError):
    """The query string is not one ``/api/history`` answers: 400, and why."""


def parse_filters(query: str, now: datetime) -> Filters:
    """``rule=...&since=7d&limit=50`` as Filters; BadQuery says what is wrong."""
    if len(query) > MAX_QUERY:
        raise BadQuery(f"the query string is longer than {MAX_QUERY} bytes")
    try:
        pairs = parse_qsl(query, strict_parsing=bool(query), max_num_fields=len(PARAMETERS))
    except ValueError as exc:
        raise BadQuery(f"malformed query string ({exc})") from None
    found: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMETERS:
            raise BadQuery(f"unknown parameter {name[:40]!r}; known: {', '.join(PARAMETERS)}")
        if name in found:
            raise BadQuery(f"{name} given twice")
        if len(value) > MAX_VALUE or not value.isprintable():
            raise BadQuery(f"{name}: at most {MAX_VALUE} printable characters")
        found[name] = value
    try:
        since = parse_instant(found["since"], now) if "since" in found else None
        until = parse_instant(found["until"], now) if "until" in found else None
    except ValueError as exc:
        raise BadQuery(str(exc)) from None
    limit = 100
    if "limit" in found:
        text = found["limit"]
        if (
            not (text.isascii() and text.isdigit())
            or len(text) > 6
            or not 1 <= int(text) <= MAX_LIMIT
        ):
            raise BadQuery(f"limit: a whole number from 1 to {MAX_LIMIT}")
        limit = int(text)
    return Filters(
        since=since,
        until=until,
        rule=found.get("rule"),
        meeting=found.get("meeting"),
        participant=found.get("participant"),
        kind=found.get("kind"),
        limit=limit,
    )


def history_handler(
    history: History, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[Request], Response]:
    def serve(request: Request) -> Response:
        try:
            filters = parse_filters(request.query, clock())
        except BadQuery as exc:
            return Response.json(400, {"error": str(exc)}, NO_STORE)
        try:
            page = history.query(filters, clock())
        except QueryTimeout as exc:
            return Response.json(503, {"error": f"{exc}: narrow the filters"}, NO_STORE)
        except database_errors():  # the storage fault is logged and counted by the store
            return Response.json(503, {"error": "the state database failed"}, NO_STORE)
        body: dict[str, object] = {"events": [e.to_json() for e in page.events]}
        if page.more and page.events:
            body["next_until"] = format_time(page.events[0].at)
        return Response.json(200, body, NO_STORE)

    return serve
