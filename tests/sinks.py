"""A real HTTP sink on 127.0.0.1 and a small notifier plugin that delivers to it.

The plugin is source text, so a test can load it the way an outside plugin
is loaded: as a module object handed to the plugin host, or as an installed
distribution found through the ``videosdk_watchdog`` entry-point group.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

from .sitedirs import fake_distribution

PLUGIN_MODULE = "watchdog_testsink"

PLUGIN_SOURCE = '''\
"""Test notifiers: ``sink`` POSTs each notification as JSON; ``raiser`` always raises."""

import requests
from pydantic import SecretStr

from watchdog.hookspecs import hookimpl
from watchdog.notifiers import DeliveryError, NotifierConfig, NotifierType


class SinkConfig(NotifierConfig):
    url: str
    timeout: float = 60.0


class RaiserConfig(NotifierConfig):
    message: str = "plugin bug"
    token: SecretStr | None = None


class Sink:
    def __init__(self, config):
        self.config = config

    def send(self, notification):
        try:
            answer = requests.post(
                self.config.url, json=notification.to_dict(), timeout=self.config.timeout
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"sink unreachable: {type(exc).__name__}") from None
        if answer.status_code == 429:
            retry = float(answer.headers.get("Retry-After", "1"))
            raise DeliveryError("sink rate-limited us", retry_after=retry)
        if answer.status_code == 410:
            raise DeliveryError("sink says this can never work", permanent=True)
        if answer.status_code >= 300:
            raise DeliveryError(f"sink answered {answer.status_code}")


class Raiser:
    def __init__(self, config):
        self.message = config.message
        if config.token is not None:  # a careless plugin quoting its secret in an error
            self.message += " with token " + config.token.get_secret_value()

    def send(self, notification):
        raise RuntimeError(self.message)


@hookimpl
def register_notifier_types(register):
    register(NotifierType("sink", SinkConfig, lambda ctx: Sink(ctx.config)))
    register(NotifierType("raiser", RaiserConfig, lambda ctx: Raiser(ctx.config)))
'''


def plugin_module() -> ModuleType:
    """The test plugin as a fresh module object (what an entry point would load)."""
    spec = importlib.util.spec_from_loader(PLUGIN_MODULE, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    exec(compile(PLUGIN_SOURCE, f"<{PLUGIN_MODULE}>", "exec"), module.__dict__)
    sys.modules.setdefault(PLUGIN_MODULE, module)
    return module


class Sink:
    """Records every POST. ``script`` holds answers for the next requests, in order:
    an int status, ``("retry-after", seconds)`` for a 429, or ``"hang"`` (accept, then
    answer 200 only once ``release()`` is called). When the script is empty: 200.

    ``received`` holds the JSON of every request that got (or will get) a 200;
    ``attempts`` counts every request.
    """

    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.down = False  # answer 503 to everything, like a service in an outage
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.hanging = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with sink._lock:
                    sink.attempts += 1
                    if sink.down:
                        action: Any = 503
                    else:
                        action = sink.script.popleft() if sink.script else 200
                    if action == "hang":
                        sink.hanging += 1
                if action == "hang":
                    sink._released.wait(timeout=60)
                    action = 200
                if isinstance(action, tuple):
                    self._answer(429, {"Retry-After": str(action[1])})
                    return
                if action == 200:
                    with sink._lock:
                        sink.received.append(body)
                self._answer(int(action))

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client is gone (killed mid-delivery)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self._released.set()

    def wait_for(self, count: int, timeout: float = 15.0, what: str = "received") -> None:
        deadline = time.monotonic() + timeout
        while (self.attempts if what == "attempts" else len(self.received)) < count:
            assert time.monotonic() < deadline, (
                f"sink: {len(self.received)} received, {self.attempts} attempts; wanted {count}"
            )
            time.sleep(0.02)


def install_plugin(root: Path) -> Path:
    """The test plugin as an installed distribution under ``root`` (for subprocesses)."""
    return fake_distribution(
        root,
        "watchdog-testsink",
        "0.1",
        entry_points={"testsink": PLUGIN_MODULE},
        modules={PLUGIN_MODULE: PLUGIN_SOURCE},
    )
