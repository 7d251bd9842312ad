"""Likely causes (issue 20.1): the pure decision on hand-built windows, its bounds and its
hostile inputs; the alert's fields, labels and JSON round trip; the example inhibition
rule; every built-in notifier's rendering; and the daemon end to end against the
simulator's cause meetings, through the webhook notifier to a receiver on 127.0.0.1."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from watchdog_console import format_alert
from watchdog_email.render import text_body
from watchdog_ntfy import NtfyConfig, publication
from watchdog_slack.blocks import message
from watchdog_slack.meeting import participant_line
from watchdog_webhook.payload import body

from watchdog.alerting import inhibition
from watchdog.alerts import Affected, Alert, Notification, alert_labels
from watchdog.cli.status import print_status
from watchdog.cluster.coordinator import summed_places
from watchdog.config.settings import Config, InhibitRuleSettings
from watchdog.engine.causes import (
    CAPACITY,
    CAUSES,
    MAX_NAME,
    MAX_PLACE,
    PLACE_SECONDS,
    SHARED_PLACES,
    Peer,
    PlaceLoad,
    Places,
    Verdict,
    Window,
    likely_cause,
    places_of,
    recent,
)
from watchdog.engine.evaluate import AlertState, explained, transition
from watchdog.engine.rules import load_rules
from watchdog.runtime.build import build
from watchdog.sim.scenarios import CAUSE_MEETINGS, cause_population
from watchdog.sim.simulator import Simulator
from watchdog.state.alertlog import ActiveAlert, record_alert
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo

from .helpers import as_instance
from .sinks import Sink

T0 = 1_800_000_000.0  # epoch seconds
ROOT = Path(__file__).parent.parent

HEALTHY = {
    "sendAudioPacketLost": 0.0,
    "sendVideoPacketLost": 0.0,
    "recvAudioPacketLost": 0.0,
    "recvVideoPacketLost": 0.0,
    "averageAudioRtt": 40.0,
    "averageVideoRtt": 50.0,
    "averageAudioJitter": 2.0,
    "averageVideoJitter": 4.0,
    "averageSendVideoBitrate": 900_000.0,
    "resolution": 720.0,
}


def window(*phases: tuple[int, Mapping[str, Any]], every: float = 10.0) -> Window:
    """``(count, changes)`` phases of samples every ``every`` seconds from T0: healthy
    figures with ``changes`` on top."""
    made = Window()
    at = T0
    for count, changes in phases:
        for _ in range(count):
            made.add(at, {**HEALTHY, **changes})
            at += every
    return made


def newest(made: Window) -> float:
    assert made.newest is not None
    return made.newest


def judge(
    made: Window, peers: list[Peer] | None = None, places: list[PlaceLoad] | None = None
) -> Verdict:
    return likely_cause("me", made, newest(made), peers=peers or [], places=places or [])


SEND_LOSS = {"sendVideoPacketLost": 10.0, "sendAudioPacketLost": 2.0}
RECV_LOSS = {"recvVideoPacketLost": 14.0, "recvAudioPacketLost": 1.0}


# -- the decision, one cause at a time --------------------------------------------------


def test_their_uplink_send_loss_with_a_clean_receive() -> None:
    verdict = judge(window((6, {}), (6, SEND_LOSS)))
    assert verdict == Verdict("uplink", ("send loss 12 (receive 0) over the last 60s",), "me")


def test_their_uplink_rtt_and_jitter_up_while_receiving_fine() -> None:
    verdict = judge(window((6, {"averageVideoRtt": 450.0, "averageVideoJitter": 45.0})))
    assert verdict.cause == "uplink"
    assert verdict.evidence == (
        "RTT 450 ms, jitter 45 ms while receive loss is 0 over the last 60s",
    )


def test_a_lossy_sender_named_when_most_of_its_receivers_degrade() -> None:
    bob = Peer("bob", "Bob", window((6, SEND_LOSS | {"sendVideoPacketLost": 16.0})))
    hurt = [Peer(f"r{i}", f"R{i}", window((6, RECV_LOSS))) for i in range(3)]
    fine = Peer("ok", "Okay", window((6, {})))
    verdict = judge(window((6, RECV_LOSS)), [bob, *hurt, fine])
    assert verdict.cause == "sender-uplink"
    assert verdict.participant == "bob"  # cause_participant: whose uplink it is
    assert verdict.evidence[0] == "Bob's send loss 18; 4 of 5 watched receivers of Bob degraded"
    assert verdict.evidence[1] == "own receive loss 15, send loss 0 over the last 60s"


def test_a_lossy_sender_is_not_blamed_when_its_other_receivers_are_fine() -> None:
    bob = Peer("bob", "Bob", window((6, SEND_LOSS)))
    fine = [Peer(f"f{i}", f"F{i}", window((6, {}))) for i in range(3)]
    verdict = judge(window((6, RECV_LOSS)), [bob, *fine])
    assert verdict.cause == "downlink"  # 1 of 4 receivers degraded: it is this one's link


def test_their_downlink_when_the_others_receive_fine() -> None:
    fine = [Peer(f"f{i}", f"F{i}", window((6, {"recvVideoPacketLost": 0.5}))) for i in range(3)]
    verdict = judge(window((6, RECV_LOSS)), fine)
    assert verdict == Verdict(
        "downlink",
        (
            "receive loss 15 (send 0) over the last 60s",
            "3 of 3 others in the meeting receive fine (receive loss 0.5); "
            "nobody's send loss is high",
        ),
        "me",
    )


def test_a_one_participant_meeting_says_it_could_not_compare() -> None:
    verdict = judge(window((6, RECV_LOSS)))
    assert verdict.cause == "downlink"
    assert verdict.evidence[1] == "no other participant of the meeting is watched to compare with"


def test_everyone_losing_with_no_lossy_sender_is_unknown() -> None:
    others = [Peer(f"o{i}", f"O{i}", window((6, RECV_LOSS))) for i in range(3)]
    verdict = judge(window((6, RECV_LOSS)), others)
    assert verdict.cause == "unknown"
    assert verdict.evidence[1] == "3 of 3 others in the meeting lose what they receive too"
    assert verdict.participant is None


def test_a_device_drop_against_the_usual_send_bitrate() -> None:
    low = {"averageSendVideoBitrate": 150_000.0, "resolution": 180.0}
    verdict = judge(window((18, {}), (6, low)))
    assert verdict.cause == "device"
    assert verdict.participant == "me"
    assert verdict.evidence[0].startswith("send video bitrate 150 kbit/s, usually ")
    assert "resolution 180p" in verdict.evidence[0]


def test_a_device_drop_still_shows_minutes_after_the_window_forgot_the_usual() -> None:
    low = {"averageSendVideoBitrate": 150_000.0}
    made = window((30, {}), (20, low))  # 200 s of it: the window holds no good sample
    assert len(made) < 20
    assert judge(made).cause == "device"


def test_a_bitrate_that_was_always_low_is_no_drop() -> None:
    assert judge(window((24, {"averageSendVideoBitrate": 150_000.0}))).cause == "unknown"


def test_a_resolution_drop_alone_is_no_device_cause() -> None:
    assert judge(window((18, {}), (6, {"resolution": 180.0}))).cause == "unknown"


def test_platform_when_many_meetings_of_its_place_degrade_at_once() -> None:
    places = [PlaceLoad("region Hesse, Germany", 4, 5), PlaceLoad("network DT", 1, 9)]
    verdict = judge(window((6, RECV_LOSS)), places=places)
    assert verdict.cause == "platform"
    assert verdict.participant is None
    assert verdict.evidence[0] == (
        "4 of 5 meetings in region Hesse, Germany degraded in the same 2 minutes"
    )


def test_no_platform_for_a_healthy_participant_or_a_few_meetings() -> None:
    crowded = [PlaceLoad("region Hesse, Germany", 4, 5)]
    assert judge(window((6, {})), places=crowded).cause == "unknown"
    few = [PlaceLoad("region Hesse, Germany", 2, 2), PlaceLoad("network DT", 3, 10)]
    assert judge(window((6, RECV_LOSS)), places=few).cause == "downlink"


def test_nothing_to_see_is_unknown_with_the_figures() -> None:
    verdict = judge(window((6, {})))
    assert verdict == Verdict(
        "unknown",
        ("no network or device signal: send loss 0, receive loss 0, RTT 50 ms, jitter 4 ms "
         "over the last 60s",),
    )  # fmt: skip


def test_every_cause_is_in_the_vocabulary_and_its_docs() -> None:
    docs = (ROOT / "docs" / "causes.md").read_text()
    for name in CAUSES:
        assert f"`{name}`" in docs


# -- edge cases and hostile values --------------------------------------------------------


def test_no_recent_sample_is_unknown() -> None:
    assert likely_cause("me", Window(), T0).evidence == ("no sample in the last 60s to judge from",)
    made = window((6, SEND_LOSS))
    assert likely_cause("me", made, newest(made) + 3600).cause == "unknown"


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, -5.0, 1e300, True, "12", None, [1], {"x": 1}],
)
def test_garbage_figures_count_as_missing(bad: object) -> None:
    made = window((6, dict.fromkeys(HEALTHY, bad)))
    verdict = judge(made)
    assert verdict.cause == "unknown"
    assert verdict.evidence == (
        "no network or device signal: send loss n/a, receive loss n/a, RTT n/a, "
        "jitter n/a over the last 60s",
    )


def test_missing_fields_leave_the_others_to_judge() -> None:
    made = window((6, {"sendVideoPacketLost": 20.0}))
    for name in ("recvAudioPacketLost", "averageAudioRtt", "averageSendVideoBitrate"):
        made.add(newest(made) + 10, {k: v for k, v in HEALTHY.items() if k != name})
    assert judge(made).cause == "uplink"


def test_huge_but_finite_figures_saturate_far_above_every_threshold() -> None:
    verdict = judge(window((6, {"sendVideoPacketLost": 1e11, "averageVideoRtt": 1e9})))
    assert verdict.cause == "uplink"
    assert verdict.evidence == (
        "send loss 6553 (receive 0) over the last 60s",
        "RTT 65534 ms, jitter 4 ms",
    )


def test_a_hostile_name_is_clipped_and_printable_in_the_evidence() -> None:
    name = "Bob\n\x1b[31m" + "x" * 10_000
    bob = Peer("bob", name, window((6, SEND_LOSS)))
    verdict = judge(window((6, RECV_LOSS)), [bob])
    sender = verdict.evidence[0].split("'s send loss")[0]
    assert len(sender) <= MAX_NAME
    assert sender.isprintable()
    assert sender.startswith("Bob")


def test_a_window_stays_bounded_in_samples_and_time() -> None:
    made = window((1000, SEND_LOSS), every=1.0)
    assert len(made) == CAPACITY
    sparse = window((100, {}), every=30.0)
    assert len(sparse) == 4  # 90 s of history: the newest and the three before
    before = len(sparse)
    sparse.add(T0, HEALTHY)  # older than its newest: ignored
    assert len(sparse) == before


def test_a_window_keeps_its_times_exact_over_a_long_call() -> None:
    made = window((6 * 60 * 24, {}), every=10.0)  # a day: offsets rebased on the way
    at = newest(made)
    assert at == T0 + (6 * 60 * 24 - 1) * 10
    assert recent(made, at).samples == 6
    for step in range(1, 7):
        made.add(at + 10 * step, {**HEALTHY, **SEND_LOSS})
    assert judge(made).cause == "uplink"


def test_places_count_meetings_by_two_degraded_participants_and_forget_old_ones() -> None:
    places = Places()
    where = places_of("Germany", "Hesse", "DT")
    assert where == ("region Hesse, Germany", "network DT")
    assert places_of("unknown", "unknown", "unknown", "unknown") == ()
    for meeting in range(5):
        for who in range(3):
            bad = meeting < 3 and who < 2  # three meetings with two of three bad
            places.seen(where, f"m{meeting}", f"p{meeting}.{who}", T0, degraded=bad, alone=False)
    places.seen(where, "m4", "p4.0", T0, degraded=True, alone=False)  # one blip: not it
    places.seen(where, "m5", "p5.0", T0, degraded=True, alone=True)  # its only one: it is
    assert places.load(where, T0) == [
        PlaceLoad("region Hesse, Germany", 4, 6),
        PlaceLoad("network DT", 4, 6),
    ]
    later = T0 + 10 * PLACE_SECONDS
    places.seen(("region Elsewhere",), "m9", "p9", later, degraded=False, alone=True)
    assert len(places) == 1  # every older meeting went in one pass
    assert places.load(where, later) == [
        PlaceLoad("region Hesse, Germany", 0, 0),
        PlaceLoad("network DT", 0, 0),
    ]


# -- the alert: fields, labels, round trip, templates, inhibition -------------------------


def make_alert(**changes: Any) -> Alert:
    moment = datetime(2026, 12, 1, 10, tzinfo=UTC)
    alert = Alert(
        fingerprint="f-alice",
        rule="poor-video",
        status="firing",
        severity="warning",
        metric="qualityScore.video",
        op="<",
        threshold=3.0,
        value=2.4,
        session_id="s-1",
        participant_id="alice",
        starts_at=moment,
        fired_at=moment,
        sample_time=moment,
        meeting_id="m-1",
        participant_name="Alice",
        cause="sender-uplink",
        evidence=("Bob's send loss 18; 4 of 5 watched receivers of Bob degraded",),
        cause_participant="bob",
    )
    return replace(alert, **changes)


def test_the_cause_survives_the_outbox_and_old_rows_still_load() -> None:
    alert = make_alert()
    note = Notification(id="n", notifier="hook", status="firing", alerts=(alert,))
    again = Notification.from_dict(json.loads(json.dumps(note.to_dict())))
    assert again.alerts[0] == alert
    old = alert.to_dict()
    for key in ("cause", "evidence", "cause_participant"):
        del old[key]
    loaded = Alert.from_dict(old)
    assert (loaded.cause, loaded.evidence, loaded.cause_participant) == (None, (), None)


def test_cause_labels_are_what_inhibition_and_routes_see() -> None:
    labels = alert_labels(make_alert())
    assert labels["cause"] == "sender-uplink"
    assert labels["cause_participant"] == "bob"
    assert "cause" not in alert_labels(make_alert(cause=None, cause_participant=None))


def test_the_example_inhibit_rule_mutes_the_receivers_a_senders_uplink_explains() -> None:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    settings = [
        r for r in example["alerting"]["inhibit_rules"] if r["name"].startswith("sender-uplink")
    ]
    rules = inhibition.rules_from([InhibitRuleSettings.model_validate(r) for r in settings])
    source = make_alert(
        fingerprint="f-bob", participant_id="bob", cause="uplink", cause_participant="bob"
    )
    alerts = [
        source,
        make_alert(),  # alice: sender-uplink because of bob: muted
        make_alert(fingerprint="f-carol", participant_id="carol", cause_participant="dan"),
        make_alert(fingerprint="f-eve", participant_id="eve", meeting_id="m-2"),
    ]
    active = [ActiveAlert(a, 1, a.fired_at, ()) for a in alerts]
    labels = {a.fingerprint: alert_labels(a) for a in alerts}
    held = inhibition.inhibitions(active, labels, rules)
    assert set(held) == {"f-alice"}
    assert held["f-alice"].source.alert.fingerprint == "f-bob"


def test_templates_see_the_cause_once_it_is_known(tmp_path: Path) -> None:
    (rule,) = load_rules_text(
        "rules:\n  - name: poor-video\n    metric: qualityScore.video\n    op: '<'\n"
        "    threshold: 3\n    severity: warning\n"
        "    summary: \"{{ participant }}: {{ cause or 'no cause yet' }}\"\n"
        "    description: \"{{ evidence | join(' / ') }}\"\n",
        tmp_path,
    )
    info = ParticipantInfo("s-1", "alice", "m-1", "Alice")
    moment = datetime(2026, 12, 1, 10, tzinfo=UTC)
    state = AlertState("firing", moment, 2.0, fired_at=moment)
    made = transition(rule, info, moment, "firing", value=2.0, state=state, threshold=3.0)
    assert made.summary == "Alice: no cause yet"
    told = explained(made, Verdict("downlink", ("one", "two"), "alice"))
    assert (told.summary, told.description) == ("Alice: downlink", "one / two")
    assert (told.cause, told.evidence, told.cause_participant) == (
        "downlink",
        ("one", "two"),
        "alice",
    )


def load_rules_text(text: str, folder: Path) -> list[Any]:
    path = folder / "rules.yaml"
    path.write_text(text)
    return list(load_rules([path]))


def test_a_resolution_keeps_the_cause_its_episode_fired_with() -> None:
    """Set once, at firing: the resolution carries the same labels, so a group formed by
    them (group_by: [...]) is not split and nobody is told twice."""
    store = Store(":memory:")
    firing = make_alert()
    resolved = replace(
        firing,
        status="resolved",
        cause=None,
        evidence=(),
        cause_participant=None,
        ends_at=firing.fired_at + timedelta(minutes=3),
    )
    with store.transaction() as cur:
        record_alert(cur, firing, ["hook"], "2026-12-01T10:00:00.000Z")
    with store.transaction() as cur:
        record_alert(cur, resolved, ["hook"], "2026-12-01T10:03:00.000Z")
    (kept,) = store.alert_log.active_alerts()
    assert kept.alert.status == "resolved"
    assert (kept.alert.cause, kept.alert.cause_participant) == ("sender-uplink", "bob")
    assert kept.alert.evidence == firing.evidence
    store.close()


# -- what each built-in notifier shows ------------------------------------------------------


def test_every_builtin_notifier_shows_the_cause_and_its_evidence() -> None:
    alert = make_alert()
    evidence = alert.evidence[0]
    note = Notification(id="n", notifier="x", status="firing", alerts=(alert,))
    console = format_alert(alert)
    assert "likely cause: another participant's uplink (sender-uplink)" in console
    assert evidence in console
    mail = text_body(note)
    assert "another participant's uplink (sender-uplink)" in mail
    assert evidence in mail
    annotations = body(note, "hook")["alerts"][0]["annotations"]
    assert annotations["cause"] == "sender-uplink"
    assert annotations["evidence"] == evidence
    slack = json.dumps(message(note))
    assert "*Likely cause*: another participant's uplink (sender-uplink)" in slack
    assert "Bob's send loss 18" in slack
    line = participant_line(Affected(alert, 1))
    assert line.endswith(f" · likely cause: sender-uplink ({evidence})")
    published = publication(note, NtfyConfig(server="https://ntfy.example", topic="t"))
    assert f"(likely cause: sender-uplink: {evidence})" in str(published["message"])


# -- end to end: the daemon, the simulator, the webhook notifier --------------------------

RULES = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 60s
    severity: warning
"""
ELSEWHERE = {
    "location": {"country": "United States", "city": "Ashburn", "region": "Virginia"},
    "network": {"asn": "AS7922", "org": "Comcast Cable"},
}


