"""Prometheus instruments: every error the daemon survives is counted here."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# no ``*_created`` series: in the text format each is one more gauge family beside every
# counter and histogram, which nothing here reads and every scrape would carry
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

API_REQUESTS = Counter(
    "watchdog_api_requests", "VideoSDK API responses by HTTP status", ["endpoint", "status"]
)
API_RETRIES = Counter("watchdog_api_retries", "VideoSDK API requests retried", ["reason"])
API_ERRORS = Counter("watchdog_api_errors", "VideoSDK API calls that failed", ["kind"])
API_TEXT_REPLACED = Counter(
    "watchdog_api_text_replaced",
    "Strings in VideoSDK answers with invalid UTF-8 or lone surrogates, kept with U+FFFD",
    ["endpoint"],
)
SAMPLE_ERRORS = Counter(
    "watchdog_sample_errors", "Stats samples or fields dropped as malformed", ["reason"]
)
SAMPLES_EVALUATED = Counter("watchdog_samples_evaluated", "New stats samples evaluated")
POLLS = Counter("watchdog_polls", "Participant polls by outcome", ["outcome"])
SLOW_PARTICIPANTS = Gauge(
    "watchdog_slow_participants",
    "Watched participants whose stats requests hit the request deadline several polls in a row",
)
POLL_SECONDS = Histogram(
    "watchdog_poll_seconds",
    "Latency of one participant poll",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CYCLE_SECONDS = Histogram(
    "watchdog_cycle_seconds",
    "Duration of a whole poll cycle",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
TRANSITIONS = Counter("watchdog_alert_transitions", "Alert transitions", ["rule", "state"])
QUEUED = Counter(
    "watchdog_notifications_queued", "Notifications written to the outbox", ["notifier"]
)
DELIVERY_ATTEMPTS = Counter(
    "watchdog_delivery_attempts",
    "Delivery attempts by outcome (sent, failed, timeout, rejected): each attempt once",
    ["notifier", "outcome"],
)
ACCEPTED_LATE = Counter(
    "watchdog_deliveries_accepted_late",
    "Delivery attempts counted as timed out that the notifier accepted after all",
    ["notifier"],
)
WATCHED = Gauge("watchdog_watched_participants", "Participants being polled")
OUTBOX_DEPTH = Gauge("watchdog_outbox_depth", "Notifications waiting for delivery")
SILENCED = Counter("watchdog_alerts_silenced", "Alert changes not notified because of a silence")
INHIBITED = Gauge(
    "watchdog_alerts_inhibited",
    "Firing alerts an inhibition rule holds back, by inhibition rule and held-back rule "
    "(exported by the instance that runs the alert manager)",
    ["inhibit_rule", "rule"],
)
OUTBOX_OVERDUE = Counter(
    "watchdog_outbox_overdue",
    "Notifications still undelivered after delivery.warn_after",
    ["notifier"],
)
WATCH_CHANGES = Counter(
    "watchdog_watch_changes", "Watch-list changes (joined, left, dropped, excluded)", ["change"]
)
DISCOVERY_RUNS = Counter("watchdog_discovery_runs", "Discovery passes by outcome", ["outcome"])
DISCOVERY_SECONDS = Histogram(
    "watchdog_discovery_seconds",
    "Duration of one discovery pass",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
)
WEBHOOKS = Counter("watchdog_webhooks", "VideoSDK webhook requests by outcome", ["outcome"])
HTTP_REFUSED = Counter(
    "watchdog_http_refused",
    "Requests an HTTP listener refused before its handler saw them",
    ["listener", "reason"],
)

# -- the service (issue 6): reloads, health, and gauges read at scrape time ------
RELOADS = Counter("watchdog_reloads", "Configuration reloads (SIGHUP) by outcome", ["outcome"])
CONFIG_RELOAD_OK = Gauge(
    "watchdog_config_last_reload_successful", "1 if the last reload was applied, 0 if rejected"
)
LAST_SUCCESSFUL_CYCLE = Gauge(
    "watchdog_last_successful_cycle_timestamp_seconds",
    "Unix time at which the last poll cycle with at least one successful poll ended",
)

# -- the state database's storage (issue 14) -------------------------------------
STATE_FAULTS = Counter(
    "watchdog_state_faults",
    "State database operations that failed because of its storage, by cause",
    ["reason"],
)
STATE_FAILED_CYCLES = Gauge(
    "watchdog_state_failed_cycles",
    "Poll cycles in a row in which the state database failed (0 while it works)",
)
ONCALL_FEED_FAILURES = Counter(
    "watchdog_oncall_feed_failures",
    "Refreshes of a team's on-call calendar feed that failed (its last good copy stays in use)",
    ["team", "reason"],
)
ESCALATION_STEPS = Counter(
    "watchdog_escalation_steps",
    "Escalation steps run, by route and outcome: notified (sent to a step's notifiers, "
    "mentions or not), mentioned (mentions only), passed_over (due outside its "
    "active_time_intervals)",
    ["route", "outcome"],
)
ACK_EXPIRIES = Counter(
    "watchdog_ack_expiries",
    "Acknowledgements that expired after ack_timeout while their alert still fired",
)
ONCALL_OVERRIDES = Counter(
    "watchdog_oncall_overrides",
    "On-call overrides this process recorded, by team and source (slack: a Take on-call "
    "button or /watchdog oncall take; the CLI's are in the audit log)",
    ["team", "source"],
)
