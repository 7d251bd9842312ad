"""Hostile config and rules files: bounded in time and memory, ``file:line`` errors, exit 2.

Each case goes through the real CLI (``check``), in-process for speed; the alias
bomb also runs in a subprocess under an address-space cap, and once more through
a running daemon's reload.
"""

from __future__ import annotations

import contextlib
import io
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchdog.cli.main import main
from watchdog.config.problems import ConfigError
from watchdog.config.yamlfile import MAX_CONFIG_BYTES, load
from watchdog.engine.templates import MAX_TEXT, render
from watchdog.sim.simulator import Simulator

from .conftest import POOR_VIDEO, write_config
from .processes import Daemon

NAMES = "abcdefghi"


def alias_bomb(levels: int = 9) -> str:
    """The billion laughs: each level lists the previous one nine times (about 400 bytes)."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        name, previous = NAMES[level], NAMES[level - 1]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


RULE = """\
rules:
  - name: r
    metric: qualityScore.video
    op: "<"
    threshold: {threshold}
    for: {for_}
    summary: "{summary}"
"""


def rule(threshold: str = "3", for_: str = "30s", summary: str = "{{ participant }}") -> str:
    return RULE.format(threshold=threshold, for_=for_, summary=summary)


def check(path: Path, *extra: str) -> tuple[int, list[str]]:
    """``videosdk-watchdog check --rules PATH`` in-process: exit code and stderr lines."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["check", "--rules", str(path), *extra])
    return code, err.getvalue().splitlines()


def write(tmp_path: Path, text: str | bytes, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def only_problem(path: Path, *extra: str) -> str:
    """The single ``file:line: message`` that check prints (exit 2), without its prefix."""
    code, err = check(path, *extra)
    assert code == 2, err
    assert len(err) == 1, err
    match = re.match(rf"{re.escape(str(path))}:(\d+): (.*)", err[0])
    assert match is not None, err[0]
    return f"{match[1]}: {match[2]}"


# -- YAML ------------------------------------------------------------------------------


def test_alias_bomb_exits_2_in_under_a_second_in_little_memory(tmp_path: Path) -> None:
    path = write(tmp_path, alias_bomb())
    assert len(path.read_bytes()) < 420
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problem = only_problem(path)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem.startswith("9: aliases expand this file by 490,329,036 values (at most 10,000)")
    assert elapsed < 1.0  # the bound; it takes milliseconds
    assert peak < 20 * 1024 * 1024


def _capped(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("option", ["--rules", "--config"])
def test_alias_bomb_in_a_process_capped_at_512_mib(tmp_path: Path, option: str) -> None:
    """A loader that copied aliases would need gigabytes: under the cap it would die with a
    MemoryError traceback (exit 1) instead of this one line."""
    path = write(tmp_path, alias_bomb(), "bomb.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "watchdog", "check", option, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _capped(512 * 1024 * 1024),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{path}:9: aliases expand this file by 490,329,036 values")
    assert "Traceback" not in done.stderr


def test_anchors_for_shared_defaults_still_work(tmp_path: Path) -> None:
    first = (
        '  - &defaults {name: r0, metric: qualityScore.video, op: "<", threshold: 3, '
        "for: 30s, labels: {team: video}}\n"
    )
    others = "".join(f"  - <<: *defaults\n    name: r{i}\n" for i in range(1, 300))
    assert check(write(tmp_path, "rules:\n" + first + others)) == (0, [])


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("rules: " + "[" * 400 + "]" * 400 + "\n", 1, "nested deeper than 64 levels"),
        ("rules: " + "{a: " * 400 + "1" + "}" * 400 + "\n", 1, "nested deeper than 64 levels"),
        (
            "rules:\n" + "".join(f"{'  ' * (i + 1)}- \n" for i in range(100)),
            65,
            "nested deeper than 64 levels",
        ),
        (
            "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 80)),
            80,
            "nested deeper than 64 levels through aliases",
        ),
        ("rules: &r [*r]\n", 1, "alias *r is inside its own anchor &r"),
        ("rules:\n  - &r\n    <<: *r\n", 3, "alias *r is inside its own anchor &r"),
    ],
)
def test_nesting_and_self_reference_are_refused(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    assert only_problem(write(tmp_path, text)).startswith(f"{line}: {words}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rule("9" * 5000), "5: a number with 5000 digits is too large"),
        (rule("!!int abc"), "5: cannot read this value as an integer; quote it to mean text"),
        (rule().replace("name: r", "name: r\x07"), "2: control character U+0007 is not allowed"),
        (rule().replace("name: r", "name: r\x00"), "2: control character U+0000 is not allowed"),
        (rule(summary="\\e[2J{{ participant }}"), "7: control character U+001B (written as an"),
        (rule().encode() + b"  - name: \xff\n", "8: not UTF-8 (byte 0xff)"),
    ],
)
def test_unreadable_values_name_their_line(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    assert only_problem(write(tmp_path, text)).startswith(expected)


def test_a_file_above_512_kib_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, rule() + "#" * (512 * 1024) + "\n")
    code, err = check(path)
    assert code == 2
    assert err == [f"{path}: larger than 512 KiB: split it into several files"]


