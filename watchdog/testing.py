"""Test kit for notifier plugins: factories, a plugin host, a local HTTP receiver, a contract.

A pytest plugin, loaded automatically wherever videosdk-watchdog is installed
(``pytest11`` entry point ``watchdog.testing``; ``-p no:watchdog.testing`` turns
it off, ``pytest_plugins = ["watchdog.testing"]`` loads it explicitly). It lets a
team test its notifier without a daemon, a VideoSDK account or the network::

    from watchdog.testing import NotifierContract

    class TestPager(NotifierContract):
        notifier_type = "pager"

        @pytest.fixture
        def notifier_config(self, http_receiver):
            return {"url": http_receiver.url, "token": "pager-token-123"}

        @pytest.fixture
        def unreachable_config(self, unreachable_url):
            return {"url": unreachable_url, "token": "pager-token-123"}

``NotifierContract`` sends a firing, a repeat, a resolved, a grouped and a test
notification and checks each is accepted; sends acknowledgement notices and checks
they never raise; checks that a destination that is
down raises ``DeliveryError``; and that no secret from the config, in any form
the core's redaction rule knows (URL-encoded, JSON-escaped, a secret URL's path
segments as ``requests`` quotes them...), reaches a log record, a ``repr`` or an
error message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from watchdog.alerts import (
    DEFAULT_GROUP_BY,
    LEFT_WHILE_DEGRADED,
    MEETING_VIEW,
    Alert,
    Notification,
    NotificationEvent,
    Report,
    ReportSeries,
    Status,
    fingerprint,
    group_identity,
)
from watchdog.config.problems import ConfigError
from watchdog.delivery.host import PluginHost, PluginInfo
from watchdog.notifiers import (
    DEFAULT_RETENTION,
    DeliveryError,
    MemoryState,
    Notifier,
    NotifierConfig,
    Redactor,
    secret_values,
)

__all__ = [
    "HttpReceiver",
    "NotifierContract",
    "PluginTestHost",
    "Received",
    "Reply",
    "TLSCertificates",
    "grouped_notification",
    "make_alert",
    "make_notification",
    "make_report",
    "resolved",
    "secret_values",
]

T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


# --- factories ---------------------------------------------------------------------------


def make_alert(
    rule: str = "poor-video",
    participant_id: str = "part-1",
    session_id: str = "sess-1",
    **overrides: Any,
) -> Alert:
    """A realistic firing alert: Alice's video score 2.41 under a threshold of 3."""
    starts = overrides.pop("starts_at", T0)
    values: dict[str, Any] = {
        "fingerprint": fingerprint(rule, session_id, participant_id),
        "rule": rule,
        "status": "firing",
        "severity": "warning",
        "metric": "qualityScore.video",
        "op": "<",
        "threshold": 3.0,
        "value": 2.41,
        "session_id": session_id,
        "participant_id": participant_id,
        "starts_at": starts,
        "fired_at": starts + timedelta(seconds=60),
        "sample_time": starts + timedelta(seconds=60),
        "meeting_id": "abcd-efgh-ijkl",
        "participant_name": "Alice",
        "summary": None,
        "description": "Video quality score is below 3 (MOS scale 1-5).",
        "labels": {"alertname": rule, "severity": overrides.get("severity", "warning")},
        "context": {"device": "Chrome", "sdk": "react", "country": "India", "city": "Mumbai"},
    }
    values.update(overrides)
    return Alert(**values)


def resolved(
    alert: Alert,
    after: timedelta = timedelta(minutes=5),
    value: float = 4.2,
    reason: str | None = None,
) -> Alert:
    """The same alert, resolved ``after`` its firing with a healthy value.

    With a ``reason`` (e.g. ``LEFT_WHILE_DEGRADED``) it resolved without a
    recovering sample, and keeps the last value seen, as the core sends it.
    """
    end = alert.fired_at + after
    last = alert.value if reason else value
    return replace(
        alert, status="resolved", value=last, sample_time=end, ends_at=end, reason=reason
    )


