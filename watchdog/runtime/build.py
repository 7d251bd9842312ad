"""Wires config, rules, plugins, store, client, poller and dispatcher; service.py runs them.

Startup (:func:`build`) and a reload (:meth:`Runtime.reconfigure`) go through the same
steps for what a reload may change: :func:`prepare` validates the config and rules and
hides their secrets, :func:`make_notifiers` builds the notifiers. One instance or
several is decided here once: a :class:`~watchdog.cluster.coordinator.Cluster` or
:class:`~watchdog.poll.membership.Alone` is passed to the parts that differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from watchdog.alerting import manager as alertmanager
from watchdog.alerting import timeintervals
from watchdog.alerting.actions import StoreActions
from watchdog.alerting.callreport import sides
from watchdog.alerting.escalation import EscalationConfig, Escalator
from watchdog.alerting.manager import AlertingConfig, AlertManager
from watchdog.alerting.oncall import Feeds, Schedules
from watchdog.alerting.reports import Reporter, ReportingConfig, reporting_problems
from watchdog.cluster.coordinator import Cluster, instance_id
from watchdog.config.problems import ConfigError, Problem
from watchdog.config.settings import Config, environment_problems, request_deadline
from watchdog.config.yamlfile import format_loc
from watchdog.delivery.dispatcher import Dispatcher
from watchdog.delivery.host import PluginHost, config_redactor, load_plugins
from watchdog.engine.rulecheck import semantic_problems
from watchdog.engine.rules import RuleSet, check_notifiers, load_rules
from watchdog.notifiers import Notifier
from watchdog.obs.logs import hide
from watchdog.poll.meetings import MeetingStates
from watchdog.poll.membership import Alone, Membership
from watchdog.poll.participants import Participants
from watchdog.poll.poller import CycleReport, Poller, Reloaded
from watchdog.redaction import Redactor
from watchdog.runtime import selfmonitor
from watchdog.runtime.selfmonitor import SelfMonitor, own_polls
from watchdog.state import minutes
from watchdog.state.database import redacted_url
from watchdog.state.outbox import OutboxEntry
from watchdog.state.store import Store
from watchdog.videosdk.client import VideoSDKClient
from watchdog.videosdk.tokens import TokenSource
from watchdog.watch.discovery import Discovery
from watchdog.watch.filters import Filters
from watchdog.watch.watchlist import WatchList
from watchdog.watch.webhooks import PublicKeys, WebhookReceiver, apply_event, read_public_key

log = logging.getLogger(__name__)

CLAIM_MARGIN = timedelta(seconds=5)  # an outbox row is claimed for a delivery timeout and this


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
    problems.extend(selfmonitor.problems(config))
    problems.extend(timeintervals.problems(config))
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
    problems.extend(_history_problems(config))
    problems.extend(_report_problems(config, host))
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


def _history_problems(config: Config) -> list[Problem]:
    unknown = [m for m in config.settings.history.metrics if m not in minutes.CODES]
    if not unknown:
        return []
    file, line = config.line_for("history", "metrics")
    valid = ", ".join(minutes.CODES)
    return [Problem(file, line, f"history.metrics: unknown {unknown}; valid metrics: {valid}")]


def _report_problems(config: Config, host: PluginHost) -> list[Problem]:
    """Reports may only go to notifiers that render them."""
    out = []
    for where, message in reporting_problems(config.settings, reporting(host)):
        file, line = config.line_for(*where)
        out.append(Problem(file, line, f"{format_loc(where)}: {message}"))
    return out


def summarised(rules: RuleSet, config: Config) -> list[str]:
    """The metrics history summarises per participant-minute: the rules' and the config's."""
    history = config.settings.history
    if not history.summaries:
        return []
    return [*{r.metric for r in rules if r.metric is not None}, *history.metrics]


@dataclass(frozen=True)
class Prepared:
    """What the config and rule files make, at startup and on every reload."""

    config: Config
    rules: RuleSet
    redactor: Redactor
    warnings: list[Problem] = field(default_factory=list)


def prepare(config: Config, host: PluginHost) -> Prepared:
    """Validate; hide the config's secrets from every log line from now on; warnings are
    logged, errors raise ConfigError (exit 2 at startup, a rejected reload)."""
    redactor = config_redactor(config, host)
    hide(redactor)  # before anything can quote the new secrets
    rules, problems = validate(config, host)
    warnings = [p for p in problems if p.severity == "warning"]
    for warning in warnings:
        log.warning("%s", warning)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(errors)
    return Prepared(config, rules, redactor, warnings)


def acknowledging(host: PluginHost) -> dict[str, bool]:
    """Each notifier type's ``send_acknowledged``: its entries' default."""
    return {name: kind.send_acknowledged for name, kind in host.notifier_types.items()}


def reporting(host: PluginHost) -> set[str]:
    """The notifier types that render reports (``NotifierType.reports``)."""
    return {name for name, kind in host.notifier_types.items() if kind.reports}


def make_notifiers(
    prepared: Prepared, host: PluginHost, store: Store, oncall: Schedules | None = None
) -> dict[str, Notifier]:
    """Each configured notifier from its plugin's factory (a refusal raises)."""
    config = prepared.config
    return host.build(
        config.settings.notifiers,
        store.notifier_memory.for_notifier,
        where=config.line_for,
        actions=StoreActions(
            store.silences,
            store.alert_log,
            store.watchlist,
            escalation=EscalationConfig.from_settings(config.settings, acknowledging(host)),
            oncall=oncall,
        ),
        retention=config.settings.history.retention,
    )


