"""Per-participant minute summaries: what history keeps of the samples (issue 20).

Every sample is not kept: per participant and minute, the min, average and max of each
metric the rules look at, and how many samples there were. Packed to fit the storage
budget (50 MB a day per 1,000 participants watched all day, ~35 bytes a participant-
minute): one row per participant and 30-minute bucket (``history_minutes``), the
minutes present as a bit mask, the metrics present as a bit mask over ``CODES``, and
per metric the minute's average as an IEEE half float (3 significant digits: 4.42
reads back 4.418; raw bitrates in kbit/s to stay in range) and its min and max as one
byte each, how far they lie from the average (a log scale: within ~4% of that distance),
column by column and zlib-compressed. Who a row is about is a 64-bit hash
of (session, participant), named once in ``history_participants``.

The poller folds each poll's new samples in (``Minutes.add``, no I/O); a bucket that
closes (a sample in a later bucket, the participant leaving, a stop) becomes a row the
poll state's write-behind writes with the cycle's other results (``PollState.flush``).
A crash loses what was not written yet: at most the open buckets and one cycle.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watchdog.state.database import Cursor, Database
from watchdog.state.rows import Key
from watchdog.videosdk.stats import ParticipantInfo, Sample

# every metric a row may hold, by bit position: append only (stored rows refer to these)
CODES: tuple[str, ...] = (
    "recvAudioPacketLost",
    "recvVideoPacketLost",
    "sendAudioPacketLost",
    "sendVideoPacketLost",
    "averageAudioRtt",
    "averageVideoRtt",
    "averageAudioJitter",
    "averageVideoJitter",
    "averageSendAudioBitrate",
    "averageSendVideoBitrate",
    "averageRecvAudioBitrate",
    "averageRecvVideoBitrate",
    "qualityScore.audio",
    "qualityScore.video",
    "totalPacketLost",
    "audioPacketLost",
    "videoPacketLost",
    "sendAudioKbps",
    "sendVideoKbps",
    "recvAudioKbps",
    "recvVideoKbps",
    "resolution",
)
_BIT = {name: 1 << index for index, name in enumerate(CODES)}
# raw bitrates (bit/s) overflow a half float: kept in kbit/s, read back in bit/s
_SCALE = {name: 1000.0 for name in CODES if name.endswith("Bitrate")}
BUCKET = 30  # minutes a row covers at most (the mask and COMPRESSED fit in 31 bits)
_HALF_MAX = 65504.0
_NAN = float("nan")
_MISSING_MINUTE = struct.pack("<eBB", _NAN, 0, 0)  # a metric no sample of the minute had
_FRESH = array("d", (math.inf, 0.0, -math.inf, 0.0))  # a metric's low, total, high, seen
_UPSERT_WHO = (
    "INSERT INTO history_participants (who, session_id, participant_id, meeting_id, name,"
    " first_minute, last_minute) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (who) DO UPDATE SET"
    " last_minute = excluded.last_minute, meeting_id = COALESCE(excluded.meeting_id,"
    " history_participants.meeting_id), name = COALESCE(excluded.name, history_participants.name)"
    " WHERE history_participants.last_minute < excluded.last_minute"
)
_INSERT_ROW = (
    "INSERT INTO history_minutes (start, who, metrics, minutes, data) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (start, who) DO NOTHING"
)


def who_of(session: str, participant: str) -> int:
    """A participant's 64-bit key in the summary tables (signed: PostgreSQL's BIGINT)."""
    digest = hashlib.blake2b(f"{session}\0{participant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def mask_of(metrics: Iterable[str]) -> int:
    """The bit mask of the metrics kept (those ``CODES`` knows)."""
    mask = 0
    for name in metrics:
        mask |= _BIT.get(name, 0)
    return mask


def names_of(mask: int) -> list[str]:
    return [name for index, name in enumerate(CODES) if mask >> index & 1]


def _half(value: float, scale: float) -> float:
    """A figure as a half float can hold it: scaled, and clipped to its range."""
    scaled = value / scale
    return max(-_HALF_MAX, min(_HALF_MAX, scaled)) if not math.isnan(scaled) else scaled


@dataclass(frozen=True, slots=True)
class Row:
    """One participant's minutes of one bucket, packed."""

    start: int  # epoch minutes of the first minute present
    who: int
    metrics: int  # mask over CODES
    minutes: int  # mask: bit i is minute start + i
    data: bytes
    info: ParticipantInfo


