"""Secrets stay out of every output, in every form a secret can leak in.

The forms are spelled out here independently of ``watchdog.redaction``: exact,
URL-encoded (``quote``, ``quote_plus``), JSON-escaped (ASCII-only, UTF-8 and with
escaped slashes), and a secret URL's userinfo, path segments and query values as
``requests`` quotes them in a connection error.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus
from xml.etree import ElementTree

import pytest
import requests
import yaml
from hypothesis import given
from hypothesis import strategies as st

from watchdog.config.settings import load_config
from watchdog.delivery.host import config_redactor, load_plugins
from watchdog.obs.logs import hide, setup_logging
from watchdog.redaction import MASK, Redactor
from watchdog.sim.simulator import Simulator
from watchdog.testing import HttpReceiver, NotifierContract, Reply, free_port

from .conftest import SECRET, write_config
from .helpers import video_series
from .processes import Daemon
from .sitedirs import PYTHON, env_with_path, fake_distribution

TOKEN = 'tok+/="Sécret-42'  # JSON escapes " and é, URL-encoding + / = " and é
HOOK_PATH = "/hooks/T0SECRET1/B0SECRET2/tokSECRETpart"
QUERY_VALUE = "qs-SECRET-77"
DOWN_PATH = "/services/T0DOWN9/B0DOWN9/xoxDOWNsecret"
DOWN_QUERY = "sigDOWN1234"


def escaped(secret: str) -> list[str]:
    as_json = json.dumps(secret)[1:-1]
    return [
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        as_json,
        as_json.replace("/", "\\/"),
        json.dumps(secret, ensure_ascii=False)[1:-1],
    ]


def url_forms(url: str, path: str, query_value: str) -> list[str]:
    return [*escaped(url), *(s for s in path.split("/") if s), query_value]


def _leaks(text: str, forms: list[str]) -> list[str]:
    return [form for form in forms if form in text]


# -- the rule itself ----------------------------------------------------------------------


def test_every_form_of_a_token_and_of_a_secret_url_is_masked() -> None:
    url = f"https://bot:pa%24%24word@hooks.example.com{HOOK_PATH}?key={QUERY_VALUE}&n=1"
    redact = Redactor([TOKEN, url])
    for form in escaped(TOKEN) + escaped(url):
        assert redact(f"before {form} after") == f"before {MASK} after", form
    basic = base64.b64encode(b"bot:pa$$word").decode()
    assert redact(f"Authorization: Basic {basic}").startswith(f"Authorization: Basic {MASK}")
    assert redact(base64.b64encode(TOKEN.encode()).decode()) == MASK
    quoted = f"Max retries exceeded with url: {HOOK_PATH}?key={QUERY_VALUE} (Caused by"
    assert (
        redact(quoted)
        == f"Max retries exceeded with url: /{MASK}/{MASK}/{MASK}/{MASK}?key={MASK} (Caused by"
    )
    assert redact("pa$$word, pa%24%24word") == f"{MASK}, {MASK}"
    # a segment is a path only after a slash: the word alone is left alone
    assert redact("the hooks service is down") == "the hooks service is down"
    assert Redactor(["abc"])("abc") == "abc"  # too short to be a secret: would mangle text


def test_a_real_requests_error_for_a_secret_url_is_masked() -> None:
    url = f"http://127.0.0.1:{free_port()}{DOWN_PATH}?sig={DOWN_QUERY}"
    with pytest.raises(requests.ConnectionError) as caught:
        requests.post(url, timeout=5)
    text = f"{type(caught.value).__name__}: {caught.value}"
    assert DOWN_PATH in text  # requests quotes the path apart from the host
    masked = Redactor([url])(text)
    assert _leaks(masked, url_forms(url, DOWN_PATH, DOWN_QUERY)) == []
    assert "127.0.0.1" in masked  # the host is not a secret: the operator needs it


@given(
    secret=st.text(st.characters(blacklist_characters="*", codec="utf-8"), min_size=4, max_size=40),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_no_form_survives_in_any_surrounding_text(secret: str, before: str, after: str) -> None:
    redact = Redactor([secret])
    for form in escaped(secret):
        masked = redact(before + form + after)
        assert not redact.leaks(masked)
        assert form not in masked or form in before + after


def test_as_a_log_filter_it_masks_message_arguments_and_traceback() -> None:
    redact = Redactor([TOKEN])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (TOKEN,), None)
    try:
        raise RuntimeError(json.dumps({"token": TOKEN}))
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert redact.filter(record)
    assert record.getMessage() == f"sent {MASK}"
    formatted = logging.Formatter().format(record)
    assert _leaks(formatted, escaped(TOKEN)) == []
    assert "RuntimeError" in formatted


def test_the_daemons_log_handler_masks_what_any_library_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``hide`` puts secrets on the root handler: urllib3, slack-sdk or a plugin's module
    logger, plain or JSON, message or traceback, nothing shows them."""
    setup_logging("debug", "json")
    hide(Redactor([TOKEN]))
    try:
        raise ValueError(f"echoed {quote_plus(TOKEN)}")
    except ValueError:
        logging.getLogger("urllib3.connectionpool").exception("request with %s", TOKEN)
    event = json.loads(capsys.readouterr().err)
    assert event["message"] == f"request with {MASK}"
    assert f"ValueError: echoed {MASK}" in event["exception"]
    assert _leaks(json.dumps(event, ensure_ascii=False), escaped(TOKEN)) == []


