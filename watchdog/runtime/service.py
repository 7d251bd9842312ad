"""The daemon's life under systemd: start, report, reload, stay alive, stop.

``run`` builds everything (config, rules, plugins, state), tells systemd
``READY=1``, and then its main thread only waits for signals: the scheduler
polls, the dispatcher delivers. Every tick the main thread feeds systemd's
watchdog, but only while polls keep finishing, so a wedged scheduler gets
the service restarted; it also keeps ``STATUS=`` current. ``SIGHUP``
reloads config and rules between two poll cycles, and ``SIGTERM`` stops
polling, flushes the outbox for ``delivery.stop_grace`` and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import Literal

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import REGISTRY

from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config, Settings, load_config, split_listen
from watchdog.notifiers import Notifier
from watchdog.obs.logs import setup_logging
from watchdog.obs.telemetry import CONFIG_RELOAD_OK, LAST_SUCCESSFUL_CYCLE, RELOADS
from watchdog.runtime.build import Prepared, Runtime, build, make_notifiers, prepare, start_webhooks
from watchdog.runtime.endpoints import HttpEndpoint
from watchdog.runtime.gauges import LiveCollector
from watchdog.runtime.health import CycleSummary, Liveness, stale_after, stall_after, status_line
from watchdog.runtime.history_api import history_handler
from watchdog.runtime.pace import Pace
from watchdog.runtime.systemd import SystemdNotifier, watchdog_interval
from watchdog.state.database import database_errors, redacted_url
from watchdog.state.faults import StorageFault
from watchdog.watch.webhooks import WebhookReceiver

log = logging.getLogger(__name__)

Event = Literal["reload", "stop", "SIGTERM", "SIGINT"]

MAX_TICK = 1.0
ALERT_MANAGER_TICK = 1.0  # seconds: group_wait, repeat_interval and silences are timers
FEED_CHECK = 15.0  # seconds: how often on-call calendar feeds are checked for being due
REPORT_EVERY = 30.0  # seconds: how often ended sessions and the digest are looked at
STALL_LOG_EVERY = 30.0
# what discovery, webhooks and the client hold on to is not swapped under them
RESTART_ONLY = ("state", "poll.concurrency", "watch", "videosdk")


class ServiceFailure(Exception):
    """The daemon cannot go on (exit 1); the message says why, without secrets."""


class Service:
    def __init__(self, config: Config, systemd: SystemdNotifier | None = None) -> None:
        self.config = config
        self.systemd = systemd or SystemdNotifier()
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.failure: str | None = None
        try:
            self.runtime: Runtime = build(config, join=True)
        except database_errors() as exc:  # the only database build() touches is state
            raise ServiceFailure(
                f"cannot open the state database {redacted_url(config.state_url)}: {_cause(exc)}"
            ) from None
        self._check_store()
        settings = config.settings
        self.liveness = Liveness(stale_after(settings), stall_after(settings))
        self.pace = Pace(settings.poll.interval)
        # every job: one run at a time, a late run still runs, missed runs collapse to one
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self.http: HttpEndpoint | None = None
        self.webhooks: WebhookReceiver | None = None
        self._discover_first = self.runtime.discovery is not None
        self._collector = LiveCollector(
            self.runtime.poller.participants.all_states, self.runtime.store.outbox.stats
        )
        # the check at start just read every page back (see _check_store_after_cycle)
        every = settings.state.quick_check_interval.total_seconds()
        self._next_quick_check = time.monotonic() + every
        self._status = ""
        self._note = ""  # why the running config is not the file's, until a reload works
        self._ping_every = watchdog_interval()
        self._next_ping = 0.0
        self._next_stall_log = 0.0

    # -- start and stop ---------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> int:
        """Until SIGTERM/SIGINT (or ``stop``): 0 on a clean stop, 1 when it cannot go on."""
        stop = stop or threading.Event()
        self._install_signal_handlers()
        try:
            self._start()
            self.systemd.ready(self._status_text())
            self._announce()
            while not stop.is_set() and self.failure is None:
                try:
                    event: Event | None = self.events.get(timeout=self._tick())
                except queue.Empty:
                    event = None
                if event == "reload":
                    self.reload()
                elif event in ("SIGTERM", "SIGINT"):
                    log.info("received %s", event)
                    break
                self._heartbeat()
        finally:
            self._shutdown()
        if self.failure is not None:
            log.error("%s; exiting with status 1", self.failure)
            return 1
        return 0

    def _start(self) -> None:
        runtime, settings = self.runtime, self.config.settings
        CONFIG_RELOAD_OK.set(1)
        REGISTRY.register(self._collector)
        self._serve(settings)
        try:
            self.webhooks = start_webhooks(runtime)
        except OSError as exc:
            raise ServiceFailure(
                f"cannot listen for webhooks on {settings.watch.webhook}: {exc}"
            ) from None
        runtime.dispatcher.start()
        runtime.manager.start()
        runtime.dispatcher.wake()  # deliver whatever a previous run left in the outbox
        self.scheduler.add_job(
            self._cycle,
            IntervalTrigger(seconds=settings.poll.interval.total_seconds(), timezone=UTC),
            id="poll",
            name="poll cycle",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            runtime.manager.tick,
            IntervalTrigger(seconds=ALERT_MANAGER_TICK, timezone=UTC),
            id="alert-manager",
            name="alert manager: group_wait, repeat_interval, silences",
        )
        self.scheduler.add_job(
            self._prune_history,
            IntervalTrigger(seconds=settings.history.prune_interval.total_seconds(), timezone=UTC),
            id="history-prune",
            name="history retention",
            next_run_time=datetime.now(UTC) + timedelta(seconds=60),
        )
        self.scheduler.add_job(
            self._report,
            IntervalTrigger(seconds=REPORT_EVERY, timezone=UTC),
            id="reports",
            name="call reports and the daily digest",
            next_run_time=datetime.now(UTC) + timedelta(seconds=REPORT_EVERY),
        )
        if runtime.cluster is not None:
            self.scheduler.add_job(
                self._renew,
                IntervalTrigger(seconds=runtime.cluster.lease / 3, timezone=UTC),
                id="cluster-heartbeat",
                name="heartbeat and lease renewal",
            )
        self.scheduler.add_job(
            partial(runtime.oncall.feeds.refresh_all, due_only=True),
            IntervalTrigger(seconds=feed_check_every(settings), timezone=UTC),
            id="oncall-feeds",
            name="on-call calendar feeds due for a refresh",
            next_run_time=datetime.now(UTC),
        )
        if runtime.discovery is not None:
            every = settings.watch.discovery_interval.total_seconds()
            self.scheduler.add_job(
                runtime.discover,
                IntervalTrigger(seconds=every, timezone=UTC),
                id="discovery",
                name="discovery pass",
                next_run_time=datetime.now(UTC) + timedelta(seconds=every),
            )
        self.scheduler.start()

    def _announce(self) -> None:
        settings = self.config.settings
        found = " (and whoever discovery finds)" if self.runtime.discovery is not None else ""
        log.info(
            "watching %d participants%s with %d rules every %gs; %d notifiers: %s",
            self.runtime.watchlist.count(),
            found,
            len(self.runtime.rules),
            settings.poll.interval.total_seconds(),
            len(settings.notifiers),
            ", ".join(settings.notifiers) or "none",
        )

    def _shutdown(self) -> None:
        runtime = self.runtime
        grace = self.config.settings.delivery.stop_grace.total_seconds()
        self.systemd.stopping("stopping: finishing polls in flight and flushing the outbox")
        log.info("stopping: finishing polls in flight and flushing the outbox (up to %gs)", grace)
        if self.webhooks is not None:
            self.webhooks.stop()
        runtime.poller.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        runtime.manager.stop()
        runtime.manager.tick()  # what the last cycle found goes out with the rest
        left = runtime.dispatcher.stop(grace)
        if left:
            log.warning("%d notifications left in the outbox for the next start", left)
        else:
            log.info("outbox empty: every notification was delivered")
        if self.http is not None:
            self.http.close()
        with contextlib.suppress(KeyError):  # never registered: startup failed before
            REGISTRY.unregister(self._collector)
        runtime.close()
        self.systemd.close()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        # handlers only queue an event: logging or locking inside one can deadlock
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.events.put("SIGTERM" if signum == signal.SIGTERM else "SIGINT")

        def on_reload(signum: int, frame: FrameType | None) -> None:
            self.events.put("reload")  # SimpleQueue.put is safe inside a signal handler

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def _serve(self, settings: Settings) -> None:
        if settings.http.listen is None:
            return
        host, port = split_listen(settings.http.listen)
        try:
            api = {"/api/history": history_handler(self.runtime.store.history)}
            self.http = HttpEndpoint(host, port, self.health, api)
        except OSError as exc:
            raise ServiceFailure(f"cannot listen on {settings.http.listen}: {exc}") from None
        log.info("serving /metrics, /healthz and /api/history on %s", self.http.url)

    def _rebind(self, settings: Settings) -> None:
        """A new ``http.listen`` on reload: the old listener stays if the new one fails."""
        old = self.http
        try:
            self._serve(settings)
        except ServiceFailure as exc:
            log.error("reload: %s; still serving on %s", exc, old.url if old else "nothing")
            self.http = old
            return
        if old is not None:
            old.close()
        if settings.http.listen is None:
            self.http = None
            log.info("http.listen unset: /metrics and /healthz are off")

    # -- the poll loop and what it tells systemd -----------------------------------

    def _cycle(self) -> None:
        """The scheduled job: one poll cycle, then what liveness and health learn from it."""
        # the first poll should already see who is in calls
        discover, self._discover_first = self._discover_first, False
        report = self.runtime.cycle(discover=discover)
        summary = CycleSummary(
            ended=datetime.now(UTC),
            seconds=report.seconds,
            polled=report.polled,
            failed=report.failed,
        )
        self.liveness.cycle_done(summary)
        self.pace.cycle_done(report.seconds)
        if summary.succeeded:
            LAST_SUCCESSFUL_CYCLE.set(summary.ended.timestamp())
        self._check_store_after_cycle()

    def _renew(self) -> None:
        """Heartbeat; then be ready to take over the first instance that stops doing so."""
        assert self.runtime.cluster is not None
        self._take_over_in(self.runtime.cluster.renew())

    def _take_over_in(self, seconds: float | None) -> None:
        """A one-off job at the moment another instance's leases would fall due; every
        heartbeat moves it later while that instance lives, so it only runs when one
        has stopped (or its heartbeat is late)."""
        if seconds is None or not self.scheduler.running:
            return
        with contextlib.suppress(SchedulerNotRunningError):  # stopping meanwhile
            self.scheduler.add_job(
                self._take_over,
                DateTrigger(datetime.now(UTC) + timedelta(seconds=seconds), timezone=UTC),
                id="cluster-takeover",
                name="take over leases that fall due",
                replace_existing=True,
            )

    def _take_over(self) -> None:
        """Claim a dead instance's participants and poll them at once, not at the next
        cycle: every one is polled again within one lease and one interval of its death."""
        assert self.runtime.cluster is not None
        acquired, due = self.runtime.cluster.take_over()
        if acquired:
            self.runtime.poller.poll_now(acquired)
        self._take_over_in(due)

    def _prune_history(self) -> None:
        """The retention job, off the poll path (each batch a short transaction of its own);
        with several instances the leader's alone. Never raises: the scheduler goes on."""
        runtime = self.runtime
        if runtime.cluster is not None and not runtime.cluster.leader:
            return
        try:
            runtime.store.history.prune(self.config.settings.history.retention)
            runtime.reporter.prune()
        except StorageFault:  # counted and logged once by the store
            pass
        except Exception:
            log.exception("pruning the history failed; trying again on the next run")

    def _report(self) -> None:
        """The reports job: call reports of ended sessions, the daily digest when due (the
        leader's alone). Never raises: the scheduler goes on."""
        try:
            self.runtime.reporter.run()
        except StorageFault:  # counted and logged once by the store
            pass
        except Exception:
            log.exception("writing the reports failed; trying again on the next run")

    def _check_store(self) -> None:
        """At start: the state database takes a write and every page of it reads back."""
        try:
            self.runtime.store.check_storage(pages=True)
        except database_errors() as exc:
            self.runtime.close()
            raise ServiceFailure(
                f"the state database {redacted_url(self.config.state_url)} is not usable: "
                f"{_cause(exc)}"
            ) from None

    def _check_store_after_cycle(self) -> None:
        """Every cycle: the file is still the one opened and takes a write (and, every
        ``state.quick_check_interval`` or while it is found corrupt, reads back sound).
        A state database that keeps failing is fatal: nothing could be remembered, and a
        restart (systemd's) reopens whatever is at its path now."""
        store, state = self.runtime.store, self.config.settings.state
        now = time.monotonic()
        every = state.quick_check_interval.total_seconds()
        pages = store.faults.ongoing("corrupt") or (every > 0 and now >= self._next_quick_check)
        if pages:
            self._next_quick_check = now + every
        with contextlib.suppress(StorageFault):  # counted and logged once by the store
            store.check_storage(pages=pages)
        failed = store.faults.cycle_done()
        if failed >= state.max_failed_cycles and self.failure is None:
            self.failure = (
                f"the state database {store.faults.name} failed in {failed} poll cycles in a "
                f"row (state.max_failed_cycles): {store.faults.fault}; {store.faults.hint}"
            )
            self.events.put("stop")

    def _tick(self) -> float:
        return min(MAX_TICK, self._ping_every or MAX_TICK)

    def _heartbeat(self) -> None:
        """Feed systemd's watchdog while polls finish; keep STATUS= current."""
        now = time.monotonic()
        if self._ping_every is not None and now >= self._next_ping:
            if self.liveness.progressing(self.runtime.poller.last_progress, now):
                self.systemd.alive()
                self._next_ping = now + self._ping_every
            elif now >= self._next_stall_log:  # checked every tick, said every 30 s
                log.error(
                    "no poll has finished for %.0fs (limit %gs): not feeding systemd's watchdog",
                    now - self.runtime.poller.last_progress,
                    self.liveness.stall_after,
                )
                self._next_stall_log = now + STALL_LOG_EVERY
        text = self._status_text()
        if text != self._status:
            self._status = text
            self.systemd.status(text)

    def _status_text(self) -> str:
        poller, store = self.runtime.poller, self.runtime.store
        try:
            pending, _ = store.outbox.stats()
        except StorageFault:  # counted and logged once by the store; said below
            pending = 0
        watched = self.runtime.watchlist.count()
        line = status_line(watched, poller.firing(), pending, self.liveness.last_cycle)
        fault = store.faults.fault
        return line + (f"; state database failing: {fault}" if fault else "") + self._note

    def health(self) -> tuple[bool, str]:
        faults = self.runtime.store.faults
        fault = faults.fault
        if fault is not None:
            allowed = self.config.settings.state.max_failed_cycles
            return False, (
                f"state database {faults.name}: {fault}; {faults.failed_cycles} of "
                f"{allowed} poll cycles failed in a row before the daemon exits"
            )
        cluster = self.runtime.cluster
        if cluster is not None and not cluster.database_ok():
            return False, "cannot reach the state database (PostgreSQL)"
        return self.liveness.health(self.runtime.poller.last_progress)

    # -- reload --------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read config and rules; a bad file is rejected and the old ones keep running.

        The same steps as startup (watchdog.runtime.build): prepare, make the notifiers,
        then each part takes what it may change at run time."""
        self.systemd.reloading()
        path = self.config.path
        log.info("reloading configuration from %s", path or "the environment")
        runtime = self.runtime
        try:
            prepared = prepare(load_config(path), runtime.host)
            notifiers = make_notifiers(prepared, runtime.host, runtime.store, runtime.oncall)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            return self._reload_failed(f"{len(exc.problems)} errors")
        except Exception as exc:  # a plugin's factory refused its new config
            log.error("reload rejected: building notifiers failed: %s: %s", type(exc).__name__, exc)
            return self._reload_failed(type(exc).__name__)
        self._apply(prepared, notifiers)
        RELOADS.labels("applied").inc()
        CONFIG_RELOAD_OK.set(1)
        self._note = ""
        self._status = self._status_text()
        self.systemd.ready(self._status)
        return True

    def _reload_failed(self, why: str) -> bool:
        RELOADS.labels("rejected").inc()
        CONFIG_RELOAD_OK.set(0)
        at = datetime.now(UTC).strftime("%H:%M:%S UTC")
        self._note = f"; reload at {at} rejected ({why}), previous config running"
        self._status = self._status_text()
        self.systemd.ready(self._status)
        return False

    def _apply(self, prepared: Prepared, notifiers: dict[str, Notifier]) -> None:
        old = self.config.settings
        config = _running(prepared.config, old)
        new = config.settings
        reloaded = self.runtime.reconfigure(
            replace(prepared, config=config),
            notifiers,
            while_waiting=self._heartbeat,  # systemd's watchdog is fed while a cycle ends
        )
        if new.poll.interval != old.poll.interval:
            self.pace.interval = new.poll.interval
            self.scheduler.reschedule_job(
                "poll",
                trigger=IntervalTrigger(seconds=new.poll.interval.total_seconds(), timezone=UTC),
            )
        if new.history.prune_interval != old.history.prune_interval:
            every = new.history.prune_interval.total_seconds()
            self.scheduler.reschedule_job(
                "history-prune", trigger=IntervalTrigger(seconds=every, timezone=UTC)
            )
        if feed_check_every(new) != feed_check_every(old):
            self.scheduler.reschedule_job(
                "oncall-feeds",
                trigger=IntervalTrigger(seconds=feed_check_every(new), timezone=UTC),
            )
        if new.log != old.log:
            setup_logging(new.log.level, new.log.format)
        if new.http != old.http:
            self._rebind(new)
        self.liveness.reconfigure(stale_after(new), stall_after(new))
        self.config = config
        log.info(
            "reloaded: %d rules, %d notifiers, %d participants; %d alert states carried over, "
            "%d firing alerts of removed rules closed",
            len(prepared.rules),
            len(new.notifiers),
            self.runtime.watchlist.count(),
            reloaded.kept,
            reloaded.closed,
        )


def feed_check_every(settings: Settings) -> float:
    """Seconds between checks of which calendar feeds are due: FEED_CHECK, or the shortest
    ``refresh`` if shorter, so a feed is fetched about when its ``refresh`` says."""
    refreshes = [t.refresh.total_seconds() for t in settings.oncall.teams.values() if t.calendar]
    return min([FEED_CHECK, *refreshes])


def _cause(exc: Exception) -> str:
    """A database error for the one line the daemon exits with: a storage fault says what
    to do about it."""
    if isinstance(exc, StorageFault):
        return f"{exc}; {exc.hint}"
    return f"{type(exc).__name__}: {exc}"


def _running(config: Config, old: Settings) -> Config:
    """The reloaded config as it will run: restart-only settings keep their running values."""
    new = config.settings
    for name in RESTART_ONLY:
        section, _, field_name = name.partition(".")
        before, after = getattr(old, section), getattr(new, section)
        if field_name:
            before, after = getattr(before, field_name), getattr(after, field_name)
        if before != after:
            log.warning("%s changed: that takes effect at the next restart", name)
    kept = new.model_copy(
        update={
            "state": old.state,
            "watch": old.watch,
            "videosdk": old.videosdk,
            "poll": new.poll.model_copy(update={"concurrency": old.poll.concurrency}),
        }
    )
    return Config(settings=kept, path=config.path, document=config.document)


def run(config: Config, stop: threading.Event | None = None) -> int:
    """The daemon: 0 on a clean stop, 1 when it cannot go on (ConfigError: exit 2)."""
    return Service(config).run(stop)