@dataclass(frozen=True, slots=True)
class Minute:
    """One participant-minute read back: per metric (min, avg, max), and the sample count."""

    at: datetime  # the minute's start
    samples: int
    values: dict[str, tuple[float, float, float]]


@dataclass(slots=True)
class _Open:
    """A participant's bucket being filled: its finished minutes packed as they finish
    (minute by minute: the count, then per metric the average as a half float and the two
    spread codes, 1 + 4 bytes a metric), the current minute's running figures as raw
    doubles. Packed at once because 10,000 participants hold a bucket each: ~1 KB apiece
    at 8 metrics (Python floats in a list would add ~0.8 KB; a bytearray, its slack)."""

    who: int
    info: ParticipantInfo
    names: tuple[str, ...]
    mask: int
    start: int = -1  # first minute present
    minute: int = -1  # the minute being summed
    minutes: int = 0
    packed: bytes = b""
    count: int = 0
    figures: array[float] = field(default_factory=lambda: array("d"))  # low, total, high, seen

    def fold(self, minute: int, values: dict[str, float]) -> None:
        if minute != self.minute:
            self._finish_minute()
            if self.start < 0:
                self.start = minute
            self.minute = minute
            self.figures = _FRESH * len(self.names)
            self.count = 0
        self.count += 1
        figures = self.figures
        for index, name in enumerate(self.names):
            value = values.get(name)
            if type(value) is not float and type(value) is not int:  # bool, None: not one
                continue
            if value != value:  # NaN  # noqa: PLR0124
                continue
            base = 4 * index
            figures[base] = min(figures[base], value)
            figures[base + 1] += value
            figures[base + 2] = max(figures[base + 2], value)
            figures[base + 3] += 1

    def _finish_minute(self) -> None:
        if self.minute < 0 or self.count == 0:
            return
        parts = [bytes((min(self.count, 255),))]
        figures = self.figures
        for index, name in enumerate(self.names):
            low, total, high, seen = figures[4 * index : 4 * index + 4]
            if not seen:
                parts.append(_MISSING_MINUTE)
                continue
            avg = total / seen
            scale = _SCALE.get(name, 1.0)
            parts.append(
                struct.pack(
                    "<eBB", _half(avg, scale), _spread_code(avg, low), _spread_code(avg, high)
                )
            )
        self.packed += b"".join(parts)  # one exact-size copy a minute: no bytearray slack
        self.minutes |= 1 << (self.minute - self.start)
        self.count = 0

    def close(self) -> Row | None:
        self._finish_minute()
        if not self.minutes:
            return None
        data, compressed = encode(len(self.names), self.packed)
        flag = COMPRESSED if compressed else 0
        return Row(self.start, self.who, self.mask, self.minutes | flag, data, self.info)


