"""Metrics people think in, derived from the raw sample fields VideoSDK returns.

VideoSDK reports loss per direction and kind, bitrates in bit/s and the
resolution in use as a separate ``resolutionUsage`` series; an on-call
engineer thinks "total packet loss", "kbit/s" and "720p". Derived values are
computed at parse time so every rule kind (threshold, window, spike) and
``replay`` see them exactly like raw fields.
"""

from __future__ import annotations

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


def _sum(parts: tuple[float | None, ...]) -> float | None:
    """The sum of the parts present (in order, as ``sum`` adds), None if none is."""
    present = [part for part in parts if part is not None]
    return sum(present) if present else None


def derive(values: dict[str, float]) -> None:
    """Add the derived metrics a sample's raw fields allow (in place); missing stays missing."""
    get = values.get
    recv_audio, recv_video, send_audio, send_video = (get(name) for name in _LOSS)
    for name, total in (
        ("totalPacketLost", _sum((recv_audio, recv_video, send_audio, send_video))),
        ("audioPacketLost", _sum((recv_audio, send_audio))),
        ("videoPacketLost", _sum((recv_video, send_video))),
    ):
        if total is not None:
            values[name] = total
    for name, raw in _KBPS.items():
        bitrate = get(raw)
        if bitrate is not None:
            values[name] = bitrate / 1000.0


def dominant_resolution(entry: Any) -> float | None:
    """The resolution (in lines) with the largest usage in one ``resolutionUsage`` entry."""
    if not isinstance(entry, dict):
        return None
    best: tuple[float, float] | None = None
    for key, usage in entry.items():
        # the JSON classes first: every new usage entry of every poll comes through here
        if (usage.__class__ is not int and usage.__class__ is not float) and (
            not isinstance(usage, int | float) or isinstance(usage, bool)
        ):
            continue
        if not usage > 0 or usage - usage != 0:  # also refuses NaN and infinities
            continue
        if not isinstance(key, str) or not key.isdigit():
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
