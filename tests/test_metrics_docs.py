"""/metrics of real daemons, on SQLite and on PostgreSQL, against the docs and promtool.

The metrics table in docs/operations.md is generated from the Prometheus registry
(docs/_ext/watchdog_reference.py); it is the contract: a metric exported and not in it, or
in it and not exported, fails here, so the registry walk the docs use misses nothing a
daemon exports. The PostgreSQL-only rows must be exactly the metrics a SQLite daemon does
not export (absent, not 0). promtool, Prometheus's own checker, lints both expositions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import watchdog_reference as ref

from watchdog.simulator import Simulator

from .conftest import API_KEY, POOR_VIDEO, SECRET, write_config
from .helpers import T0, video_series
from .pgserver import PostgresServer
from .processes import Daemon

DOCS = Path(__file__).parent.parent / "docs"


SENT = 'watchdog_delivery_attempts_total{notifier="console",outcome="sent"} 1.0'


def _scrape(directory: Path, sim: Simulator, state_url: str) -> str:
    """/metrics of a daemon that has polled, fired an alert and delivered it."""
    directory.mkdir()
    config = write_config(
        directory,
        sim.url,
        [("s", "p")],
        POOR_VIDEO,
        poll={"interval": "200ms"},
        http={"listen": "127.0.0.1:0"},
        state={"url": state_url},
    )
    daemon = Daemon(["run", "--config", str(config)])
    try:
        url = daemon.wait_for(r"serving /metrics", stream="err").rsplit(" ", 1)[1]
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
                text = str(response.read().decode())
            if SENT in text:
                break
            assert time.monotonic() < deadline, "no alert delivered"
            time.sleep(0.1)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    return text


@pytest.fixture(scope="module")
def scrapes(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("metrics")
    with Simulator(api_key=API_KEY, secret=SECRET, manual_clock=True, start=T0) as sim:
        sim.add_participant("s", "p", samples=video_series([(t, 2.0) for t in (0, 10, 20, 30)]))
        sim.advance(30)  # poor video for 30 s: poor-video fires at once
        yield {
            "sqlite": _scrape(root / "sqlite", sim, str(root / "state.db")),
            "postgresql": _scrape(root / "postgresql", sim, postgres_server.create_database()),
        }


def _exported(text: str) -> set[str]:
    names = set(re.findall(r"^# TYPE (\S+) \S+$", text, re.M))
    return {n for n in names if not n.startswith(("process_", "python_"))}


def _documented() -> tuple[set[str], set[str]]:
    """(every metric in the docs' generated table, the PostgreSQL-only ones)."""
    metrics = ref.metrics()
    return {m.name for m in metrics}, {m.name for m in metrics if m.postgresql_only}


def test_the_docs_document_exactly_the_metrics_exported(scrapes: dict[str, str]) -> None:
    sqlite, postgres = _exported(scrapes["sqlite"]), _exported(scrapes["postgresql"])
    documented, postgres_only = _documented()
    assert sorted((sqlite | postgres) - documented) == [], "exported but not in the docs' table"
    assert sorted(documented - (sqlite | postgres)) == [], "in the docs' table, never exported"
    assert sorted(postgres_only) == sorted(postgres - sqlite), "PostgreSQL-only rows"
    for name in ("watchdog_database_up", "watchdog_leader", "watchdog_instances_live"):
        assert name not in scrapes["sqlite"]  # absent on SQLite, not 0
        assert re.search(rf"^{name} 1\.0$", scrapes["postgresql"], re.M), name
    # the table is on the operations page (tests/test_docs.py: pages name no other metric)
    assert "```{watchdog-metrics}" in (DOCS / "operations.md").read_text()


def test_promtool_accepts_both_expositions(scrapes: dict[str, str]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian package prometheus; .ci/run installs it)"
    for backend, text in scrapes.items():
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, (backend, checked.stdout, checked.stderr)
        assert checked.stdout + checked.stderr == "", (backend, checked.stdout, checked.stderr)


def test_queued_and_delivered_are_counted_apart(scrapes: dict[str, str]) -> None:
    """Different events, different counters: summing a counter over its labels means something."""
    for text in scrapes.values():
        assert 'watchdog_notifications_queued_total{notifier="console"} 1.0' in text
        assert SENT in text
        assert 'outcome="queued"' not in text
