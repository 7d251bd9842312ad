"""The on-call loop end to end, in one process on an injected clock: an unacknowledged
alert climbs its ladder at the configured delays (a Slack-like Web API server, a Socket
Mode peer for the clicks, a webhook sink as the pager), acknowledging stops it, the
acknowledgement expires and the ladder resumes, resolving ends it; plus the CLI and
``check``'s view of the policy."""

from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import watchdog_slack
import yaml
from prometheus_client import REGISTRY

from watchdog.alerting.actions import StoreActions
from watchdog.alerting.escalation import EscalationConfig, Escalator, next_nine, snooze_until
from watchdog.alerting.manager import AlertingConfig, AlertManager
from watchdog.alerts import Alert, Notification
from watchdog.cli import acks
from watchdog.cli.main import main
from watchdog.config.settings import load_config
from watchdog.delivery.host import PluginHost
from watchdog.engine.evaluate import AlertState
from watchdog.notifiers import Notifier
from watchdog.runtime.build import acknowledging, make_schedules
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord
from watchdog.testing import make_alert, resolved

from .helpers import record_alerts
from .sinks import Sink, plugin_module
from .slackapi import APP_TOKEN, TOKEN, FakeSlack, Message
from .socketmode import FakeSocketMode
from .test_slack_actions import click_payload

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ALICE = "U0ONCALL1"  # clicks in the Slack tests are hers
BOB = "U0BOB0001"  # on call for team video


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def config_file(tmp_path: Path, slack: FakeSlack, pager_url: str) -> Path:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: poor-video, metric: qualityScore.video, op: '<', threshold: 3}\n"
    )
    data: dict[str, Any] = {
        "videosdk": {"api_key": "k", "secret_key": "s"},
        "rules": ["rules.yaml"],
        "state": {"url": str(tmp_path / "state.db")},
        "notifiers": {
            "slack": {
                "type": "slack",
                "token": TOKEN,
                "channel": "#alerts",
                "base_url": slack.api_url,
                "app_token": APP_TOKEN,
            },
            "pager": {"type": "sink", "url": pager_url, "send_acknowledged": True},
        },
        # bob is on call for the video team all week (Europe/Berlin, hand-over Monday 09:00)
        "oncall": {
            "teams": {
                "video": {
                    "people": {"bob": {"slack_user": BOB}},
                    "rotation": {
                        "people": ["bob"],
                        "start": "2026-11-23",
                        "handoff": "09:00",
                        "every": "7d",
                        "time_zone": "Europe/Berlin",
                    },
                }
            }
        },
        "alerting": {
            "group_by": ["..."],
            "ack_timeout": "30m",
            "time_zone": "America/New_York",
            "routes": [
                {
                    "match": ["alertname=poor-video"],
                    "notify": ["slack"],
                    "escalation": {
                        "steps": [
                            {"after": "5m", "mention": ["@group:S0VIDEO01"]},
                            {"after": "10m", "notify": ["pager"], "mention": ["oncall:video"]},
                            {"after": "30m", "from": "firing", "mention": [ALICE]},
                        ],
                        "repeat_last_every": "15m",
                    },
                }
            ],
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class OnCallDaemon:
    """The running daemon's alert manager, escalator and notifiers, flushed by hand."""

    def __init__(self, path: Path, clock: Clock, *plugins: tuple[object, str]) -> None:
        """``plugins``: (module, name) to load besides slack and the test sink."""
        self.config = load_config(str(path))
        self.store = Store(self.config.state_url)
        self.clock = clock
        host = PluginHost()
        for plugin, name in [(watchdog_slack, "slack"), (plugin_module(), "sink"), *plugins]:
            host.add(plugin, name)
        types = acknowledging(host)  # each type's send_acknowledged, as the daemon reads it
        escalation = EscalationConfig.from_settings(self.config.settings, types)
        oncall = make_schedules(self.config, self.store)
        self.actions = StoreActions(
            self.store.silences,
            self.store.alert_log,
            self.store.watchlist,
            clock,
            escalation=escalation,
            oncall=oncall,
        )
        self.notifiers: dict[str, Notifier] = host.build(
            self.config.settings.notifiers,
            self.store.notifier_memory.for_notifier,
            actions=self.actions,
        )
        self.manager = AlertManager(
            self.store.alert_log,
            self.store.silences,
            AlertingConfig.from_settings(self.config.settings, types),
            clock=clock,
            escalator=Escalator(self.store.escalations, self.store.silences, oncall=oncall),
        )
        for notifier in self.notifiers.values():
            if hasattr(notifier, "start"):
                notifier.start()

    def deliver(self) -> list[Notification]:
        self.manager.flush(final=True)  # the clock is not the alert log's: no group_wait
        sent = []
        for entry in self.store.outbox.entries():
            self.notifiers[entry.notifier].send(entry.notification)
            self.store.outbox.delivered(entry.id)
            sent.append(entry.notification)
        return sent

    def close(self) -> None:
        for notifier in self.notifiers.values():
            if hasattr(notifier, "close"):
                notifier.close()
        self.store.close()


def counts() -> Counter[str]:
    """/metrics' escalation counters of the route the tests use, and ack expiries."""
    found: Counter[str] = Counter()
    for outcome in ("mentioned", "notified", "passed_over"):
        labels = {"route": "alerting.routes[0]", "outcome": outcome}
        found[outcome] = int(
            REGISTRY.get_sample_value("watchdog_escalation_steps_total", labels) or 0
        )
    found["ack_expiries"] = int(REGISTRY.get_sample_value("watchdog_ack_expiries_total") or 0)
    return found


def alert() -> Alert:
    return make_alert(starts_at=NOW - timedelta(minutes=1))


def thread_texts(slack: FakeSlack, original: Message) -> list[str]:
    return [m.text for m in sorted(slack.replies(original.ts), key=lambda m: float(m.ts))]


def test_a_ladder_climbs_stops_when_acknowledged_resumes_when_it_expires_and_ends_on_resolve(
    tmp_path: Path, slack: FakeSlack
) -> None:
    clock = Clock()
    before = counts()
    with Sink() as pager, FakeSocketMode() as socket:
        slack.socket_url = socket.url
        daemon = OnCallDaemon(config_file(tmp_path, slack, pager.url), clock)
        try:
            record_alerts(daemon.store, [(alert(), [])])
            [first] = daemon.deliver()
            assert first.notifier == "slack"
            [original] = slack.top_level()

            clock.advance(minutes=4, seconds=59)
            assert daemon.deliver() == []  # not yet: 5m after the first notification
            clock.advance(seconds=1)
            [step1] = daemon.deliver()
            assert step1.mentions == ("S0VIDEO01",)
            [reply] = thread_texts(slack, original)
            assert reply.startswith("<!subteam^S0VIDEO01> 📣 *escalation step 1: unacknowledged")

            clock.advance(minutes=10)
            step2 = daemon.deliver()
            assert {n.notifier for n in step2} == {"slack", "pager"}
            assert "<@U0BOB0001>" in thread_texts(slack, original)[-1]  # on call for video
            [paged] = pager.received
            assert paged["status"] == "firing"
            assert paged["reason"].startswith("escalated (step 2)")

            # Alice acknowledges over Socket Mode: the pager hears it, the ladder stops
            socket.send("interactive", click_payload(slack, original, "watchdog_ack"))
            assert "expires" in json.dumps(original.attachments)  # ack_timeout: 30m
            notices = daemon.deliver()
            assert [(n.notifier, n.event) for n in notices] == [("pager", "acknowledged")]
            assert notices[0].actor == f"alice ({ALICE})"
            clock.advance(minutes=29)
            assert daemon.deliver() == []  # step 3 was due at 30m of the ladder: paused

            clock.advance(minutes=1)  # 30m after the acknowledgement, still firing
            expired = daemon.deliver()
            assert {(n.notifier, n.event) for n in expired} == {
                ("slack", "alert"),
                ("pager", "unacknowledged"),
            }
            assert thread_texts(slack, original)[-1].startswith(
                f"<@{ALICE}> 📣 *still firing; acknowledgement by alice ({ALICE}) expired after 30m"
            )
            assert daemon.store.silences.acks() == []
            assert daemon.store.silences.audit(limit=1)[0].action == "ack-expired"

            # resumed where it stopped: step 3 had 15m left (30m from firing, 15m run)
            clock.advance(minutes=14, seconds=59)
            assert daemon.deliver() == []
            clock.advance(seconds=1)
            [step3] = daemon.deliver()
            assert step3.mentions == (ALICE,)
            rows = acks.escalations(daemon.config, daemon.store, clock.now)
            assert [s["step"] for s in rows[0]["steps"]] == [1, 2, 3]
            assert rows[0]["next"]["in"] == "15m"  # repeat_last_every
            clock.advance(minutes=15)
            [again] = daemon.deliver()
            assert "step 3 (repeat 1)" in again.reason
            assert daemon.deliver() == []  # each step once, however often it flushes

            # Take it, then give it back: each change of owner is told to the pager
            [original] = slack.top_level()
            socket.send("interactive", click_payload(slack, original, "watchdog_take"))
            assert "Acknowledged by <@U0ONCALL1>" in json.dumps(original.attachments)
            clock.advance(seconds=1)
            assert [(n.event, n.actor) for n in daemon.deliver()] == [
                ("acknowledged", f"alice ({ALICE})")
            ]
            socket.send("interactive", click_payload(slack, original, "watchdog_unack"))
            clock.advance(seconds=1)
            assert [(n.event, n.actor) for n in daemon.deliver()] == [
                ("unacknowledged", f"alice ({ALICE})")
            ]
            clock.advance(minutes=15)  # given back: the ladder goes on, less the 2 s owned
            [again] = daemon.deliver()
            assert "step 3 (repeat 2)" in again.reason

            # resolving ends the ladder: Slack and the paged pager hear it
            record_alerts(daemon.store, [(resolved(alert(), timedelta(hours=2)), [])])
            clock.advance(seconds=1)
            done = daemon.deliver()
            assert {(n.notifier, n.status) for n in done} == {
                ("slack", "resolved"),
                ("pager", "resolved"),
            }
            assert daemon.store.escalations.ladders() == {}
            clock.advance(hours=1)
            assert daemon.deliver() == []
        finally:
            daemon.close()
    # steps 1 and 3 and its two repeats mentioned, step 2 paged; one acknowledgement expired
    assert counts() - before == Counter(mentioned=4, notified=1, ack_expiries=1)


def test_snooze_silences_until_the_teams_next_0900_and_resolutions_still_go_out(
    tmp_path: Path, slack: FakeSlack
) -> None:
    """The team's shift is in Berlin: 09:00 there, though ``alerting.time_zone`` is New
    York; the resolution of the snoozed and acknowledged alert reaches Slack
    (alertmanager#226)."""
    clock = Clock()
    with Sink() as pager, FakeSocketMode() as socket:
        slack.socket_url = socket.url
        daemon = OnCallDaemon(config_file(tmp_path, slack, pager.url), clock)
        try:
            record_alerts(daemon.store, [(alert(), [])])
            daemon.deliver()
            [original] = slack.top_level()
            socket.send("interactive", click_payload(slack, original, "watchdog_snooze"))
            [silence] = daemon.store.silences.active(clock.now)
            assert silence.ends_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # 09:00 CET
            clock.advance(minutes=20)
            assert daemon.deliver() == []  # the ladder waits while it is silenced
            assert daemon.store.escalations.ladders()[alert().fingerprint].paused_at
            socket.send("interactive", click_payload(slack, original, "watchdog_ack"))
            assert daemon.deliver() == []  # acknowledged and snoozed: nothing more

            record_alerts(daemon.store, [(resolved(alert()), [])])
            [done] = daemon.deliver()
            assert (done.notifier, done.status) == ("slack", "resolved")
            assert "RESOLVED" in json.dumps(original.attachments)
        finally:
            daemon.close()


def test_the_next_0900_across_daylight_saving_changes() -> None:
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    # Berlin leaves summer time on 25 Oct 2026 at 03:00: 09:00 is 08:00 UTC after it
    assert next_nine(datetime(2026, 10, 24, 22, 0, tzinfo=UTC), berlin) == datetime(
        2026, 10, 25, 8, 0, tzinfo=UTC
    )
    assert next_nine(datetime(2026, 10, 24, 6, 0, tzinfo=UTC), berlin) == datetime(
        2026, 10, 24, 7, 0, tzinfo=UTC
    )
    # New York enters summer time on 8 Mar 2026: 09:00 EDT is 13:00 UTC
    assert next_nine(datetime(2026, 3, 8, 1, 0, tzinfo=UTC), new_york) == datetime(
        2026, 3, 8, 13, 0, tzinfo=UTC
    )
    # at 09:00 sharp, the next one is tomorrow's
    assert next_nine(datetime(2026, 3, 9, 13, 0, tzinfo=UTC), new_york) == datetime(
        2026, 3, 10, 13, 0, tzinfo=UTC
    )
    config = EscalationConfig(time_zone="America/New_York")
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert snooze_until({}, config, None, at) == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def test_a_step_outside_its_time_intervals_is_passed_over_and_the_ladder_goes_on(
    tmp_path: Path, slack: FakeSlack
) -> None:
    clock = Clock()
    before = counts()
    with Sink() as pager:
        path = config_file(tmp_path, slack, pager.url)
        data = yaml.safe_load(path.read_text())
        route = data["alerting"]["routes"][0]
        route["escalation"] = {
            "steps": [
                {"after": "1m", "notify": ["pager"], "active_time_intervals": ["out-of-hours"]},
                {"after": "1m", "mention": [ALICE]},
            ]
        }
        # a window that is never open: the step falls due outside it
        data["time_intervals"] = [{"name": "out-of-hours", "time_intervals": [{"years": ["2001"]}]}]
        path.write_text(yaml.safe_dump(data))
        daemon = OnCallDaemon(path, clock)
        try:
            record_alerts(daemon.store, [(alert(), [])])
            daemon.deliver()
            clock.advance(minutes=1)
            assert daemon.deliver() == []
            assert pager.received == []
            clock.advance(minutes=1)
            [mention] = daemon.deliver()
            assert mention.mentions == (ALICE,)
            [row] = acks.escalations(daemon.config, daemon.store, clock.now)
            assert [s["outcome"] for s in row["steps"]] == [
                "passed over: outside out-of-hours",
                f"mentioned {ALICE} via slack",
            ]
            assert row["next"] is None
        finally:
            daemon.close()
    assert counts() - before == Counter(passed_over=1, mentioned=1)


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _cli(path: Path, *args: str) -> Ran:
    """The command as an operator runs it, in this process (a new interpreter per
    command would cost seconds each)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*args, "--config", str(path)])
    return Ran(code, out.getvalue(), err.getvalue())


def test_ack_unack_and_escalations_from_the_cli_by_fingerprint_prefix(
    tmp_path: Path, slack: FakeSlack
) -> None:
    clock = Clock()
    path = config_file(tmp_path, slack, "http://127.0.0.1:9/unused")
    daemon = OnCallDaemon(path, clock)
    try:  # a watched participant whose alert fires, as a poll leaves them
        key = ("sess-1", "part-1")
        daemon.store.watchlist.save(
            [WatchRecord(*key, "abcd-efgh-ijkl", "Alice", "static", "watching", NOW)]
        )
        firing = AlertState("firing", NOW, 2.41, fired_at=NOW)
        daemon.store.polls.commit_poll(key, NOW, {"poor-video": firing}, ["poor-video"])
        record_alerts(daemon.store, [(alert(), [])])
        daemon.manager.flush(final=True)
    finally:
        daemon.close()
    fp = alert().fingerprint
    listed = _cli(path, "escalations", "--json")
    [row] = json.loads(listed.stdout)
    assert (row["fingerprint"], row["route"], row["steps"]) == (fp, "alerting.routes[0]", [])
    assert row["next"]["does"] == "mention @group:S0VIDEO01"

    assert _cli(path, "ack", fp[:3], "--by", "bob").returncode == 2  # too short
    done = _cli(path, "ack", fp[:6], "--by", "bob", "--note", "restarting the SFU")
    assert done.returncode == 0, done.stderr
    assert "Acknowledged" in done.stdout
    again = _cli(path, "ack", fp[:6], "--by", "carol")
    assert again.returncode == 1
    assert "Already acknowledged by bob" in again.stdout
    status = _cli(path, "status").stdout
    assert "acknowledged by bob (cli) at" in status
    assert "until" in status
    assert "(restarting the SFU)" in status
    assert "acked by bob" in _cli(path, "escalations").stdout

    assert _cli(path, "unack", fp[:6], "--by", "bob").returncode == 0
    assert _cli(path, "unack", fp[:6], "--by", "bob").returncode == 1  # nobody has it
    assert "acknowledged by" not in _cli(path, "status").stdout
    missing = _cli(path, "ack", "ffffffff")
    assert missing.returncode == 2
    assert "no firing alert has the fingerprint 'ffffffff'" in missing.stderr


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"after": "5m"}, "a step needs `mention: [...]`, `notify: [...]` or both"),
        ({"notify": ["nobody"]}, "unknown notifier 'nobody'"),
        ({"mention": ["alice"]}, "'alice' is not a Slack user ID"),
        ({"mention": ["U0ALICE01"], "from": "start"}, "from"),
    ],
)
def test_check_refuses_a_broken_step_with_file_and_line(
    tmp_path: Path, slack: FakeSlack, step: dict[str, Any], message: str
) -> None:
    path = config_file(tmp_path, slack, "http://127.0.0.1:9/unused")
    data = yaml.safe_load(path.read_text())
    data["alerting"]["routes"][0]["escalation"]["steps"].append(step)
    path.write_text(yaml.safe_dump(data))
    checked = _cli(path, "check")
    assert checked.returncode == 2
    assert f"{path}:" in checked.stderr
    assert message in checked.stderr
    assert "escalation" in checked.stderr


def test_a_mention_step_needs_a_slack_notifier_to_carry_it(
    tmp_path: Path, slack: FakeSlack
) -> None:
    path = config_file(tmp_path, slack, "http://127.0.0.1:9/unused")
    data = yaml.safe_load(path.read_text())
    data["alerting"]["routes"][0]["notify"] = ["pager"]
    path.write_text(yaml.safe_dump(data))
    checked = _cli(path, "check")
    assert checked.returncode == 2
    assert "alerting.routes[0].escalation.steps[0].mention: no slack notifier" in checked.stderr
    data["alerting"]["routes"][0]["escalation"]["steps"][0]["via"] = ["slack"]
    data["alerting"]["routes"][0]["escalation"]["steps"][1]["via"] = ["slack"]
    data["alerting"]["routes"][0]["escalation"]["steps"][2]["via"] = ["slack"]
    path.write_text(yaml.safe_dump(data))
    assert "no slack notifier" not in _cli(path, "check").stderr


NAMES_CONFIG = """\
videosdk: {api_key: k, secret_key: s}
rules: [rules.yaml]
notifiers:
  slack: {type: slack, channel: C0ALERTS1, token: xoxb-test}
alerting:
  routes:
    - match: [alertname=poor-video]
      notify: [slack]
      escalation:
        steps:
          - after: 5m
            mention: [U0LEAD001, "oncall:vidoe"]
            active_time_intervals: [out-of-hours, weekend]
time_intervals:
  - name: out-of-hours
    time_intervals: [{times: [{start_time: "18:00", end_time: "24:00"}]}]
oncall:
  teams:
    video:
      people: {bob: {slack_user: U0BOB0001}}
      rotation: {people: [bob], start: 2026-11-23}
"""


def test_check_refuses_a_step_naming_an_undefined_window_or_team(tmp_path: Path) -> None:
    """Passed over or mentioning nobody at 3 a.m. would be the first sign otherwise."""
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: poor-video, metric: qualityScore.video, op: '<', threshold: 3}\n"
    )
    path = tmp_path / "config.yaml"
    path.write_text(NAMES_CONFIG)
    checked = _cli(path, "check")
    assert checked.returncode == 2
    where = f"{path}:13: alerting.routes[0].escalation.steps[0].active_time_intervals[1]"
    assert (
        f"{where}: no time interval named 'weekend' (define it under top-level "
        "time_intervals:; defined: out-of-hours)"
    ) in checked.stderr
    assert (
        f"{path}:12: alerting.routes[0].escalation.steps[0].mention[1]: 'oncall:vidoe': no "
        "team named 'vidoe': did you mean 'video'? (define it under oncall.teams:; teams: video)"
    ) in checked.stderr
    assert "out-of-hours'" not in checked.stderr  # the defined one is fine
    fixed = NAMES_CONFIG.replace("oncall:vidoe", "oncall:video").replace(", weekend]", "]")
    path.write_text(fixed)
    assert _cli(path, "check").returncode == 0
