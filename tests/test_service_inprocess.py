"""The service driven in-process: fatal state errors, the HTTP endpoint's edges, reloads."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config
from watchdog.runtime.service import Service
from watchdog.sim.simulator import Simulator

from .helpers import video_series


def started(service: Service) -> tuple[threading.Thread, list[int], threading.Event]:
    codes: list[int] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: codes.append(service.run(stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while service.liveness.last_cycle is None:
        assert time.monotonic() < deadline, "no poll cycle finished"
        assert thread.is_alive()
        time.sleep(0.02)
    return thread, codes, stop


def status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_state_database_turning_read_only_exits_1(
    sim: Simulator, config_for: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_participant("s", "p", samples=video_series([(0, 4.0)]))
    service = Service(config_for([("s", "p")], poll={"interval": "100ms"}))
    thread, codes, _ = started(service)
    database = service.runtime.store.database
    with database.lock:  # the disk went read-only under the daemon
        database.execute("PRAGMA query_only=ON")
    thread.join(timeout=20)
    assert codes == [1]
    assert "failed in 3 poll cycles in a row (state.max_failed_cycles): read-only" in caplog.text
    faults = [r for r in caplog.records if r.name == "watchdog.state.faults"]
    assert len(faults) == 1, faults  # one line for the episode, however many writes failed


def test_http_endpoint_answers_only_what_it_serves(
    sim: Simulator, config_for: Callable[..., Config], caplog: pytest.LogCaptureFixture
) -> None:
    service = Service(config_for([], http={"listen": "127.0.0.1:0"}))
    thread, codes, stop = started(service)
    try:
        assert service.http is not None
        base = service.http.url
        assert status(base + "/healthz") == 200
        assert status(base + "/healthz", method="HEAD") == 200
        assert status(base + "/metrics", method="POST") == 405
        assert status(base + "/admin") == 404
        # a reload that moves the listener: the new one serves, the old one is closed
        assert service.config.path is not None
        path = Path(service.config.path)
        text = path.read_text().replace("listen: 127.0.0.1:0", "listen: localhost:0")
        path.write_text(text.replace("concurrency: 4", "concurrency: 8"))
        assert service.reload()
        assert "poll.concurrency changed: that takes effect at the next restart" in caplog.text
        assert service.config.settings.poll.concurrency == 4  # what runs, until a restart
        assert service.http is not None
        assert service.http.url != base
        assert status(service.http.url + "/healthz") == 200
        with pytest.raises(urllib.error.URLError):
            status(base + "/healthz")
    finally:
        stop.set()
        thread.join(timeout=20)
    assert codes == [0]


def test_bad_listen_address_is_a_config_error_with_its_line(
    sim: Simulator, config_for: Callable[..., Config]
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_for([], http={"listen": "9464"})
    (problem,) = caught.value.problems
    assert problem.file.endswith("config.yaml")
    assert problem.line is not None
    assert "is not host:port" in problem.message