@pytest.fixture
def population() -> list[dict[str, Any]]:
    people = []
    for name in CAUSE_MEETINGS:
        for member in cause_population(name, 3):
            member.setdefault("envelope", ELSEWHERE)
            people.append(member)
    return people


def _run(sim: Simulator, config: Config, seconds: int) -> None:
    """The daemon's poll cycles, one every 10 s of sample time, each one's notifications
    decided and delivered before the next."""
    runtime = build(config)
    try:
        for _ in range(seconds // 10):
            sim.advance(10)
            runtime.cycle()
            runtime.manager.flush()
            # drain() can stop while a delivery is finishing (it then counts one left):
            # asked again, bounded, it delivers the rest
            for _ in range(5):
                if runtime.dispatcher.drain(10) == 0:
                    break
            else:
                pytest.fail("notifications left undelivered")
    finally:
        runtime.close()


def test_the_daemon_sends_each_cause_meetings_alerts_with_their_cause(
    sim: Simulator, config_for: Any, population: list[dict[str, Any]]
) -> None:
    """Every participant alert the simulator's cause meetings raise reaches the webhook
    receiver with the cause its role says, its evidence and its labels; the receivers a
    lossy sender hurts are held back by the example inhibit rule, and ``status`` shows
    them with their cause and who explains them."""
    sim.add_population(population)
    expected = {(m["session"], m["participant"]): m["cause"] for m in population}
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    inhibit = [
        r for r in example["alerting"]["inhibit_rules"] if r["name"].startswith("sender-uplink")
    ]
    with Sink() as sink:
        config = config_for(
            sorted(expected),
            rules=RULES,
            notifiers={"hook": {"type": "webhook", "url": sink.url}},
            alerting={"inhibit_rules": inhibit, "group_by": ["..."]},
            poll={"interval": "10s", "concurrency": 4},
        )
        _run(sim, config, 240)
        told = {
            (a["labels"]["session_id"], a["labels"]["participant_id"]): a
            for b in sink.received
            for a in b["alerts"]
        }
        out = io.StringIO()
        print_status(config, out, as_json=True)
        text = io.StringIO()
        print_status(config, text)
    should_alert = {key for key, cause in expected.items() if cause is not None}
    muted = {key for key in should_alert if expected[key] == "sender-uplink"}
    assert set(told) == should_alert - muted  # healthy people raise nothing
    for key, alert in told.items():
        assert alert["labels"]["cause"] == expected[key], (key, alert["annotations"])
        assert alert["annotations"]["cause"] == expected[key]
        assert 1 <= len(alert["annotations"]["evidence"].splitlines()) <= 3
        if expected[key] in ("uplink", "downlink", "device"):
            assert alert["labels"]["cause_participant"] == key[1]
    rows = {(r["sessionId"], r["participantId"]): r for r in json.loads(out.getvalue())}
    sender = next(
        m
        for m in population
        if m["scenario"] == "send-loss" and m["session"] == ("sess-cause-sender-uplink")
    )
    for key in muted:
        (firing,) = rows[key]["firing"]
        assert firing["cause"] == "sender-uplink"
        assert firing["causeParticipant"] == sender["participant"]
        assert firing["evidence"][0].startswith(f"{sender['name']}'s send loss ")
        assert firing["inhibitedBy"]["inhibitRule"] == "sender-uplink-mutes-its-receivers"
    assert "likely cause: another participant's uplink (sender-uplink)" in text.getvalue()


def test_two_instances_judge_a_platform_cause_over_both_ones_meetings(
    sim: Simulator, config_for: Any, population: list[dict[str, Any]], postgres_url: str
) -> None:
    """The cause meetings split between two instances on one PostgreSQL: neither polls
    three of the four degraded meetings in one place, which a platform cause needs, but
    each tells the other its place loads every cycle, so the regional meetings' alerts
    still say ``platform`` (and every other cause is what it is alone)."""
    sim.add_population(population)
    expected = {(m["session"], m["participant"]): m["cause"] for m in population}
    regional = {m["session"] for m in population if m["scenario"] == "regional"}
    with Sink() as sink:
        config = config_for(
            sorted(expected),
            rules=RULES,
            notifiers={"hook": {"type": "webhook", "url": sink.url}},
            alerting={"group_by": ["..."]},
            poll={"interval": "10s", "concurrency": 4},
            state={"url": postgres_url},
        )
        members = [build(as_instance(config, ident), join=True) for ident in ("one", "two")]
        try:
            one, two = (m.cluster for m in members)
            assert one is not None
            assert two is not None
            for member in (one, two, one, two):  # one leads and claims all, then hands half
                member.tick()
            for member in (one, two):
                polled = {s for s, _ in member.held} & regional
                assert 0 < len(polled) < 3, polled  # alone, neither would see a platform
            for _ in range(24):
                sim.advance(10)
                for runtime in members:
                    runtime.cycle()
                for runtime in members:
                    runtime.manager.flush()
                    assert runtime.dispatcher.drain(10) == 0
        finally:
            for runtime in members:
                runtime.close()
        told = {
            (a["labels"]["session_id"], a["labels"]["participant_id"]): a
            for b in sink.received
            for a in b["alerts"]
            if a["status"] == "firing"
        }
    assert set(told) == {key for key, cause in expected.items() if cause is not None}
    for key, alert in told.items():
        assert alert["labels"]["cause"] == expected[key], (key, alert["annotations"])
    platform = [a for a in told.values() if a["labels"]["cause"] == "platform"]
    assert len(platform) == 12  # four meetings of three
    assert all(
        "4 of 5 meetings in region Hesse, Germany" in a["annotations"]["evidence"] for a in platform
    ), platform[0]["annotations"]["evidence"]


def test_an_instance_tells_its_own_place_loads_and_counts_the_others_in() -> None:
    """What one instance shares: its own meetings per place (never what it was told), the
    busiest places first when there are too many; what it is told adds to its own."""
    places = Places()
    where = places_of("Germany", "Hesse", "DT")
    for meeting in range(2):
        places.seen(where, f"m{meeting}", f"p{meeting}", T0, degraded=True, alone=True)
    places.seen(where, "m2", "p2", T0, degraded=False, alone=True)
    assert places.summary(T0) == {"region Hesse, Germany": (2, 3), "network DT": (2, 3)}
    places.count_in({"region Hesse, Germany": (2, 2), "region Elsewhere": (5, 5)})
    assert places.load(where, T0) == [
        PlaceLoad("region Hesse, Germany", 4, 5),
        PlaceLoad("network DT", 2, 3),
    ]
    assert places.summary(T0) == {"region Hesse, Germany": (2, 3), "network DT": (2, 3)}
    places.count_in({})
    assert places.load(where, T0)[0] == PlaceLoad("region Hesse, Germany", 2, 3)

    crowd = Places()
    for number in range(SHARED_PLACES + 10):
        busy = 2 if number < 5 else 1
        for meeting in range(busy):
            crowd.seen(
                (f"network {number}" + "x" * 300,),
                f"m{number}.{meeting}",
                "p",
                T0,
                degraded=False,
                alone=True,
            )
    shared = crowd.summary(T0)
    assert len(shared) == SHARED_PLACES
    assert all(len(place) == MAX_PLACE for place in shared)
    assert sum(meetings for _, meetings in shared.values()) == SHARED_PLACES + 5


@pytest.mark.parametrize(
    "rows",
    [
        ["not json", "[1, 2]", '{"p": [1]}', '{"p": [true, 1]}', '{"p": [-1, 2]}'],
        ['{"p": [1.5, 2]}', '{"p": "3,3"}', "null"],
    ],
)
def test_another_instances_garbled_place_row_is_skipped(rows: list[str]) -> None:
    """A row another instance (or anyone with the database) wrote badly costs its own
    part only."""
    assert summed_places([*rows, '{"region R": [1, 2]}', '{"region R": [9, 3]}']) == {
        "region R": (4, 5)  # a degraded count above its meetings is cut to them
    }
