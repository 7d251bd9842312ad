"""The Teams notifier against a local stand-in for a Workflows webhook on 127.0.0.1.

The stand-in answers as the trigger "When a Teams webhook request is received" does (202
Accepted, 401 for a wrong signature) and refuses any body that is not the Workflows
message shape or whose card fails the published Adaptive Card 1.4 JSON Schema
(tests/data/adaptive-card-1.4, checked with jsonschema) or Teams' 28 KB limit: every card
these tests make goes through it or through ``valid_card``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import watchdog_teams
import yaml
from watchdog_teams.card import TEAMS_LIMIT, message

from watchdog.alerts import LEFT_WHILE_DEGRADED, Alert, Notification
from watchdog.cli.main import main
from watchdog.config.problems import ConfigError
from watchdog.notifiers import DeliveryError, delivery_error_for
from watchdog.sim.simulator import Simulator
from watchdog.testing import (
    EndlessAnswer,
    HttpReceiver,
    NotifierContract,
    PluginTestHost,
    Received,
    Reply,
    grouped_notification,
    make_alert,
    make_notification,
    resolved,
)

from .conftest import POOR_VIDEO, SECRET, write_config
from .helpers import video_series
from .processes import Daemon

SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "adaptive-card-1.4" / "adaptive-card.json").read_text()
)
VALIDATOR = jsonschema.Draft6Validator(SCHEMA)  # the schema's own "$schema": draft-06
SIG = "kX9vQ2wTt7sSIGNATURE-of-the-workflow_0123456789abcdef"
PATH = (
    "/workflows/4f1d9a0c2b7e4e21/triggers/manual/paths/invoke"
    f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
)


def valid_card(card: Any) -> None:
    """Fails with the schema's own words when ``card`` is not a valid Adaptive Card 1.4."""
    errors = sorted(VALIDATOR.iter_errors(card), key=lambda e: list(e.absolute_path))
    assert not errors, f"{list(errors[0].absolute_path)}: {errors[0].message[:300]}"
    assert card["version"] == "1.4"


def _problem(request: Received) -> str | None:
    """Why the Workflows trigger would refuse this request; None if it takes it."""
    if request.method != "POST":
        return "POST only"
    if request.headers.get("content-type") != "application/json; charset=utf-8":
        return f"content type {request.headers.get('content-type')}"
    if len(request.body) > TEAMS_LIMIT:
        return f"{len(request.body)} bytes, over Teams' limit"
    body = request.json()
    if set(body) != {"type", "attachments"} or body["type"] != "message":
        return f"not a message: {sorted(body)}"
    (attachment,) = body["attachments"]
    if attachment["contentType"] != "application/vnd.microsoft.card.adaptive":
        return "not an Adaptive Card"
    if "contentUrl" not in attachment or attachment["contentUrl"] is not None:
        return "contentUrl must be null"
    try:
        valid_card(attachment["content"])
    except AssertionError as exc:
        return str(exc)
    return None


class Workflow(HttpReceiver):
    """A Workflows webhook trigger: 202 for a valid card signed with ``SIG``."""

    def __init__(self) -> None:
        super().__init__(self._answer_request)
        self.refused: list[str] = []
        self._accepted: list[Received] = []

    def _answer_request(self, request: Received) -> Reply:
        if parse_qs(urlsplit(request.path).query).get("sig") != [SIG]:
            return Reply(401, {"error": {"code": "DirectApiAuthorizationRequired"}})
        problem = _problem(request)
        if problem is not None:
            self.refused.append(problem)
            return Reply(400, {"error": {"code": "InvalidRequestContent", "message": problem}})
        self._accepted.append(request)  # before the answer: a sender that saw 202 finds it
        return Reply(202)

    @property
    def hook(self) -> str:
        return self.url + PATH

    def cards(self) -> list[dict[str, Any]]:
        """The cards it accepted, in order."""
        return [r.json()["attachments"][0]["content"] for r in self.accepted()]

    def accepted(self) -> list[Received]:
        """The requests it answered 202, in order."""
        return list(self._accepted)


