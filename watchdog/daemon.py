"""Wires config, rules, plugins, store, client, poller and dispatcher; service.py runs them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from watchdog import alertmanager
from watchdog.actions import StoreActions
from watchdog.alertmanager import AlertingConfig, AlertManager
from watchdog.discovery import Discovery
from watchdog.dispatcher import Dispatcher
from watchdog.logs import hide
from watchdog.plugins import PluginHost, config_redactor, load_plugins
from watchdog.poller import CycleReport, Poller
from watchdog.problems import ConfigError, Problem
from watchdog.rulecheck import semantic_problems
from watchdog.rules import RuleSet, check_notifiers, load_rules
from watchdog.settings import Config, environment_problems, request_deadline
from watchdog.store import Store
from watchdog.tokens import TokenSource
from watchdog.videosdk import VideoSDKClient
from watchdog.watchfilters import Filters
from watchdog.watchlist import WatchList
from watchdog.webhooks import PublicKeys, WebhookReceiver, apply_event, read_public_key

log = logging.getLogger(__name__)


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
    problems.extend(rules.empty_problems())
    problems.extend(check_notifiers(rules, settings.notifiers))
    problems.extend(alertmanager.problems(config, {k for r in rules for k in r.labels}))
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
    problems.extend(_watch_problems(config))
    problems.extend(environment_problems())
    problems.extend(semantic_problems(rules, settings.poll.interval))
    return rules, problems


def _watch_problems(config: Config) -> list[Problem]:
    """What the watch section's model cannot check alone: the webhook key must load."""
    webhook = config.settings.watch.webhook
    if webhook is None or webhook.public_key is None:
        return []
    try:
        read_public_key(webhook.public_key, config.resolve)
    except ValueError as exc:
        file, line = config.line_for("watch", "webhook", "public_key")
        return [Problem(file, line, f"watch.webhook.public_key: {exc}")]
    return []


@dataclass
class Runtime:
    config: Config
    rules: RuleSet
    host: PluginHost
    store: Store
    client: VideoSDKClient
    poller: Poller
    dispatcher: Dispatcher
    manager: AlertManager
    watchlist: WatchList
    discovery: Discovery | None = None

    def close(self) -> None:
        if self.discovery is not None:
            self.discovery.close()
        self.poller.close()
        self.client.close()
        self.store.close()


def build(config: Config, dry_run: bool = False) -> Runtime:
    """Validate and construct everything; ConfigError (exit 2) on any error."""
    host = load_plugins()
    redactor = config_redactor(config, host)
    hide(redactor)
    rules, problems = validate(config, host)
    errors = [p for p in problems if p.severity == "error"]
    for warning in (p for p in problems if p.severity == "warning"):
        log.warning("%s", warning)
    if errors:
        raise ConfigError(errors)
    settings = config.settings
    store = Store(config.state_url)
    notifiers = host.build(
        settings.notifiers, store.notifier_state, where=config.line_for, actions=StoreActions(store)
    )
    client = VideoSDKClient(
        settings.videosdk,
        pool_size=settings.poll.concurrency,
        deadline=request_deadline(settings).total_seconds(),
    )
    delivery = settings.delivery
    dispatcher = Dispatcher(
        store,
        notifiers,
        delivery.timeout,
        delivery.max_backoff,
        warn_after=delivery.warn_after,
        concurrency=delivery.concurrency,
        redactor=redactor,
    )
    manager = AlertManager(store, AlertingConfig.from_settings(settings), dispatcher.wake)
    watch = settings.watch
    watchlist = WatchList(
        store,
        watch.participants,
        Filters.from_settings(watch.filters),
        watch.missing_polls,
        persist=not dry_run,
    )
    discovery = (
        Discovery(client, watch, watchlist, settings.poll.concurrency) if watch.discovers else None
    )
    poller = Poller(
        client,
        store,
        rules,
        targets=watchlist.targets,
        concurrency=settings.poll.concurrency,
        dry_run=dry_run,
        on_enqueue=manager.intake,
        observer=watchlist,
        max_clock_skew=settings.poll.max_clock_skew,
    )
    return Runtime(
        config, rules, host, store, client, poller, dispatcher, manager, watchlist, discovery
    )


def poll_and_notify(runtime: Runtime) -> CycleReport:
    """One scheduled poll: alerts found in one cycle are flushed together after it."""
    with runtime.manager.poll_cycle():
        return runtime.poller.cycle()


def start_webhooks(runtime: Runtime) -> WebhookReceiver | None:
    """The webhook endpoint, if configured; it feeds the watch list directly."""
    webhook = runtime.config.settings.watch.webhook
    if webhook is None or runtime.discovery is None:
        return None
    configured = None
    if webhook.public_key is not None:
        configured = read_public_key(webhook.public_key, runtime.config.resolve)
    keys = PublicKeys(runtime.client, configured, webhook.key_refresh_interval)
    discovery, watchlist = runtime.discovery, runtime.watchlist
    receiver = WebhookReceiver(
        webhook, keys, lambda event: apply_event(event, watchlist, discovery)
    )
    receiver.start()
    return receiver


def token(config: Config) -> str:
    return TokenSource(config.settings.videosdk).get()