class Minutes:
    """The open buckets of every watched participant (fed by the poller), and the
    ``history_minutes`` and ``history_participants`` tables.

    No lock on the poll path: a participant is polled by one thread at a time (the
    poller's promise), so only that thread touches its bucket, and the dict's single
    get, set and pop are atomic. A lock taken by every poll of 16-32 threads cost more
    than the folding itself (the GIL handed over at each wait).
    """

    def __init__(self, db: Database, metrics: Iterable[str] = ()) -> None:
        self._db = db
        self._open: dict[Key, _Open] = {}
        self._kept: tuple[tuple[str, ...], int] = ((), 0)
        self.keep(metrics)

    def keep(self, metrics: Iterable[str]) -> None:
        """Summarise these metrics from now on (a reload's rules); unknown names are
        skipped. Open buckets of another set close at their next sample."""
        wanted = set(metrics)
        names = tuple(name for name in CODES if name in wanted)
        self._kept = (names, mask_of(names))  # one assignment: a poll reads both or neither

    def add(self, key: Key, info: ParticipantInfo, samples: Sequence[Sample]) -> list[Row]:
        """Fold a poll's new samples (time-ordered) in; returns the buckets they closed."""
        names, mask = self._kept
        if not names or not samples:
            return []
        closed: list[Row] = []
        entry = self._open.get(key)
        for sample in samples:
            minute = int(sample.time.timestamp()) // 60
            if entry is not None and (
                entry.mask != mask
                or minute // BUCKET != entry.start // BUCKET
                or minute < entry.minute
            ):
                row = entry.close()
                if row is not None:
                    closed.append(row)
                entry = None
            if entry is None:
                entry = self._open[key] = _Open(who_of(*key), info, names, mask)
            entry.fold(minute, sample.values)
        if entry is not None and (info.meeting_id or info.name):
            entry.info = info
        return closed

    def close(self, key: Key) -> list[Row]:
        """A participant left: its open bucket, as a row."""
        entry = self._open.pop(key, None)
        row = entry.close() if entry is not None else None
        return [row] if row is not None else []

    def close_all(self) -> list[Row]:
        """Stopping (no poll runs): every open bucket, as rows."""
        entries, self._open = list(self._open.values()), {}
        return [row for entry in entries if (row := entry.close()) is not None]

    # -- the tables ------------------------------------------------------------

    @staticmethod
    def insert(cur: Cursor, rows: Sequence[Row]) -> None:
        """Rows inside the caller's transaction (the poll state's flush); a row already
        there (the same participant and first minute) is kept."""
        if not rows:
            return
        cur.executemany(_INSERT_ROW, [(r.start, r.who, r.metrics, r.minutes, r.data) for r in rows])
        last: dict[int, Row] = {}
        for row in rows:
            if row.who not in last or last[row.who].start < row.start:
                last[row.who] = row
        cur.executemany(
            _UPSERT_WHO,
            [
                (
                    r.who,
                    r.info.session_id,
                    r.info.participant_id,
                    r.info.meeting_id,
                    r.info.name,
                    r.start,
                    r.start + (r.minutes & ~COMPRESSED).bit_length() - 1,
                )
                for r in last.values()
            ],
        )

    def participants(self, since: datetime, until: datetime) -> dict[int, ParticipantInfo]:
        """Who has minutes between the two times, by key."""
        rows = self._db.execute(
            "SELECT who, session_id, participant_id, meeting_id, name FROM history_participants"
            " WHERE last_minute >= ? AND first_minute < ?",
            (_minute(since), _minute(until)),
        ).fetchall()
        return {
            int(who): ParticipantInfo(session, participant, meeting_id=meeting, name=name)
            for who, session, participant, meeting, name in rows
        }

    def meeting(self, meeting_id: str) -> tuple[dict[int, ParticipantInfo], datetime, datetime]:
        """Who had minutes in a meeting (or a session), and from when to when."""
        rows = self._db.execute(
            "SELECT who, session_id, participant_id, meeting_id, name, first_minute, last_minute"
            " FROM history_participants WHERE meeting_id = ? OR session_id = ?",
            (meeting_id, meeting_id),
        ).fetchall()
        who = {int(r[0]): ParticipantInfo(r[1], r[2], meeting_id=r[3], name=r[4]) for r in rows}
        first = min((int(r[5]) for r in rows), default=0)
        last = max((int(r[6]) for r in rows), default=-1)
        return who, _at(first), _at(last + 1)

    def read(
        self, since: datetime, until: datetime, who: Iterable[int] | None = None
    ) -> dict[int, list[Minute]]:
        """Every participant's minutes in [since, until), oldest first; minutes stored twice
        (two instances, a restart inside a bucket) are merged."""
        wanted = None if who is None else set(who)
        first, end = _minute(since), _minute(until)
        out: dict[int, dict[int, Minute]] = {}
        for start, stored, metrics, minutes, data in self._rows(first - BUCKET, end):
            key = int(stored)
            if wanted is not None and key not in wanted:
                continue
            mine = out.setdefault(key, {})
            for minute in decode(int(start), int(metrics), int(minutes), bytes(data)):
                index = int(minute.at.timestamp()) // 60
                if first <= index < end:
                    earlier = mine.get(index)
                    mine[index] = minute if earlier is None else _merge(earlier, minute)
        return {key: [found[m] for m in sorted(found)] for key, found in out.items()}

    def _rows(self, first: int, end: int) -> Iterator[tuple[int, int, int, int, bytes]]:
        """Rows starting in [first, end), a bounded page at a time."""
        after = (first - 1, -(1 << 63))
        while True:
            page = self._db.execute(
                "SELECT start, who, metrics, minutes, data FROM history_minutes"
                " WHERE start < ? AND (start > ? OR (start = ? AND who > ?))"
                " ORDER BY start, who LIMIT 5000",
                (end, after[0], after[0], after[1]),
            ).fetchall()
            yield from page
            if len(page) < 5000:
                return
            after = (int(page[-1][0]), int(page[-1][1]))


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def _minute(moment: datetime) -> int:
    return int(moment.timestamp()) // 60


