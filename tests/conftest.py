"""Fixtures: the project's VideoSDK simulator on 127.0.0.1 and configs that point at it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchdog.config.settings import Config, load_config
from watchdog.sim.simulator import Simulator
from watchdog.testing import HttpReceiver

from .helpers import T0
from .pgserver import PostgresServer
from .slackapi import FakeSlack

API_KEY = "test-api-key"
SECRET = (
    "test-secret-9f8e7d6c5b4a-0123456789abcdef"  # grep-able: must never appear in logs or output
)


# Modules that take longest, run first: pyproject's addopts spread the suite over xdist
# workers a file at a time (--dist loadfile), and one of these started last keeps the
# whole run waiting for it.
SLOW_FIRST = (
    "test_install.py",
    "test_alerting_cli.py",
    "test_redaction.py",
    "test_no_config.py",
    "test_hostile_files.py",
    "test_cluster.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Those modules to the front, in that order; the rest keep theirs (the sort is stable)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Tests that run the CLI in-process install the daemon's log handler; undo it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A simulator whose clock only moves when the test says so."""
    with Simulator(
        api_key=API_KEY, secret=SECRET, manual_clock=True, start=T0, sample_period=10.0
    ) as simulator:
        yield simulator


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The Slack-like server on 127.0.0.1 (tests/slackapi.py)."""
    with FakeSlack() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    """A webhook receiver on 127.0.0.1 answering 200."""
    with HttpReceiver() as receiver:
        yield receiver


def write_config(
    tmp_path: Path,
    sim_url: str,
    participants: list[tuple[str, str]],
    rules: str,
    **overrides: Any,
) -> Path:
    (tmp_path / "rules.yaml").write_text(rules)
    config: dict[str, Any] = {
        "videosdk": {
            "base_url": sim_url,
            "api_key": API_KEY,
            "secret_key": SECRET,
            "retries": 1,
            "backoff": 0.05,
            "read_timeout": 5,
        },
        "poll": {"interval": "1s", "concurrency": 4},
        "watch": {"participants": [{"session": s, "participant": p} for s, p in participants]},
        "rules": ["rules.yaml"],
        "notifiers": {"console": {"type": "console", "stream": "stdout", "colour": "never"}},
        "delivery": {"timeout": "5s"},
        "state": {"url": "state.db"},
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


POOR_VIDEO = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    for: 20s
    severity: warning
"""


@pytest.fixture
def config_for(tmp_path: Path, sim: Simulator) -> Any:
    def make(participants: list[tuple[str, str]], rules: str = POOR_VIDEO, **kw: Any) -> Config:
        return load_config(str(write_config(tmp_path, sim.url, participants, rules, **kw)))

    return make


# -- PostgreSQL (issue 9): a real server for the whole session, a fresh database a test --


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL on each backend: the store's tests run unchanged on both."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