@pytest.fixture(scope="module")
def workflow() -> Iterator[Workflow]:
    server = Workflow()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def teams(notifier_host: PluginTestHost) -> PluginTestHost:
    notifier_host.add(watchdog_teams, "teams")
    return notifier_host


def texts(element: Any) -> list[tuple[str, str]]:
    """(element type, text) of every text in a card, depth first."""
    found: list[tuple[str, str]] = []
    if isinstance(element, dict):
        if isinstance(element.get("text"), str):
            found.append((element["type"], element["text"]))
        for value in element.values():
            found += texts(value)
    elif isinstance(element, list):
        for item in element:
            found += texts(item)
    return found


def shown(card: dict[str, Any]) -> str:
    """The card's words as a reader sees them: each block's runs joined, blocks by lines."""
    lines = []
    for block in _blocks(card["body"]):
        if block["type"] == "TextBlock":
            lines.append(block["text"])
        elif block["type"] == "RichTextBlock":
            lines.append("".join(run["text"] for run in block["inlines"]))
    return "\n".join(lines)


def _blocks(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        if item["type"] == "Container":
            yield from _blocks(item["items"])
        else:
            yield item


class TestTeamsContract(NotifierContract):
    notifier_type = "teams"
    plugin = watchdog_teams

    @pytest.fixture
    def notifier_config(self, workflow: Workflow) -> dict[str, Any]:
        return {"url": workflow.hook, "timeout": 5}

    @pytest.fixture
    def unreachable_config(self, unreachable_url: str) -> dict[str, Any]:
        return {"url": unreachable_url + PATH, "timeout": 5}

    @pytest.fixture
    def delivered(self, workflow: Workflow) -> Callable[[], int]:
        return lambda: len(workflow.accepted())


# -- the card -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "style", "icon"),
    [("critical", "attention", "🔴"), ("warning", "warning", "🟠"), ("info", "accent", "🔵")],
)
def test_a_firing_card_says_everything_in_the_severitys_colour(
    teams: PluginTestHost, workflow: Workflow, severity: str, style: str, icon: str
) -> None:
    alert = make_alert(severity=severity, sparkline="▇▆▃▁▁", values=[4.1, 3.8, 2.9, 2.5, 2.41])
    teams.build({"type": "teams", "url": workflow.hook}).send(make_notification(alert))
    card = workflow.cards()[-1]
    header = card["body"][0]
    assert header["type"] == "Container"
    assert header["style"] == style
    words = shown(card)
    assert f"{icon} FIRING" in words
    assert "poor-video: Alice (part-1)" in words  # the title
    assert f"Rule: poor-video [{severity}]" in words
    assert "Participant: Alice (part-1)" in words
    assert "Where: meeting abcd-efgh-ijkl, session sess-1" in words
    assert "Value: qualityScore.video = 2.41 (threshold < 3)" in words
    assert "Trend: ▇▆▃▁▁" in words
    # how long, in each reader's time zone (the card's DATE/TIME functions)
    assert "Going on for 1m, since {{DATE(2026-11-24T10:00:00Z, SHORT)}}" in words
    assert "Video quality score is below 3" in words
    assert "Chrome · SDK react · Mumbai, India" in words
    assert card["fallbackText"].startswith(f"{icon} FIRING \\[{severity}\\] poor-video: Alice")


def test_the_resolve_is_its_own_green_card_and_says_why(
    teams: PluginTestHost, workflow: Workflow
) -> None:
    notifier = teams.build({"type": "teams", "url": workflow.hook})
    alert = make_alert(severity="critical")
    firing = make_notification(alert)
    notifier.send(firing)
    notifier.send(make_notification(resolved(alert), thread=firing.thread))
    notifier.send(
        make_notification(resolved(alert, reason=LEFT_WHILE_DEGRADED), thread=firing.thread)
    )
    fired, back, left = workflow.cards()[-3:]
    assert fired["body"][0]["style"] == "attention"
    for card in (back, left):
        assert card["body"][0]["style"] == "good"
        assert "✅ RESOLVED" in shown(card)
        assert "Lasted 6m: {{DATE(2026-11-24T10:00:00Z, SHORT)}}" in shown(card)
    assert "Value: back to qualityScore.video = 4.2 (threshold < 3)" in shown(back)
    assert "Reason" not in shown(back)
    assert "Value: last qualityScore.video = 2.41 (threshold < 3)" in shown(left)
    assert "Reason: left while degraded" in shown(left)


