"""Shared test helpers: crafted samples and stats responses in the API's own shape, rules
from YAML text, and alerts and notifications put in the state database through the
daemon's own writes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchdog.alerts import Alert, Notification
from watchdog.config.settings import Config
from watchdog.durations import format_time
from watchdog.engine.rules import RuleSet, load_rules
from watchdog.state.alertlog import AlertingWrite
from watchdog.state.store import Store

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


def record_alerts(store: Store, alerts: Iterable[tuple[Alert, Sequence[str]]]) -> None:
    """Hand (alert, rule notify) pairs to the alert manager in one transaction, through
    the meeting-rule commit with no state changed (polls hand theirs over the same way)."""
    store.polls.commit_meetings({}, (), alerts=alerts)


def enqueue(store: Store, notifications: Iterable[tuple[str, Notification]]) -> int:
    """(dedup key, notification) rows in the outbox as the alert manager writes them, each
    ordered behind its first alert's earlier rows; returns how many keys were new."""
    outbox = [(key, n.alerts[0].fingerprint if n.alerts else "", n) for key, n in notifications]
    return store.alert_log.apply_alerting(AlertingWrite(outbox=outbox))


def as_instance(config: Config, ident: str) -> Config:
    """``config`` for one of several instances sharing its state database: named
    ``ident``, with a long lease (leases move in tests only when the test expires them)."""
    state = config.settings.state.model_copy(
        update={"instance_id": ident, "lease": timedelta(seconds=60)}
    )
    settings = config.settings.model_copy(update={"state": state})
    return Config(settings=settings, path=config.path, document=config.document)


def parse_rules(text: str) -> RuleSet:
    """Rules from YAML text, read by the loader the daemon reads rule files with."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(text)
        return load_rules([path])
