"""Acting on alerts from Slack: buttons, /watchdog, permissions, audit, charts.

Real protocol peers on loopback: the Slack-like Web API server, a WebSocket
server speaking Socket Mode's envelopes, and signed (or not) HTTP requests to
the interaction endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import watchdog_slack
from slack_sdk.signature import SignatureVerifier

from watchdog import charts
from watchdog.alerting.actions import StoreActions
from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy, plan
from watchdog.alerting.silences import describe, render
from watchdog.alerts import MEETING_VIEW, Alert, Notification, fingerprint
from watchdog.delivery.host import PluginHost
from watchdog.notifiers import Notifier
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord
from watchdog.testing import free_port, make_alert, resolved

from .helpers import record_alerts
from .slackapi import APP_TOKEN, CHANNEL_ID, TOKEN, FakeSlack, Message
from .socketmode import FakeSocketMode

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ONCALL = "U0ONCALL1"
STRANGER = "U0STRANGER"
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
WATCHED = WatchRecord("sess-1", "part-1", "abcd-efgh-ijkl", "Alice", "discovery", "watching", NOW)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


def values_alert(**kw: Any) -> Alert:
    return make_alert(values=[4.1, 3.9, 3.6, 3.2, 2.8, 2.41], **kw)


class Daemon:
    """The parts of the running daemon a click touches: store, alert manager, notifier."""

    def __init__(
        self,
        db: str,
        config: dict[str, Any],
        clock: Clock,
        policy: Policy | None = None,
    ) -> None:
        self.store = Store(db)
        self.store.migrate()
        self.clock = clock
        self.manager = AlertManager(
            self.store.alert_log,
            self.store.silences,
            AlertingConfig(
                policies={"slack": policy or Policy(repeat_interval=timedelta(minutes=30))}
            ),
            clock=clock,
        )
        host = PluginHost()
        host.add(watchdog_slack, "slack")
        built = host.build(
            {"slack": config},
            self.store.notifier_memory.for_notifier,
            actions=StoreActions(
                self.store.silences, self.store.alert_log, self.store.watchlist, clock
            ),
        )
        self.notifier: Notifier = built["slack"]
        getattr(self.notifier, "start")()  # noqa: B009

    def record(self, alert: Alert) -> None:
        record_alerts(self.store, [(alert, ["slack"])])

    def deliver(self) -> list[Notification]:
        self.manager.flush(final=True)
        sent = []
        for entry in self.store.outbox.entries():
            self.notifier.send(entry.notification)
            self.store.outbox.delivered(entry.id)
            sent.append(entry.notification)
        return sent

    def close(self) -> None:
        getattr(self.notifier, "close")()  # noqa: B009
        self.store.close()


def http_config(slack: FakeSlack, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "slack",
        "token": TOKEN,
        "channel": "#alerts",
        "base_url": slack.api_url,
        "signing_secret": SECRET,
        "interactivity_listen": f"127.0.0.1:{port}",
        **extra,
    }


def button(message: Message, action_id: str) -> dict[str, Any]:
    for block in message.attachments[0]["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {**element, "block_id": block["block_id"]}
    raise AssertionError(f"no {action_id} button on the message")


def has_button(message: Message, action_id: str) -> bool:
    try:
        button(message, action_id)
    except AssertionError:
        return False
    return True


def click_payload(
    slack: FakeSlack, message: Message, action_id: str, user: str = ONCALL
) -> dict[str, Any]:
    pressed = button(message, action_id)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "alice" if user == ONCALL else "mallory", "team_id": "T1"},
        "api_app_id": "A0001",
        "team": {"id": "T0001", "domain": "example"},
        "container": {
            "type": "message_attachment",
            "message_ts": message.ts,
            "channel_id": CHANNEL_ID,
            "is_ephemeral": False,
        },
        "channel": {"id": CHANNEL_ID, "name": "alerts"},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "response_url": slack.response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": pressed["block_id"],
                "value": pressed["value"],
                "text": pressed["text"],
                "action_ts": "1764000000.000100",
            }
        ],
    }


def signed_post(
    port: int, body: bytes, *, secret: str = SECRET, timestamp: int | None = None
) -> tuple[tuple[int, dict[str, Any] | None], dict[str, str]]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode())
    assert signature is not None
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
    return post(port, body, headers), headers


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/slack/events",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def form(payload: dict[str, Any]) -> bytes:
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def click(port: int, slack: FakeSlack, message: Message, action_id: str, **kw: Any) -> int:
    (status, _), _ = signed_post(port, form(click_payload(slack, message, action_id, **kw)))
    return status


@pytest.fixture
def http_daemon(slack: FakeSlack, db: str) -> Iterator[tuple[Daemon, int]]:
    port = free_port()
    daemon = Daemon(db, http_config(slack, port, silence_allowed=[ONCALL, "S0ONCALL"]), Clock())
    yield daemon, port
    daemon.close()


def test_every_button_edits_the_message_and_is_audited(
    slack: FakeSlack, http_daemon: tuple[Daemon, int]
) -> None:
    daemon, port = http_daemon
    daemon.record(values_alert())
    daemon.deliver()
    [original] = slack.top_level()
    for action in ("watchdog_ack", "watchdog_silence_1h"):
        assert has_button(original, action)

    assert click(port, slack, original, "watchdog_ack") == 200
    text = json.dumps(original.attachments)
    assert "Acknowledged by <@U0ONCALL1>" in text
    assert not has_button(original, "watchdog_ack")

    assert click(port, slack, original, "watchdog_silence_1h") == 200
    text = json.dumps(original.attachments)
    assert "Silenced by <@U0ONCALL1> until" in text
    assert has_button(original, "watchdog_unsilence")
    [silence] = daemon.store.silences.active(NOW)
    assert silence.ends_at - NOW == timedelta(hours=1)
    assert {str(m) for m in silence.matchers} >= {
        "alertname=poor-video",
        "session_id=sess-1",
        "participant_id=part-1",
    }

    assert click(port, slack, original, "watchdog_unsilence") == 200
    assert daemon.store.silences.active(NOW) == []
    assert has_button(original, "watchdog_silence_meeting")

    assert click(port, slack, original, "watchdog_silence_meeting") == 200
    [meeting] = daemon.store.silences.active(NOW)
    assert "meeting_id=abcd-efgh-ijkl" in {str(m) for m in meeting.matchers}
    assert "until the meeting ends" in json.dumps(original.attachments)
    assert len(original.edits) == 4  # every click redrew the message
    assert slack.responses == []  # nothing refused, nothing to explain

    actions = [(e.action, e.source, e.actor) for e in daemon.store.silences.audit(limit=50)]
    assert ("acknowledge", "slack", f"alice ({ONCALL})") in actions
    assert {a for a, _, _ in actions} == {"acknowledge", "silence", "unsilence"}
    listing = render(
        describe(daemon.store.silences, daemon.store.alert_log, include_expired=True, now=NOW),
        now=NOW,
    )
    assert f"by alice ({ONCALL}) from slack" in listing


def test_a_click_on_a_meeting_message_redraws_the_meeting(slack: FakeSlack, db: str) -> None:
    """The meeting view's buttons act on its worst alerts; a click redraws the meeting."""
    port = free_port()
    daemon = Daemon(db, http_config(slack, port), Clock(), Policy(group_by=MEETING_VIEW))
    try:
        daemon.record(values_alert(participant_id="p1", participant_name="Alice"))
        daemon.record(make_alert(participant_id="p2", participant_name="Bob", severity="critical"))
        daemon.deliver()
        [message] = slack.top_level()
        assert click(port, slack, message, "watchdog_ack") == 200  # the worst one's: Bob's
        text = json.dumps(message.attachments, ensure_ascii=False)
        assert "🔴 DEGRADED · meeting abcd-efgh-ijkl" in text  # still the meeting's view
        assert "*Affected*\\n2 participants" in text
        assert "*poor-video* — Bob\\n👀 Acknowledged by <@U0ONCALL1>" in text
        assert has_button(message, "watchdog_ack")  # Alice's is still there
        assert len(message.edits) == 1
        [ack] = daemon.store.silences.acks()
        assert ack.fingerprint == fingerprint("poor-video", "sess-1", "p2")
    finally:
        daemon.close()