# -- values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rule(".nan"), "5: rule 'r': threshold Input should be a finite number"),
        (rule(".inf"), "5: rule 'r': threshold Input should be a finite number"),
        (rule("-.inf"), "5: rule 'r': threshold Input should be a finite number"),
        (
            rule().replace("op:", "recovery_threshold: .nan\n    op:"),
            "4: rule 'r': recovery_threshold Input should be a finite number",
        ),
        (rule(for_="999999999999999h"), "6: rule 'r': for is too long (at most 1d)"),
        (rule(for_="25h"), "6: rule 'r': for is too long (at most 1d)"),
        (rule(for_=".nan"), "6: rule 'r': for a duration is a number of seconds, not NaN"),
        (rule(for_="9" * 400 + "s"), "6: rule 'r': for is too long (at most 1d)"),
        (
            rule().replace("for: 30s", "aggregate: avg\n    over: 2d"),
            "7: rule 'r': over is too long (at most 1d)",
        ),
    ],
)
def test_non_finite_numbers_and_absurd_durations(tmp_path: Path, text: str, expected: str) -> None:
    assert only_problem(write(tmp_path, text)) == expected


def test_config_durations_are_capped_at_30_days(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO, poll={"interval": "9999999h"}
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", "--config", str(config)]) == 2
    assert err.getvalue() == f"{config}:9: poll.interval: is too long (at most 30d)\n"


def test_durations_parse_in_linear_time(tmp_path: Path) -> None:
    """A failing search from every position of a long blank run would take hours."""
    path = write(tmp_path, rule(for_='"1' + " " * 400_000 + 'x"'))
    started = time.perf_counter()
    problem = only_problem(path)
    assert time.perf_counter() - started < 10  # generous: it takes milliseconds
    assert problem.startswith("6: rule 'r': for '1 ")
    assert problem.endswith("x' is not a duration like 30s, 5m or 1h30m (units: ms s m h d)")


def test_config_numbers_are_finite(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        "http://127.0.0.1:9",
        [("s", "p")],
        POOR_VIDEO,
        videosdk={"connect_timeout": float("inf"), "backoff": float("nan")},
    )
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", "--config", str(config)]) == 2
    assert sorted(err.getvalue().splitlines()) == [
        f"{config}:6: videosdk.backoff: Input should be a finite number",
        f"{config}:8: videosdk.connect_timeout: Input should be a finite number",
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "rules: []\n", "rules:\n"])
def test_an_empty_rules_file_needs_allow_empty(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    warning = (
        f"{path}:1: warning: no rules in this file, so it watches nothing: add rules under "
        "'rules:' (check --allow-empty accepts an empty file on purpose)"
    )
    assert check(path) == (2, [warning])
    assert check(path, "--allow-empty") == (0, [warning])


def test_an_empty_rules_file_in_a_config_needs_allow_empty(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], "")
    for extra, code in (([], 2), (["--allow-empty"], 0)):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(["check", "--config", str(config), *extra]) == code
        assert f"{tmp_path / 'rules.yaml'}:1: warning: no rules in this file" in err.getvalue()


SERIES_TEST = """\
tests:
  - name: t
    input:
      - participant: p
        series:
          qualityScore.video: {series}
"""


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ('"1x100000000"', "a series holds at most 10,000 values"),
        ('"_x100000000"', "a series holds at most 10,000 values"),
        ('"1x' + "9" * 5000 + '"', "a series holds at most 10,000 values"),
        ('"1x5000 2x5000"', "a series holds at most 10,000 values"),
        ("[" + ", ".join(['"1x9000"'] * 3) + "]", "a series holds at most 10,000 values"),
        ('"1e999"', "'1e999' is not a finite number"),
        ('"1+1e999x3"', "is not a number"),
        ("[.nan]", "'nan' is not a finite number"),
    ],
)
def test_test_series_are_bounded_before_they_are_built(
    tmp_path: Path, series: str, expected: str
) -> None:
    path = write(tmp_path, rule() + SERIES_TEST.format(series=series))
    problem = only_problem(path)
    assert problem.startswith("13: tests[0].input[0].series.qualityScore.video: ")
    assert expected in problem


