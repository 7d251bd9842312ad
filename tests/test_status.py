"""``status`` through the real CLI: names learnt from stats, and what each alert is going
through (acknowledged, silenced, pending), so "why was I not paged?" has an answer."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog.alerting.actions import StoreActions
from watchdog.alerting.oncall import Feeds
from watchdog.alerts import fingerprint
from watchdog.cli.main import main
from watchdog.config.settings import Config, load_config
from watchdog.durations import parse_time
from watchdog.sim.simulator import Simulator
from watchdog.state.store import Store

from .conftest import POOR_VIDEO, write_config
from .helpers import video_series
from .test_oncall import FeedServer, shift_feed


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "watchdog", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_status_names_fixed_participants_and_marks_acked_silenced_and_pending(
    tmp_path: Path, sim: Simulator
) -> None:
    bad = video_series([(0, 2), (10, 2), (20, 2), (30, 2)])  # pending at 0, fires at 20s
    late = video_series([(0, 4), (10, 4), (20, 4), (30, 2)])  # pending since 30s
    sim.add_participant("s", "alice", samples=bad, name="Alice Martin", meeting_id="abcd-efgh-ijkl")
    sim.add_participant("s", "bob", samples=bad, name="Bilal Khan", meeting_id="abcd-efgh-ijkl")
    sim.add_participant("s", "carol", samples=late, name="Chen Wei", meeting_id="abcd-efgh-ijkl")
    sim.advance(30)
    config = str(
        write_config(tmp_path, sim.url, [("s", "alice"), ("s", "bob"), ("s", "carol")], POOR_VIDEO)
    )
    cli("once", "--config", config)

    store = Store(str(tmp_path / "state.db"))  # what the Slack button does
    try:
        done = StoreActions(store.silences, store.alert_log, store.watchlist).acknowledge(
            fingerprint("poor-video", "s", "alice"), "U1", "slack"
        )
    finally:
        store.close()
    assert done.ok, done.message
    silenced = cli(
        "silence", "add", "--config", config, "--match", "participantId=bob",
        "--match", "rule=poor-video", "--for", "2h", "--comment", "known wifi", "--author", "dana",
    ).stdout.strip()  # fmt: skip

    text = cli("status", "--config", config).stdout
    assert text.startswith(
        "3 participants watched (0 leaving), 0 excluded by filters, "
        "2 alerts firing (1 silenced, 0 inhibited), 1 pending; times in UTC"
    )
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("s ")}
    assert "Alice Martin" in rows["alice"]  # fixed in the config, named by its stats
    assert "abcd-efgh-ijkl" in rows["alice"]
    assert "Chen Wei" in rows["carol"]
    lines = [line.strip() for line in text.splitlines() if line.startswith("    ")]
    alerts = [line for line in lines if line.startswith(("FIRING", "PENDING"))]
    causes = [line for line in lines if line.startswith("likely cause: ")]
    assert len(causes) == 2  # one under each firing alert, its evidence below it
    assert alerts == [
        "FIRING poor-video since 2026-11-24 10:00:20, acknowledged by U1 (slack) at "
        + alerts[0].rsplit(" at ", 1)[1],
        f"FIRING poor-video since 2026-11-24 10:00:20, SILENCED by dana until "
        f"{alerts[1].split(' until ')[1].split(' (')[0]} (silence {silenced[:8]})",
        "PENDING poor-video since 2026-11-24 10:00:30 (condition holds, not yet for its for:)",
    ]

    data = {
        row["participantId"]: row
        for row in json.loads(cli("status", "--json", "--config", config).stdout)
    }
    assert data["alice"]["name"] == "Alice Martin"
    assert data["alice"]["firing"][0]["ackedBy"] == "U1"
    assert "silenceId" not in data["alice"]["firing"][0]
    assert data["bob"]["firing"][0]["silenceId"] == silenced
    assert data["bob"]["firing"][0]["silencedBy"] == "dana"
    assert data["carol"]["firing"] == []
    assert data["carol"]["pending"] == [{"rule": "poor-video", "since": "2026-11-24T10:00:30.000Z"}]


def daemon_feeds(config: Config, store: Store, now: datetime) -> Feeds:
    """A daemon's feeds as it starts (watchdog.runtime.build.make_schedules), at ``now``."""
    feeds = Feeds(config.settings.oncall, config.resolve, store.oncall, lambda: now)
    feeds.load_saved()
    return feeds


def test_status_shows_who_is_on_call_and_a_failing_calendar_feed_with_its_kept_copy(
    tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    feed = FeedServer()
    feed.body = shift_feed("Alice", now - timedelta(hours=1), now + timedelta(hours=8))
    people = {"Alice": {"slack_user": "UALICE1"}, "Bob": {"slack_user": "UBOB001"}}
    rotation = {"people": ["Bob"], "start": str(now.date() - timedelta(days=2))}
    teams = {
        "video": {"calendar": feed.url, "people": people},
        "ops": {"rotation": rotation, "people": people},
    }
    path = write_config(tmp_path, sim.url, [], POOR_VIDEO, oncall={"teams": teams})
    config = load_config(str(path))
    store = Store(config.state_url)
    try:  # the daemon's feeds: a good fetch, then the feed fails, then a restart
        assert daemon_feeds(config, store, now - timedelta(minutes=30)).refresh("video")
        feed.status = 503
        assert not daemon_feeds(config, store, now - timedelta(minutes=20)).refresh("video")
        assert not daemon_feeds(config, store, now - timedelta(minutes=10)).refresh("video")
    finally:
        store.close()
        feed.stop()

    assert main(["status", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    section = text.split("on call (as the daemon last fetched the schedules):\n")[1]
    lines = section.split("\n\n")[0].splitlines()
    assert lines[0] == "  video:"
    assert lines[1].startswith("    now   Alice from ")  # the copy kept from the good fetch
    assert lines[3].startswith("    calendar feed FAILING since ")
    assert ": the feed answered HTTP 503 (copy in use fetched " in lines[3]
    assert "  ops:" in lines
    assert any(line.startswith("    now   Bob from ") for line in lines)
    assert "s3cr3t" not in text  # the feed's URL carries a token

    assert main(["status", "--json", "--config", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["participants"] == []
    video, ops = (next(t for t in document["oncall"] if t["team"] == n) for n in ("video", "ops"))
    assert video["now"]["person"] == "Alice"
    assert video["feed"]["error"] == "the feed answered HTTP 503"
    failing_since = parse_time(video["feed"]["failingSince"])
    fetched = parse_time(video["feed"]["fetchedAt"])
    checked = parse_time(video["feed"]["checkedAt"])
    assert fetched == now - timedelta(minutes=30)
    assert failing_since == now - timedelta(minutes=20)  # a restart counts on from there
    assert checked == now - timedelta(minutes=10)
    assert ops["now"]["person"] == "Bob"
    assert "feed" not in ops