def test_acknowledged_alert_gets_no_reminders(
    slack: FakeSlack, http_daemon: tuple[Daemon, int]
) -> None:
    daemon, port = http_daemon
    daemon.record(values_alert())
    daemon.deliver()
    [original] = slack.top_level()
    daemon.clock.now += timedelta(minutes=31)
    assert [n.repeat for n in daemon.deliver()] == [True]  # a reminder before the ack
    assert click(port, slack, original, "watchdog_ack") == 200
    daemon.clock.now += timedelta(hours=3)
    assert daemon.deliver() == []
    snapshot = daemon.store.alert_log.alerting_snapshot(daemon.clock.now)
    assert plan(snapshot, daemon.manager.config, daemon.clock.now).outbox == []


def test_refused_user_gets_an_ephemeral_no_and_nothing_changes(
    slack: FakeSlack, http_daemon: tuple[Daemon, int], db: str
) -> None:
    daemon, port = http_daemon
    slack.usergroups["S0ONCALL"] = ["U0OTHER"]
    daemon.record(values_alert())
    daemon.deliver()
    [original] = slack.top_level()
    assert click(port, slack, original, "watchdog_silence_1h", user=STRANGER) == 200
    assert click(port, slack, original, "watchdog_silence_meeting", user=STRANGER) == 200
    assert original.edits == []
    assert daemon.store.silences.all() == []
    assert [r["response_type"] for r in slack.responses] == ["ephemeral", "ephemeral"]
    assert "not allowed" in slack.responses[0]["text"]
    assert slack.usergroup_calls == 1  # the group's members were cached
    # a member of an allowed user group may
    assert click(port, slack, original, "watchdog_silence_1h", user="U0OTHER") == 200
    assert len(daemon.store.silences.all()) == 1
    assert len(original.edits) == 1


