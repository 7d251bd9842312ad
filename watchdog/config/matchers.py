"""Label matchers (``alertname=poor-video``, ``team!=audio``, ``meeting_id=~abc-.*``).

Silences, routes and inhibition rules select alerts the same way, by matchers over one label
set per alert (the labels receivers see, :func:`watchdog.alerts.alert_labels`),
so an operator learns the syntax once. Regexes are anchored
(the whole value must match), as in Prometheus and Alertmanager, and run by
RE2 (watchdog.config.patterns): alert labels carry participant names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from watchdog.alerts import BUILTIN_LABELS, DAEMON_LABELS, Alert, Severity
from watchdog.alerts import alert_labels as receiver_labels
from watchdog.config.patterns import PatternError, Regex, compile_regex

MatchOp = Literal["=", "!=", "=~", "!~"]

# applied to the stripped text: a lazy value before trailing blanks would backtrack
_SYNTAX = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*(=~|!~|!=|=)\s*(.*)")

# label names from before there was one vocabulary: still understood, with a warning
RENAMED_LABELS = {
    "rule": "alertname",
    "meetingId": "meeting_id",
    "sessionId": "session_id",
    "participantId": "participant_id",
}
# names matchers still accept (with a warning) though they are no labels a receiver sees
RETIRED_LABELS = {
    "participantName": "participant_id",
    "fingerprint": "alertname, session_id and participant_id",
}
KNOWN_LABELS = (*BUILTIN_LABELS, *DAEMON_LABELS, *RENAMED_LABELS, *RETIRED_LABELS)


def old_label_warning(name: str) -> str | None:
    """What to write instead of an old label name (which still works), or None."""
    if name in RENAMED_LABELS:
        new = RENAMED_LABELS[name]
        return f"{name!r} is the old name of label {new!r}: write {new} (the old name still works)"
    if name in RETIRED_LABELS:
        return (
            f"{name!r} is not a label receivers see: use {RETIRED_LABELS[name]} instead "
            "(it still works for now)"
        )
    return None


def matcher_label(text: str) -> str | None:
    """The label name a matcher's text names as written (before renaming), if it parses."""
    found = _SYNTAX.fullmatch(text.strip())
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label test; a regex op compiles its value once, here (PatternError if RE2 can't)."""

    name: str
    op: MatchOp
    value: str
    regex: Regex | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "regex", compile_regex(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.regex is not None:
            return self.regex.fullmatch(actual) == (self.op == "=~")
        return (actual == self.value) == (self.op == "=")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


# Values no label carries and no selective pattern is written for: letters, digits,
# punctuation, blanks and non-ASCII apart, then all of them in one long value.
_PARTS = (
    "qvzjxkwyfgbhmpd",
    "QVZJXKWYFGBHMPD",
    "7305918264",
    " -_.:/@#~+=!?,;()[]{}<>|^$*&%'\"\\",
    "\t\n",
    "\u00e9\u00df\u0416\u8a9e\U0001f600",
)
PROBES = (*_PARTS, "".join(_PARTS) * 8)


# labels whose every value is known: matching all of them is matching everything
_DOMAINS = {"severity": get_args(Severity), "scope": ("participant", "meeting", "daemon")}


def matches_anything(matcher: Matcher) -> bool:
    """True if the matcher names nothing: it passes an empty label or any probe value.

    A silence needs one matcher that names something; ``rule=~.+`` or ``rule!=``
    pass the empty-label test yet mute every alert, so each matcher is also run
    (by RE2 itself, for a regex) on values nobody writes a pattern for, and on
    every value of a label with a fixed set (``severity=~info|warning|critical``).
    """
    if any(matcher.matches({matcher.name: value}) for value in ("", *PROBES)):
        return True
    domain = _DOMAINS.get(matcher.name)
    return domain is not None and all(matcher.matches({matcher.name: v}) for v in domain)


def parse_matcher(text: str) -> Matcher:
    """``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex``; ValueError if not."""
    found = _SYNTAX.fullmatch(text.strip())
    if found is None:
        raise ValueError(
            f"{text!r} is not a matcher like alertname=poor-video, team!=audio or "
            "meeting_id=~abc-.*"
        )
    name, op, value = found.groups()
    name = RENAMED_LABELS.get(name, name)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    try:
        return Matcher(name, op, value)  # type: ignore[arg-type]
    except PatternError as exc:
        raise ValueError(f"{text!r}: invalid regular expression: {exc}") from None


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(t) for t in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def alert_labels(alert: Alert) -> dict[str, str]:
    """What matchers see: the labels receivers see, plus the retired names old silences use."""
    return {
        **receiver_labels(alert),
        "participantName": alert.participant_name or "",
        "fingerprint": alert.fingerprint,
    }
