"""Likely causes: which side of a call an alert's trouble comes from, with the numbers.

An alert saying "video score 2.1" tells on-call that something is wrong, not what to do.
When a participant's alert fires, :func:`likely_cause` reads the participant's recent
samples (a :class:`Window`), those of the other watched participants in its meeting
(:class:`Peer`), and how many meetings in its region and network were degrading in
the same minutes (:class:`PlaceLoad`), and names one cause of a fixed vocabulary
(:data:`CAUSES`) with one to three lines of evidence. Pure: the poller owns the windows
and the place counts (watchdog.poll.participants) and calls this, so the benchmark
(benchmarks/causes.py) and the tests judge exactly what the daemon does.

VideoSDK reports each participant's send and receive figures summed over everyone it
sends to or receives from, so who hurts whom is inferred: a receiver's loss "follows" a
sender when that sender's send loss is high and most of its receivers degrade at once.
Units are VideoSDK's (not documented: packet loss looks like a count per sample, RTT and
jitter like milliseconds); the thresholds below are in those units (docs/causes.md).
"""

from __future__ import annotations

import heapq
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import isnan
from typing import Literal

Cause = Literal["uplink", "downlink", "sender-uplink", "device", "platform", "unknown"]

CAUSES: dict[str, str] = {
    "uplink": "the participant's own uplink: what they send is lost or delayed "
    "(send packet loss, RTT or jitter up) while what they receive is fine",
    "downlink": "the participant's own downlink: they lose what they receive while the "
    "others in the meeting receive fine and nobody's sending is lossy",
    "sender-uplink": "another participant's uplink: their receive loss follows one sender "
    "whose send loss is high, and most of that sender's receivers degrade too",
    "device": "the device or app: the send bitrate dropped to half its usual level or less "
    "while the network is clean (CPU or bandwidth adaptation)",
    "platform": "platform or region: many meetings in the same region or network degrade "
    "in the same minutes",
    "unknown": "none of the above is shown by the samples",
}
"""The vocabulary: ``Alert.cause`` is one of these names (or None: not analysed)."""

WINDOW_SECONDS = 90.0  # the history a window keeps: the recent minute, and a peer's lag
RECENT_SECONDS = 60.0  # "now": what a cause is judged over
CAPACITY = 16  # samples a window keeps at most, whatever the sampling period
PLACE_SECONDS = 120.0  # "the same minutes" of a platform cause
_LOAD_STEP = 10.0  # seconds a place's load is reused for
SHARED_PLACES = 2000  # places an instance tells the others of (those with most meetings)
MAX_PLACE = 200  # characters of a place's name shared with the others

LOSS_HIGH = 3.0  # packets lost per sample, audio + video, one direction: trouble
LOSS_CLEAN = 1.0  # at most this: that direction is fine
RTT_HIGH = 300.0  # ms
JITTER_HIGH = 30.0  # ms
BITRATE_DROP = 0.5  # send bitrate at most this share of its usual level: dropped
BITRATE_FLOOR = 50.0  # kbit/s: a usual level below this says nothing about a drop
USUAL_SECONDS = 300.0  # time constant of a participant's usual send bitrate
RECEIVERS_SHARE = 0.5  # of a lossy sender's receivers degraded: their loss follows it
PLATFORM_MEETINGS = 3  # meetings degraded in one place ...
PLATFORM_SHARE = 0.5  # ... and this share of its meetings seen in those minutes

MAX_NAME = 40  # characters of a participant's name in an evidence line
MAX_VALUE = 1e12  # a figure above this is no measurement: treated as missing

# a window's columns: sample time, then these figures
FIGURES = ("send_loss", "recv_loss", "rtt", "jitter", "send_kbps", "resolution")
_ROW = struct.Struct("<7H")
_OFFSET = struct.Struct("<H")
_TENTHS = 10.0  # a time step: 0.1 s
_SCALES = (10.0, 10.0, 1.0, 10.0, 1.0, 1.0)  # steps of 0.1 (loss, jitter ms) or 1 (ms, kbit/s, p)
_MISSING = 0xFFFF
_REBASE = 6000.0  # seconds after ``base`` before a window's times are counted anew
_SLACK = 0.06  # seconds: a time kept in tenths compared with an exact one
_NAN = math.nan


