"""Delivery through the durable outbox to real local sinks: a notifier that raises, one that
hangs, one that rate-limits, a sink that is down and comes back, permanent errors, overdue
notifications. Nothing is lost; a broken notifier never delays another."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy
from watchdog.cli import outbox
from watchdog.config.settings import load_config
from watchdog.delivery.dispatcher import Dispatcher
from watchdog.delivery.host import PluginHost, load_plugins
from watchdog.redaction import Redactor
from watchdog.runtime.build import Runtime, build
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store

from .conftest import POOR_VIDEO, write_config
from .helpers import record_alerts, video_series
from .sinks import Sink, plugin_module
from .test_alertmanager import alert

TIMEOUT = 2.0  # the send timeout: long enough that a loaded machine still delivers "ok" first


@pytest.fixture
def host() -> PluginHost:
    """The installed plugins plus the test plugin, added as an outside plugin object."""
    plugins = load_plugins()
    info = plugins.add(plugin_module(), "testsink")
    assert info.error is None
    assert info.notifier_types == ["sink", "raiser"]
    return plugins


def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.02)


@pytest.fixture
def sinks() -> Iterator[dict[str, Sink]]:
    with Sink() as ok, Sink() as hung, Sink() as limited:
        yield {"ok": ok, "hung": hung, "limited": limited}


def test_a_raising_hanging_or_rate_limited_notifier_never_delays_another(
    tmp_path: Path,
    host: PluginHost,
    sinks: dict[str, Sink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sinks["hung"].script.extend(["hang"] * 10)
    sinks["limited"].script.extend([("retry-after", 0.3), ("retry-after", 0.3)])
    entries = {name: {"type": "sink", "url": sink.url} for name, sink in sinks.items()}
    entries["broken"] = {"type": "raiser", "token": "xoxb-never-logged-4711"}
    store = Store(str(tmp_path / "state.db"))
    notifiers = host.build(entries, store.notifier_memory.for_notifier)
    dispatcher = Dispatcher(
        store.outbox,
        notifiers,
        timedelta(seconds=TIMEOUT),
        timedelta(seconds=0.1),
        concurrency=2,
        redactor=Redactor.of(*host.validate(entries).values()),
    )
    manager = AlertManager(
        store.alert_log,
        store.silences,
        AlertingConfig({name: Policy() for name in entries}),
        dispatcher.wake,
    )
    record_alerts(store, [(alert("alice"), ())])
    started = time.monotonic()
    assert manager.flush() == 4
    dispatcher.start()
    try:
        sinks["ok"].wait_for(1)
        assert time.monotonic() - started < TIMEOUT  # before the hung one even timed out
        sinks["limited"].wait_for(1)
        assert time.monotonic() - started >= 0.6  # both Retry-After delays honoured
        assert sinks["limited"].attempts == 3

        # the hung notifier times out again and again, but holds only its 2 threads
        eventually(lambda: "all 2 delivery threads are stuck" in caplog.text, what="saturation")
        time.sleep(0.5)
        assert sinks["hung"].hanging == 2
        by_notifier = {e.notifier: e for e in store.outbox.entries()}
        assert set(by_notifier) == {"hung", "broken"}
        assert by_notifier["hung"].last_error == f"timed out after {TIMEOUT:g}s"
        assert by_notifier["broken"].last_error == "RuntimeError: plugin bug with token **********"
        assert by_notifier["broken"].attempts >= 2

        sinks["hung"].release()  # the stuck sends finally return: accepted, late
        eventually(lambda: [e.notifier for e in store.outbox.entries()] == ["broken"], what="hung")
        assert "accepted a notification after its attempt had timed out" in caplog.text
        assert len(sinks["ok"].received) == 1
        assert len(sinks["hung"].received) <= 2  # at most the one duplicate per hang
        assert "xoxb-never-logged-4711" not in caplog.text
    finally:
        dispatcher.stop(grace=0.5)
        store.close()


def _runtime(
    tmp_path: Path,
    sim: Simulator,
    host: PluginHost,
    monkeypatch: pytest.MonkeyPatch,
    notifiers: dict[str, object],
    **overrides: object,
) -> Runtime:
    monkeypatch.setattr("watchdog.runtime.build.load_plugins", lambda: host)
    path = write_config(tmp_path, sim.url, [("s-1", "p1"), ("s-1", "p2")], POOR_VIDEO, **overrides)
    data = yaml.safe_load(path.read_text())
    data["notifiers"] = notifiers
    path.write_text(yaml.safe_dump(data))
    return build(load_config(str(path)))


def test_a_sink_down_for_a_minute_gets_everything_in_order_when_it_is_back(
    tmp_path: Path, sim: Simulator, host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # p1 fires, resolves and fires again; p2 (another meeting) fires: five notifications
    bad, good = 2.0, 4.2
    p1 = [(0, good), (10, bad), (20, bad), (30, bad), (40, good), (50, bad), (60, bad)]
    p1 += [(70, bad), (80, good), (90, good)]
    sim.add_participant("s-1", "p1", samples=video_series(p1), meeting_id="m-1")
    p2 = [(t, good if t == 0 else bad) for t in range(0, 100, 10)]
    sim.add_participant("s-1", "p2", samples=video_series(p2), meeting_id="m-2")
    with Sink() as sink:
        runtime = _runtime(
            tmp_path,
            sim,
            host,
            monkeypatch,
            {"hook": {"type": "sink", "url": sink.url}},
            delivery={"timeout": "2s", "max_backoff": "100ms"},
        )
        sink.down = True
        runtime.dispatcher.start()
        try:
            for _ in range(10):  # a minute and a half of samples, polled every 10 s
                sim.advance(10)
                runtime.cycle()
                if runtime.store.outbox.depth():
                    sink.wait_for(sink.attempts + 1, what="attempts")  # still failing
            assert sink.received == []
            assert runtime.store.outbox.depth() == 5
            sink.down = False
            sink.wait_for(5)
            eventually(lambda: runtime.store.outbox.depth() == 0)
        finally:
            runtime.dispatcher.stop(grace=1)
            runtime.close()
    assert sink.attempts > 10
    p1_told = [
        (n["status"], n["alerts"][0]["starts_at"])
        for n in sink.received
        if n["alerts"][0]["participant_id"] == "p1"
    ]
    assert [status for status, _ in p1_told] == ["firing", "resolved", "firing", "resolved"]
    assert p1_told[0][1] == p1_told[1][1] < p1_told[2][1] == p1_told[3][1]
    assert len({n["id"] for n in sink.received}) == 5  # and nothing twice


def test_permanent_errors_and_overdue_notifications_are_kept_and_reported(
    tmp_path: Path,
    host: PluginHost,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with Sink() as rejecting, Sink() as down:
        rejecting.script.append(410)
        down.down = True
        entries = {
            "strict": {"type": "sink", "url": rejecting.url},
            "flaky": {"type": "sink", "url": down.url},
        }
        store = Store(str(tmp_path / "state.db"))
        dispatcher = Dispatcher(
            store.outbox,
            host.build(entries, store.notifier_memory.for_notifier),
            timedelta(seconds=2),
            timedelta(seconds=1.5),  # a permanent error waits this long: time to look at it
            warn_after=timedelta(seconds=0.3),
        )
        manager = AlertManager(
            store.alert_log, store.silences, AlertingConfig({n: Policy() for n in entries})
        )
        record_alerts(store, [(alert("alice"), ())])
        manager.flush()
        dispatcher.start()
        try:
            rejecting.wait_for(1, what="attempts")
            eventually(lambda: "still undelivered" in caplog.text, what="overdue error")
            rows = {r["notifier"]: r for r in outbox.describe(store.outbox, timedelta(seconds=0.3))}
            assert rows["strict"]["state"] == "rejected"
            assert rows["strict"]["lastError"] == "sink says this can never work"
            assert rows["flaky"]["state"] == "overdue"
            assert rows["flaky"]["lastError"] == "sink answered 503"
            text = outbox.render(list(rows.values()))
            assert "last error: sink answered 503" in text
            assert "poor-video (alice)" in text

            rejecting.wait_for(1)  # retried slowly (max_backoff), and it works now
            assert rejecting.attempts == 2
            down.down = False
            down.wait_for(1)
            eventually(lambda: store.outbox.depth() == 0)
        finally:
            dispatcher.stop(grace=0.5)
            store.close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("rejected notification" in r.getMessage() for r in errors) == 1
    assert sum("still undelivered" in r.getMessage() for r in errors) == 2  # once each
