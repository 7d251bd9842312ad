"""User-written patterns run on RE2: linear in the text, refused constructs named, and
silences that would mute everything refused however their matchers are spelled."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from watchdog.alerting.silences import add
from watchdog.cli.main import main
from watchdog.config.matchers import matches_anything, parse_matcher
from watchdog.config.patterns import MAX_LENGTH, PatternError, compile_regex
from watchdog.config.problems import ConfigError
from watchdog.config.settings import WatchFilters
from watchdog.engine.rules import load_rules
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store
from watchdog.watch.filters import Filters

from .conftest import POOR_VIDEO, write_config
from .helpers import video_series
from .processes import Daemon
from .sitedirs import PYTHON

EVIL = "(a+)+$"
NAME_34 = "a" * 34 + "!"  # Python's re: 2**34 steps against EVIL; the daemon froze

# (pattern, the construct the error names): valid for Python's re, but they need backtracking
UNSUPPORTED = [
    (r"(a)\1", r"backreference \1"),
    (r"(?P<x>a)(?P=x)", "named backreference (?P=name)"),
    (r"(?P<x>a)\k<x>", r"named backreference \k<name>"),
    (r"bot(?=-\d)", "lookahead (?=...)"),
    (r"(?!bot).*", "negative lookahead (?!...)"),
    (r"(?<=x)bot", "lookbehind (?<=...)"),
    (r"(?<!x)bot", "negative lookbehind (?<!...)"),
    (r"(?>a+)b", "atomic group (?>...)"),
    (r"a++b", "possessive quantifier ++"),
    (r"a*+b", "possessive quantifier *+"),
    (r"a{2}+b", "possessive quantifier {2}+"),
    (r"(a)?(?(1)b|c)", "conditional group (?(...)...)"),
    (r"(?#note)a", "comment group (?#...)"),
    (r"bot\Z", r"\Z"),
    (r"(?x) b o t", "inline flag (?x)"),
]


@pytest.mark.parametrize(("pattern", "construct"), UNSUPPORTED)
def test_each_backtracking_construct_is_refused_by_name(pattern: str, construct: str) -> None:
    with pytest.raises(PatternError) as caught:
        compile_regex(pattern)
    assert str(caught.value).startswith(f"{construct} is not supported: patterns use RE2")


def test_plain_mistakes_keep_re2s_message_and_size_is_bounded() -> None:
    with pytest.raises(PatternError, match=r"missing \): bot\("):
        compile_regex("bot(")
    with pytest.raises(PatternError, match=f"more than {MAX_LENGTH}; shorten it"):
        compile_regex("a" * (MAX_LENGTH + 1))
    with pytest.raises(PatternError, match=r"pattern too large: .* 1 MiB budget"):
        compile_regex(r".*\pL{200}.*")  # a short text, a huge program
    assert compile_regex(r"(?i)\pL{1,50}").fullmatch("Zoë")  # Unicode classes fit


def test_the_evil_pattern_on_long_names_is_linear() -> None:
    """What took Python's re for ever answers at once, even on a 1 MB name."""
    regex = compile_regex(EVIL)
    for name in (NAME_34, "a" * 100_000 + "!", "a" * 1_000_000 + "!"):
        started = time.monotonic()
        assert not regex.fullmatch(name)
        assert not regex.search(name)
        assert time.monotonic() - started < 1.0
    assert regex.search("baaa")  # still the same regex: search and anchored match
    assert not regex.fullmatch("baaa")
    assert compile_regex("Al.").fullmatch("Al\ud83d")  # a name cut mid-emoji is matched too


def test_a_slow_match_lets_other_threads_run() -> None:
    """RE2 releases the GIL: even a slow (linear) match never stalls the daemon's other work."""
    regex = compile_regex(r".*[ab].{500}x")  # too many DFA states: RE2 takes its NFA path
    text = "ab" * 150_000
    done = threading.Event()

    def match() -> None:
        assert not regex.search(text)
        done.set()

    worker = threading.Thread(target=match)
    worker.start()
    last, gaps = time.monotonic(), [0.0]
    deadline = last + 60
    while not done.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    worker.join(60)
    assert done.is_set()
    assert max(gaps) < 1.0, f"the main thread waited {max(gaps):.2f}s for the GIL"


