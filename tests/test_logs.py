"""Log lines: one event a line, journald-aware, and always naming the participant."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest

from watchdog.obs.logs import (
    JsonFormatter,
    ParticipantFilter,
    PlainFormatter,
    about,
    under_journald,
)


def record(message: str, level: int = logging.WARNING, **extra: str) -> logging.LogRecord:
    item = logging.LogRecord("watchdog.poll.poller", level, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(item, key, value)
    ParticipantFilter().filter(item)
    return item


def test_journald_is_detected_by_the_stream_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w") as journal, (tmp_path / "other").open("w") as other:
        info = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert under_journald(journal)
        assert not under_journald(other)  # e.g. stderr redirected by a wrapper script
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not under_journald()


def test_journal_lines_carry_priority_and_no_timestamp() -> None:
    line = PlainFormatter(timestamps=False, priorities=True).format(record("slow\nAPI"))
    assert line == "<4>WARNING watchdog.poll.poller: slow\n    API"
    stamped = PlainFormatter(timestamps=True).format(record("x", logging.ERROR))
    assert stamped[:4].isdigit()
    assert stamped.endswith("ERROR watchdog.poll.poller: x")


def test_lines_inside_about_name_the_participant() -> None:
    with about("sess-1", "part-1"):
        inside = record("401 from VideoSDK")
        explicit = record("x", session_id="sess-2", participant_id="part-2")
    outside = record("cycle done")
    seen: list[logging.LogRecord] = []
    worker = threading.Thread(target=lambda: seen.append(record("other thread")))
    with about("sess-1", "part-1"):
        worker.start()
        worker.join()
    plain = PlainFormatter(timestamps=False)
    assert plain.format(inside).endswith("[session_id=sess-1 participant_id=part-1]")
    assert plain.format(explicit).endswith("[session_id=sess-2 participant_id=part-2]")
    assert "session_id" not in plain.format(outside)
    assert "session_id" not in plain.format(seen[0])  # context does not leak across threads


def test_json_lines_are_objects_with_the_ids() -> None:
    with about("s", "p"):
        line = JsonFormatter().format(record("alert poor-video firing", logging.INFO))
    event = json.loads(line)
    assert event["level"] == "info"
    assert event["message"] == "alert poor-video firing"
    assert (event["session_id"], event["participant_id"]) == ("s", "p")
    assert "\n" not in line