def test_a_group_lists_alerts_worst_first_and_says_how_many_more(
    teams: PluginTestHost, workflow: Workflow
) -> None:
    group = grouped_notification(200)
    calm = resolved(group.alerts[0])  # the first critical one, resolved: listed last
    notification = replace(group, alerts=(calm, *group.alerts[1:]))
    teams.build({"type": "teams", "url": workflow.hook}).send(notification)
    (request,) = [r for r in workflow.accepted() if b"200 alerts" in r.body]
    assert len(request.body) <= TEAMS_LIMIT
    card = request.json()["attachments"][0]["content"]
    assert card["body"][0]["style"] == "attention"  # a critical one still fires
    assert "199 firing, 1 resolved" in shown(card)
    listed = [item for item in card["body"] if item["type"] == "Container"][1:]
    severities = [item["items"][0]["inlines"][2]["text"].split("]")[0] for item in listed]
    order = {" [critical": 0, " [warning": 1, " [info": 2}
    assert [order[s] for s in severities] == sorted(order[s] for s in severities)
    assert 0 < len(listed) <= 30
    more = card["body"][-1]["inlines"][0]["text"]
    assert more == f"…and {200 - len(listed)} more alerts in meeting abcd-efgh-ijkl"


SHALOM = "\u05e9\u05dc\u05d5\u05dd"  # Hebrew, written right to left
HOSTILE = [
    "x" * 100_000,
    "[click me](https://evil.example/login) **urgent**",
    '<a href="https://evil.example">Alice</a><script>alert(1)</script>',
    f"\u202eecilA\u202c \u2067mirror\u2069 \u200f{SHALOM}\u200e \u0645\u0631\u062d\u0628\u0627",
    "{{DATE(2026-01-01T00:00:00Z, SHORT)}} www.evil.example\n# heading\n- list\x00\x1b[31m",
    '"\\ " \\u0000 ' * 500,
]


def hostile(i: int) -> Alert:
    """An alert whose every text a participant or a template could set is ``HOSTILE[i]``."""
    name = HOSTILE[i % len(HOSTILE)]
    return make_alert(
        participant_id=f"{name}-{i}",
        participant_name=name,
        meeting_id=name,
        severity=("critical", "warning", "info")[i % 3],
        summary=name * 3,
        description=name,
        context={"device": name, "city": name, "network": name},
        reason=name,
        sparkline=name,
    )


def test_hostile_names_stay_plain_text_bounded_and_within_the_limit(
    teams: PluginTestHost, workflow: Workflow
) -> None:
    notifier = teams.build({"type": "teams", "url": workflow.hook})
    before = len(workflow.accepted())
    group = make_notification(*(hostile(i) for i in range(200)))
    for i in range(len(HOSTILE)):
        notifier.send(make_notification(hostile(i)))
    notifier.send(group)
    notifier.send(resolved_all(group))
    requests = workflow.accepted()[before:]
    assert len(requests) == len(HOSTILE) + 2, workflow.refused[-3:]
    for request in requests:
        assert len(request.body) <= TEAMS_LIMIT
        card = request.json()["attachments"][0]["content"]
        for kind, text in texts(card["body"]):
            if any(name[:20] in text for name in HOSTILE) or "evil" in text:
                assert kind == "TextRun", text[:80]  # hostile text: never markdown
            assert "://" not in text  # defanged: no client makes a link of it
            assert "www.evil" not in text
            assert not set(text) & {"\u202e", "\u202c", "\u2067", "\x00", "\x1b"}
            assert len(text) <= 1_200
        assert not re.search(r"(?<!\\)[\[\]()*<>]", card["fallbackText"])  # all escaped
    for request in requests[-2:]:
        assert "…and" in request.text()


