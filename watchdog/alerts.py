"""What notifier plugins receive: alerts and the notifications that carry them.

Part of the public plugin API. Everything here is plain data that survives a
JSON round trip, because notifications wait in the durable outbox before a
notifier sees them.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from watchdog.durations import format_time, parse_time

__all__ = [
    "API_DEGRADED",
    "BUILTIN_LABELS",
    "CAUSE_TITLES",
    "DAEMON_ALERTS",
    "DAEMON_LABELS",
    "DEFAULT_GROUP_BY",
    "GROUP_BY_ALL",
    "LEFT_WHILE_DEGRADED",
    "MEETING_VIEW",
    "NOTIFIER_FAILING",
    "REPORT_EVENTS",
    "SESSION_ENDED",
    "Affected",
    "Alert",
    "MeetingChanges",
    "Notification",
    "NotificationEvent",
    "Report",
    "ReportSeries",
    "Severity",
    "Status",
    "alert_labels",
    "fingerprint",
    "format_number",
    "group_identity",
    "group_key",
    "group_labels",
    "label_set",
    "meeting_changes",
    "meeting_fingerprint",
    "why_over",
    "worst_first",
]

Status = Literal["firing", "resolved"]
NotificationEvent = Literal["alert", "acknowledged", "unacknowledged", "report", "digest"]
"""What a notification tells: the alerts' state (``"alert"``), that someone took
(``"acknowledged"``) or gave back (``"unacknowledged"``) ownership of alerts still firing,
or a report (``Notification.report``): one call's after it ended (``"report"``), or the
daily digest (``"digest"``). A notifier ignores events it does not know."""
REPORT_EVENTS = ("report", "digest")

# The labels the core gives every alert, named as Alertmanager receivers expect them; the
# rule's own ``labels`` come beside them. ``group_by``, routes and silences use these names.
Severity = Literal["info", "warning", "critical"]
"""What a rule says an alert means; also a label matchers check values against."""

BUILTIN_LABELS = (
    "alertname",
    "severity",
    "meeting_id",
    "session_id",
    "participant_id",
    "scope",
    "metric",
    "cause",
    "cause_participant",
)
GROUP_BY_ALL = "..."  # group_by: [...] groups by every label: one group per alert
DEFAULT_GROUP_BY = ("meeting_id", "alertname")
# group_by: [meeting_id] asks for the meeting view: one living message per meeting
MEETING_VIEW = ("meeting_id",)

LEFT_WHILE_DEGRADED = "left while degraded"
"""``Alert.reason`` of an alert resolved because its participant left the call while it
fired: no sample showed a recovery (an ordinary recovery has no reason)."""
SESSION_ENDED = "the session ended"
"""``Alert.reason`` of an alert resolved because the participant's whole session ended."""

# The daemon's own alerts (scope "daemon"): about the watchdog itself, not a call. They
# carry ``alertname`` and ``severity``, and ``notifier-failing`` the ``notifier`` it is
# about; no meeting, session or participant. No rule may take their names.
API_DEGRADED = "videosdk-api-degraded"
NOTIFIER_FAILING = "notifier-failing"
DAEMON_ALERTS = (API_DEGRADED, NOTIFIER_FAILING)
DAEMON_LABELS = ("notifier",)


CAUSE_TITLES = {
    "uplink": "their own uplink",
    "downlink": "their own downlink",
    "sender-uplink": "another participant's uplink",
    "device": "their device or app",
    "platform": "the platform or their region",
    "unknown": "unknown",
}
"""``Alert.cause`` values (docs/causes.md) and how a notifier words each for a person."""


def fingerprint(rule: str, session_id: str, participant_id: str) -> str:
    """Stable identity of an alert: one rule on one participant."""
    digest = hashlib.sha256(f"{rule}\x00{session_id}\x00{participant_id}".encode())
    return digest.hexdigest()[:16]


