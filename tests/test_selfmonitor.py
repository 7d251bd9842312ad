"""The daemon's own alerts: ``videosdk-api-degraded`` and ``notifier-failing``, end to end.

The daemon's own cycle (``Runtime.cycle``) runs against the simulator and real webhook
receivers on 127.0.0.1; failures come from the simulator's faults and from a receiver
answering 500. Thresholds are crossed by counting cycles, and by a clock handed to the
self-monitor for ``notifier_failing.after``, never by sleeping through them.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.alerting.manager import AlertingConfig, Policy, Route
from watchdog.alerts import API_DEGRADED, NOTIFIER_FAILING
from watchdog.config.matchers import parse_matchers
from watchdog.config.settings import load_config
from watchdog.poll.failures import PollFailures, PollTally, cause_of, pooled
from watchdog.redaction import MASK
from watchdog.runtime.build import Runtime, build, make_notifiers, prepare
from watchdog.runtime.selfmonitor import SelfMonitor
from watchdog.sim.simulator import Fault, Simulator
from watchdog.testing import HttpReceiver, Reply
from watchdog.videosdk.client import (
    AuthenticationError,
    ServerError,
    TransportError,
    VideoSDKError,
)

from .conftest import SECRET, write_config
from .helpers import video_series
from .processes import Daemon
from .sinks import Sink, install_plugin
from .sitedirs import PYTHON, env_with_path

POOR = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: warning
"""
PEOPLE = [("s-1", f"p{i}") for i in range(1, 5)]


def _people(sim: Simulator, keys: list[tuple[str, str]], video: float = 4.2) -> None:
    for session, participant in keys:
        sim.add_participant(
            session,
            participant,
            samples=video_series([(t, video) for t in range(0, 60, 10)]),
            meeting_id="m-1",
        )


def _config(
    tmp_path: Path,
    sim: Simulator,
    keys: list[tuple[str, str]],
    notifiers: dict[str, HttpReceiver],
    **sections: Any,
) -> Path:
    """A config whose notifiers are webhooks to these receivers; polls are never retried,
    so each poll is one request and a fault's count is a number of polls."""
    path = write_config(tmp_path, sim.url, keys, POOR, videosdk={"retries": 0})
    data = yaml.safe_load(path.read_text())
    data["notifiers"] = {
        name: {"type": "webhook", "url": f"{receiver.url}/{name}"}
        for name, receiver in notifiers.items()
    }
    data["delivery"] = {"timeout": "5s", "max_backoff": "1s"}
    data.update(sections)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def receivers() -> Iterator[tuple[HttpReceiver, HttpReceiver]]:
    with HttpReceiver() as oncall, HttpReceiver() as backup:
        yield oncall, backup


def _alerts(receiver: HttpReceiver, name: str) -> list[tuple[str, dict[str, Any]]]:
    """(status, alert) of every alert named ``name`` the receiver was sent, in order."""
    return [
        (alert["status"], alert)
        for request in list(receiver.requests)
        for alert in request.json()["alerts"]
        if alert["labels"]["alertname"] == name
    ]


def _deliver(runtime: Runtime) -> None:
    """Deliver what is due (a failing notifier's rows stay, waiting for their retry)."""
    runtime.dispatcher.drain(10)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _with_clock(runtime: Runtime, clock: Callable[[], datetime]) -> Runtime:
    """The same parts, with a self-monitor whose clock the test moves (a new Runtime)."""
    settings = runtime.config.settings
    monitor = SelfMonitor(
        settings.self_monitoring,
        settings.notifiers,
        runtime.store.alert_log,
        runtime.store.outbox,
        runtime.poller.membership,
        clock=clock,
    )
    return replace(runtime, monitor=monitor)


# -- videosdk-api-degraded ------------------------------------------------------------------


