"""`replay` prints documented JSON lines, from one or many saved responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchdog.cli import main

from .conftest import POOR_VIDEO
from .helpers import response, video_series


def test_replay_prints_documented_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(POOR_VIDEO)
    early = video_series([(0, 4), (10, 2.5), (20, 2.0)])
    late = video_series([(20, 2.0), (30, 1.5), (40, 3.5), (50, 2.9)])
    (tmp_path / "a.json").write_text(json.dumps(response(early)))
    (tmp_path / "b.json").write_text(
        json.dumps([response(late), response(late, participant="other")])
    )
    code = main(
        ["replay", "--rules", str(rules), str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        '{"time": "2026-11-24T10:00:30.000Z", "rule": "poor-video", "sessionId": "sess-1", '
        '"participantId": "part-1", "state": "firing", "value": 1.5}',
        '{"time": "2026-11-24T10:00:40.000Z", "rule": "poor-video", "sessionId": "sess-1", '
        '"participantId": "part-1", "state": "resolved", "value": 3.5}',
    ]


def test_replay_of_a_missing_or_broken_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(POOR_VIDEO)
    assert main(["replay", "--rules", str(rules), str(tmp_path / "nope.json")]) == 2
    assert f"{tmp_path / 'nope.json'}: file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"stats": []}\n{"stats": [\n')
    assert main(["replay", "--rules", str(rules), str(broken)]) == 2
    assert f"{broken}:2: not JSON" in capsys.readouterr().err
