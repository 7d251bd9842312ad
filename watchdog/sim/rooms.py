"""The simulator's rooms, sessions and who is in them, on the simulator's sample clock.

Everything is scheduled in sample seconds (the simulator's clock), so a test
can lay out a day of joins and leaves up front and step through it: the
sessions listing, the active-participants listing and the webhooks all
answer for "now". Webhooks are signed like VideoSDK's (base64 RSA-SHA256,
PKCS#1 v1.5, over the raw body) with a key made at first use, whose public
half ``GET /v2/public/rsa-public-key`` serves as ``{"publicKey": PEM}``.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

log = logging.getLogger(__name__)

Key = tuple[str, str]
NO_ACTIVE = "No active participants found"
DEFAULT_PER_PAGE = 20  # VideoSDK's documented default


@dataclass(slots=True)
class Room:
    room_id: str
    custom_room_id: str | None
    created: float


@dataclass(slots=True)
class Session:
    session_id: str
    room_id: str
    start: float
    end: float | None = None

    def ongoing(self, now: float) -> bool:
        return self.start <= now and (self.end is None or self.end > now)


@dataclass(slots=True)
class Member:
    name: str
    timelog: list[list[float | None]] = field(default_factory=list)  # [start, end or None]

    def active(self, now: float) -> bool:
        return any(s is not None and s <= now and (e is None or e > now) for s, e in self.timelog)

    def seen(self, now: float) -> bool:
        return any(s is not None and s <= now for s, _ in self.timelog)


def _page(query: dict[str, str]) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        value = query.get(name, "")
        return int(value) if value.isdigit() and int(value) > 0 else default

    return number("page", 1), min(number("perPage", DEFAULT_PER_PAGE), 1000)


def paginate(items: list[Any], query: dict[str, str]) -> dict[str, Any]:
    page, per_page = _page(query)
    total = len(items)
    return {
        "pageInfo": {
            "currentPage": page,
            "perPage": per_page,
            "lastPage": max(1, math.ceil(total / per_page)),
            "total": total,
        },
        "data": items[(page - 1) * per_page : page * per_page],
    }


class Rooms:
    """Thread-safe state; ``now`` is always passed in by the simulator (sample seconds)."""

    def __init__(self, zero: datetime) -> None:
        self.zero = zero
        self.webhook_url: str | None = None
        self.deliveries: list[tuple[str, int]] = []  # (webhookType, HTTP status or 0)
        self._lock = threading.RLock()
        self._rooms: dict[str, Room] = {}
        self._sessions: dict[str, Session] = {}
        self._members: dict[str, dict[str, Member]] = {}
        self._events: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._key: rsa.RSAPrivateKey | None = None
        self._http = requests.Session()
        # VideoSDK's REST page lists no status filter on the sessions listing (its Server SDK
        # does), and one stored copy of its docs shows the active-participants `data` as one
        # object: both are switches here, so discovery is tested against either reading
        self.honour_status_filter = True
        self.active_data_as_object = False
        self.sessions_newest_first = True  # no order is documented; False lists oldest first

    # -- scheduling ------------------------------------------------------------------

    def add_room(self, room_id: str, custom_room_id: str | None, now: float) -> None:
        with self._lock:
            self._rooms[room_id] = Room(room_id, custom_room_id, now)

    def start_session(self, session_id: str, room_id: str, at: float) -> None:
        with self._lock:
            if room_id not in self._rooms:
                raise KeyError(f"unknown room {room_id!r}")
            self._sessions[session_id] = Session(session_id, room_id, at)
            self._members.setdefault(session_id, {})
            self._event(at, "session-started", session_id, None, None)

    def join(self, session_id: str, participant_id: str, name: str, at: float) -> None:
        with self._lock:
            session = self._session(session_id)
            member = self._members[session_id].setdefault(participant_id, Member(name))
            if member.timelog and member.timelog[-1][1] is None:
                raise ValueError(f"{participant_id} is already in {session_id}")
            member.timelog.append([max(at, session.start), None])
            self._event(at, "participant-joined", session_id, participant_id, name)

    def leave(self, session_id: str, participant_id: str, at: float) -> None:
        with self._lock:
            member = self._members.get(session_id, {}).get(participant_id)
            if member is None or not member.timelog or member.timelog[-1][1] is not None:
                raise KeyError(f"{participant_id} is not in {session_id}")
            member.timelog[-1][1] = at
            self._event(at, "participant-left", session_id, participant_id, member.name)

    def end_session(self, session_id: str, at: float) -> None:
        """The session ends; whoever is still in it leaves at that moment."""
        with self._lock:
            session = self._session(session_id)
            for participant_id, member in self._members[session_id].items():
                if member.timelog and member.timelog[-1][1] is None:
                    self.leave(session_id, participant_id, at)
            session.end = at
            self._event(at, "session-ended", session_id, None, None)

    def room_of(self, session_id: str) -> str | None:
        with self._lock:
            session = self._sessions.get(session_id)
            return session.room_id if session else None

    def active(self, now: float) -> set[Key]:
        """Ground truth: who is in a session right now."""
        with self._lock:
            return {
                (sid, pid)
                for sid, members in self._members.items()
                if self._sessions[sid].ongoing(now)
                for pid, member in members.items()
                if member.active(now)
            }

    def _session(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise KeyError(f"unknown session {session_id!r}")
        return session

    def _event(
        self, at: float, kind: str, session_id: str, participant_id: str | None, name: str | None
    ) -> None:
        data: dict[str, Any] = {
            "meetingId": self._sessions[session_id].room_id,
            "sessionId": session_id,
        }
        if participant_id is not None:
            data["participantId"] = participant_id
            data["participantName"] = name
        heapq.heappush(self._events, (at, next(self._seq), {"webhookType": kind, "data": data}))

    # -- the API documents -------------------------------------------------------------

    def _iso(self, seconds: float | None) -> str | None:
        if seconds is None:
            return None
        moment = self.zero + timedelta(seconds=seconds)
        return moment.isoformat(timespec="milliseconds")[:-6] + "Z"

    def _session_doc(self, session: Session, now: float, active_only: bool) -> dict[str, Any]:
        participants = []
        for pid, member in self._members.get(session.session_id, {}).items():
            if not (member.active(now) if active_only else member.seen(now)):
                continue
            timelog = [
                {"start": self._iso(s), "end": self._iso(e) if e is not None and e <= now else None}
                for s, e in member.timelog
                if s is not None and s <= now
            ]
            participants.append({"participantId": pid, "name": member.name, "timelog": timelog})
        ongoing = session.ongoing(now)
        return {
            "id": session.session_id,
            "roomId": session.room_id,
            "start": self._iso(session.start),
            "end": None if ongoing else self._iso(session.end),
            "status": "ongoing" if ongoing else "ended",
            "participants": participants,
            "links": {
                "get_room": f"/v2/rooms/{session.room_id}",
                "get_session": f"/v2/sessions/{session.session_id}",
            },
        }

    def sessions(self, query: dict[str, str], now: float) -> dict[str, Any]:
        """``GET /v2/sessions``: started sessions, newest first, filtered by room and status."""
        with self._lock:
            room_id = query.get("roomId")
            custom = query.get("customRoomId")
            if custom is not None:
                matches = [r.room_id for r in self._rooms.values() if r.custom_room_id == custom]
                room_id = matches[0] if matches else "\x00none"
            status = query.get("status") if self.honour_status_filter else None
            chosen = [
                s
                for s in self._sessions.values()
                if s.start <= now
                and (room_id is None or s.room_id == room_id)
                and (status is None or ("ongoing" if s.ongoing(now) else "ended") == status)
            ]
            chosen.sort(key=lambda s: (-s.start, s.session_id))
            if not self.sessions_newest_first:
                chosen.reverse()
            page = paginate(chosen, query)  # documents for this page alone: O(page), not O(all)
            page["data"] = [self._session_doc(s, now, False) for s in page["data"]]
            return page

    def session(self, session_id: str, now: float) -> dict[str, Any] | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or session.start > now:
                return None
            return self._session_doc(session, now, False)

    def active_participants(
        self, session_id: str, query: dict[str, str], now: float
    ) -> dict[str, Any] | None:
        """``GET /v2/sessions/{id}/participants/active``; None means 404 (nobody there)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or not session.ongoing(now):
                return None
            doc = self._session_doc(session, now, True)
            if not doc["participants"]:
                return None
            page = paginate(doc["participants"], query)
            doc["participants"] = page["data"]
            return {
                "pageInfo": page["pageInfo"],
                "data": doc if self.active_data_as_object else [doc],
            }

    def rooms(self, query: dict[str, str], now: float) -> dict[str, Any]:
        with self._lock:
            docs = [
                {
                    "id": r.room_id,
                    "roomId": r.room_id,
                    "customRoomId": r.custom_room_id,
                    "disabled": False,
                    "createdAt": self._iso(r.created),
                }
                for r in sorted(self._rooms.values(), key=lambda r: (r.created, r.room_id))
                if r.created <= now
            ]
            return paginate(docs, query)

    # -- webhooks ------------------------------------------------------------------------

    @property
    def signing_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key

    def public_key_pem(self) -> str:
        return (
            self.signing_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, body: bytes) -> str:
        signature = self.signing_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def deliver_due(self, now: float) -> int:
        """POST every event whose time has come, in order, to ``webhook_url`` (if set)."""
        sent = 0
        while True:
            with self._lock:
                if not self._events or self._events[0][0] > now + 1e-9:
                    return sent
                _, _, event = heapq.heappop(self._events)
                url = self.webhook_url
            if url is None:
                continue
            body = json.dumps(event, separators=(",", ":")).encode()
            try:
                response = self._http.post(
                    url,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "videosdk-signature": self.sign(body),
                    },
                    timeout=10,
                )
                status = response.status_code
                response.close()
            except requests.RequestException as exc:
                log.warning("webhook delivery to %s failed: %s", url, type(exc).__name__)
                status = 0
            with self._lock:
                self.deliveries.append((event["webhookType"], status))
            sent += 1

    def close(self) -> None:
        self._http.close()
