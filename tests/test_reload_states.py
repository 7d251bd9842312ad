"""What a reload does to alert states (pure: no daemon needed)."""

from __future__ import annotations

from watchdog.alerting.carryover import (
    REMOVED,
    carry_over,
    carry_over_meetings,
    closed_alerts,
)
from watchdog.engine.evaluate import AlertState
from watchdog.videosdk.stats import ParticipantInfo

from .conftest import POOR_VIDEO
from .helpers import at, parse_rules

TWO_RULES = (
    POOR_VIDEO
    + """\
  - name: rtt-high
    metric: averageVideoRtt
    op: ">"
    threshold: 300
    notify: [pager]
"""
)


def test_surviving_rules_keep_state_removed_ones_close() -> None:
    old = parse_rules(TWO_RULES)
    new = parse_rules(POOR_VIDEO.replace("threshold: 3", "threshold: 2.5"))
    firing = AlertState("firing", at(0), 400.0, fired_at=at(0))
    pending = AlertState("pending", at(10), 2.0)
    states = {
        ("s", "a"): {"poor-video": pending, "rtt-high": firing},
        ("s", "b"): {"poor-video": firing},
        ("s", "c"): {"rtt-high": pending},
    }
    result = carry_over(old, new, states, at(99))
    assert set(result) == {("s", "a"), ("s", "c")}  # b is untouched
    a = result[("s", "a")]
    assert a.states == {"poor-video": pending}
    assert a.dropped == {"rtt-high"}
    (closed,) = a.closed
    assert (closed.state, closed.rule.name, closed.value) == ("resolved", "rtt-high", 400.0)
    assert closed.active_since == at(0)
    assert closed.rule.notify == ["pager"]  # the removed rule's own routing
    ((alert, notify),) = closed_alerts(a)  # for the alert manager, with the rule's notify
    assert notify == ["pager"]
    assert (alert.status, alert.reason) == ("resolved", REMOVED)
    c = result[("s", "c")]
    assert (c.states, c.dropped, c.closed) == ({}, {"rtt-high"}, [])  # pending: just dropped


MEETING_RULE = """\
  - name: meeting-poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting:
      fraction: 0.5
    notify: [pager]
"""


def test_meeting_rules_follow_the_same_policy() -> None:
    old = parse_rules(POOR_VIDEO + MEETING_RULE)
    firing = AlertState("firing", at(0), 0.75, fired_at=at(20))
    pending = AlertState("pending", at(30), 0.5)
    states = {
        ("meeting-poor-video", "abcd-efgh-ijkl"): firing,
        ("meeting-poor-video", "session:s9"): pending,
    }
    kept = carry_over_meetings(old, old, states, at(99))
    assert (kept.states, kept.dropped, kept.closed) == (states, set(), [])

    gone = carry_over_meetings(old, parse_rules(POOR_VIDEO), states, at(99))
    assert gone.states == {}
    assert gone.dropped == set(states)
    ((alert, notify),) = closed_alerts(gone)  # only the firing one is told
    assert notify == ["pager"]
    assert (alert.status, alert.reason, alert.meeting_id) == ("resolved", REMOVED, "abcd-efgh-ijkl")
    assert alert.starts_at == at(0)


def test_closing_alerts_name_the_participant_when_known() -> None:
    old = parse_rules(TWO_RULES)
    firing = AlertState("firing", at(0), 400.0, fired_at=at(0))
    info = ParticipantInfo(session_id="s", participant_id="a", name="Alice", meeting_id="m-1")
    result = carry_over(
        old, parse_rules(POOR_VIDEO), {("s", "a"): {"rtt-high": firing}}, at(9), {("s", "a"): info}
    )
    ((alert, _),) = closed_alerts(result[("s", "a")])
    assert (alert.participant_name, alert.meeting_id) == ("Alice", "m-1")
