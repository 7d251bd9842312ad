"""Who is on call: an iCalendar feed served on loopback, rotations, overrides, /watchdog oncall.

The feed is the real format calendars and PagerDuty export (tests/fixtures/oncall-berlin.ics:
a weekly rotation by RRULE in Europe/Berlin with its VTIMEZONE, an EXDATE covered by
another event, a RECURRENCE-ID swap), read by icalendar + recurring-ical-events, over
HTTP from a server on 127.0.0.1. Time is an injected clock: nothing sleeps.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import watchdog_slack
from prometheus_client import REGISTRY

from watchdog.alerting.actions import StoreActions
from watchdog.alerting.oncall import Feeds, Schedules, rotation_turn
from watchdog.cli.main import main
from watchdog.config.oncall import OnCallSettings, RotationSettings
from watchdog.delivery.host import PluginHost
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store

from .conftest import POOR_VIDEO
from .conftest import write_config as daemon_config
from .processes import Daemon
from .slackapi import APP_TOKEN, CHANNEL_ID, TOKEN, FakeSlack, block_problems
from .socketmode import FakeSocketMode

FEED = (Path(__file__).parent / "fixtures" / "oncall-berlin.ics").read_bytes()
PEOPLE = {
    "Alice": {"slack_user": "UALICE1"},
    "Bob": {"email": "bob@example.com"},
    "Carol": {"email": "carol@example.com"},
    "Dave": {},
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class FeedServer:
    """An HTTP server on 127.0.0.1 serving one feed: as given, failing, or endless."""

    def __init__(self) -> None:
        self.body = FEED
        self.status = 200
        self.endless = False  # stream 1 MiB chunks up to 100 MiB, no Content-Length
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/calendar")
                if outer.endless:
                    self.end_headers()
                    chunk = b"X" * (1 << 20)
                    try:
                        for _ in range(100):
                            self.wfile.write(chunk)
                    except OSError:
                        return  # the client stopped reading: what it should do
                    return
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oncall.ics?token=s3cr3t"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def shift_feed(person: str, start: datetime, end: datetime) -> bytes:
    """An iCalendar feed with one on-call shift."""
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{person}-shift\r\nDTSTAMP:{start:{stamp}}\r\nDTSTART:{start:{stamp}}\r\n"
        f"DTEND:{end:{stamp}}\r\nSUMMARY:On call: {person}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


@pytest.fixture(scope="module")
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.stop()


@pytest.fixture
def served(feed_server: FeedServer) -> FeedServer:
    feed_server.body, feed_server.status, feed_server.endless = FEED, 200, False
    return feed_server


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings(url: str, **extra: Any) -> OnCallSettings:
    return OnCallSettings.model_validate(
        {"teams": {"video": {"calendar": url, "people": PEOPLE}}, **extra}
    )


def schedules(url: str, clock: Clock, store: Store | None = None, **extra: Any) -> Schedules:
    config = settings(url, **extra)
    feeds = Feeds(config, Path, store.oncall if store else None, clock)
    return Schedules(config, feeds, store.oncall if store else None, clock)


def who(found: Any) -> str | None:
    return None if found is None else str(found.person.name)


def test_the_served_feed_picks_the_right_person_on_both_sides_of_both_dst_changes(
    served: FeedServer,
) -> None:
    clock = Clock(at("2026-03-20T12:00:00+00:00"))
    oncall = schedules(served.url, clock)
    assert oncall.feeds.refresh("video")
    # spring: handover at 09:00 local, CEST since the night before: 07:00 UTC, not 08:00
    assert who(oncall.now("video", at("2026-03-30T08:59:00+02:00"))) == "Bob"
    assert who(oncall.now("video", at("2026-03-30T09:00:00+02:00"))) == "Alice"
    shift = oncall.now("video", at("2026-03-30T09:00:00+02:00"))
    assert shift is not None
    assert shift.start == at("2026-03-30T07:00:00+00:00")
    assert shift.end == at("2026-04-06T07:00:00+00:00")
    # autumn (CET from 25 October): Bob's week spans the change and ends 09:00 CET
    assert who(oncall.now("video", at("2026-10-26T07:30:00+00:00"))) == "Bob"
    assert who(oncall.now("video", at("2026-10-26T08:59:00+01:00"))) == "Bob"
    assert who(oncall.now("video", at("2026-10-26T09:00:00+01:00"))) == "Alice"
    upcoming = oncall.next("video", at("2026-10-26T07:30:00+00:00"))
    assert who(upcoming) == "Alice"
    assert upcoming is not None
    assert upcoming.start == at("2026-10-26T08:00:00+00:00")
    # EXDATE takes Alice's 9 November week out; Carol's own event (named by ATTENDEE) covers
    assert who(oncall.now("video", at("2026-11-10T12:00:00+00:00"))) == "Carol"
    # RECURRENCE-ID gives Bob's 16 November week to Dave
    assert who(oncall.next("video", at("2026-11-10T12:00:00+00:00"))) == "Dave"
    assert who(oncall.now("video", at("2026-11-17T12:00:00+00:00"))) == "Dave"
    assert who(oncall.now("video", at("2026-11-30T12:00:00+00:00"))) == "Bob"
    dave = oncall.person("video", "Dave")
    assert dave is not None
    assert dave.slack_user is None


def test_a_failing_feed_keeps_its_last_good_copy_across_a_restart(
    served: FeedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(str(tmp_path / "state.db"))
    clock = Clock(at("2026-10-20T00:00:00+00:00"))
    try:
        oncall = schedules(served.url, clock, store)
        assert oncall.feeds.refresh("video")
        served.status = 503
        for _ in range(3):
            assert not oncall.feeds.refresh("video")
        assert who(oncall.now("video", clock.now)) == "Bob"  # the copy in memory
        failures = [r for r in caplog.records if "calendar feed failed" in r.getMessage()]
        assert len(failures) == 1  # once per run of failures
        assert "HTTP 503" in failures[0].getMessage()
        assert "s3cr3t" not in caplog.text  # the feed's URL carries a token
        status = oncall.feeds.status()["video"]
        assert status["error"] == "the feed answered HTTP 503"
        assert status["fetchedAt"] == "2026-10-20T00:00:00.000Z"
        # a restart while the feed is still down: the copy in the state database
        again = schedules(served.url, clock, store)
        again.feeds.load_saved()
        assert not again.feeds.refresh("video")
        assert who(again.now("video", clock.now)) == "Bob"
        served.status = 200
        assert again.feeds.refresh("video")
        assert again.feeds.status()["video"]["error"] is None
    finally:
        store.close()


HOSTILE_RRULE = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:x
BEGIN:VEVENT
UID:storm
DTSTART:19700101T000000Z
DTEND:19700101T000001Z
RRULE:FREQ=SECONDLY
SUMMARY:Alice
END:VEVENT
END:VCALENDAR
"""