# -- the daemon and its commands ----------------------------------------------------------

CARELESS = '''\
"""A notifier that lets requests' own exception out: it names the secret URL's path."""

import requests
from pydantic import SecretStr

from watchdog.hookspecs import hookimpl
from watchdog.notifiers import NotifierConfig, NotifierType


class CarelessConfig(NotifierConfig):
    url: SecretStr


class Careless:
    def __init__(self, config):
        self.url = config.url.get_secret_value()

    def send(self, notification):
        requests.post(self.url, json={"id": notification.id}, timeout=5).raise_for_status()


@hookimpl
def register_notifier_types(register):
    register(NotifierType("careless", CarelessConfig, lambda ctx: Careless(ctx.config), "x"))
'''

RULES = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    notify: [echo, down]
"""


def _echo(url: str) -> Reply:
    """A receiver that answers 400 quoting the token and the URL back, every way."""
    body = json.dumps(
        {"error": "invalid_token", "token": TOKEN, "url": url, "seen": quote(url, safe="")}
    )
    return Reply(400, body.replace("/", "\\/").encode() + b" " + quote_plus(TOKEN).encode())


def test_no_form_of_a_secret_in_logs_outbox_status_notify_test_or_the_database(
    tmp_path: Path, sim: Simulator
) -> None:
    site = fake_distribution(
        tmp_path / "site",
        "watchdog-careless",
        entry_points={"careless": "watchdog_careless"},
        modules={"watchdog_careless": CARELESS},
    )
    env = env_with_path(site)
    down_url = f"http://127.0.0.1:{free_port()}{DOWN_PATH}?sig={DOWN_QUERY}"
    with HttpReceiver() as receiver:
        echo_url = f"{receiver.url}{HOOK_PATH}?key={QUERY_VALUE}"
        receiver.handler = lambda request: _echo(echo_url)
        sim.add_participant("s", "p", samples=video_series([(0, 2), (10, 2)]), name="Al")
        sim.advance(10)
        config = write_config(
            tmp_path,
            sim.url,
            [("s", "p")],
            RULES,
            notifiers={
                "echo": {
                    "type": "webhook",
                    "url": echo_url,
                    "headers": {"Authorization": f"Bearer {TOKEN}"},
                },
                "down": {"type": "careless", "url": down_url},
            },
        )
        runs = [Daemon(["once", "--config", str(config)], env=env)]
        assert runs[0].wait(60) == 0
        assert len(receiver.requests) == 1
        for args in (
            ["outbox", "list"],
            ["outbox", "list", "--json"],
            ["status"],
            ["status", "--json"],
            ["notify-test", "echo"],
            ["notify-test", "down"],
        ):
            runs.append(Daemon([*args, "--config", str(config)], env=env))
            assert runs[-1].wait(60) in (0, 1), runs[-1].err
    outbox_text, outbox_json = "\n".join(runs[1].out), json.loads("\n".join(runs[2].out))
    errors = {row["notifier"]: row["lastError"] for row in outbox_json}
    assert errors["echo"].startswith("webhook 127.0.0.1:")  # still says who and what
    assert "answered HTTP 400" in errors["echo"]
    assert errors["down"].startswith("ConnectionError: HTTPConnectionPool(host='127.0.0.1'")
    assert MASK in errors["down"]
    assert "last error: webhook 127.0.0.1:" in outbox_text
    assert any("echo: delivery failed: webhook 127.0.0.1:" in line for line in runs[5].err)
    assert any("down: notifier raised ConnectionError" in line for line in runs[6].err)

    forms = [
        *escaped(TOKEN),
        *url_forms(echo_url, HOOK_PATH, QUERY_VALUE),
        *url_forms(down_url, DOWN_PATH, DOWN_QUERY),
        SECRET,
    ]
    for run in runs:
        assert _leaks(run.all_output(), forms) == [], run.all_output()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert [f for f in forms if f.encode() in database] == []
    with sqlite3.connect(tmp_path / "state.db") as db:  # the rows are there, masked
        stored = [row[0] for row in db.execute("SELECT last_error FROM outbox")]
    assert len(stored) == 2
    assert all(MASK in error for error in stored)


def test_the_config_redactor_knows_core_secrets_and_unreadable_entries(tmp_path: Path) -> None:
    """The VideoSDK secret, the state URL's password, each notifier's SecretStr fields; an
    entry whose plugin is missing cannot say which values are secret, so all of them are."""
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "videosdk": {"api_key": "key", "secret_key": SECRET},
                "notifiers": {
                    "hook": {"type": "webhook", "url": f"https://example.com{HOOK_PATH}"},
                    "lost": {"type": "not-installed", "password": "hunter2-ish"},
                },
                "state": {"url": "postgresql://wd:pg-pass-8812@db.example.com/watchdog"},
            }
        )
    )
    redact = config_redactor(load_config(str(path)), load_plugins())
    text = f"{SECRET} pg-pass-8812 {HOOK_PATH} hunter2-ish db.example.com"
    assert redact(text) == f"{MASK} {MASK} /{MASK}/{MASK}/{MASK}/{MASK} {MASK} db.example.com"


# -- the plugin contract ------------------------------------------------------------------

LEAKY = '''\
"""Two notifiers on one secret URL: one quotes requests' exception, one says only the host."""

