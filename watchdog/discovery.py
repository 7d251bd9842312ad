"""Discovery by polling: which participants are in the rooms we watch, right now.

Each pass lists the ongoing sessions (``GET /v2/sessions``, per configured
room or for all rooms) and each one's active participants (``GET
/v2/sessions/{id}/participants/active``), page by page and only as far as
needed, then reconciles the watch list: newcomers are watched, those gone
leave. A listing that fails never makes anyone leave: a pass that could not
see a session says nothing about who is in it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from watchdog.settings import WatchSettings
from watchdog.storagefaults import StorageFault
from watchdog.store import Key
from watchdog.telemetry import DISCOVERY_RUNS, DISCOVERY_SECONDS
from watchdog.videosdk import BadResponseError, NotFoundError, VideoSDKClient, VideoSDKError
from watchdog.watchlist import LEFT, SESSION_ENDED, Seen, WatchList

log = logging.getLogger(__name__)

PER_PAGE = 100
MAX_PAGES = 10_000  # a pageInfo that never ends must not loop for ever
ROOM_ID = re.compile(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}")


def pages(
    client: VideoSDKClient, path: str, params: dict[str, Any], endpoint: str
) -> Iterator[list[dict[str, Any]]]:
    """The ``data`` items of each page, fetched only when the caller asks for the next."""
    page = 1
    while True:
        body = client.get_json(
            path, {**params, "page": page, "perPage": PER_PAGE}, endpoint=endpoint
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise BadResponseError(f"{path}: response has no 'data' list")
        items = [item for item in data if isinstance(item, dict)]
        yield items
        info = body.get("pageInfo")
        last = info.get("lastPage") if isinstance(info, dict) else None
        if not data or page >= MAX_PAGES:
            return
        if isinstance(last, int) and not isinstance(last, bool):
            if page >= last:
                return
        elif len(data) < PER_PAGE:
            return
        page += 1


def iter_sessions(
    client: VideoSDKClient, room_id: str | None = None, custom_room_id: str | None = None
) -> Iterator[dict[str, Any]]:
    params = {
        key: value
        for key, value in (("roomId", room_id), ("customRoomId", custom_room_id))
        if value
    }
    for page in pages(client, "/v2/sessions/", params, "sessions"):
        yield from page


def iter_rooms(client: VideoSDKClient) -> Iterator[dict[str, Any]]:
    for page in pages(client, "/v2/rooms", {}, "rooms"):
        yield from page


def active_participants(client: VideoSDKClient, session_id: str) -> list[dict[str, Any]]:
    """Who is in the session now; VideoSDK answers 404 when nobody is."""
    path = f"/v2/sessions/{quote(session_id, safe='')}/participants/active"
    found: list[dict[str, Any]] = []
    try:
        for page in pages(client, path, {}, "active_participants"):
            for item in page:
                # documented: sessions each holding "participants"; tolerate a flat list too
                members = item.get("participants")
                if isinstance(members, list):
                    found.extend(m for m in members if isinstance(m, dict))
                elif "participantId" in item:
                    found.append(item)
    except NotFoundError:
        return []
    return found


def is_ongoing(session: dict[str, Any]) -> bool:
    status = session.get("status")
    if isinstance(status, str):
        return status == "ongoing"
    return session.get("end") is None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(slots=True)
class DiscoveryReport:
    started: datetime
    seconds: float = 0.0
    sessions: int = 0
    participants: int = 0
    joined: int = 0
    left: int = 0
    complete: bool = True
    failed_sessions: set[str] = field(default_factory=set)


class Discovery:
    """Polls VideoSDK for who is in the watched rooms and reconciles the watch list."""

    def __init__(
        self,
        client: VideoSDKClient,
        settings: WatchSettings,
        watchlist: WatchList,
        concurrency: int = 8,
    ) -> None:
        self.client = client
        self.settings = settings
        self.watchlist = watchlist
        self.custom_ids: dict[str, str | None] = {}  # roomId -> customRoomId, as learned
        self.last: DiscoveryReport | None = None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="discover")
        self._rooms = frozenset(settings.rooms)
        self._missing_rooms: set[str] = set()  # configured customRoomIds no room has (yet)
        filters = settings.filters
        self._needs_room_names = bool(settings.all_rooms or not settings.rooms) and bool(
            filters.include_rooms or filters.exclude_rooms
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def in_scope(self, room_id: str | None) -> bool:
        """Whether a room is one we watch (``rooms:``), or any room when none are named."""
        if not self._rooms:
            return True
        if room_id is None:
            return False
        return room_id in self._rooms or self.custom_ids.get(room_id) in self._rooms

    def seen(self, room_id: str | None, name: str | None) -> Seen:
        custom = self.custom_ids.get(room_id) if room_id else None
        return Seen(room_id=room_id, name=name, custom_room_id=custom)

    def run(self) -> DiscoveryReport:
        """One pass; never raises, so the scheduler keeps going."""
        report = DiscoveryReport(started=datetime.now(UTC))
        start = time.monotonic()
        try:
            self._run(report)
            DISCOVERY_RUNS.labels("ok" if report.complete else "partial").inc()
        except StorageFault:  # counted and logged once by the store
            DISCOVERY_RUNS.labels("failed").inc()
        except Exception:
            DISCOVERY_RUNS.labels("failed").inc()
            log.exception("discovery pass failed")
        report.seconds = time.monotonic() - start
        DISCOVERY_SECONDS.observe(report.seconds)
        self.last = report
        log.debug(
            "discovery: %d ongoing sessions, %d participants, %d joined, %d left in %.2fs%s",
            report.sessions,
            report.participants,
            report.joined,
            report.left,
            report.seconds,
            "" if report.complete else " (incomplete: nobody was removed for what was not seen)",
        )
        return report

    def _run(self, report: DiscoveryReport) -> None:
        ongoing: dict[str, str | None] = {}  # session id -> room id
        self._learn_room_names()
        queries: list[dict[str, str]] = [{}]
        if self._rooms:
            queries = [
                {"room_id": r} if ROOM_ID.fullmatch(r) else {"custom_room_id": r}
                for r in sorted(self._rooms)
            ]
        for query in queries:
            try:
                for session in iter_sessions(self.client, **query):
                    session_id = _text(session.get("id")) or _text(session.get("sessionId"))
                    if session_id is None or not is_ongoing(session):
                        continue
                    room_id = _text(session.get("roomId"))
                    if room_id and "custom_room_id" in query:
                        self.custom_ids[room_id] = query["custom_room_id"]
                    ongoing[session_id] = room_id
            except VideoSDKError as exc:
                report.complete = False
                log.warning("listing sessions %s failed: %s", query or "of all rooms", exc)
        report.sessions = len(ongoing)
        found: dict[Key, Seen] = {}
        ids = list(ongoing)
        for session_id, members in zip(ids, self._pool.map(self._members, ids), strict=True):
            if members is None:
                report.failed_sessions.add(session_id)
                continue
            for member in members:
                participant = _text(member.get("participantId")) or _text(member.get("id"))
                if participant is None:
                    continue
                found[(session_id, participant)] = self.seen(
                    ongoing[session_id], _text(member.get("name"))
                )
        report.participants = len(found)

        def gone(key: Key) -> str | None:
            if key[0] in report.failed_sessions:
                return None
            if key[0] in ongoing:
                return LEFT
            return SESSION_ENDED if report.complete else None

        report.joined, report.left = self.watchlist.reconcile(found, gone, report.started)

    def _learn_room_names(self) -> None:
        """roomId -> customRoomId from ``GET /v2/rooms``, for filters and webhooks that name
        rooms by customRoomId; with ``rooms:`` it stops reading as soon as all are known."""
        unknown = {r for r in self._rooms if not ROOM_ID.fullmatch(r)} - set(
            self.custom_ids.values()
        )
        if not (self._needs_room_names or unknown):
            return
        try:
            for room in iter_rooms(self.client):
                room_id = _text(room.get("roomId"))
                if room_id:
                    custom = _text(room.get("customRoomId"))
                    self.custom_ids[room_id] = custom
                    unknown.discard(custom or "")
                if not self._needs_room_names and not unknown:
                    return
        except VideoSDKError as exc:
            log.warning("listing rooms failed: %s; room names use what is known", exc)
            return
        if unknown and unknown != self._missing_rooms:
            log.warning("no room has the customRoomId %s", ", ".join(sorted(unknown)))
        self._missing_rooms = unknown

    def _members(self, session_id: str) -> list[dict[str, Any]] | None:
        try:
            return active_participants(self.client, session_id)
        except VideoSDKError as exc:
            log.warning(
                "listing active participants failed: %s", exc, extra={"session_id": session_id}
            )
            return None