def test_unsigned_bad_stale_and_replayed_requests_get_401(
    slack: FakeSlack, http_daemon: tuple[Daemon, int]
) -> None:
    daemon, port = http_daemon
    daemon.record(values_alert())
    daemon.deliver()
    [original] = slack.top_level()
    body = form(click_payload(slack, original, "watchdog_ack"))
    assert post(port, body, {})[0] == 401
    assert signed_post(port, body, secret="not-the-secret")[0][0] == 401
    assert signed_post(port, body, timestamp=int(time.time()) - 301)[0][0] == 401
    assert daemon.store.silences.audit() == []
    (status, _), headers = signed_post(port, body)
    assert status == 200
    assert post(port, body, headers)[0] == 401  # the same signed request again
    assert len(original.edits) == 1
    assert len(daemon.store.silences.audit()) == 1


def test_click_on_an_alert_that_has_since_resolved(
    slack: FakeSlack, http_daemon: tuple[Daemon, int]
) -> None:
    daemon, port = http_daemon
    alert = values_alert()
    daemon.record(alert)
    daemon.deliver()
    [original] = slack.top_level()
    stale = click_payload(slack, original, "watchdog_silence_1h")
    daemon.record(resolved(alert))
    daemon.deliver()
    assert not has_button(original, "watchdog_ack")  # the resolved message has no buttons
    edits = len(original.edits)
    (status, _), _ = signed_post(port, form(stale))
    assert status == 200
    assert len(original.edits) == edits
    assert daemon.store.silences.all() == []
    assert "resolved" in slack.responses[-1]["text"]


