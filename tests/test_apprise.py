"""The Apprise notifier through Apprise's real services, each landing on a server on 127.0.0.1:
``json://`` and ``form://`` on an HTTP receiver, ``ntfy://`` (a real service's schema) on
the same, ``mailtos://`` on the project's SMTP server (STARTTLS, AUTH, strict checks)."""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import watchdog_apprise
import yaml
from apprise import NotifyFormat
from apprise.conversion.format import convert_between as _convert_between
from watchdog_apprise.render import render
from watchdog_apprise.targets import secret_parts

from watchdog.cli.main import main
from watchdog.config.problems import ConfigError
from watchdog.notifiers import DeliveryError, Notifier, Redactor
from watchdog.sim.simulator import Simulator
from watchdog.testing import (
    EndlessAnswer,
    HttpReceiver,
    NotifierContract,
    PluginTestHost,
    Received,
    Reply,
    TLSCertificates,
    grouped_notification,
    make_alert,
    make_notification,
    resolved,
)

from .conftest import write_config
from .helpers import video_series
from .processes import Daemon
from .smtpserver import PASSWORD, SMTPServer

# Apprise's own Markdown-to-HTML conversion (untyped there), as an email target gets it
convert_between: Callable[[NotifyFormat, NotifyFormat, str], str] = _convert_between
TOKEN = "apprise-hook-token-5a7c1e"  # the secret in a JSON target's path
NTFY_PASSWORD = "ntfy-pass-93b1d0"


def port(receiver: HttpReceiver) -> str:
    return receiver.url.rsplit(":", 1)[1]


def json_url(receiver: HttpReceiver, path: str = "hook") -> str:
    return f"json://watchdog:{NTFY_PASSWORD}@127.0.0.1:{port(receiver)}/{path}/{TOKEN}"


@pytest.fixture
def host(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_apprise, "apprise")
    return notifier_host


def build(host: PluginTestHost, *urls: str, **extra: Any) -> Notifier:
    return host.build({"type": "apprise", "urls": list(urls), **extra}, "chat")


class TestAppriseContract(NotifierContract):
    notifier_type = "apprise"
    plugin = watchdog_apprise

    @pytest.fixture
    def notifier_config(self, http_receiver: HttpReceiver) -> dict[str, Any]:
        return {"urls": [json_url(http_receiver)]}

    @pytest.fixture
    def unreachable_config(self, unused_port: int) -> dict[str, Any]:
        return {"urls": [f"json://watchdog:{NTFY_PASSWORD}@127.0.0.1:{unused_port}/x/{TOKEN}"]}

    @pytest.fixture
    def delivered(self, http_receiver: HttpReceiver) -> Callable[[], int]:
        return lambda: len(http_receiver.requests)


# -- what lands where ------------------------------------------------------------------


