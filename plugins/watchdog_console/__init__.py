"""Console notifier: alerts as readable lines on a terminal or in the journal.

Written against the public plugin API only, exactly as an outside plugin
would be; it is what ``make demo`` shows.
"""

from __future__ import annotations

import sys
import threading
from typing import Literal, TextIO

from watchdog.alerts import REPORT_EVENTS, Alert, Notification
from watchdog.durations import format_duration
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DeliveryError,
    NotifierConfig,
    NotifierType,
    Register,
)

__version__ = "0.1.0"

_ICONS = {"critical": "🔴", "warning": "🟠", "info": "🔵", "resolved": "✅"}
_COLOURS = {"critical": "\033[1;31m", "warning": "\033[1;33m", "info": "\033[1;34m"}
_GREEN, _RESET = "\033[1;32m", "\033[0m"


class ConsoleConfig(NotifierConfig):
    stream: Literal["stdout", "stderr"] = "stdout"
    """Where alerts are printed (stderr: the journal under systemd)."""
    colour: Literal["auto", "always", "never"] = "auto"
    """Colour by severity: ``auto`` when the stream is a terminal."""


def _time(alert: Alert) -> str:
    return alert.sample_time.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_alert(alert: Alert, colour: bool = False) -> str:
    """Two lines a person can act on: what, who, where, how bad, since when."""
    if alert.status == "firing":
        icon, word = _ICONS.get(alert.severity, "🟠"), "FIRING"
        start = _COLOURS.get(alert.severity, "") if colour else ""
    else:
        icon, word = _ICONS["resolved"], "RESOLVED"
        start = _GREEN if colour else ""
    end = _RESET if colour else ""
    head = f"{icon} {start}{word} [{alert.severity}] {alert.rule}{end}"
    body = f"{alert.who} in {alert.where}"
    if alert.status == "firing":
        detail = f"{alert.condition} at {_time(alert)}"
        if alert.reason:  # told again though it kept firing: its silence ended
            detail = f"{alert.reason}; {detail}"
        if alert.sparkline:
            detail += f"  recent: {alert.sparkline}"
    elif alert.reason:
        detail = f"{alert.reason}; last {alert.condition} at {_time(alert)}"
    else:
        lasted = format_duration(alert.sample_time - alert.fired_at)
        detail = (
            f"{alert.metric} back to {alert.condition.split(' = ', 1)[1]} at {_time(alert)}, "
            f"after firing for {lasted}"
        )
    lines = [f"{head}: {body}", f"    {detail}"]
    if alert.summary and alert.status == "firing":
        lines.append(f"    {alert.summary}")
    if alert.likely_cause and alert.status == "firing":
        lines.append(f"    likely cause: {alert.likely_cause}")
        lines.extend(f"      - {line}" for line in alert.evidence)
    return "\n".join(lines)


def format_notice(notification: Notification) -> str:
    """An acknowledgement notice: who took or gave back which alert, not a new firing."""
    word = "👀 ACKNOWLEDGED" if notification.event == "acknowledged" else "↩️ UNACKNOWLEDGED"
    by = f" by {notification.actor}" if notification.actor else ""
    return "\n".join(f"{word}{by}: {a.rule}: {a.who} in {a.where}" for a in notification.alerts)


class ConsoleNotifier:
    _lock = threading.Lock()  # one process, one terminal: keep multi-line alerts whole

    def __init__(self, config: ConsoleConfig, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._name = config.stream
        self._colour = config.colour

    def _target(self) -> TextIO:
        if self._stream is not None:
            return self._stream
        return sys.stdout if self._name == "stdout" else sys.stderr

    def send(self, notification: Notification) -> None:
        target = self._target()
        colour = self._colour == "always" or (self._colour == "auto" and target.isatty())
        if notification.report is not None:
            icon = "📋" if notification.report.kind == "call" else "🗓️"
            text = f"{icon} {notification.report.text}"
        elif notification.event in REPORT_EVENTS:
            return  # a report without its data: nothing to print
        elif notification.event != "alert":
            text = format_notice(notification)
        else:
            text = "\n".join(format_alert(a, colour) for a in notification.alerts)
        if notification.test:
            text = "(test) " + text
        try:
            with self._lock:
                target.write(text + "\n")
                target.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot write to {self._name}: {exc}") from None


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="console",
            config=ConsoleConfig,
            factory=lambda context: ConsoleNotifier(context.config),
            description="Prints alerts to stdout or stderr (journald under systemd).",
            reports=True,
        )
    )
