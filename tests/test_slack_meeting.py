"""One living Slack message per meeting (``group_by: [meeting_id]``), against the Slack-like
server on loopback (every message checked with slack-sdk's Block Kit models and Slack's
limits) and the real alert manager over a SQLite state file. Time is a shifted clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import watchdog_slack
import yaml

from watchdog.alerting.actions import StoreActions
from watchdog.alerting.manager import AlertingConfig, AlertManager, policy_for
from watchdog.alerts import MEETING_VIEW, Alert, Notification
from watchdog.config.settings import AlertingSettings, NotifierOptions, load_config
from watchdog.delivery.host import PluginHost
from watchdog.notifiers import Notifier
from watchdog.runtime.build import build
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord
from watchdog.testing import (
    PluginTestHost,
    free_port,
    make_alert,
    make_notification,
    make_report,
    resolved,
)

from .conftest import write_config
from .helpers import record_alerts, video_series
from .slackapi import TOKEN, FakeSlack, Message

MEETING = "abcd-efgh-ijkl"
BASE = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
POLL = timedelta(seconds=30)


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_slack, "slack")
    return notifier_host


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


def slack_config(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    return {
        "type": "slack",
        "token": TOKEN,
        "channel": "#alerts",
        "base_url": slack.api_url,
        "charts": False,
        **extra,
    }


def person(n: int, *, start: float = 0, name: str | None = None, **kw: Any) -> Alert:
    return make_alert(
        participant_id=f"p{n}",
        participant_name=name or f"Person {n}",
        starts_at=BASE + timedelta(seconds=start),
        **kw,
    )


def view(*alerts: Alert, thread: str = "meeting-thread", **kw: Any) -> Notification:
    return replace(make_notification(*alerts, thread=thread, group_by=MEETING_VIEW), **kw)


def text_of(message: Message) -> str:
    return json.dumps(message.attachments, ensure_ascii=False)


class Clock:
    """Wall-clock time shifted on demand: the store stamps changes with the real clock."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift

    def advance(self, delta: timedelta) -> None:
        self.shift += delta


class Instance:
    """One daemon's part in this: the state database, the alert manager with the meeting
    view's defaults (one notification a poll cycle), and the Slack notifier over them."""

    def __init__(self, db: str, config: dict[str, Any], clock: Clock) -> None:
        self.store = Store(db)
        base = AlertingSettings(group_by=["meeting_id"])
        policy = policy_for(base, NotifierOptions(), POLL)
        self.manager = AlertManager(
            self.store.alert_log,
            self.store.silences,
            AlertingConfig(policies={"oncall": policy}),
            clock=clock,
            watching_in=self.store.watchlist.watching_in,
        )
        host = PluginHost()
        host.add(watchdog_slack, "slack")
        built = host.build({"oncall": config}, self.store.notifier_memory.for_notifier)
        self.notifier: Notifier = built["oncall"]

    def watch(self, *participants: int, meeting: str = MEETING) -> None:
        now = datetime.now(UTC)
        self.store.watchlist.save(
            WatchRecord("sess-1", f"p{n}", meeting, None, "discovery", "watching", now)
            for n in participants
        )

    def left(self, *participants: int) -> None:
        self.store.watchlist.delete(("sess-1", f"p{n}") for n in participants)

    def record(self, *alerts: Alert) -> None:
        record_alerts(self.store, [(a, ("oncall",)) for a in alerts])

    def deliver(self) -> list[Notification]:
        self.manager.flush()
        sent = []
        for entry in self.store.outbox.entries():
            self.notifier.send(entry.notification)
            self.store.outbox.delivered(entry.id)
            sent.append(entry.notification)
        return sent

    def close(self) -> None:
        self.store.close()