@pytest.mark.parametrize(
    ("body", "endless", "extra", "error"),
    [
        (b"BEGIN:VCALENDAR\r\nthis is not ical\r\n", False, {}, "not an iCalendar feed"),
        (b"<html>login</html>", False, {}, "not an iCalendar feed"),
        (HOSTILE_RRULE, False, {}, "recurs too often to expand"),
        (b"", True, {}, "larger than 4,194,304 bytes"),
        (
            b"BEGIN:VCALENDAR\r\n" + b"BEGIN:VEVENT\r\nEND:VEVENT\r\n" * 1_000_000,
            False,
            {"max_feed_bytes": 64 * 1024 * 1024},
            "has 1,000,000 events (at most 5,000",
        ),
    ],
    ids=["malformed", "html", "endless-rrule", "100MB", "1e6-events"],
)
def test_hostile_feeds_are_refused_in_bounded_work_and_the_last_copy_stays(
    served: FeedServer, body: bytes, endless: bool, extra: dict[str, Any], error: str
) -> None:
    clock = Clock(at("2026-10-20T00:00:00+00:00"))
    oncall = schedules(served.url, clock, **extra)
    assert oncall.feeds.refresh("video")
    served.body, served.endless = body, endless
    assert not oncall.feeds.refresh("video")
    assert error in str(oncall.feeds.status()["video"]["error"])
    assert who(oncall.now("video", clock.now)) == "Bob"


