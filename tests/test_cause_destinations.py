"""The likely cause and its evidence (issue 20) in the destinations of issue 19: Teams'
card (valid against the published schema), Apprise's bodies, the annotations pushed to
Alertmanager and PagerDuty's custom details."""

from __future__ import annotations

from watchdog_alertmanager.payload import alert_annotations
from watchdog_apprise.render import DEFAULT_TITLE, render
from watchdog_pagerduty.events import DEFAULT_SEVERITIES, Links, events
from watchdog_teams.card import message

from watchdog.alerts import Notification
from watchdog.testing import make_alert, make_notification

from .test_teams import shown, valid_card

EVIDENCE = (
    "Bob's send loss 18 (receive 0.2) over the last 60s",
    "4 of 5 receivers of Bob degraded",
)


def _caused() -> Notification:
    return make_notification(
        make_alert(cause="sender-uplink", evidence=EVIDENCE, cause_participant="bob")
    )


def test_teams_card_shows_the_likely_cause_and_its_evidence() -> None:
    card = message(_caused()).card
    valid_card(card)
    words = shown(card)
    assert "Likely cause: another participant's uplink (sender-uplink)" in words
    assert all(line in words for line in EVIDENCE)


def test_apprise_bodies_show_the_likely_cause_and_its_evidence() -> None:
    rendered = render(_caused(), DEFAULT_TITLE, 10)
    for body in (rendered.text, rendered.markdown):
        assert "another participant's uplink (sender-uplink)" in body
        assert "Bob's send loss 18" in body


def test_alertmanager_annotations_and_pagerduty_details_carry_it() -> None:
    notification = _caused()
    alert = notification.alerts[0]
    annotations = alert_annotations(alert)
    assert annotations["cause"] == "another participant's uplink (sender-uplink)"
    assert annotations["evidence"].splitlines() == list(EVIDENCE)
    [event] = events(notification, DEFAULT_SEVERITIES, None, Links())
    details = event["payload"]["custom_details"]
    assert details["cause"] == "sender-uplink"
    assert details["evidence"] == list(EVIDENCE)
