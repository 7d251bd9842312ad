"""The daemon as systemd runs it: notify socket, watchdog, reload, health, stop, exit codes.

Each test runs the real ``videosdk-watchdog run`` in a subprocess against the
simulator, with a real unix datagram socket in ``NOTIFY_SOCKET``.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import SecretStr

from watchdog.config.settings import VideoSDKSettings
from watchdog.sim.simulator import Fault, Simulator
from watchdog.state.store import Store
from watchdog.videosdk.tokens import mint_token

from .conftest import API_KEY, POOR_VIDEO, SECRET, write_config
from .helpers import video_series
from .processes import Daemon, NotifySocket
from .sitedirs import env_with_path, fake_distribution

SINK_SECRET = "sink-secret-5e4d3c2b1a-never-log-me"  # grep-able, like conftest.SECRET

FLAKY_PLUGIN = '''
import json
import re
import threading
from pydantic import SecretStr
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import DeliveryError, NotifierConfig, NotifierType


class FlakyConfig(NotifierConfig):
    path: str
    secret: SecretStr
    fail_first: int = 1
    hang: bool = False


class Flaky:
    """Refuses its first ``fail_first`` sends, then appends each notification to ``path``."""

    def __init__(self, context):
        self.config = context.config
        self.logger = context.logger
        self.calls = 0
        self.lock = threading.Lock()  # sends run on several delivery threads at once

    def send(self, notification):
        with self.lock:
            self.calls += 1
            call = self.calls
        self.logger.info("flaky sink: attempt %d", call)
        if self.config.hang:
            import time
            time.sleep(3600)
        if call <= self.config.fail_first:
            raise DeliveryError("sink refused (HTTP 503)")
        alert = notification.alerts[0]
        with open(self.config.path, "a") as out:
            out.write(json.dumps({"status": alert.status, "rule": alert.rule}) + "\\n")


@hookimpl
def register_notifier_types(register):
    register(NotifierType("flaky", FlakyConfig, Flaky))
'''

RULES = (
    POOR_VIDEO
    + """\
  - name: rtt-high
    metric: averageVideoRtt
    op: ">"
    threshold: 10
    severity: info
