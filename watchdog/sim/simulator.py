"""A local VideoSDK stats API: real HTTP, real JWT checks, faults on demand.

The daemon's tests, ``simulate``, ``demo`` and the benchmarks all need an API
that behaves like VideoSDK's (the raw-JWT ``Authorization`` header, the
crawler role, the stats envelope whose history grows with every sample) and
that misbehaves when asked to (5xx, 429, 401, slow, malformed, schema-
violating or huge responses) without an account or a network.

Sample time is decoupled from real time: a manual clock for tests, or
``speed`` sample seconds per real second for demos. Each participant's
history is generated once, in order, and kept JSON-encoded, so serving a
long history costs a copy, not a re-encode.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import random
import re
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import yaml

from watchdog.sim.churn import churn
from watchdog.sim.rooms import NO_ACTIVE, Rooms
from watchdog.sim.scenarios import (
    SCENARIOS,
    Scenario,
    demo_population,
    meeting_id_for,
    scenario_population,
    watch_entries,
)

log = logging.getLogger(__name__)

CRAWLER_REQUIRED = "Your role must be a CRAWLER in token payload to use V2 API"

_encode = json.JSONEncoder(separators=(",", ":")).encode
_RESOLUTIONS = ("180", "360", "720", "1080", "1440", "2160")
_EPSILON = 1e-9  # sample-time comparisons: 0.1 + 0.2 seconds must still release 0.3's sample
_CHUNK = 1 << 20
_MAX_ADMIN_BODY = 64 << 20
_PARTICIPANT_STATS = re.compile(r"/v2/sessions/([^/]+)/participant/([^/]+)/stats/?")
_SESSION_STATS = re.compile(r"/v2/sessions/([^/]+)/stats/?")
_ADMIN_PARTICIPANT = re.compile(r"/_sim/participants/([^/]+)/([^/]+)")
_SESSIONS = re.compile(r"/v2/sessions/?")
_SESSION = re.compile(r"/v2/sessions/([^/]+)/?")
_ACTIVE = re.compile(r"/v2/sessions/([^/]+)/participants/active/?")
_ROOMS = re.compile(r"/v2/rooms/?")
_PUBLIC_KEY = re.compile(r"/v2/public/rsa-public-key/?")
_ADD_FIELDS = frozenset(
    {"session", "participant", "scenario", "name", "meeting_id", "joined_at_offset"}
    | {"samples", "envelope"}
)


@dataclass(frozen=True, slots=True)
class Fault:
    """A misbehaviour for the next ``count`` stats requests that match ``session``/``participant``.

    ``retry_after`` alone implies status 429. ``delay`` alone slows an
    otherwise normal answer. ``body`` answers 200 with exactly that JSON,
    for schema violations ``schema=True`` does not cover; ``raw`` with exactly
    those bytes (invalid UTF-8, say; Python API only). ``trickle`` sends the
    answer (the normal stats if the fault gives none) one byte every that
    many seconds, as a stalled proxy or a congested link does.
    """

    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    malformed: bool = False
    schema: bool = False
    huge_bytes: int = 0
    count: int = 1
    session: str | None = None
    participant: str | None = None
    body: Any = None
    path: str | None = None  # a regex: the fault hits these API paths, not the stats endpoints
    raw: bytes | None = None
    trickle: float = 0.0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("Fault.count must be at least 1")
        if self.raw is not None and not isinstance(self.raw, bytes):
            raise ValueError("Fault.raw must be bytes")
        if self.trickle < 0:
            raise ValueError("Fault.trickle cannot be negative")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("Fault.status must be an HTTP error status (400-599)")
        if self.delay < 0 or self.huge_bytes < 0 or (self.retry_after or 0) < 0:
            raise ValueError("Fault.delay, huge_bytes and retry_after cannot be negative")

    def matches(self, session: str, participant: str | None) -> bool:
        return (self.session is None or self.session == session) and (
            self.participant is None or self.participant == participant
        )


@dataclass(slots=True)
class _Pending:
    fault: Fault
    remaining: int


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    chunks: Iterable[bytes]
    length: int
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, document: Any, headers: dict[str, str] | None = None) -> _Response:
    body = _encode(document).encode()
    return _Response(status, (body,), len(body), headers or {})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _Response:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _json(status, {"statusCode": status, "error": phrase, "message": message}, headers)


def _iso(moment: datetime) -> str:
    """VideoSDK's timestamp style (milliseconds, ``Z``) for a UTC datetime."""
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _usage_head(used: str) -> str:
    flags = {resolution: int(resolution == used) for resolution in _RESOLUTIONS}
    return _encode(flags)[:-1] + ',"time":'