def test_a_meeting_is_one_message_edited_as_people_go_bad_and_recover(
    slack: FakeSlack, db: str
) -> None:
    clock = Clock()
    room = Instance(db, slack_config(slack, mentions={"warning": "<!here>"}), clock)
    room.watch(*range(12))
    room.record(person(1))
    (first,) = room.deliver()
    (message,) = slack.top_level()
    assert message.text == (
        "<!here> 🟠 DEGRADED meeting abcd-efgh-ijkl: 1 of 12 watched participants affected "
        "(poor-video)"
    )
    shown = text_of(message)
    for fact in (
        "🟠 DEGRADED · meeting abcd-efgh-ijkl",
        "*Affected*\\n1 of 12 watched",
        "*Person 1*",
    ):
        assert fact in shown, fact
    assert slack.replies(message.ts) == []  # the message says it all

    clock.advance(timedelta(seconds=5))  # two more go bad in the same poll cycle
    room.record(person(2, severity="critical", value=1.2), person(3, start=5))
    assert room.deliver() == []  # held: the meeting's message was drawn this cycle
    clock.advance(POLL)
    (update,) = room.deliver()
    assert update.thread == first.thread
    assert len(slack.top_level()) == 1
    assert len(message.edits) == 1
    assert message.text.startswith("🔴 DEGRADED meeting abcd-efgh-ijkl: 3 of 12 watched")
    shown = text_of(message)
    assert shown.index("*Person 2*") < shown.index("*Person 1*")  # the worst first
    assert "`qualityScore.video = 1.2 (threshold &lt; 3)`" in shown
    (reply,) = slack.replies(message.ts)
    assert reply.text.startswith("🔴 *2 new alerts* · now 3 of 12 watched participants affected")
    assert "*Person 3* (`p3`)" in reply.text
    assert "<!here>" not in reply.text  # mentions only on the first firing
    assert not reply.broadcast

    clock.advance(POLL)
    room.record(resolved(person(1)))
    room.deliver()
    assert message.text.startswith("🔴 DEGRADED meeting abcd-efgh-ijkl: 2 of 12 watched")
    back = slack.replies(message.ts)[-1]
    assert back.text.startswith("🔴 *1 resolved* · now 2 of 12 watched participants affected")
    assert "✅ *Person 1* (`p1`) *poor-video* `qualityScore.video` back to 4.2" in back.text

    clock.advance(POLL)
    room.left(*range(12))  # the session ended: everyone is gone
    room.record(*(resolved(person(n), reason="the session ended") for n in (2, 3)))
    room.deliver()
    assert len(slack.top_level()) == 1
    assert message.text == "✅ OVER meeting abcd-efgh-ijkl: the session ended, after 6m"
    assert message.attachments[0]["color"] == "#2EB67D"
    shown = text_of(message)
    assert "🏁 *Over*: the session ended, after 6m" in shown
    assert "*Lasted*\\n6m, until <!date^" in shown
    assert "*Affected*\\nat most 3 participants" in shown
    over = slack.replies(message.ts)[-1]
    assert over.text.startswith("🏁 *Over* after 6m: the session ended")
    assert not any(m.broadcast for m in slack.messages.values())
    assert room.store.notifier_memory.get("oncall", first.thread) is None
    room.close()


def test_a_flapping_meeting_is_edited_once_a_poll_cycle(slack: FakeSlack, db: str) -> None:
    """Forty people flapping, found by several flushes a cycle: one edit and one reply a
    cycle, whoever changed."""
    clock = Clock()
    room = Instance(db, slack_config(slack), clock)
    room.watch(*range(40))
    starts: dict[int, float] = {}
    calls_per_cycle = []
    for cycle in range(6):
        before = len(slack.receiver.requests)
        for flush in range(4):  # the cycle's polls find their alerts over several flushes
            changed = []
            for n in range(flush * 10, flush * 10 + 10):
                firing = (cycle + n) % 2 == 0
                if firing:
                    starts[n] = cycle * 30 + flush
                    changed.append(person(n, start=starts[n]))
                elif n in starts:
                    changed.append(resolved(person(n, start=starts[n])))
            room.record(*changed)
            room.deliver()
            clock.advance(timedelta(seconds=2))
        clock.advance(POLL - timedelta(seconds=8))
        calls_per_cycle.append([r.path for r in slack.receiver.requests[before:]])
    (message,) = slack.top_level()
    for calls in calls_per_cycle[1:]:
        assert calls.count("/api/chat.update") == 1, calls
        assert calls.count("/api/chat.postMessage") == 1, calls
    assert calls_per_cycle[0].count("/api/chat.postMessage") == 1  # the message itself
    assert len(message.edits) == 5
    assert message.text.endswith("20 of 40 watched participants affected (poor-video)")
    room.close()


def test_another_instance_and_a_restart_keep_one_message_and_its_thread(
    slack: FakeSlack, state_url: str
) -> None:
    """The message's reference lives in the state database (SQLite, or PostgreSQL shared by
    several instances): the instance that takes over edits the same message, and a
    restarted one neither posts again nor loses the thread."""
    alice, bob = person(1), person(2)
    steps = [
        view(alice, watched=4),
        view(alice, bob, watched=4),
        view(resolved(alice), bob, watched=4),
        view(resolved(bob), watched=4),
    ]
    for notification in steps:  # the first instance, two taking over, a restarted one
        instance = Instance(state_url, slack_config(slack), Clock())  # another process each
        state = instance.store.notifier_memory.get("oncall", "meeting-thread")
        assert (state is None) == (notification is steps[0])
        instance.notifier.send(notification)
        instance.close()
    (message,) = slack.top_level()
    assert len(message.edits) == 3
    assert message.text.startswith("✅ OVER meeting abcd-efgh-ijkl: everyone recovered")
    replies = slack.replies(message.ts)
    assert [r.text.split(" · ")[0].split(" after")[0] for r in replies] == [
        "🟠 *1 new alert*",
        "🟠 *1 resolved*",
        "🏁 *Over*",
    ]