def test_the_tests_of_one_file_share_a_budget(tmp_path: Path) -> None:
    inputs = "".join(
        f'      - participant: p{i}\n        series: {{qualityScore.video: "1x9000"}}\n'
        for i in range(12)
    )
    path = write(tmp_path, rule() + f"tests:\n  - name: t\n    input:\n{inputs}")
    code, err = check(path)
    assert code == 2
    assert err[0].startswith(f"{path}:")
    assert "the tests of one file hold at most 100,000 values: split them" in err[0]


# -- templates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 9 ** (9 ** 9) }}", "** would be an integer above 4096 bits"),
        ("{{ 'a' * 10 ** 9 }}", "repeating would exceed the template size limit"),
        ("{{ [0] * 10 ** 9 }}", "repeating would exceed the template size limit"),
        ("{{ range(10 ** 9) | list }}", "Range too big"),
        (
            "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}",
            "the template takes",
        ),
        ("{% for i in range(9000) %}{{ i }}{% endfor %}", "the rendered text would exceed"),
        ("{{ '%0999999999d' % 1 }}", "formatting would exceed"),
        ("{{ '%0999999999d' | format(1) }}", "formatting would exceed"),
        ("{{ '{:>999999999}'.format(1) }}", "access to attribute 'format' of 'str'"),
        ("{{ 'x'.ljust(999999999) }}", "access to attribute 'ljust' of 'str'"),
        ("{{ 'x' | center(999999999) }}", "No filter named 'center'"),
        ("{{ 1.5 | round(999999999, 'floor') }}", "precision between -20 and 20"),
        ("{{ range(9000) | join('x' * 9000) }}", "|join would exceed"),
        ("{{ ('x' * 9000) | replace('', 'y' * 9000) }}", "|replace would exceed"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(99) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "~ would exceed",
        ),
        (
            "{% set ns = namespace(l=[1]) %}{% for i in range(99) %}"
            "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l == ns.l }}",
            "a literal would exceed",
        ),
        (
            "{% set ns = namespace(x=3) %}{% for i in range(99) %}"
            "{% set ns.x = ns.x * ns.x %}{% endfor %}",
            "* would be an integer above 4096 bits",
        ),
        (
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "the template takes",  # more than 100,000 steps, or longer than 1s
        ),
        ("{{ lipsum(99999) }}", "unknown variable 'lipsum'"),
    ],
)
def test_templates_are_bounded_in_arithmetic_size_and_steps(
    tmp_path: Path, template: str, expected: str
) -> None:
    path = write(tmp_path, rule(summary=template.replace('"', '\\"')))
    started = time.perf_counter()
    problem = only_problem(path)
    assert time.perf_counter() - started < 10  # generous: each is refused within milliseconds
    assert problem.startswith("7: rule 'r': summary bad template: ")
    assert expected in problem


def test_a_template_too_costly_for_real_data_sends_its_source() -> None:
    """check renders against sample data; an alert with 200 participants costs more, and the
    alert still goes out (with the template's text) instead of hanging the poll."""
    source = "{% for a in participants %}{% for b in participants %}{% for c in participants %}"
    source += ".{% endfor %}{% endfor %}{% endfor %}"
    started = time.perf_counter()
    assert render(source, {"participants": [f"p{i}" for i in range(200)]}) == source
    assert time.perf_counter() - started < 5
    assert render(source, {"participants": ["a", "b"]}) == "." * 8
    assert len(render("{{ x }}", {"x": "y" * MAX_TEXT})) == MAX_TEXT


def test_ordinary_templates_render_as_before() -> None:
    source = (
        "{{ participant }}: {{ value | number }} < {{ threshold | number }} {{ sparkline }}"
        " {% for k, v in labels.items() %}{{ k }}={{ v | upper }}{% endfor %}"
        " {{ values | join(', ') }} {{ '%.1f' | format(value) }} {{ (values | sum) | round(1) }}"
        " {{ participants | length }} {{ [1, 2] | tojson }} {{ 'a-b'.split('-') | last }}"
    )
    context = {
        "participant": "Alice",
        "value": 2.4,
        "threshold": 3.0,
        "sparkline": "▇▁",
        "labels": {"team": "video"},
        "values": [4.2, 2.4],
        "participants": ["x"],
    }
    assert render(source, context) == ("Alice: 2.4 < 3 ▇▁ team=VIDEO 4.2, 2.4 2.4 6.6 1 [1, 2] b")


# -- fuzzing ---------------------------------------------------------------------------