def test_rule_and_watch_filters_keep_their_anchoring(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        POOR_VIDEO + "    exclude: {participant: {regex: '(?i)recorder.*'}}\n"
        "    match: {participant: {regex: '" + EVIL + "|.*'}}\n"
    )
    (rule,) = load_rules([path])
    assert rule.exclude is not None
    assert rule.exclude.participant is not None
    assert rule.exclude.participant.matches("Recorder-7")  # anchored: the whole name
    assert not rule.exclude.participant.matches("the recorder")
    filters = Filters.from_settings(
        WatchFilters(include_names=["(?i)alice|bob"], exclude_names=[EVIL])
    )
    assert filters.name("Bobby") is None  # searched, as documented
    assert filters.name("Carol") == "name not included"
    assert filters.name("Alice aaa") == "name excluded"
    assert filters.name("Alice " + NAME_34) is None


# -- check: file:line, the construct, exit 2 ------------------------------------------------


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_check_names_the_construct_in_a_rules_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(POOR_VIDEO + "    exclude:\n      participant: {regex: '(?!bot).*'}\n")
    assert main(["check", "--rules", str(path)]) == 2
    out = capsys.readouterr()
    assert (
        f"{path}:{_line(path, 'regex')}: rule 'poor-video': exclude.participant invalid regex "
        "'(?!bot).*': negative lookahead (?!...) is not supported: patterns use RE2 (linear "
        "time); rewrite without it"
    ) in out.out + out.err


def test_check_names_the_construct_in_watch_filters_and_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        [],
        POOR_VIDEO,
        watch={"all_rooms": True, "filters": {"exclude_names": [r"(bot)-\1"]}},
        alerting={"routes": [{"match": ["participantName=~(?<=x)y"], "notify": "console"}]},
    )
    data = yaml.safe_load(path.read_text())
    del data["watch"]["participants"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["check", "--config", str(path)]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert (
        f"{path}:{_line(path, 'exclude_names')}: watch.filters.exclude_names: invalid regular "
        r"expression '(bot)-\\1': backreference \1 is not supported" in text
    )
    assert f"{path}:{_line(path, 'match:')}: alerting.routes[0].match" in text
    assert "lookbehind (?<=...) is not supported: patterns use RE2" in text


# -- silences: a matcher must name something --------------------------------------------------

CATCH_ALL = [
    "alertname=~.+",
    "alertname=~.*",
    "alertname=~(.*)",
    "alertname=~(?s).+",
    r"alertname=~\S.*",
    "alertname=~[^q]+",
    r"alertname=~\D+",
    "alertname=~.{2,}",
    "alertname=~[a-z].*|[A-Z].*|.+",
    "alertname!=",
    "alertname!=poor-video",
    "alertname=",
    "alertname!~x",
    "alertname!~",
    "alertname!~a^",
    "participantName=~[[:print:]]+",
    "severity=~warning|critical|info",
    "severity!=page",
]
SELECTIVE = [
    "alertname=poor-video",
    "alertname=~poor-.*",
    "participantName=~(?i).*bot.*",
    "participant_id=~p1|p2",
    "meeting_id=~abcd-.*",
    "participantName=~" + EVIL,
    "severity=critical",
    "severity=~warning|critical",
]


@pytest.mark.parametrize("text", CATCH_ALL)
def test_a_matcher_that_accepts_any_value_names_nothing(text: str, tmp_path: Path) -> None:
    assert matches_anything(parse_matcher(text))
    store = Store(str(tmp_path / "state.db"))
    try:
        with pytest.raises(ConfigError, match="these matchers match every alert"):
            add(
                store.silences,
                [text, "severity=~info|warning|critical", "team!=x"],
                "1h",
                "mute all",
            )
        assert store.silences.all() == []
    finally:
        store.close()


@pytest.mark.parametrize("text", SELECTIVE)
def test_a_matcher_that_names_something_is_accepted(text: str, tmp_path: Path) -> None:
    assert not matches_anything(parse_matcher(text))
    store = Store(str(tmp_path / "state.db"))
    try:
        # one selective is enough
        silence = add(store.silences, ["alertname=~.+", text], "1h", "one thing")
        assert [s.id for s in store.silences.all()] == [silence.id]
    finally:
        store.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "watchdog", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_silence_add_refuses_catch_alls_and_backtracking_at_the_cli(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO))
    for match in ("alertname=~.+", "alertname!="):
        bypass = _cli("silence", "add", "--config", config, "--match", match, "--comment", "x")
        assert bypass.returncode == 2, bypass.stderr
        assert f"silence add: --match {match}: these matchers match every alert" in bypass.stderr
        assert "name a rule, participant or label value" in bypass.stderr
    evil = _cli(
        "silence", "add", "--config", config, "--match", r"participantName=~(a+)\1",
        "--comment", "x",
    )  # fmt: skip
    assert evil.returncode == 2
    assert r"backreference \1 is not supported: patterns use RE2 (linear time)" in evil.stderr
    assert "Traceback" not in evil.stderr
    listed = _cli("silence", "list", "--json", "--config", config)
    assert listed.returncode == 0
    assert listed.stdout.strip() == "[]"