def test_one_alert_with_every_text_at_its_bound_fits_the_limit() -> None:
    """Four-byte characters everywhere, every field far past its bound: still one card."""
    big = "😀" * 5_000
    alert = make_alert(
        rule="r" * 300,
        participant_id=big,
        participant_name=big,
        meeting_id=big,
        session_id=big,
        summary=big,
        description=big,
        context=dict.fromkeys(("device", "device_version", "sdk", "city", "network"), big),
        reason=big,
        sparkline=big,
    )
    sent = message(make_notification(alert))
    valid_card(sent.card)
    assert len(sent.raw) <= TEAMS_LIMIT - 2_000


def resolved_all(notification: Notification) -> Notification:
    return replace(notification, alerts=tuple(resolved(a) for a in notification.alerts))


def test_right_to_left_names_are_isolated_from_the_rest_of_their_line() -> None:
    name = f"\u202b{SHALOM}\u202c"
    card = message(make_notification(make_alert(participant_name=name))).card
    valid_card(card)
    assert f"Participant: \u2068{SHALOM}\u2069 (part-1)" in shown(card)


def test_the_schema_refuses_what_teams_would_refuse() -> None:
    """The validator bites: the checks above would catch a wrong card."""
    card = message(make_notification()).card
    valid_card(card)
    wrong = [
        {**card, "msteams": {"width": "Full"}},  # not in the 1.4 schema
        {**card, "body": [{"type": "TextBlock"}]},  # a TextBlock needs text
        {**card, "body": [{"type": "RichTextBlock", "inlines": [{"type": "TextRun"}]}]},
        {**card, "body": [{"type": "Container", "style": "danger", "items": []}]},
    ]
    for each in wrong:
        assert not VALIDATOR.is_valid(each)


def test_acknowledgement_notices_and_daemon_alerts_make_valid_cards() -> None:
    """Teams never asks for ack notices, but one that arrives must not break the send."""
    acked = replace(make_notification(), event="acknowledged", actor="U01ALICE")
    card = message(acked).card
    valid_card(card)
    assert "👤 ACKNOWLEDGED" in shown(card)
    assert "By: U01ALICE" in shown(card)
    daemon = make_alert(
        rule="notifier-failing", scope="daemon", session_id="", participant_id="",
        participant_name="notifier pager", meeting_id=None,
    )  # fmt: skip
    card = message(make_notification(daemon, test=True)).card
    valid_card(card)
    assert "About: notifier pager" in shown(card)
    assert "Where: videosdk-watchdog" in shown(card)
    assert "Test alert" in shown(card)


# -- answers --------------------------------------------------------------------------------

STATUSES = [301, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503]


def test_answers_follow_the_shared_policy_with_a_clear_message(
    teams: PluginTestHost, http_receiver: HttpReceiver
) -> None:
    notifier = teams.build({"type": "teams", "url": http_receiver.url + PATH})
    for status in STATUSES:
        header = {"Retry-After": "7"} if status in (429, 503) else {}
        said = {"error": {"code": "WorkflowTriggerIsNotEnabled", "message": "turned off"}}
        http_receiver.reply(Reply(status, said, header))
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        expected = delivery_error_for(status, header.get("Retry-After"), "")
        error = caught.value
        assert (error.permanent, error.retry_after) == (expected.permanent, expected.retry_after)
        text = str(error)
        assert text.startswith(f"Teams workflow at 127.0.0.1:{urlsplit(http_receiver.url).port}")
        assert f"HTTP {status}" in text
        assert "WorkflowTriggerIsNotEnabled: turned off" in text
        assert SIG not in text
    assert len(http_receiver.requests) == len(STATUSES)  # one request each, none retried inside
    http_receiver.reply(Reply(401))
    with pytest.raises(DeliveryError, match="copy the URL again from the workflow's trigger"):
        notifier.send(make_notification())
    http_receiver.reply(Reply(202))
    notifier.send(make_notification())  # 202 Accepted: delivered


@pytest.mark.parametrize("trickle", [None, 0.2], ids=["flood", "trickle"])
def test_a_huge_or_endless_answer_is_read_only_so_far(
    teams: PluginTestHost, trickle: float | None
) -> None:
    """An error answer that never ends, flooded or a byte at a time, costs a bounded read,
    within the timeout."""
    with EndlessAnswer(503, trickle=trickle) as server:
        notifier = teams.build({"type": "teams", "url": server.url + PATH, "timeout": 3})
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        took = time.monotonic() - started
    assert not caught.value.permanent
    assert "HTTP 503" in str(caught.value)
    assert len(str(caught.value)) < 600
    assert took < 3 + 3 + 1  # the deadline, plus one read's timeout at most
    assert server.sent < 8 * 2**20  # it stopped reading: no more than the socket buffers took