"""
)


def plugin_env(tmp_path: Path, notify: NotifySocket, **extra: str) -> dict[str, str]:
    root = fake_distribution(
        tmp_path / "site",
        "watchdog-flaky",
        entry_points={"flaky": "watchdog_flaky"},
        modules={"watchdog_flaky": FLAKY_PLUGIN},
    )
    return env_with_path(root, NOTIFY_SOCKET=notify.address, **extra)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def minted_tokens(since: float, until: float) -> set[str]:
    """Every token the daemon can have minted in that time: HS256 is deterministic."""
    ttl = VideoSDKSettings().token_ttl
    return {
        mint_token(API_KEY, SecretStr(SECRET), ttl, now=float(second))
        for second in range(int(since) - 1, int(until) + 2)
    }


def test_full_run_under_systemd(tmp_path: Path, sim: Simulator) -> None:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 2.0), (50, 2.0), (60, 4.2)]
    sim.add_participant("sess-1", "part-1", samples=video_series(scores), name="Alice")
    sink = tmp_path / "sink.jsonl"
    notifiers = {
        "console": {"type": "console", "stream": "stdout", "colour": "never"},
        "sink": {"type": "flaky", "path": str(sink), "secret": SINK_SECRET, "fail_first": 1},
    }
    config = write_config(
        tmp_path,
        sim.url,
        [("sess-1", "part-1")],
        RULES,
        poll={"interval": "200ms"},
        notifiers=notifiers,
        http={"listen": "127.0.0.1:0"},
        health={"stale_after": "2s"},
        delivery={"timeout": "5s", "stop_grace": "1s", "max_backoff": "1s"},
    )
    notify = NotifySocket(abstract=True)
    started = time.time()
    daemon = Daemon(
        ["run", "--config", str(config)], env=plugin_env(tmp_path, notify, WATCHDOG_USEC="400000")
    )
    try:
        ready = notify.wait_for("READY", "1")
        assert notify.messages[ready]["STATUS"].startswith("watching 1 participant,")
        url = daemon.wait_for(r"serving /metrics", stream="err").rsplit(" ", 1)[1]
        assert get(url + "/healthz")[0] == 200

        sim.advance(30)
        assert "poor-video" in daemon.wait_for(r"FIRING \[warning\] poor-video")
        daemon.wait_for(r"FIRING \[info\] rtt-high")
        wait_until(lambda: sink.exists() and sink.read_text().count("firing") == 2)
        daemon.wait_for(r"sink refused \(HTTP 503\)", stream="err")
        notify.wait_for("STATUS", after=ready + 1)
        assert any("2 alerts firing" in m.get("STATUS", "") for m in notify.messages)

        sim.inject(Fault(status=401))
        line = daemon.wait_for(r"refused the token \(401\)", stream="err")
        assert "session_id=sess-1 participant_id=part-1" in line
        assert notify.count("WATCHDOG") > 0

        code, metrics = get(url + "/metrics")
        assert code == 200
        for needle in (
            'watchdog_polls_total{outcome="ok"}',
            "watchdog_poll_seconds_bucket",
            "watchdog_cycle_seconds_count",
            'watchdog_api_requests_total{endpoint="participant_stats",status="401"}',
            "watchdog_samples_evaluated_total",
            'watchdog_alerts{rule="poor-video",state="firing"} 1.0',
            'watchdog_alert_transitions_total{rule="rtt-high",state="firing"} 1.0',
            'watchdog_delivery_attempts_total{notifier="sink",outcome="failed"} 1.0',
            'watchdog_delivery_attempts_total{notifier="sink",outcome="sent"} 2.0',
            "watchdog_outbox_depth",
            "watchdog_outbox_oldest_age_seconds 0.0",
            "watchdog_watched_participants 1.0",
            "watchdog_last_successful_cycle_timestamp_seconds",
        ):
            assert needle in metrics, needle

        # a broken rules file is refused with its line; the old rules keep running
        rules = tmp_path / "rules.yaml"
        good = rules.read_text()
        rules.write_text(good.replace('op: ">"', 'op: "=>"'))
        mark = len(notify.messages)
        daemon.proc.send_signal(signal.SIGHUP)
        rejected = daemon.wait_for(r"reload rejected", stream="err")
        assert f"{rules}:10: rule 'rtt-high': op unknown operator" in rejected
        reloading = notify.wait_for("RELOADING", "1", after=mark)
        assert "MONOTONIC_USEC" in notify.messages[reloading]
        assert (
            "rejected (1 errors), previous config running"
            in notify.messages[notify.wait_for("READY", after=reloading)]["STATUS"]
        )
        assert 'watchdog_alerts{rule="rtt-high",state="firing"} 1.0' in get(url + "/metrics")[1]

        # a good one: rtt-high is removed (its alert is closed), poor-video carries over with
        # a new threshold, and the sink's new config (always failing) takes effect at once
        rules.write_text(POOR_VIDEO.replace("threshold: 3", "threshold: 3.5"))
        config_text = config.read_text().replace("fail_first: 1", "fail_first: 1000")
        config.write_text(config_text)
        mark = len(notify.messages)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(r"reloaded: 1 rules.*1 alert states carried over, 1 firing", stream="err")
        notify.wait_for("READY", "1", after=notify.wait_for("RELOADING", "1", after=mark))
        closed = daemon.wait_for(r"RESOLVED \[info\] rtt-high")
        assert "Alice (part-1) in meeting" in closed  # as readable as any other alert
        daemon.wait_for("the rule was removed from the configuration; last averageVideoRtt = 42")
        sim.advance(30)  # video recovers at 60 s
        daemon.wait_for(r"RESOLVED \[warning\] poor-video")
        assert sum("FIRING" in line for line in daemon.out) == 2  # no re-fire after the reload

        # VideoSDK down: /healthz fails with a reason, but polls still finish (watchdog fed)
        sim.inject(Fault(status=500, count=10_000))
        wait_until(lambda: get(url + "/healthz")[0] == 503)
        reason = get(url + "/healthz")[1]
        assert "last successful poll cycle was" in reason
        assert "polls failed" in reason
        pings = notify.count("WATCHDOG")
        wait_until(lambda: notify.count("WATCHDOG") > pings + 2)

        mark = len(notify.messages)
        assert daemon.stop() == 0
        notify.wait_for("STOPPING", "1", after=mark)
    finally:
        daemon.kill()
        notify.close()
    # the sink refused the resolved notifications: they wait in the outbox for the next start
    left = Store(str(tmp_path / "state.db"))
    try:
        waiting = [(e.notifier, e.notification.status) for e in left.outbox.entries()]
    finally:
        left.close()
    assert ("sink", "resolved") in waiting
    assert any("notifications left in the outbox" in line for line in daemon.err)

    output = daemon.all_output()
    for secret in (SECRET, SINK_SECRET, *minted_tokens(started, time.time())):
        assert secret not in output
        assert secret.rsplit(".", 1)[-1] not in output  # not even a JWT's signature


def test_wedged_poll_loop_stops_feeding_the_watchdog(tmp_path: Path, sim: Simulator) -> None:
    sim.add_participant("sess-1", "part-1", samples=video_series([(0, 4.0)]))
    config = write_config(
        tmp_path,
        sim.url,
        [("sess-1", "part-1")],
        POOR_VIDEO,
        poll={"interval": "200ms"},
        videosdk={"read_timeout": 10, "retries": 0},
        health={"stall_after": "1s"},
    )
    notify = NotifySocket(tmp_path)
    daemon = Daemon(
        ["run", "--config", str(config)],
        env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "400000"},
    )
    try:
        notify.wait_for("READY", "1")
        notify.wait_for("WATCHDOG", "1", after=notify.wait_for("WATCHDOG", "1") + 1)
        sim.inject(Fault(delay=4.0, count=1))  # the next poll hangs for 4 s
        daemon.wait_for("not feeding systemd's watchdog", stream="err", timeout=10)
        silent = len(notify.messages)
        time.sleep(0.8)  # four ping periods: systemd would be counting down now
        assert notify.count("WATCHDOG", after=silent) == 0
        assert daemon.proc.poll() is None
        notify.wait_for("WATCHDOG", "1", after=silent, timeout=10)  # the poll came back
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        notify.close()


def test_a_hung_notifier_does_not_keep_a_stopped_daemon_alive(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 2.0), (30, 2.0)]))
    sim.advance(30)
    notifiers = {"sink": {"type": "flaky", "path": "x", "secret": SINK_SECRET, "hang": True}}
    config = write_config(
        tmp_path,
        sim.url,
        [("s", "p")],
        POOR_VIDEO,
        notifiers=notifiers,
        delivery={"timeout": "1s", "stop_grace": "1s"},
    )
    notify = NotifySocket(tmp_path)
    daemon = Daemon(["run", "--config", str(config)], env=plugin_env(tmp_path, notify))
    try:
        daemon.wait_for(r"notifier sink failed \(attempt 1\): timed out", stream="err")
        began = time.monotonic()
        assert daemon.stop(timeout=15) == 0
        assert time.monotonic() - began < 10
    finally:
        daemon.kill()
        notify.close()
    assert any("threads are stuck: notify-sink" in line for line in daemon.err), daemon.err
    assert any("1 notifications left in the outbox" in line for line in daemon.err)


def test_unwritable_state_database_exits_1(tmp_path: Path, sim: Simulator) -> None:
    (tmp_path / "not-a-directory").write_text("")
    config = write_config(
        tmp_path, sim.url, [("s", "p")], POOR_VIDEO, state={"url": "not-a-directory/state.db"}
    )
    daemon = Daemon(["run", "--config", str(config)])
    assert daemon.wait(30) == 1
    assert any(
        "cannot open the state database" in line and "exiting with status 1" in line
        for line in daemon.err
    ), daemon.err


def test_no_notify_socket_is_a_no_op(tmp_path: Path, sim: Simulator) -> None:
    """Outside systemd nothing is sent and nothing complains."""
    sim.add_participant("s", "p", samples=video_series([(0, 4.0)]))
    config = write_config(tmp_path, sim.url, [("s", "p")], POOR_VIDEO)
    env = {"NOTIFY_SOCKET": "", "WATCHDOG_USEC": ""}
    daemon = Daemon(["run", "--config", str(config)], env=env)
    try:
        daemon.wait_for("watching 1 participants", stream="err")
        assert daemon.stop(signal.SIGINT) == 0
    finally:
        daemon.kill()
    assert not any("systemd" in line for line in daemon.err)


@pytest.mark.parametrize("fmt", ["json"])
def test_json_logs_are_one_object_a_line_with_ids(tmp_path: Path, sim: Simulator, fmt: str) -> None:
    sim.add_participant("sess-9", "part-9", samples=video_series([(0, 2.0), (30, 2.0)]))
    sim.advance(30)
    config = write_config(
        tmp_path, sim.url, [("sess-9", "part-9")], POOR_VIDEO, log={"format": fmt}
    )
    daemon = Daemon(["run", "--config", str(config)])
    try:
        daemon.wait_for("FIRING")
        daemon.wait_for("delivered firing", stream="err")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    events = [json.loads(line) for line in daemon.err]
    alert = next(e for e in events if e["message"].startswith("alert poor-video firing"))
    assert (alert["session_id"], alert["participant_id"]) == ("sess-9", "part-9")
    assert {"time", "level", "logger", "message"} <= set(alert)


def test_cycles_longer_than_the_interval_are_told_once_a_streak_and_counted(
    tmp_path: Path, sim: Simulator
) -> None:
    """Four slow cycles in a row: one warning as they start, one more as they last, each
    counted in /metrics, and one line when cycles keep up again; no line per cycle."""
    sim.add_participant("sess-1", "part-1", samples=video_series([(0, 4.0)]))
    config = write_config(
        tmp_path,
        sim.url,
        [("sess-1", "part-1")],
        POOR_VIDEO,
        poll={"interval": "1s"},
        http={"listen": "127.0.0.1:0"},
        log={"level": "info"},
    )
    daemon = Daemon(["run", "--config", str(config)])
    try:
        url = daemon.wait_for(r"serving /metrics", stream="err").rsplit(" ", 1)[1]
        # a loaded machine may make a cold daemon's first cycles slow on their own: start
        # from a cycle that kept up, so the streak below is the injected one alone
        before = _after_a_cycle_that_kept_up(url)
        mark = len(daemon.err)
        sim.inject(Fault(delay=1.6, count=4))  # the next four polls, so four cycles, take 1.6 s
        deadline = time.monotonic() + 30
        while not any("poll cycles keep up again" in line for line in daemon.err[mark:]):
            assert time.monotonic() < deadline, daemon.err[mark:]
            time.sleep(0.1)
        back = next(line for line in daemon.err[mark:] if "keep up again" in line)
        assert int(back.rsplit("after ", 1)[1].split()[0]) >= 4
        assert _overruns(url) - before >= 4
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    told = daemon.err[mark:]
    started = [line for line in told if "poll cycle took" in line]
    lasting = [line for line in told if "keep taking longer than poll.interval" in line]
    assert len(started) == 1, told
    assert "longer than poll.interval (1s)" in started[0]
    assert "costs about twice a normal one" in started[0]
    assert len(lasting) == 1, told
    assert "share the participants with another instance" in lasting[0]


def _overruns(url: str) -> float:
    return _metric(url, "watchdog_cycle_overruns_total")


def _metric(url: str, name: str) -> float:
    metrics = get(url + "/metrics")[1]
    found = re.search(rf"^{name} (\S+)$", metrics, re.M)
    assert found, f"{name} is exported"
    return float(found.group(1))


def _after_a_cycle_that_kept_up(url: str, timeout: float = 20.0) -> float:
    """Wait for a poll cycle that ended without overrunning; the overruns counted so far."""
    deadline = time.monotonic() + timeout
    cycles, overruns = _metric(url, "watchdog_cycle_seconds_count"), _overruns(url)
    while True:
        assert time.monotonic() < deadline, "no poll cycle kept up with its interval"
        time.sleep(0.1)
        now_cycles, now_overruns = _metric(url, "watchdog_cycle_seconds_count"), _overruns(url)
        if now_cycles > cycles and now_overruns == overruns:
            time.sleep(0.2)  # the cycle is counted a moment before its overrun would be
            if _overruns(url) == overruns:
                return overruns
        cycles, overruns = now_cycles, now_overruns
