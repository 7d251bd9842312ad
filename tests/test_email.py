"""The email notifier against a real SMTP server on loopback (STARTTLS, implicit TLS, AUTH)."""

from __future__ import annotations

import email.policy
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import watchdog_email
from hypothesis import HealthCheck, given, settings
from watchdog_email import EmailNotifier
from watchdog_email.render import MAX_SUBJECT

from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy
from watchdog.alerts import MEETING_VIEW, Alert, Notification
from watchdog.charts import report_chart_png
from watchdog.config.problems import ConfigError
from watchdog.notifiers import DeliveryError
from watchdog.state.store import Store
from watchdog.testing import (
    NotifierContract,
    PluginTestHost,
    TLSCertificates,
    grouped_notification,
    make_alert,
    make_notification,
    make_report,
    resolved,
)

from .helpers import record_alerts
from .hostile import hostile_notifications
from .smtpserver import PASSWORD, USER, SMTPServer, mail_problems

BY_SESSION = ("meeting_id", "session_id")  # grouped, but not the meeting view


@pytest.fixture
def smtp(tls_certificates: TLSCertificates) -> Iterator[SMTPServer]:
    with SMTPServer(tls_certificates.server_context) as server:
        yield server


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_email, "email")
    return notifier_host


def config(port: int, ca_file: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "from": "VideoSDK Watchdog <watchdog@example.com>",
        "to": ["oncall@example.com"],
        "ca_file": ca_file,
        "timeout": 5,
        **extra,
    }


class TestEmailContract(NotifierContract):
    notifier_type = "email"
    plugin = watchdog_email

    @pytest.fixture
    def notifier_config(
        self, smtp: SMTPServer, tls_certificates: TLSCertificates
    ) -> dict[str, Any]:
        body = config(smtp.port, tls_certificates.ca_file)
        del body["type"]
        return body

    @pytest.fixture
    def unreachable_config(self, unused_port: int) -> dict[str, Any]:
        body = config(unused_port, None)
        del body["type"]
        return body

    @pytest.fixture
    def delivered(self, smtp: SMTPServer) -> Callable[[], int]:
        return lambda: len(smtp.messages)


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