def test_the_api_degrades_the_alert_fires_through_the_webhook_then_resolves(
    tmp_path: Path, sim: Simulator, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    oncall, _ = receivers
    _people(sim, PEOPLE)
    runtime = build(load_config(str(_config(tmp_path, sim, PEOPLE, {"oncall": oncall}))))
    try:
        runtime.cycle()  # healthy
        sim.inject(Fault(status=503, count=3 * len(PEOPLE)))  # three cycles of an outage
        for _ in range(2):
            runtime.cycle()
            _deliver(runtime)
        assert _alerts(oncall, API_DEGRADED) == []  # two degraded cycles: not yet
        runtime.cycle()
        _deliver(runtime)
        ((status, alert),) = _alerts(oncall, API_DEGRADED)
        assert status == "firing"
        assert alert["labels"] == {
            "alertname": API_DEGRADED,
            "severity": "critical",
            "scope": "daemon",
            "metric": "poll_failure_ratio",
        }
        notes = alert["annotations"]
        assert notes["value"] == "1"
        assert notes["threshold"] == "0.5"
        assert "HTTP 503" in notes["reasons"]
        assert "4 of 4 polls failed" in notes["description"]
        assert notes["participant_name"] == "VideoSDK API"

        runtime.cycle()  # the API answers again: one cycle at or below the threshold
        _deliver(runtime)
        statuses = [s for s, _ in _alerts(oncall, API_DEGRADED)]
        assert statuses == ["firing", "resolved"]
        resolved = _alerts(oncall, API_DEGRADED)[-1][1]
        assert resolved["annotations"]["resolved_reason"].startswith("the API answers again")
        assert runtime.store.alert_log.active_alerts() == []  # told, and done
    finally:
        runtime.close()


def test_a_participants_own_404_is_no_api_trouble(
    tmp_path: Path, sim: Simulator, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    """Three of four participants are gone (404): the API answered every poll."""
    oncall, _ = receivers
    _people(sim, PEOPLE[:1])
    runtime = build(load_config(str(_config(tmp_path, sim, PEOPLE, {"oncall": oncall}))))
    try:
        for _ in range(3):
            report = runtime.cycle()
            assert report.polled == 4
            assert (report.tally.answered, report.tally.failed) == (4, 0)
        sim.inject(Fault(status=400, participant="p1", count=3))  # its own bad request
        for _ in range(3):
            report = runtime.cycle()
            assert report.failed == report.polled
            assert (report.tally.answered, report.tally.failed) == (report.polled, 0)
        _deliver(runtime)
        assert _alerts(oncall, API_DEGRADED) == []
    finally:
        runtime.close()


def test_the_api_alert_is_silenced_routed_and_can_be_turned_off(
    tmp_path: Path, sim: Simulator, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    oncall, backup = receivers
    _people(sim, PEOPLE[:1])
    sections = {
        "alerting": {"routes": [{"match": [f"alertname={API_DEGRADED}"], "notify": ["backup"]}]},
        "self_monitoring": {"api_degraded": {"cycles": 1, "severity": "warning"}},
    }
    notifiers = {"oncall": oncall, "backup": backup}
    config = _config(tmp_path, sim, PEOPLE[:1], notifiers, **sections)
    runtime = build(load_config(str(config)))
    try:
        sim.inject(Fault(status=502, count=1))
        runtime.cycle()  # one degraded cycle is enough here
        _deliver(runtime)
        assert [s for s, _ in _alerts(backup, API_DEGRADED)] == ["firing"]
        assert _alerts(oncall, API_DEGRADED) == []  # a route sends it, nothing else
        assert _alerts(backup, API_DEGRADED)[0][1]["labels"]["severity"] == "warning"
    finally:
        runtime.close()

    data = yaml.safe_load(config.read_text())
    data["self_monitoring"]["api_degraded"]["enabled"] = False
    data["state"]["url"] = "state-2.db"
    config.write_text(yaml.safe_dump(data))
    runtime = build(load_config(str(config)))
    try:
        sim.inject(Fault(status=502, count=2))
        runtime.cycle()
        runtime.cycle()
        _deliver(runtime)
        assert len(_alerts(backup, API_DEGRADED)) == 1  # the first run's, nothing new
    finally:
        runtime.close()


def test_a_silence_mutes_the_api_alert(
    tmp_path: Path, sim: Simulator, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    oncall, _ = receivers
    _people(sim, PEOPLE[:1])
    sections = {"self_monitoring": {"api_degraded": {"cycles": 1}}}
    config = _config(tmp_path, sim, PEOPLE[:1], {"oncall": oncall}, **sections)
    runtime = build(load_config(str(config)))
    try:
        silence = [f"--match=alertname={API_DEGRADED}", "--comment=VideoSDK maintenance"]
        done = subprocess.run(
            [PYTHON, "-m", "watchdog", "silence", "add", "--config", str(config), *silence],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout.strip()
        sim.inject(Fault(status=503, count=1))
        runtime.cycle()
        _deliver(runtime)
        assert _alerts(oncall, API_DEGRADED) == []
        (active,) = runtime.store.alert_log.active_alerts()
        assert (active.alert.rule, active.alert.status) == (API_DEGRADED, "firing")
    finally:
        runtime.close()


# -- notifier-failing -----------------------------------------------------------------------


def test_a_failing_notifier_is_told_through_the_other_and_resolves_when_it_delivers(
    tmp_path: Path, sim: Simulator, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    _, backup = receivers
    down = [True]
    with HttpReceiver(lambda request: Reply(500 if down[0] else 200)) as oncall:
        _notifier_fails_then_recovers(tmp_path, sim, oncall, backup, down)


def _notifier_fails_then_recovers(
    tmp_path: Path, sim: Simulator, oncall: HttpReceiver, backup: HttpReceiver, down: list[bool]
) -> None:
    _people(sim, PEOPLE[:1], video=2.0)  # poor-video fires: a notification for both
    # a route that names the failing notifier: it never hears about itself all the same
    sections = {
        "alerting": {"routes": [{"match": [f"alertname={NOTIFIER_FAILING}"], "notify": ["oncall"]}]}
    }
    config = _config(tmp_path, sim, PEOPLE[:1], {"oncall": oncall, "backup": backup}, **sections)
    clock = Clock()
    runtime = _with_clock(build(load_config(str(config))), clock)
    try:
        runtime.cycle()
        _deliver(runtime)
        assert oncall.requests  # tried, answered 500
        (run,) = runtime.store.outbox.failing().values()
        assert run.notifier == "oncall"
        assert "500" in run.last_error

        clock.now = run.since + timedelta(minutes=4, seconds=59)
        runtime.cycle()
        _deliver(runtime)
        assert _alerts(backup, NOTIFIER_FAILING) == []  # not 5 minutes yet

        clock.now = run.since + timedelta(minutes=5)
        runtime.cycle()
        _deliver(runtime)
        ((status, alert),) = _alerts(backup, NOTIFIER_FAILING)
        assert status == "firing"
        assert alert["labels"] == {
            "alertname": NOTIFIER_FAILING,
            "severity": "warning",
            "notifier": "oncall",
            "scope": "daemon",
            "metric": "failing_seconds",
        }
        assert "500" in alert["annotations"]["last_error"]
        assert alert["annotations"]["summary"].startswith("Notifier oncall has delivered nothing")
        assert _alerts(oncall, NOTIFIER_FAILING) == []  # never to the failing notifier

        down[0] = False  # it recovers: its waiting notification goes out
        runtime.store.outbox.retry_now()
        _deliver(runtime)
        assert runtime.store.outbox.failing() == {}
        runtime.cycle()
        _deliver(runtime)
        statuses = [s for s, _ in _alerts(backup, NOTIFIER_FAILING)]
        assert statuses == ["firing", "resolved"]
        resolved = _alerts(backup, NOTIFIER_FAILING)[-1][1]
        assert resolved["annotations"]["resolved_reason"] == "a delivery to oncall succeeded"
        assert _alerts(oncall, NOTIFIER_FAILING) == []
    finally:
        runtime.close()


def test_the_only_notifier_failing_is_one_error_and_shows_in_status(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    with HttpReceiver(lambda request: Reply(500)) as oncall:
        _only_notifier_fails(tmp_path, sim, oncall, caplog)


def _only_notifier_fails(
    tmp_path: Path, sim: Simulator, oncall: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    _people(sim, PEOPLE[:1], video=2.0)
    sections = {"self_monitoring": {"notifier_failing": {"after": "0s"}}}
    config = _config(tmp_path, sim, PEOPLE[:1], {"oncall": oncall}, **sections)
    runtime = build(load_config(str(config)))
    try:
        with caplog.at_level(logging.ERROR, logger="watchdog.runtime.selfmonitor"):
            runtime.cycle()
            _deliver(runtime)
            for _ in range(3):  # fails on: the alert fires once, the ERROR is said once
                runtime.store.outbox.retry_now()
                _deliver(runtime)
                runtime.cycle()
        errors = [r for r in caplog.records if r.name == "watchdog.runtime.selfmonitor"]
        assert len(errors) == 1
        assert "no other notifier is configured" in errors[0].getMessage()
        assert _alerts(oncall, NOTIFIER_FAILING) == []
        firing = [a.alert for a in runtime.store.alert_log.active_alerts()]
        assert [a.rule for a in firing if a.scope == "daemon"] == [NOTIFIER_FAILING]
        shown = subprocess.run(
            [PYTHON, "-m", "watchdog", "status", "--config", str(config)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        line = next(x for x in shown.splitlines() if NOTIFIER_FAILING in x)
        assert "Notifier oncall has delivered nothing" in line
        assert "(no other notifier to tell)" in line
    finally:
        runtime.close()


def test_routing_never_sends_a_notifier_failing_alert_to_its_notifier() -> None:
    policies = {name: Policy() for name in ("slack", "mail", "hook")}
    config = AlertingConfig(
        policies,
        routes=(Route(parse_matchers(["severity=warning"]), ("slack",)),),
        default_notify=("slack",),
    )
    labels = {"alertname": NOTIFIER_FAILING, "severity": "warning", "notifier": "slack"}
    assert config.targets(labels, ["mail"], never="slack") == ["mail"]
    # routing leaves nobody but the failing one: every other notifier hears it
    assert config.targets(labels, [], never="slack") == ["mail", "hook"]
    assert config.targets(labels, [], never=None) == ["slack"]


# -- the real daemon, defaults on -------------------------------------------------------------


def test_the_running_daemon_raises_and_resolves_its_own_alert_by_default(
    tmp_path: Path, sim: Simulator
) -> None:
    env = env_with_path(install_plugin(tmp_path / "site"))
    _people(sim, PEOPLE[:2])
    with Sink() as sink:
        path = write_config(tmp_path, sim.url, PEOPLE[:2], POOR, videosdk={"retries": 0})
        data = yaml.safe_load(path.read_text())
        data["notifiers"] = {"hook": {"type": "sink", "url": sink.url}}
        path.write_text(yaml.safe_dump(data))
        sim.inject(Fault(status=503, count=2 * 3))  # three cycles of two polls, then healthy
        daemon = Daemon(["run", "--config", str(path)], env=env)
        try:
            sink.wait_for(2, timeout=30)
            assert daemon.stop() == 0
        finally:
            daemon.kill()
    alerts = [a for body in sink.received for a in body["alerts"]]
    assert [(a["rule"], a["status"]) for a in alerts] == [
        (API_DEGRADED, "firing"),
        (API_DEGRADED, "resolved"),
    ]
    assert "HTTP 503" in alerts[0]["context"]["reasons"]
    assert any("raised videosdk-api-degraded" in line for line in daemon.err)


def test_check_refuses_unknown_notifiers_and_rules_named_like_the_daemons_alerts(
    tmp_path: Path, sim: Simulator
) -> None:
    path = write_config(
        tmp_path,
        sim.url,
        PEOPLE[:1],
        POOR.replace("poor-video", NOTIFIER_FAILING),
        self_monitoring={"api_degraded": {"notify": ["pager"]}},
    )
    done = subprocess.run(
        [PYTHON, "-m", "watchdog", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    unknown = "self_monitoring.api_degraded.notify: unknown notifier 'pager'"
    assert re.search(rf"^{re.escape(str(path))}:\d+: {re.escape(unknown)}", done.stderr, re.M)
    assert f"'{NOTIFIER_FAILING}' is the name of the watchdog's own alert" in done.stderr


# -- several instances ----------------------------------------------------------------------


def test_three_instances_raise_one_alert_for_one_outage(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    """Each instance reports its cycle; the leader judges the sum: one alert, one message
    per transition, and one notifier-failing alert about the notifier that is down."""
    people = [("s-1", f"p{i}") for i in range(1, 7)]
    _people(sim, people)
    with HttpReceiver() as hook, HttpReceiver(lambda request: Reply(500)) as down:
        sections = {
            "state": {"url": postgres_url},
            "self_monitoring": {"notifier_failing": {"after": "0s"}},
        }
        config = load_config(
            str(_config(tmp_path, sim, people, {"hook": hook, "down": down}, **sections))
        )
        instances = [build(config, join=True) for _ in range(3)]
        try:
            first, *others = instances

            def round_() -> None:  # each instance one cycle; each participant polled once
                for runtime in instances:
                    runtime.cycle()
                for runtime in instances:
                    _deliver(runtime)

            # five rounds of an outage: long enough for every instance to see three
            # degraded cycles of its own; only the leader's pooled judgement counts
            sim.inject(Fault(status=503, count=5 * len(people)))
            for _ in range(5):
                round_()
            assert first.cluster is not None
            assert first.cluster.leader
            assert not any(r.cluster is not None and r.cluster.leader for r in others)
            assert [s for s, _ in _alerts(hook, API_DEGRADED)] == ["firing"]
            for _ in range(3):  # the API is back; the instances' latest cycles show it
                round_()
            told = [(a["labels"]["alertname"], s) for s, a in _hook_alerts(hook)]
            assert sorted(told) == sorted(
                [(API_DEGRADED, "firing"), (API_DEGRADED, "resolved"), (NOTIFIER_FAILING, "firing")]
            )
            (failing,) = [a for s, a in _alerts(hook, NOTIFIER_FAILING)]
            assert failing["labels"]["notifier"] == "down"
            assert _alerts(down, NOTIFIER_FAILING) == []
        finally:
            for runtime in instances:
                runtime.close()


def _hook_alerts(receiver: HttpReceiver) -> list[tuple[str, dict[str, Any]]]:
    return _alerts(receiver, API_DEGRADED) + _alerts(receiver, NOTIFIER_FAILING)


def test_an_api_error_quoting_a_secret_reaches_no_notifier_nor_the_state_database(
    tmp_path: Path, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    """A hostile or careless API echoes the secret key in its error: the alert says why
    the polls failed, masked."""
    oncall, _ = receivers
    echo = {"message": f"signature does not match key {SECRET}"}
    with HttpReceiver(lambda request: Reply(503, echo)) as api:
        path = write_config(tmp_path, api.url, PEOPLE[:1], POOR, videosdk={"retries": 0})
        data = yaml.safe_load(path.read_text())
        data["notifiers"] = {"oncall": {"type": "webhook", "url": f"{oncall.url}/hook"}}
        data["self_monitoring"] = {"api_degraded": {"cycles": 1}}
        path.write_text(yaml.safe_dump(data))
        runtime = build(load_config(str(path)))
        try:
            runtime.cycle()
            _deliver(runtime)
        finally:
            runtime.close()
    ((_, alert),) = _alerts(oncall, API_DEGRADED)
    assert f"signature does not match key {MASK}" in alert["annotations"]["reasons"]
    assert SECRET not in oncall.requests[0].text()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert SECRET.encode() not in stored


def test_whose_failure_a_poll_is() -> None:
    """The API's trouble counts against it, a participant's own answer does not, and our own
    trouble counts neither way; several instances' cycles pool into one."""
    failures = PollFailures()
    failures.succeeded()
    failures.failed("stats not found (404)", "answer")
    failures.failed("HTTP 400: bad id", cause_of(VideoSDKError("bad id", 400)))
    for exc in (
        ServerError("HTTP 503", 503),
        TransportError("ConnectionError talking to VideoSDK"),
        AuthenticationError("HTTP 401", 401),
    ):
        failures.failed(str(exc), cause_of(exc), exc)
    failures.failed("state database fault", "local")
    tally = failures.end_cycle(polled=7)
    assert (tally.answered, tally.failed, tally.judged) == (3, 3, 6)
    assert tally.ratio == 0.5
    assert failures.end_cycle(polled=0).ratio is None  # a fresh tally: no verdict
    both = pooled([tally, PollTally(1, 3, {"HTTP 503": 3})])
    assert (both.answered, both.failed, both.reasons["HTTP 503"]) == (4, 6, 4)
    assert both.common(shown=1) == "HTTP 503 (4), 2 other reasons"


def test_a_reload_that_removes_the_failing_notifier_resolves_its_alert(
    tmp_path: Path, sim: Simulator, receivers: tuple[HttpReceiver, HttpReceiver]
) -> None:
    _, backup = receivers
    _people(sim, PEOPLE[:1], video=2.0)
    with HttpReceiver(lambda request: Reply(500)) as oncall:
        sections = {"self_monitoring": {"notifier_failing": {"after": "0s"}}}
        path = _config(tmp_path, sim, PEOPLE[:1], {"oncall": oncall, "backup": backup}, **sections)
        runtime = build(load_config(str(path)))
        try:
            runtime.cycle()
            _deliver(runtime)  # oncall fails
            runtime.cycle()
            _deliver(runtime)
            assert [s for s, _ in _alerts(backup, NOTIFIER_FAILING)] == ["firing"]

            data = yaml.safe_load(path.read_text())
            del data["notifiers"]["oncall"]
            path.write_text(yaml.safe_dump(data))
            prepared = prepare(load_config(str(path)), runtime.host)
            runtime.reconfigure(prepared, make_notifiers(prepared, runtime.host, runtime.store))
            runtime.cycle()
            _deliver(runtime)
            statuses = [s for s, _ in _alerts(backup, NOTIFIER_FAILING)]
            assert statuses == ["firing", "resolved"]
            resolved = _alerts(backup, NOTIFIER_FAILING)[-1][1]["annotations"]
            assert resolved["resolved_reason"] == "notifier oncall is no longer configured"
        finally:
            runtime.close()