def _valid(value: object) -> float:
    """A usable figure, or NaN: samples are judged, never trusted."""
    if value.__class__ is float:  # parsed samples hold finite floats: the common case
        return value if 0.0 <= value <= MAX_VALUE else _NAN
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if 0.0 <= number <= MAX_VALUE:  # False for NaN, infinities, negatives
            return number
    return _NAN


def _sum(first: float, second: float) -> float:
    if isnan(first):
        return second
    return first if isnan(second) else first + second


def _max(first: float, second: float) -> float:
    if isnan(first):
        return second
    return first if isnan(second) else max(first, second)


def sample_figures(values: Mapping[str, float]) -> tuple[float, ...]:
    """One sample's cause figures (NaN where it lacks or garbles a field)."""
    get = values.get
    return (
        _sum(_valid(get("sendAudioPacketLost")), _valid(get("sendVideoPacketLost"))),
        _sum(_valid(get("recvAudioPacketLost")), _valid(get("recvVideoPacketLost"))),
        _max(_valid(get("averageAudioRtt")), _valid(get("averageVideoRtt"))),
        _max(_valid(get("averageAudioJitter")), _valid(get("averageVideoJitter"))),
        _valid(get("averageSendVideoBitrate")) / 1000.0,
        _valid(get("resolution")),
    )


class Window:
    """A participant's recent cause figures: at most :data:`CAPACITY` samples of the last
    :data:`WINDOW_SECONDS`, packed in one immutable ``bytes`` (14 bytes a sample: the
    time as tenths of a second after ``base``, each figure in a 16-bit step of its unit,
    :data:`_SCALES`; larger values saturate, far above every threshold): about 0.3 KB
    with its object at a sample every 10 s.

    Not the rule engine's memory: that keeps only the metrics rules name, and is written
    to the state database every poll; this lives in memory only and is rebuilt from the
    samples after a restart. Immutable data: another thread reads it while the
    participant's own poll adds to it.
    """

    __slots__ = ("base", "data", "usual_kbps")

    def __init__(
        self, base: float | None = None, data: bytes = b"", usual_kbps: float | None = None
    ) -> None:
        self.base = base
        self.data = data
        # the send video bitrate it usually has: a moving average with a 5-minute time
        # constant, so a drop shows against it for minutes after the window forgot
        self.usual_kbps = usual_kbps

    def add(self, time: float, values: Mapping[str, float]) -> None:
        """A sample (epoch seconds) newer than the window's newest; older ones are ignored."""
        base = self.base
        if base is None or time - base > _REBASE:
            base = self._rebase(time - WINDOW_SECONDS)
        data = self.data
        offset = round((time - base) * _TENTHS)
        last = self._last()
        if offset < 0 or (last is not None and offset <= last):
            return
        row = sample_figures(values)
        kbps = row[4]
        if not isnan(kbps):
            if self.usual_kbps is None or last is None:
                self.usual_kbps = kbps
            else:
                weight = 1.0 - math.exp(-(offset - last) / _TENTHS / USUAL_SECONDS)
                self.usual_kbps += (kbps - self.usual_kbps) * weight
        data += _ROW.pack(
            offset,
            *[
                _MISSING if isnan(value) else min(round(value * scale), _MISSING - 1)
                for value, scale in zip(row, _SCALES, strict=True)
            ],
        )
        count = len(data) // _ROW.size
        drop = max(0, count - CAPACITY)
        start = offset - WINDOW_SECONDS * _TENTHS
        while drop < count - 1 and _OFFSET.unpack_from(data, drop * _ROW.size)[0] < start:
            drop += 1
        self.data = data[drop * _ROW.size :] if drop else data

    def _rebase(self, base: float) -> float:
        """Times counted from ``base`` (which keeps them within 16 bits); samples before
        it go (they are older than any window keeps)."""
        kept = []
        for offset, *figures in _ROW.iter_unpack(self.data):
            moved = round(((self.base or base) + offset / _TENTHS - base) * _TENTHS)
            if moved >= 0:
                kept.append(_ROW.pack(moved, *figures))
        self.base, self.data = base, b"".join(kept)
        return base

    def snapshot(self) -> Window:
        """A copy another thread may read while the participant's poll adds to this one."""
        return Window(self.base, self.data, self.usual_kbps)

    def _last(self) -> int | None:
        """The newest sample's time, in steps after ``base``."""
        data = self.data
        if not data:
            return None
        last: int = _OFFSET.unpack_from(data, len(data) - _ROW.size)[0]
        return last

    @property
    def newest(self) -> float | None:
        last = self._last()
        return None if last is None or self.base is None else self.base + last / _TENTHS

    def __len__(self) -> int:
        return len(self.data) // _ROW.size


