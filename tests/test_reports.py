"""A report after every call and the daily digest (issue 20), end to end.

The daemon runs in-process against the simulator on its manual clock: a call where
Alice's video degrades ends (the session ends, discovery learns it), and the report
reaches the Slack-like server in the meeting view's thread (with the chart of the call)
and the webhook receiver as its documented JSON, once. With two instances on
PostgreSQL racing to write it, it is still written once. The digest goes out at its
local hour on an injected clock, once per day across restarts.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import watchdog_slack
from watchdog_slack.limits import MESSAGE_BLOCKS, MESSAGE_TEXT, SECTION_TEXT

from watchdog.alerting.callreport import sides
from watchdog.alerting.digest import DAY, Day, digest
from watchdog.alerting.noise import RuleNoise
from watchdog.alerting.reports import Reporter, ReportingConfig, digest_due
from watchdog.alerts import Notification
from watchdog.config.history import DigestSettings
from watchdog.config.settings import Config
from watchdog.runtime.build import Runtime, build, reporting
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.testing import HttpReceiver, PluginTestHost, make_alert, make_report, resolved

from .helpers import record_alerts
from .slackapi import TOKEN, FakeSlack, units

MakeConfig = Callable[..., Config]
ROOM = "abcd-efgh-ijkl"


def _runtime(config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver, **kw: Any) -> Runtime:
    notifiers = {
        "oncall": {
            "type": "slack",
            "token": TOKEN,
            "channel": "#alerts",
            "base_url": slack.api_url,
            "group_by": ["meeting_id"],  # the meeting view: one living message per meeting
        },
        "incidents": {"type": "webhook", "url": hook.url + "/am"},
    }
    watch = {"rooms": [ROOM], "discovery_interval": "30s"}
    return build(config_for([], watch=watch, notifiers=notifiers, **kw))


def _reporter(runtime: Runtime, store: Store, now: Callable[[], datetime]) -> Reporter:
    """The runtime's reporter as the build makes it, on an injected clock."""
    settings = runtime.config.settings
    return Reporter(
        store.reports,
        store.minutes,
        store.history,
        store.silences,
        ReportingConfig.from_settings(settings, reporting(runtime.host)),
        sides=sides(runtime.rules),
        clock=now,
    )


def _deliver(runtime: Runtime) -> None:
    runtime.manager.flush()
    assert runtime.dispatcher.drain(10) == 0


def _call_that_ended(sim: Simulator, runtime: Runtime) -> None:
    """Alice's video degrades and fires; Bob stays fine; the session ends; the last
    polls, the departures and the minute summaries are written."""
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "alice", name="Alice", at=0, scenario="video-degradation")
    sim.join("sess-1", "bob", name="Bob", at=0, scenario="healthy")
    assert runtime.discovery is not None
    runtime.discovery.run()
    sim.advance(120)
    (firing,) = runtime.poller.cycle().transitions
    assert (firing.info.participant_id, firing.state) == ("alice", "firing")
    _deliver(runtime)
    sim.advance(60)
    runtime.poller.cycle()
    sim.end_session("sess-1")
    sim.advance(30)
    assert runtime.discovery.run().left == 2
    runtime.poller.cycle()  # the final polls; the departures record the session's end
    runtime.poller.cycle()  # writes the participants' last minute summaries
    _deliver(runtime)


def _reports(hook: HttpReceiver) -> list[dict[str, Any]]:
    out = []
    for request in hook.requests:
        if request.headers.get("x-watchdog-event") == "report":
            body = request.json()
            assert isinstance(body, dict)
            out.append(body)
    return out


