"""Label matchers (``rule=poor-video``, ``team!=audio``, ``meetingId=~abc-.*``).

Silences and routes select alerts the same way, by matchers over one label
set per alert, so an operator learns the syntax once. Regexes are anchored
(the whole value must match), as in Prometheus and Alertmanager.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from watchdog.alerts import Alert

MatchOp = Literal["=", "!=", "=~", "!~"]

_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")

BUILTIN_LABELS = (
    "rule",
    "alertname",
    "severity",
    "meetingId",
    "sessionId",
    "participantId",
    "participantName",
    "fingerprint",
)


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex``; ValueError if not."""
    found = _SYNTAX.match(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not a matcher like rule=poor-video, team!=audio or meetingId=~abc-.*"
        )
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None
    return Matcher(name, op, value)  # type: ignore[arg-type]


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(t) for t in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def alert_labels(alert: Alert) -> dict[str, str]:
    """What matchers and ``group_by`` see: the rule's labels plus who and where."""
    return {
        **alert.labels,
        "rule": alert.rule,
        "alertname": alert.rule,
        "severity": alert.severity,
        "meetingId": alert.meeting_id or "",
        "sessionId": alert.session_id,
        "participantId": alert.participant_id,
        "participantName": alert.participant_name or "",
        "fingerprint": alert.fingerprint,
    }
