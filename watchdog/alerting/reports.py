"""The reporter: a report after every call, and the daily digest, written to the outbox.

Runs where the alert manager runs (the leader, with several instances), on its own
periodic job. A call's report is written once its session's end was recorded
(watchdog.state.reports) and ``settle`` has passed, so the last minute summaries of its
participants are written too; the digest once its local time of day has come. Each goes
out under a unique key (``call:<session>``, ``digest:<local date>``) claimed in the same
transaction as its outbox rows: once, with any number of instances, across restarts. A
daemon down at the digest's time sends it when it comes back the same day.

Who hears a report: the route (``alerting.routes[].report``) whose matchers match one of
the call's alerts (or, for a call without alerts, its meeting's labels), else
``history.report``; their ``notify``, else the notifiers the call's alerts went to, else
``alerting.default_notify`` or every notifier; of those, the entries whose type renders
reports (``NotifierType.reports``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from watchdog.alerting.callreport import Call, Side, as_report, read_call
from watchdog.alerting.digest import DAY, digest, read_day
from watchdog.alerts import Notification, NotificationEvent, Report, group_key
from watchdog.config.escalation import zone
from watchdog.config.history import DigestSettings, ReportSettings
from watchdog.config.matchers import Matcher, matches_all, parse_matchers
from watchdog.config.oncall import minute_of_day
from watchdog.config.settings import Settings
from watchdog.state.history import History
from watchdog.state.minutes import Minutes
from watchdog.state.reports import EndedSession, Reports
from watchdog.state.silences import Silences

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportingConfig:
    report: ReportSettings
    routes: tuple[tuple[tuple[Matcher, ...], ReportSettings], ...]  # routes with a report
    digest: DigestSettings | None
    notifiers: tuple[str, ...]  # every entry, in config order
    reporting: frozenset[str]  # the entries whose type renders reports
    default_notify: tuple[str, ...] | None
    settle: timedelta  # after a session's end, before its last minutes are surely written
    retention: timedelta

    @classmethod
    def from_settings(cls, settings: Settings, reporting_types: Collection[str]) -> ReportingConfig:
        """``reporting_types``: the notifier types that render reports."""
        base = settings.alerting
        return cls(
            report=settings.history.report,
            routes=tuple(
                (tuple(parse_matchers(r.match)), r.report)
                for r in base.routes
                if r.report is not None
            ),
            digest=settings.history.digest,
            notifiers=tuple(settings.notifiers),
            reporting=frozenset(
                name
                for name, entry in settings.notifiers.items()
                if str(entry.get("type", "")) in reporting_types
            ),
            default_notify=None if base.default_notify is None else tuple(base.default_notify),
            settle=settings.poll.interval * 2 + timedelta(seconds=5),
            retention=settings.history.retention,
        )

    def fallback(self) -> list[str]:
        return list(self.default_notify if self.default_notify is not None else self.notifiers)


def digest_due(settings: DigestSettings, now: datetime) -> tuple[str, datetime] | None:
    """(local date, its digest time in UTC) once today's time has come; None before."""
    tz = zone(settings.time_zone)
    local = now.astimezone(tz)
    minute = minute_of_day(settings.at)
    moment = datetime.combine(local.date(), time(minute // 60, minute % 60), tz)
    return None if local < moment else (local.date().isoformat(), moment.astimezone(UTC))


class Reporter:
    """Writes due reports to the outbox; ``run`` is the periodic job."""

    def __init__(
        self,
        reports: Reports,
        minutes: Minutes,
        history: History,
        silences: Silences,
        config: ReportingConfig,
        *,
        sides: Mapping[str, Side],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        leads: Callable[[], bool] = lambda: True,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.reports = reports
        self.minutes = minutes
        self.history = history
        self.silences = silences
        self.config = config
        self.sides = dict(sides)
        self.clock = clock
        self.leads = leads
        self.on_queued = on_queued

    def reconfigure(self, config: ReportingConfig, sides: Mapping[str, Side]) -> None:
        self.config, self.sides = config, dict(sides)

    def run(self) -> int:
        """Queue what is due; returns how many notifications were written. Only the leader
        writes; one failing report is logged and costs no other."""
        if not self.leads():
            return 0
        now = self.clock()
        queued = 0
        for ended in self.reports.ended(now - self.config.settle):
            try:
                queued += self._call(ended, now)
            except Exception:
                log.exception(
                    "writing the call report failed; trying again on the next run",
                    extra={"session_id": ended.session_id},
                )
        if self.config.digest is not None:
            queued += self._digest(self.config.digest, now)
        if queued and self.on_queued is not None:
            self.on_queued()
        return queued

    def prune(self) -> int:
        return self.reports.prune(self.clock() - self.config.retention)

    def _call(self, ended: EndedSession, now: datetime) -> int:
        key = f"call:{ended.session_id}"
        call = read_call(self.minutes, self.history, ended.session_id, self.sides)
        targets = self._call_targets(call, ended) if call is not None else []
        if call is None or not targets:  # nothing kept, or nobody wants it: settled
            return self.reports.queue(key, (), ended.session_id)
        meeting = ended.meeting_id or next(
            (a.meeting_id for a in call.attendees.values() if a.meeting_id), None
        )
        report = as_report(call, meeting, ended.session_id)
        labels = {"meeting_id": meeting} if meeting else {}
        notes = [
            self._note(name, "report", report=report, key=key, labels=labels, now=now)
            for name in targets
        ]
        queued = self.reports.queue(key, notes, ended.session_id)
        if queued:
            log.info(
                "queued the call report of meeting %s to %s",
                meeting or ended.session_id,
                ", ".join(targets),
                extra={"session_id": ended.session_id},
            )
        return queued

    def _call_targets(self, call: Call, ended: EndedSession) -> list[str]:
        settings = self._settings_for(call, ended)
        if settings.when == "never" or (settings.when == "alerts" and not call.report.alerts):
            return []
        names = settings.notify
        if names is None:
            names = list(call.told) or self.config.fallback()
        return [n for n in dict.fromkeys(names) if n in self.config.reporting]

    def _settings_for(self, call: Call, ended: EndedSession) -> ReportSettings:
        """The first route with a ``report`` matching one of the call's alerts (or the
        meeting, for a call without alerts); else ``history.report``."""
        meeting = {"session_id": ended.session_id}
        if ended.meeting_id:
            meeting["meeting_id"] = ended.meeting_id
        label_sets = [
            {
                **meeting,
                "alertname": f.rule,
                **({"participant_id": f.participant_id} if f.participant_id else {}),
            }
            for f in call.report.alerts
        ] or [meeting]
        for matchers, settings in self.config.routes:
            if any(matches_all(matchers, labels) for labels in label_sets):
                return settings
        return self.config.report

    def _digest(self, settings: DigestSettings, now: datetime) -> int:
        due = digest_due(settings, now)
        if due is None:
            return 0
        day, until = due
        key = f"digest:{day}"
        if self.reports.sent(key):
            return 0
        try:
            today = read_day(self.history, self.silences, until - DAY, until)
            before = read_day(self.history, self.silences, until - 2 * DAY, until - DAY)
        except Exception:
            log.exception("reading the history for the daily digest failed; trying again")
            return 0
        report = digest(today, before, settings.top)
        names = settings.notify if settings.notify is not None else self.config.fallback()
        targets = [n for n in dict.fromkeys(names) if n in self.config.reporting]
        notes = [
            self._note(name, "digest", report=report, key=key, labels={}, now=now)
            for name in targets
        ]
        queued = self.reports.queue(key, notes)
        if queued:
            log.info("queued the daily digest of %s to %s", day, ", ".join(targets))
        return queued

    @staticmethod
    def _note(
        notifier: str,
        event: NotificationEvent,
        *,
        report: Report,
        key: str,
        labels: dict[str, str],
        now: datetime,
    ) -> Notification:
        return Notification(
            id=uuid.uuid4().hex,
            notifier=notifier,
            status="resolved",
            alerts=(),
            created_at=now,
            thread=key,
            group_key=group_key(notifier, labels),
            group_labels=labels,
            reason=event,
            event=event,
            report=report,
        )


def reporting_problems(
    settings: Settings, reporting_types: Collection[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """(where, message) of each report ``notify`` entry that is unknown or whose type
    cannot render reports."""
    config = ReportingConfig.from_settings(settings, reporting_types)
    wanted: list[tuple[tuple[str | int, ...], Sequence[str]]] = []
    if settings.history.report.notify is not None:
        wanted.append((("history", "report", "notify"), settings.history.report.notify))
    if settings.history.digest is not None and settings.history.digest.notify is not None:
        wanted.append((("history", "digest", "notify"), settings.history.digest.notify))
    for index, route in enumerate(settings.alerting.routes):
        if route.report is not None and route.report.notify is not None:
            wanted.append((("alerting", "routes", index, "report", "notify"), route.report.notify))
    out = []
    for where, names in wanted:
        for name in names:
            if name not in config.notifiers:
                out.append((where, f"no notifier named {name!r}; add it under notifiers:"))
            elif name not in config.reporting:
                out.append(
                    (
                        where,
                        f"notifier {name!r} cannot render reports; name one of the types "
                        f"{', '.join(sorted(reporting_types))}",
                    )
                )
    return out