# resolutionUsage entries are encoded from templates: they are a third of all samples encoded
_USAGE_HEADS = {used: _usage_head(used) for used in ("180", "360", "720")}


def _resolution_usage(sample: Any) -> str | None:
    """The encoded resolutionUsage entry at the sample's time; resolution follows video quality."""
    if not isinstance(sample, dict) or "time" not in sample:
        return None
    score = sample.get("qualityScore")
    video = score.get("video") if isinstance(score, dict) else None
    if not isinstance(video, int | float):
        used = "360"
    else:
        used = "720" if video >= 4 else "360" if video >= 3 else "180"
    return _USAGE_HEADS[used] + _encode(sample["time"]) + "}"


def _default_envelope(
    session: str, participant: str, name: str | None, meeting: str | None
) -> dict[str, Any]:
    """The documented top-level fields, varied per participant but stable across runs."""
    rng = random.Random(f"{session}/{participant}/envelope")
    browser, version = rng.choice(
        [("Chrome", "124.0.0.0"), ("Firefox", "125.0"), ("Safari", "17.4"), ("Edge", "124.0.0.0")]
    )
    sdk, sdk_version = rng.choice(
        [("prebuilt", "0.3.38"), ("react", "0.1.85"), ("js", "0.0.82"), ("android", "0.1.31")]
    )
    country, city, region, asn, org = rng.choice(
        [
            ("India", "Mumbai", "Maharashtra", "AS55836", "Reliance Jio Infocomm"),
            ("United States", "Ashburn", "Virginia", "AS7922", "Comcast Cable"),
            ("Germany", "Frankfurt", "Hesse", "AS3320", "Deutsche Telekom"),
            ("Brazil", "Sao Paulo", "Sao Paulo", "AS28573", "Claro NXT"),
        ]
    )
    return {
        "sessionId": session,
        "meetingId": meeting or meeting_id_for(session),
        "participantId": participant,
        "participantName": name or participant,
        "deviceInfo": {"deviceName": browser, "deviceVersion": version},
        "sdkInfo": {"sdkName": sdk, "sdkVersion": sdk_version},
        "location": {"country": country, "city": city, "region": region},
        "network": {"asn": asn, "org": org},
    }


class _Participant:
    """One participant's envelope plus its history, kept as encoded JSON fragments."""

    def __init__(self, envelope: dict[str, Any]) -> None:
        self.lock = threading.Lock()
        self.until: float | None = None  # sample time the participant left: history stops there
        self.head = _encode(envelope)[:-1].encode() + b',"stats":['
        session_fields = {key: envelope.get(key) for key in ("sessionId", "meetingId")}
        self.session_head = _encode(session_fields)[:-1].encode() + b',"stats":['

    def history(self, elapsed: float) -> tuple[bytes, bytes]:
        """Comma-joined encoded ``stats`` and ``resolutionUsage`` items released by ``elapsed``."""
        raise NotImplementedError

    def body(self, elapsed: float, *, session_level: bool = False) -> bytes:
        stats, usage = self.history(elapsed)
        head = self.session_head if session_level else self.head
        return b"".join((head, stats, b'],"resolutionUsage":[', usage, b"]}"))