def rotation(zone: str, handoff: str = "09:00", every: str = "7d") -> RotationSettings:
    return RotationSettings.model_validate(
        {
            "people": ["Erin", "Frank", "Gus"],
            "start": "2026-03-02",
            "handoff": handoff,
            "every": every,
            "time_zone": zone,
        }
    )


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # Berlin: CET -> CEST on 29 March, back on 25 October 2026
        ("Europe/Berlin", "2026-03-30T09:00:00+02:00", "2026-10-26T09:00:00+01:00"),
        # New York: EST -> EDT on 8 March, back on 1 November 2026
        ("America/New_York", "2026-03-09T09:00:00-04:00", "2026-11-02T09:00:00-05:00"),
    ],
)
def test_a_rotation_hands_over_at_local_time_across_both_dst_changes(
    zone: str, before: str, after: str
) -> None:
    daily = rotation(zone, every="1d")
    for handover in (at(before), at(after)):
        turn, start, _ = rotation_turn(daily, handover)
        assert start == handover
        earlier, _, end = rotation_turn(daily, handover - timedelta(seconds=1))
        assert (earlier, end) == (turn - 1, handover)
    weekly = rotation(zone)
    turn, start, end = rotation_turn(weekly, at(after) + timedelta(hours=1))
    assert start.astimezone(daily_zone(zone)).hour == 9
    assert end.astimezone(daily_zone(zone)).hour == 9
    assert rotation_turn(weekly, at("2026-03-02T08:59:00+00:00") - timedelta(days=1))[0] < 0


def daily_zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def write_config(tmp_path: Path, url: str | None = None) -> Path:
    config = tmp_path / "config.yaml"
    teams: dict[str, Any] = {
        "ops": {
            "rotation": {
                "people": ["Erin", "Frank"],
                "start": str(date.today() - timedelta(days=3)),
                "every": "7d",
                "time_zone": "Europe/Berlin",
            },
            "people": {"Erin": {"slack_user": "UERIN01"}, "Frank": {"slack_user": "UFRANK1"}},
        }
    }
    if url is not None:
        teams["video"] = {"calendar": url, "people": PEOPLE}
    config.write_text(
        json.dumps(
            {
                "state": {"url": str(tmp_path / "state.db")},
                "rules": [],
                "oncall": {"teams": teams},
            }
        )
    )
    return config


def test_cli_overrides_win_over_the_schedule_and_expire(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path))
    soon = datetime.now(UTC) + timedelta(hours=1)
    later = soon + timedelta(hours=2)
    assert main(["oncall", "--config", config, "--json", "--at", soon.isoformat()]) == 0
    scheduled = json.loads(capsys.readouterr().out)["teams"][0]["now"]["person"]
    other = "Frank" if scheduled == "Erin" else "Erin"
    args = ["oncall", "override", "--config", config, "--team", "ops", "--person", other]
    code = main([*args, "--from", soon.isoformat(), "--until", later.isoformat(), "--by", "sam"])
    assert code == 0
    override_id = capsys.readouterr().out.strip()
    inside = soon + timedelta(minutes=30)
    assert main(["oncall", "--config", config, "--json", "--at", inside.isoformat()]) == 0
    row = json.loads(capsys.readouterr().out)["teams"][0]
    assert row["now"]["person"] == other
    assert row["now"]["override"] is True
    assert row["next"]["person"] == scheduled  # the schedule resumes when it ends
    before = soon - timedelta(minutes=30)
    assert main(["oncall", "--config", config, "--json", "--at", before.isoformat()]) == 0
    row = json.loads(capsys.readouterr().out)["teams"][0]
    assert row["now"]["person"] == scheduled
    assert row["next"]["person"] == other
    assert row["now"]["end"] == row["next"]["start"]  # cut where the override begins
    expired = later + timedelta(seconds=1)
    assert main(["oncall", "--config", config, "--json", "--at", expired.isoformat()]) == 0
    assert json.loads(capsys.readouterr().out)["teams"][0]["now"]["person"] == scheduled
    assert main(["oncall", "override", "list", "--config", config]) == 0
    assert f"{override_id[:8]}  ops: {other}" in capsys.readouterr().out
    # refused with a reason: an unknown person, an end before the start
    assert main([*args[:-1], "Zed", "--for", "1h"]) == 2
    assert "not one of team ops's people" in capsys.readouterr().err
    assert main([*args, "--from", later.isoformat(), "--until", soon.isoformat()]) == 2
    assert "must end after it starts" in capsys.readouterr().err
    assert main(["oncall", "override", "remove", override_id[:8], "--config", config]) == 0
    capsys.readouterr()
    assert main(["oncall", "--config", config, "--json", "--at", inside.isoformat()]) == 0
    assert json.loads(capsys.readouterr().out)["teams"][0]["now"]["override"] is False
    store = Store(str(tmp_path / "state.db"))
    try:
        actions = [(e.action, e.actor) for e in store.silences.audit(override_id)]
    finally:
        store.close()
    assert sorted(actions) == [("oncall-override", "sam"), ("oncall-unoverride", actions[0][1])]