# -- config ---------------------------------------------------------------------------------


def test_config_refuses_a_retired_connector_url_and_a_missing_scheme(
    teams: PluginTestHost,
) -> None:
    retired = "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456"
    with pytest.raises(ConfigError) as caught:
        teams.build({"type": "teams", "url": retired})
    assert "Office 365 connector webhook, which Teams retired" in str(caught.value.problems)
    assert "IncomingWebhook/123" not in str(caught.value.problems)
    with pytest.raises(ConfigError):
        teams.build({"type": "teams", "url": "prod-00.westus.logic.azure.com/workflows/x"})


def test_check_shows_where_a_teams_entry_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yaml").write_text(POOR_VIDEO)
    config = tmp_path / "config.yaml"
    config.write_text(
        "videosdk: {api_key: k, secret_key: s}\nrules: [rules.yaml]\nnotifiers:\n"
        f"  channel:\n    type: teams\n    url: https://example.com{PATH}\n    timout: 5\n"
    )
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}:7: notifiers.channel: unknown key 'timout'" in err
    assert SIG not in err


# -- the CLI and the daemon -----------------------------------------------------------------


def test_plugins_lists_teams_from_the_core_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (teams,) = [p for p in listed if p["name"] == "teams"]
    assert teams["distribution"] == "videosdk-watchdog"
    assert teams["notifier_types"] == ["teams"]
    assert teams.get("error") is None


def test_notify_test_posts_a_test_card(tmp_path: Path, workflow: Workflow) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "notifiers": {
                    "channel": {"type": "teams", "url": workflow.hook},
                    "gone": {"type": "teams", "url": workflow.url + PATH.replace(SIG, "old")},
                }
            }
        )
    )
    before = len(workflow.accepted())

    def notify_test(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watchdog", "notify-test", name, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = notify_test("channel")
    assert ok.returncode == 0, ok.stderr
    assert "channel: test alert delivered" in ok.stdout
    (card,) = workflow.cards()[before:]
    assert "🧪 Test alert" in shown(card)
    assert "watchdog-test" in shown(card)
    failed = notify_test("gone")
    assert failed.returncode == 1
    assert "HTTP 401" in failed.stderr
    assert "copy the URL again" in failed.stderr
    assert SIG not in ok.stdout + ok.stderr + failed.stdout + failed.stderr


def test_the_daemon_posts_a_card_when_it_fires_and_another_when_it_resolves(
    tmp_path: Path, sim: Simulator, workflow: Workflow
) -> None:
    scores = [(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 4.2)]
    sim.add_participant("sess-1", "part-1", samples=video_series(scores), name="Alice")
    sim.advance(30)
    before = len(workflow.accepted())
    config = write_config(
        tmp_path,
        sim.url,
        [("sess-1", "part-1")],
        POOR_VIDEO,
        notifiers={"channel": {"type": "teams"}},
        log={"level": "debug"},
    )
    daemon = Daemon(
        ["run", "--config", str(config)], env={"WATCHDOG_NOTIFIERS__CHANNEL__URL": workflow.hook}
    )
    try:
        _until(lambda: len(workflow.accepted()) > before)
        fired = workflow.cards()[before]
        assert fired["body"][0]["style"] == "warning"
        assert "Participant: Alice (part-1)" in shown(fired)
        assert "Value: qualityScore.video = 2 (threshold < 3)" in shown(fired)
        sim.advance(10)
        _until(lambda: len(workflow.accepted()) > before + 1)
        back = workflow.cards()[before + 1]
        assert back["body"][0]["style"] == "good"
        assert "✅ RESOLVED" in shown(back)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    output = daemon.all_output()
    assert "delivered firing notification for poor-video to channel" in output
    assert SIG not in output
    assert SECRET not in output


def _until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