def make_schedules(config: Config, store: Store) -> Schedules:
    """Who is on call: the feeds start from the copies an earlier run saved (a fetch
    follows on the service's schedule), overrides come from the state database."""
    feeds = Feeds(config.settings.oncall, config.resolve, store.oncall)
    feeds.load_saved()
    return Schedules(config.settings.oncall, feeds, store.oncall)


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
    reporter: Reporter
    watchlist: WatchList
    monitor: SelfMonitor
    oncall: Schedules
    discovery: Discovery | None = None
    cluster: Cluster | None = None  # several instances share the state database
    dry_run: bool = False

    def cycle(self, *, discover: bool = False) -> CycleReport:
        """One poll cycle, as the daemon runs it every interval and ``once`` runs it once:
        cluster heartbeat and leases, a discovery pass if asked, the polls, and the alerts
        they found flushed together at its end."""
        if self.cluster is not None:
            self.cluster.tick()  # heartbeat, leadership, leases: what this cycle polls
            self.watchlist.refresh()  # who joined or left through other instances
        if discover:
            self.discover()
        if self.dry_run:  # nothing was written: nothing for the alert manager either
            return self.poller.cycle()
        with self.manager.poll_cycle():
            report = self.poller.cycle()
            self.monitor.cycle_done(report.tally)  # its own alerts go out with the cycle's
            return report

    def discover(self) -> None:
        """A discovery pass; with several instances, the leader's alone."""
        if self.discovery is not None and (self.cluster is None or self.cluster.leader):
            self.discovery.run()

    def reconfigure(
        self,
        prepared: Prepared,
        notifiers: dict[str, Notifier],
        while_waiting: Callable[[], None] | None = None,
    ) -> Reloaded:
        """A reload: the prepared config, rules and notifiers replace the running ones
        (between two poll cycles for the rules; ``while_waiting`` runs meanwhile)."""
        settings = prepared.config.settings
        self.manager.reconfigure(AlertingConfig.from_settings(settings, acknowledging(self.host)))
        self.reporter.reconfigure(
            ReportingConfig.from_settings(settings, reporting(self.host)), sides(prepared.rules)
        )
        self.oncall.reconfigure(settings.oncall)
        self.monitor.reconfigure(settings.self_monitoring, settings.notifiers, prepared.redactor)
        reloaded = self.poller.reconfigure(
            prepared.rules, settings.poll.max_clock_skew, while_waiting
        )
        self.dispatcher.reconfigure(notifiers, prepared.redactor, settings.delivery)
        self.store.minutes.keep(summarised(prepared.rules, prepared.config))
        if reloaded.closed:  # the removed rules' resolutions go out now
            self.manager.tick()
        self.rules = prepared.rules
        self.config = prepared.config
        return reloaded

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.leave()  # its leases go back at once, nobody waits for expiry
        if self.discovery is not None:
            self.discovery.close()
        self.poller.close()
        self.client.close()
        self.store.close()


