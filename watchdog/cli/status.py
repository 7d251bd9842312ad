"""``videosdk-watchdog status``: who is watched, since when, their newest sample, what fires.

Read from the state database, so it answers while the daemon runs (SQLite
in WAL mode lets a reader in beside the writer) and after it stopped. Each alert
says whether someone acknowledged it, whether a silence mutes it and which alert
suppresses it through an inhibition rule (the answer to "why was I not paged?");
alerts waiting out their rule's ``for`` are listed as pending, firing ones with their
likely cause and its evidence (docs/causes.md). Everything printed
passes the redaction rule.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from watchdog.alerting.escalation import EscalationConfig
from watchdog.alerts import Alert, fingerprint
from watchdog.cli.oncall import render as render_oncall
from watchdog.cli.oncall import schedules
from watchdog.cluster import coordinator as cluster
from watchdog.config.matchers import alert_labels, matches_all
from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config
from watchdog.durations import format_time
from watchdog.redaction import Redactor
from watchdog.state.alertlog import AlertLog, Inhibited
from watchdog.state.leases import InstanceRow
from watchdog.state.silences import Ack, AuditEntry, Silence, Silences
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord, WatchStatus
from watchdog.watch.watchlist import SLOW_AFTER

RECENT_ACTIONS = 10
COLUMNS = ("SESSION", "PARTICIPANT", "NAME", "ROOM", "SOURCE", "STATE", "SINCE", "LAST SAMPLE")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _ack(acks: dict[str, Ack], rule: str, record: WatchRecord) -> Ack | None:
    return acks.get(fingerprint(rule, record.session_id, record.participant_id))


def _ack_json(ack: Ack | None, expiry: Expiry) -> dict[str, Any]:
    if ack is None:
        return {}
    expires = expiry.get(ack.fingerprint)
    return {
        "ackedBy": ack.acked_by,
        "ackedAt": format_time(ack.acked_at),
        "ackSource": ack.source,
        "ackNote": ack.note,
        "ackExpiresAt": format_time(expires) if expires else None,
    }


Expiry = dict[str, datetime]  # fingerprint -> when its acknowledgement expires


def _expiry(acks: dict[str, Ack], alert_log: AlertLog, config: EscalationConfig) -> Expiry:
    """When each acknowledgement expires (its route's ``ack_timeout``), if it does."""
    out = {}
    for active in alert_log.active_alerts():
        ack = acks.get(active.alert.fingerprint)
        timeout = config.ack_timeout_for(alert_labels(active.alert))
        if ack is not None and timeout:
            out[ack.fingerprint] = ack.acked_at + timeout
    return out


def _silenced(silences: Silences, alert_log: AlertLog, now: datetime) -> dict[str, Silence]:
    """Fingerprint -> the silence in force that mutes it, for each alert the manager tracks."""
    in_force = silences.active(now)
    if not in_force:
        return {}
    out = {}
    for active in alert_log.active_alerts():
        labels = alert_labels(active.alert)
        muting = next((s for s in in_force if matches_all(s.matchers, labels)), None)
        if muting is not None:
            out[active.alert.fingerprint] = muting
    return out


def _silence_json(silence: Silence | None) -> dict[str, Any]:
    if silence is None:
        return {}
    return {
        "silenceId": silence.id,
        "silencedBy": silence.created_by,
        "silencedUntil": format_time(silence.ends_at),
    }


def _causes(alert_log: AlertLog) -> dict[str, Alert]:
    """Fingerprint -> the firing participant alert, for those with a likely cause."""
    return {
        a.alert.fingerprint: a.alert
        for a in alert_log.active_alerts()
        if a.alert.status == "firing" and a.alert.cause is not None
    }


def _cause_json(alert: Alert | None) -> dict[str, Any]:
    if alert is None:
        return {}
    return {
        "cause": alert.cause,
        "evidence": list(alert.evidence),
        "causeParticipant": alert.cause_participant,
    }


def _inhibited_json(held: Inhibited | None) -> dict[str, Any]:
    if held is None:
        return {}
    return {
        "inhibitedBy": {
            "alertname": held.source_alertname,
            "fingerprint": held.source,
            "inhibitRule": held.inhibit_rule,
            "since": format_time(held.since),
        }
    }


def _marks(
    ack: Ack | None,
    silence: Silence | None,
    held: Inhibited | None = None,
    expiry: Expiry | None = None,
) -> str:
    """``, acknowledged by ... , silenced by ... until ..., suppressed by ...`` for one
    firing alert."""
    text = (
        f", acknowledged by {ack.acked_by} ({ack.source}) at {_when(ack.acked_at)}" if ack else ""
    )
    if ack is not None and (expires := (expiry or {}).get(ack.fingerprint)) is not None:
        text += f" until {_when(expires)}"
    if ack is not None and ack.note:
        text += f" ({ack.note})"
    if silence is not None:
        text += (
            f", SILENCED by {silence.created_by} until {_when(silence.ends_at)}"
            f" (silence {silence.id[:8]})"
        )
    if held is not None:
        text += (
            f", SUPPRESSED by {held.source_alertname} (alert {held.source[:8]}, inhibit rule "
            f"{held.inhibit_rule}) since {_when(held.since)}"
        )
    return text


def _row(
    status: WatchStatus,
    acks: dict[str, Ack],
    muted: dict[str, Silence],
    inhibited: dict[str, Inhibited],
    expiry: Expiry,
    *,
    causes: dict[str, Alert],
) -> dict[str, Any]:
    r = status.record
    return {
        "sessionId": r.session_id,
        "participantId": r.participant_id,
        "name": r.name,
        "roomId": r.room_id,
        "source": r.source,
        "state": r.status,
        "reason": r.reason,
        "deadlineMisses": r.deadline_misses,
        "since": format_time(r.since),
        "lastSample": format_time(status.last_sample) if status.last_sample else None,
        "firing": [
            {
                "rule": rule,
                "firedAt": format_time(at) if at else None,
                **_ack_json(_ack(acks, rule, r), expiry),
                **_silence_json(muted.get(fingerprint(rule, r.session_id, r.participant_id))),
                **_inhibited_json(inhibited.get(fingerprint(rule, r.session_id, r.participant_id))),
                **_cause_json(causes.get(fingerprint(rule, r.session_id, r.participant_id))),
            }
            for rule, at in status.firing
        ],
        "pending": [
            {"rule": rule, "since": format_time(at) if at else None} for rule, at in status.pending
        ],
    }


def _member(m: InstanceRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "host": m.host,
        "pid": m.pid,
        "startedAt": m.started_at,
        "lastHeartbeat": format_time(datetime.fromtimestamp(m.heartbeat_at, UTC)),
        "heartbeatAgeSeconds": round(m.heartbeat_age, 3),
        "participantsHeld": m.held,
        "leader": "leader" in m.roles.split(","),
    }


def _instances(members: list[InstanceRow], out: TextIO) -> None:
    """Several instances on one PostgreSQL: who is alive and how much each one polls."""
    out.write(f"{len(members)} instances share this database:\n")
    table = [("INSTANCE", "HOST", "PID", "LAST HEARTBEAT", "PARTICIPANTS", "ROLE")]
    for m in members:
        age = f"{m.heartbeat_age:.1f}s ago"
        table.append((m.id, m.host, str(m.pid), age, str(m.held), m.roles or "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        out.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    out.write("\n")


def print_status(
    config: Config, out: TextIO, as_json: bool = False, redact: Redactor | None = None
) -> int:
    """Print the status with every secret of ``redact`` masked, in one write."""
    out.write(_status(config, as_json, redact or Redactor()))
    return 0


def _status(config: Config, as_json: bool, redact: Redactor) -> str:
    url = config.state_url
    if "://" not in url and url != ":memory:" and not Path(url).exists():
        raise ConfigError.single(url, None, "no state database yet: has the daemon run?")
    store = Store(url)
    try:
        own = [
            a.alert
            for a in store.alert_log.active_alerts()
            if a.alert.scope == "daemon" and a.alert.status == "firing"
        ]
        rows = store.watchlist.status()
        members = cluster.instances(store) if store.shared else []
        acks = {a.fingerprint: a for a in store.silences.acks()}
        muted = _silenced(store.silences, store.alert_log, datetime.now(UTC))
        expiry = _expiry(acks, store.alert_log, EscalationConfig.from_settings(config.settings, {}))
        inhibited = store.alert_log.inhibited()
        causes = _causes(store.alert_log)
        actions = store.silences.audit(limit=RECENT_ACTIONS)
        oncall = _oncall(config, store)
    finally:
        store.close()
    if as_json:
        participants = [_row(s, acks, muted, inhibited, expiry, causes=causes) for s in rows]
        document: Any = participants  # one instance, no teams: the list, as it always was
        if store.shared or oncall:  # who the instances are, who is on call: as the text shows
            document = {
                **({"instances": [_member(m) for m in members]} if store.shared else {}),
                "participants": participants,
                **({"oncall": oncall} if oncall else {}),
            }
        return json.dumps(redact.data(document), indent=2) + "\n"
    out = io.StringIO()
    if members:
        _instances(members, out)
    watched = sum(1 for s in rows if s.record.status != "excluded")
    leaving = sum(1 for s in rows if s.record.status == "leaving")
    excluded = len(rows) - watched
    firing = sum(len(s.firing) for s in rows)
    pending = sum(len(s.pending) for s in rows)
    silenced = sum(
        fingerprint(rule, s.record.session_id, s.record.participant_id) in muted
        for s in rows
        for rule, _ in s.firing
    )
    suppressed = sum(
        fingerprint(rule, s.record.session_id, s.record.participant_id) in inhibited
        for s in rows
        for rule, _ in s.firing
    )
    slow = sum(1 for s in rows if s.record.deadline_misses >= SLOW_AFTER)
    slow_note = f", {slow} slow (stats requests hitting the deadline)" if slow else ""
    out.write(
        f"{watched} participants watched ({leaving} leaving), {excluded} excluded by filters, "
        f"{firing} alerts firing ({silenced} silenced, {suppressed} inhibited), "
        f"{pending} pending{slow_note}; "
        "times in UTC\n"
    )
    _own_alerts(own, set(config.settings.notifiers), acks, muted, out)
    if oncall:
        out.write("on call (as the daemon last fetched the schedules):\n")
        out.write("".join(f"  {line}\n" for line in render_oncall(oncall)) + "\n")
    if not rows:
        _actions(actions, out)
        return redact(out.getvalue())
    table = [COLUMNS]
    for s in rows:
        r = s.record
        state = r.status if r.status == "watching" else f"{r.status}: {r.reason or '?'}"
        if r.deadline_misses:
            polls = "poll" if r.deadline_misses == 1 else f"{r.deadline_misses} polls"
            state += f" (request deadline hit on the last {polls})"
        table.append(
            (
                r.session_id,
                r.participant_id,
                r.name or "-",
                r.room_id or "-",
                r.source,
                state,
                _when(r.since),
                _when(s.last_sample),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for index, row in enumerate(table):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
        if not index:
            continue
        status = rows[index - 1]
        r = status.record
        for rule, at in status.firing:
            key = fingerprint(rule, r.session_id, r.participant_id)
            marks = _marks(_ack(acks, rule, r), muted.get(key), inhibited.get(key), expiry)
            out.write(f"    FIRING {rule} since {_when(at)}{marks}\n")
            explained = causes.get(key)
            if explained is not None:
                out.write(f"      likely cause: {explained.likely_cause}\n")
                out.writelines(f"        - {line}\n" for line in explained.evidence)
        for rule, at in status.pending:
            out.write(
                f"    PENDING {rule} since {_when(at)} (condition holds, not yet for its for:)\n"
            )
    _actions(actions, out)
    return redact(out.getvalue())


def _oncall(config: Config, store: Store) -> list[dict[str, Any]]:
    """Each team's now and next, and its calendar feed's health, from the copies and
    refresh outcomes the daemon saved: nothing is fetched (``oncall`` fetches)."""
    if not config.settings.oncall.teams:
        return []
    return schedules(config, store, fetch=False).summary(datetime.now(UTC))


def _own_alerts(
    alerts: list[Alert],
    notifiers: set[str],
    acks: dict[str, Ack],
    muted: dict[str, Silence],
    out: TextIO,
) -> None:
    """The daemon's own firing alerts (the API degraded, a notifier failing): one line each;
    a failing notifier with no other to tell is only here and in the log."""
    if not alerts:
        return
    out.write("the watchdog's own alerts:\n")
    for alert in sorted(alerts, key=lambda a: (a.rule, a.fingerprint)):
        about = alert.labels.get("notifier")
        alone = about is not None and not notifiers - {about}
        note = " (no other notifier to tell)" if alone else ""
        marks = _marks(acks.get(alert.fingerprint), muted.get(alert.fingerprint))
        out.write(
            f"  FIRING {alert.rule} since {_when(alert.starts_at)}: {alert.summary}{note}{marks}\n"
        )
    out.write("\n")


def _actions(actions: list[AuditEntry], out: TextIO) -> None:
    """The audit log's newest entries: who acknowledged, silenced or unsilenced what, and
    which alerts an inhibition rule held back or released."""
    if not actions:
        return
    out.write(
        "recent actions (acknowledge, unacknowledge, take, ack-expired, escalate, silence, "
        "unsilence, inhibit, uninhibit):\n"
    )
    for entry in actions:
        out.write(
            f"  {_when(entry.at)}  {entry.action:<13}  {entry.target[:16]}  "
            f"by {entry.actor} from {entry.source}  {entry.detail}".rstrip()
            + "\n"
        )