def test_restart_between_the_alert_and_the_click(slack: FakeSlack, db: str) -> None:
    port = free_port()
    first = Daemon(db, http_config(slack, port), Clock())
    first.record(values_alert())
    first.deliver()
    first.close()
    [original] = slack.top_level()
    second = Daemon(db, http_config(slack, port), Clock())
    try:
        assert click(port, slack, original, "watchdog_ack") == 200
        assert "Acknowledged by" in json.dumps(original.attachments)
    finally:
        second.close()
    third = Store(db)  # the ack survives another restart
    try:
        assert [a.acked_by for a in third.silences.acks()] == [f"alice ({ONCALL})"]
    finally:
        third.close()


def test_socket_mode_buttons_and_slash_commands(slack: FakeSlack, db: str) -> None:
    with FakeSocketMode() as socket:
        slack.socket_url = socket.url
        config = {
            "type": "slack",
            "token": TOKEN,
            "channel": "#alerts",
            "base_url": slack.api_url,
            "app_token": APP_TOKEN,
        }
        daemon = Daemon(db, config, Clock())
        try:
            daemon.record(values_alert())
            daemon.deliver()
            [original] = slack.top_level()
            ack = socket.send("interactive", click_payload(slack, original, "watchdog_ack"))
            assert "payload" not in ack or not ack["payload"]
            assert "Acknowledged by <@U0ONCALL1>" in json.dumps(original.attachments)
            socket.send("interactive", click_payload(slack, original, "watchdog_silence_1h"))
            command = {
                "command": "/watchdog",
                "user_id": ONCALL,
                "channel_id": CHANNEL_ID,
                "response_url": slack.response_url,
            }
            status = socket.send("slash_commands", {**command, "text": "status"})["payload"]
            assert status["response_type"] == "ephemeral"
            assert "1 alerts firing" in status["text"]
            assert "acked by <@U0ONCALL1>" in status["text"]
            silences = socket.send("slash_commands", {**command, "text": "silences"})["payload"]
            assert "1 active silences" in silences["text"]
            assert "from slack" in silences["text"]
            help_text = socket.send("slash_commands", {**command, "text": "bogus"})["payload"]
            assert "Usage" in help_text["text"]
        finally:
            daemon.close()


def test_http_slash_command_answers_ephemerally(
    slack: FakeSlack, http_daemon: tuple[Daemon, int]
) -> None:
    daemon, port = http_daemon
    daemon.store.watchlist.save([WATCHED])
    body = urllib.parse.urlencode(
        {"command": "/watchdog", "text": "status", "user_id": ONCALL, "response_url": "x"}
    ).encode()
    (status, answer), _ = signed_post(port, body)
    assert status == 200
    assert answer is not None
    assert answer["response_type"] == "ephemeral"
    assert "0 alerts firing*, 1 participants watched" in answer["text"]


def test_unreadable_requests_cost_one_line_each_and_no_traceback(
    http_daemon: tuple[Daemon, int], caplog: pytest.LogCaptureFixture
) -> None:
    daemon, port = http_daemon
    ts = str(int(time.time()))
    not_utf8 = b"payload=\xff\xfe"
    mac = hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + not_utf8, hashlib.sha256)
    unsigned = [
        ({"X-Slack-Request-Timestamp": "\xe9", "X-Slack-Signature": "v0=\xe9"}, b"payload=x"),
        ({"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=" + "0" * 64}, b"x"),
        ({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac.hexdigest()}, not_utf8),
    ]
    for headers, body in unsigned:  # slack-sdk's verifier would raise on each of these
        assert post(port, body, headers)[0] == 401
    for body in (b"payload=%7Bnot+json", b"payload=" + b"%5B" * 3000, b"a&&=b=c"):
        assert signed_post(port, body)[0] == (400, {"error": "not a form with a JSON payload"})
    assert signed_post(port, b"payload=[1]")[0] == (
        400,
        {"error": "not an interaction or a command"},
    )
    assert daemon.store.silences.audit() == []
    assert all(record.exc_info is None for record in caplog.records)
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 3 + 3


