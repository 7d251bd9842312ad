"""The daemon's own alerts: ``videosdk-api-degraded`` and ``notifier-failing``.

On call must hear when the watchdog itself is blind (the VideoSDK API fails most
polls) or cannot speak (a notifier's deliveries keep failing). These alerts enter the
pipeline as a rule's do: recorded in the alert manager's log, then routed, grouped,
silenced, acknowledged and resolved by the alert manager, which only keeps a
``notifier-failing`` alert from the notifier it is about.

They are judged once per poll cycle, after its polls, by the instance that runs the
alert manager: alone, this one; with several instances the leader, over every live
instance's latest cycle (each reports its own: ``Cluster.pool_polls``) and the shared
outbox's runs of failed deliveries, so one outage is one alert, not one per instance.
What fires is read back from the alert log whenever this instance starts leading, so a
restart or a new leader resolves what an earlier one raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from watchdog.alerts import API_DEGRADED, NOTIFIER_FAILING, Alert, fingerprint
from watchdog.config.problems import Problem
from watchdog.config.settings import Config, SelfMonitoringSettings
from watchdog.durations import format_duration, format_time
from watchdog.poll.failures import PollTally
from watchdog.poll.membership import Membership
from watchdog.redaction import Redactor
from watchdog.state.alertlog import AlertLog
from watchdog.state.faults import StorageFault
from watchdog.state.leases import StaleLease
from watchdog.state.outbox import FailureRun, Outbox

log = logging.getLogger(__name__)

Pool = Callable[[PollTally], PollTally | None]
"""This instance's cycle in; the cycle to judge out (None: another instance judges)."""

API_SUBJECT = "VideoSDK API"
MAX_REASONS_TEXT = 500  # characters of failure reasons an alert carries (API error texts)


def problems(config: Config) -> list[Problem]:
    """``check``'s view of ``self_monitoring``: the notifiers it names exist."""
    settings = config.settings
    names = set(settings.notifiers)
    found = []
    for section in ("api_degraded", "notifier_failing"):
        for name in getattr(settings.self_monitoring, section).notify:
            if name not in names:
                file, line = config.line_for("self_monitoring", section, "notify")
                found.append(
                    Problem(
                        file,
                        line,
                        f"self_monitoring.{section}.notify: unknown notifier {name!r} "
                        f"(configured: {', '.join(sorted(names)) or 'none'})",
                    )
                )
    return found


def own_polls(tally: PollTally) -> PollTally:
    """One instance: its own cycle is all there is to judge."""
    return tally


def api_fingerprint() -> str:
    return fingerprint(API_DEGRADED, "daemon", "videosdk-api")


def notifier_fingerprint(notifier: str) -> str:
    return fingerprint(NOTIFIER_FAILING, "daemon", notifier)


@dataclass(slots=True)
class _Streak:
    """Judged poll cycles in a row above the threshold (bad) or at or below it (good)."""

    bad: int = 0
    good: int = 0
    since: datetime | None = None  # when the bad run began

    def add(self, degraded: bool, now: datetime) -> None:
        if degraded:
            self.bad, self.good = self.bad + 1, 0
            self.since = self.since or now
        else:
            self.bad, self.good, self.since = 0, self.good + 1, None