def test_the_same_notification_retried_tells_its_changes_once_more_not_more(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    """The core retries a notification whose send failed half-way: the thread gets its
    reply again at most, and the next notification's reply is still right."""
    notifier = host.build(slack_config(slack))
    first, second = view(person(1)), view(person(1), person(2))
    notifier.send(first)
    notifier.send(second)
    notifier.send(second)  # delivered, but the outbox did not learn it: sent again
    notifier.send(view(person(1), person(2), person(3)))
    (message,) = slack.top_level()
    texts = [r.text.split("\n")[1] for r in slack.replies(message.ts)]
    assert texts == [
        "🟠 *Person 2* (`p2`) *poor-video* `qualityScore.video = 2.41 (threshold &lt; 3)`",
        "🟠 *Person 2* (`p2`) *poor-video* `qualityScore.video = 2.41 (threshold &lt; 3)`",
        "🟠 *Person 3* (`p3`) *poor-video* `qualityScore.video = 2.41 (threshold &lt; 3)`",
    ]


def test_mentions_on_the_first_firing_and_when_a_notification_asks(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    """Escalation (a later step) asks for attention again with ``mention``: the thread reply
    then carries the configured mentions; nothing else in the thread does."""
    notifier = host.build(slack_config(slack, mentions={"critical": "<!subteam^S0ONCALL>"}))
    critical = person(1, severity="critical")
    notifier.send(view(critical))
    notifier.send(view(critical, person(2)))
    notifier.send(view(critical, person(2), person(3), mention=True))
    (message,) = slack.top_level()
    assert message.text.startswith("🔴 DEGRADED")  # edits do not mention
    assert message.edits[0]["text"].startswith("<!subteam^S0ONCALL> 🔴 DEGRADED")  # as posted
    quiet, asked = slack.replies(message.ts)
    assert "<!subteam" not in quiet.text
    assert asked.text.startswith("<!subteam^S0ONCALL> 🔴 *1 new alert*")
    assert not asked.broadcast


def test_the_latest_chart_is_in_the_message_and_redrawn_at_most_every_five_minutes(
    slack: FakeSlack, db: str
) -> None:
    instance = Instance(db, slack_config(slack, charts=True), Clock())
    curve = [4.1, 3.8, 3.3, 2.9, 2.4]
    alice = person(1, values=curve)
    worse = person(2, values=curve, severity="critical", value=1.5)
    instance.notifier.send(view(alice, created_at=BASE))
    (message,) = slack.top_level()
    (chart,) = slack.completed_uploads()
    assert chart.thread_ts == message.ts  # in the thread, not the channel
    assert chart.data.startswith(b"\x89PNG")
    assert slack.image_files(message) == [chart.file_id]  # and shown in the message

    soon = BASE + timedelta(minutes=2)
    instance.notifier.send(view(alice, worse, created_at=soon))
    assert len(slack.completed_uploads()) == 1  # Person 2 is worse, but a chart is recent
    assert slack.image_files(message) == [chart.file_id]

    later = BASE + timedelta(minutes=6)
    instance.notifier.send(view(alice, worse, created_at=later))
    newer = slack.completed_uploads()[-1]
    assert newer.title == "poor-video: qualityScore.video · Person 2"
    assert slack.image_files(message) == [newer.file_id]
    instance.close()


def test_a_deleted_message_is_posted_again_with_the_meeting_as_it_is(
    slack: FakeSlack, db: str
) -> None:
    instance = Instance(db, slack_config(slack), Clock())
    instance.notifier.send(view(person(1), watched=3))
    (gone,) = slack.top_level()
    del slack.messages[gone.ts]  # someone deleted it
    instance.notifier.send(view(person(1), person(2), watched=3))
    (fresh,) = slack.top_level()
    assert fresh.text.startswith("🟠 DEGRADED meeting abcd-efgh-ijkl: 2 of 3 watched")
    instance.notifier.send(view(resolved(person(1)), person(2), watched=3))
    assert fresh.text.startswith("🟠 DEGRADED meeting abcd-efgh-ijkl: 1 of 3 watched")
    assert len(slack.replies(fresh.ts)) == 1
    instance.close()


NAMES = "Participant {n:03d} of the all-hands of <Sales & Marketing> in EMEA 🎥👩🏽‍💻"


def test_two_hundred_participants_with_buttons_stay_within_slacks_limits(
    slack: FakeSlack, db: str
) -> None:
    store = Store(db)
    host = PluginHost()
    host.add(watchdog_slack, "slack")
    config = slack_config(
        slack,
        signing_secret="8f742231b10e8888abcd99yyyzzz85a5",
        interactivity_listen=f"127.0.0.1:{free_port()}",
    )
    notifier = host.build(
        {"oncall": config},
        store.notifier_memory.for_notifier,
        actions=StoreActions(store.silences, store.alert_log, store.watchlist),
    )["oncall"]
    rtt: dict[str, Any] = {
        "rule": "high-rtt",
        "metric": "averageVideoRtt",
        "op": ">",
        "threshold": 300.0,
    }
    people = [person(n, name=NAMES.format(n=n)) for n in range(200)]
    people += [person(n, name=NAMES.format(n=n), value=900.0, **rtt) for n in range(0, 200, 2)]
    notifier.send(view(*people, watched=240))
    (message,) = slack.top_level()  # and the server found nothing Slack would refuse
    blocks = message.attachments[0]["blocks"]
    assert len(blocks) <= 50
    shown = text_of(message)
    assert "200 of 240 watched participants" in shown
    assert "…and 180 more affected participants" in shown
    assert "(+1 more)" in shown  # a participant with two alerts shows the worst one
    assert blocks[-1]["type"] == "actions"  # buttons for the worst few
    assert "&lt;Sales &amp; Marketing&gt;" in shown

    flipped = [resolved(a) for a in people[:200]] + [person(n, start=60) for n in range(200, 400)]
    notifier.send(view(*flipped, *people[200:], watched=400))
    (reply,) = slack.replies(message.ts)
    assert reply.text.startswith("🟠 *200 new alerts, 200 resolved* · now 300 of 400 watched")
    assert reply.text.endswith("…and 380 more")
    assert len(message.edits) == 1
    store.close()


def test_the_daemon_tells_how_many_of_the_meeting_it_watches(
    tmp_path: Path, sim: Simulator, slack: FakeSlack
) -> None:
    """End to end through the daemon's poll cycle: the simulator's meeting of four, two of
    them with poor video, is one Slack message saying 2 of 4 watched are affected."""
    people = [("s-1", f"p{n}") for n in range(4)]
    for n, (session, participant) in enumerate(people):
        score = 2.0 if n < 2 else 4.4
        samples = video_series([(t, score) for t in range(0, 60, 10)])
        sim.add_participant(session, participant, samples=samples, meeting_id=MEETING)
    path = write_config(tmp_path, sim.url, people, RULE_NOW)
    data = yaml.safe_load(path.read_text())
    data["notifiers"] = {"oncall": {**slack_config(slack), "group_by": ["meeting_id"]}}
    path.write_text(yaml.safe_dump(data))
    sim.advance(60)
    runtime = build(load_config(str(path)))
    try:
        runtime.cycle()
        assert runtime.dispatcher.drain(10) == 0
    finally:
        runtime.close()
    (message,) = slack.top_level()
    assert message.text.startswith(
        "🟠 DEGRADED meeting abcd-efgh-ijkl: 2 of 4 watched participants affected"
    )


RULE_NOW = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: warning
"""


def test_a_meetings_thread_record_lives_until_its_report_or_the_retention(
    host: PluginTestHost, slack: FakeSlack
) -> None:
    """The meeting's latest message is remembered for the call report, which replies in
    its thread and forgets it; a meeting whose report never comes (``report: {when:
    never}``) is forgotten once older than ``history.retention`` (here the next write)."""
    bot = host.build(slack_config(slack))
    state = host.states["test"]
    one = person(1, meeting_id="room-1")
    bot.send(view(one, thread="room-1"))
    bot.send(view(resolved(one, reason="the session ended"), thread="room-1"))
    bot.send(view(person(2, meeting_id="room-2"), thread="room-2"))
    kept = state.get("meeting-thread:room-1")  # over, its report not yet sent: kept
    assert kept is not None
    bot.send(make_report("call", meeting_id="room-1"))
    (first, _) = slack.top_level()
    assert kept["ts"] == first.ts
    assert [r.text for r in slack.replies(first.ts) if "Call report" in r.text]
    assert state.get("meeting-thread:room-1") is None  # told: forgotten
    assert state.get("meeting-thread:room-2") is not None

    host.retention = timedelta(0)  # every record older than the history: none kept
    never = host.build(slack_config(slack), name="never")
    never.send(view(person(3, meeting_id="room-3"), thread="room-3"))
    assert host.states["never"].get("meeting-thread:room-3") is not None
    never.send(view(person(4, meeting_id="room-4"), thread="room-4"))
    assert host.states["never"].get("meeting-thread:room-3") is None
    assert host.states["never"].get("meeting-thread:room-4") is not None
    assert host.states["never"].get("room-4") is not None  # the firing meeting's own record
    assert not slack.violations
