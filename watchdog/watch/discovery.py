"""Discovery by polling: which participants are in the rooms we watch, right now.

Each pass lists the ongoing sessions (``GET /v2/sessions``, per configured
room or for all rooms) and each one's active participants (``GET
/v2/sessions/{id}/participants/active``), page by page and only as far as
needed, then reconciles the watch list: newcomers are watched, those gone
leave. A listing that fails never makes anyone leave: a pass that could not
see a session says nothing about who is in it.

A pass costs what the ongoing calls cost, not the account's history. The
listing is asked for ``status=ongoing`` (VideoSDK's Server SDK documents the
filter; its REST page does not, so every session's own status is still
checked). Where the filter is not honoured, the listing's newest-first order
bounds the walk: a session not seen by the last complete pass must have
started since (less a margin for clock skew and listing lag), so paging stops
at the first page that reaches back before that. Sessions the last pass saw
ongoing and this one did not reach are kept and checked one by one (their
active participants; a 404 asks the session itself whether it ended). A
listing found out of order is walked whole from then on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from watchdog.alerts import SESSION_ENDED
from watchdog.config.settings import WatchSettings
from watchdog.durations import parse_time
from watchdog.obs.telemetry import DISCOVERY_RUNS, DISCOVERY_SECONDS
from watchdog.state.faults import StorageFault
from watchdog.state.rows import Key
from watchdog.videosdk.client import BadResponseError, NotFoundError, VideoSDKClient, VideoSDKError
from watchdog.videosdk.stats import clip_text
from watchdog.watch.watchlist import LEFT, Seen, WatchList

log = logging.getLogger(__name__)

PER_PAGE = 100
MAX_PAGES = 10_000  # a pageInfo that never ends must not loop for ever
ROOM_ID = re.compile(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}")
# how far before the last complete listing a session may have started and still be new to
# us: clock skew between VideoSDK's hosts, and a session that appears in the listing late
LISTING_MARGIN = timedelta(minutes=5)


def pages(
    client: VideoSDKClient, path: str, params: dict[str, Any], endpoint: str
) -> Iterator[tuple[list[dict[str, Any]], datetime | None]]:
    """Each page's ``data`` items and the server's time, fetched only when the caller asks.

    ``data`` may be one object rather than a list (a stored copy of VideoSDK's docs
    shows the active-participants answer that way): it is then a page of one.
    """
    page = 1
    while True:
        body, served_at = client.get_json_at(
            path, {**params, "page": page, "perPage": PER_PAGE}, endpoint=endpoint
        )
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise BadResponseError(f"{path}: response has no 'data' list or object")
        items = [item for item in data if isinstance(item, dict)]
        yield items, served_at
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


def session_pages(
    client: VideoSDKClient, query: dict[str, str]
) -> Iterator[tuple[list[dict[str, Any]], datetime | None]]:
    """Pages of the sessions listing for a ``room_id``/``custom_room_id`` query, ongoing only
    where the API honours the filter."""
    names = {"room_id": "roomId", "custom_room_id": "customRoomId"}
    params = {names[key]: value for key, value in query.items()}
    return pages(client, "/v2/sessions/", {**params, "status": "ongoing"}, "sessions")


def iter_rooms(client: VideoSDKClient) -> Iterator[dict[str, Any]]:
    for page, _ in pages(client, "/v2/rooms", {}, "rooms"):
        yield from page


def active_participants(client: VideoSDKClient, session_id: str) -> list[dict[str, Any]]:
    """Who is in the session now; VideoSDK answers 404 when nobody is."""
    path = f"/v2/sessions/{quote(session_id, safe='')}/participants/active"
    found: list[dict[str, Any]] = []
    try:
        for page, _ in pages(client, path, {}, "active_participants"):
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


def session_ended(client: VideoSDKClient, session_id: str) -> bool:
    """Whether VideoSDK says the session is over (404: it does not know it, so over too)."""
    try:
        session = client.get_json(f"/v2/sessions/{quote(session_id, safe='')}", endpoint="session")
    except NotFoundError:
        return True
    return isinstance(session, dict) and not is_ongoing(session)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(slots=True)
class Listing:
    """One query's ongoing sessions (session id -> room id) and how far the walk went."""

    ongoing: dict[str, str | None] = field(default_factory=dict)
    served_at: datetime | None = None  # the server's time at the first page
    truncated: bool = False  # stopped at sessions older than the last complete listing
    out_of_order: bool = False


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
        # per listing query: the server time of its last complete walk, and what was ongoing
        self._listed_at: dict[str, datetime] = {}
        self._known: dict[str, dict[str, str | None]] = {}
        self._ordered = True  # the listing has always come newest first
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
        return Seen(room_id=room_id, name=clip_text(name), custom_room_id=custom)

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
        carried: set[str] = set()  # ongoing last pass, not reached by this pass's listing
        self._learn_room_names()
        queries: list[dict[str, str]] = [{}]
        if self._rooms:
            queries = [
                {"room_id": r} if ROOM_ID.fullmatch(r) else {"custom_room_id": r}
                for r in sorted(self._rooms)
            ]
        for query in queries:
            name = ",".join(f"{k}={v}" for k, v in sorted(query.items()))
            try:
                listing = self._list(query, self._listed_at.get(name))
            except VideoSDKError as exc:
                report.complete = False
                log.warning("listing sessions %s failed: %s", query or "of all rooms", exc)
                continue
            listed = listing.ongoing
            if listing.truncated:
                known = self._known.get(name, {})
                carried.update(s for s in known if s not in listed)
                listed = {**{s: known[s] for s in carried if s in known}, **listed}
            if listing.out_of_order and self._ordered:
                self._ordered = False
                log.warning(
                    "the sessions listing is not newest first: each discovery pass now reads "
                    "all of it"
                )
            ongoing.update(listed)
            self._known[name] = listed
            if listing.served_at is not None:
                self._listed_at[name] = listing.served_at
        report.sessions = len(ongoing)
        found: dict[Key, Seen] = {}
        ids = list(ongoing)
        for session_id, members in zip(ids, self._pool.map(self._members, ids), strict=True):
            if members is None:
                report.failed_sessions.add(session_id)
                continue
            if not members and session_id in carried and self._ended(session_id, report):
                del ongoing[session_id]
                for known in self._known.values():
                    known.pop(session_id, None)
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

    def _list(self, query: dict[str, str], listed_at: datetime | None) -> Listing:
        """Walk one query's sessions listing, stopping where only older sessions can follow."""
        listing = Listing()
        cutoff = listed_at - LISTING_MARGIN if listed_at is not None else None
        previous: datetime | None = None
        for page, served_at in session_pages(self.client, query):
            if listing.served_at is None:
                listing.served_at = served_at
            for session in page:
                started = parse_time(session.get("start"))
                if started is not None:
                    listing.out_of_order |= previous is not None and started > previous
                    previous = started
                session_id = _text(session.get("id")) or _text(session.get("sessionId"))
                if session_id is None or not is_ongoing(session):
                    continue
                room_id = _text(session.get("roomId"))
                if room_id and "custom_room_id" in query:
                    self.custom_ids[room_id] = query["custom_room_id"]
                listing.ongoing[session_id] = room_id
            ordered = self._ordered and not listing.out_of_order
            if ordered and cutoff is not None and previous is not None and previous < cutoff:
                listing.truncated = True
                break
        return listing

    def _ended(self, session_id: str, report: DiscoveryReport) -> bool:
        """A carried session with nobody active: over, or empty for now?"""
        try:
            return session_ended(self.client, session_id)
        except VideoSDKError as exc:
            report.failed_sessions.add(session_id)
            log.warning("checking the session failed: %s", exc, extra={"session_id": session_id})
            return False

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
