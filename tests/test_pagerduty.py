"""The PagerDuty notifier against a local server that answers like the Events API v2
(tests/pagerdutyapi.py: every event checked against PagerDuty's published rules)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import watchdog_pagerduty
import yaml
from watchdog_pagerduty.events import MAX_SUMMARY, cut

from watchdog.alerts import Alert
from watchdog.cli.main import main
from watchdog.config.problems import ConfigError
from watchdog.notifiers import MASK, DeliveryError
from watchdog.sim.simulator import Simulator
from watchdog.testing import (
    EndlessAnswer,
    HttpReceiver,
    NotifierContract,
    PluginTestHost,
    Reply,
    TLSCertificates,
    grouped_notification,
    make_alert,
    make_notification,
    resolved,
)

from .conftest import POOR_VIDEO, SECRET, write_config
from .helpers import video_series
from .pagerdutyapi import ROUTING_KEY, UNKNOWN_KEY, FakePagerDuty, invalid, problems
from .processes import Daemon


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[FakePagerDuty]:
    """One server for the module: tests tell their events apart by their own alerts."""
    with FakePagerDuty() as server:
        yield server


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_pagerduty, "pagerduty")
    return notifier_host


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "pagerduty", "routing_key": ROUTING_KEY, "url": url, **extra}


def sent_for(server: FakePagerDuty, *alerts: Alert) -> list[dict[str, Any]]:
    keys = {a.fingerprint for a in alerts}
    return [e for e in server.accepted if e["dedup_key"] in keys]


def unique(rule: str, **extra: Any) -> Alert:
    """An alert no other test of the module sends (the server is shared)."""
    return make_alert(rule=rule, participant_id=f"p-{rule}", **extra)


class TestPagerDutyContract(NotifierContract):
    notifier_type = "pagerduty"
    plugin = watchdog_pagerduty

    @pytest.fixture
    def notifier_config(self, pagerduty: FakePagerDuty) -> dict[str, Any]:
        return {"routing_key": ROUTING_KEY, "url": pagerduty.url}

    @pytest.fixture
    def unreachable_config(self, unreachable_url: str) -> dict[str, Any]:
        return {"routing_key": ROUTING_KEY, "url": unreachable_url + "/v2/enqueue"}

    @pytest.fixture
    def delivered(self, pagerduty: FakePagerDuty) -> Callable[[], int]:
        return lambda: len(pagerduty.accepted)


def test_trigger_then_resolve_one_pagerduty_alert(
    host: PluginTestHost, pagerduty: FakePagerDuty
) -> None:
    notifier = host.build(
        config(
            pagerduty.url,
            external_url="https://watchdog.example.com",
            generator_url="https://watchdog.example.com/alerts/{fingerprint}",
        )
    )
    alert = unique("trigger-resolve", severity="critical", sparkline="▇▆▃▁▁", values=[4, 3.5, 2])
    firing = make_notification(alert)
    notifier.send(firing)
    (trigger,) = sent_for(pagerduty, alert)
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == alert.fingerprint
    payload = trigger["payload"]
    assert payload["summary"] == (
        "trigger-resolve: Alice (p-trigger-resolve) in meeting abcd-efgh-ijkl, session sess-1: "
        "qualityScore.video = 2.41 (threshold < 3)"
    )
    assert payload["severity"] == "critical"
    assert payload["source"] == "meeting abcd-efgh-ijkl"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "Alice (p-trigger-resolve)",
        "trigger-resolve",
        "qualityScore.video",
    )
    assert payload["timestamp"] == "2026-11-24T10:01:00.000Z"
    details = payload["custom_details"]
    assert details["metric"] == "qualityScore.video"
    assert (details["value"], details["op"], details["threshold"]) == (2.41, "<", 3.0)
    assert (details["participant_id"], details["participant_name"]) == (
        "p-trigger-resolve",
        "Alice",
    )
    assert (details["meeting_id"], details["session_id"]) == ("abcd-efgh-ijkl", "sess-1")
    assert details["started"] == "2026-11-24T10:00:00.000Z"
    assert (details["sparkline"], details["values"]) == ("▇▆▃▁▁", [4, 3.5, 2])
    assert details["context"]["device"] == "Chrome"
    assert "cause" not in details  # the alert has none (before issue 20, no such attribute)
    assert trigger["client"] == "videosdk-watchdog"
    assert trigger["client_url"] == "https://watchdog.example.com"
    assert trigger["links"] == [
        {
            "href": f"https://watchdog.example.com/alerts/{alert.fingerprint}",
            "text": "trigger-resolve in videosdk-watchdog",
        },
        {"href": "https://watchdog.example.com", "text": "videosdk-watchdog"},
    ]
    assert pagerduty.alerts[alert.fingerprint].status == "triggered"

    notifier.send(make_notification(alert, thread=firing.thread, repeat=True))
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    assert [e["event_action"] for e in sent_for(pagerduty, alert)] == [
        "trigger",
        "trigger",
        "resolve",
    ]
    assert sent_for(pagerduty, alert)[-1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": alert.fingerprint,
    }
    pd_alert = pagerduty.alerts[alert.fingerprint]
    assert pd_alert.status == "resolved"  # a reminder updated the one alert, never a second
    assert pd_alert.events == ["trigger", "trigger", "resolve"]


def test_a_group_is_one_event_per_alert(host: PluginTestHost, pagerduty: FakePagerDuty) -> None:
    notifier = host.build(config(pagerduty.url))
    group = grouped_notification(4, meeting_id="grp-meeting-1")
    before = len(pagerduty.accepted)
    notifier.send(group)
    partly = make_notification(resolved(group.alerts[0]), *group.alerts[1:], thread=group.thread)
    notifier.send(partly)
    sent = pagerduty.accepted[before:]
    assert [(e["event_action"], e["dedup_key"]) for e in sent] == [
        *(("trigger", a.fingerprint) for a in group.alerts),
        ("resolve", group.alerts[0].fingerprint),
        *(("trigger", a.fingerprint) for a in group.alerts[1:]),
    ]
    severities = [e["payload"]["severity"] for e in sent[:4]]
    assert severities == ["critical", "warning", "info", "critical"]
    assert sent[1]["payload"]["class"] == "averageVideoRtt"


def test_acknowledgement_notices(host: PluginTestHost, pagerduty: FakePagerDuty) -> None:
    """An ack from Slack or the CLI acknowledges the PagerDuty alert; PagerDuty has no
    event that gives an alert back, so an ``unacknowledged`` notice (and any notice of
    an event this plugin does not know) sends nothing and fails nothing."""
    kind = host.host.notifier_types["pagerduty"]
    assert kind.send_acknowledged
    notifier = host.build(config(pagerduty.url))
    alert = unique("acked")
    firing = make_notification(alert)
    notifier.send(firing)
    acked = replace(
        make_notification(alert, thread=firing.thread), event="acknowledged", actor="U1"
    )
    notifier.send(acked)
    assert pagerduty.alerts[alert.fingerprint].status == "acknowledged"
    before = len(pagerduty.accepted)
    notifier.send(replace(acked, event="unacknowledged"))
    notifier.send(replace(acked, event="escalated"))  # type: ignore[arg-type]  # a newer core
    assert len(pagerduty.accepted) == before
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    assert pagerduty.alerts[alert.fingerprint].events == ["trigger", "acknowledge", "resolve"]
    assert sent_for(pagerduty, alert)[1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "acknowledge",
        "dedup_key": alert.fingerprint,
    }


def test_severity_map(host: PluginTestHost, pagerduty: FakePagerDuty) -> None:
    notifier = host.build(config(pagerduty.url, severity_map={"warning": "error"}))
    alerts = [unique(f"sev-{s}", severity=s) for s in ("info", "warning", "critical")]
    notifier.send(make_notification(*alerts, group_by=["..."]))
    got = [e["payload"]["severity"] for e in sent_for(pagerduty, *alerts)]
    assert got == ["info", "error", "critical"]  # the others keep their own names
    with pytest.raises(ConfigError) as caught:
        host.build(config(pagerduty.url, severity_map={"warning": "urgent"}), "bad")
    assert "notifiers.bad.severity_map.warning" in str(caught.value.problems[0])


def test_summary_within_pagerdutys_limit(host: PluginTestHost, pagerduty: FakePagerDuty) -> None:
    notifier = host.build(config(pagerduty.url))
    name = "🎥 Ärzte-Konferenz " * 100  # astral characters count twice in UTF-16
    alert = unique("long-summary", participant_name=name)
    notifier.send(make_notification(alert))
    (event,) = sent_for(pagerduty, alert)
    summary = event["payload"]["summary"]
    assert summary.endswith("…")
    assert len(summary.encode("utf-16-le")) // 2 <= MAX_SUMMARY
    assert summary[:-1] == summary[:-1].encode().decode()  # whole characters only
    assert summary.startswith("long-summary: 🎥 Ärzte-Konferenz")
    again = unique("told-again", reason="still firing; silence 3f482c67 ended")
    notifier.send(make_notification(again))
    (event,) = sent_for(pagerduty, again)
    assert event["payload"]["summary"].endswith("(still firing; silence 3f482c67 ended)")
    assert cut("x" * 1024, 1024) == "x" * 1024
    assert cut("x" * 1025, 1024) == "x" * 1023 + "…"
    assert cut("😀" * 600, 1024) == "😀" * 511 + "…"


def test_likely_cause_and_evidence_when_the_alert_has_them(
    host: PluginTestHost, pagerduty: FakePagerDuty
) -> None:
    notifier = host.build(config(pagerduty.url))
    alert = replace(unique("caused"), cause="uplink", evidence=("packet loss 12%", "jitter 80 ms"))
    notifier.send(make_notification(alert))
    (event,) = sent_for(pagerduty, alert)
    details = event["payload"]["custom_details"]
    assert details["cause"] == "uplink"
    assert details["evidence"] == ["packet loss 12%", "jitter 80 ms"]


def test_rate_limits_and_server_errors_are_retried(
    host: PluginTestHost, pagerduty: FakePagerDuty
) -> None:
    notifier = host.build(config(pagerduty.url))
    pagerduty.reply(
        Reply(
            429,
            {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly.",
            },
            headers={"Retry-After": "7"},
        ),
        Reply(500, {"status": "error", "message": "internal"}),
        Reply(503, "upstream unavailable"),
    )
    errors = []
    for _ in range(3):
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification(unique("limited")))
        errors.append(caught.value)
    assert [e.permanent for e in errors] == [False, False, False]
    assert errors[0].retry_after == 7.0
    assert "answered HTTP 429 to trigger" in str(errors[0])
    assert "arriving too quickly" in str(errors[0])
    assert "HTTP 503" in str(errors[2])
    assert "upstream unavailable" in str(errors[2])


def test_an_invalid_routing_key_is_permanent_and_says_what_to_check(
    host: PluginTestHost, pagerduty: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    notifier = host.build(config(pagerduty.url, routing_key=UNKNOWN_KEY))
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification(unique("unknown-key")))
    error = caught.value
    assert error.permanent
    assert "refused the routing key" in str(error)
    assert "check routing_key" in str(error)
    assert "Invalid routing key" in str(error)
    # PagerDuty's answer to a key of the wrong length, e.g. a REST API token pasted in
    pagerduty.reply(
        Reply(
            400,
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"],
            },
        )
    )
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification(unique("short-key")))
    assert caught.value.permanent
    assert "check routing_key" in str(caught.value)
    assert "should be 32 characters" in str(caught.value)
    text = "\n".join([str(error), str(caught.value), repr(notifier), caplog.text])
    assert UNKNOWN_KEY not in text
    assert ROUTING_KEY not in text


def test_a_key_echoed_in_an_answer_is_masked(
    host: PluginTestHost, pagerduty: FakePagerDuty
) -> None:
    notifier = host.build(config(pagerduty.url))
    pagerduty.reply(invalid(f"Invalid routing key {ROUTING_KEY}"), Reply(502, ROUTING_KEY))
    for _ in range(2):
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification(unique("echoed")))
        assert ROUTING_KEY not in str(caught.value)
        assert MASK in str(caught.value)


def test_values_json_cannot_carry_are_sent_as_text(
    host: PluginTestHost, pagerduty: FakePagerDuty
) -> None:
    notifier = host.build(config(pagerduty.url))
    alert = unique("not-a-number", value=float("nan"), values=[1.0, float("inf")])
    notifier.send(make_notification(alert))  # the server refuses NaN in JSON, as PagerDuty
    (event,) = sent_for(pagerduty, alert)
    details = event["payload"]["custom_details"]
    assert (details["value"], details["values"]) == ("nan", [1.0, "inf"])


def test_other_client_errors_are_permanent(host: PluginTestHost, pagerduty: FakePagerDuty) -> None:
    notifier = host.build(config(pagerduty.url))
    pagerduty.reply(
        Reply(
            400,
            {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["'payload.summary' is missing or blank"],
            },
        ),
        Reply(403, "forbidden"),
        Reply(301, headers={"Location": "https://elsewhere.example.com/v2/enqueue"}),
    )
    for expected in ("invalid event: 'payload.summary' is missing", "HTTP 403", "not followed"):
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification(unique("refused")))
        assert caught.value.permanent
        assert expected in str(caught.value)
        assert "routing_key" not in str(caught.value)


def test_a_groups_accepted_events_are_not_sent_again(
    host: PluginTestHost, pagerduty: FakePagerDuty
) -> None:
    """Rate-limited in the middle of a group, the retry sends only what was not taken, so
    a big group gets through a rate limit that allows fewer events than it has."""
    notifier = host.build(config(pagerduty.url), "grouped")
    group = grouped_notification(4, meeting_id="grp-meeting-2")
    before = len(pagerduty.receiver.requests)
    pagerduty.receiver.reply(
        Reply(202, {"status": "success"}),
        Reply(202, {"status": "success"}),
        Reply(429, headers={"Retry-After": "1"}),
    )
    with pytest.raises(DeliveryError):
        notifier.send(group)
    assert len(pagerduty.receiver.requests) == before + 3
    assert host.states["grouped"].get(f"progress:{group.id}") is not None
    notifier.send(group)  # the outbox's retry: the same notification
    retried = [json.loads(r.body)["dedup_key"] for r in pagerduty.receiver.requests[before + 3 :]]
    assert retried == [a.fingerprint for a in group.alerts[2:]]
    assert host.states["grouped"].get(f"progress:{group.id}") is None
    # refused for good in the middle: no retry is coming, so nothing is remembered
    other = grouped_notification(3, meeting_id="grp-meeting-3")
    pagerduty.reply(Reply(202, {"status": "success"}), Reply(403, "forbidden"))
    with pytest.raises(DeliveryError) as caught:
        notifier.send(other)
    assert caught.value.permanent
    assert host.states["grouped"].get(f"progress:{other.id}") is None


def test_config_errors_fail_check_without_the_key(host: PluginTestHost) -> None:
    cases = [
        ({"routing_key": "abc"}, "routing_key: must be the 32-character Integration Key"),
        ({"url": "http://events.example.com/v2/enqueue"}, "url: must be an https:// URL"),
        ({"url": "ftp://127.0.0.1/"}, "url: must be an https:// URL"),
        (
            {"url": "https://oncall:hunter22@events.pagerduty.com/v2/enqueue"},
            "url: must not carry user:password@",
        ),
        ({"generator_url": "https://x/{nope}"}, "generator_url: bad template"),
        ({"routing_key": ROUTING_KEY, "rooting_key": ROUTING_KEY}, "unknown key 'rooting_key'"),
    ]
    for extra, message in cases:
        entry = {**config("https://events.pagerduty.com/v2/enqueue"), **extra}
        with pytest.raises(ConfigError) as caught:
            host.build(entry, "pd")
        text = "\n".join(str(p) for p in caught.value.problems)
        assert message in text, text
        assert ROUTING_KEY not in text
        assert "hunter22" not in text
    eu = host.build(config("https://events.eu.pagerduty.com/v2/enqueue"), "eu")
    assert "events.eu.pagerduty.com" in repr(eu)
    assert ROUTING_KEY not in repr(eu)


def test_the_answer_read_is_bounded() -> None:
    """A destination that answers with an endless body costs at most MAX_ANSWER bytes."""
    host = PluginTestHost()
    host.add(watchdog_pagerduty)
    with EndlessAnswer(500) as server:
        notifier = host.build(config(server.url + "/v2/enqueue"))
        start = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        took = time.monotonic() - start
    assert not caught.value.permanent
    assert len(str(caught.value)) < 500
    assert server.sent < 32 * 1024 * 1024  # we closed; the rest never left the server
    assert took < 10


def test_tls_with_a_private_ca(tls_certificates: TLSCertificates) -> None:
    with HttpReceiver(
        lambda r: Reply(202, {"status": "success", "dedup_key": "k"}),
        ssl_context=tls_certificates.server_context,
    ) as https:
        host = PluginTestHost()
        host.add(watchdog_pagerduty)
        url = https.url + "/v2/enqueue"
        host.build(config(url, ca_file=tls_certificates.ca_file), "trusted").send(
            make_notification()
        )
        with pytest.raises(DeliveryError) as caught:
            host.build(config(url), "untrusted").send(make_notification())
        assert "TLS certificate of 127.0.0.1" in str(caught.value)
        assert len(https.requests) == 1


# -- the daemon, the CLI, the docs ----------------------------------------------------------


def test_daemon_pages_and_resolves_through_pagerduty(
    tmp_path: Path, sim: Simulator, pagerduty: FakePagerDuty
) -> None:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 4.2)]
    sim.add_participant("sess-pd", "part-pd", samples=video_series(scores), name="Priya")
    sim.advance(30)
    config_path = write_config(
        tmp_path,
        sim.url,
        [("sess-pd", "part-pd")],
        POOR_VIDEO,
        notifiers={"pager": {"type": "pagerduty", "url": pagerduty.url}},
        log={"level": "debug"},
    )
    daemon = Daemon(
        ["run", "--config", str(config_path)],
        env={"WATCHDOG_NOTIFIERS__PAGER__ROUTING_KEY": ROUTING_KEY},
    )
    try:
        _until(lambda: _events(pagerduty, "part-pd"))
        (trigger,) = _events(pagerduty, "part-pd")
        assert trigger["event_action"] == "trigger"
        assert trigger["payload"]["summary"].startswith("poor-video: Priya (part-pd)")
        assert trigger["payload"]["severity"] == "warning"
        sim.advance(10)
        _until(lambda: len(_events(pagerduty, "part-pd")) == 2)
        resolve = _events(pagerduty, "part-pd")[1]
        assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
        assert pagerduty.alerts[trigger["dedup_key"]].status == "resolved"
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    output = daemon.all_output()
    assert "delivered firing notification for poor-video to pager" in output
    assert ROUTING_KEY not in output
    assert SECRET not in output


def _events(server: FakePagerDuty, participant: str) -> list[dict[str, Any]]:
    """The events about one participant's alerts: its triggers, and what shares their key."""
    accepted = list(server.accepted)
    keys = {
        e["dedup_key"]
        for e in accepted
        if e.get("payload", {}).get("custom_details", {}).get("participant_id") == participant
    }
    return [e for e in accepted if e["dedup_key"] in keys]


