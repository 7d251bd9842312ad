"""`check` on broken rule files: every problem, each at the right line, exit 2."""

from pathlib import Path

import pytest

from watchdog.cli import main
from watchdog.problems import ConfigError
from watchdog.rules import load_rules

BROKEN = """\
rules:
  - name: poor-video
    metric: qualityScore.vidoe
    op: "<"
    threshold: 3
  - name: high-rtt
    metric: averageVideoRtt
    op: "=>"
    threshold: 300
  - name: loss
    metric: recvVideoPacketLost
    op: ">"
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 2
  - name: typo
    metric: qualityScore.audio
    op: "<"
    threshold: 3
    fro: 30s
  - name: bad-for
    metric: qualityScore.audio
    op: "<"
    threshold: 3
    for: soon
"""


def _write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_problem_reported_at_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    lines = [str(p) for p in caught.value.problems]
    assert lines == [
        f"{path}:3: rule 'poor-video': metric unknown metric 'qualityScore.vidoe': "
        "did you mean 'qualityScore.video'?",
        f"{path}:8: rule 'high-rtt': op unknown operator; use one of < <= > >= == !=",
        f"{path}:10: rule 'loss': threshold is required",
        f"{path}:21: rule 'typo': unknown key 'fro': did you mean 'for'?",
        f"{path}:26: rule 'bad-for': for 'soon' is not a duration like 30s, 5m or 1h30m "
        "(units: ms s m h d)",
    ]


def test_duplicate_name_points_at_the_second_definition(tmp_path: Path) -> None:
    text = BROKEN.split("  - name: typo", maxsplit=1)[0].replace(
        "qualityScore.vidoe", "qualityScore.video"
    )
    text = text.replace('"=>"', '">"').replace(
        '    op: ">"\n  - name: poor', '    op: ">"\n    threshold: 1\n  - name: poor'
    )
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:14: duplicate rule name 'poor-video' (first defined at line 2)"
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules:\n  - name: x\n    metric: [qualityScore.video\n    op: <\n")
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    (problem,) = caught.value.problems
    assert problem.line == 4
    assert "YAML syntax error" in problem.message


def test_check_cli_prints_file_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, BROKEN)
    assert main(["check", "--rules", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5
    assert err[1] == f"{path}:8: rule 'high-rtt': op unknown operator; use one of < <= > >= == !="


def test_check_cli_accepts_the_example_rules_and_their_tests_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = Path(__file__).parent.parent / "rules.example.yaml"
    assert main(["check", "--rules", str(example)]) == 0
    assert "rules OK" in capsys.readouterr().out
    assert main(["test-rules", str(example)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith("tests, 0 failed")
    assert "FAIL" not in out


def test_unknown_top_level_key_and_non_mapping_rule(tmp_path: Path) -> None:
    path = _write(tmp_path, "rules:\n  - just a string\nalerts: []\n")
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    assert [p.line for p in caught.value.problems] == [3]
    path = _write(tmp_path, "rules:\n  - just a string\n")
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    assert str(caught.value.problems[0]) == (
        f"{path}:2: rules[0]: a rule is a mapping (name, metric, ...)"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_rules([tmp_path / "nope.yaml"])
