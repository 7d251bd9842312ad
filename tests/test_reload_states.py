"""What a reload does to alert states (pure: no daemon needed)."""

from __future__ import annotations

from watchdog.engine import AlertState
from watchdog.reload import REMOVED, carry_over, closed_alerts
from watchdog.rules import parse_rules

from .conftest import POOR_VIDEO
from .helpers import at

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
