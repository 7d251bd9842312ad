"""`replay` prints documented JSON lines, from one or many saved responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchdog.cli.main import main

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


def test_replay_meeting_rules_and_absent_data_with_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        """\
rules:
  - name: meeting-poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {count: 2}
  - name: silent
    absent: 1m
"""
    )
    a = video_series([(0, 2.0), (10, 2.0), (20, 4.0)])
    b = video_series([(0, 4.0), (10, 2.0), (20, 2.0), (30, 4.0), (40, 4.0)])
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps([response(a), response(b, participant="part-2")]))
    assert main(["replay", "--rules", str(rules), str(stats)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"time": "2026-11-24T10:00:10.000Z", "rule": "meeting-poor", "sessionId": "sess-1",
         "participantId": None, "state": "firing", "value": 2, "meetingId": "abcd-efgh-ijkl"},
        {"time": "2026-11-24T10:00:20.000Z", "rule": "meeting-poor", "sessionId": "sess-1",
         "participantId": None, "state": "resolved", "value": 1, "meetingId": "abcd-efgh-ijkl"},
    ]  # fmt: skip
    now = "2026-11-24T10:01:30Z"
    assert main(["replay", "--rules", str(rules), "--now", now, str(stats)]) == 0
    silent = [json.loads(line) for line in capsys.readouterr().out.splitlines()][2:]
    assert silent == [
        {"time": "2026-11-24T10:01:20.000Z", "rule": "silent", "sessionId": "sess-1",
         "participantId": "part-1", "state": "firing", "value": 60},
    ]  # fmt: skip
    assert main(["replay", "--rules", str(rules), "--now", "yesterday", str(stats)]) == 2
    assert "--now: 'yesterday' is neither an ISO-8601 time nor an offset" in capsys.readouterr().err


def test_replay_now_as_an_offset_after_the_newest_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--now 50s``: the recording ended 50s after its newest sample (10:00:40 here), the
    same answer whenever it runs. The meeting alert resolved then, when nobody's data is
    fresh any more, still names the meeting's session (it used to say the meeting ID)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        """\
rules:
  - name: meeting-poor
    metric: qualityScore.video
    op: "<"
    threshold: 3
    meeting: {count: 2, within: 30s}
  - name: silent
    absent: 1m
"""
    )
    a = video_series([(0, 2.0), (10, 2.0), (20, 2.0)])
    b = video_series([(0, 4.0), (10, 2.0), (20, 2.0), (30, 2.0), (40, 2.0)])
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps([response(a), response(b, participant="part-2")]))
    assert main(["replay", "--rules", str(rules), "--now", "50s", str(stats)]) == 0
    by_offset = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["replay", "--rules", str(rules), "--now", "2026-11-24T10:01:30Z", str(stats)]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == by_offset
    assert by_offset == [
        {"time": "2026-11-24T10:00:10.000Z", "rule": "meeting-poor", "sessionId": "sess-1",
         "participantId": None, "state": "firing", "value": 2, "meetingId": "abcd-efgh-ijkl"},
        {"time": "2026-11-24T10:01:20.000Z", "rule": "silent", "sessionId": "sess-1",
         "participantId": "part-1", "state": "firing", "value": 60},
        {"time": "2026-11-24T10:01:30.000Z", "rule": "meeting-poor", "sessionId": "sess-1",
         "participantId": None, "state": "resolved", "value": 0, "meetingId": "abcd-efgh-ijkl"},
    ]  # fmt: skip
