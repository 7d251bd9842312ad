"""Wires config, rules, plugins, store, client, poller and dispatcher, and runs them."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watchdog.dispatcher import Dispatcher
from watchdog.plugins import PluginHost, load_plugins
from watchdog.poller import Poller
from watchdog.problems import ConfigError, Problem
from watchdog.rulecheck import semantic_problems
from watchdog.rules import RuleSet, check_notifiers, load_rules
from watchdog.settings import Config
from watchdog.store import Store
from watchdog.telemetry import WATCHED
from watchdog.tokens import TokenSource
from watchdog.videosdk import VideoSDKClient

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0


def validate(config: Config, host: PluginHost | None = None) -> tuple[RuleSet, list[Problem]]:
    """Everything ``check`` and startup verify, all problems at once (warnings included)."""
    problems: list[Problem] = []
    settings = config.settings
    rules = RuleSet()
    if not settings.rules:
        file, line = config.line_for()
        problems.append(Problem(file, line, "no rule files configured (rules: [path, ...])"))
    try:
        rules = load_rules(config.rule_paths)
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(check_notifiers(rules, settings.notifiers))
    host = host or load_plugins()
    try:
        host.validate(settings.notifiers, where=config.line_for)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if not settings.notifiers:
        file, line = config.line_for("notifiers")
        problems.append(
            Problem(file, line, "no notifiers configured: alerts would go nowhere", "warning")
        )
    if not settings.videosdk.has_credentials():
        file, line = config.line_for("videosdk")
        problems.append(
            Problem(
                file,
                line,
                "videosdk: set api_key and secret_key (or VIDEOSDK_API_KEY and "
                "VIDEOSDK_SECRET_KEY), or a ready-made token",
            )
        )
    problems.extend(semantic_problems(rules, settings.poll.interval))
    return rules, problems


@dataclass
class Runtime:
    config: Config
    rules: RuleSet
    host: PluginHost
    store: Store
    client: VideoSDKClient
    poller: Poller
    dispatcher: Dispatcher

    def close(self) -> None:
        self.poller.close()
        self.client.close()
        self.store.close()


def build(config: Config, dry_run: bool = False) -> Runtime:
    """Validate and construct everything; ConfigError (exit 2) on any error."""
    host = load_plugins()
    rules, problems = validate(config, host)
    errors = [p for p in problems if p.severity == "error"]
    for warning in (p for p in problems if p.severity == "warning"):
        log.warning("%s", warning)
    if errors:
        raise ConfigError(errors)
    settings = config.settings
    store = Store(config.state_url)
    notifiers = host.build(settings.notifiers, store.notifier_state, where=config.line_for)
    client = VideoSDKClient(settings.videosdk, pool_size=settings.poll.concurrency)
    dispatcher = Dispatcher(
        store, notifiers, settings.delivery.timeout, settings.delivery.max_backoff
    )
    poller = Poller(
        client,
        store,
        rules,
        notifiers=list(settings.notifiers),
        targets=settings.watch.participants,
        concurrency=settings.poll.concurrency,
        dry_run=dry_run,
        on_enqueue=dispatcher.wake,
    )
    return Runtime(config, rules, host, store, client, poller, dispatcher)


def token(config: Config) -> str:
    return TokenSource(config.settings.videosdk).get()


def run(config: Config, stop: threading.Event | None = None) -> int:
    """The daemon: poll on schedule, deliver continuously, stop cleanly on SIGTERM/SIGINT."""
    runtime = build(config)
    stop = stop or threading.Event()
    _install_signal_handlers(stop)
    settings = config.settings
    WATCHED.set(len(settings.watch.participants))
    runtime.dispatcher.start()
    runtime.dispatcher.wake()  # deliver whatever a previous run left in the outbox
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        runtime.poller.cycle,
        IntervalTrigger(seconds=settings.poll.interval.total_seconds(), timezone=UTC),
        id="poll",
        name="poll cycle",
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    scheduler.start()
    log.info(
        "watching %d participants with %d rules every %gs; %d notifiers: %s",
        len(settings.watch.participants),
        len(runtime.rules),
        settings.poll.interval.total_seconds(),
        len(settings.notifiers),
        ", ".join(settings.notifiers) or "none",
    )
    try:
        stop.wait()
    finally:
        log.info("stopping: finishing the current poll cycle and flushing the outbox")
        scheduler.shutdown(wait=True)
        left = runtime.dispatcher.stop(STOP_GRACE_SECONDS)
        if left:
            log.warning("%d notifications left in the outbox for the next start", left)
        runtime.close()
    return 0


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