@dataclass(frozen=True, slots=True)
class Figures:
    """Mean cause figures over a span of a window (None: no sample in it had the figure)."""

    samples: int
    send_loss: float | None = None
    recv_loss: float | None = None
    rtt: float | None = None
    jitter: float | None = None
    send_kbps: float | None = None
    resolution: float | None = None

    @property
    def send_bad(self) -> bool:
        return self.send_loss is not None and self.send_loss >= LOSS_HIGH

    @property
    def recv_bad(self) -> bool:
        return self.recv_loss is not None and self.recv_loss >= LOSS_HIGH

    @property
    def recv_fine(self) -> bool:
        return self.recv_loss is not None and self.recv_loss <= LOSS_CLEAN

    @property
    def path_bad(self) -> bool:
        """RTT or jitter high: the participant's path is slow or uneven."""
        return (self.rtt is not None and self.rtt >= RTT_HIGH) or (
            self.jitter is not None and self.jitter >= JITTER_HIGH
        )

    @property
    def degraded(self) -> bool:
        """Anything on the network side is bad: what a platform cause counts."""
        return self.send_bad or self.recv_bad or self.path_bad


def recent(window: Window, at: float) -> Figures:
    """Means over the window's samples of the minute up to ``at`` (epoch seconds)."""
    base = window.base or 0.0
    start = (at - RECENT_SECONDS + _SLACK - base) * _TENTHS
    end = (at + _SLACK - base) * _TENTHS
    sums = [0] * len(FIGURES)
    counts = [0] * len(FIGURES)
    samples = 0
    for offset, *packed in _ROW.iter_unpack(window.data):  # integers: summed as they are
        if start < offset <= end:
            samples += 1
            for column, value in enumerate(packed):
                if value != _MISSING:
                    sums[column] += value
                    counts[column] += 1
    found = [
        total / count / scale if count else None
        for total, count, scale in zip(sums, counts, _SCALES, strict=True)
    ]
    return Figures(samples, *found)


@dataclass(frozen=True, slots=True)
class Peer:
    """Another watched participant of the meeting, with (a snapshot of) its window."""

    participant_id: str
    name: str
    window: Window


@dataclass(frozen=True, slots=True)
class PlaceLoad:
    """A region or network org: meetings seen there lately, and those seen degraded."""

    place: str  # "region Hesse, Germany", "network Comcast Cable"
    degraded: int
    meetings: int


@dataclass(frozen=True, slots=True)
class Verdict:
    cause: Cause
    evidence: tuple[str, ...]
    participant: str | None = None  # whose connection the cause lies in (cause_participant)


class _Seen:
    """One meeting in one place: when a participant of it was last seen there, and when
    each of those seen degraded last was (only they cost memory)."""

    __slots__ = ("alone", "bad", "last")

    def __init__(self, last: float) -> None:
        self.last = last
        self.alone = True  # its only watched participant is the one last seen
        self.bad: dict[str, float] | None = None


