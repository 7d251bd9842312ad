"""What people do to alerts from outside the CLI: acknowledge, silence, unsilence.

The core side of :class:`watchdog.notifiers.AlertActions`, handed to notifiers
in their context (the Slack plugin calls it when someone clicks a button).
Everything goes through the state database (silences, acks and audit written, the
alert log and the watch list read), so the running alert manager sees it at its next
tick, it survives a restart, and every change is in the audit log with who did it and
from where.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from watchdog.alerting.escalation import EscalationConfig, snooze_until
from watchdog.alerting.oncall import Schedules
from watchdog.alerting.silences import describe
from watchdog.alerts import DAEMON_LABELS, Alert
from watchdog.config.matchers import Matcher, alert_labels, matches_all
from watchdog.durations import format_duration
from watchdog.notifiers import ActionResult, AlertView, SilenceScope
from watchdog.state.alertlog import AlertLog
from watchdog.state.silences import Ack, AuditEntry, Silence, Silences
from watchdog.state.watchlist import WatchList

# "until the meeting ends" needs an end even if the end is never seen (a crash, a lost webhook)
MEETING_SILENCE_MAX = timedelta(hours=12)


def audit_entry(
    actor: str, action: str, target: str, source: str, detail: str, *, at: datetime
) -> AuditEntry:
    return AuditEntry(uuid.uuid4().hex, at, actor, action, target, source, detail)


class StoreActions:
    """AlertActions over the state database's repositories; the clock is injectable for
    tests."""

    def __init__(
        self,
        silences: Silences,
        alert_log: AlertLog,
        watchlist: WatchList,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        meeting_max: timedelta = MEETING_SILENCE_MAX,
        *,
        escalation: EscalationConfig | None = None,
        oncall: Schedules | None = None,
    ) -> None:
        self._silences = silences
        self._alert_log = alert_log
        self._watchlist = watchlist
        self.clock = clock
        self.meeting_max = meeting_max
        # ack timeouts and the snooze's time zone: the routes' (default: none, UTC)
        self._escalation = escalation or EscalationConfig()
        self._oncall = oncall

    def _alert(self, fingerprint: str) -> Alert | None:
        for active in self._alert_log.active_alerts():
            if active.alert.fingerprint == fingerprint:
                return active.alert
        return None

    def view(self, fingerprint: str) -> AlertView:
        alert = self._alert(fingerprint)
        if alert is None:
            return AlertView(fingerprint, None)
        return self._view(alert, self.clock())

    def _ack(self, alert: Alert) -> Ack | None:
        return next(
            (
                a
                for a in self._silences.acks()
                if a.fingerprint == alert.fingerprint and a.starts_at == alert.starts_at
            ),
            None,
        )

    def _view(self, alert: Alert, now: datetime) -> AlertView:
        ack = self._ack(alert)
        labels = alert_labels(alert)
        timeout = self._escalation.ack_timeout_for(labels)
        silence = next(
            (s for s in self._silences.active(now) if matches_all(s.matchers, labels)),
            None,
        )
        tied = {sid for sid, _ in self._silences.tied_to_meetings(now)}
        return AlertView(
            fingerprint=alert.fingerprint,
            alert=alert,
            acked_by=ack.acked_by if ack else None,
            acked_at=ack.acked_at if ack else None,
            ack_expires_at=ack.acked_at + timeout if ack and timeout else None,
            silence_id=silence.id if silence else None,
            silenced_by=silence.created_by if silence else None,
            silenced_until=silence.ends_at if silence else None,
            until_meeting_end=silence is not None and silence.id in tied,
        )

    def _gone(self, fingerprint: str) -> ActionResult:
        return ActionResult(
            False, "This alert has resolved; there is nothing to do.", AlertView(fingerprint, None)
        )

    def acknowledge(
        self, fingerprint: str, actor: str, source: str, note: str = ""
    ) -> ActionResult:
        alert = self._alert(fingerprint)
        if alert is None or alert.status != "firing":
            return self._gone(fingerprint)
        now = self.clock()
        done = self._silences.add_ack(
            Ack(fingerprint, alert.starts_at, actor, now, source, note),
            audit_entry(actor, "acknowledge", fingerprint, source, _detail(alert, note), at=now),
        )
        view = self._view(alert, now)
        if not done:
            return ActionResult(False, f"Already acknowledged by {view.acked_by}.", view)
        return ActionResult(True, "Acknowledged: no more reminders or escalation.", view)

    def unacknowledge(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        alert = self._alert(fingerprint)
        if alert is None or alert.status != "firing":
            return self._gone(fingerprint)
        now = self.clock()
        audit = audit_entry(actor, "unacknowledge", fingerprint, source, alert.rule, at=now)
        before = self._silences.remove_ack(fingerprint, alert.starts_at, audit)
        view = self._view(alert, now)
        if before is None:
            return ActionResult(False, "Nobody has acknowledged this alert.", view)
        return ActionResult(
            True, f"Unacknowledged (was {before.acked_by}): reminders and escalation resume.", view
        )

    def take(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        alert = self._alert(fingerprint)
        if alert is None or alert.status != "firing":
            return self._gone(fingerprint)
        now = self.clock()
        ack = self._ack(alert)
        if ack is not None and ack.acked_by == actor:
            return ActionResult(False, "You already own this alert.", self._view(alert, now))
        before = ack.acked_by if ack else "nobody"
        self._silences.take_ack(
            Ack(fingerprint, alert.starts_at, actor, now, source),
            audit_entry(actor, "take", fingerprint, source, f"from {before}", at=now),
        )
        said = f"Taken over from {before}." if ack else "Acknowledged: it is yours."
        return ActionResult(True, said, self._view(alert, now))

    def snooze(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        alert = self._alert(fingerprint)
        if alert is None or alert.status != "firing":
            return self._gone(fingerprint)
        now = self.clock()
        until = snooze_until(alert_labels(alert), self._escalation, self._oncall, now)
        return self.silence(fingerprint, actor, source, duration=until - now)

    def silence(
        self,
        fingerprint: str,
        actor: str,
        source: str,
        *,
        scope: SilenceScope = "participant",
        duration: timedelta | None = None,
    ) -> ActionResult:
        alert = self._alert(fingerprint)
        if alert is None or alert.status != "firing":
            return self._gone(fingerprint)
        now = self.clock()
        matchers = [Matcher("alertname", "=", alert.rule)]
        if scope == "meeting" or alert.scope == "meeting":
            if not alert.meeting_id:
                return ActionResult(
                    False, "This alert has no meeting ID to silence.", self._view(alert, now)
                )
            matchers.append(Matcher("meeting_id", "=", alert.meeting_id))
        elif alert.scope == "daemon":  # the watchdog's own: what it is about, if anything
            labels = alert_labels(alert)
            matchers.extend(Matcher(n, "=", labels[n]) for n in DAEMON_LABELS if n in labels)
        else:
            matchers.append(Matcher("session_id", "=", alert.session_id))
            matchers.append(Matcher("participant_id", "=", alert.participant_id))
        length = duration if duration is not None else self.meeting_max
        until = "until the meeting ends" if duration is None else f"for {format_duration(length)}"
        silence = Silence(
            id=uuid.uuid4().hex,
            matchers=tuple(matchers),
            starts_at=now,
            ends_at=now + length,
            created_by=actor,
            comment=f"{alert.rule} silenced {until} from {source}",
            created_at=now,
        )
        self._silences.add(silence)
        if duration is None and alert.meeting_id:
            self._silences.tie_to_meeting(silence.id, alert.meeting_id)
        self._silences.add_audit(
            audit_entry(
                actor,
                "silence",
                silence.id,
                source,
                " ".join(map(str, matchers)) + f" {until}",
                at=now,
            )
        )
        self._silences.add_audit(audit_entry(actor, "silence", fingerprint, source, until, at=now))
        return ActionResult(True, f"Silenced {until}.", self._view(alert, now))

    def unsilence(self, fingerprint: str, actor: str, source: str) -> ActionResult:
        alert = self._alert(fingerprint)
        if alert is None:
            return self._gone(fingerprint)
        now = self.clock()
        labels = alert_labels(alert)
        ended = [s for s in self._silences.active(now) if matches_all(s.matchers, labels)]
        if not ended:
            return ActionResult(False, "No silence mutes this alert.", self._view(alert, now))
        for silence in ended:
            self._silences.expire(silence.id, now)
            self._silences.add_audit(
                audit_entry(actor, "unsilence", silence.id, source, "", at=now)
            )
        self._silences.add_audit(
            audit_entry(actor, "unsilence", fingerprint, source, f"{len(ended)} silences", at=now)
        )
        return ActionResult(True, "Unsilenced.", self._view(alert, now))

    def status(self) -> dict[str, Any]:
        now = self.clock()
        firing = [
            self._view(a.alert, now)
            for a in self._alert_log.active_alerts()
            if a.alert.status == "firing"
        ]
        watched = sum(1 for r in self._watchlist.load() if r.status == "watching")
        return {"firing": firing, "watched": watched}

    def silences(self) -> list[dict[str, Any]]:
        return describe(self._silences, self._alert_log, now=self.clock())

    def oncall(self) -> list[dict[str, Any]]:
        return [] if self._oncall is None else self._oncall.summary(self.clock())

    def take_oncall(
        self, user: str, actor: str, source: str, *, team: str | None, duration: timedelta | None
    ) -> tuple[bool, str]:
        if self._oncall is None or not self._oncall.teams():
            return False, "No on-call teams are configured."
        return self._oncall.take(user, actor, source, team=team, duration=duration)


def _detail(alert: Alert, note: str) -> str:
    return f"{alert.rule}: {note}" if note else alert.rule


def end_meeting_silences(silences: Silences, alert_log: AlertLog, now: datetime) -> int:
    """Expire "until the meeting ends" silences whose meeting has ended; how many ended.

    A meeting has ended when discovery (or a webhook) no longer watches anyone in it
    and none of its alerts fires: the participants left or the session closed.
    """
    ended = 0
    for silence_id, meeting_id in silences.tied_to_meetings(now):
        if not alert_log.meeting_in_progress(meeting_id) and silences.expire(silence_id, now):
            silences.add_audit(
                audit_entry("watchdog", "unsilence", silence_id, "meeting-end", meeting_id, at=now)
            )
            ended += 1
    return ended