def build(config: Config, *, dry_run: bool = False, join: bool = False) -> Runtime:
    """Validate and construct everything; ConfigError (exit 2) on any error. ``join``: a
    daemon on a state database several instances may share joins the cluster."""
    host = load_plugins()
    prepared = prepare(config, host)
    settings = config.settings
    store = Store(config.state_url)
    store.minutes.keep(summarised(prepared.rules, config))
    oncall = make_schedules(config, store)
    notifiers = make_notifiers(prepared, host, store, oncall)
    client = VideoSDKClient(
        settings.videosdk,
        pool_size=settings.poll.concurrency,
        deadline=request_deadline(settings).total_seconds(),
    )
    watch = settings.watch
    watchlist = WatchList(
        store.watchlist,
        watch.participants,
        Filters.from_settings(watch.filters),
        watch.missing_polls,
        persist=not dry_run,
    )
    participants, meetings = Participants(store.polls), MeetingStates(store.polls)
    cluster = _cluster(config, store, participants, meetings) if join and store.shared else None
    membership: Membership = cluster if cluster is not None else Alone(watchlist.targets)
    delivery = settings.delivery
    dispatcher = Dispatcher(
        store.outbox,
        notifiers,
        delivery.timeout,
        delivery.max_backoff,
        warn_after=delivery.warn_after,
        concurrency=delivery.concurrency,
        redactor=prepared.redactor,
        claim=None if cluster is None else partial(_claim, cluster, delivery.timeout),
    )
    manager = AlertManager(
        store.alert_log,
        store.silences,
        AlertingConfig.from_settings(settings, acknowledging(host)),
        dispatcher.wake,
        leads=membership.leads,
        watching_in=store.watchlist.watching_in,
        escalator=Escalator(store.escalations, store.silences, oncall),
    )
    reporter = Reporter(
        store.reports,
        store.minutes,
        store.history,
        store.silences,
        ReportingConfig.from_settings(settings, reporting(host)),
        sides=sides(prepared.rules),
        leads=membership.leads,
        on_queued=dispatcher.wake,
    )
    monitor = SelfMonitor(
        settings.self_monitoring,
        settings.notifiers,
        store.alert_log,
        store.outbox,
        membership,
        pool=own_polls if cluster is None else cluster.pool_polls,
        redactor=prepared.redactor,
    )
    discovery = (
        Discovery(client, watch, watchlist, settings.poll.concurrency) if watch.discovers else None
    )
    poller = Poller(
        client,
        store.polls,
        prepared.rules,
        membership=membership,
        participants=participants,
        meetings=meetings,
        concurrency=settings.poll.concurrency,
        dry_run=dry_run,
        on_enqueue=manager.intake,
        observer=watchlist,
        max_clock_skew=settings.poll.max_clock_skew,
    )
    return Runtime(
        config,
        prepared.rules,
        host,
        store,
        client,
        poller,
        dispatcher,
        manager,
        reporter,
        watchlist,
        monitor,
        oncall,
        discovery,
        cluster,
        dry_run,
    )


def _cluster(
    config: Config, store: Store, participants: Participants, meetings: MeetingStates
) -> Cluster:
    state = config.settings.state
    lease = state.lease or config.settings.poll.interval * 3
    cluster = Cluster(
        store, lease.total_seconds(), instance_id(state.instance_id), participants, meetings
    )
    log.info(
        "instance %s: sharing %s with other instances, lease %gs",
        cluster.id,
        redacted_url(config.state_url),
        lease.total_seconds(),
    )
    return cluster


def _claim(cluster: Cluster, timeout: timedelta, entry: OutboxEntry) -> bool:
    """Several instances: a row is another instance's to deliver only once this claim (a
    delivery's timeout and a margin) has lapsed."""
    return cluster.claim(entry, (timeout + CLAIM_MARGIN).total_seconds())


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