def meeting_fingerprint(rule: str, meeting_id: str) -> str:
    """Stable identity of a meeting-level alert: one rule on one meeting."""
    return fingerprint(rule, f"meeting:{meeting_id}", "*")


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
    # what the samples alone do not say: why a resolved alert resolved without a sample
    # showing recovery (LEFT_WHILE_DEGRADED; ``value`` is then the last value
    # seen), or why a firing one is told again ("still firing; silence 3f482c67 ended");
    # None otherwise
    reason: str | None = None
    sparkline: str | None = None  # the metric's recent values as unicode blocks: ▇▆▃▁▁
    values: list[float] = field(default_factory=list)  # those values, oldest first
    # "participant"; "meeting": about a whole meeting, participant_id is ""; "daemon": one of
    # the watchdog's own alerts (DAEMON_ALERTS), no meeting, session_id and participant_id
    # are "", participant_name names what it is about ("VideoSDK API", "notifier pager")
    scope: str = "participant"
    # the likely cause of a participant alert's trouble, set when it fires (one of
    # watchdog.engine.causes.CAUSES: "uplink", "downlink", "sender-uplink", "device",
    # "platform", "unknown"; None: not analysed, e.g. a meeting or absent-data alert), with
    # 1-3 lines of evidence ("send loss 12 (receive 0.4) over the last 60s"), and whose
    # connection it lies in: the participant itself, or the sender hurting it
    cause: str | None = None
    evidence: tuple[str, ...] = ()
    cause_participant: str | None = None

    @property
    def who(self) -> str:
        if self.scope == "daemon":
            return self.participant_name or "videosdk-watchdog"
        if self.scope == "meeting":
            return self.participant_name or "several participants"
        name = self.participant_name or "unknown participant"
        return f"{name} ({self.participant_id})"

    @property
    def where(self) -> str:
        if self.scope == "daemon":
            return self.place
        meeting = f"meeting {self.meeting_id}" if self.meeting_id else "unknown meeting"
        return f"{meeting}, session {self.session_id}"

    @property
    def place(self) -> str:
        """Where, in two words: ``meeting abcd-efgh-ijkl``, else ``session s-1``, or
        ``videosdk-watchdog`` for the daemon's own alerts."""
        if self.scope == "daemon":
            return "videosdk-watchdog"
        return f"meeting {self.meeting_id}" if self.meeting_id else f"session {self.session_id}"

    @property
    def likely_cause(self) -> str | None:
        """``another participant's uplink (sender-uplink)``; None when the alert has no cause.

        Notifiers show it with :attr:`evidence`, the lines that say why."""
        if self.cause is None:
            return None
        title = CAUSE_TITLES.get(self.cause)
        return self.cause if title is None or title == self.cause else f"{title} ({self.cause})"

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
        """Every field, times as text. What ``dataclasses.asdict`` gives, at a fifth of its
        cost: the fields are text, numbers and flat dicts or lists of them, so one level of
        copying is a deep copy (an alert is serialised on every poll that changes it and in
        every notification that carries it)."""
        data: dict[str, Any] = {}
        for each in fields(self):
            value = getattr(self, each.name)
            if isinstance(value, dict | list):
                value = value.copy()
            elif isinstance(value, tuple):
                value = list(value)
            data[each.name] = value
        for key in _TIME_FIELDS:
            if data[key] is not None:
                data[key] = format_time(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        values = dict(data)
        for key in _TIME_FIELDS:
            if values.get(key) is not None:
                values[key] = parse_time(values[key])
        if "evidence" in values:  # a JSON list; rows written before causes have none
            lines = values["evidence"]
            values["evidence"] = tuple(map(str, lines)) if isinstance(lines, list | tuple) else ()
        return cls(**values)


_TIME_FIELDS = ("starts_at", "fired_at", "sample_time", "ends_at")


def alert_labels(alert: Alert) -> dict[str, str]:
    """The labels that identify an alert, as Alertmanager's receivers see them.

    The rule's ``labels`` plus ``alertname``, ``severity``, ``meeting_id``, ``session_id``,
    ``participant_id``, ``scope`` (``participant``, ``meeting`` or ``daemon``) and ``metric``
    (what the alert measures, as it shows it: ``qualityScore.video``), so an inhibition rule can say
    "a meeting's alert mutes its participants' alerts on the same metric"; a participant
    alert's ``cause`` and ``cause_participant`` (set once, when it fires), so one can say
    "a sender's uplink alert mutes the receive alerts it explains". A label without
    a value is absent, never ``""`` (Alertmanager treats both alike): a meeting-level alert
    has no ``participant_id``.
    """
    found = {name: str(value) for name, value in alert.labels.items() if value}
    found["alertname"] = alert.rule
    found["severity"] = alert.severity
    for name, value in (
        ("meeting_id", alert.meeting_id),
        ("session_id", alert.session_id),
        ("participant_id", alert.participant_id if alert.scope == "participant" else None),
        ("scope", alert.scope),
        ("metric", alert.metric),
        ("cause", alert.cause),
        ("cause_participant", alert.cause_participant),
    ):
        if value:
            found[name] = value
        else:
            found.pop(name, None)
    return found


def group_labels(labels: Mapping[str, str], group_by: Iterable[str]) -> dict[str, str]:
    """The labels an alert's group is formed by: its ``group_by`` labels that it carries."""
    names = set(group_by)
    if GROUP_BY_ALL in names:
        return dict(labels)
    return {name: value for name, value in labels.items() if name in names}


def group_key(notifier: str, labels: Mapping[str, str]) -> str:
    """A group's identity in Alertmanager's ``{route path}:{group labels}`` format.

    Each notifier is a route under the root, so the key reads
    ``{}/{receiver="oncall-slack"}:{alertname="poor-video", meeting_id="abcd-efgh-ijkl"}``:
    the same for a group from its first firing through reminders to its resolve, and
    different for every other group and every other notifier.
    """
    return f"{{}}/{{receiver={_go_quote(notifier)}}}:{label_set(labels)}"


def label_set(labels: Mapping[str, str]) -> str:
    """``{a="1", b="2"}``: Prometheus's ``LabelSet.String()``, sorted, values Go-quoted."""
    return "{" + ", ".join(f"{k}={_go_quote(labels[k])}" for k in sorted(labels)) + "}"


_GO_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote``: what Alertmanager writes into a group key."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the usual case, without a loop over every character
    out = []
    for char in text:
        code = ord(char)
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


@dataclass(frozen=True, slots=True)
class ReportSeries:
    """One line of a report's chart: a participant's (or a meeting's) figure over time."""

    name: str
    times: tuple[datetime, ...]
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "times": [format_time(t) for t in self.times],
            "values": list(self.values),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportSeries:
        times = tuple(t for t in (parse_time(x) for x in data.get("times") or ()) if t)
        return cls(str(data["name"]), times, tuple(float(v) for v in data.get("values") or ()))


@dataclass(frozen=True, slots=True)
class Report:
    """A call report (``kind`` ``"call"``: one meeting's session after it ended) or the
    daily digest (``"digest"``), as plain data a notifier renders.

    ``title`` and ``lines`` are the text a person reads (``report meeting`` prints the
    same); ``figures`` the same figures as JSON (what the webhook body carries, see
    docs/history.md); ``chart`` the quality over the call, one series a participant, in
    ``chart_metric`` (empty for a digest). ``meeting_id``/``session_id`` say whose call it
    was, so a notifier can put the report in the meeting's thread.
    """

    kind: Literal["call", "digest"]
    title: str
    lines: tuple[str, ...]
    start: datetime
    end: datetime
    figures: dict[str, Any] = field(default_factory=dict)
    meeting_id: str | None = None
    session_id: str | None = None
    chart_metric: str | None = None
    chart: tuple[ReportSeries, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join([self.title, *self.lines])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "lines": list(self.lines),
            "start": format_time(self.start),
            "end": format_time(self.end),
            "figures": self.figures,
            "meeting_id": self.meeting_id,
            "session_id": self.session_id,
            "chart_metric": self.chart_metric,
            "chart": [s.to_dict() for s in self.chart],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        start = parse_time(data.get("start")) or datetime.now(UTC)
        return cls(
            kind="digest" if data.get("kind") == "digest" else "call",
            title=str(data.get("title", "")),
            lines=tuple(str(x) for x in data.get("lines") or ()),
            start=start,
            end=parse_time(data.get("end")) or start,
            figures=dict(data.get("figures") or {}),
            meeting_id=_text(data.get("meeting_id")),
            session_id=_text(data.get("session_id")),
            chart_metric=_text(data.get("chart_metric")),
            chart=tuple(ReportSeries.from_dict(s) for s in data.get("chart") or ()),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one notifier: usually one alert, several when grouped.

    ``thread`` is the same for every notification about one alert (or one
    group) from first firing to resolution: notifiers use it to update the
    original message or reply under it. ``repeat`` marks a reminder about an
    alert already notified.

    ``group_key`` and ``group_labels`` are the group's identity as the alert
    manager formed it (see :func:`group_key`, :func:`group_labels`): the same
    from the group's first firing through reminders to its resolve, in every
    episode. ``reason`` says why this notification was sent, in Alertmanager's
    words (``first notification``, ``new alerts added``, ``some alerts
    resolved``, ``all alerts resolved``, ``repeat interval elapsed``).

    ``watched`` is how many participants of the group's meeting the watch list held
    when the notification was written (None when the group is not one meeting's), so
    a meeting view can say "affected 7 of 12 watched". ``mention`` asks the notifier
    to draw people's attention again beyond the first notification (Slack's
    ``mentions``), e.g. an escalation step.

    ``event`` is ``"alert"`` for every notification about the alerts' state. An
    acknowledgement notice (``"acknowledged"``/``"unacknowledged"``, ``status``
    ``"firing"``) goes only to notifiers that asked for it (a pager that mirrors who
    owns an incident); ``actor`` then names who did it.

    ``mentions`` names whom a ``mention`` is for, beyond the notifier's own: Slack user
    IDs (``U…``/``W…``) and user-group IDs (``S…``), e.g. the on-call person an
    escalation step reaches.

    ``report`` is the report an ``event`` ``"report"`` or ``"digest"`` carries (its
    ``alerts`` are then empty, ``status`` ``"resolved"``); None for every other event.
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
    group_key: str = ""
    group_labels: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    watched: int | None = None
    mention: bool = False
    event: NotificationEvent = "alert"
    actor: str | None = None
    mentions: tuple[str, ...] = ()
    report: Report | None = None

    @property
    def meeting(self) -> str | None:
        """The meeting whose view this is (``group_by: [meeting_id]``); None otherwise."""
        if self.group_labels.keys() == {"meeting_id"}:
            return self.group_labels["meeting_id"]
        return None

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
            "group_key": self.group_key,
            "group_labels": self.group_labels,
            "reason": self.reason,
            "watched": self.watched,
            "mention": self.mention,
            "event": self.event,
            "actor": self.actor,
            "mentions": list(self.mentions),
            "report": None if self.report is None else self.report.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notification:
        created = parse_time(data.get("created_at")) or datetime.now(UTC)
        alerts = tuple(Alert.from_dict(a) for a in data["alerts"])
        if "group_key" in data:
            key, labels = str(data["group_key"]), dict(data.get("group_labels") or {})
        else:  # written before groups had an identity: the default grouping's
            key, labels = group_identity(data["notifier"], alerts, DEFAULT_GROUP_BY)
        return cls(
            id=data["id"],
            notifier=data["notifier"],
            status=data["status"],
            alerts=alerts,
            created_at=created,
            attempt=int(data.get("attempt", 1)),
            test=bool(data.get("test", False)),
            thread=str(data.get("thread", "")),
            repeat=bool(data.get("repeat", False)),
            group_key=key,
            group_labels=labels,
            reason=str(data.get("reason", "")),
            watched=None if data.get("watched") is None else int(data["watched"]),
            mention=bool(data.get("mention", False)),
            event=_event(data.get("event")),
            actor=None if data.get("actor") is None else str(data["actor"]),
            mentions=tuple(str(m) for m in data.get("mentions") or ()),
            report=None if not data.get("report") else Report.from_dict(data["report"]),
        )


def _event(value: object) -> NotificationEvent:
    """An outbox row's ``event``; rows written before events existed are alert notices."""
    if value == "acknowledged":
        return "acknowledged"
    if value == "unacknowledged":
        return "unacknowledged"
    if value == "report":
        return "report"
    if value == "digest":
        return "digest"
    return "alert"


def group_identity(
    notifier: str, alerts: Sequence[Alert], group_by: Iterable[str]
) -> tuple[str, dict[str, str]]:
    """``(group_key, group_labels)`` of the group the first of ``alerts`` belongs to."""
    labels = group_labels(alert_labels(alerts[0]), group_by) if alerts else {}
    return group_key(notifier, labels), labels


# -- the meeting view (group_by: [meeting_id]) ----------------------------------------

_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def _overshoot(alert: Alert) -> float:
    """How far past its threshold the value is, relative to the threshold; 0 if unknown."""
    value, threshold = alert.value, alert.threshold
    if value is None or not math.isfinite(value) or not math.isfinite(threshold):
        return 0.0
    if alert.op in ("<", "<="):
        gap = threshold - value
    elif alert.op in (">", ">="):
        gap = value - threshold
    else:
        return 0.0
    return gap / abs(threshold) if threshold else gap


def worst_first(alerts: Iterable[Alert]) -> list[Alert]:
    """Firing before resolved, then by severity, then furthest past the threshold (relative
    to it: an RTT 2x its limit is worse than a score 10% under it), then the longest going."""
    return sorted(
        alerts,
        key=lambda a: (
            a.status != "firing",
            _SEVERITY_RANK.get(a.severity, 1),
            -_overshoot(a),
            a.starts_at,
            a.fingerprint,
        ),
    )


@dataclass(frozen=True, slots=True)
class Affected:
    """A participant in a meeting view whose alerts fire: the worst of them, and how many."""

    worst: Alert
    firing: int


def _affected(firing: Iterable[Alert]) -> tuple[Affected, ...]:
    mine: dict[tuple[str, str], list[Alert]] = {}
    for alert in firing:
        mine.setdefault((alert.session_id, alert.participant_id), []).append(alert)
    worst = {key: worst_first(alerts)[0] for key, alerts in mine.items()}
    order = worst_first(worst.values())
    return tuple(Affected(a, len(mine[(a.session_id, a.participant_id)])) for a in order)


@dataclass(frozen=True, slots=True)
class MeetingChanges:
    """A meeting view's notification read against the previous one a notifier sent.

    ``affected`` is everyone whose alerts fire now, worst first; ``meeting_alerts`` the
    firing meeting-level alerts; ``degraded`` the firing alerts that did not fire (or
    fired with another start) at the previous notification, and ``recovered`` the
    resolutions this one tells: each participant's transitions. ``since`` is when the
    meeting's trouble began; ``over`` says nothing fires any more (at ``ended_at``), so
    the meeting's message has said its last. ``memory`` (plain JSON) is what the notifier
    keeps for the next notification, e.g. in its ``NotifierState`` beside its message.
    """

    affected: tuple[Affected, ...]
    meeting_alerts: tuple[Alert, ...]
    degraded: tuple[Alert, ...]
    recovered: tuple[Alert, ...]
    since: datetime
    now: datetime  # when the notification was written (or its newest sample, if later)
    over: bool
    ended_at: datetime | None
    peak: int  # the most participants affected at once so far
    memory: dict[str, Any]

    @property
    def lasted(self) -> timedelta:
        """How long the trouble has gone on: until now, or until ``ended_at`` once over."""
        end = self.ended_at if self.ended_at is not None else self.now
        return max(end - self.since, timedelta(0))


def _firing_memory(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def meeting_changes(
    notification: Notification, memory: Mapping[str, Any] | None = None
) -> MeetingChanges:
    """What a meeting view's notification changes, against the ``memory`` the previous
    one left (None for the first). The same notification again (the core retrying it)
    is read against the same previous memory, so it tells the same changes."""
    previous = dict(memory or {})
    if previous.get("last") == notification.id and isinstance(previous.get("before"), dict):
        before = _firing_memory(previous["before"])
    else:
        before = _firing_memory(previous.get("firing"))
    firing = [a for a in notification.alerts if a.status == "firing"]
    recovered = worst_first(a for a in notification.alerts if a.status == "resolved")
    degraded = worst_first(
        a for a in firing if before.get(a.fingerprint) != format_time(a.starts_at)
    )
    affected = _affected(a for a in firing if a.scope == "participant")
    known = previous.get("since")
    known_since = parse_time(known) if isinstance(known, str) else None
    starts = [a.starts_at for a in notification.alerts]
    since = min([*starts, *([known_since] if known_since else [])], default=notification.created_at)
    now = max([notification.created_at, *(a.sample_time for a in notification.alerts)])
    ended = (
        max((a.ends_at or a.sample_time for a in recovered), default=now) if not firing else None
    )
    peak = max(len(affected), _count(previous.get("peak")))
    return MeetingChanges(
        affected=affected,
        meeting_alerts=tuple(worst_first(a for a in firing if a.scope == "meeting")),
        degraded=tuple(degraded),
        recovered=tuple(recovered),
        since=since,
        now=now,
        over=not firing,
        ended_at=ended,
        peak=peak,
        memory={
            "since": format_time(since),
            "firing": {a.fingerprint: format_time(a.starts_at) for a in firing},
            "before": before,
            "last": notification.id,
            "peak": peak,
        },
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def why_over(notification: Notification) -> str:
    """What ended a meeting view's trouble, from its last notification: the reason its
    resolutions share ("the session ended"), "everyone recovered", or a count of each
    ("2 recovered, 1 participant left the session")."""
    reasons = Counter(a.reason or "" for a in notification.alerts if a.status == "resolved")
    if len(reasons) <= 1:
        return next(iter(reasons), "") or "everyone recovered"
    return ", ".join(f"{n} {reason or 'recovered'}" for reason, n in reasons.most_common())
