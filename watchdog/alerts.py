"""What notifier plugins receive: alerts and the notifications that carry them.

Part of the public plugin API. Everything here is plain data that survives a
JSON round trip, because notifications wait in the durable outbox before a
notifier sees them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from watchdog.stats import format_time, parse_time

Status = Literal["firing", "resolved"]


def fingerprint(rule: str, session_id: str, participant_id: str) -> str:
    """Stable identity of an alert: one rule on one participant."""
    digest = hashlib.sha256(f"{rule}\x00{session_id}\x00{participant_id}".encode())
    return digest.hexdigest()[:16]


def format_number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")


@dataclass(frozen=True, slots=True)
class Alert:
    fingerprint: str
    rule: str
    status: Status
    severity: str
    metric: str
    op: str
    threshold: float
    value: float | None
    session_id: str
    participant_id: str
    starts_at: datetime  # first sample where the condition held
    fired_at: datetime
    sample_time: datetime  # the sample that caused this status
    ends_at: datetime | None = None
    meeting_id: str | None = None
    participant_name: str | None = None
    summary: str | None = None
    description: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)  # device, sdk, location, network
    # why an alert resolved without a sample showing recovery, e.g. "participant left the
    # session"; None for an ordinary resolution. ``value`` is then the last value seen.
    reason: str | None = None

    @property
    def who(self) -> str:
        name = self.participant_name or "unknown participant"
        return f"{name} ({self.participant_id})"

    @property
    def where(self) -> str:
        meeting = f"meeting {self.meeting_id}" if self.meeting_id else "unknown meeting"
        return f"{meeting}, session {self.session_id}"

    @property
    def condition(self) -> str:
        """``qualityScore.video = 2.41 (threshold < 3)``: the line an engineer reads first."""
        return (
            f"{self.metric} = {format_number(self.value)} "
            f"(threshold {self.op} {format_number(self.threshold)})"
        )

    @property
    def title(self) -> str:
        return self.summary or f"{self.rule}: {self.who} in {self.where}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("starts_at", "fired_at", "sample_time", "ends_at"):
            if data[key] is not None:
                data[key] = format_time(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        values = dict(data)
        for key in ("starts_at", "fired_at", "sample_time", "ends_at"):
            if values.get(key) is not None:
                values[key] = parse_time(values[key])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one notifier: usually one alert, several when grouped.

    ``thread`` is the same for every notification about one alert (or one
    group) from first firing to resolution: notifiers use it to update the
    original message or reply under it. ``repeat`` marks a reminder about an
    alert already notified.
    """

    id: str
    notifier: str
    status: Status
    alerts: tuple[Alert, ...]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    attempt: int = 1
    test: bool = False
    thread: str = ""
    repeat: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "notifier": self.notifier,
            "status": self.status,
            "alerts": [a.to_dict() for a in self.alerts],
            "created_at": format_time(self.created_at),
            "attempt": self.attempt,
            "test": self.test,
            "thread": self.thread,
            "repeat": self.repeat,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        created = parse_time(data.get("created_at")) or datetime.now(UTC)
        return cls(
            id=data["id"],
            notifier=data["notifier"],
            status=data["status"],
            alerts=tuple(Alert.from_dict(a) for a in data["alerts"]),
            created_at=created,
            attempt=int(data.get("attempt", 1)),
            test=bool(data.get("test", False)),
            thread=str(data.get("thread", "")),
            repeat=bool(data.get("repeat", False)),
        )