from urllib.parse import urlsplit

import requests
from pydantic import SecretStr

from watchdog.hookspecs import hookimpl
from watchdog.notifiers import DeliveryError, NotifierConfig, NotifierType


class Config(NotifierConfig):
    url: SecretStr


class Leaky:
    def __init__(self, config):
        self.url = config.url.get_secret_value()

    def send(self, notification):
        try:
            requests.post(self.url, json={"id": notification.id}, timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise DeliveryError(f"cannot post: {exc}") from None


class Careful(Leaky):
    def send(self, notification):
        try:
            requests.post(self.url, json={"id": notification.id}, timeout=5).raise_for_status()
        except requests.RequestException as exc:
            host = urlsplit(self.url).hostname
            raise DeliveryError(f"cannot post to {host}: {type(exc).__name__}") from None


@hookimpl
def register_notifier_types(register):
    register(NotifierType("leaky", Config, lambda ctx: Leaky(ctx.config), "quotes requests"))
    register(NotifierType("careful", Config, lambda ctx: Careful(ctx.config), "names the host"))
'''

CONTRACT_TESTS = """\
import pytest

import watchdog_leaky
from watchdog.testing import NotifierContract

PATH = "/hooks/T0LEAKY1/B0LEAKY2/leakySECRETpart"


class Base(NotifierContract):
    plugin = watchdog_leaky

    @pytest.fixture
    def notifier_config(self, http_receiver):
        return {"url": http_receiver.url + PATH}

    @pytest.fixture
    def unreachable_config(self, unreachable_url):
        return {"url": unreachable_url + PATH}


class TestLeaky(Base):
    notifier_type = "leaky"


class TestCareful(Base):
    notifier_type = "careful"
"""


def test_the_contract_fails_a_notifier_that_quotes_a_requests_error_for_a_secret_url(
    tmp_path: Path,
) -> None:
    site = fake_distribution(tmp_path / "site", "watchdog-leaky", modules={"watchdog_leaky": LEAKY})
    (tmp_path / "test_contract_leaky.py").write_text(CONTRACT_TESTS)
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
         str(tmp_path / "test_contract_leaky.py")],
        env=env_with_path(site),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    outcomes = {
        f"{case.get('classname', '').rsplit('.', 1)[-1]}.{case.get('name')}": (
            "failed" if case.find("failure") is not None or case.find("error") is not None
            else "passed"
        )
        for case in ElementTree.parse(report).iter("testcase")
    }  # fmt: skip
    failed = sorted(name for name, outcome in outcomes.items() if outcome == "failed")
    assert failed == ["TestLeaky.test_no_secret_in_logs_repr_or_errors"], result.stdout[-3000:]
    assert len(outcomes) == 2 * sum(name.startswith("test_") for name in dir(NotifierContract))
    # the failure says what leaked, masked, so its own report does not leak it again
    # (the traceback's line, and with CI=true pytest's untruncated summary line too)
    said = [line for line in result.stdout.splitlines() if "AssertionError: a secret from" in line]
    assert said, result.stdout[-3000:]
    for line in said:
        assert "leaked: cannot post: HTTPConnectionPool(host='127.0.0.1'" in line
        assert f"/{MASK}/{MASK}/{MASK}" in line
        assert "leakySECRETpart" not in line