def _until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_notify_test_plugins_and_schema(
    tmp_path: Path,
    pagerduty: FakePagerDuty,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "notifiers": {
                    "pager": {"type": "pagerduty", "url": pagerduty.url},
                    "wrong-key": {
                        "type": "pagerduty",
                        "url": pagerduty.url,
                        "routing_key": UNKNOWN_KEY,
                    },
                }
            }
        )
    )
    monkeypatch.setenv("WATCHDOG_NOTIFIERS__PAGER__ROUTING_KEY", ROUTING_KEY)
    before = len(pagerduty.accepted)
    assert main(["notify-test", "pager", "--config", str(path)]) == 0
    ok = capsys.readouterr()
    assert "pager: test alert delivered" in ok.out
    (event,) = pagerduty.accepted[before:]
    assert event["payload"]["summary"].startswith("(test) Test alert from videosdk-watchdog")
    assert event["payload"]["group"] == "watchdog-test"
    assert event["payload"]["custom_details"]["test"] is True
    assert main(["notify-test", "wrong-key", "--config", str(path)]) == 1
    failed = capsys.readouterr()
    assert "wrong-key: delivery failed: PagerDuty refused the routing key" in failed.err
    assert "check routing_key" in failed.err
    for result in (ok, failed):
        assert ROUTING_KEY not in result.out + result.err
        assert UNKNOWN_KEY not in result.out + result.err

    listed = io.StringIO()
    with contextlib.redirect_stdout(listed):
        assert main(["plugins", "--json"]) == 0
    (plugin,) = [p for p in json.loads(listed.getvalue()) if p["name"] == "pagerduty"]
    assert plugin["notifier_types"] == ["pagerduty"]
    assert plugin["distribution"] == "videosdk-watchdog"
    assert plugin["error"] is None

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["schema", "config"]) == 0
    schema = json.loads(printed.getvalue())
    entry = schema["$defs"]["pagerduty_notifier"]
    assert {"routing_key", "url", "severity_map", "send_resolved"} <= set(entry["properties"])
    validator = jsonschema.Draft202012Validator(schema)
    good = {"type": "pagerduty", "routing_key": ROUTING_KEY}
    assert validator.is_valid({"notifiers": {"p": good}})
    for bad in (
        {**good, "routing_key": "short"},
        {**good, "url": "http://events.example.com/v2/enqueue"},
        {**good, "severity_map": {"warning": "urgent"}},
    ):
        assert not validator.is_valid({"notifiers": {"p": bad}}), bad


def test_the_local_server_refuses_what_pagerduty_refuses() -> None:
    """Its checks are real: each rule it holds the notifier to refuses a broken event."""
    good: dict[str, Any] = {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "k",
        "payload": {"summary": "s", "source": "meeting m", "severity": "error"},
    }
    assert problems(good) == []
    assert problems({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "k"}) == []
    broken = [
        {**good, "routing_key": "short"},
        {**good, "event_action": "snooze"},
        {**good, "dedup_key": "k" * 256},
        {k: v for k, v in good.items() if k != "payload"},
        {**good, "payload": {**good["payload"], "summary": "s" * 1025}},
        {**good, "payload": {**good["payload"], "severity": "urgent"}},
        {**good, "payload": {"summary": "s", "severity": "info"}},
        {**good, "payload": {**good["payload"], "timestamp": "yesterday"}},
        {**good, "links": [{"text": "no href"}]},
        {"routing_key": ROUTING_KEY, "event_action": "acknowledge"},
        [good],
    ]
    for event in broken:
        assert problems(event), event