def make_report(
    kind: Literal["call", "digest"] = "call",
    notifier: str = "test",
    meeting_id: str = "abcd-efgh-ijkl",
) -> Notification:
    """A call report (or the daily digest) as the core hands it to ``send``: event
    ``"report"`` (``"digest"``), no alerts, the report's data in ``Notification.report``;
    a chart of two participants over ten minutes."""
    times = tuple(T0 + timedelta(minutes=m) for m in range(10))
    report = Report(
        kind=kind,
        title=f"Call report: meeting {meeting_id}, 2026-11-24 10:00-10:10 UTC (10m), "
        "2 participants, 1 alerts"
        if kind == "call"
        else "Daily digest 2026-11-23 09:00-2026-11-24 09:00 UTC: 1 alerts fired",
        lines=(
            "  Alice (part-1): 4 of 10 min degraded",
            "  Bob (part-2): 0 of 10 min degraded",
            "  10:03 poor-video on part-1 for 4m, acknowledged by alice",
        ),
        start=T0,
        end=T0 + timedelta(minutes=10),
        figures={"meeting_id": meeting_id},
        meeting_id=meeting_id if kind == "call" else None,
        session_id="sess-1" if kind == "call" else None,
        chart_metric="qualityScore.video" if kind == "call" else None,
        chart=(
            ReportSeries("Alice", times, (4.5, 4.4, 4.1, 2.4, 2.2, 2.1, 2.6, 4.0, 4.3, 4.4)),
            ReportSeries("Bob", times, (4.6,) * 10),
        )
        if kind == "call"
        else (),
    )
    event: NotificationEvent = "report" if kind == "call" else "digest"
    return Notification(
        id=uuid.uuid4().hex,
        notifier=notifier,
        status="resolved",
        alerts=(),
        thread=f"{kind}:{meeting_id}",
        group_labels={"meeting_id": meeting_id} if kind == "call" else {},
        reason=event,
        event=event,
        report=report,
    )


def make_notification(
    *alerts: Alert,
    notifier: str = "test",
    status: Status | None = None,
    thread: str | None = None,
    repeat: bool = False,
    test: bool = False,
    group_by: Sequence[str] = DEFAULT_GROUP_BY,
) -> Notification:
    """A notification as the core hands it to ``send``; one default alert if none given.

    Its group (``group_key``, ``group_labels``) is the first alert's under ``group_by``.
    """
    carried = alerts or (make_alert(),)
    first = carried[0]
    if status is None:
        status = "firing" if any(a.status == "firing" for a in carried) else "resolved"
    key, labels = group_identity(notifier, carried, group_by)
    return Notification(
        id=uuid.uuid4().hex,
        notifier=notifier,
        status=status,
        alerts=tuple(carried),
        thread=thread or f"{first.fingerprint}@{first.starts_at.isoformat()}",
        repeat=repeat,
        test=test,
        group_key=key,
        group_labels=labels,
        reason="repeat interval elapsed" if repeat else "first notification",
    )


def grouped_notification(
    count: int = 3,
    meeting_id: str = "abcd-efgh-ijkl",
    notifier: str = "test",
    group_by: Sequence[str] = MEETING_VIEW,
) -> Notification:
    """Several alerts of one meeting in one notification, as ``group_by: [meeting_id]`` (the
    meeting view) makes; another ``group_by`` (e.g. ``["meeting_id", "session_id"]``) gives
    the same alerts grouped otherwise."""
    names = ["Alice", "Bob", "Chandra", "Dmitri", "Eve", "Femi"]
    severities = ["critical", "warning", "info"]
    rtt: dict[str, Any] = {
        "metric": "averageVideoRtt",
        "op": ">",
        "threshold": 300.0,
        "value": 512.5,
    }
    alerts = [
        make_alert(
            rule="poor-video" if i % 2 == 0 else "high-rtt",
            participant_id=f"part-{i + 1}",
            participant_name=names[i % len(names)],
            meeting_id=meeting_id,
            severity=severities[i % len(severities)],
            **({} if i % 2 == 0 else rtt),
        )
        for i in range(count)
    ]
    return make_notification(
        *alerts, notifier=notifier, thread=f"group:{meeting_id}", group_by=group_by
    )


# --- the plugin host ---------------------------------------------------------------------


class PluginTestHost:
    """Loads plugins like the daemon does and builds notifiers from config dicts."""

    def __init__(self) -> None:
        self.host = PluginHost()
        self.states: dict[str, MemoryState] = {}
        self.configs: dict[str, BaseModel] = {}
        self.retention = DEFAULT_RETENTION  # ``history.retention`` the notifiers are told

    def add(self, plugin: object, name: str | None = None) -> PluginInfo:
        """Register a plugin object (usually your module); fails the test if it cannot."""
        label = name or str(getattr(plugin, "__name__", type(plugin).__name__))
        info = self.host.add(plugin, label)
        if info.error:
            pytest.fail(f"plugin {label} did not register: {info.error}")
        return info

    def load_entry_points(self) -> None:
        """Load every installed ``videosdk_watchdog`` plugin, as the daemon does."""
        self.host.load_entry_points()

    def build(self, config: Mapping[str, Any], name: str = "test") -> Notifier:
        """A notifier for one ``notifiers:`` entry (``config`` includes ``type``).

        Raises ConfigError if the entry does not validate, like ``check`` would.
        """
        self.configs.update(self.host.validate({name: config}))
        state = self.states.setdefault(name, MemoryState())
        return self.host.build({name: config}, lambda _: state, retention=self.retention)[name]


