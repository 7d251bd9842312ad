"""Typed, defensively parsed participant stats.

The stats endpoint returns the whole history every time and documents no
field as guaranteed, so parsing skips samples at or before the cursor
cheaply and treats every field of a new sample as possibly missing: a bad
sample or field is dropped, logged and counted, never fatal.
"""

from __future__ import annotations

import logging
import math
import operator
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watchdog.durations import format_time, parse_time
from watchdog.obs.telemetry import SAMPLE_ERRORS
from watchdog.videosdk.derived import derive, dominant_resolution, nearest
from watchdog.videosdk.fields import SAMPLE_FIELDS

log = logging.getLogger(__name__)


class StatsShapeError(ValueError):
    """The response as a whole is unusable (not an object, ``stats`` not a list)."""


@dataclass(frozen=True, slots=True)
class ParticipantInfo:
    """Who a sample is about: what the on-call engineer needs to recognise the call."""

    session_id: str
    participant_id: str
    meeting_id: str | None = None
    name: str | None = None
    device: str | None = None
    device_version: str | None = None
    sdk_name: str | None = None
    sdk_version: str | None = None
    country: str | None = None
    city: str | None = None
    region: str | None = None
    asn: str | None = None
    org: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    time: datetime
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParticipantStats:
    info: ParticipantInfo
    samples: tuple[Sample, ...]
    dropped: int = 0
    future: int = 0  # samples stamped after ``until``, dropped


# participants choose their own names: a 1 MB name would be matched by every filter,
# stored, and rendered into every alert; no real display name or device string is this long
MAX_TEXT_CHARS = 256