class _Generated(_Participant):
    """Samples from a scenario, one every ``period`` sample seconds from ``joined``."""

    def __init__(
        self,
        envelope: dict[str, Any],
        scenario: Scenario,
        *,
        seed: str,
        zero: datetime,
        joined: float,
        period: float,
    ) -> None:
        super().__init__(envelope)
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.zero = zero
        self.joined = joined
        self.period = period
        self.count = 0
        self.stats = b""
        self.usage = b""

    def released(self, elapsed: float) -> int:
        if self.until is not None:
            elapsed = min(elapsed, self.until)
        count = max(0, math.floor((elapsed - self.joined) / self.period + _EPSILON) + 1)
        length = self.scenario.length
        return count if length is None else min(count, length)

    def history(self, elapsed: float) -> tuple[bytes, bytes]:
        with self.lock:  # the clock only moves forward, so the released prefix only grows
            wanted = self.released(elapsed)
            if wanted > self.count:
                samples, usage = [], []
                for k in range(self.count, wanted):
                    moment = self.zero + timedelta(seconds=self.joined + k * self.period)
                    sample = {"time": _iso(moment), **self.scenario.generate(k, self.rng)}
                    samples.append(sample)
                    usage.append(cast(str, _resolution_usage(sample)))
                separator = b"," if self.count else b""
                self.stats += separator + _encode(samples)[1:-1].encode()
                self.usage += separator + ",".join(usage).encode()
                self.count = wanted
            return self.stats, self.usage


class _Crafted(_Participant):
    """A test's own series, served as-is; each item shows once its ``time`` has come.

    Items whose ``time`` is missing or unparseable show from the start, so
    tests can serve garbage on purpose. An item's ``_shown_at`` key (sample
    seconds, not served) says when it shows instead: a sample recorded then
    by a device whose clock is wrong, stamped tomorrow or in the year 9999.
    """

    def __init__(self, envelope: dict[str, Any], samples: list[Any], *, zero: datetime) -> None:
        super().__init__(envelope)
        self.items: list[tuple[float | None, bytes, bytes | None]] = []
        for item in samples:
            sample, shown_at = item, None
            if isinstance(item, dict) and "_shown_at" in item:
                sample = {key: value for key, value in item.items() if key != "_shown_at"}
                shown_at = float(item["_shown_at"])
            usage = _resolution_usage(sample)
            self.items.append(
                (
                    self._offset(sample, zero) if shown_at is None else shown_at,
                    _encode(sample).encode(),
                    None if usage is None else usage.encode(),
                )
            )
        self.cached: tuple[int, bytes, bytes] = (-1, b"", b"")

    @staticmethod
    def _offset(sample: Any, zero: datetime) -> float | None:
        stamp = sample.get("time") if isinstance(sample, dict) else None
        if not isinstance(stamp, str):
            return None
        try:
            return (_as_utc(datetime.fromisoformat(stamp)) - zero).total_seconds()
        except ValueError:
            return None

    def history(self, elapsed: float) -> tuple[bytes, bytes]:
        if self.until is not None:
            elapsed = min(elapsed, self.until)
        visible = [
            (encoded, usage)
            for offset, encoded, usage in self.items
            if offset is None or offset <= elapsed + _EPSILON
        ]
        with self.lock:
            if self.cached[0] != len(visible):  # visibility only grows, so the count is the key
                stats = b",".join(encoded for encoded, _ in visible)
                usage = b",".join(usage for _, usage in visible if usage is not None)
                self.cached = (len(visible), stats, usage)
            return self.cached[1], self.cached[2]


def _schema_violation(session: str, participant: str | None) -> dict[str, Any]:
    """Valid JSON that breaks the documented shape in the ways real proxies and bugs do."""
    return {
        "sessionId": session,
        "participantId": participant,
        "participantName": 42,
        "stats": [
            {"recvVideoPacketLost": 3, "qualityScore": {"audio": 4.1, "video": 3.9}},
            {"time": "not a time", "qualityScore": "good"},
            {
                "time": "2000-01-01T00:00:00.000Z",
                "averageVideoRtt": "NaN",
                "recvVideoPacketLost": "-",
                "qualityScore": {"audio": None, "video": "4.5"},
            },
            "sample",
            None,
            17,
        ],
        "resolutionUsage": {"720": "most"},
    }


