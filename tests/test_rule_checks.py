"""`check`, `schema` and `test-rules`: mistakes found before they page anyone."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from watchdog.cli import main
from watchdog.metrics import DERIVED_FIELDS
from watchdog.problems import ConfigError
from watchdog.rules import load_rules
from watchdog.simulator import Simulator

from .conftest import write_config

EXAMPLE = Path(__file__).parent.parent / "rules.example.yaml"

BROKEN = """\
rules:
  - name: spike-with-op
    metric: recvVideoPacketLost
    op: ">"
    spike: {baseline: 1m}
  - name: window-without-over
    metric: averageVideoRtt
    aggregate: p95
    op: ">"
    threshold: 300
  - name: absent-with-metric
    absent: 1m
    metric: qualityScore.video
  - name: bad-regex
    metric: qualityScore.video
    op: "<"
    threshold: 3
    match:
      device: {regex: "Chrome("}
  - name: typo-in-template
    metric: qualityScore.video
    op: "<"
    threshold: 3
    summary: "{{ partcipant }} is unhappy"
  - name: escape-attempt
    metric: qualityScore.video
    op: "<"
    threshold: 3
    description: "{{ value.__class__.__mro__ }}"
  - name: backwards-recovery
    metric: qualityScore.video
    op: "<"
    threshold: 3
    recovery_threshold: 2
  - name: meeting-both
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {fraction: 0.5, count: 2}
"""


def test_every_semantic_problem_at_once_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    lines = [str(p) for p in caught.value.problems]
    assert lines[0] == f"{path}:4: rule 'spike-with-op': op has no meaning in a spike rule"
    assert lines[1] == f"{path}:5: rule 'spike-with-op': spike set factor, min_change or both"
    assert lines[2] == f"{path}:6: rule 'window-without-over': over is required with aggregate"
    assert (
        lines[3] == f"{path}:13: rule 'absent-with-metric': metric has no meaning in an absent rule"
    )
    assert lines[4].startswith(f"{path}:19: rule 'bad-regex': match.device invalid regex 'Chrome('")
    assert lines[5].startswith(f"{path}:24: rule 'typo-in-template': summary bad template: ")
    assert "unknown variable 'partcipant': did you mean 'participant'?" in lines[5]
    assert lines[6].startswith(f"{path}:29: rule 'escape-attempt': description bad template: ")
    assert "SecurityError" in lines[6]
    assert lines[7] == (
        f"{path}:34: rule 'backwards-recovery': recovery_threshold must be >= threshold (3) "
        "with op <"
    )
    assert (
        lines[8] == f"{path}:39: rule 'meeting-both': meeting set exactly one of fraction or count"
    )
    assert len(lines) == 9


def test_unknown_metric_lists_the_derived_ones_too(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: x, metric: packetloss, op: '>', threshold: 1}\n")
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    (problem,) = caught.value.problems
    for name in DERIVED_FIELDS:
        assert name in problem.message


def test_check_with_config_warns_and_errors_together(
    tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = """\
rules:
  - name: quick
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 2s
    notify: [pagerduty]
  - name: short-window
    metric: averageVideoRtt
    aggregate: avg
    over: 3s
    op: ">"
    threshold: 300
"""
    config = write_config(tmp_path, sim.url, [("s", "p")], rules, poll={"interval": "5s"})
    assert main(["check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    rules_path = tmp_path / "rules.yaml"
    assert f"{rules_path}:2: rule 'quick': notify names unknown notifier 'pagerduty'" in err
    assert (
        f"{rules_path}:2: warning: rule 'quick': for (2s) is shorter than the poll interval" in err
    )
    assert f"{rules_path}:8: warning: rule 'short-window': over (3s) is shorter" in err


def test_schema_validates_the_example_and_catches_a_typo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "rules"]) == 0
    schema = json.loads(capsys.readouterr().out)
    example = yaml.safe_load(EXAMPLE.read_text())
    jsonschema.validate(example, schema)
    example["rules"][0]["fro"] = "1m"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)
    metric = schema["$defs"]["Rule"]["properties"]["metric"]
    assert "totalPacketLost" in json.dumps(metric)
    assert main(["schema", "config"]) == 0
    config_schema = json.loads(capsys.readouterr().out)
    jsonschema.validate(
        yaml.safe_load((EXAMPLE.parent / "config.example.yaml").read_text()), config_schema
    )


FAILING = """\
rules:
  - name: poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 20s
tests:
  - name: fires at 30s
    input:
      - participant: alice
        series: {qualityScore.video: "4 2x4 4"}
    expect:
      - {at: 30s, rule: poor, participant: alice, state: firing}
      - {at: 1m, rule: poor, participant: alice, state: resolved, value: 4}
  - name: wrong expectation
    input:
      - participant: alice
        series: {qualityScore.video: "4 2x4 4"}
    expect:
      - {at: 20s, rule: poor, participant: alice, state: firing}
      - {at: 50s, rule: poor, participant: alice, state: resolved, value: 4}
"""


def test_test_rules_reports_a_diff_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(FAILING)
    assert main(["test-rules", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "PASS  fires at 30s",
        f"FAIL  wrong expectation  ({path}:15)",
        "  expected, not produced:",
        "    -      20s  poor  alice  firing",
        "    -      50s  poor  alice  resolved  value=4",
        "  produced, not expected:",
        "    +      30s  poor  alice  firing  value=2",
        "    +       1m  poor  alice  resolved  value=4",
        f"{path}: 2 tests, 1 failed",
    ]


def test_test_rules_malformed_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        FAILING.replace(
            '"4 2x4 4"}\n    expect:\n      - {at: 20s', '"4 2y4"}\n    expect:\n      - {at: 20s'
        ).replace("{at: 30s, rule: poor,", "{at: 30s, rule: pooor,")
    )
    assert main(["test-rules", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:13: test 'fires at 30s': expects unknown rule 'pooor'",
        f"{path}:18: tests[1].input[0].series.qualityScore.video: "
        "'2y4' is not a number, _, axn, a+bxn or _xn",
    ]