def test_a_call_report_reaches_the_meeting_thread_and_the_webhook_once(
    sim: Simulator, config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    runtime = _runtime(config_for, slack, hook)
    later = datetime.now(UTC) + timedelta(minutes=1)  # past the settle time
    try:
        _call_that_ended(sim, runtime)
        reporter = _reporter(runtime, runtime.store, lambda: later)
        too_soon = _reporter(runtime, runtime.store, lambda: datetime.now(UTC) - timedelta(1))
        assert too_soon.run() == 0  # the last minutes may not be written yet: wait
        assert reporter.run() == 3  # the notifiers the alerts went to: slack, webhook, console
        assert runtime.dispatcher.drain(10) == 0
        assert reporter.run() == 0  # once
        assert _reporter(runtime, runtime.store, lambda: later).run() == 0  # a restart too
    finally:
        runtime.close()

    (meeting_message,) = slack.top_level()  # the meeting view's message
    replies = slack.replies(meeting_message.ts)
    (report,) = [r for r in replies if "Call report" in r.text]
    assert f"Call report: meeting {ROOM}" in report.text
    shown = json.dumps(report.attachments)
    assert "Alice (alice): " in shown
    assert "Bob (bob): 0 of " in shown
    assert "poor-video on alice" in shown
    charts = [u for u in slack.completed_uploads() if u.filename.startswith("report-")]
    assert [c.thread_ts for c in charts] == [meeting_message.ts]
    assert charts[0].data.startswith(b"\x89PNG")
    assert not slack.violations

    (body,) = _reports(hook)
    assert (body["version"], body["event"], body["kind"]) == ("1", "report", "call")
    assert (body["meeting_id"], body["session_id"]) == (ROOM, "sess-1")
    people = {p["participant_id"]: p for p in body["figures"]["participants"]}
    assert people["alice"]["degraded_minutes"] >= 1
    assert people["bob"]["degraded_minutes"] == 0
    assert people["alice"]["minutes"] >= people["alice"]["degraded_minutes"]
    (alert,) = body["figures"]["alerts"]
    assert (alert["rule"], alert["participant_id"]) == ("poor-video", "alice")
    assert alert["resolved"] is not None  # the session's end resolved it
    worst = {w["metric"]: w for w in body["figures"]["worst"]}
    assert worst["qualityScore.video"]["participant_id"] == "alice"
    assert worst["qualityScore.video"]["value"] < 3
    assert body["chart_metric"] == "qualityScore.video"
    assert {s["name"] for s in body["chart"]} == {"Alice", "Bob"}


def test_a_call_without_alerts_gets_a_report_only_when_always(
    sim: Simulator, config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    sim.add_room(ROOM, "support")
    sim.start_session(ROOM, "sess-1", at=0)
    sim.join("sess-1", "bob", name="Bob", at=0, scenario="healthy")
    history = {"report": {"when": "always", "notify": ["incidents"]}}
    runtime = _runtime(config_for, slack, hook, history=history)
    try:
        assert runtime.discovery is not None
        runtime.discovery.run()
        sim.advance(120)
        assert not runtime.poller.cycle().transitions
        sim.end_session("sess-1")
        sim.advance(30)
        runtime.discovery.run()
        runtime.poller.cycle()
        runtime.poller.cycle()
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert _reporter(runtime, runtime.store, lambda: later).run() == 1
        assert runtime.dispatcher.drain(10) == 0
    finally:
        runtime.close()
    (body,) = _reports(hook)
    assert body["figures"]["alerts"] == []
    assert [p["participant_id"] for p in body["figures"]["participants"]] == ["bob"]
    assert not slack.messages  # notify named the webhook alone


def test_two_instances_on_postgresql_write_the_report_once(
    sim: Simulator,
    config_for: MakeConfig,
    slack: FakeSlack,
    hook: HttpReceiver,
    postgres_url: str,
) -> None:
    runtime = _runtime(config_for, slack, hook, state={"url": postgres_url})
    other = Store(postgres_url)
    later = datetime.now(UTC) + timedelta(minutes=1)
    try:
        _call_that_ended(sim, runtime)
        reporters = [
            _reporter(runtime, runtime.store, lambda: later),
            _reporter(runtime, other, lambda: later),
        ]
        counts: list[int] = []
        start = threading.Barrier(2)

        def race(reporter: Reporter) -> None:
            start.wait(10)
            counts.append(reporter.run())

        threads = [threading.Thread(target=race, args=(r,)) for r in reporters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(counts) == [0, 3]
        assert runtime.dispatcher.drain(10) == 0
    finally:
        other.close()
        runtime.close()
    assert len(_reports(hook)) == 1


# -- the daily digest ---------------------------------------------------------------------

BERLIN_NINE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # 09:00 in Berlin (CET)


def _digests(store: Store) -> list[Notification]:
    return [e.notification for e in store.outbox.entries() if e.notification.event == "digest"]


def test_the_digest_goes_out_at_its_local_hour_once_a_day(
    config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    history = {"digest": {"at": "09:00", "time_zone": "Europe/Berlin", "notify": ["incidents"]}}
    runtime = _runtime(config_for, slack, hook, history=history)
    store = runtime.store
    # yesterday evening a noisy call: poor-video flapped on alice; the day before, once
    for start in (BERLIN_NINE - timedelta(hours=12), BERLIN_NINE - timedelta(hours=11)):
        fired = make_alert(
            meeting_id=ROOM,
            participant_id="alice",
            session_id="sess-1",
            starts_at=start,
            fired_at=start,
            sample_time=start,
        )
        record_alerts(store, [(fired, [])])
        record_alerts(store, [(resolved(fired, after=timedelta(minutes=10)), [])])
    earlier = BERLIN_NINE - timedelta(hours=30)
    old = make_alert(starts_at=earlier, fired_at=earlier, sample_time=earlier)
    record_alerts(store, [(old, []), (resolved(old, after=timedelta(minutes=1)), [])])

    now = [BERLIN_NINE - timedelta(minutes=1)]
    try:
        reporter = _reporter(runtime, store, lambda: now[0])
        assert reporter.run() == 0  # 08:59 in Berlin: not yet
        now[0] = BERLIN_NINE + timedelta(seconds=30)
        assert reporter.run() == 1
        assert reporter.run() == 0
        now[0] = BERLIN_NINE + timedelta(hours=5)  # a restart later that day: already sent
        assert _reporter(runtime, store, lambda: now[0]).run() == 0
        (digest,) = _digests(store)
        assert runtime.dispatcher.drain(10) == 0
        now[0] = BERLIN_NINE + timedelta(days=1)  # the next day's
        assert reporter.run() == 1
    finally:
        runtime.close()

    assert digest.report is not None
    figures = digest.report.figures
    assert (figures["fires"], figures["fires_day_before"]) == (2, 1)
    assert figures["degraded_minutes"] == 20
    assert figures["meetings"] == [{"meeting_id": ROOM, "degraded_minutes": 20}]
    (rule,) = figures["rules"]
    assert (rule["rule"], rule["fires"], rule["fires_day_before"]) == ("poor-video", 2, 1)
    assert rule["median_duration_seconds"] == 600
    (body,) = [r.json() for r in hook.requests if r.headers.get("x-watchdog-event") == "digest"]
    assert body["kind"] == "digest"
    assert "2 alerts fired" in body["title"]


def test_a_daemon_down_at_the_hour_sends_the_digest_when_back_that_day_only() -> None:
    settings = DigestSettings(at="09:00", time_zone="Europe/Berlin")
    assert digest_due(settings, BERLIN_NINE - timedelta(seconds=1)) is None
    assert digest_due(settings, BERLIN_NINE) == ("2026-11-24", BERLIN_NINE)
    back = BERLIN_NINE + timedelta(hours=14)  # 23:00 in Berlin: that day still
    assert digest_due(settings, back) == ("2026-11-24", BERLIN_NINE)
    # 00:30 the next day in Berlin: that day's digest is not due yet, the missed one is over
    assert digest_due(settings, BERLIN_NINE + timedelta(hours=15, minutes=30)) is None


def test_the_digest_reaches_slack_as_valid_blocks_with_its_figures(
    config_for: MakeConfig, slack: FakeSlack, hook: HttpReceiver
) -> None:
    """Through the reporter and the outbox to the Slack-like server, which checks every
    block with slack-sdk's models and Slack's limits."""
    history = {"digest": {"at": "09:00", "time_zone": "Europe/Berlin", "notify": ["oncall"]}}
    runtime = _runtime(config_for, slack, hook, history=history)
    for start in (BERLIN_NINE - timedelta(hours=12), BERLIN_NINE - timedelta(hours=11)):
        fired = make_alert(
            meeting_id=ROOM,
            participant_id="alice",
            starts_at=start,
            fired_at=start,
            sample_time=start,
        )
        record_alerts(runtime.store, [(fired, [])])
        record_alerts(runtime.store, [(resolved(fired, after=timedelta(minutes=10)), [])])
    try:
        reporter = _reporter(runtime, runtime.store, lambda: BERLIN_NINE + timedelta(minutes=1))
        assert reporter.run() == 1
        assert runtime.dispatcher.drain(10) == 0
    finally:
        runtime.close()
    assert not slack.violations
    (message,) = slack.top_level()  # in the channel, no thread
    assert "Daily digest" in message.text
    assert "2 alerts fired, 20 participant-minutes degraded" in message.text
    shown = json.dumps(message.attachments)
    assert "alerts fired: 2, +2 on the day before (0)" in shown
    assert f"most degraded meetings: {ROOM} (20 min)" in shown
    assert "poor-video: 2 fires" in shown
    assert not _reports(hook)  # notify named Slack alone


def test_a_long_digest_stays_within_slacks_limits(
    slack: FakeSlack, notifier_host: PluginTestHost
) -> None:
    """50 rules of 200-character names, 50 long meeting IDs: the lines fill as many
    sections as the 50 blocks allow, each within 3,000 characters; nothing is refused."""
    since = BERLIN_NINE - DAY
    noise = [
        RuleNoise(
            f"rule-{n:02d}-" + "x" * 192, 100 - n, 100 - n, timedelta(minutes=3), 0.5, 0.1, 0, 0
        )
        for n in range(50)
    ]
    degraded = {f"meeting-{n:02d}-" + "m" * 240: 60 - n for n in range(50)}
    causes = Counter({f"cause {n} " + "c" * 300: n + 1 for n in range(50)})
    today = Day(since, BERLIN_NINE, noise, degraded, causes)
    before = Day(since - DAY, since, noise[:10], {}, Counter())
    found = digest(today, before, top=50)
    assert len(found.text) > 20_000  # far more than one section or one message holds
    notifier_host.add(watchdog_slack, "slack")
    config = {"type": "slack", "token": TOKEN, "channel": "#alerts", "base_url": slack.api_url}
    notifier_host.build(config).send(replace(make_report("digest"), report=found))
    assert not slack.violations  # slack-sdk's models and the limits found nothing
    (message,) = slack.top_level()
    (attachment,) = message.attachments
    blocks = attachment["blocks"]
    assert len(blocks) <= MESSAGE_BLOCKS
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) > 1
    assert all(units(s) <= SECTION_TEXT for s in sections)
    shown = "\n".join(sections)
    assert "rule-00-" in shown  # every rule's line, none dropped
    assert "rule-49-" in shown
    assert units(message.text) <= MESSAGE_TEXT
