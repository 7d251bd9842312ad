"""The ``alertmanager`` notifier against the real Alertmanager (Debian's
prometheus-alertmanager, which .ci/run installs): the alert shows in ``amtool alert
query`` with our labels, Alertmanager groups it by its own route (its webhook to a local
sink says so), it resolves there when it resolves here, it is re-sent while it fires and
resolves by itself when we stop, and an HA pair gets it even with one of them down.
Failure modes Alertmanager cannot be made to show (400, 429, a huge answer) come from a
local receiver standing in for it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
import watchdog_alertmanager
import yaml
from watchdog_alertmanager import AlertmanagerConfig, AlertmanagerNotifier

from watchdog.alerts import Alert
from watchdog.cli.main import main
from watchdog.config.problems import ConfigError
from watchdog.notifiers import DeliveryError, MemoryState, Redactor
from watchdog.testing import (
    HttpReceiver,
    NotifierContract,
    PluginTestHost,
    Received,
    Reply,
    free_port,
    make_alert,
    make_notification,
    resolved,
)

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
MISSING = "Alertmanager is missing: apt-get install prometheus-alertmanager"


@dataclass
class Alertmanager:
    """A real Alertmanager on 127.0.0.1: no gossip, its own storage, a webhook to ``sink``."""

    directory: Path
    sink: str
    port: int = 0
    process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Alertmanager:
        assert ALERTMANAGER, MISSING
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "alertmanager.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "sink",
                        "group_by": ["meeting_id"],
                        "group_wait": "0s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {"name": "sink", "webhook_configs": [{"url": self.sink}]},
                    ],
                }
            )
        )
        log = self.directory / "alertmanager.log"
        self.process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            text=True,
        )
        deadline = time.monotonic() + 20
        pattern = re.compile(r"Listening on.*address=127\.0\.0\.1:(\d+)")
        while not (found := pattern.search(log.read_text())):
            assert self.process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        self.port = int(found.group(1))
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def query(self, *matchers: str) -> list[dict[str, Any]]:
        """``amtool alert query`` (active alerts only, as amtool shows by default)."""
        assert AMTOOL, MISSING
        done = subprocess.run(
            [AMTOOL, "alert", "query", f"--alertmanager.url={self.url}", "-o", "json", *matchers],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
        return found

    def alerts(self, *filters: str) -> list[dict[str, Any]]:
        """Every alert it holds, resolved ones included (its API v2)."""
        answer = requests.get(
            f"{self.url}/api/v2/alerts", params={"filter": list(filters)}, timeout=10
        )
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def received(self) -> float:
        """``alertmanager_alerts_received_total``: alerts it was sent, firing or resolved."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        return sum(
            float(m) for m in re.findall(r"^alertmanager_alerts_received_total\{.*\} (\S+)$",
                                         text, re.M)
        )  # fmt: skip


def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """``check()`` once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)
    return value


@pytest.fixture(scope="module")
def sink() -> Iterator[HttpReceiver]:
    """Where the Alertmanagers' webhooks land: path ``/am-1`` or ``/am-2`` says which."""
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, sink: HttpReceiver) -> Iterator[
    tuple[Alertmanager, Alertmanager]
]:  # fmt: skip
    root = tmp_path_factory.mktemp("alertmanagers")
    first = Alertmanager(root / "am-1", f"{sink.url}/am-1").start()
    second = Alertmanager(root / "am-2", f"{sink.url}/am-2").start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
def host() -> PluginTestHost:
    host = PluginTestHost()
    host.add(watchdog_alertmanager)
    return host


def meeting() -> str:
    """A meeting ID of this test alone: the Alertmanagers are shared by the module."""
    return f"m-{uuid.uuid4().hex[:10]}"


def webhooks(sink: HttpReceiver, path: str, meeting_id: str) -> list[dict[str, Any]]:
    """The Alertmanager webhook bodies about one meeting that reached ``path``."""
    bodies = [r.json() for r in list(sink.requests) if r.path == path]
    return [b for b in bodies if b["groupLabels"].get("meeting_id") == meeting_id]