# --- a local HTTP destination ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    port: int = 0  # the client's: one port for several requests means one kept connection

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Reply:
    """How the receiver answers: a status, a body (bytes, text or JSON) and headers."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering: a slow destination

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


Handler = Callable[[Received], Reply]


class HttpReceiver:
    """An HTTP(S) server on 127.0.0.1 that records requests and answers as told.

    Answers come from ``reply(...)``'d replies first (one each, in order),
    then from ``handler`` if given, else ``200`` with an empty body.
    """

    def __init__(
        self, handler: Handler | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.requests: list[Received] = []
        self._queued: list[Reply] = []
        self._lock = threading.Condition()
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body leave in one write (flushed after each request): written
            # apart, Nagle's algorithm meets the client's delayed ACK, 40 ms a reply
            wbufsize = -1

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    port=self.client_address[1],
                )
                reply = receiver._answer(request)
                if reply.delay:
                    time.sleep(reply.delay)
                payload, content_type = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # tests read .requests, not stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _answer(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            queued = self._queued.pop(0) if self._queued else None
            self._lock.notify_all()
        if queued is not None:
            return queued
        return self.handler(request) if self.handler else Reply()

    def reply(self, *replies: Reply) -> None:
        """Queue the next answers, e.g. ``Reply(429, headers={"Retry-After": "7"})``."""
        with self._lock:
            self._queued.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` requests arrived; returns them all."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} requests within {timeout}s, got {len(self.requests)}"
                    )
                self._lock.wait(left)
            return list(self.requests)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EndlessAnswer:
    """A server on 127.0.0.1 that answers one request with ``status`` and a body that never
    ends: 64 KiB pieces as fast as the client takes them, or with ``trickle`` one byte
    every that many seconds (the slow server a read timeout alone never stops). ``sent``
    counts the body bytes that left, once the answer is over. Test that a notifier reads
    an error answer bounded in size and time (``watchdog.notifiers.read_answer``)::

        with EndlessAnswer(503) as server:
            notifier = notifier_host.build({"type": "pager", "url": server.url + "/pages"})
            with pytest.raises(DeliveryError):
                notifier.send(make_notification())
        assert server.sent < 8 * 2**20
    """

    def __init__(self, status: int = 503, *, trickle: float | None = None) -> None:
        self.status = status
        self.trickle = trickle
        self.sent = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._answer, name="endless-answer", daemon=True)

    def _answer(self, seconds: float = 10.0) -> None:
        self._server.settimeout(seconds)
        with contextlib.suppress(OSError), self._server.accept()[0] as connection:
            connection.settimeout(seconds)
            connection.recv(65536)
            connection.sendall(
                f"HTTP/1.1 {self.status} Answer Without End\r\n".encode()
                + b"Content-Type: text/plain\r\nContent-Length: 10000000000\r\n\r\n"
            )
            piece = b"x" if self.trickle else b"x" * 65536
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:  # the client hangs up: OSError ends it
                connection.sendall(piece)
                self.sent += len(piece)
                if self.trickle:
                    time.sleep(self.trickle)

    def __enter__(self) -> EndlessAnswer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(15)
        self._server.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class TLSCertificates:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca_file: str  # give this to the notifier's ca_file option to trust the server
    server_context: ssl.SSLContext  # wrap a test server's socket with this

    @classmethod
    def create(cls, directory: str) -> TLSCertificates:
        import trustme  # noqa: PLC0415 - only the TLS fixtures need it (pip install trustme)

        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        path = f"{directory}/watchdog-test-ca.pem"
        ca.cert_pem.write_to_path(path)
        return cls(ca_file=path, server_context=context)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def notifier_host() -> PluginTestHost:
    """A fresh plugin host: ``add(your_module)``, then ``build({"type": ..., ...})``."""
    return PluginTestHost()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A recording HTTP server on 127.0.0.1 (``.url``, ``.requests``, ``.reply(...)``)."""
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> TLSCertificates:
    """A CA only this test run trusts (needs ``trustme``): for TLS verification tests."""
    return TLSCertificates.create(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def https_receiver(tls_certificates: TLSCertificates) -> Iterator[HttpReceiver]:
    """``http_receiver`` over TLS; trusted only with ``tls_certificates.ca_file``."""
    with HttpReceiver(ssl_context=tls_certificates.server_context) as receiver:
        yield receiver


@pytest.fixture
def unused_port() -> int:
    """A loopback port with nothing listening: a destination that is down."""
    return free_port()


@pytest.fixture
def unreachable_url(unused_port: int) -> str:
    """``http://127.0.0.1:<port>`` where the connection is refused."""
    return f"http://127.0.0.1:{unused_port}"


# --- the contract ------------------------------------------------------------------------


class NotifierContract:
    """Behaviour every notifier must have; subclass it as ``TestYourNotifier``.

    Set ``notifier_type`` (and ``plugin``, your plugin module, to test it
    without installing; leave it ``None`` to load installed entry points) and
    override the fixtures ``notifier_config`` (a reachable destination; must
    include the secrets your notifier takes) and ``unreachable_config`` (the
    same, pointed at a destination that is down). Optionally override
    ``delivered`` to return how many messages the destination received.
    """

    notifier_type: str = ""
    plugin: object | None = None

    @pytest.fixture
    def notifier_config(self) -> dict[str, Any]:
        raise NotImplementedError("override the notifier_config fixture")

    @pytest.fixture
    def unreachable_config(self) -> dict[str, Any]:
        raise NotImplementedError("override the unreachable_config fixture")

    @pytest.fixture
    def delivered(self) -> Callable[[], int] | None:
        """Messages the destination received so far; None if it cannot tell."""
        return None

    @pytest.fixture
    def contract_host(self, notifier_host: PluginTestHost) -> PluginTestHost:
        if self.plugin is None:
            notifier_host.load_entry_points()
        else:
            notifier_host.add(self.plugin)
        assert self.notifier_type in notifier_host.host.notifier_types, (
            f"no plugin registered notifier type {self.notifier_type!r}"
        )
        return notifier_host

    @pytest.fixture
    def notifier(self, contract_host: PluginTestHost, notifier_config: dict[str, Any]) -> Notifier:
        return contract_host.build({"type": self.notifier_type, **notifier_config})

    def _accepts(
        self,
        notifier: Notifier,
        notifications: Sequence[Notification],
        delivered: Callable[[], int] | None,
    ) -> None:
        for notification in notifications:
            before = delivered() if delivered else 0
            notifier.send(notification)
            if delivered:
                assert delivered() > before, f"{notification.status} notification never arrived"

    def test_config_model_refuses_unknown_keys(
        self, contract_host: PluginTestHost, notifier_config: dict[str, Any]
    ) -> None:
        """A typo in the config is an error at ``check``, not a silently ignored key."""
        kind = contract_host.host.notifier_types[self.notifier_type]
        assert issubclass(kind.config, NotifierConfig), "config models derive NotifierConfig"
        assert kind.description, "describe the notifier type for `videosdk-watchdog plugins`"
        typo = {"type": self.notifier_type, **notifier_config, "no_such_option": True}
        with pytest.raises(ConfigError) as caught:
            contract_host.build(typo, "typo")
        assert any("unknown key 'no_such_option'" in p.message for p in caught.value.problems)

    def test_firing(self, notifier: Notifier, delivered: Callable[[], int] | None) -> None:
        self._accepts(notifier, [make_notification()], delivered)

    def test_firing_repeat_resolved_in_one_thread(
        self, notifier: Notifier, delivered: Callable[[], int] | None
    ) -> None:
        alert = make_alert(severity="critical")
        firing = make_notification(alert)
        repeat = make_notification(alert, thread=firing.thread, repeat=True)
        done = make_notification(resolved(alert), thread=firing.thread)
        self._accepts(notifier, [firing, repeat, done], delivered)

    def test_resolved_without_a_previous_firing(
        self, notifier: Notifier, delivered: Callable[[], int] | None
    ) -> None:
        """After a restart or a lost state, a resolve still reaches the destination."""
        self._accepts(notifier, [make_notification(resolved(make_alert()))], delivered)

    def test_resolved_because_the_participant_left(
        self, notifier: Notifier, delivered: Callable[[], int] | None
    ) -> None:
        alert = make_alert()
        firing = make_notification(alert)
        left = resolved(alert, reason=LEFT_WHILE_DEGRADED)
        self._accepts(notifier, [firing, make_notification(left, thread=firing.thread)], delivered)

    def test_grouped(self, notifier: Notifier, delivered: Callable[[], int] | None) -> None:
        group = grouped_notification(4)
        partly = make_notification(
            resolved(group.alerts[0]), *group.alerts[1:], thread=group.thread
        )
        over = make_notification(*(resolved(a) for a in group.alerts), thread=group.thread)
        self._accepts(notifier, [group, partly, over], delivered)

    def test_test_notification(
        self, notifier: Notifier, delivered: Callable[[], int] | None
    ) -> None:
        self._accepts(notifier, [make_notification(test=True)], delivered)

    def test_acknowledgement_notices_are_rendered_or_skipped_never_an_error(
        self, notifier: Notifier, delivered: Callable[[], int] | None
    ) -> None:
        """An ``acknowledged``/``unacknowledged`` notice reaches a notifier whose entry says
        ``send_acknowledged: true``, whether its type asked for them or not: it renders
        something or sends nothing, never raises; the alert's thread goes on to its
        resolution."""
        alert = make_alert(severity="critical")
        firing = make_notification(alert)
        notifier.send(firing)
        for event in ("acknowledged", "unacknowledged"):
            notice = make_notification(alert, thread=firing.thread)
            notifier.send(replace(notice, event=event, actor="alice (U0ALICE01)", reason=event))
        # one of an alert this notifier has no thread for (its state lost, or a step's page)
        lone = make_notification(make_alert(participant_id="part-acked"))
        notifier.send(replace(lone, event="acknowledged", actor="bob", reason="acknowledged"))
        self._accepts(
            notifier, [make_notification(resolved(alert), thread=firing.thread)], delivered
        )

    def test_reports_are_rendered_or_skipped_never_an_error(
        self,
        contract_host: PluginTestHost,
        notifier: Notifier,
        delivered: Callable[[], int] | None,
    ) -> None:
        """A call report or the daily digest (``event`` ``report``/``digest``) goes only to
        entries of a type that says ``reports=True``; such a type delivers it, any other
        sends nothing and never raises (a newer core may send events this one lacks)."""
        kind = contract_host.host.notifier_types[self.notifier_type]
        for made in (make_report(), make_report("digest")):
            before = delivered() if delivered else 0
            notifier.send(made)
            if delivered and kind.reports:
                assert delivered() > before, f"the {made.event} never arrived"

    def test_destination_down_raises_delivery_error(
        self, contract_host: PluginTestHost, unreachable_config: dict[str, Any]
    ) -> None:
        notifier = contract_host.build({"type": self.notifier_type, **unreachable_config})
        with pytest.raises(DeliveryError) as caught:
            notifier.send(make_notification())
        assert str(caught.value), "say what went wrong"
        assert not caught.value.permanent, "a destination that is down may come back"

    def test_no_secret_in_logs_repr_or_errors(
        self,
        contract_host: PluginTestHost,
        notifier_config: dict[str, Any],
        unreachable_config: dict[str, Any],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """No form of a secret in what the plugin logs, raises or shows as its repr.

        Give a secret URL in ``unreachable_config`` a path, as real webhook URLs
        have: an error that quotes the ``requests`` exception for it names the path.
        """
        caplog.set_level(logging.DEBUG)
        # as the daemon runs (watchdog.obs.logs): urllib3's request lines are never written
        caplog.set_level(logging.WARNING, logger="urllib3")
        seen: list[str] = []
        notifier = contract_host.build({"type": self.notifier_type, **notifier_config}, "good")
        alert = make_alert()
        firing = make_notification(alert)
        notifier.send(firing)
        notifier.send(make_notification(resolved(alert), thread=firing.thread))
        seen.append(repr(notifier))
        down = contract_host.build({"type": self.notifier_type, **unreachable_config}, "down")
        with contextlib.suppress(DeliveryError):
            down.send(make_notification())
        try:
            down.send(make_notification())
        except DeliveryError as exc:
            seen += [str(exc), repr(exc), repr(exc.__cause__)]
            if not exc.__suppress_context__:  # ``raise ... from None`` never shows it
                seen.append(repr(exc.__context__))
        redactor = Redactor.of(*contract_host.configs.values())
        assert redactor, "the contract needs configs that carry the notifier's secrets"
        for config in contract_host.configs.values():
            seen += [repr(config), str(config)]
        text = "\n".join([*seen, caplog.text, *(str(r.args) for r in caplog.records)])
        leaked = [line for line in text.splitlines() if redactor.leaks(line)]
        assert not leaked, f"a secret from the config leaked: {redactor(leaked[0])}"