def _trickled(response: _Response, every: float) -> _Response:
    """The same answer, one byte every ``every`` seconds (a client that hangs up ends it)."""

    def chunks() -> Iterator[bytes]:
        for chunk in response.chunks:
            for index in range(len(chunk)):
                time.sleep(every)
                yield chunk[index : index + 1]

    return _Response(response.status, chunks(), response.length, response.headers)


def _huge(size: int, session: str, participant: str | None) -> _Response:
    """Valid JSON of ``size`` bytes, streamed so the simulator never holds it."""
    empty: dict[str, Any] = {
        "sessionId": session,
        "participantId": participant,
        "stats": [],
        "padding": "",
    }
    head = _encode(empty)[:-2].encode()
    tail = b'"}'
    padding = max(0, size - len(head) - len(tail))

    def chunks() -> Iterator[bytes]:
        yield head
        full, rest = divmod(padding, _CHUNK)
        block = b"x" * _CHUNK
        for _ in range(full):
            yield block
        yield b"x" * rest
        yield tail

    return _Response(200, chunks(), len(head) + padding + len(tail))


class Simulator:
    """VideoSDK's stats API on a local port, driven from Python or over ``/_sim/``."""

    def __init__(
        self,
        api_key: str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sample_period: float = 10.0,
        speed: float = 1.0,
        manual_clock: bool = False,
        start: datetime | None = None,
        latency: float = 0.0,
        history: int | None = None,
    ) -> None:
        if sample_period <= 0 or speed <= 0 or latency < 0 or (history or 0) < 0:
            raise ValueError("sample_period and speed must be positive; latency, history >= 0")
        self.api_key = api_key
        self.secret = secret
        self.host = host
        self.port = port
        self.sample_period = sample_period
        self.speed = speed
        self.manual_clock = manual_clock
        self.zero = _as_utc(start or datetime.now(UTC))
        self.latency = latency
        self.history = history
        self._lock = threading.Lock()
        self._sessions: dict[str, dict[str, _Participant]] = {}
        self._faults: list[_Pending] = []
        self._requests: list[tuple[str, str, int]] = []
        self._statuses: Counter[int] = Counter()
        self._offset = 0.0  # sample seconds added by advance()
        self._started_at: float | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.rooms = Rooms(self.zero)
        self._webhooks_stop = threading.Event()
        self._webhooks_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        if self._started_at is None:  # a restart must not run the clock backwards
            self._started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"videosdk-simulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not self.manual_clock:  # the clock runs by itself, so webhooks go out by themselves
            self._webhooks_stop.clear()
            self._webhooks_thread = threading.Thread(
                target=self._deliver_loop, name=f"videosdk-simulator-webhooks:{self.port}"
            )
            self._webhooks_thread.start()

    def stop(self) -> None:
        """Stop accepting, and drop open keep-alive connections so no client waits on us."""
        server, self._server = self._server, None
        if server is None:
            return
        self._webhooks_stop.set()
        if self._webhooks_thread is not None:
            self._webhooks_thread.join(timeout=15)
        self.rooms.close()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- the clock ---------------------------------------------------------

    def _elapsed(self) -> float:
        """Sample seconds since sample time zero."""
        with self._lock:
            elapsed = self._offset
            if not self.manual_clock and self._started_at is not None:
                elapsed += (time.monotonic() - self._started_at) * self.speed
            return elapsed

    def now(self) -> datetime:
        return self.zero + timedelta(seconds=self._elapsed())

    def warm(self) -> None:
        """Encode every participant's history released so far, as the real API has it ready:
        otherwise the first request for each pays for generating it (benchmarks measure
        the daemon's first cycle, not this)."""
        with self._lock:
            entries = [entry for members in self._sessions.values() for entry in members.values()]
        elapsed = self._elapsed()
        for entry in entries:
            entry.history(elapsed)

    def advance(self, seconds: float) -> None:
        """Move sample time forward (either clock mode); time never runs backwards."""
        if seconds < 0:
            raise ValueError("the sample clock only moves forward")
        with self._lock:
            self._offset += seconds
        self.rooms.deliver_due(self._elapsed())

    # -- participants and faults ---------------------------------------------

    def add_population(self, population: Iterable[Mapping[str, Any]]) -> None:
        """Add each member of a population (``demo_population``, ``scenario_population``)."""
        for member in population:
            self.add_participant(
                member["session"],
                member["participant"],
                scenario=member["scenario"],
                name=member["name"],
                meeting_id=member["meeting_id"],
                envelope=member.get("envelope"),
            )

    def add_participant(
        self,
        session: str,
        participant: str,
        *,
        scenario: str | Scenario | None = None,
        name: str | None = None,
        meeting_id: str | None = None,
        joined_at_offset: float = 0.0,
        samples: list[Any] | None = None,
        envelope: dict[str, Any] | None = None,
    ) -> None:
        """Add (or replace) a participant: a named scenario, or crafted ``samples`` served as-is.

        ``joined_at_offset`` is in sample seconds from sample time zero, so
        sample times do not depend on when this was called; ``history``
        moves every join back by that many sample periods.
        """
        if samples is not None and scenario is not None:
            raise ValueError("give a scenario or samples, not both")
        document = _default_envelope(session, participant, name, meeting_id)
        for key, value in (envelope or {}).items():
            if key in ("stats", "resolutionUsage"):
                raise ValueError(f"envelope cannot override {key!r}; use samples")
            document[key] = value
        entry: _Participant
        if samples is not None:
            entry = _Crafted(document, list(samples), zero=self.zero)
        else:
            chosen = scenario if scenario is not None else "healthy"
            if isinstance(chosen, str):
                if chosen not in SCENARIOS:
                    raise ValueError(
                        f"unknown scenario {chosen!r}; choose from {', '.join(SCENARIOS)}"
                    )
                chosen = SCENARIOS[chosen]
            entry = _Generated(
                document,
                chosen,
                seed=f"{session}/{participant}",
                zero=self.zero,
                joined=joined_at_offset - max(0, (self.history or 0) - 1) * self.sample_period,
                period=self.sample_period,
            )
        with self._lock:
            self._sessions.setdefault(session, {})[participant] = entry

    def remove_participant(self, session: str, participant: str) -> None:
        """The participant leaves: its stats answer 404 from now on. KeyError if unknown."""
        with self._lock:
            members = self._sessions.get(session, {})
            if participant not in members:
                raise KeyError(f"{session}/{participant}")
            del members[participant]
            if not members:
                del self._sessions[session]

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(_Pending(fault, fault.count))

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every API request so far (a snapshot copy)."""
        with self._lock:
            return list(self._requests)

    def state(self) -> dict[str, Any]:
        with self._lock:
            participants = sum(len(members) for members in self._sessions.values())
            statuses = {str(status): n for status, n in sorted(self._statuses.items())}
            pending = sum(entry.remaining for entry in self._faults)
        return {
            "now": _iso(self.now()),
            "participants": participants,
            "requests": statuses,
            "pending_faults": pending,
        }

    # -- the API -------------------------------------------------------------

    def _api(self, method: str, path: str, authorization: str | None, query: str = "") -> _Response:
        participant_match = _PARTICIPANT_STATS.fullmatch(path)
        match = participant_match or _SESSION_STATS.fullmatch(path)
        listing = None
        if method == "GET" and match is None:
            listing = self._listing(path, dict(parse_qsl(query)), authorization)
        if listing is not None:
            response = listing
        elif method != "GET" or match is None:
            response = _error(404, f"Cannot {method} {path}")
        else:
            session = unquote(match.group(1))
            participant = unquote(participant_match.group(2)) if participant_match else None
            response = (
                self._authenticate(authorization)
                or self._faulted(session, participant)
                or self._stats(session, participant)
            )
        if self.latency:
            time.sleep(self.latency)
        with self._lock:  # recorded before the answer goes out, so a test can look right after
            self._requests.append((method, path, response.status))
            self._statuses[response.status] += 1
        return response

    def _authenticate(self, token: str | None) -> _Response | None:
        """VideoSDK's checks: raw HS256 JWT, integer exp (and iat), our apikey, crawler v2."""
        if not token:
            return _error(401, "Authorization token is missing")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            return _error(401, "Token expired")
        except jwt.InvalidTokenError:
            return _error(401, "Invalid token")
        if any(key in claims and type(claims[key]) is not int for key in ("iat", "exp")):
            return _error(401, "Invalid token: iat and exp must be integer epoch seconds")
        if claims.get("apikey") != self.api_key:
            return _error(401, "Invalid token: unknown apikey")
        roles = claims.get("roles")
        if not (isinstance(roles, list) and "crawler" in roles) or claims.get("version") != 2:
            return _error(403, CRAWLER_REQUIRED)
        return None

    def _faulted(
        self, session: str, participant: str | None, path: str | None = None
    ) -> _Response | None:
        with self._lock:
            pending = next(
                (
                    p
                    for p in self._faults
                    if p.fault.matches(session, participant)
                    and (
                        p.fault.path is None
                        if path is None
                        else p.fault.path is not None and re.fullmatch(p.fault.path, path)
                    )
                ),
                None,
            )
            if pending is None:
                return None
            pending.remaining -= 1
            if pending.remaining == 0:
                self._faults.remove(pending)
        fault = pending.fault
        if fault.delay:
            time.sleep(fault.delay)
        response = self._fault_answer(fault, session, participant)
        if fault.trickle:
            return _trickled(response or self._stats(session, participant), fault.trickle)
        return response

    @staticmethod
    def _fault_answer(fault: Fault, session: str, participant: str | None) -> _Response | None:
        status = fault.status or (429 if fault.retry_after is not None else None)
        if status is not None:
            headers = {}
            if fault.retry_after is not None:  # HTTP wants whole seconds (or a date)
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
            return _error(status, "simulated fault", headers)
        if fault.malformed:
            head = _encode({"sessionId": session, "participantId": participant})[:-1]
            body = head.encode() + b',"stats":[{"time":"20'  # cut off mid-answer
            return _Response(200, (body,), len(body))
        if fault.schema:
            return _json(200, _schema_violation(session, participant))
        if fault.body is not None:
            return _json(200, fault.body)
        if fault.raw is not None:
            return _Response(200, (fault.raw,), len(fault.raw))
        if fault.huge_bytes:
            return _huge(fault.huge_bytes, session, participant)
        return None  # a pure delay: answer normally, late

    def _stats(self, session: str, participant: str | None) -> _Response:
        with self._lock:
            members = self._sessions.get(session, {})
            entry = (
                next(iter(members.values()), None)
                if participant is None
                else members.get(participant)
            )
        if entry is None:
            what = "Session" if participant is None else "Participant"
            return _error(404, f"{what} not found")
        body = entry.body(self._elapsed(), session_level=participant is None)
        return _Response(200, (body,), len(body))

    # -- rooms, sessions, who is in them, and webhooks (issue 5) ------------------------

    def add_room(self, room_id: str, custom_room_id: str | None = None) -> str:
        self.rooms.add_room(room_id, custom_room_id, self._elapsed())
        return room_id

    def start_session(self, room_id: str, session_id: str, at: float | None = None) -> str:
        """A session of ``room_id`` starts at sample second ``at`` (default: now)."""
        self.rooms.start_session(session_id, room_id, self._elapsed() if at is None else at)
        return session_id

    def join(
        self,
        session: str,
        participant: str,
        *,
        name: str | None = None,
        at: float | None = None,
        scenario: str | Scenario | None = None,
        sdk: str | None = None,
        samples: list[Any] | None = None,
    ) -> None:
        """The participant joins ``session`` at ``at``; its stats start then."""
        when = self._elapsed() if at is None else at
        room = self.rooms.room_of(session)
        self.rooms.join(session, participant, name or participant, when)
        with self._lock:
            entry = self._sessions.get(session, {}).get(participant)
        if entry is not None:  # back again: the history grows on
            entry.until = None
            return
        envelope = {"sdkInfo": {"sdkName": sdk, "sdkVersion": "1.0.0"}} if sdk else None
        self.add_participant(
            session,
            participant,
            scenario=None if samples is not None else scenario,
            name=name,
            meeting_id=room,
            joined_at_offset=when,
            samples=samples,
            envelope=envelope,
        )

    def leave(self, session: str, participant: str, at: float | None = None) -> None:
        """The participant leaves at ``at``; its stats stay readable but stop growing."""
        when = self._elapsed() if at is None else at
        self.rooms.leave(session, participant, when)
        self._stop_history(session, participant, when)

    def end_session(self, session: str, at: float | None = None) -> None:
        when = self._elapsed() if at is None else at
        self.rooms.end_session(session, when)
        with self._lock:
            members = list(self._sessions.get(session, {}))
        for participant in members:
            self._stop_history(session, participant, when)

    def _stop_history(self, session: str, participant: str, when: float) -> None:
        with self._lock:
            entry = self._sessions.get(session, {}).get(participant)
        if entry is not None and entry.until is None:
            entry.until = when

    def active_participants(self) -> set[tuple[str, str]]:
        """Ground truth: (session, participant) of everyone in an ongoing session now."""
        return self.rooms.active(self._elapsed())

    @property
    def webhook_url(self) -> str | None:
        return self.rooms.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        """Where webhooks go; events from before it was set are not sent."""
        self.rooms.webhook_url = url

    def _deliver_loop(self) -> None:
        while not self._webhooks_stop.wait(0.05):
            try:
                self.rooms.deliver_due(self._elapsed())
            except Exception:
                log.exception("webhook delivery failed")

    def _listing(self, path: str, query: dict[str, str], token: str | None) -> _Response | None:
        """The discovery endpoints; None if ``path`` is not one of them."""
        if _PUBLIC_KEY.fullmatch(path):  # public: no token needed
            return self._faulted("", None, path) or _json(
                200, {"publicKey": self.rooms.public_key_pem()}
            )
        now = self._elapsed()
        active = _ACTIVE.fullmatch(path)
        one = _SESSION.fullmatch(path)
        if not (active or one or _SESSIONS.fullmatch(path) or _ROOMS.fullmatch(path)):
            return None
        refused = self._authenticate(token) or self._faulted("", None, path)
        if refused is not None:
            return refused
        if active is not None:
            document = self.rooms.active_participants(unquote(active.group(1)), query, now)
            return _error(404, NO_ACTIVE) if document is None else _json(200, document)
        if one is not None:
            session = self.rooms.session(unquote(one.group(1)), now)
            return _error(404, "Session not found") if session is None else _json(200, session)
        if _ROOMS.fullmatch(path):
            return _json(200, self.rooms.rooms(query, now))
        return _json(200, self.rooms.sessions(query, now))

    # -- admin over HTTP -------------------------------------------------------

    def _admin(self, method: str, path: str, payload: Any, client: str) -> _Response:
        if not ipaddress.ip_address(client).is_loopback:
            return _error(403, "the simulator's admin API only answers loopback clients")
        try:
            return self._admin_route(method, path, payload)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))

    def _admin_route(self, method: str, path: str, payload: Any) -> _Response:
        removal = _ADMIN_PARTICIPANT.fullmatch(path)
        if method == "GET" and path == "/_sim/state":
            return _json(200, self.state())
        if method == "POST" and path == "/_sim/participants":
            entries = payload if isinstance(payload, list) else [payload]
            for entry in entries:
                if not isinstance(entry, dict) or not _ADD_FIELDS.issuperset(entry):
                    raise ValueError(f"participant fields are {sorted(_ADD_FIELDS)}")
                for key, kind in (("scenario", str), ("samples", list), ("envelope", dict)):
                    if entry.get(key) is not None and not isinstance(entry[key], kind):
                        raise ValueError(f"{key} must be a JSON {kind.__name__}")
                self.add_participant(**entry)
            return _json(201, {"added": len(entries)})
        if method == "DELETE" and removal is not None:
            try:
                self.remove_participant(unquote(removal.group(1)), unquote(removal.group(2)))
            except KeyError:
                return _error(404, "Participant not found")
            return _json(200, {"removed": 1})
        if method == "POST" and path == "/_sim/advance":
            if not isinstance(payload, dict) or not isinstance(payload.get("seconds"), int | float):
                raise ValueError('expected {"seconds": N}')
            self.advance(float(payload["seconds"]))
            return _json(200, {"now": _iso(self.now())})
        if method == "POST" and path == "/_sim/faults":
            known = {f.name for f in fields(Fault)}
            if not isinstance(payload, dict) or not known.issuperset(payload):
                raise ValueError(f"fault fields are {sorted(known)}")
            self.inject(Fault(**payload))
            return _json(201, {"pending": self.state()["pending_faults"]})
        return _error(404, f"Cannot {method} {path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # a pool of clients connecting at once must not overflow the backlog

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup we neither need nor want to wait on.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "videosdk-simulator"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = 300.0  # idle keep-alive connections are closed eventually

    def setup(self) -> None:
        super().setup()
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.add(self.connection)

    def finish(self) -> None:
        server = cast(_Server, self.server)
        with server.connections_lock:
            server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header follows the simulator's own clock, manual or sped up."""
        if timestamp is None:
            timestamp = cast(_Server, self.server).simulator.now().timestamp()
        return formatdate(timestamp, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        simulator = cast(_Server, self.server).simulator
        path = urlsplit(self.path).path
        try:
            payload = self._read_json()
        except ValueError as exc:
            self.close_connection = True
            self._write(_error(400, str(exc)))
            return
        if path.startswith("/_sim/"):
            response = simulator._admin(method, path, payload, self.client_address[0])
        else:
            response = simulator._api(
                method, path, self.headers.get("Authorization"), urlsplit(self.path).query
            )
        self._write(response)

    def _read_json(self) -> Any:
        """The request body as JSON (None if empty); always drained to keep keep-alive in step."""
        if "Transfer-Encoding" in self.headers:
            raise ValueError("chunked request bodies are not supported; send Content-Length")
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_ADMIN_BODY:
            raise ValueError("request body too large")
        if length <= 0:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            raise ValueError("request body is not valid JSON") from None

    def _write(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(response.length))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            for chunk in response.chunks:
                self.wfile.write(chunk)
        except OSError:  # the client gave up (a timeout, or it refused a huge body)
            self.close_connection = True


def serve(
    port: int,
    *,
    api_key: str,
    secret: str,
    scenario: str | None,
    speed: float,
    sample_period: float,
    host: str = "127.0.0.1",
    churn_rooms: int | None = None,
    webhook_url: str | None = None,
) -> int:
    """Run a simulator in the foreground with the demo (or one scenario's) population."""
    try:
        population = scenario_population(scenario) if scenario else demo_population()
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    simulator = Simulator(
        api_key=api_key,
        secret=secret,
        host=host,
        port=port,
        speed=speed,
        sample_period=sample_period,
    )
    try:
        simulator.start()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc)
        return 1
    try:
        simulator.add_population(population)
        simulator.webhook_url = webhook_url
        if churn_rooms:
            plan = churn(simulator, rooms=churn_rooms, participants=20 * churn_rooms)
            log.info(
                "churn: %d rooms, %d sessions, %d participants joining and leaving over %gs; "
                "webhooks to %s",
                plan.rooms,
                plan.sessions,
                plan.participants,
                plan.duration,
                webhook_url or "nowhere (--webhook-url)",
            )
        watch = {
            "videosdk": {"base_url": simulator.url},
            "watch": {"participants": watch_entries(population)},
        }
        log.info(
            "VideoSDK simulator on %s (a sample every %gs of sample time, %gx real time)",
            simulator.url,
            sample_period,
            speed,
        )
        for member in population:
            log.info(
                "  %s/%s  %s: %s",
                member["session"],
                member["participant"],
                member["name"],
                member["scenario"],
            )
        log.info("config to watch it:\n%s", yaml.safe_dump(watch, sort_keys=False))
        threading.Event().wait()
    except KeyboardInterrupt:
        log.info("simulator stopped")
    finally:
        simulator.stop()
    return 0