def test_check_refuses_bad_oncall_config_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "rules: []\n"
        "oncall:\n"
        "  teams:\n"
        "    ops:\n"
        "      rotation: {people: [Erin, Zed], start: 2026-03-02, time_zone: Europe/Berln}\n"
        "      people: {Erin: {slack_user: erin}}\n"
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:5: oncall.teams.ops.rotation.time_zone: unknown time zone" in err
    assert "did you mean 'Europe/Berlin'?" in err
    assert f"{config}:6: oncall.teams.ops.people.Erin.slack_user:" in err


@contextlib.contextmanager
def slack_and_socket(
    store: Store, clock: Clock, oncall: Schedules, **extra: Any
) -> Iterator[tuple[FakeSlack, FakeSocketMode]]:
    """A Slack notifier in service against the Slack-like server and a Socket Mode peer,
    acting on ``store`` with ``oncall``'s schedules; closed after the block."""
    with FakeSlack() as slack, FakeSocketMode() as socket:
        slack.socket_url = socket.url
        host = PluginHost()
        host.add(watchdog_slack, "slack")
        config = {
            "type": "slack",
            "token": TOKEN,
            "channel": "#alerts",
            "base_url": slack.api_url,
            "app_token": APP_TOKEN,
            **extra,
        }
        actions = StoreActions(
            store.silences, store.alert_log, store.watchlist, clock, oncall=oncall
        )
        notifier = host.build(
            {"slack": config}, store.notifier_memory.for_notifier, actions=actions
        )["slack"]
        getattr(notifier, "start")()  # noqa: B009
        try:
            yield slack, socket
        finally:
            getattr(notifier, "close")()  # noqa: B009


def test_slash_oncall_answers_and_take_puts_the_caller_on_call(
    served: FeedServer, tmp_path: Path
) -> None:
    store = Store(str(tmp_path / "state.db"))
    clock = Clock(at("2026-10-20T12:00:00+00:00"))
    oncall = schedules(served.url, clock, store)
    assert oncall.feeds.refresh("video")
    with slack_and_socket(store, clock, oncall) as (_, socket):
        command = {"command": "/watchdog", "channel_id": CHANNEL_ID, "user_id": "UALICE1"}
        answer = socket.send("slash_commands", {**command, "text": "oncall"})["payload"]
        assert answer["response_type"] == "ephemeral"
        assert "*video*: Bob until 2026-10-26T08:00:00.000Z" in answer["text"]
        assert "next <@UALICE1> from 2026-10-26T08:00:00.000Z" in answer["text"]
        taken = socket.send("slash_commands", {**command, "text": "oncall take for 2h"})
        assert "✅ Alice is on call for video until 2026-10-20T14:00" in taken["payload"]["text"]
        answer = socket.send("slash_commands", {**command, "text": "oncall"})["payload"]
        assert "*video*: <@UALICE1> until 2026-10-20T14:00:00.000Z (override)" in answer["text"]
        stranger = {**command, "user_id": "U0STRANGER", "text": "oncall take video"}
        refused = socket.send("slash_commands", stranger)["payload"]["text"]
        assert refused == "You are not one of team video's people (slack_user in the config)."
    who_took = [(e.action, e.actor, e.source) for e in store.silences.audit()]
    store.close()
    assert ("oncall-override", "UALICE1", "slack") in who_took


def take_click(slack: FakeSlack, answer: dict[str, Any], team: str, user: str) -> dict[str, Any]:
    """A click on a team's *Take on-call* button in an ephemeral answer, as Slack sends it."""
    block = next(b for b in answer["blocks"] if b.get("block_id") == f"oncall:{team}")
    pressed = block["accessory"]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T1"},
        "api_app_id": "A0001",
        "team": {"id": "T0001", "domain": "example"},
        "container": {"type": "message", "channel_id": CHANNEL_ID, "is_ephemeral": True},
        "channel": {"id": CHANNEL_ID, "name": "alerts"},
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "response_url": slack.response_url,
        "actions": [
            {
                "type": "button",
                "action_id": pressed["action_id"],
                "block_id": block["block_id"],
                "value": pressed["value"],
                "text": pressed["text"],
                "action_ts": "1764000000.000100",
            }
        ],
    }


