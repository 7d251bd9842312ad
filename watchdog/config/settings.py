"""Daemon settings: a YAML file, overridden by ``WATCHDOG_*`` environment variables.

Precedence, highest first: ``WATCHDOG_SECTION__KEY`` variables, the plain
``VIDEOSDK_API_KEY``/``VIDEOSDK_SECRET_KEY``/``VIDEOSDK_TOKEN`` variables
(what VideoSDK's own examples use), the YAML file, defaults.
Secrets are SecretStr so they never show in a repr, a log or an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watchdog.alerts import Severity
from watchdog.config.escalation import EscalationPolicy, TimeZoneName
from watchdog.config.history import HistorySettings, ReportSettings
from watchdog.config.matchers import parse_matcher
from watchdog.config.numbers import refuse_non_number
from watchdog.config.oncall import OnCallSettings, TimeIntervalList
from watchdog.config.patterns import PatternError, compile_regex
from watchdog.config.problems import ConfigError, Problem, did_you_mean
from watchdog.config.yamlfile import MAX_CONFIG_BYTES, Document, load, validation_problems
from watchdog.durations import Duration, PositiveDuration, at_least

DEFAULT_CONFIG = "/etc/videosdk-watchdog/config.yaml"
CONFIG_ENV = "WATCHDOG_CONFIG"


class _Section(BaseModel):
    # a docstring under a field is its description: the docs and the JSON Schema show it
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_non_number(cls, value, info)


class VideoSDKSettings(_Section):
    base_url: str = "https://api.videosdk.live"
    """The VideoSDK API (the simulator's URL for a local run); also ``VIDEOSDK_API_ENDPOINT``."""
    api_key: str | None = None
    """The account's API key; usually from ``VIDEOSDK_API_KEY``."""
    secret_key: SecretStr | None = None
    """The key that signs the daemon's JWTs; keep it in ``VIDEOSDK_SECRET_KEY``."""
    token: SecretStr | None = Field(
        default=None, description="A ready-made JWT; used instead of minting one."
    )
    token_ttl: Annotated[Duration, at_least(timedelta(minutes=1))] = timedelta(hours=1)
    """Lifetime of each minted token (at least 1m); a new one is minted before expiry."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to open a connection to the API."""
    read_timeout: float = Field(default=30.0, gt=0)
    """Seconds to wait for the next bytes of an answer."""
    retries: int = Field(default=2, ge=0, le=10)
    """Retries of one call on network errors, 406, 429 and 5xx (exponential backoff, jitter)."""
    backoff: float = Field(default=0.5, ge=0, description="First retry delay in seconds.")
    max_retry_after: int = Field(default=60, ge=0)
    """The longest ``Retry-After`` (seconds) honoured; a longer one fails the call."""
    max_response_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Larger answers are refused, counted as they stream."""
    request_deadline: Annotated[Duration, at_least(timedelta(milliseconds=100))] | None = Field(
        default=None,
        description="Total time one API call may take: connect, retries and their waits, "
        "the whole body (default: the poll interval, within 5s..60s).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def has_credentials(self) -> bool:
        return self.token is not None or (self.api_key is not None and self.secret_key is not None)


class PollSettings(_Section):
    interval: PositiveDuration = timedelta(seconds=30)
    """How often every watched participant's stats are fetched (one poll cycle)."""
    concurrency: int = Field(default=16, ge=1, le=512)
    """Stats requests in flight at once (e.g. 32 for thousands of participants, a slow link)."""
    max_clock_skew: Duration = Field(
        default=timedelta(seconds=30),
        description="A sample stamped further than this ahead of the API's clock is dropped.",
    )


DEADLINE_RANGE = (timedelta(seconds=5), timedelta(seconds=60))


def request_deadline(settings: Settings) -> timedelta:
    """The total deadline of one VideoSDK call: the setting, else the poll interval kept
    within 5s..60s, so one slow answer never holds a worker past the next cycle (nor
    fails on a loaded machine at sub-second intervals)."""
    if settings.videosdk.request_deadline is not None:
        return settings.videosdk.request_deadline
    low, high = DEADLINE_RANGE
    return min(max(settings.poll.interval, low), high)


class WatchedParticipant(_Section):
    session: str = Field(min_length=1)
    """The session ID."""
    participant: str = Field(min_length=1)
    """The participant ID."""


# -- watch-list discovery (issue 5) ------------------------------------------


class WatchFilters(_Section):
    """Who discovery may watch; an empty include list means "everyone"."""

    include_rooms: list[str] = Field(default_factory=list, description="roomId or customRoomId")
    exclude_rooms: list[str] = Field(default_factory=list)
    """roomId or customRoomId; an exclude always wins."""
    include_names: list[str] = Field(
        default_factory=list, description="regular expressions (RE2), searched in the name"
    )
    exclude_names: list[str] = Field(default_factory=list)
    """Regular expressions (RE2), searched in the name."""
    include_sdks: list[str] = Field(default_factory=list, description="sdkInfo.sdkName")
    exclude_sdks: list[str] = Field(default_factory=list)
    """sdkInfo.sdkName, case-insensitive."""

    @field_validator("include_names", "exclude_names")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                compile_regex(pattern)
            except PatternError as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


class WebhookSettings(_Section):
    listen: str = Field(description="host:port the receiver binds, e.g. 127.0.0.1:8788")
    path: str = "/videosdk/webhook"
    """The path VideoSDK posts to."""
    public_key: str | None = Field(
        default=None, description="PEM text or a file path; default: fetched from VideoSDK"
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Larger bodies get 413, unread."""
    key_refresh_interval: Annotated[
        Duration, at_least(timedelta(seconds=10), "each refetch is a call to VideoSDK's API")
    ] = timedelta(minutes=5)
    """A failing signature refetches VideoSDK's public key at most this often (at least 10s)."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8788")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class WatchSettings(_Section):
    participants: list[WatchedParticipant] = Field(default_factory=list)
    """Fixed participants, always polled beside anything discovered."""
    rooms: list[str] = Field(default_factory=list, description="roomIds or customRoomIds")
    all_rooms: bool = False
    """Discover participants in every room of the account (not together with ``rooms``)."""
    filters: WatchFilters = Field(default_factory=WatchFilters)
    """Who discovery may watch; never applied to fixed participants."""
    discovery_interval: Annotated[Duration, at_least(timedelta(seconds=1))] = timedelta(seconds=30)
    """How often ongoing sessions and their active participants are listed (at least 1s)."""
    missing_polls: int = Field(default=3, ge=1, le=1000)
    """A participant whose stats answer 404 this many polls in a row is dropped."""
    webhook: WebhookSettings | None = None
    """Receive VideoSDK's webhooks, which update the watch list at once."""

    @model_validator(mode="after")
    def _one_scope(self) -> WatchSettings:
        if self.all_rooms and self.rooms:
            raise ValueError("give rooms or all_rooms: true, not both")
        return self

    @property
    def discovers(self) -> bool:
        return self.all_rooms or bool(self.rooms) or self.webhook is not None


# -- end of watch-list discovery ---------------------------------------------


class DeliverySettings(_Section):
    timeout: PositiveDuration = timedelta(seconds=30)
    """One delivery attempt; past it the attempt counts as failed and is retried."""
    max_backoff: PositiveDuration = timedelta(minutes=5)
    """Retries back off exponentially (1s, 2s, 4s ...) with jitter, up to this."""
    stop_grace: Duration = Field(
        default=timedelta(seconds=10),
        description="On SIGTERM, deliver what can go within this; the rest stays in the outbox.",
    )
    # -- alert manager and durable outbox (issue 4) --
    warn_after: PositiveDuration = Field(
        default=timedelta(minutes=10),
        description="A notification still undelivered this long after it was written is "
        "logged as an ERROR (once) and flagged in `outbox list`.",
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Parallel deliveries (threads) per notifier."
    )


class RouteSettings(_Section):
    """Alerts whose labels match every matcher also go to these notifiers."""

    match: list[str] = Field(default_factory=list)
    """Label matchers (``name=value``, ``!=``, ``=~``, ``!~``); all must hold."""
    notify: list[str] = Field(min_length=1)
    """Notifier entries the matching alerts also go to."""
    mute_time_intervals: list[str] = Field(default_factory=list)
    """Names of ``time_intervals``: while any is open, this route notifies nobody."""
    active_time_intervals: list[str] = Field(default_factory=list)
    """Names of ``time_intervals``: this route notifies only while one of them is open."""
    escalation: EscalationPolicy | None = None
    """While a matching alert fires unacknowledged: mention people, then page."""
    ack_timeout: Duration | None = None
    """Override of ``alerting.ack_timeout`` for alerts this route matches."""
    time_zone: TimeZoneName | None = None
    """Override of ``alerting.time_zone`` for alerts this route matches."""
    report: ReportSettings | None = None
    """Override of ``history.report`` for the calls whose alerts this route matches."""

    @field_validator("match", "notify", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("match")
    @classmethod
    def _valid_matchers(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_matcher(text)
        return value


class InhibitRuleSettings(_Section):
    """While an alert matching ``source_matchers`` fires, the alerts matching
    ``target_matchers`` that carry the same value of every ``equal`` label are not notified
    (Alertmanager's ``inhibit_rules``; docs/alerting.md says where ours differ)."""

    # what `check` requires, told to editors too (the validators below word it for people)
    model_config = ConfigDict(
        json_schema_extra={"required": ["source_matchers", "target_matchers"]}
    )

    name: str | None = None
    """Shown in ``status``, the audit log and ``watchdog_alerts_inhibited``; default
    ``inhibit_rules[N]``."""
    source_matchers: list[str] = Field(
        default_factory=list, validate_default=True, json_schema_extra={"minItems": 1}
    )
    """Label matchers the muting (source) alert must all pass; at least one."""
    target_matchers: list[str] = Field(
        default_factory=list, validate_default=True, json_schema_extra={"minItems": 1}
    )
    """Label matchers the muted (target) alerts must all pass; at least one."""
    equal: list[str] = Field(default_factory=list)
    """Labels that must carry one value on source and target; a label missing on both
    sides is not equal."""

    @field_validator("source_matchers", "target_matchers", "equal", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("source_matchers", "target_matchers")
    @classmethod
    def _valid_matchers(cls, value: list[str], info: ValidationInfo) -> list[str]:
        side = "source" if info.field_name == "source_matchers" else "target"
        if not value:
            example = "scope=meeting" if side == "source" else "scope=participant"
            raise ValueError(
                f"an inhibit rule needs at least one {side} matcher (e.g. "
                f"{info.field_name}: [{example}]): none would make every alert a {side}"
            )
        for text in value:
            parse_matcher(text)
        return value


class NotifierOptions(_Section):
    """Alert-manager options a ``notifiers:`` entry may set beside its plugin's own keys.

    Unset values fall back to the ``alerting:`` section.
    """

    send_resolved: bool | None = None
    """Override of ``alerting.send_resolved`` for this entry."""
    repeat_interval: Duration | None = None
    """Override of ``alerting.repeat_interval`` for this entry."""
    group_by: list[str] | None = None
    """Override of ``alerting.group_by`` for this entry."""
    group_wait: Duration | None = None
    """Override of ``alerting.group_wait`` for this entry."""
    group_interval: Duration | None = None
    """Override of ``alerting.group_interval`` for this entry."""
    send_acknowledged: bool | None = None
    """Send acknowledgement notices (acknowledged, unacknowledged); default: its type's choice."""


NOTIFIER_CORE_KEYS = frozenset({"type", *NotifierOptions.model_fields})


class AlertingSettings(_Section):
    group_by: list[str] = Field(
        default_factory=lambda: ["meeting_id", "alertname"],
        description="Labels whose equal values put alerts in one notification; "
        "'...' for every label (one notification per alert).",
    )
    group_wait: Duration = timedelta(0)
    """Hold a group's first notification (and each change) this long to collect more alerts."""
    group_interval: Duration | None = None
    """Least time between two notifications of one group: changes in between travel together.
    Unset: 0s, but the poll interval for the meeting view (``group_by: [meeting_id]``)."""
    repeat_interval: Duration = timedelta(hours=4)
    """Remind about a group still firing this often (0s: never)."""
    send_resolved: bool = True
    """Tell notifiers when an alert they were told about resolves."""
    ack_timeout: Duration = timedelta(0)
    """An acknowledgement of an alert still firing expires after this (0s: never)."""
    time_zone: TimeZoneName = "UTC"
    """Where *Snooze until 09:00* counts 09:00 when the on-call team has no time zone."""
    routes: list[RouteSettings] = Field(default_factory=list)
    """Routes by label, on top of each rule's ``notify``; every matching route applies."""
    default_notify: list[str] | None = None
    """Where alerts that nothing routes go; unset: every notifier."""
    inhibit_rules: list[InhibitRuleSettings] = Field(default_factory=list)
    """Alerts that mute others while they fire (beside ``routes``, as Alertmanager's
    ``inhibit_rules`` sit beside its ``route``)."""


class ApiDegradedSettings(_Section):
    """``videosdk-api-degraded``: the API fails more than a share of the polls, cycle after
    cycle (see the alerting page for what counts as the API's failure)."""

    enabled: bool = True
    """Raise it; ``false`` turns it off."""
    failure_ratio: float = Field(default=0.5, ge=0, lt=1)
    """A cycle counts as degraded when more than this share of its polls fail because of
    the API (5xx, 429, network, request deadline, unusable answer, refused credentials)."""
    cycles: int = Field(default=3, ge=1, le=1000)
    """It fires after this many degraded poll cycles in a row."""
    clear_cycles: int = Field(default=1, ge=1, le=1000)
    """It resolves after this many poll cycles in a row at or below ``failure_ratio``."""
    severity: Severity = "critical"
    """Its ``severity`` label."""
    notify: list[str] = Field(default_factory=list)
    """Notifiers it always goes to, beside routes (like a rule's ``notify``)."""


class NotifierFailingSettings(_Section):
    """``notifier-failing``: a notifier's deliveries have failed for a while; it goes to the
    other notifiers, never to the failing one."""

    enabled: bool = True
    """Raise it; ``false`` turns it off."""
    after: Duration = timedelta(minutes=5)
    """It fires once a notifier's deliveries have failed this long without one success
    (``0s``: at its first failure)."""
    severity: Severity = "warning"
    """Its ``severity`` label."""
    notify: list[str] = Field(default_factory=list)
    """Notifiers it always goes to, beside routes (the failing one is always left out)."""


class SelfMonitoringSettings(_Section):
    api_degraded: ApiDegradedSettings = Field(default_factory=ApiDegradedSettings)
    """The ``videosdk-api-degraded`` alert."""
    notifier_failing: NotifierFailingSettings = Field(default_factory=NotifierFailingSettings)
    """The ``notifier-failing`` alert."""


class StateSettings(_Section):
    url: str = Field(
        default_factory=lambda: str(
            Path(os.environ.get("STATE_DIRECTORY", "/var/lib/videosdk-watchdog")) / "state.db"
        )
    )
    """A SQLite file (relative to the config file), or a ``postgresql://`` URL (default:
    ``$STATE_DIRECTORY/state.db``)."""
    # several instances on one PostgreSQL (issue 9); ignored with SQLite
    lease: Duration | None = None
    """PostgreSQL: a participant's lease is valid while its owner's heartbeat is younger
    than this (default: three poll intervals)."""
    instance_id: str | None = None
    """PostgreSQL: this instance's name in ``status`` (default: host-pid-random, new on
    every start)."""
    pool_size: int = Field(default=10, ge=1, le=200)
    """PostgreSQL: connections this instance opens (plus one for the leader lock)."""
    max_failed_cycles: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Poll cycles in a row in which the state database fails (full, "
        "read-only, deleted, replaced, corrupt, unreachable) before the daemon exits 1.",
    )
    quick_check_interval: Duration = Field(
        default=timedelta(minutes=10),
        description="How often a running daemon reads its SQLite file back to find "
        "corrupt pages (PRAGMA quick_check); 0s turns it off.",
    )


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """The least severe level logged."""
    format: Literal["plain", "json"] = "plain"
    """``plain``: one line an event (no timestamp under systemd); ``json``: one object a line."""


# -- the service: HTTP endpoint and health (issue 6) ---------------------------


class HttpSettings(_Section):
    """``listen: 127.0.0.1:9464`` serves /metrics and /healthz; unset, no listener."""

    listen: str | None = None
    """host:port serving ``/metrics`` and ``/healthz`` (e.g. 127.0.0.1:9464); unset: no listener."""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts; ValueError says what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:9464 or [::1]:9464)")
    return host.removeprefix("[").removesuffix("]"), int(port)


class HealthSettings(_Section):
    stale_after: PositiveDuration | None = Field(
        default=None,
        description="/healthz fails when the last successful poll cycle is older "
        "(default: 3 poll intervals).",
    )
    stall_after: PositiveDuration | None = Field(
        default=None,
        description="systemd's watchdog stops being fed when no poll finished for this long "
        "(default: the poll interval plus the longest one poll can take with its retries).",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATCHDOG_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    videosdk: VideoSDKSettings = Field(default_factory=VideoSDKSettings)
    """The VideoSDK API: credentials, timeouts, retries."""
    poll: PollSettings = Field(default_factory=PollSettings)
    """The poll cycle."""
    watch: WatchSettings = Field(default_factory=WatchSettings)
    """Who is watched: fixed participants, discovery, webhooks, filters."""
    rules: list[str] = Field(default_factory=list, description="Rule files, relative to this file.")
    notifiers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Named destinations; ``type`` picks the plugin whose config model validates the rest."""
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    """The durable outbox and its delivery lanes."""
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    """The alert manager: grouping, reminders, resolutions, routes, inhibition."""
    self_monitoring: SelfMonitoringSettings = Field(default_factory=SelfMonitoringSettings)
    """The daemon's own alerts: the VideoSDK API degraded, a notifier failing."""
    state: StateSettings = Field(default_factory=StateSettings)
    """The state database: SQLite, or PostgreSQL for several instances."""
    log: LogSettings = Field(default_factory=LogSettings)
    """Log level and format."""
    http: HttpSettings = Field(default_factory=HttpSettings)
    """The metrics and health endpoint."""
    health: HealthSettings = Field(default_factory=HealthSettings)
    """When ``/healthz`` and systemd's watchdog call the daemon unhealthy."""
    time_intervals: TimeIntervalList = Field(default_factory=list)
    """Named time windows (Alertmanager's syntax) for routes' ``mute_time_intervals`` and
    ``active_time_intervals``."""
    oncall: OnCallSettings = Field(default_factory=OnCallSettings)
    """Teams, their people, and who is on call: a calendar feed or a rotation."""
    history: HistorySettings = Field(default_factory=HistorySettings)
    """Alert history and minute summaries: retention, pruning (watchdog.state.history)."""

    @field_validator("rules", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("notifiers")
    @classmethod
    def _typed(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, entry in value.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
                raise ValueError(f"notifier {name!r} needs a 'type' (e.g. type: console)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            env_settings,
            _PlainVideoSDKEnv(settings_cls),
            init_settings,
        )


class _PlainVideoSDKEnv(PydanticBaseSettingsSource):
    """``VIDEOSDK_API_KEY`` and friends, the names VideoSDK's examples use."""

    NAMES = {
        "VIDEOSDK_API_KEY": "api_key",
        "VIDEOSDK_SECRET_KEY": "secret_key",
        "VIDEOSDK_TOKEN": "token",
        "VIDEOSDK_API_ENDPOINT": "base_url",
    }

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {key: os.environ[env] for env, key in self.NAMES.items() if os.environ.get(env)}
        return {"videosdk": found} if found else {}


@dataclass(frozen=True)
class Config:
    """Validated settings plus where they came from (for relative paths and errors)."""

    settings: Settings
    path: str | None
    document: Document | None

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent if self.path else Path.cwd()

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    @property
    def rule_paths(self) -> list[Path]:
        return [self.resolve(p) for p in self.settings.rules]

    @property
    def state_url(self) -> str:
        url = self.settings.state.url
        if "://" in url or url == ":memory:":
            return url
        return str(self.resolve(url))

    def line_for(self, *loc: str | int) -> tuple[str, int | None]:
        if self.document is None:
            return ("environment", None)
        return (self.document.path, self.document.line_for(loc))


def config_path(explicit: str | None) -> tuple[str, bool]:
    """The config file to read, and whether the user named it."""
    if explicit:
        return explicit, True
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV], True
    return DEFAULT_CONFIG, False


def load_config(explicit: str | None = None, *, required: bool = False) -> Config:
    """Read and validate the config; raise ConfigError with file:line problems.

    ``required``: the command reads the daemon's state or credentials, and defaults
    would point it at a state database no daemon reads (a silence nobody enforces),
    so no config file at all is an error naming where it was looked for.
    """
    path, named = config_path(explicit)
    document: Document | None = None
    if required and not named and not Path(path).exists():
        raise ConfigError.single(
            path,
            None,
            f"no config file: not found here, no --config given and ${CONFIG_ENV} not set; "
            "this command reads the daemon's state and credentials, so name the daemon's "
            "config with --config PATH (or WATCHDOG_CONFIG=PATH)",
        )
    if named or Path(path).exists():
        document = load(path, MAX_CONFIG_BYTES)
        if document.data is None:
            document.data = {}
        if not isinstance(document.data, dict):
            raise ConfigError([Problem(path, 1, "the config file must be a YAML mapping")])
    try:
        settings = Settings(**(document.data if document else {}))
    except ValidationError as exc:
        if document is None:
            raise ConfigError(
                Problem("environment", None, p.message)
                for p in validation_problems(Document("environment", {}), exc, model=Settings)
            ) from None
        raise ConfigError(_attribute(document, exc)) from None
    return Config(settings=settings, path=path if document else None, document=document)


# top-level keys an Alertmanager user may write where Alertmanager has them: where ours live
MISPLACED = {
    "inhibit_rules": (
        "inhibit_rules: belongs under alerting: (indent it there, beside routes): "
        "our alerting: section is Alertmanager's config, where inhibit_rules sit beside route"
    ),
}


def _attribute(document: Document, exc: ValidationError) -> list[Problem]:
    """Problems from the file keep its lines; those from a variable name it."""
    problems = []
    for problem, item in zip(
        validation_problems(document, exc, model=Settings),
        exc.errors(include_url=False, include_input=False),
        strict=True,
    ):
        variable = _env_variable(tuple(item["loc"]))
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden" and len(loc) == 1 and str(loc[0]) in MISPLACED:
            problems.append(document.problem(loc, MISPLACED[str(loc[0])]))
        elif variable is None:
            problems.append(problem)
        else:
            problems.append(Problem(f"environment variable {variable}", None, problem.message))
    return problems


# WATCHDOG_* variables that are not settings: ours, and systemd's watchdog protocol
_NOT_SETTINGS = frozenset({CONFIG_ENV, "WATCHDOG_LOAD_PLUGINS", "WATCHDOG_USEC", "WATCHDOG_PID"})


def environment_problems(environ: Mapping[str, str] | None = None) -> list[Problem]:
    """A warning for each ``WATCHDOG_*`` variable naming no settings section.

    pydantic-settings reads only the variables of known sections, so a typo such as
    ``WATCHDOG_POL__INTERVAL`` would otherwise be ignored without a word.
    """
    sections = set(Settings.model_fields)
    problems = []
    for name in sorted(os.environ if environ is None else environ):
        upper = name.upper()
        if not upper.startswith("WATCHDOG_") or upper in _NOT_SETTINGS:
            continue
        section = upper.removeprefix("WATCHDOG_").split("__", 1)[0].lower()
        if section in sections:
            continue
        prefix = next((known for known in sections if section.startswith(f"{known}_")), None)
        if prefix is not None:
            hint = f"; nested keys take two underscores: WATCHDOG_{prefix.upper()}__..."
        else:
            hint = did_you_mean(section, sections) or f" (sections: {', '.join(sorted(sections))})"
        problems.append(
            Problem(
                f"environment variable {name}",
                None,
                f"unknown settings section {section!r}{hint}; the variable is ignored",
                "warning",
            )
        )
    return problems


def _env_variable(loc: tuple[Any, ...]) -> str | None:
    """The WATCHDOG_* variable that set the value at ``loc``, if one did."""
    for end in range(len(loc), 0, -1):
        name = "WATCHDOG_" + "__".join(str(p).upper() for p in loc[:end])
        for key in os.environ:
            if key.upper() == name:
                return key
    return None
