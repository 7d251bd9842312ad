"""Why polls failed, said once: one summary a cycle, one error while credentials are refused.

During a VideoSDK outage every poll fails the same way. A line per participant
per retry buried the one fact on-call needs ("6/6 polls failed: ConnectionError")
under thousands; a refused token printed a WARNING per participant instead of
saying once that the credentials are wrong. Poll threads report here; the
poller asks for the summary when its cycle ends, and with it for the cycle's
:class:`PollTally`, what the daemon's own ``videosdk-api-degraded`` alert judges.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from watchdog.videosdk.client import AuthenticationError, PermissionDeniedError, VideoSDKError

log = logging.getLogger("watchdog.poll.poller")

SHOWN_REASONS = 3  # the commonest reasons in a summary line; the rest are counted
# API errors that say the API (or the way to it) is in trouble, not one participant: a
# 5xx, a 429, the network, the request deadline, an unusable body, refused credentials
API_TROUBLE = frozenset(
    {
        "server_error",
        "rate_limited",
        "network",
        "deadline",
        "bad_response",
        "unauthorized",
        "forbidden",
    }
)
Cause = Literal["api", "answer", "local"]
"""Whose failure a poll's is: the API's (:data:`API_TROUBLE`, or stats it cannot parse), an
answer about this participant (its 404 or 400: the API works), or ours (the state
database, a lease that moved, a bug), which says nothing about the API either way."""


@dataclass(frozen=True, slots=True)
class PollTally:
    """How the API answered one cycle's polls (of one instance, or pooled over several)."""

    answered: int = 0  # polls the API answered: stats, or a participant's own 404/400
    failed: int = 0  # polls the API failed (API_TROUBLE)
    reasons: Mapping[str, int] = field(default_factory=dict)  # of those failures

    @property
    def judged(self) -> int:
        return self.answered + self.failed

    @property
    def ratio(self) -> float | None:
        """The share of polls the API failed; None when no poll said anything about it."""
        return self.failed / self.judged if self.judged else None

    def top(self, count: int) -> dict[str, int]:
        """The ``count`` commonest reasons, commonest first."""
        return dict(Counter(self.reasons).most_common(count))

    def common(self, shown: int = SHOWN_REASONS) -> str:
        """``HTTP 503: ... (40), ConnectionError (10), 1 other reason``."""
        text = ", ".join(f"{reason} ({n})" for reason, n in self.top(shown).items())
        if len(self.reasons) > shown:
            others = len(self.reasons) - shown
            text += f", {others} other reason{'s' if others > 1 else ''}"
        return text


def pooled(tallies: Iterable[PollTally]) -> PollTally:
    """Several instances' tallies as one (the leader judges the whole cluster's polls)."""
    answered = failed = 0
    reasons: Counter[str] = Counter()
    for tally in tallies:
        answered += tally.answered
        failed += tally.failed
        reasons.update(tally.reasons)
    return PollTally(answered, failed, dict(reasons))


def cause_of(exc: VideoSDKError) -> Cause:
    """An API error: the API's trouble, or its answer about one participant."""
    return "api" if exc.kind in API_TROUBLE else "answer"


def credentials_refused(exc: VideoSDKError) -> bool:
    """401 after a fresh token, or 403: every poll will fail the same way until fixed."""
    return isinstance(exc, AuthenticationError | PermissionDeniedError)


def failure_reason(exc: VideoSDKError) -> str:
    """How a summary names an API error: its message, with the HTTP status where it has one."""
    text = str(exc)
    if exc.status is not None and str(exc.status) not in text:
        text = f"HTTP {exc.status}: {text}"
    return f"credentials refused ({text})" if credentials_refused(exc) else text


class PollFailures:
    """This cycle's failure reasons and tally, and whether VideoSDK currently refuses our
    credentials."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: Counter[str] = Counter()
        self._api: Counter[str] = Counter()  # reasons of the failures that are the API's
        self._answered = 0
        self._refused = False

    def failed(self, reason: str, cause: Cause, exc: VideoSDKError | None = None) -> None:
        with self._lock:
            self._reasons[reason] += 1
            if cause == "api":
                self._api[reason] += 1
            elif cause == "answer":
                self._answered += 1
            first = exc is not None and credentials_refused(exc) and not self._refused
            if first:
                self._refused = True
        if first:
            log.error(
                "VideoSDK refuses the credentials (%s): every poll fails until they are fixed. "
                "Check videosdk.api_key and secret_key (VIDEOSDK_API_KEY, VIDEOSDK_SECRET_KEY) "
                "or the token (VIDEOSDK_TOKEN), and that the token has the crawler role; "
                "`videosdk-watchdog token` mints one to try with curl",
                exc,
            )

    def succeeded(self) -> None:
        with self._lock:
            self._answered += 1
            accepted, self._refused = self._refused, False
        if accepted:
            log.warning("VideoSDK accepts the credentials again")

    def end_cycle(self, polled: int) -> PollTally:
        """Log the cycle's summary line (one WARNING) and start a fresh tally; returns the
        cycle's :class:`PollTally`."""
        with self._lock:
            reasons, self._reasons = self._reasons, Counter()
            api, self._api = self._api, Counter()
            answered, self._answered = self._answered, 0
        tally = PollTally(answered, sum(api.values()), dict(api))
        failed = sum(reasons.values())
        if not failed:
            return tally
        common = reasons.most_common(SHOWN_REASONS)
        text = ", ".join(f"{reason} ({n})" if len(reasons) > 1 else reason for reason, n in common)
        if len(reasons) > SHOWN_REASONS:
            text += f", {len(reasons) - SHOWN_REASONS} other reasons"
        log.warning("%s/%s polls failed: %s", failed, polled, text)
        return tally