def test_starttls_auth_and_both_parts(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    notifier = host.build(config(smtp.port, tls_certificates.ca_file))
    notifier.send(make_notification(make_alert(severity="critical")))
    (mail,) = smtp.messages
    assert smtp.mailbox.logins == [USER]  # AUTH happened, and only over TLS (server requires it)
    assert mail["Subject"] == (
        "[videosdk-watchdog] [FIRING:critical] poor-video: Alice (part-1) in meeting abcd-efgh-ijkl"
    )
    assert mail["To"] == "oncall@example.com"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content_type() == "multipart/alternative"
    text, html = _parts(mail)
    for fact in ("qualityScore.video = 2.41 (threshold < 3)", "Alice (part-1)", "abcd-efgh-ijkl"):
        assert fact in text
    assert "qualityScore.video = 2.41 (threshold &lt; 3)" in html
    assert "#d0312d" in html  # critical's colour


def test_resolve_and_repeat_are_threaded_under_the_first_mail(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    notifier = host.build(config(smtp.port, tls_certificates.ca_file))
    alert = make_alert()
    firing = make_notification(alert)
    notifier.send(firing)
    notifier.send(make_notification(alert, thread=firing.thread, repeat=True))
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    first, reminder, done = smtp.messages
    root = first["Message-ID"]
    assert root.endswith("@example.com>")
    for follow_up in (reminder, done):
        assert follow_up["In-Reply-To"] == root
        assert follow_up["References"] == root
        assert follow_up["Message-ID"] != root
    assert reminder["Subject"].startswith("[videosdk-watchdog] [STILL FIRING:warning] poor-video")
    assert done["Subject"].startswith("[videosdk-watchdog] [RESOLVED:warning] poor-video")
    text, _ = _parts(done)
    assert "back to 4.2 (threshold < 3)" in text
    assert "lasted 6m" in text

    again = make_notification(alert, thread="next-incident")  # a new incident, a new thread
    notifier.send(again)
    assert smtp.messages[-1]["Message-ID"] not in {root, None}
    assert smtp.messages[-1]["In-Reply-To"] is None


def test_grouped_mail_lists_every_alert(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    group = grouped_notification(3, group_by=BY_SESSION)
    host.build(config(smtp.port, tls_certificates.ca_file)).send(group)
    (mail,) = smtp.messages
    assert mail["Subject"] == (
        "[videosdk-watchdog] [FIRING:critical] 3 of 3 alerts in meeting abcd-efgh-ijkl: "
        "high-rtt, poor-video"
    )
    text, html = _parts(mail)
    for name in ("Alice", "Bob", "Chandra"):
        assert name in text
        assert name in html
    assert "averageVideoRtt = 512.5 (threshold > 300)" in text


def test_implicit_tls(tls_certificates: TLSCertificates, host: PluginTestHost) -> None:
    with SMTPServer(tls_certificates.server_context, mode="tls") as server:
        notifier = host.build(config(server.port, tls_certificates.ca_file, security="tls"))
        notifier.send(make_notification())
        assert len(server.messages) == 1
        assert server.mailbox.logins == [USER]


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_untrusted_certificate_is_refused(
    tls_certificates: TLSCertificates, host: PluginTestHost, mode: str
) -> None:
    with SMTPServer(tls_certificates.server_context, mode=mode) as server:
        notifier = host.build(config(server.port, None, security=mode))
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        assert "not trusted" in str(caught.value)
        assert "unable to get local issuer certificate" in str(caught.value)
        assert not server.messages


def test_wrong_password_is_permanent_and_not_shown(
    tls_certificates: TLSCertificates, host: PluginTestHost
) -> None:
    with SMTPServer(tls_certificates.server_context, password="another") as server:
        notifier = host.build(config(server.port, tls_certificates.ca_file))
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        assert caught.value.permanent
        assert "refused the login" in str(caught.value)
        assert PASSWORD not in str(caught.value)


def test_config_is_checked(host: PluginTestHost) -> None:
    with pytest.raises(ConfigError) as caught:
        host.build(
            {
                "type": "email",
                "host": "mail",
                "security": "none",
                "username": "u",
                "password": "hunter2-secret",
                "from": "nobody",
                "to": [],
            }
        )
    messages = "\n".join(p.message for p in caught.value.problems)
    assert "from: Value error, 'nobody' is not an email address" in messages or (
        "'nobody' is not an email address" in messages
    )
    assert "to: List should have at least 1 item" in messages
    assert "hunter2-secret" not in messages
    with pytest.raises(ConfigError) as plain:
        host.build(
            {
                "type": "email",
                "host": "mail",
                "security": "none",
                "username": "u",
                "password": "hunter2-secret",
                "from": "wd@example.com",
                "to": ["a@example.com"],
            }
        )
    assert "a password is only sent over TLS" in str(plain.value)


def test_an_acknowledgement_notice_answers_the_alerts_mail_saying_who(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    """With ``send_acknowledged: true`` the thread hears who took the alert and who gave it
    back, not a new firing; the resolve still answers the first mail."""
    notifier = host.build(config(smtp.port, tls_certificates.ca_file, send_acknowledged=True))
    alert = make_alert()
    firing = make_notification(alert)
    notifier.send(firing)
    for event in ("acknowledged", "unacknowledged"):
        notice = make_notification(alert, thread=firing.thread)
        notifier.send(replace(notice, event=event, actor="alice (U0ALICE01)", reason=event))
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    first, acked, unacked, done = smtp.messages  # each parsed strictly by the server
    prefix = "[videosdk-watchdog] "
    subject = "[ACKNOWLEDGED:warning] poor-video: Alice (part-1) in meeting abcd-efgh-ijkl"
    assert acked["Subject"] == prefix + subject
    assert unacked["Subject"].startswith(prefix + "[UNACKNOWLEDGED:warning] poor-video")
    text, html = _parts(acked)
    assert text.startswith("Acknowledged by alice (U0ALICE01): no more reminders or escalation.")
    assert "Acknowledged by alice (U0ALICE01)" in html
    assert "Reminder" not in text
    assert _parts(unacked)[0].startswith("Unacknowledged (alice (U0ALICE01)): reminders")
    root = first["Message-ID"]
    for follow_up in (acked, unacked, done):
        assert follow_up["In-Reply-To"] == root
    assert len({m["Message-ID"] for m in smtp.messages}) == 4
    assert done["Subject"].startswith(prefix + "[RESOLVED:warning]")

    # a notice with no mail before it stands alone: the alert's first mail is still its own
    other = make_alert(participant_id="part-2")
    lone = make_notification(other)
    notifier.send(replace(lone, event="acknowledged", actor="bob"))
    notifier.send(lone)
    lone_mail, fired = smtp.messages[-2:]
    assert lone_mail["In-Reply-To"] is None
    assert fired["In-Reply-To"] is None
    assert lone_mail["Message-ID"] != fired["Message-ID"]


def test_a_departure_resolve_says_why(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    alert = make_alert()
    left = resolved(alert, reason="participant left the session")
    host.build(config(smtp.port, tls_certificates.ca_file)).send(make_notification(left))
    text, html = _parts(smtp.messages[0])
    assert "Reason:       participant left the session" in text
    assert "last qualityScore.video = 2.41 (threshold < 3)" in text
    assert "back to" not in text
    assert "participant left the session" in html


def test_firing_mail_embeds_the_chart_inline(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    notifier = host.build(config(smtp.port, tls_certificates.ca_file))
    notifier.send(make_notification(make_alert(values=[4.0, 3.5, 3.1, 2.6, 2.41])))
    (mail,) = smtp.messages
    assert mail.get_content_type() == "multipart/alternative"
    related = mail.get_payload()[1]  # type: ignore[index]
    assert isinstance(related, EmailMessage)
    assert related.get_content_type() == "multipart/related"
    assert related.get_param("type") == "text/html"  # RFC 2387: the root part's type
    assert 'type="text/html"' in str(related["Content-Type"])
    html_part, image = related.iter_parts()
    assert isinstance(html_part, EmailMessage)
    assert isinstance(image, EmailMessage)
    assert image.get_content_type() == "image/png"
    cid = str(image["Content-ID"]).strip("<>")
    assert f'src="cid:{cid}"' in str(html_part.get_content())
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_part_is_a_titled_document(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    group = grouped_notification(3, group_by=BY_SESSION)
    host.build(config(smtp.port, tls_certificates.ca_file)).send(group)
    (mail,) = smtp.messages  # the server parsed it strictly, HTML included
    _, html = _parts(mail)
    assert html.startswith('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>')
    assert "<title>[videosdk-watchdog] [FIRING:critical] 3 of 3 alerts in meeting" in html


def test_a_resolve_whose_firing_mail_was_never_sent_stands_alone(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    """Fired and resolved within group_wait: the core sends only the resolve."""
    notifier = host.build(config(smtp.port, tls_certificates.ca_file))
    alert = make_alert()
    firing = make_notification(alert)  # held back by group_wait, never sent
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    (mail,) = smtp.messages
    assert mail["Subject"].startswith("[videosdk-watchdog] [RESOLVED:warning] poor-video")
    assert mail["In-Reply-To"] is None
    assert mail["References"] is None
    assert host.states["test"].get(firing.thread) is None


def test_fired_and_resolved_within_group_wait_through_the_alert_manager(
    tmp_path: Path, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    """The core's own resolve-only notification: one mail, answering nothing."""
    store = Store(str(tmp_path / "state.db"))
    now = datetime.now(UTC)

    def clock() -> datetime:
        return now

    policy = Policy(group_wait=timedelta(seconds=30))
    manager = AlertManager(
        store.alert_log, store.silences, AlertingConfig(policies={"mail": policy}), clock=clock
    )
    host = PluginTestHost()
    host.add(watchdog_email, "email")
    mail = host.host.build(
        {"mail": config(smtp.port, tls_certificates.ca_file)}, store.notifier_memory.for_notifier
    )["mail"]
    alert = make_alert()
    record_alerts(store, [(alert, ("mail",))])
    record_alerts(store, [(resolved(alert), ("mail",))])
    now += timedelta(seconds=31)
    assert manager.flush() == 1
    for entry in store.outbox.entries():
        mail.send(entry.notification)
        store.outbox.delivered(entry.id)
    (message,) = smtp.messages  # and the server found it standards-clean
    assert message["Subject"].startswith("[videosdk-watchdog] [RESOLVED:warning] poor-video")
    assert message["In-Reply-To"] is None
    assert message["References"] is None
    store.close()


def test_a_firing_mail_that_failed_is_not_answered(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates, unused_port: int
) -> None:
    alert = make_alert()
    firing = make_notification(alert)
    down = host.build(config(unused_port, tls_certificates.ca_file), "oncall")
    with pytest.raises(DeliveryError):
        down.send(firing)
    up = host.build(config(smtp.port, tls_certificates.ca_file), "oncall")  # same state
    up.send(make_notification(resolved(alert), thread=firing.thread))
    (mail,) = smtp.messages
    assert mail["In-Reply-To"] is None


def test_a_retried_mail_keeps_its_message_id(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    """Sent twice (a crash before the outbox noted it), a mail is recognisably one."""
    notifier = host.build(config(smtp.port, tls_certificates.ca_file))
    alert = make_alert()
    firing = make_notification(alert)
    done = make_notification(resolved(alert), thread=firing.thread)
    for notification in (firing, firing, done, done):
        notifier.send(notification)
    first, again, resolve, resolve_again = smtp.messages
    assert first["Message-ID"] == again["Message-ID"]
    assert again["In-Reply-To"] is None
    assert resolve["Message-ID"] == resolve_again["Message-ID"] != first["Message-ID"]
    assert resolve["In-Reply-To"] == first["Message-ID"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_notifications(max_alerts=5))  # html5lib reads ~0.5 MB/s: keep mails small
def test_any_alert_composes_a_standards_clean_mail(drawn: tuple[Notification, list[str]]) -> None:
    """Whatever the alerts say (newlines in a name, control characters, lone surrogates,
    markup), the mail parses strictly and its HTML without error."""
    notification, pool = drawn
    host = PluginTestHost()
    host.add(watchdog_email, "email")
    notifier = host.build(config(25, None, charts=False))
    assert isinstance(notifier, EmailNotifier)
    as_meeting = replace(notification, group_labels={"meeting_id": pool[0]}, watched=3)
    for told in (notification, as_meeting):  # and as the meeting view would tell it
        mail = notifier.compose(told)
        assert len(str(mail["Subject"])) <= MAX_SUBJECT
        parsed = BytesParser(policy=email.policy.strict).parsebytes(mail.as_bytes())
        assert isinstance(parsed, EmailMessage)
        assert mail_problems(parsed, sent=set()) == []


def _meeting(*alerts: Alert, watched: int) -> Notification:
    notification = make_notification(*alerts, thread="meeting-thread", group_by=MEETING_VIEW)
    return replace(notification, watched=watched)


def test_a_meeting_is_one_mail_thread_each_mail_showing_the_meeting(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    """With group_by: [meeting_id] every mail about the meeting answers its first one and
    shows the meeting as it is then: who is affected (worst metric each), what changed."""
    notifier = host.build(config(smtp.port, tls_certificates.ca_file))
    alice = make_alert(participant_id="p1", values=[4.0, 3.4, 2.9, 2.41])
    bob = make_alert(participant_id="p2", participant_name="Bob", severity="critical", value=1.2)
    for notification in (
        _meeting(alice, watched=12),
        _meeting(alice, bob, watched=12),
        _meeting(resolved(alice), bob, watched=11),
        _meeting(resolved(bob, reason="the session ended"), watched=0),
    ):
        notifier.send(notification)
    first, *answers = smtp.messages  # each parsed strictly by the server, HTML included
    root = first["Message-ID"]
    assert [(m["In-Reply-To"], m["References"]) for m in answers] == [(root, root)] * 3
    assert [m["Subject"].removeprefix("[videosdk-watchdog] ") for m in smtp.messages] == [
        "[DEGRADED:warning] meeting abcd-efgh-ijkl: 1 of 12 watched participants affected",
        "[DEGRADED:critical] meeting abcd-efgh-ijkl: 2 of 12 watched participants affected",
        "[DEGRADED:critical] meeting abcd-efgh-ijkl: 1 of 11 watched participants affected",
        "[OVER] meeting abcd-efgh-ijkl: the session ended, after 6m",
    ]
    assert first["X-Watchdog-Meeting"] == "abcd-efgh-ijkl"
    assert first.get_body(("related",)) is not None  # the worst metric's chart, inline

    text, html = _parts(answers[0])
    text = text.replace("\r\n", "\n")
    assert "  2 of 12 watched participants affected, since 2026-11-24 10:00:00 UTC" in text
    changed = text.split("What changed\n")[1].split("\n\n")[0]
    assert changed == "  [critical] poor-video: Bob (p2): qualityScore.video = 1.2 (threshold < 3)"
    people = text.split("Affected participants (worst metric each)\n")[1].split("\n\n")[0]
    assert people.splitlines() == [
        "  [critical] poor-video: Bob (p2): qualityScore.video = 1.2 (threshold < 3)",
        "  [warning] poor-video: Alice (p1): qualityScore.video = 2.41 (threshold < 3)",
    ]
    assert (
        "<li>[critical] poor-video: Bob (p2): qualityScore.video = 1.2 (threshold &lt; 3)" in html
    )
    text, _ = _parts(answers[1])
    assert (
        "  RESOLVED [warning] poor-video: Alice (p1): qualityScore.video back to 4.2 "
        "(threshold < 3), after 6m"
    ) in text
    text, _ = _parts(answers[2])
    assert "  Over: the session ended, after 6m (from 2026-11-24 10:00:00 UTC until" in text
    assert host.states["test"].get("meeting-thread") is None  # the thread is over


def test_a_two_hundred_participant_meeting_mail_lists_the_worst_fifty(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    notifier = host.build(config(smtp.port, tls_certificates.ca_file, charts=False))
    people = [
        make_alert(participant_id=f"p{n}", participant_name=f"<b>Person {n}</b>\r\nBcc: x@y")
        for n in range(200)
    ]
    notifier.send(_meeting(*people, watched=230))
    (mail,) = smtp.messages  # the server's strict parser found no defect
    assert mail["Subject"].endswith("200 of 230 watched participants affected")
    text, html = _parts(mail)
    assert "  ...and 150 more" in text
    assert "&lt;b&gt;Person " in html
    assert mail["Bcc"] is None


@pytest.mark.parametrize("charts", [True, False])
def test_a_call_report_answers_the_meetings_first_mail(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates, charts: bool
) -> None:
    """The report of a meeting's call is a mail in that meeting's thread, its chart inline
    where matplotlib is there (and wanted), its text readable alone; then the thread is
    told and its record gone."""
    notifier = host.build(config(smtp.port, tls_certificates.ca_file, charts=charts))
    alice = make_alert(participant_id="p1", values=[4.0, 3.4, 2.9, 2.41])
    notifier.send(_meeting(alice, watched=2))
    notifier.send(_meeting(resolved(alice, reason="the session ended"), watched=0))
    call = make_report("call")
    notifier.send(call)
    first, _, report = smtp.messages  # each parsed strictly by the server, HTML included
    parsed = BytesParser(policy=email.policy.strict).parsebytes(report.as_bytes())
    root = first["Message-ID"]
    assert (parsed["In-Reply-To"], parsed["References"]) == (root, root)
    assert parsed["X-Watchdog-Event"] == "report"
    assert parsed["X-Watchdog-Meeting"] == "abcd-efgh-ijkl"
    assert parsed["Subject"] == f"[videosdk-watchdog] {call.report.title}"  # type: ignore[union-attr]
    text, html = _parts(parsed)
    for line in ("Alice (part-1): 4 of 10 min degraded", "acknowledged by alice"):
        assert line in text
        assert line in html
    assert "<img" not in text
    related = parsed.get_body(("related",))
    drawn = charts and report_chart_png(call.report) is not None  # type: ignore[arg-type]
    assert (related is not None) == drawn
    if related is not None:
        html_part, image = related.iter_parts()
        assert isinstance(image, EmailMessage)
        assert image.get_content_type() == "image/png"
        assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
        cid = str(image["Content-ID"]).strip("<>")
        assert f'src="cid:{cid}"' in str(html_part.get_content())
    else:
        assert "cid:" not in html
    assert host.states["test"].get("meeting-thread:abcd-efgh-ijkl") is None  # told


def test_meeting_thread_records_without_a_report_are_forgotten_after_the_retention(
    host: PluginTestHost, smtp: SMTPServer, tls_certificates: TLSCertificates
) -> None:
    """With ``report: {when: never}`` no report deletes a meeting's thread record: the
    next meeting's mail forgets those older than ``history.retention`` (here none kept)."""
    host.retention = timedelta(0)
    notifier = host.build(config(smtp.port, tls_certificates.ca_file, charts=False))
    notifier.send(_meeting(make_alert(meeting_id="room-1"), watched=1))
    state = host.states["test"]
    assert state.get("meeting-thread:room-1") is not None
    notifier.send(_meeting(make_alert(meeting_id="room-2"), watched=1))
    assert state.get("meeting-thread:room-1") is None
    assert state.get("meeting-thread:room-2") is not None
    assert state.get("meeting-thread") is not None  # the alert thread itself stays