class SelfMonitor:
    """Raises and resolves the daemon's own alerts; :meth:`cycle_done` after every cycle."""

    def __init__(
        self,
        settings: SelfMonitoringSettings,
        notifiers: Iterable[str],
        alert_log: AlertLog,
        outbox: Outbox,
        membership: Membership,
        *,
        pool: Pool = own_polls,
        redactor: Redactor | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._notifiers = tuple(notifiers)
        # the API's error texts go into the alert: never a secret of the config with them
        self._redactor = redactor or Redactor()
        self._alert_log = alert_log
        self._outbox = outbox
        self._membership = membership
        self._pool = pool
        self._clock = clock
        self._streak = _Streak()
        # fingerprint -> the own alerts firing in the log; None until read (when leading)
        self._firing: dict[str, Alert] | None = None

    def reconfigure(
        self, settings: SelfMonitoringSettings, notifiers: Iterable[str], redactor: Redactor
    ) -> None:
        """A reload's thresholds, notifiers and secrets: judged by them from the next cycle
        on (the alerts of a notifier that is gone resolve then)."""
        self._settings = settings
        self._notifiers = tuple(notifiers)
        self._redactor = redactor

    def cycle_done(self, tally: PollTally) -> None:
        """After a poll cycle: judge, record what changed; never raises."""
        try:
            self._judge(tally)
        except StaleLease as exc:  # another instance leads now and judges
            self._forget()
            self._membership.lost_leadership(str(exc))
        except StorageFault:  # counted and logged once by the store; judged next cycle
            self._forget()
        except Exception:
            self._forget()
            log.exception("self-monitoring failed; judged again after the next cycle")

    def _forget(self) -> None:
        """Read the log again before the next judgement: what was recorded is uncertain."""
        self._firing = None

    def _judge(self, tally: PollTally) -> None:
        pooled = self._pool(tally)  # every instance reports; the leader gets the cluster's
        if pooled is None or not self._membership.leads():
            self._forget()  # another instance may raise or resolve meanwhile
            self._streak = _Streak()
            return
        now = self._clock()
        firing = self._load()
        changes = self._api(pooled, firing.get(api_fingerprint()), now)
        changes += self._notifier_changes(firing, now)
        if not changes:
            return
        settings = self._settings
        self._alert_log.record(
            [
                (
                    alert,
                    settings.api_degraded.notify
                    if alert.rule == API_DEGRADED
                    else settings.notifier_failing.notify,
                )
                for alert in changes
            ],
            leader=self._membership.leader_fence(),
        )
        for alert in changes:
            if alert.status == "firing":
                firing[alert.fingerprint] = alert
                log.warning("raised %s: %s", alert.rule, alert.summary)
            else:
                firing.pop(alert.fingerprint, None)
                log.info("resolved %s: %s", alert.rule, alert.reason or alert.condition)
        self._alone([a for a in changes if a.rule == NOTIFIER_FAILING and a.status == "firing"])

    def _load(self) -> dict[str, Alert]:
        if self._firing is None:
            self._firing = {
                a.alert.fingerprint: a.alert
                for a in self._alert_log.active_alerts()
                if a.alert.scope == "daemon" and a.alert.status == "firing"
            }
        return self._firing

    # -- videosdk-api-degraded -----------------------------------------------------------

    def _api(self, tally: PollTally, current: Alert | None, now: datetime) -> list[Alert]:
        settings = self._settings.api_degraded
        if not settings.enabled:
            self._streak = _Streak()
            off = "self_monitoring.api_degraded is turned off"
            return [] if current is None else [_resolved(current, now, off)]
        ratio = tally.ratio
        if ratio is None:  # nobody polled, or only our own trouble: no verdict either way
            return []
        streak = self._streak
        streak.add(ratio > settings.failure_ratio, now)
        if current is None and streak.bad >= settings.cycles:
            return [self._api_alert(tally, ratio, streak.since or now, now)]
        if current is not None and streak.good >= settings.clear_cycles:
            answered = f"the API answers again: {tally.failed} of {tally.judged} polls failed"
            return [_resolved(current, now, answered, value=round(ratio, 3))]
        return []

    def _api_alert(self, tally: PollTally, ratio: float, since: datetime, now: datetime) -> Alert:
        settings = self._settings.api_degraded
        reasons = self._redactor(tally.common())
        if len(reasons) > MAX_REASONS_TEXT:
            reasons = reasons[: MAX_REASONS_TEXT - 1] + "…"
        return Alert(
            fingerprint=api_fingerprint(),
            rule=API_DEGRADED,
            status="firing",
            severity=settings.severity,
            metric="poll_failure_ratio",
            op=">",
            threshold=settings.failure_ratio,
            value=round(ratio, 3),
            session_id="",
            participant_id="",
            starts_at=since,
            fired_at=now,
            sample_time=now,
            participant_name=API_SUBJECT,
            summary=(
                f"VideoSDK API degraded: {ratio:.0%} of polls failed; more than "
                f"{settings.failure_ratio:.0%} for {settings.cycles} poll cycles in a row"
            ),
            description=(
                f"{tally.failed} of {tally.judged} polls failed in the last cycle: {reasons}. "
                "Call quality is not watched while it lasts."
            ),
            labels={"alertname": API_DEGRADED, "severity": settings.severity},
            context={
                "reasons": reasons,
                "failed_polls": str(tally.failed),
                "polls": str(tally.judged),
            },
            scope="daemon",
        )

    # -- notifier-failing ----------------------------------------------------------------

    def _notifier_changes(self, firing: Mapping[str, Alert], now: datetime) -> list[Alert]:
        settings = self._settings.notifier_failing
        runs = self._outbox.failing() if settings.enabled else {}
        changes: list[Alert] = []
        watched = set()
        for name in self._notifiers:
            key = notifier_fingerprint(name)
            watched.add(key)
            current, run = firing.get(key), runs.get(name)
            if current is not None and (run is None or run.since != current.starts_at):
                why = (
                    f"a delivery to {name} succeeded"
                    if settings.enabled
                    else "self_monitoring.notifier_failing is turned off"
                )
                # a success ended its run; a new run fires at the earliest next cycle, so the
                # resolution is told before it (one write may not hold both)
                changes.append(_resolved(current, now, why))
            elif current is None and run is not None and now - run.since >= settings.after:
                changes.append(self._notifier_alert(run, now))
        for key, alert in firing.items():  # about a notifier a reload removed
            if alert.rule == NOTIFIER_FAILING and key not in watched:
                changes.append(_resolved(alert, now, f"{alert.who} is no longer configured"))
        return changes

    def _notifier_alert(self, run: FailureRun, now: datetime) -> Alert:
        settings = self._settings.notifier_failing
        name = run.notifier
        failing = max(now - run.since, timedelta(0))
        attempts = f"{run.failures} failed attempt{'s' if run.failures != 1 else ''}"
        return Alert(
            fingerprint=notifier_fingerprint(name),
            rule=NOTIFIER_FAILING,
            status="firing",
            severity=settings.severity,
            metric="failing_seconds",
            op=">=",
            threshold=settings.after.total_seconds(),
            value=round(failing.total_seconds()),
            session_id="",
            participant_id="",
            starts_at=run.since,
            fired_at=now,
            sample_time=now,
            participant_name=f"notifier {name}",
            summary=(
                f"Notifier {name} has delivered nothing for {format_duration(failing)}: {attempts}"
            ),
            description=(
                f"{attempts} since {format_time(run.since)}; last error: {run.last_error}. "
                "Its notifications wait in the outbox (videosdk-watchdog outbox list) and "
                "are retried."
            ),
            labels={"alertname": NOTIFIER_FAILING, "severity": settings.severity, "notifier": name},
            context={"last_error": run.last_error, "failed_attempts": str(run.failures)},
            scope="daemon",
        )

    def _alone(self, raised: list[Alert]) -> None:
        """A failing notifier with no other to tell: said once, as an ERROR (and in status)."""
        for alert in raised:
            name = alert.labels["notifier"]
            if any(other != name for other in self._notifiers):
                continue
            log.error(
                "notifier %s has failed for %s and no other notifier is configured: the "
                "notifier-failing alert is only in the log and in `videosdk-watchdog status` "
                "(last error: %s)",
                name,
                format_duration(alert.sample_time - alert.starts_at),
                alert.context.get("last_error", "?"),
            )


def _resolved(alert: Alert, now: datetime, reason: str, value: float | None = None) -> Alert:
    return replace(
        alert,
        status="resolved",
        sample_time=now,
        ends_at=now,
        reason=reason,
        value=alert.value if value is None else value,
    )