def test_json_target_gets_the_markdown_rendering(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    alert = make_alert(severity="critical", sparkline="▇▆▃▁▁")
    build(host, json_url(http_receiver)).send(make_notification(alert))
    (request,) = http_receiver.requests
    assert request.path == f"/hook/{TOKEN}"
    assert request.headers["authorization"].startswith("Basic ")
    sent = request.json()
    assert sent["title"] == "FIRING [critical] poor-video: Alice (part-1) in meeting abcd-efgh-ijkl"
    assert sent["type"] == "failure"  # Apprise's type for a critical alert: a red one
    assert sent["message"].splitlines() == [
        "**FIRING \\[critical\\] poor-video**",
        "- **Participant:** Alice (part-1)",
        "- **Meeting:** meeting abcd-efgh-ijkl, session sess-1",
        "- **Value:** qualityScore.video = 2.41 (threshold \\< 3)",
        "- **Trend:** `▇▆▃▁▁`",
        "- **Time:** firing for 1m (since 10:00:00 UTC)",
        "- **Description:** Video quality score is below 3 (MOS scale 1-5).",
    ]


def test_format_text_sends_plain_text_and_the_resolve_says_how_long(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    notifier = build(host, f"form://127.0.0.1:{port(http_receiver)}/form", format="text")
    alert = make_alert()
    notifier.send(make_notification(resolved(alert)))
    (request,) = http_receiver.requests
    form = {k: v[0] for k, v in parse_qs(request.text()).items()}
    assert form["title"].startswith("RESOLVED [warning] poor-video: Alice (part-1)")
    assert form["type"] == "success"
    lines = form["message"].splitlines()
    assert lines[0] == "RESOLVED [warning] poor-video"
    assert "Value: qualityScore.video back to 4.2 (threshold < 3)" in lines
    assert "Time: lasted 6m (until 10:06:00 UTC)" in lines
    assert "*" not in form["message"]


def test_ntfy_service_reads_plain_text_unless_its_url_asks_for_markdown(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    """ntfy is a real Apprise service (its schema, auth and JSON): pointed at 127.0.0.1."""
    base = f"ntfy://watchdog:{NTFY_PASSWORD}@127.0.0.1:{port(http_receiver)}/oncall"
    notifier = build(host, base, base + "?format=markdown")
    notifier.send(make_notification(make_alert(participant_name="Bob_the *builder*")))
    plain, marked = sorted(http_receiver.requests, key=lambda r: "x-markdown" in r.headers)
    for request in (plain, marked):
        assert request.path == "/"
        assert request.json()["topic"] == "oncall"
        assert request.json()["title"].startswith("FIRING [warning] poor-video: Bob_the *builder*")
    assert "Participant: Bob_the *builder* (part-1)" in plain.json()["message"]
    assert marked.headers["x-markdown"] == "yes"
    # a name from the call is shown, never rendered as markup
    assert "Bob\\_the \\*builder\\* (part-1)" in marked.json()["message"]


def test_mailtos_reaches_the_smtp_server_over_starttls(
    host: PluginTestHost,
    tls_certificates: TLSCertificates,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Apprise verifies the server's certificate with the system CAs: the test CA stands in."""
    monkeypatch.setenv("SSL_CERT_FILE", tls_certificates.ca_file)
    caplog.set_level(logging.DEBUG)
    with SMTPServer(tls_certificates.server_context) as smtp:
        url = (
            f"mailtos://watchdog%40example.com:{PASSWORD}@127.0.0.1:{smtp.port}"
            "?smtp=127.0.0.1&mode=starttls&from=wd@example.com&to=oncall@example.com"
            "&format=text"
        )
        notifier = build(host, url)
        notifier.send(make_notification(grouped_notification(3).alerts[0]))
        (mail,) = smtp.messages
    assert (
        mail["Subject"] == "FIRING [critical] poor-video: Alice (part-1) in meeting abcd-efgh-ijkl"
    )
    assert mail.get_content_type() == "text/plain"
    body = mail.get_content()
    assert "Value: qualityScore.video = 2.41 (threshold < 3)" in body
    assert PASSWORD not in caplog.text + repr(notifier)


def test_group_lists_worst_first_with_a_cap(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    group = grouped_notification(5)
    build(host, json_url(http_receiver), max_alerts=2).send(group)
    sent = http_receiver.requests[0].json()
    assert (
        sent["title"]
        == "FIRING [critical] high-rtt, poor-video: 5 alerts in meeting abcd-efgh-ijkl"
    )
    lines = sent["message"].splitlines()
    assert lines[0] == "5 alerts in meeting abcd-efgh-ijkl (5 firing), worst first:"
    # both critical: an RTT 71% past its limit before a score 20% under its own
    assert lines[2].startswith("- **FIRING \\[critical\\] high-rtt**: Dmitri (part-4): ")
    assert lines[3].startswith("- **FIRING \\[critical\\] poor-video**: Alice (part-1): ")
    assert lines[4] == "… and 3 more"


# -- partial success, failures, time ---------------------------------------------------


def test_a_retry_goes_only_to_the_targets_that_failed(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    def answer(request: Received) -> Reply:
        return Reply(503, f"busy {TOKEN}") if "/down/" in request.path else Reply(200)

    http_receiver.handler = answer
    notifier = build(host, json_url(http_receiver, "up"), json_url(http_receiver, "down"))
    notification = make_notification()
    with pytest.raises(DeliveryError) as caught:
        notifier.send(notification)
    assert not caught.value.permanent
    message = str(caught.value)
    assert message.startswith("Apprise: 1 of 2 targets failed: urls[1] (JSON): ")
    assert "error=503" in message
    assert "(accepted by 1, which a retry skips)" in message
    assert TOKEN not in message
    assert NTFY_PASSWORD not in message
    http_receiver.handler = None  # the service is back: the core retries the notification
    notifier.send(replace(notification, attempt=2))
    paths = [r.path.split("/")[1] for r in http_receiver.requests]
    assert paths.count("up") == 1
    assert paths.count("down") == 2


def test_a_refused_request_is_permanent(host: PluginTestHost, http_receiver: HttpReceiver) -> None:
    http_receiver.reply(Reply(401, "bad token"))
    with pytest.raises(DeliveryError) as caught:
        build(host, json_url(http_receiver)).send(make_notification())
    assert caught.value.permanent
    assert "error=401" in str(caught.value)


def test_a_hung_target_costs_at_most_the_timeout(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    """The send returns by ``timeout`` and the target that answered took the message."""

    def answer(request: Received) -> Reply:
        return Reply(200, delay=5.0) if "/hung/" in request.path else Reply(200)

    http_receiver.handler = answer
    notifier = build(
        host, json_url(http_receiver, "hung"), json_url(http_receiver, "fine"), timeout=1
    )
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        notifier.send(make_notification())
    assert time.monotonic() - started < 1 + watchdog_apprise.GRACE
    assert not caught.value.permanent
    assert str(caught.value).startswith("Apprise: 1 of 2 targets failed: urls[0] (JSON)")
    assert any("/fine/" in r.path for r in http_receiver.requests)


@pytest.mark.parametrize("trickle", [None, 0.05])
def test_an_answer_without_end_costs_bounded_memory_and_ends_with_the_send(
    host: PluginTestHost, trickle: float | None
) -> None:
    """Apprise reads a service's answer whole: against a receiver whose body never ends it
    took 1.8 GB in 5 s when it ran in the daemon. The send's own process stops at its
    memory limit (a flood) or is killed at the deadline (a byte at a time), so the
    daemon's memory does not move, the send is back by the timeout plus the grace, and
    nothing reads on after it."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with EndlessAnswer(502, trickle=trickle) as server:
        url = f"json://127.0.0.1:{server.url.rsplit(':', 1)[1]}/hook/{TOKEN}"
        notifier = build(host, url, timeout=2)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        took = time.monotonic() - started
        sent = server.sent
    # the server's loop ends when its client hangs up (else it writes on for 10 s)
    over = time.monotonic() - started
    assert took < 2 + watchdog_apprise.GRACE + 1
    assert over < took + 2  # its process is gone: nobody reads on
    assert not caught.value.permanent
    assert str(caught.value).startswith("Apprise: 1 of 1 targets failed: urls[0] (JSON): ")
    assert TOKEN not in str(caught.value)
    if trickle is None:
        assert "an answer took the send's whole memory: 256 MB" in str(caught.value)
        assert sent < 512 * 2**20  # the limit, and what the sockets' buffers held
    else:
        assert "did not finish within 2" in str(caught.value)  # Apprise's own words
    assert server.sent - sent <= 65536  # at most the piece on its way as it hung up
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 2**10  # KiB


def test_sends_share_a_kept_process_until_one_cannot_be_trusted_and_close_ends_them(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    """Starting a process costs Apprise's import: it is kept between sends. One whose
    send ran out of time (a service's thread may still read) is not used again, and the
    entry's ``close`` (a reload, a stop) ends the one kept."""

    def answer(request: Received) -> Reply:
        return Reply(200, delay=3.0) if "/hung/" in request.path else Reply(200)

    http_receiver.handler = answer
    notifier = build(host, json_url(http_receiver), timeout=1)
    assert isinstance(notifier, watchdog_apprise.AppriseNotifier)
    workers = notifier.workers
    for attempt in range(3):
        notifier.send(replace(make_notification(), id=f"n{attempt}"))
    assert workers.started == 1
    (kept,) = workers.idle
    hung = build(host, json_url(http_receiver, "hung"), timeout=1)
    assert isinstance(hung, watchdog_apprise.AppriseNotifier)
    for attempt in range(2):
        with pytest.raises(DeliveryError, match="did not finish within 1"):
            hung.send(replace(make_notification(), id=f"h{attempt}"))
    assert hung.workers.started == 2  # a fresh process for the second send
    assert hung.workers.idle == []
    notifier.close()
    assert workers.idle == []
    with pytest.raises(ProcessLookupError):  # ended and reaped
        os.kill(kept, 0)


# -- config ------------------------------------------------------------------------------


def test_check_reports_an_unusable_url_at_its_line_without_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - {name: r, metric: qualityScore.video, op: '<', threshold: 3}\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "videosdk: {api_key: key, secret_key: secret}\n"
        "rules: [rules.yaml]\n"
        "notifiers:\n"
        "  chat:\n"
        "    type: apprise\n"
        "    urls:\n"
        f"      - json://127.0.0.1/{TOKEN}\n"
        f"      - nosuchservice://{TOKEN}@example.com\n"
        "    title: '{rule.__class__}'\n"
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "config.yaml:8: notifiers.chat.urls.1: Apprise cannot use this URL: " in err
    assert "no Apprise service has the scheme nosuchservice://" in err
    assert "config.yaml:9: notifiers.chat.title: unknown field {rule.__class__}" in err
    assert TOKEN not in err


def test_a_url_apprise_refuses_names_apprises_reason_masked(host: PluginTestHost) -> None:
    with pytest.raises(ConfigError) as caught:
        build(host, "discord://only-an-id-4174216298")
    (problem,) = caught.value.problems
    assert problem.message.startswith("notifiers.chat.urls.0: Apprise cannot use this URL: ")
    assert "4174216298" not in problem.message


def test_secrets_apprise_declares_are_masked_where_a_host_would_be() -> None:
    """Telegram's bot token sits in the host position, where URL rules would keep it."""
    url = "tgram://123456789:AAbbccddeeffgghhiijj/12345"
    masker = Redactor(secret_parts(url))
    assert masker("calling bot123456789:AAbbccddeeffgghhiijj/sendMessage") == (
        "calling bot**********/sendMessage"
    )
    parts = secret_parts("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js")
    assert "JHMHI8qBe7bk2ZwO5U711o3dV_js" in parts


def test_repr_and_schema_name_no_url(host: PluginTestHost, http_receiver: HttpReceiver) -> None:
    notifier = build(host, json_url(http_receiver), "tgram://123456789:AAbbccddeeffgghh/12")
    assert repr(notifier) == "AppriseNotifier(services=['JSON', 'Telegram'], format='markdown')"
    (config,) = host.configs.values()
    assert TOKEN not in repr(config)
    assert "AAbbccddeeffgghh" not in str(config)


def test_markdown_escapes_hostile_names_and_cuts_long_ones() -> None:
    name = "[click](https://evil.example)<b>" + "x" * 500
    shown = render(make_notification(make_alert(participant_name=name)), "{who}", 10)
    line = next(x for x in shown.markdown.splitlines() if x.startswith("- **Participant:**"))
    assert line.startswith("- **Participant:** \\[click\\](https://evil.example)\\<b\\>xxx")
    assert len(line) < 260
    assert line.endswith("…")
    assert len(shown.title) <= 250
    # where a service takes HTML (email), Apprise converts the Markdown: no tag gets through
    html = convert_between(NotifyFormat.MARKDOWN, NotifyFormat.HTML, shown.markdown)
    assert "<b>" not in html
    assert "&lt;b&gt;" in html
    assert 'href="https://evil.example"' not in html


def test_an_acknowledgement_notice_says_who(
    host: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    notice = replace(make_notification(), event="acknowledged", actor="U024BE7LH")
    build(host, json_url(http_receiver)).send(notice)
    sent = http_receiver.requests[0].json()
    assert sent["title"].startswith("ACKNOWLEDGED [warning] poor-video")
    assert sent["message"].startswith("Acknowledged by U024BE7LH.")


# -- the CLI and the daemon ----------------------------------------------------------------


def test_plugins_lists_apprise(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    found = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert found["apprise"]["notifier_types"] == ["apprise"]
    assert found["apprise"]["error"] is None


def test_notify_test_through_an_apprise_entry(
    tmp_path: Path, http_receiver: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    entry = {"type": "apprise", "urls": [json_url(http_receiver)]}
    config.write_text(yaml.safe_dump({"notifiers": {"chat": entry}}))
    assert main(["notify-test", "chat", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert "chat: test alert delivered" in out.out
    assert TOKEN not in out.out + out.err
    assert http_receiver.requests[0].json()["title"].startswith("[TEST] FIRING [info]")


@pytest.fixture
def sim_alice(sim: Simulator) -> Simulator:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 4.2)]
    sim.add_participant("sess-1", "part-1", samples=video_series(scores), name="Alice")
    sim.advance(30)
    return sim


def test_daemon_fires_and_resolves_through_apprise(
    tmp_path: Path, sim_alice: Simulator, http_receiver: HttpReceiver
) -> None:
    rules = (
        "rules:\n  - {name: poor-video, metric: qualityScore.video, op: '<', threshold: 3,"
        " for: 20s, severity: warning, notify: [chat]}\n"
    )
    config = write_config(
        tmp_path,
        sim_alice.url,
        [("sess-1", "part-1")],
        rules,
        notifiers={"chat": {"type": "apprise", "urls": [json_url(http_receiver)]}},
        log={"level": "debug"},
    )
    daemon = Daemon(["run", "--config", str(config)])
    try:
        http_receiver.wait_for(1, timeout=30)
        assert (
            http_receiver.requests[0]
            .json()["title"]
            .startswith("FIRING [warning] poor-video: Alice (part-1)")
        )
        sim_alice.advance(10)
        http_receiver.wait_for(2, timeout=30)
        resolve = http_receiver.requests[1].json()
        assert resolve["title"].startswith("RESOLVED [warning] poor-video: Alice (part-1)")
        assert "lasted" in resolve["message"]
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    output = daemon.all_output()
    assert "delivered firing notification for poor-video to chat" in output
    assert TOKEN not in output
    assert NTFY_PASSWORD not in output


def test_apprise_is_imported_only_once_an_entry_needs_it() -> None:
    """Every daemon loads the plugin (its entry point), most configure no Apprise entry:
    importing the plugin leaves Apprise (~4 MB) unloaded; checking a URL loads it, and
    the logger the plugin keeps quiet is Apprise's own."""
    script = (
        "import sys, watchdog_apprise\n"
        "from watchdog_apprise import targets\n"
        "print('apprise' in sys.modules)\n"
        "print(targets.problem('json://127.0.0.1:9/hook'))\n"
        "import apprise\n"
        "print('apprise' in sys.modules, apprise.LOGGER_NAME == targets.LOGGER_NAME)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split("\n")
    assert out[:3] == ["False", "None", "True True"]