def alerts_of(meeting_id: str, *participants: str) -> list[Alert]:
    return [
        make_alert(
            participant_id=p,
            participant_name=p.title(),
            meeting_id=meeting_id,
            labels={"alertname": "poor-video", "severity": "warning", "team": "media"},
        )
        for p in participants
    ]


def test_alert_shows_in_amtool_grouped_by_alertmanager_and_resolves_there(
    host: PluginTestHost, pair: tuple[Alertmanager, Alertmanager], sink: HttpReceiver
) -> None:
    am, _ = pair
    m = meeting()
    notifier = host.build({"type": "alertmanager", "urls": [am.url]}, "am")
    alice, bob = alerts_of(m, "alice", "bob")
    firing = make_notification(alice, bob)
    notifier.send(firing)

    shown = until(lambda: am.query(f"meeting_id={m}"), what="amtool shows the alerts")
    assert len(shown) == 2
    one = next(a for a in shown if a["labels"]["participant_id"] == "alice")
    assert one["labels"] == {
        "alertname": "poor-video",
        "severity": "warning",
        "meeting_id": m,
        "session_id": "sess-1",
        "participant_id": "alice",
        "scope": "participant",
        "metric": "qualityScore.video",
        "team": "media",
    }
    assert one["annotations"]["summary"] == alice.title
    assert one["annotations"]["value"] == "2.41"
    assert one["annotations"]["threshold"] == "3"
    assert one["annotations"]["description"] == alice.description
    assert one["generatorURL"].endswith(":9464/healthz")
    assert one["startsAt"].startswith(alice.fired_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert one["status"]["state"] == "active"

    # Alertmanager's own route (group_by: [meeting_id]) puts both in one group. Its first
    # notification may hold alice alone: group_wait is 0s, so the group flushes as soon as
    # her alert is in, racing bob's from the same push; the next one (group_interval, 1s,
    # later) holds the group as it is
    told = until(
        lambda: [b for b in webhooks(sink, "/am-1", m) if len(b["alerts"]) == 2],
        what="Alertmanager's webhook with both alerts",
    )[0]
    assert len({b["groupKey"] for b in webhooks(sink, "/am-1", m)}) == 1
    assert told["groupLabels"] == {"meeting_id": m}
    assert told["status"] == "firing"
    assert sorted(a["labels"]["participant_id"] for a in told["alerts"]) == ["alice", "bob"]

    notifier.send(make_notification(resolved(alice), bob, thread=firing.thread))
    until(lambda: len(am.query(f"meeting_id={m}")) == 1, what="alice resolved in Alertmanager")
    notifier.send(make_notification(resolved(alice), resolved(bob), thread=firing.thread))
    until(lambda: not am.query(f"meeting_id={m}"), what="every alert resolved")
    last = until(
        lambda: [b for b in webhooks(sink, "/am-1", m) if b["status"] == "resolved"],
        what="Alertmanager's resolved notification",
    )
    assert {a["status"] for a in last[-1]["alerts"]} == {"resolved"}
    assert {a["endsAt"] for a in last[-1]["alerts"]} == {"2026-11-24T10:06:00Z"}  # ours


def test_re_sent_while_firing_kept_across_a_restart_and_resolves_when_we_stop(
    host: PluginTestHost, pair: tuple[Alertmanager, Alertmanager], sink: HttpReceiver
) -> None:
    """Every ``resend_interval`` (1s here) with ``endsAt`` four intervals ahead: while we
    run it stays open; a new notifier on the same state (a restart) goes on re-sending
    what the old one was told; stopped, the alert resolves by itself at its ``endsAt``."""
    am, _ = pair
    m = meeting()
    entry = {"type": "alertmanager", "urls": [am.url], "resend_interval": "1s"}
    first = host.build(entry, "pusher")
    assert isinstance(first, AlertmanagerNotifier)
    (alert,) = alerts_of(m, "carol")
    first.send(make_notification(alert))
    (sent,) = until(lambda: am.alerts(f"meeting_id={m}"))
    before = am.received()
    first.start()
    try:
        until(lambda: am.received() >= before + 2, what="two re-sends")
        (again,) = am.alerts(f"meeting_id={m}")
        assert again["endsAt"] > sent["endsAt"]
        assert again["status"]["state"] == "active"
    finally:
        first.close()

    restarted = host.build(entry, "pusher")  # the same state, as the database keeps it
    assert isinstance(restarted, AlertmanagerNotifier)
    before = am.received()
    restarted.start()
    try:
        until(lambda: am.received() >= before + 1, what="the restarted notifier re-sends")
    finally:
        restarted.close()
    stopped_at = datetime.now(UTC)
    until(lambda: not am.query(f"meeting_id={m}"), timeout=10, what="resolved by endsAt")
    told = until(
        lambda: [b for b in webhooks(sink, "/am-1", m) if b["status"] == "resolved"],
        what="Alertmanager's resolved notification",
    )
    ends = datetime.fromisoformat(told[-1]["alerts"][0]["endsAt"].replace("Z", "+00:00"))
    assert ends <= stopped_at + timedelta(seconds=4.5)


def test_an_ha_pair_both_get_it_and_one_down_loses_nothing(
    host: PluginTestHost,
    pair: tuple[Alertmanager, Alertmanager],
    sink: HttpReceiver,
    tmp_path: Path,
) -> None:
    first, second = pair
    m = meeting()
    notifier = host.build({"type": "alertmanager", "urls": [first.url, second.url]}, "ha")
    (alert,) = alerts_of(m, "dana")
    notifier.send(make_notification(alert))
    for am in pair:
        (shown,) = until(partial(am.query, f"meeting_id={m}"), what=am.url)
        assert shown["labels"]["participant_id"] == "dana"
    for path in ("/am-1", "/am-2"):  # each notifies on its own: no gossip between them
        until(partial(webhooks, sink, path, m), what=f"webhook {path}")

    third = Alertmanager(tmp_path / "am-3", f"{sink.url}/am-3").start()
    third.stop()  # down, at a URL it will come back to
    m2 = meeting()
    entry = {"type": "alertmanager", "urls": [first.url, third.url], "resend_interval": "1s"}
    half = host.build(entry, "half")
    assert isinstance(half, AlertmanagerNotifier)
    (other,) = alerts_of(m2, "erin")
    half.send(make_notification(other))  # accepted: one of the pair took it
    assert first.query(f"meeting_id={m2}")
    third.start()
    half.start()
    try:
        (caught_up,) = until(lambda: third.query(f"meeting_id={m2}"), what="caught up")
        assert caught_up["labels"]["participant_id"] == "erin"
    finally:
        half.close()
        third.stop()


def test_a_resolve_an_alertmanager_missed_is_re_sent_to_it(
    host: PluginTestHost, pair: tuple[Alertmanager, Alertmanager], sink: HttpReceiver
) -> None:
    """Resolved alerts are re-sent for ``resolved_retention``, as Prometheus keeps them
    15 minutes: an Alertmanager that answered 503 to the resolve still closes the alert."""
    am, _ = pair
    m = meeting()
    failing = [False]

    def proxy(request: Received) -> Reply:
        """In front of the real Alertmanager: 503 while ``failing``, else passed on."""
        if failing[0]:
            return Reply(503, "overloaded")
        answer = requests.post(am.url + request.path, data=request.body, timeout=10,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        return Reply(answer.status_code, answer.content)

    with HttpReceiver(proxy) as front:
        notifier = host.build({"type": "alertmanager", "urls": [front.url]}, "flaky")
        assert isinstance(notifier, AlertmanagerNotifier)
        (alert,) = alerts_of(m, "femi")
        firing = make_notification(alert)
        notifier.send(firing)
        until(lambda: am.query(f"meeting_id={m}"))
        failing[0] = True
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification(resolved(alert), thread=firing.thread))
        assert not caught.value.permanent
        assert am.query(f"meeting_id={m}"), "the resolve never reached it"
        failing[0] = False
        assert notifier.resend() == 1  # the resolve, remembered
        until(lambda: not am.query(f"meeting_id={m}"), what="resolved by the re-send")


# -- failure modes, from a receiver standing in for Alertmanager --------------------------


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as stand_in:
        yield stand_in


def test_an_invalid_alert_is_a_permanent_failure_that_says_so(
    host: PluginTestHost, receiver: HttpReceiver
) -> None:
    notifier = host.build({"type": "alertmanager", "urls": [receiver.url]})
    receiver.reply(Reply(400, '"invalid label set: invalid name \\"1x\\""'))
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert caught.value.permanent
    assert "refused the alerts as invalid" in str(caught.value)
    assert "invalid label set" in str(caught.value)
    assert receiver.requests[0].path == "/api/v2/alerts"


def test_rate_limits_and_5xx_are_retried_and_answers_are_bounded(
    host: PluginTestHost, receiver: HttpReceiver
) -> None:
    notifier = host.build({"type": "alertmanager", "urls": [receiver.url]})
    receiver.reply(Reply(429, "slow down", {"Retry-After": "7"}), Reply(502, "x" * 1_000_000))
    with pytest.raises(DeliveryError) as limited:
        notifier.send(make_notification())
    assert (limited.value.permanent, limited.value.retry_after) == (False, 7.0)
    with pytest.raises(DeliveryError) as failed:
        notifier.send(make_notification())
    assert not failed.value.permanent
    assert len(str(failed.value)) < 500


def test_several_urls_fail_together_permanently_only_if_none_could_recover(
    host: PluginTestHost, receiver: HttpReceiver, unreachable_url: str
) -> None:
    notifier = host.build({"type": "alertmanager", "urls": [receiver.url, unreachable_url]})
    receiver.reply(Reply(401, "unauthorized"))
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert not caught.value.permanent  # the unreachable one may come back
    assert "check basic_auth or bearer_token" in str(caught.value)
    assert "cannot reach Alertmanager at 127.0.0.1:" in str(caught.value)
    notifier.send(make_notification())  # the receiver answers 200 now: delivered


def test_auth_headers_reach_alertmanager(host: PluginTestHost, receiver: HttpReceiver) -> None:
    bearer = host.build(
        {"type": "alertmanager", "urls": [receiver.url + "/prefix/"], "bearer_token": "tok-1234"},
        "bearer",
    )
    basic = host.build(
        {
            "type": "alertmanager",
            "urls": [receiver.url],
            "basic_auth": {"username": "watchdog", "password": "pass-5678"},
        },
        "basic",
    )
    bearer.send(make_notification())
    basic.send(make_notification())
    first, second = receiver.requests
    assert first.path == "/prefix/api/v2/alerts"
    assert first.headers["authorization"] == "Bearer tok-1234"
    assert second.headers["authorization"] == "Basic d2F0Y2hkb2c6cGFzcy01Njc4"
    assert first.headers["content-type"] == "application/json"
    (body,) = first.json()
    assert set(body) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def test_acknowledgement_notices_and_test_alerts_are_not_remembered(
    host: PluginTestHost, receiver: HttpReceiver
) -> None:
    notifier = host.build({"type": "alertmanager", "urls": [receiver.url]})
    assert isinstance(notifier, AlertmanagerNotifier)
    notifier.send(replace(make_notification(), event="acknowledged", actor="U1"))
    assert receiver.requests == []
    notifier.send(make_notification(test=True))
    assert len(receiver.requests) == 1
    assert notifier.resend() == 0


def test_retention_and_forget_after_on_an_injected_clock(receiver: HttpReceiver) -> None:
    now = [datetime(2026, 11, 24, 10, 5, tzinfo=UTC)]
    config = AlertmanagerConfig(
        urls=[receiver.url],
        resolved_retention=timedelta(minutes=15),
        forget_after=timedelta(hours=1),
        external_labels={"source": "watchdog", "severity": "not-this"},
    )
    notifier = AlertmanagerNotifier(
        config, logging.getLogger("test"), MemoryState(), Redactor(), clock=lambda: now[0]
    )
    gone, stays = make_alert(participant_id="p-1"), make_alert(participant_id="p-2")
    notifier.send(make_notification(gone, stays))
    notifier.send(make_notification(resolved(gone, after=timedelta(minutes=4))))
    assert notifier.resend() == 2
    bodies = {b["labels"]["participant_id"]: b for b in receiver.requests[-1].json()}
    assert bodies["p-1"]["endsAt"] == "2026-11-24T10:05:00.000Z"  # resolved: when it ended
    assert bodies["p-2"]["endsAt"] == "2026-11-24T10:09:00.000Z"  # now + 4 x 1m
    assert bodies["p-2"]["labels"]["source"] == "watchdog"
    assert bodies["p-2"]["labels"]["severity"] == "warning"  # the alert's own label wins
    now[0] += timedelta(minutes=16)
    assert notifier.resend() == 1  # the resolve is past retention
    now[0] += timedelta(minutes=45)
    assert notifier.resend() == 0  # nothing told about p-2 for over an hour


def test_bad_entries_fail_check_with_the_key_and_a_fix(host: PluginTestHost) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "both auths": (
            {"basic_auth": {"username": "u", "password": "p"}, "bearer_token": "t"},
            "set basic_auth or bearer_token, not both",
        ),
        "credentials": ({"urls": ["http://u:secret-pw@am:9093"]}, "use basic_auth"),
        "not http": ({"urls": ["am:9093"]}, "is not an http:// or https:// URL"),
        "interval": ({"resend_interval": "100ms"}, "must be at least 1s"),
        "label": ({"external_labels": {"a-b": "x"}}, "is not a label name"),
        "template": ({"generator_url": "{nope}"}, "bad template"),
        "none": ({"urls": []}, "urls"),
    }
    for name, (extra, expected) in cases.items():
        entry = {"type": "alertmanager", "urls": ["http://am:9093"], **extra}
        with pytest.raises(ConfigError) as caught:
            host.build(entry, name.replace(" ", "-"))
        text = "\n".join(p.message for p in caught.value.problems)
        assert expected in text, (name, text)
        assert "secret-pw" not in text