_SPREAD_UNIT = 0.005  # the smallest spread a min/max code tells apart, relative to the avg
_SPREAD_STEPS = 24.0  # codes per e-fold of spread: each code ~4% of the spread it stands for
COMPRESSED = 1 << 30  # in ``minutes``: the data is zlib-compressed


def _spread_code(avg: float, other: float) -> int:
    """How far a minute's min or max lies from its average, in one byte: relative to the
    average (absolute when it is 0), on a log scale from 0.5% to 200 times it."""
    distance = abs(avg - other) / (abs(avg) or 1.0)
    return min(255, round(math.log1p(distance / _SPREAD_UNIT) * _SPREAD_STEPS))


def _spread(avg: float, code: int) -> float:
    return _SPREAD_UNIT * math.expm1(code / _SPREAD_STEPS) * (abs(avg) or 1.0)


def encode(metrics: int, packed: bytes) -> tuple[bytes, bool]:
    """A bucket's minutes (as ``_Open`` packs them) column by column, and whether that was
    zlib-compressed (when shorter): the sample counts, then per metric the averages' high
    bytes, their low bytes, the min codes and the max codes (alike bytes together)."""
    width = 1 + 4 * metrics
    out = bytearray(packed[0::width])
    for index in range(metrics):
        base = 1 + 4 * index
        out += packed[base + 1 :: width] + packed[base::width]
        out += packed[base + 2 :: width] + packed[base + 3 :: width]
    compressed = zlib.compress(bytes(out), 9)
    if len(compressed) < len(out):
        return compressed, True
    return bytes(out), False


def decode(start: int, metrics: int, minutes: int, data: bytes) -> list[Minute]:
    """A stored row's minutes; a row that does not add up reads as nothing."""
    names = names_of(metrics)
    if minutes & COMPRESSED:
        try:
            data = zlib.decompressobj().decompress(data, 1 << 16)
        except zlib.error:
            return []
    offsets = [i for i in range(BUCKET) if minutes >> i & 1]
    size = len(offsets)
    if len(data) != size * (1 + 4 * len(names)):
        return []
    columns: dict[str, list[tuple[float, float, float] | None]] = {}
    base = size
    for name in names:
        high, low = data[base : base + size], data[base + size : base + 2 * size]
        averages = struct.unpack(
            f"<{size}e", bytes(b for pair in zip(low, high, strict=True) for b in pair)
        )
        under = data[base + 2 * size : base + 3 * size]
        over = data[base + 3 * size : base + 4 * size]
        scale = _SCALE.get(name, 1.0)
        columns[name] = [
            None
            if math.isnan(avg)
            else (
                (avg - _spread(avg, under[i])) * scale,
                avg * scale,
                (avg + _spread(avg, over[i])) * scale,
            )
            for i, avg in enumerate(averages)
        ]
        base += 4 * size
    out = []
    for slot, offset in enumerate(offsets):
        values = {n: f for n, col in columns.items() if (f := col[slot]) is not None}
        at = datetime.fromtimestamp((start + offset) * 60, UTC)
        out.append(Minute(at, data[slot], values))
    return out


def _merge(a: Minute, b: Minute) -> Minute:
    """One minute stored twice: the extremes of both, the averages weighted by samples."""
    values = dict(a.values)
    total = max(a.samples + b.samples, 1)
    for name, (low, avg, high) in b.values.items():
        mine = values.get(name)
        if mine is None:
            values[name] = (low, avg, high)
            continue
        mean = (mine[1] * a.samples + avg * b.samples) / total
        values[name] = (min(mine[0], low), mean, max(mine[2], high))
    return Minute(a.at, min(a.samples + b.samples, 255), values)


def as_samples(minutes: Sequence[Minute], pick: str = "avg") -> list[Sample]:
    """Minutes as one sample each, at the minute's middle: ``pick`` is avg, min or max."""
    index = {"min": 0, "avg": 1, "max": 2}[pick]
    half = timedelta(seconds=30)
    return [
        Sample(m.at + half, {name: figures[index] for name, figures in m.values.items()})
        for m in minutes
    ]
