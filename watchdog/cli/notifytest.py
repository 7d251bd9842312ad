"""``notify-test NAME``: prove a notifier works before an incident does.

What it prints passes the redaction rule: a receiver that echoes the token or
the webhook URL back in its error body does not put it on the terminal.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from watchdog.alerting.manager import notifier_options, policy_for
from watchdog.alerts import DEFAULT_GROUP_BY, Alert, Notification, fingerprint, group_identity
from watchdog.config.problems import ConfigError, Problem
from watchdog.config.settings import Config
from watchdog.delivery.host import load_plugins
from watchdog.notifiers import DeliveryError, MemoryState
from watchdog.redaction import Redactor


def sample_alert(now: datetime | None = None) -> Alert:
    """A realistic, clearly labelled test alert."""
    now = now or datetime.now(UTC)
    return Alert(
        fingerprint=fingerprint("watchdog-test", "test-session", "test-participant"),
        rule="watchdog-test",
        status="firing",
        severity="info",
        metric="qualityScore.video",
        op="<",
        threshold=3.0,
        value=2.4,
        session_id="test-session",
        participant_id="test-participant",
        starts_at=now - timedelta(minutes=1),
        fired_at=now,
        sample_time=now,
        meeting_id="test-meeting",
        participant_name="Test Participant",
        summary="Test alert from videosdk-watchdog notify-test: no action needed",
        labels={"alertname": "watchdog-test", "severity": "info"},
    )


def send_test(config: Config, name: str, redact: Redactor) -> int:
    """Exit 0 when the notifier accepted the test alert; its error, masked, when not."""
    entries = config.settings.notifiers
    if name not in entries:
        file, line = config.line_for("notifiers")
        known = ", ".join(sorted(entries)) or "none configured"
        raise ConfigError(
            [Problem(file, line, f"no notifier named {name!r} (configured: {known})")]
        )
    host = load_plugins()
    built = host.build({name: entries[name]}, lambda _: MemoryState(), where=config.line_for)
    if name not in built:
        print(
            f"{name}: the notifier failed to start: {redact(host.build_errors[name])}",
            file=sys.stderr,
        )
        return 1
    notifier = built[name]
    alert = sample_alert()
    try:
        group_by = policy_for(config.settings.alerting, notifier_options(entries[name])).group_by
    except ValidationError:  # `check` names the mistake; the test alert goes out regardless
        group_by = DEFAULT_GROUP_BY
    key, labels = group_identity(name, (alert,), group_by)
    notification = Notification(
        id=uuid.uuid4().hex,
        notifier=name,
        status="firing",
        alerts=(alert,),
        test=True,
        group_key=key,
        group_labels=labels,
        reason="first notification",
    )
    try:
        notifier.send(notification)
    except DeliveryError as exc:
        print(redact(f"{name}: delivery failed: {exc}"), file=sys.stderr)
        return 1
    except Exception as exc:
        print(redact(f"{name}: notifier raised {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 1
    print(f"{name}: test alert delivered")
    return 0