def test_notify_test_plugins_and_schema(
    tmp_path: Path, pair: tuple[Alertmanager, Alertmanager], capsys: pytest.CaptureFixture[str]
) -> None:
    am, _ = pair
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"notifiers": {"am": {"type": "alertmanager", "urls": [am.url]}}})
    )
    assert main(["notify-test", "am", "--config", str(config)]) == 0
    assert "am: test alert delivered" in capsys.readouterr().out
    (shown,) = until(lambda: am.query("alertname=watchdog-test"), what="the test alert")
    assert shown["labels"]["severity"] == "info"

    assert main(["plugins", "--json"]) == 0
    (mine,) = [p for p in json.loads(capsys.readouterr().out) if p["name"] == "alertmanager"]
    assert (mine["module"], mine["notifier_types"]) == ("watchdog_alertmanager", ["alertmanager"])
    assert (mine["distribution"], mine["error"]) == ("videosdk-watchdog", None)
    assert main(["schema", "config"]) == 0
    schema = capsys.readouterr().out
    assert '"resend_interval"' in schema
    assert '"bearer_token"' in schema


class TestAlertmanagerContract(NotifierContract):
    notifier_type = "alertmanager"
    plugin = watchdog_alertmanager

    @pytest.fixture
    def notifier_config(self, pair: tuple[Alertmanager, Alertmanager]) -> dict[str, Any]:
        return {"urls": [pair[0].url], "bearer_token": "am-bearer-token-123"}

    @pytest.fixture
    def unreachable_config(self) -> dict[str, Any]:
        return {
            "urls": [f"http://127.0.0.1:{free_port()}/am/path"],
            "basic_auth": {"username": "watchdog", "password": "am-password-456"},
        }

    @pytest.fixture
    def delivered(self, pair: tuple[Alertmanager, Alertmanager]) -> Callable[[], int]:
        return lambda: int(pair[0].received())
