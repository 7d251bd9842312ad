"""Logging: one event a line, plain for journald or JSON; participant IDs on every line.

Under systemd (stderr is the stream named in ``JOURNAL_STREAM``) the journal
already stamps each line, so the plain format drops our own timestamp and
prefixes the syslog priority (``<3>``) instead, so ``journalctl -p warning``
works. Code that works on one participant runs inside :func:`about`, and
every line logged there, by any module or plugin, carries its session and
participant IDs. Every line also passes the redaction rule (``watchdog.redaction``)
for the secrets :func:`hide` was given, whichever library logged it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from watchdog.redaction import Redactor

CONTEXT_FIELDS = ("session_id", "participant_id")
_PRIORITIES = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}

_participant: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "participant", default=None
)


@contextmanager
def about(session_id: str, participant_id: str) -> Iterator[None]:
    """Lines logged inside (in this thread) are about this participant."""
    token = _participant.set((session_id, participant_id))
    try:
        yield
    finally:
        _participant.reset(token)


class ParticipantFilter(logging.Filter):
    """Adds the IDs from :func:`about` to records that do not name them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _participant.get()
        if current is not None and not hasattr(record, "session_id"):
            record.session_id, record.participant_id = current
        return True


class _Hidden(logging.Filter):
    """The root handler's redaction: masks every secret given to :func:`hide` so far."""

    def __init__(self) -> None:
        super().__init__()
        self.redactor = Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        return self.redactor.filter(record)


_HIDDEN = _Hidden()


def hide(redactor: Redactor) -> None:
    """From now on, no log line of this process shows these secrets in any form.

    Secrets hidden earlier stay hidden (a reload's old token may still be quoted).
    """
    _HIDDEN.redactor = _HIDDEN.redactor | redactor


def under_journald(stream: Any = None) -> bool:
    """True when ``stream`` (stderr) is the journal connection systemd gave us."""
    raw = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = raw.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        info = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return info.st_dev == int(device) and info.st_ino == int(inode)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {key: getattr(record, key) for key in CONTEXT_FIELDS if hasattr(record, key)}


class PlainFormatter(logging.Formatter):
    def __init__(self, timestamps: bool, priorities: bool = False) -> None:
        fmt = "%(asctime)s " if timestamps else ""
        super().__init__(fmt + "%(levelname)s %(name)s: %(message)s")
        self.priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.priorities:
            text = f"<{_PRIORITIES.get(record.levelname, 6)}>{text}"
        context = _context(record)
        if context:
            text += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        return text.replace("\n", "\n    ")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_text:  # set, and redacted, by the handler's filter
            event["exception"] = record.exc_text
        elif record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now, not the one it was at setup.

    Tests and embedding programs swap ``sys.stderr``; a handler bound to a
    closed stream would turn every later log line into a logging error.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _OwnRetryLines(logging.Filter):
    """Drops urllib3's "Retrying (...) after connection broken" lines.

    They name no participant and come once per retry, so an outage printed three
    WARNINGs per failed poll. The client counts every retry
    (``watchdog_api_retries_total``) and logs it at DEBUG with the participant;
    the poller says what failed, once per poll and once per cycle.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Retrying ("))


_RETRY_LINES = _OwnRetryLines()


def setup_logging(level: str = "info", fmt: str = "plain") -> None:
    handler = _StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        journal = under_journald()
        handler.setFormatter(PlainFormatter(timestamps=not journal, priorities=journal))
    handler.addFilter(ParticipantFilter())
    handler.addFilter(_HIDDEN)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _StderrHandler):  # ours from an earlier setup; keep others'
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # APScheduler logs every job run at INFO; that is noise at a 30 s interval
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
    pool = logging.getLogger("urllib3.connectionpool")
    if _RETRY_LINES not in pool.filters:
        pool.addFilter(_RETRY_LINES)