RULE_KEYS = [
    *("name", "metric", "op", "threshold", "for", "keep_firing_for", "recovery_threshold"),
    *("aggregate", "over", "spike", "absent", "match", "exclude", "meeting", "severity"),
    *("notify", "labels", "summary", "description"),
]
TEMPLATE_PARTS = [
    *("{{", "}}", "{%", "%}", " for x in ", "range(", ")", " ** ", " * ", " ~ ", "|join"),
    *("|format(", "9", "99999", "'a'", "participant", "values", " endfor ", "[", "]"),
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["30s", "1h", "999999999d", "<", ">=", "qualityScore.video", "p95", "-1s"]),
    st.lists(st.sampled_from(TEMPLATE_PARTS), max_size=12).map("".join),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(RULE_KEYS), st.text(max_size=8)), inner),
    ),
    max_leaves=12,
)
rule_like = st.dictionaries(st.sampled_from(RULE_KEYS), values, max_size=10)
documents = st.one_of(
    st.fixed_dictionaries({"rules": st.lists(rule_like, max_size=4)}),
    st.fixed_dictionaries(
        {"rules": st.lists(rule_like, max_size=2), "tests": st.lists(values, max_size=2)}
    ),
    values,
)


def assert_bounded_check(content: str | bytes) -> None:
    """check exits 0 or 2, prints only ``file[:line]: message`` lines, in bounded time
    and memory; an exception escaping main() fails the test with its traceback."""
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), content)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            code, err = check(path)
            elapsed = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert code in (0, 2), err
    assert all(line.startswith(f"{path}") for line in err), err
    assert code == 0 or err
    assert elapsed < 10, elapsed
    assert peak < 64 * 1024 * 1024, peak


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_fuzz_structured_rule_files(document: object) -> None:
    assert_bounded_check(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_fuzz_raw_text_and_bytes(content: str | bytes) -> None:
    assert_bounded_check(content)


VALID = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 60s
    severity: warning
    labels: {team: video}
    summary: "{{ participant }}: {{ value | number }} {{ sparkline }}"
    match:
      sdk: [android, ios]
      country: {regex: "India|Indonesia"}
  - name: rtt-p95
    metric: averageVideoRtt
    aggregate: p95
    over: 2m
    op: ">"
    threshold: 300
  - name: loss-spike
    metric: totalPacketLost
    spike: {baseline: 5m, factor: 3}
  - name: silent
    absent: 2m
tests:
  - name: fires
    input:
      - participant: alice
        series: {qualityScore.video: "4 2x7 _ 3.6x5"}
    expect:
      - {at: 1m10s, rule: poor-video, participant: alice, state: firing}
"""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(VALID)),
            st.integers(min_value=0, max_value=20),
            st.sampled_from(["", " ", "\n", ":", "-", "  ", "\t", "[", "{", "&a", "*a", "'", "%"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_edits_of_a_valid_rules_file(edits: list[tuple[int, int, str]]) -> None:
    """Typos in a real file: characters deleted and inserted at random places."""
    text = VALID
    for position, length, insert in edits:
        text = text[:position] + insert + text[position + length :]
    assert_bounded_check(text)


# -- reload ----------------------------------------------------------------------------


def test_reload_refuses_the_alias_bomb_and_keeps_running(tmp_path: Path, sim: Simulator) -> None:
    sim.add_participant("sess-1", "part-1", samples=[])
    config = write_config(tmp_path, sim.url, [("sess-1", "part-1")], POOR_VIDEO)
    rules = tmp_path / "rules.yaml"
    daemon = Daemon(["run", "--config", str(config)])
    try:
        daemon.wait_for(r"watching 1 participant", stream="err")
        rules.write_text(alias_bomb())
        daemon.proc.send_signal(signal.SIGHUP)
        rejected = daemon.wait_for(r"reload rejected", stream="err", timeout=30)
        assert f"{rules}:9: aliases expand this file by 490,329,036 values" in rejected
        rules.write_text(POOR_VIDEO.replace("poor-video", "poor-video-2"))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(r"reloaded: 1 rules", stream="err", timeout=30)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "Traceback" not in daemon.all_output()


def test_a_config_may_list_ten_thousand_participants_but_is_bounded(tmp_path: Path) -> None:
    """A config holds static participant lists (600 KB for 10,000); 4 MiB is its bound."""
    people = [
        {"session": f"sess-{i // 10:05d}", "participant": f"participant-{i:06d}"}
        for i in range(10_000)
    ]
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({"watch": {"participants": people}}))
    assert 512 * 1024 < ok.stat().st_size < MAX_CONFIG_BYTES
    assert len(load(ok, MAX_CONFIG_BYTES).data["watch"]["participants"]) == 10_000
    big = tmp_path / "big.yaml"
    big.write_text("#" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError) as refused:
        load(big, MAX_CONFIG_BYTES)
    assert str(refused.value) == f"{big}: larger than 4 MiB: split it into several files"
