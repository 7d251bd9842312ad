"""Shared test helpers: crafted samples and stats responses in the API's own shape."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.durations import format_time

T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(seconds: float, video: float = 4.2, **fields: Any) -> dict[str, Any]:
    """A full, healthy stats sample at T0 + seconds with a chosen video score."""
    base: dict[str, Any] = {
        "time": format_time(at(seconds)),
        "recvAudioPacketLost": 0,
        "recvVideoPacketLost": 0,
        "sendAudioPacketLost": 0,
        "sendVideoPacketLost": 0,
        "averageAudioRtt": 40.5,
        "averageVideoRtt": 42.0,
        "averageAudioJitter": 1,
        "averageVideoJitter": 2,
        "averageSendAudioBitrate": 60218,
        "averageSendVideoBitrate": 103900,
        "averageRecvAudioBitrate": 60054,
        "averageRecvVideoBitrate": 307229,
        "qualityScore": {"audio": 4.4, "video": video},
    }
    base.update(fields)
    return base


def response(
    samples: list[dict[str, Any]], session: str = "sess-1", participant: str = "part-1"
) -> dict[str, Any]:
    return {
        "sessionId": session,
        "meetingId": "abcd-efgh-ijkl",
        "participantId": participant,
        "participantName": "Alice",
        "deviceInfo": {"deviceName": "Chrome", "deviceVersion": "130.0"},
        "sdkInfo": {"sdkName": "react", "sdkVersion": "0.1.90"},
        "location": {"country": "India", "city": "Mumbai", "region": "MH"},
        "network": {"asn": "AS9829", "org": "BSNL"},
        "stats": samples,
        "resolutionUsage": [],
    }


def video_series(scores: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """Samples from (seconds, video score) pairs."""
    return [sample(t, video=v) for t, v in scores]
