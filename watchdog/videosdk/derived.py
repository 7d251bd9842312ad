"""Metrics people think in, derived from the raw sample fields VideoSDK returns.

VideoSDK reports loss per direction and kind, bitrates in bit/s and the
resolution in use as a separate ``resolutionUsage`` series; an on-call
engineer thinks "total packet loss", "kbit/s" and "720p". Derived values are
computed at parse time so every rule kind (threshold, window, spike) and
``replay`` see them exactly like raw fields.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from watchdog.videosdk.fields import SAMPLE_FIELDS

_LOSS = ("recvAudioPacketLost", "recvVideoPacketLost", "sendAudioPacketLost", "sendVideoPacketLost")
_KBPS = {
    "sendAudioKbps": "averageSendAudioBitrate",
    "sendVideoKbps": "averageSendVideoBitrate",
    "recvAudioKbps": "averageRecvAudioBitrate",
    "recvVideoKbps": "averageRecvVideoBitrate",
}

DERIVED_FIELDS: dict[str, str] = {
    "totalPacketLost": "packets lost in all directions, audio and video (sum of the four)",
    "audioPacketLost": "audio packets lost, sent and received",
    "videoPacketLost": "video packets lost, sent and received",
    "sendAudioKbps": "audio send bitrate (kbit/s)",
    "sendVideoKbps": "video send bitrate (kbit/s)",
    "recvAudioKbps": "audio receive bitrate (kbit/s)",
    "recvVideoKbps": "video receive bitrate (kbit/s)",
    "resolution": "dominant video resolution from resolutionUsage (lines: 180, 360, 720, ...)",
}

METRICS: dict[str, str] = {**SAMPLE_FIELDS, **DERIVED_FIELDS}


def _sum(values: dict[str, float], names: Sequence[str]) -> float | None:
    present = [values[name] for name in names if name in values]
    return sum(present) if present else None


def derive(values: dict[str, float]) -> None:
    """Add the derived metrics a sample's raw fields allow (in place); missing stays missing."""
    for name, parts in (
        ("totalPacketLost", _LOSS),
        ("audioPacketLost", _LOSS[0::2]),
        ("videoPacketLost", _LOSS[1::2]),
    ):
        total = _sum(values, parts)
        if total is not None:
            values[name] = total
    for name, raw in _KBPS.items():
        if raw in values:
            values[name] = values[raw] / 1000.0


def dominant_resolution(entry: Any) -> float | None:
    """The resolution (in lines) with the largest usage in one ``resolutionUsage`` entry."""
    if not isinstance(entry, dict):
        return None
    best: tuple[float, float] | None = None
    for key, usage in entry.items():
        if not isinstance(key, str) or not key.isdigit():
            continue
        if not isinstance(usage, int | float) or isinstance(usage, bool):
            continue
        if not math.isfinite(usage) or usage <= 0:
            continue
        candidate = (float(usage), float(key))
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


def nearest(times: Sequence[datetime], moment: datetime) -> int | None:
    """Index of the time in sorted ``times`` closest to ``moment`` (the later one on a tie)."""
    if not times:
        return None
    index = bisect_left(times, moment)
    if index == 0:
        return 0
    if index == len(times):
        return index - 1
    before, after = times[index - 1], times[index]
    return index - 1 if moment - before < after - moment else index
