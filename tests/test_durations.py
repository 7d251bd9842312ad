from datetime import timedelta

import pytest

from watchdog.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), (45, 45), ("0", 0), ("1d", 86400)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "5 minutes", "1x", "-3s", "m", True, None, -1])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("1h30m", "45s", "500ms", "2d", "0s"):
        assert format_duration(parse_duration(text)) == text
