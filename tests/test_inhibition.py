"""Inhibition rules: the pure decision (:func:`plan` over hand-made snapshots), the alert
manager's hold after a start or reload over a real SQLite store, and ``check``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from prometheus_client import REGISTRY

from watchdog.alerting.inhibition import inhibitions, rules_from
from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy, plan
from watchdog.alerts import API_DEGRADED, Alert, meeting_fingerprint
from watchdog.alerts import alert_labels as receiver_labels
from watchdog.cli.main import main
from watchdog.cli.schemas import schema
from watchdog.config.matchers import alert_labels, parse_matchers
from watchdog.config.settings import InhibitRuleSettings
from watchdog.engine.rules import load_rules
from watchdog.state.alertlog import ActiveAlert, AlertingSnapshot, AlertingWrite, Notified
from watchdog.state.silences import AuditEntry, Silence
from watchdog.state.store import Store
from watchdog.testing import make_alert, resolved

from .conftest import API_KEY, SECRET
from .helpers import record_alerts

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
MEETING_MUTES_PARTICIPANTS = {
    "name": "meeting-mutes-participants",
    "source_matchers": ["scope=meeting"],
    "target_matchers": ["scope=participant"],
    "equal": ["meeting_id", "metric"],
}


def participant(who: str, meeting: str = "m-1", **overrides: Any) -> Alert:
    return make_alert(participant_id=who, meeting_id=meeting, participant_name=who, **overrides)


def meeting(meeting_id: str = "m-1", **overrides: Any) -> Alert:
    rule = overrides.pop("rule", "meeting-poor-video")
    return make_alert(
        rule=rule,
        participant_id="",
        meeting_id=meeting_id,
        scope="meeting",
        fingerprint=meeting_fingerprint(rule, meeting_id),
        **overrides,
    )


def config(*rules: dict[str, Any]) -> AlertingConfig:
    """One webhook-like notifier, one notification an alert (so each alert is seen alone)."""
    settings = [InhibitRuleSettings.model_validate(r) for r in rules]
    return AlertingConfig(
        policies={"hook": Policy(group_by=("...",))}, inhibit_rules=rules_from(settings)
    )


class Log:
    """The alert log as the pure plan() sees it, each write folded in as the store would."""

    def __init__(self, rules: AlertingConfig) -> None:
        self.config = rules
        self.alerts: dict[str, ActiveAlert] = {}
        self.snapshot = AlertingSnapshot(alerts=[], notified={}, groups={}, silences=[])

    def record(self, *alerts: Alert) -> None:
        for alert in alerts:
            known = self.alerts.get(alert.fingerprint)
            version = 1 if known is None else known.version + 1
            self.alerts[alert.fingerprint] = ActiveAlert(alert, version, NOW, ())

    def flush(self, now: datetime = NOW) -> AlertingWrite:
        snapshot = replace(self.snapshot, alerts=list(self.alerts.values()))
        write = plan(snapshot, self.config, now)
        inhibited = {
            fp: held for fp, held in snapshot.inhibited.items() if fp not in write.uninhibited
        }
        groups = {**snapshot.groups, **write.groups}
        for key in write.ended_groups:
            groups.pop(key, None)
        self.snapshot = replace(
            snapshot,
            notified={**snapshot.notified, **write.notified},
            groups=groups,
            inhibited={**inhibited, **write.inhibited},
        )
        for fp in write.done_alerts:
            self.alerts.pop(fp)
        return write


def told(write: AlertingWrite) -> list[tuple[str, str, str]]:
    """(rule, participant, meeting or scope, status) of every alert a notification carries."""
    return sorted(
        (
            a.rule,
            a.participant_id or (f"meeting {a.meeting_id}" if a.meeting_id else a.scope),
            a.status,
        )
        for _, _, notification in write.outbox
        for a in notification.alerts
    )


# -- the pure decision ---------------------------------------------------------------------


def test_a_meeting_alert_mutes_its_participants_alerts_on_the_same_metric() -> None:
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.record(
        meeting("m-1"),
        participant("alice"),  # same meeting, same metric: muted
        participant("bob", metric="qualityScore.audio", rule="poor-audio"),  # another metric
        participant("carol", meeting="m-2"),  # another meeting
    )
    write = log.flush()
    assert told(write) == [
        ("meeting-poor-video", "meeting m-1", "firing"),
        ("poor-audio", "bob", "firing"),
        ("poor-video", "carol", "firing"),
    ]
    alice = participant("alice").fingerprint
    held = write.inhibited[alice]
    assert (held.alertname, held.inhibit_rule) == ("poor-video", "meeting-mutes-participants")
    assert (held.source, held.source_alertname) == (
        meeting_fingerprint("meeting-poor-video", "m-1"),
        "meeting-poor-video",
    )
    assert held.since == NOW
    (entry,) = write.audit  # the alert history: when it became inhibited, and by what
    assert (entry.action, entry.target, entry.actor) == ("inhibit", alice, "watchdog")
    assert entry.source == "inhibit rule meeting-mutes-participants"
    assert (
        entry.detail == f"poor-video suppressed by meeting-poor-video {held.source} in meeting m-1"
    )
    assert log.flush().outbox == []  # and it stays held back, with nothing new to record
    assert log.flush().audit == []


def test_a_meeting_view_lists_what_its_own_meeting_alert_mutes_elsewhere() -> None:
    """The meeting view's one message is already the quiet form of a bad meeting: the
    participants its meeting alert inhibits are listed in it; a notifier with one message
    an alert still hears of the meeting alone."""
    settings = [InhibitRuleSettings.model_validate(MEETING_MUTES_PARTICIPANTS)]
    both = AlertingConfig(
        policies={"slack": Policy(group_by=("meeting_id",)), "hook": Policy(group_by=("...",))},
        inhibit_rules=rules_from(settings),
    )
    log = Log(both)
    log.record(meeting("m-1"), participant("alice"), participant("bob"))
    write = log.flush()
    heard: dict[str, list[str]] = {"slack": [], "hook": []}
    for _, _, notification in write.outbox:
        heard[notification.notifier] += [a.participant_id or "meeting" for a in notification.alerts]
    assert sorted(heard["slack"]) == ["alice", "bob", "meeting"]  # one message, everyone
    assert heard["hook"] == ["meeting"]
    assert set(write.inhibited) == {
        participant("alice").fingerprint,
        participant("bob").fingerprint,
    }


def test_a_label_missing_on_both_sides_is_not_equal() -> None:
    """Alertmanager treats it as equal (prometheus/alertmanager#1727): a source without
    the label would mute every target without it, across meetings. Here it mutes none."""
    rule = {"source_matchers": ["alertname=uplink-down"], "target_matchers": ["scope=participant"]}
    log = Log(config({**rule, "equal": ["team"]}))
    log.record(
        meeting(rule="uplink-down"),  # no team label
        participant("alice"),  # no team label either
        participant("bob", labels={"alertname": "poor-video", "team": "video"}),  # one side only
    )
    assert [who for _, who, _ in told(log.flush())] == ["alice", "bob", "meeting m-1"]

    both = Log(config({**rule, "equal": ["team"]}))
    both.record(
        meeting(rule="uplink-down", labels={"alertname": "uplink-down", "team": "video"}),
        participant("bob", labels={"alertname": "poor-video", "team": "video"}),
    )
    assert [who for _, who, _ in told(both.flush())] == ["meeting m-1"]  # equal: muted


def test_an_alert_never_inhibits_itself_nor_one_matching_both_sides() -> None:
    """Critical alerts mute warnings of the same meeting; the rule's sides overlap."""
    log = Log(
        config(
            {
                "source_matchers": ["severity=critical"],
                "target_matchers": ["severity=~critical|warning"],
                "equal": ["meeting_id"],
            }
        )
    )
    log.record(participant("alice", severity="critical"))  # matches both sides, alone
    assert told(log.flush()) == [("poor-video", "alice", "firing")]
    log.record(participant("bob", severity="critical"))  # two of them: neither mutes the other
    assert told(log.flush()) == [("poor-video", "bob", "firing")]
    log.record(participant("carol", severity="warning"))  # a target only: muted
    assert told(log.flush()) == []
    assert set(log.snapshot.inhibited) == {participant("carol").fingerprint}


def test_only_a_firing_source_mutes_and_the_first_matching_rule_names_it() -> None:
    second = {**MEETING_MUTES_PARTICIPANTS, "name": "second", "equal": ["meeting_id"]}
    log = Log(config(MEETING_MUTES_PARTICIPANTS, second))
    log.record(resolved(meeting()), participant("alice"))
    assert told(log.flush()) == [
        ("meeting-poor-video", "meeting m-1", "resolved"),
        ("poor-video", "alice", "firing"),
    ]
    log = Log(config(MEETING_MUTES_PARTICIPANTS, second))
    log.record(meeting(), participant("alice"))
    log.flush()
    assert log.snapshot.inhibited[participant("alice").fingerprint].inhibit_rule == (
        "meeting-mutes-participants"
    )


def test_when_the_source_resolves_a_still_firing_target_is_told_then() -> None:
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.record(meeting(), participant("alice"), participant("bob"))
    assert told(log.flush()) == [("meeting-poor-video", "meeting m-1", "firing")]
    log.record(resolved(participant("bob")))  # bob recovered while muted: never told at all
    write = log.flush()
    assert write.outbox == []
    assert write.notified[("hook", participant("bob").fingerprint)].status == "none"
    assert participant("bob").fingerprint in write.done_alerts
    assert [(e.action, e.detail) for e in write.audit] == [
        ("uninhibit", "resolved while inhibited")
    ]

    log.record(resolved(meeting()))  # the meeting recovers; alice still has poor video
    write = log.flush()
    assert told(write) == [
        ("meeting-poor-video", "meeting m-1", "resolved"),
        ("poor-video", "alice", "firing"),
    ]
    (alice,) = [a for _, _, n in write.outbox for a in n.alerts if a.participant_id == "alice"]
    source = meeting_fingerprint("meeting-poor-video", "m-1")
    assert alice.reason == (
        f"still firing; no longer inhibited by meeting-poor-video {source[:8]} "
        "(inhibit rule meeting-mutes-participants)"
    )
    assert write.uninhibited == {alice.fingerprint}
    assert [(e.action, e.target) for e in write.audit] == [("uninhibit", alice.fingerprint)]
    assert log.flush().outbox == []  # told once


def test_a_target_muted_from_start_to_end_is_never_told_even_ending_with_its_source() -> None:
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.record(meeting(), participant("alice"))
    assert told(log.flush()) == [("meeting-poor-video", "meeting m-1", "firing")]
    log.record(resolved(meeting()), resolved(participant("alice")))  # one cycle ends both
    write = log.flush()
    assert told(write) == [("meeting-poor-video", "meeting m-1", "resolved")]
    assert participant("alice").fingerprint in write.done_alerts


def test_a_target_told_before_its_source_began_is_held_then_told_its_resolution() -> None:
    """Alertmanager sends no resolve for it (it stays muted): a receiver would keep an
    incident open forever. Here the resolution goes to whoever was told it fires."""
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.record(participant("alice"))
    assert told(log.flush()) == [("poor-video", "alice", "firing")]
    log.record(meeting())  # the meeting goes bad after alice: alice is held back now
    assert told(log.flush()) == [("meeting-poor-video", "meeting m-1", "firing")]
    fp = participant("alice").fingerprint
    assert log.snapshot.notified[("hook", fp)].status == "silenced"  # told, then held back
    reminder = log.flush(NOW + timedelta(hours=5))  # repeat_interval is 4h
    assert told(reminder) == [("meeting-poor-video", "meeting m-1", "firing")]  # not alice
    log.record(resolved(participant("alice")))
    assert told(log.flush(NOW + timedelta(hours=5))) == [("poor-video", "alice", "resolved")]


def test_a_target_told_before_its_source_is_told_again_when_the_source_ends() -> None:
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.record(participant("alice"))
    log.flush()
    log.record(meeting())
    log.flush()
    log.record(resolved(meeting()))
    write = log.flush()
    assert told(write) == [
        ("meeting-poor-video", "meeting m-1", "resolved"),
        ("poor-video", "alice", "firing"),
    ]
    (alice,) = [a for _, _, n in write.outbox for a in n.alerts if a.participant_id]
    assert (alice.reason or "").startswith("still firing; no longer inhibited by meeting-poor")
    assert log.snapshot.notified[("hook", participant("alice").fingerprint)] == Notified(
        1, "firing"
    )


def test_the_example_config_mutes_what_it_says_with_the_example_rules() -> None:
    """config.example.yaml's inhibit rules over alerts made from rules.example.yaml's rules:
    the meeting alert mutes its participants' poor video (not their audio), and the
    daemon's own API alert mutes the absent-stats alerts everywhere."""
    root = Path(__file__).parent.parent
    example = yaml.safe_load((root / "config.example.yaml").read_text())
    rules = load_rules([root / "rules.example.yaml"]).by_name()
    log = Log(config(*example["alerting"]["inhibit_rules"]))

    def of(rule: str, who: str, meeting_id: str = "m-1") -> Alert:
        return participant(who, meeting_id, rule=rule, metric=rules[rule].label)

    log.record(
        meeting(metric=rules["meeting-poor-video"].label),
        of("poor-video", "alice"),  # muted by its meeting
        of("audio-unusable", "alice"),  # another metric: told
        of("poor-video", "bob", meeting_id="m-2"),  # another meeting: told
        of("stats-stopped", "carol", meeting_id="m-3"),  # told: the API is fine
    )
    assert told(log.flush()) == [
        ("audio-unusable", "alice", "firing"),
        ("meeting-poor-video", "meeting m-1", "firing"),
        ("poor-video", "bob", "firing"),
        ("stats-stopped", "carol", "firing"),
    ]
    api = make_alert(
        rule=API_DEGRADED, participant_id="", session_id="", meeting_id=None, scope="daemon",
        metric="poll_failure_ratio", fingerprint="api",
    )  # fmt: skip
    log.record(api, of("stats-stopped", "dan", meeting_id="m-4"))
    assert told(log.flush()) == [("videosdk-api-degraded", "daemon", "firing")]
    held = log.snapshot.inhibited
    assert held[of("stats-stopped", "dan").fingerprint].inhibit_rule == (
        "api-degraded-mutes-absent-stats"
    )
    assert held[of("poor-video", "alice").fingerprint].inhibit_rule == (
        "meeting-mutes-its-participants"
    )


def test_a_silenced_source_still_mutes() -> None:
    """As in Alertmanager: a silence hides the source's notifications, not the fact that
    it fires."""
    silence = Silence(
        "s1", parse_matchers(["scope=meeting"]), NOW - timedelta(hours=1), NOW + timedelta(hours=1),
        "ops", "known", NOW - timedelta(hours=1),
    )  # fmt: skip
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.snapshot = replace(log.snapshot, silences=[silence])
    log.record(meeting(), participant("alice"))
    assert told(log.flush()) == []
    assert participant("alice").fingerprint in log.snapshot.inhibited


def test_a_removed_rule_releases_what_it_held() -> None:
    log = Log(config(MEETING_MUTES_PARTICIPANTS))
    log.record(meeting(), participant("alice"))
    log.flush()
    log.config = config()  # a reload without inhibit_rules
    write = log.flush()
    assert told(write) == [("poor-video", "alice", "firing")]
    assert write.uninhibited == {participant("alice").fingerprint}


# -- the alert manager over a real store: nothing before a whole cycle -----------------------


def _manager(tmp_path: Path, rules: AlertingConfig) -> tuple[Store, AlertManager]:
    store = Store(str(tmp_path / "state.db"))
    return store, AlertManager(store.alert_log, store.silences, rules)


def _queued(store: Store) -> list[str]:
    entries = store.outbox.entries()
    for entry in entries:
        store.outbox.delivered(entry.id)
    return sorted(a.rule for e in entries for a in e.notification.alerts)


def test_after_a_start_nothing_goes_out_before_a_cycle_has_recorded_the_sources(
    tmp_path: Path,
) -> None:
    store, manager = _manager(tmp_path, config(MEETING_MUTES_PARTICIPANTS))
    with manager.poll_cycle():
        record_alerts(store, [(participant("alice"), ())])  # a poll finds alice first ...
        assert manager.flush() == 0  # ... the intake's flush waits: no cycle has ended
        assert manager.flush(final=True) == 0
        record_alerts(store, [(meeting(), ())])  # ... the meeting rule runs at the cycle's end
    assert _queued(store) == ["meeting-poor-video"]  # the cycle's end flushed: alice muted
    assert (
        REGISTRY.get_sample_value(
            "watchdog_alerts_inhibited",
            {"inhibit_rule": "meeting-mutes-participants", "rule": "poor-video"},
        )
        == 1.0
    )
    record_alerts(store, [(resolved(meeting()), ())])
    assert manager.flush() == 2  # from now on every flush decides at once
    assert _queued(store) == ["meeting-poor-video", "poor-video"]
    assert (
        REGISTRY.get_sample_value(
            "watchdog_alerts_inhibited",
            {"inhibit_rule": "meeting-mutes-participants", "rule": "poor-video"},
        )
        is None
    )  # removed, not left at its last value
    store.close()


def test_after_a_reload_only_a_cycle_begun_after_it_lets_notifications_out(
    tmp_path: Path,
) -> None:
    store, manager = _manager(tmp_path, config())
    assert manager.flush() == 0  # no inhibit rules: no hold (nothing to wait for)
    record_alerts(store, [(participant("alice"), ())])
    assert manager.flush() == 1
    with manager.poll_cycle():  # a cycle running while the reload arrives
        manager.reconfigure(config(MEETING_MUTES_PARTICIPANTS))
        record_alerts(store, [(participant("bob"), ())])
    assert _queued(store) == ["poor-video"]  # alice, before the reload
    assert manager.flush() == 0  # that cycle began before the reload: still held
    with manager.poll_cycle():
        record_alerts(store, [(meeting(), ())])
    assert _queued(store) == ["meeting-poor-video"]  # bob muted; alice was told before
    store.close()


def test_a_new_leader_waits_for_a_cycle_it_led(tmp_path: Path) -> None:
    leading = [False]
    store = Store(str(tmp_path / "state.db"))
    manager = AlertManager(
        store.alert_log,
        store.silences,
        config(MEETING_MUTES_PARTICIPANTS),
        leads=lambda: leading[0],
    )
    with manager.poll_cycle():  # a follower's cycle establishes nothing
        record_alerts(store, [(participant("alice"), ())])
    leading[0] = True
    assert manager.flush() == 0
    with manager.poll_cycle():
        record_alerts(store, [(meeting(), ())])
    assert _queued(store) == ["meeting-poor-video"]
    leading[0] = False
    assert manager.flush() == 0  # it lost the lead: the next leadership waits again
    leading[0] = True
    record_alerts(store, [(resolved(meeting()), ())])
    assert manager.flush() == 0
    store.close()


# -- check ----------------------------------------------------------------------------------

RULES = "rules:\n  - {name: poor-video, metric: qualityScore.video, op: '<', threshold: 3}\n"


def _check(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"videosdk: {{api_key: {API_KEY}, secret_key: {SECRET}}}\nrules: [rules.yaml]\n"
        "notifiers: {console: {type: console}}\n" + body
    )
    code = main(["check", "--config", str(path)])
    return code, capsys.readouterr().err


def test_check_accepts_inhibit_rules_under_alerting_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = yaml.safe_dump([MEETING_MUTES_PARTICIPANTS], default_flow_style=True).strip()
    code, err = _check(tmp_path, f"alerting:\n  inhibit_rules: {rule}\n", capsys)
    assert (code, err) == (0, "")
    code, err = _check(tmp_path, f"inhibit_rules: {rule}\n", capsys)  # Alertmanager's place
    assert code == 2
    assert err.strip() == (
        f"{tmp_path / 'config.yaml'}:4: inhibit_rules: belongs under alerting: (indent it "
        "there, beside routes): our alerting: section is Alertmanager's config, where "
        "inhibit_rules sit beside route"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES + f"inhibit_rules: {rule}\n")  # nor in a rules file
    assert main(["check", "--rules", str(rules)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"{rules}:3: unknown top-level key 'inhibit_rules'; a rules file has 'rules:' (and "
        "'tests:'); inhibit_rules go in the config file, under alerting: (beside routes)"
    )


def test_check_reports_each_inhibit_rule_mistake_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = """\
alerting:
  inhibit_rules:
    - source_matchers: ["alertname=~(unclosed"]
      target_matchers: [scope=participant]
    - source_matchers: []
      target_matchers: [scope=participant]
    - source_matchers: [scope=meeting]
    - source_matchers: [scope=meeting]
      target_matchers: [scope=participant]
      equal: [meeting_id, meetingid]
"""
    code, err = _check(tmp_path, body, capsys)
    file = tmp_path / "config.yaml"
    lines = err.strip().splitlines()
    assert code == 2
    assert lines[0] == (
        f"{file}:6: alerting.inhibit_rules[0].source_matchers: 'alertname=~(unclosed': "
        "invalid regular expression: missing ): (unclosed"
    )
    assert lines[1] == (
        f"{file}:8: alerting.inhibit_rules[1].source_matchers: an inhibit rule needs at least "
        "one source matcher (e.g. source_matchers: [scope=meeting]): none would make every "
        "alert a source"
    )
    assert lines[2] == (
        f"{file}:10: alerting.inhibit_rules[2].target_matchers: an inhibit rule needs at "
        "least one target matcher (e.g. target_matchers: [scope=participant]): none would "
        "make every alert a target"
    )
    assert len(lines) == 3  # the model's errors stop check before the label checks

    body = body.split('    - source_matchers: ["alertname', maxsplit=1)[0] + (
        "    - source_matchers: [scope=meeting]\n"
        "      target_matchers: [scope=participant, tema=video]\n"
        "      equal: [meeting_id, meetingid, meetingId]\n"
    )
    code, err = _check(tmp_path, body, capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"{file}:7: warning: alerting.inhibit_rules[0].target_matchers[1]: no alert has a "
        "label 'tema' (built-in: alertname, severity, meeting_id, session_id, participant_id,"
        " scope, metric, cause, cause_participant; or a rule's labels)",
        f"{file}:8: alerting.inhibit_rules[0].equal[1]: no alert has a label 'meetingid', so "
        "this rule would mute nothing (a label missing on both sides is not equal); use one "
        "of alertname, severity, meeting_id, session_id, participant_id, scope, metric, cause, "
        "cause_participant or a rule's labels",
        f"{file}:8: warning: alerting.inhibit_rules[0].equal[2]: 'meetingId' is the old name "
        "of label 'meeting_id': write meeting_id (the old name still works)",
    ]


def test_the_config_schema_takes_inhibit_rules_where_check_does() -> None:
    """What an editor checks with ``videosdk-watchdog schema config`` (jsonschema here)."""
    document = schema("config")
    jsonschema.Draft202012Validator.check_schema(document)
    validator = jsonschema.Draft202012Validator(document)
    good = {"alerting": {"inhibit_rules": [MEETING_MUTES_PARTICIPANTS]}}
    assert list(validator.iter_errors(good)) == []
    example = yaml.safe_load((Path(__file__).parent.parent / "config.example.yaml").read_text())
    assert list(validator.iter_errors(example)) == []
    rule = {k: v for k, v in MEETING_MUTES_PARTICIPANTS.items() if k != "target_matchers"}
    for bad in (
        {"inhibit_rules": [MEETING_MUTES_PARTICIPANTS]},  # Alertmanager's place, not ours
        {"alerting": {"inhibit_rules": [rule]}},  # no target side
        {"alerting": {"inhibit_rules": [{**MEETING_MUTES_PARTICIPANTS, "source_matchers": []}]}},
        {"alerting": {"inhibit_rules": [{**rule, "target_match": {"scope": "participant"}}]}},
    ):
        assert list(validator.iter_errors(bad)), bad


def test_the_example_inhibit_rules_are_alertmanagers_own_syntax(tmp_path: Path) -> None:
    """``amtool check-config`` (Debian's prometheus-alertmanager) accepts the example
    config's inhibit_rules in an Alertmanager config: its users read ours as theirs."""
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool is missing: apt-get install prometheus-alertmanager"
    example = yaml.safe_load((Path(__file__).parent.parent / "config.example.yaml").read_text())
    rules = example["alerting"]["inhibit_rules"]
    assert len(rules) >= 2
    for rule in rules:  # Debian's amtool (0.25) predates `name`
        rule.pop("name", None)
    document = {
        "route": {"receiver": "hook"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": "http://127.0.0.1:9/"}]}],
        "inhibit_rules": rules,
    }
    path = tmp_path / "alertmanager.yml"

    def check(document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        path.write_text(json.dumps(document))
        return subprocess.run(
            [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
        )

    checked = check(document)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f" - {len(rules)} inhibit rules" in checked.stdout
    broken = [{**rules[0], "target_matchers": ["scope=~(unclosed"]}]
    assert check({**document, "inhibit_rules": broken}).returncode != 0  # it does check them


# -- against Alertmanager itself -------------------------------------------------------------

# (case, rule, alerts as (name, labels, firing)); every rule and label set is scoped to its
# case by a `case` label, so one Alertmanager answers them all
CASES: list[tuple[str, dict[str, Any], list[tuple[str, dict[str, str], bool]]]] = [
    (
        "meeting",
        MEETING_MUTES_PARTICIPANTS,
        [
            ("meeting", {"scope": "meeting", "meeting_id": "m1", "metric": "video"}, True),
            ("same", {"scope": "participant", "meeting_id": "m1", "metric": "video"}, True),
            ("other-metric", {"scope": "participant", "meeting_id": "m1", "metric": "audio"}, True),
            (
                "other-meeting",
                {"scope": "participant", "meeting_id": "m2", "metric": "video"},
                True,
            ),
        ],
    ),
    (
        "both-sides",
        {
            "source_matchers": ["severity=critical"],
            "target_matchers": ["severity=~critical|warning"],
            "equal": ["meeting_id"],
        },
        [
            ("critical-1", {"severity": "critical", "meeting_id": "m1"}, True),
            ("critical-2", {"severity": "critical", "meeting_id": "m1"}, True),
            ("warning", {"severity": "warning", "meeting_id": "m1"}, True),
            ("alone", {"severity": "critical", "meeting_id": "m2"}, True),
        ],
    ),
    (
        "resolved-source",
        {"source_matchers": ["alertname=src"], "target_matchers": ["alertname!=src"]},
        [
            ("src", {"alertname": "src"}, False),
            ("target", {"alertname": "tgt"}, True),
        ],
    ),
    (
        "one-side-missing",
        {"source_matchers": ["role=src"], "target_matchers": ["role=~t.*"], "equal": ["team"]},
        [
            ("src", {"role": "src", "team": "video"}, True),
            ("no-team", {"role": "tgt"}, True),
            ("team", {"role": "tgt", "team": "video"}, True),
        ],
    ),
    (
        "both-missing",  # the one difference on purpose (prometheus/alertmanager#1727)
        {"source_matchers": ["role=src"], "target_matchers": ["role=tgt"], "equal": ["team"]},
        [
            ("src", {"role": "src"}, True),
            ("tgt", {"role": "tgt"}, True),
        ],
    ),
]
DIFFERENT_ON_PURPOSE = {("both-missing", "tgt")}  # Alertmanager mutes it; we do not


def _case_alerts(case: str, alerts: list[tuple[str, dict[str, str], bool]]) -> list[Alert]:
    """Alerts carrying these labels: built-in ones as the alert's fields, the rest as its
    rule's labels."""
    out = []
    for name, extra, firing in alerts:
        fields = {k: extra[k] for k in ("meeting_id", "metric", "severity", "scope") if k in extra}
        rule = extra.get("alertname", "poor-video")
        own = {k: v for k, v in extra.items() if k not in (*fields, "alertname")}
        built = make_alert(
            rule=rule,
            participant_id="" if fields.get("scope") == "meeting" else f"{case}-{name}",
            session_id=f"{case}-{name}",
            labels={"alertname": rule, "case": case, "who": name, **own},
            **{"meeting_id": None, **fields},
        )
        out.append(built if firing else resolved(built))
    return out


def _alertmanager(tmp_path: Path, rules: list[dict[str, Any]]) -> tuple[subprocess.Popen[str], str]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "Alertmanager is missing: apt-get install prometheus-alertmanager"
    unnamed = [{k: v for k, v in r.items() if k != "name"} for r in rules]  # 0.25 has no names yet
    document = {"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}
    (tmp_path / "am.yml").write_text(json.dumps({**document, "inhibit_rules": unnamed}))
    log = tmp_path / "am.log"
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            "--web.listen-address=127.0.0.1:0",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (found := re.search(r"Listening on.*address=(127\.0\.0\.1:\d+)", log.read_text())):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return process, f"http://{found.group(1)}"


def test_the_same_answers_as_alertmanager_but_for_a_label_missing_on_both_sides(
    tmp_path: Path,
) -> None:
    """Every case through our rules and through the real Alertmanager (Debian's
    prometheus-alertmanager, its API v2 ``status.inhibitedBy``): the same alerts are
    muted, except where docs/alerting.md says we differ."""
    scoped = [
        {
            **rule,
            "source_matchers": [*rule["source_matchers"], f"case={case}"],
            "target_matchers": [*rule["target_matchers"], f"case={case}"],
        }
        for case, rule, _ in CASES
    ]
    alerts = [a for case, _, group in CASES for a in _case_alerts(case, group)]
    ours = config(*scoped)
    labels = {a.fingerprint: alert_labels(a) for a in alerts}
    active = [ActiveAlert(a, 1, NOW, ()) for a in alerts]
    held = inhibitions(active, labels, ours.inhibit_rules)
    mine = {(labels[fp]["case"], labels[fp]["who"]) for fp in held}

    process, url = _alertmanager(tmp_path, scoped)
    try:
        now = datetime.now(UTC)
        body = [
            {
                "labels": receiver_labels(a),
                "startsAt": (now - timedelta(minutes=5)).isoformat(),
                **(
                    {}
                    if a.status == "firing"
                    else {"endsAt": (now - timedelta(minutes=1)).isoformat()}
                ),
            }
            for a in alerts
        ]
        requests.post(f"{url}/api/v2/alerts", json=body, timeout=10).raise_for_status()
        # Alertmanager's inhibitor hears of new alerts through a subscription of its own, a
        # moment after the POST: asked at once it may mute nothing yet. Asked again until it
        # answers what is expected (bounded: 50 reads, 10 s); the asserts say what differed
        theirs: set[tuple[str, str]] = set()
        deadline = time.monotonic() + 10
        for _ in range(50):
            answer = requests.get(f"{url}/api/v2/alerts", timeout=10).json()
            theirs = {
                (a["labels"]["case"], a["labels"]["who"])
                for a in answer
                if a["status"]["inhibitedBy"]
            }
            if theirs == mine | DIFFERENT_ON_PURPOSE or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert {(c, w) for c, w in theirs} - mine == DIFFERENT_ON_PURPOSE
    assert mine - theirs == set()
    assert mine == {("meeting", "same"), ("both-sides", "warning"), ("one-side-missing", "team")}


def test_the_audit_log_keeps_the_newest_machine_entries_and_every_persons(state_url: str) -> None:
    store = Store(state_url)
    try:
        for minute in range(5):
            for action, actor in (("inhibit", "watchdog"), ("silence", "dana")):
                store.silences.add_audit(
                    AuditEntry(f"{action}-{minute}", NOW + timedelta(minutes=minute), actor,
                               action, "fp", "cli", "")
                )  # fmt: skip
        with store.transaction() as cur:
            store.silences.trim_audit(cur, "inhibit", 3)
        kept = sorted(e.id for e in store.silences.audit())
        assert kept == [
            "inhibit-2", "inhibit-3", "inhibit-4",
            "silence-0", "silence-1", "silence-2", "silence-3", "silence-4",
        ]  # fmt: skip
        with store.transaction() as cur:  # fewer than kept: nothing goes
            store.silences.trim_audit(cur, "silence", 10)
        assert len(store.silences.audit()) == 8
    finally:
        store.close()