class Places:
    """For each region and network org, each meeting seen there lately, and which of its
    participants were seen degraded. A meeting counts as degraded when two of its
    participants were (or its only one): one participant's trouble is no platform's.
    Entries older than :data:`PLACE_SECONDS` are dropped (at most once per that span, in
    one pass), so memory follows the meetings of the last minutes; a place's load is
    worked out once per :data:`_LOAD_STEP` seconds (a storm of alerts in one region asks
    the same question thousands of times).

    With several instances each sees its own participants' meetings: every instance
    tells the others its loads once a cycle (:meth:`summary`), and counts theirs in
    (:meth:`count_in`), so "many meetings in one place" means the whole deployment's.
    """

    __slots__ = ("_loads", "_others", "_places", "_pruned")

    def __init__(self) -> None:
        self._places: dict[str, dict[str, _Seen]] = {}
        self._loads: dict[tuple[str, int], PlaceLoad] = {}
        self._pruned = -math.inf
        # the other instances' loads per place, as of their latest cycles: (degraded, meetings)
        self._others: dict[str, tuple[int, int]] = {}

    def seen(
        self,
        places: Iterable[str],
        meeting: str,
        who: str,
        time: float,
        *,
        degraded: bool,
        alone: bool,
    ) -> None:
        """``who`` of ``meeting`` (its only watched participant if ``alone``) seen at
        ``time``, degraded or not."""
        for place in places:
            meetings = self._places.setdefault(place, {})
            entry = meetings.get(meeting)
            if entry is None:
                entry = meetings[meeting] = _Seen(time)
            entry.last = max(entry.last, time)
            entry.alone = alone
            if degraded:
                if entry.bad is None:
                    entry.bad = {}
                entry.bad[who] = max(entry.bad.get(who, time), time)
        if time - self._pruned > PLACE_SECONDS:
            self._prune(time - 2 * PLACE_SECONDS)
            self._pruned = time

    def _prune(self, before: float) -> None:
        self._loads.clear()
        for place in list(self._places):
            meetings = self._places[place]
            for meeting in list(meetings):
                entry = meetings[meeting]
                if entry.last < before:
                    del meetings[meeting]
                elif entry.bad is not None:
                    entry.bad = {w: t for w, t in entry.bad.items() if t >= before} or None
            if not meetings:
                del self._places[place]

    def load(self, places: Iterable[str], at: float) -> list[PlaceLoad]:
        """Per place: meetings seen, and seen degraded, within :data:`PLACE_SECONDS` of ``at``."""
        step = int(at // _LOAD_STEP)
        out = []
        for place in places:
            found = self._loads.get((place, step))
            if found is None:
                found = self._loads[(place, step)] = self._load(place, at)
            out.append(found)
        return out

    def _load(self, place: str, at: float) -> PlaceLoad:
        degraded, seen = self._own(place, at)
        theirs = self._others.get(place)
        if theirs is not None:
            degraded, seen = degraded + theirs[0], seen + theirs[1]
        return PlaceLoad(place, degraded, seen)

    def _own(self, place: str, at: float) -> tuple[int, int]:
        """(degraded, seen): this instance's meetings in ``place`` around ``at``."""
        low, high = at - PLACE_SECONDS, at + PLACE_SECONDS
        seen = degraded = 0
        for entry in self._places.get(place, {}).values():
            if entry.last < low:
                continue
            seen += 1
            bad = sum(1 for t in (entry.bad or {}).values() if low <= t <= high)
            degraded += bad >= (1 if entry.alone else 2)
        return degraded, seen

    def summary(self, at: float) -> dict[str, tuple[int, int]]:
        """This instance's own loads at ``at``, for the other instances: (degraded,
        meetings) per place with a meeting seen lately; at most :data:`SHARED_PLACES`
        places (those with the most meetings), names clipped to :data:`MAX_PLACE`."""
        loads = [(place, self._own(place, at)) for place in self._places]
        lively = [(place, load) for place, load in loads if load[1]]
        if len(lively) > SHARED_PLACES:
            lively = heapq.nlargest(SHARED_PLACES, lively, key=lambda item: item[1][::-1])
        return {place[:MAX_PLACE]: load for place, load in lively}

    def count_in(self, others: Mapping[str, tuple[int, int]]) -> None:
        """The other instances' loads (summed per place), replacing the previous ones."""
        self._others = dict(others)
        self._loads.clear()

    def __len__(self) -> int:
        return sum(len(meetings) for meetings in self._places.values())


@lru_cache(maxsize=4096)  # every poll asks; participants share a handful of places
def places_of(
    country: str | None, region: str | None, org: str | None, asn: str | None = None
) -> tuple[str, ...]:
    """The places a participant counts in: its region and its network org (VideoSDK says
    ``unknown`` when it does not know: no place)."""
    out = []
    if _known(region):
        out.append(f"region {region}, {country}" if _known(country) else f"region {region}")
    if _known(org):
        out.append(f"network {org}")
    elif _known(asn):
        out.append(f"network {asn}")
    return tuple(out)


def _known(value: str | None) -> bool:
    return bool(value) and str(value).strip().lower() not in ("unknown", "n/a", "null", "none")


def likely_cause(
    participant_id: str,
    window: Window,
    at: float,
    *,
    peers: Sequence[Peer] = (),
    places: Sequence[PlaceLoad] = (),
) -> Verdict:
    """The likely cause of a participant's trouble at ``at`` (epoch seconds, the alert's
    sample time), decided in this order: platform, a sender's uplink, the participant's
    own uplink, their downlink, their device; else unknown."""
    mine = recent(window, at)
    if not mine.samples:
        return Verdict("unknown", ("no sample in the last 60s to judge from",))
    own = _own_line(mine)
    if mine.degraded:
        crowded = [p for p in places if _crowded(p)]
        if crowded:
            worst = max(crowded, key=lambda p: (p.degraded / p.meetings, p.degraded))
            line = (
                f"{worst.degraded} of {worst.meetings} meetings in {_clip(worst.place, 80)} "
                f"degraded in the same {PLACE_SECONDS / 60:g} minutes"
            )
            return Verdict("platform", (line, own))
    seen: list[tuple[Peer, Figures]] = []
    if mine.recv_bad:  # only what the participant receives is judged against the others
        others = [(peer, _peer_figures(peer, at)) for peer in peers]
        seen = [(peer, fig) for peer, fig in others if fig is not None]
    if mine.recv_bad and not mine.send_bad:
        blamed = _lossy_sender(mine, seen)
        if blamed is not None:
            return blamed
    if mine.send_bad or (mine.path_bad and not mine.recv_bad):
        line = (
            f"send loss {_num(mine.send_loss)} (receive {_num(mine.recv_loss)}) over the last 60s"
            if mine.send_bad
            else f"RTT {_ms(mine.rtt)}, jitter {_ms(mine.jitter)} while receive loss "
            f"is {_num(mine.recv_loss)} over the last 60s"
        )
        return Verdict("uplink", (line, *_own_extra(mine)), participant_id)
    if mine.recv_bad:
        return _downlink(participant_id, mine, seen)
    dropped = _device(window, mine)  # the network is not the trouble by now
    if dropped is not None:
        return Verdict("device", (dropped, own), participant_id)
    return Verdict("unknown", (f"no network or device signal: {own}",))


def _crowded(load: PlaceLoad) -> bool:
    return (
        load.meetings > 0
        and load.degraded >= PLATFORM_MEETINGS
        and load.degraded / load.meetings >= PLATFORM_SHARE
    )


def _peer_figures(peer: Peer, at: float) -> Figures | None:
    """A peer's recent figures around ``at``: its own newest minute when its polls lag
    (None when it has nothing within the window)."""
    newest = peer.window.newest
    if newest is None or newest < at - WINDOW_SECONDS:
        return None
    found = recent(peer.window, min(at, newest))
    return found if found.samples else None


def _lossy_sender(mine: Figures, seen: Sequence[tuple[Peer, Figures]]) -> Verdict | None:
    """The peer whose send loss is high and whose receivers (everyone else watched, this
    participant included) mostly degraded: the trouble is upstream of them all."""
    senders = [(p, f) for p, f in seen if f.send_bad]
    if not senders:
        return None
    sender, figs = max(senders, key=lambda pf: pf[1].send_loss or 0.0)
    receivers = [f for p, f in seen if p is not sender]
    hurt = 1 + sum(1 for f in receivers if f.recv_bad)
    total = 1 + len(receivers)
    if hurt / total < RECEIVERS_SHARE:
        return None
    name = _clip(sender.name or sender.participant_id)
    return Verdict(
        "sender-uplink",
        (
            f"{name}'s send loss {_num(figs.send_loss)}; {hurt} of {total} watched "
            f"receivers of {name} degraded",
            f"own receive loss {_num(mine.recv_loss)}, send loss {_num(mine.send_loss)} "
            "over the last 60s",
        ),
        sender.participant_id,
    )


def _downlink(me: str, mine: Figures, seen: Sequence[tuple[Peer, Figures]]) -> Verdict:
    line = f"receive loss {_num(mine.recv_loss)} (send {_num(mine.send_loss)}) over the last 60s"
    if not seen:
        return Verdict(
            "downlink",
            (line, "no other participant of the meeting is watched to compare with"),
            me,
        )
    fine = [f for _, f in seen if f.recv_fine]
    if len(fine) * 2 < len(seen):  # most others lose too, and no sender explains it
        hurt = sum(1 for _, f in seen if f.recv_bad)
        return Verdict(
            "unknown",
            (line, f"{hurt} of {len(seen)} others in the meeting lose what they receive too"),
        )
    others = [f.recv_loss for f in fine if f.recv_loss is not None]
    average = sum(others) / len(others) if others else None
    return Verdict(
        "downlink",
        (
            line,
            f"{len(fine)} of {len(seen)} others in the meeting receive fine "
            f"(receive loss {_num(average)}); nobody's send loss is high",
        ),
        me,
    )


def _device(window: Window, mine: Figures) -> str | None:
    """The send bitrate fell to at most half of the participant's usual one.

    A resolution drop alone is not enough: VideoSDK does not say whether
    ``resolutionUsage`` is what the participant sends or receives, and it falls with any
    quality drop; it is shown beside the bitrate when known."""
    now_kbps, usual = mine.send_kbps, window.usual_kbps
    if now_kbps is None or usual is None or usual < BITRATE_FLOOR:
        return None
    if now_kbps > usual * BITRATE_DROP:
        return None
    resolution = f", resolution {_num(mine.resolution)}p" if mine.resolution is not None else ""
    return (
        f"send video bitrate {_num(now_kbps)} kbit/s, usually {_num(usual)} kbit/s"
        f"{resolution}, while the network is fine"
    )


def _own_line(fig: Figures) -> str:
    return (
        f"send loss {_num(fig.send_loss)}, receive loss {_num(fig.recv_loss)}, "
        f"RTT {_ms(fig.rtt)}, jitter {_ms(fig.jitter)} over the last 60s"
    )


def _own_extra(fig: Figures) -> tuple[str, ...]:
    if fig.path_bad and fig.send_bad:
        return (f"RTT {_ms(fig.rtt)}, jitter {_ms(fig.jitter)}",)
    return ()


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{_num(value)} ms"


def _num(value: float | None) -> str:
    """A figure for a human: 12.3, 0.4, 940, 1.2e+15; "n/a" when unknown."""
    if value is None:
        return "n/a"
    if value >= 1e6:
        return f"{value:.3g}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}".removesuffix(".0")


def _clip(text: str, limit: int = MAX_NAME) -> str:
    """A name fit for one evidence line: control characters out, at most ``limit`` long."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text[: limit * 4]).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"