def test_meeting_silence_ends_when_the_meeting_does(db: str) -> None:
    store = Store(db)
    store.migrate()
    clock = Clock()
    try:
        store.watchlist.save(
            [
                WatchRecord(
                    "sess-1", "part-1", "abcd-efgh-ijkl", "Alice", "discovery", "watching", NOW
                )
            ]
        )
        alert = values_alert()
        record_alerts(store, [(alert, ["slack"])])
        actions = StoreActions(store.silences, store.alert_log, store.watchlist, clock)
        result = actions.silence(alert.fingerprint, "alice (U1)", "slack", scope="meeting")
        assert result.ok
        assert result.view.until_meeting_end
        assert result.view.silenced_until == NOW + timedelta(hours=12)  # the sane maximum
        manager = AlertManager(
            store.alert_log,
            store.silences,
            AlertingConfig(policies={"slack": Policy()}),
            clock=clock,
        )
        manager.flush()
        assert len(store.silences.active(NOW)) == 1  # the meeting goes on
        record_alerts(store, [(resolved(alert, reason="participant left the session"), ["slack"])])
        store.watchlist.delete([("sess-1", "part-1")])
        clock.now += timedelta(minutes=1)
        manager.flush()
        assert store.silences.active(clock.now) == []
        assert store.silences.audit(limit=1)[0].source == "meeting-end"
    finally:
        store.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chart_renders_and_reaches_the_thread(slack: FakeSlack, db: str) -> None:
    alert = values_alert()
    png = charts.chart_png(alert)
    assert png is not None
    assert png_size(png) == (600, 240)
    daemon = Daemon(
        db,
        {"type": "slack", "token": TOKEN, "channel": "#alerts", "base_url": slack.api_url},
        Clock(),
    )
    try:
        daemon.record(alert)
        daemon.deliver()
    finally:
        daemon.close()
    [original] = slack.top_level()
    [upload] = slack.completed_uploads()
    assert upload.thread_ts == original.ts
    assert upload.channel == CHANNEL_ID
    assert png_size(upload.data) == (600, 240)
    assert upload.filename.endswith(".png")


def test_without_matplotlib_the_sparkline_alone_is_sent(slack: FakeSlack, tmp_path: Path) -> None:
    """The extra's absence, for real: a subprocess where importing matplotlib fails."""
    script = f"""
import sys
sys.modules["matplotlib"] = None  # import matplotlib now raises ImportError
from watchdog import charts
from watchdog.testing import make_alert
alert = make_alert(values=[4.0, 3.0, 2.0], sparkline="▇▄▁")
assert charts.available() is False
assert charts.chart_png(alert) is None
import watchdog_slack
from watchdog.notifiers import MemoryState
from watchdog.delivery.host import PluginHost
host = PluginHost()
host.add(watchdog_slack, "slack")
n = host.build({{"slack": {{"type": "slack", "token": {TOKEN!r}, "channel": "#alerts",
    "base_url": {slack.api_url!r}}}}}, lambda _: MemoryState())["slack"]
from watchdog.testing import make_notification
n.send(make_notification(alert, notifier="slack"))
print("sent")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "sent" in done.stdout
    [message] = slack.top_level()
    assert "▇▄▁" in json.dumps(message.attachments, ensure_ascii=False)
    assert slack.uploads == {}


def test_switch_turns_charts_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(charts.SWITCH, "off")
    assert charts.chart_png(values_alert()) is None
    monkeypatch.delenv(charts.SWITCH)
    assert charts.chart_png(replace(values_alert(), values=[2.0])) is None  # too few to chart
