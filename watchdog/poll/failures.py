"""Why polls failed, said once: one summary a cycle, one error while credentials are refused.

During a VideoSDK outage every poll fails the same way. A line per participant
per retry buried the one fact on-call needs ("6/6 polls failed: ConnectionError")
under thousands; a refused token printed a WARNING per participant instead of
saying once that the credentials are wrong. Poll threads report here; the
poller asks for the summary when its cycle ends.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from watchdog.videosdk.client import AuthenticationError, PermissionDeniedError, VideoSDKError

log = logging.getLogger("watchdog.poll.poller")

SHOWN_REASONS = 3  # the commonest reasons in a summary line; the rest are counted


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
    """This cycle's failure reasons, and whether VideoSDK currently refuses our credentials."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: Counter[str] = Counter()
        self._refused = False

    def failed(self, reason: str, exc: VideoSDKError | None = None) -> None:
        with self._lock:
            self._reasons[reason] += 1
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
            accepted, self._refused = self._refused, False
        if accepted:
            log.warning("VideoSDK accepts the credentials again")

    def end_cycle(self, polled: int) -> str | None:
        """The cycle's summary line (logged as one WARNING), and a fresh tally."""
        with self._lock:
            reasons, self._reasons = self._reasons, Counter()
        failed = sum(reasons.values())
        if not failed:
            return None
        common = reasons.most_common(SHOWN_REASONS)
        text = ", ".join(f"{reason} ({n})" if len(reasons) > 1 else reason for reason, n in common)
        if len(reasons) > SHOWN_REASONS:
            text += f", {len(reasons) - SHOWN_REASONS} other reasons"
        summary = f"{failed}/{polled} polls failed: {text}"
        log.warning("%s", summary)
        return summary