def test_the_take_oncall_button_records_an_override_and_answers_who_is_on_call(
    served: FeedServer, tmp_path: Path
) -> None:
    store = Store(str(tmp_path / "state.db"))
    clock = Clock(at("2026-10-20T12:00:00+00:00"))
    oncall = schedules(served.url, clock, store)
    assert oncall.feeds.refresh("video")
    overrides = {"team": "video", "source": "slack"}
    before = REGISTRY.get_sample_value("watchdog_oncall_overrides_total", overrides) or 0
    allowed = ["UALICE1", "U0STRANGER"]
    with slack_and_socket(store, clock, oncall, ack_allowed=allowed) as (slack, socket):
        command = {"command": "/watchdog", "channel_id": CHANNEL_ID, "user_id": "UALICE1"}
        answer = socket.send("slash_commands", {**command, "text": "oncall"})["payload"]
        assert block_problems(answer["blocks"]) == []  # slack-sdk's models accept them
        [block] = answer["blocks"]
        assert block["accessory"]["text"]["text"] == "🙋 Take on-call"
        assert "*video*: Bob until 2026-10-26T08:00:00.000Z" in block["text"]["text"]

        socket.send("interactive", take_click(slack, answer, "video", "UALICE1"))
        [taken] = slack.responses
        assert taken["replace_original"] is True  # the answer now says who is on call
        head, line = (b["text"]["text"] for b in taken["blocks"])
        assert head == "✅ Alice is on call for video until 2026-10-26T08:00:00.000Z."
        assert line.startswith("*video*: <@UALICE1> until 2026-10-26T08:00:00.000Z (override)")
        assert who(oncall.now("video", clock.now)) == "Alice"

        socket.send("interactive", take_click(slack, answer, "video", "U0STRANGER"))
        assert slack.responses[-1]["blocks"][0]["text"]["text"] == (
            "⚠️ You are not one of team video's people (slack_user in the config)."
        )
        socket.send("interactive", take_click(slack, answer, "video", "U0MALLORY"))
        assert slack.responses[-1]["text"].startswith("🚫 You are not allowed")
        assert slack.violations == []
    taken_by = [(e.action, e.actor, e.source) for e in store.silences.audit()]
    store.close()
    assert taken_by == [("oncall-override", "ualice1 (UALICE1)", "slack")]  # one, by the click
    assert REGISTRY.get_sample_value("watchdog_oncall_overrides_total", overrides) == before + 1


def test_the_running_daemon_refreshes_a_calendar_feed_on_its_refresh_interval(
    served: FeedServer, tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """``videosdk-watchdog run``'s own job fetches the feed again: ``status`` (which fetches
    nothing) shows the person of the new copy."""
    now = datetime.now(UTC).replace(microsecond=0)
    hours = (now - timedelta(hours=1), now + timedelta(hours=8))
    served.body = shift_feed("Alice", *hours)
    teams = {"video": {"calendar": served.url, "people": PEOPLE, "refresh": "1s"}}
    path = daemon_config(tmp_path, sim.url, [], POOR_VIDEO, oncall={"teams": teams})

    def on_call() -> str | None:
        assert main(["status", "--json", "--config", str(path)]) == 0
        [team] = json.loads(capsys.readouterr().out)["oncall"]
        return None if team["now"] is None else str(team["now"]["person"])

    def wait_for(person: str) -> None:
        deadline = time.monotonic() + 8
        while on_call() != person:
            assert time.monotonic() < deadline, f"{person} never shown on call"
            time.sleep(0.1)

    daemon = Daemon(["run", "--config", str(path)])
    try:
        daemon.wait_for(r"watching 0 participants", stream="err")
        wait_for("Alice")
        fetched = served.requests
        served.body = shift_feed("Bob", *hours)  # the calendar changes between fetches
        wait_for("Bob")
        assert served.requests > fetched
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "s3cr3t" not in daemon.all_output()  # the feed's URL carries a token