def test_a_stored_silence_re2_refuses_is_ignored_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A silence saved by an older version with a lookahead: its alerts are delivered."""
    url = str(tmp_path / "state.db")
    store = Store(url)
    kept = add(store.silences, ["alertname=poor-video"], "1h", "kept")
    old = add(store.silences, ["participantName=~bot.*"], "1h", "from an older version")
    with sqlite3.connect(url) as db:
        db.execute(
            "UPDATE silences SET matchers = ? WHERE id = ?",
            ('["participantName=~(?!bot).*"]', old.id),
        )
    with caplog.at_level(logging.WARNING, logger="watchdog.state.silences"):
        assert [s.id for s in store.silences.all()] == [kept.id]
        assert [s.id for s in store.silences.all()] == [kept.id]
    store.close()
    warnings = [r.getMessage() for r in caplog.records if old.id in r.getMessage()]
    assert len(warnings) == 1  # said once, not on every tick
    assert "negative lookahead (?!...) is not supported" in warnings[0]


# -- the original attack, on the real daemon ----------------------------------------------------

ATTACK_RULES = (
    POOR_VIDEO
    + f"""\
    exclude: {{participant: {{regex: "{EVIL}"}}}}
"""
)


def _healthz(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.monotonic() - started


def test_evil_names_never_freeze_the_daemon(tmp_path: Path, sim: Simulator) -> None:
    """(a+)+$ in a rule filter, a watch filter, a route and a silence against names of 35,
    5,001 and 100,001 characters: /healthz keeps answering, everyone is alerted on,
    SIGTERM stops the daemon at once."""
    room = sim.add_room("abcd-efgh-ijkl")
    sim.start_session(room, "s1", at=0)
    bad = video_series([(0, 2.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 2.0)])
    people = {
        "alice": "Alice",
        "evil34": NAME_34,
        "evil5k": "a" * 5_000 + "!",
        "evil100k": "a" * 100_000 + "!",
        "allas": "aaaa",  # the rule's exclude matches this name: never alerted on
        "mia": "Mia az",  # the watch filter excludes it: never polled
    }
    for pid, name in people.items():
        sim.join("s1", pid, name=name, at=0, samples=bad)
    config = write_config(
        tmp_path,
        sim.url,
        [],
        ATTACK_RULES,
        poll={"interval": "200ms", "concurrency": 4},
        watch={
            "all_rooms": True,
            "discovery_interval": "1s",
            "filters": {"exclude_names": ["(a+)+z$"], "include_names": [EVIL, "."]},
        },
        alerting={"routes": [{"match": [f"participantName=~{EVIL}"], "notify": "console"}]},
        http={"listen": "127.0.0.1:0"},
        delivery={"timeout": "5s", "stop_grace": "1s"},
    )
    data = yaml.safe_load(config.read_text())
    del data["watch"]["participants"]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    silenced = _cli(
        "silence", "add", "--config", str(config), "--match", "participantName=~(a+)+",
        "--for", "1h", "--comment", "only-a names",
    )  # fmt: skip
    assert silenced.returncode == 0, silenced.stderr

    daemon = Daemon(["run", "--config", str(config)])
    probes: list[tuple[int, float]] = []
    stop = threading.Event()
    try:
        url = daemon.wait_for(r"serving /metrics", stream="err").rsplit(" ", 1)[1]

        def probe() -> None:
            deadline = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < deadline and len(probes) < 1200:
                probes.append(_healthz(url))
                stop.wait(0.1)

        prober = threading.Thread(target=probe)
        prober.start()
        sim.advance(40)
        for pid in ("alice", "evil34", "evil5k", "evil100k"):
            daemon.wait_for(rf"FIRING \[warning\] poor-video: .*\({pid}\)", timeout=60)
        polled = {path.split("/")[-2] for _, path, _ in sim.requests if path.endswith("/stats")}
        assert {"alice", "evil34", "evil5k", "evil100k", "allas"} <= polled
        assert "mia" not in polled
        assert not any("(allas)" in line for line in daemon.out)
        while len(probes) < 20:  # a few more cycles over the evil names, still answering
            time.sleep(0.1)
        stop.set()
        prober.join(10)
        started = time.monotonic()
        assert daemon.stop(timeout=10) == 0
        stopped_in = time.monotonic() - started
    finally:
        stop.set()
        daemon.kill()
    assert probes
    assert max(seconds for _, seconds in probes) < 1.0, probes
    assert probes[-1][0] == 200
    assert stopped_in < 10
    assert "Traceback" not in daemon.all_output()