def clip_text(value: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
    """``value`` cut to ``limit`` characters, marked with an ellipsis where it was cut."""
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "\u2026"


def _text(obj: Any, *keys: str) -> str | None:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    if obj.__class__ is str:
        return obj if len(obj) <= MAX_TEXT_CHARS else clip_text(obj)
    if isinstance(obj, str | int | float) and not isinstance(obj, bool):
        return clip_text(str(obj))
    return None


def parse_info(raw: dict[str, Any], session_id: str, participant_id: str) -> ParticipantInfo:
    return ParticipantInfo(
        session_id=_text(raw, "sessionId") or session_id,
        participant_id=_text(raw, "participantId") or participant_id,
        meeting_id=_text(raw, "meetingId"),
        name=_text(raw, "participantName"),
        device=_text(raw, "deviceInfo", "deviceName"),
        device_version=_text(raw, "deviceInfo", "deviceVersion"),
        sdk_name=_text(raw, "sdkInfo", "sdkName"),
        sdk_version=_text(raw, "sdkInfo", "sdkVersion"),
        country=_text(raw, "location", "country"),
        city=_text(raw, "location", "city"),
        region=_text(raw, "location", "region"),
        asn=_text(raw, "network", "asn"),
        org=_text(raw, "network", "org"),
    )


def _flatten(raw: dict[str, Any], prefix: str, out: dict[str, float], bad: list[str]) -> None:
    # every poll runs this over each new sample's ~20 fields: the JSON types a decoder
    # returns are checked by class first (a float is finite iff x - x == 0), the rest as before
    for key, value in raw.items():
        name = prefix + key if key.__class__ is str else prefix + str(key)
        cls = value.__class__
        if cls is float:
            if value - value == 0:
                out[name] = value
            else:
                bad.append(name)
        elif cls is int:
            number = float(value)
            if number - number == 0:
                out[name] = number
            else:
                bad.append(name)
        elif cls is dict or isinstance(value, dict):
            _flatten(value, name + ".", out, bad)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                out[name] = number
            else:
                bad.append(name)
        elif name in SAMPLE_FIELDS:
            bad.append(name)


def parse_sample(raw: dict[str, Any], time: datetime) -> tuple[Sample, list[str]]:
    """A sample's numeric fields, flattened to dotted names, and the documented ones it lacks.

    Undocumented numeric fields are kept (rules may use them); undocumented
    non-numeric ones are ignored; a documented field that is missing or not a
    finite number is reported.
    """
    values: dict[str, float] = {}
    bad: list[str] = []
    _flatten(raw, "", values, bad)
    if len(values) < len(SAMPLE_FIELDS) or bad:
        bad.extend(name for name in SAMPLE_FIELDS if name not in values and name not in bad)
    derive(values)
    return Sample(time=time, values=values), bad


def _partition(items: list[Any], cutoff: str | None) -> tuple[str, list[tuple[Any, Any]]]:
    """Split a history at ``cutoff``, judged as text: ``(newest, rest)``, where ``newest`` is
    the newest time at or before ``cutoff`` ("" if none) among entries in the API's fixed
    format (``2022-07-15T10:10:18.601Z``, which sorts as text), and ``rest`` holds every
    other entry with its raw ``time``, in order (non-objects with time None).

    Samples and usage entries at or before the cursor are skipped this way, so a long
    call's old history costs no datetime parsing. Every poll runs it over the whole
    history: a history in time order, as the API sends it, is cut with a binary search
    and its old part checked in one pass of C code; any other goes entry by entry.
    """
    if cutoff is not None and items:
        split = _split_sorted(items, cutoff)
        if split is not None:
            return split
    newest = ""
    rest: list[tuple[Any, Any]] = []
    keep = rest.append
    for item in items:
        value = item.get("time") if isinstance(item, dict) else None
        if (
            cutoff is not None
            and value.__class__ is str
            and value <= cutoff
            and len(value) == 24
            and value[23] == "Z"
            and value[19] == "."
            and value[10] == "T"
            and value[4] == "-"
        ):
            if value > newest:  # noqa: PLR1730 (max() is a call per old entry of every poll)
                newest = value
        else:
            keep((item, value))
    return newest, rest


# what marks the API's time format, 2022-07-15T10:10:18.601Z, at fixed places (24 long)
_MARKS = operator.itemgetter(4, 10, 19, 23)
_API_MARKS = {("-", "T", ".", "Z")}


def _split_sorted(items: list[Any], cutoff: str) -> tuple[str, list[tuple[Any, Any]]] | None:
    """:func:`_partition` of a history whose entries are all objects with text times in
    ascending order, the old ones all in the API's format; None for any other."""
    try:
        times = [item["time"] for item in items]
    except (KeyError, TypeError, IndexError):  # not all objects with a time: entry by entry
        return None
    if set(map(type, times)) != {str} or not all(map(operator.le, times, times[1:])):
        return None
    index = bisect_right(times, cutoff)
    old = times[:index]
    if old and (set(map(len, old)) != {24} or set(map(_MARKS, old)) != _API_MARKS):
        return None
    return (old[-1] if old else ""), list(zip(items[index:], times[index:], strict=True))


def _attach_resolutions(
    usage: Any, times: list[datetime], samples: dict[datetime, Sample], before: str | None
) -> None:
    """Each ``resolutionUsage`` entry names the dominant resolution of the sample nearest in time.

    Usage entries are a separate series whose timestamps are close to, not equal to,
    the samples'; entries nearest an already-evaluated sample are skipped (``times``
    holds the newest evaluated one, so an entry at or before ``before``, its time,
    is skipped unparsed).
    """
    if not isinstance(usage, list) or not samples:
        return
    for entry, raw in _partition(usage, before)[1]:
        if not isinstance(entry, dict):
            continue
        moment = parse_time(raw)
        resolution = dominant_resolution(entry) if moment is not None else None
        if moment is None or resolution is None:
            continue
        index = nearest(times, moment)
        sample = samples.get(times[index]) if index is not None else None
        if sample is not None:
            sample.values["resolution"] = resolution


_LATEST = "9999-12-31T23:59:59.999Z"


def _newest(series: list[Any], until: datetime | None) -> datetime | None:
    """The newest sample time up to ``until``; API-format times compared as text, only the
    newest parsed (a sample stamped in the future must not hide the real history)."""
    limit = format_time(until) if until is not None else _LATEST
    newest_text, rest = _partition(series, limit)
    others: list[datetime] = []
    for _, raw_time in rest:
        if (moment := parse_time(raw_time)) is not None and (until is None or moment <= until):
            others.append(moment)
    if newest_text:
        others.append(datetime.fromisoformat(newest_text))
    return max(others, default=None)


def parse_stats(
    raw: Any,
    session_id: str,
    participant_id: str,
    after: datetime | None = None,
    *,
    lookback: timedelta | None = None,
    until: datetime | None = None,
) -> ParticipantStats:
    """Parse a stats response, keeping only samples newer than ``after``, in time order.

    Without ``after`` (a participant seen for the first time), ``lookback`` keeps
    only the samples that recent before the newest one: what the rules can
    still act on, not transitions that ended long ago. Samples stamped after
    ``until`` (the API's clock plus the allowed skew) are dropped and counted in
    ``future``: evaluated, one would move the cursor past every real sample to come.
    """
    if not isinstance(raw, dict):
        SAMPLE_ERRORS.labels("response_not_object").inc()
        raise StatsShapeError("stats response is not a JSON object")
    info = parse_info(raw, session_id, participant_id)
    series = raw.get("stats")
    if series is None:
        series = []
    if not isinstance(series, list):
        SAMPLE_ERRORS.labels("stats_not_list").inc()
        raise StatsShapeError("'stats' in the response is not a list")
    if after is None and lookback is not None:
        newest = _newest(series, until)
        if newest is not None:
            after = newest - lookback - timedelta(microseconds=1)
    by_time: dict[datetime, Sample] = {}
    dropped = future = 0
    bad_fields: set[str] = set()
    cutoff = format_time(after) if after is not None else None
    # the newest old sample in the API's format, compared as text; the others to look at
    newest_skipped, rest = _partition(series, cutoff)
    old: list[datetime] = []  # old samples in any other format
    for item, raw_time in rest:
        time = parse_time(raw_time)
        if time is None:
            dropped += 1
            SAMPLE_ERRORS.labels("bad_time").inc()
            continue
        if after is not None and time <= after:
            old.append(time)
            continue
        if until is not None and time > until:
            future += 1
            continue
        sample, bad = parse_sample(item, time)
        if bad:
            SAMPLE_ERRORS.labels("bad_field").inc(len(bad))
            bad_fields.update(bad)
        by_time[time] = sample
    ids = {"session_id": info.session_id, "participant_id": info.participant_id}
    if future:
        SAMPLE_ERRORS.labels("future_time").inc(future)
    if dropped:
        log.warning("dropped %d stats samples without a valid time", dropped, extra=ids)
    if bad_fields:
        log.warning(
            "stats samples with missing or malformed fields: %s",
            ", ".join(sorted(bad_fields)),
            extra=ids,
        )
    if newest_skipped:
        old.append(datetime.fromisoformat(newest_skipped))
    latest_old = max(old, default=None)
    times = sorted([*by_time, *([latest_old] if latest_old is not None else [])])
    before = format_time(latest_old) if latest_old is not None else None
    _attach_resolutions(raw.get("resolutionUsage"), times, by_time, before)
    samples = tuple(by_time[t] for t in sorted(by_time))
    return ParticipantStats(info=info, samples=samples, dropped=dropped, future=future)
