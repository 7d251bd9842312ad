"""A total deadline for an outbound HTTP call: connect, headers, whole body, retries.

requests and urllib3 time out each socket operation, never a whole request: a
server that trickles one byte a second never trips a 30 s read timeout, and
holds the calling thread for as long as it likes. Here a call runs ``within``
a deadline; the connections it uses register themselves (``DeadlineAdapter``
mounts pools whose connections do), and one reaper thread shuts the socket
of a call whose deadline passed, which wakes its blocked read at once. The
retry policy (watchdog.videosdk.client) asks ``current()`` so that no attempt and no
backoff wait starts past the deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from requests import PreparedRequest
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError
from urllib3.poolmanager import PoolManager, ProxyManager


class DeadlineExceeded(HTTPError):
    """A retry would wait past the deadline; ``status`` is the answer being retried, if any."""

    def __init__(self, status: int | None, wait: float) -> None:
        super().__init__(f"a retry after {wait:g}s would end past the deadline")
        self.status = status
        self.wait = wait


class Deadline:
    """One call's deadline (a ``time.monotonic()`` value) and the connections it used."""

    __slots__ = ("at", "connections", "expired", "outer", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False  # set by the reaper when it cut the call off
        self.connections: list[HTTPConnection] = []
        self.outer: Deadline | None = None  # the thread's deadline around this one

    def __enter__(self) -> Deadline:
        _REAPER.start(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _REAPER.end(self)


def within(seconds: float) -> Deadline:
    """``with within(30) as deadline:`` every request this thread makes inside is cut off
    30 s from now (a class, not a generator context manager: it runs on every poll)."""
    return Deadline(seconds)


def current() -> Deadline | None:
    """The deadline of the call this thread is making, if any."""
    return getattr(_LOCAL, "deadline", None)


_LOCAL = threading.local()
IDLE_EXIT = 0.25  # seconds with no live deadline before the reaper thread ends


def _cut(connection: HTTPConnection) -> None:
    """Shut the socket down (the plain socket's method, so a TLS socket is left as it is):
    a read blocked on it returns at once, and the connection is dropped, not reused."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Reaper:
    """One thread for the whole process, asleep until the earliest live deadline.

    Deadlines are registered in the order they end (each is now + the same span),
    so a registration wakes the thread only when nothing was live: a call costs
    three short holds of one lock here, not a thread or a timer of its own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._live: set[Deadline] = set()
        self._owner: dict[HTTPConnection, Deadline] = {}  # a pooled connection's current user
        self._wake = float("inf")
        self._thread: threading.Thread | None = None

    def start(self, deadline: Deadline) -> None:
        deadline.outer = current()
        _LOCAL.deadline = deadline
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            self._live.add(deadline)
            if deadline.at < self._wake:
                self._cond.notify()

    def end(self, deadline: Deadline) -> None:
        _LOCAL.deadline = deadline.outer
        with self._cond:
            self._live.discard(deadline)
            for connection in deadline.connections:
                if self._owner.get(connection) is deadline:
                    del self._owner[connection]
            if not self._live:
                self._cond.notify()  # the last call ended: start the idle countdown now

    def attach(self, connection: HTTPConnection) -> None:
        """The calling thread's deadline now covers ``connection`` (a pooled one may have
        served another call before)."""
        deadline = current()
        if deadline is None:
            return
        with self._cond:
            if self._owner.get(connection) is not deadline:
                self._owner[connection] = deadline
                deadline.connections.append(connection)
            if deadline.expired:
                _cut(connection)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for deadline in [d for d in self._live if d.at <= now]:
                    self._live.discard(deadline)
                    deadline.expired = True
                    for connection in deadline.connections:
                        if self._owner.get(connection) is deadline:
                            _cut(connection)
                self._wake = min((d.at for d in self._live), default=float("inf"))
                if self._live:
                    self._cond.wait(self._wake - now)
                elif not self._cond.wait(IDLE_EXIT) and not self._live:
                    # nothing to watch: end, so a stopping daemon has no thread left behind;
                    # the next call starts a new one (at most one start per idle gap)
                    self._thread = None
                    return


_REAPER = _Reaper()


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        _REAPER.attach(self)
        super().connect()

    def getresponse(self) -> Any:  # urllib3's HTTPResponse; typed loosely as urllib3 does
        _REAPER.attach(self)
        return super().getresponse()


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        _REAPER.attach(self)
        super().connect()

    def getresponse(self) -> Any:
        _REAPER.attach(self)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _PoolManager(PoolManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = _POOLS


class _ProxyManager(ProxyManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = _POOLS


_POOLS_KEPT = 8  # (origin, TLS settings, proxies) pools an adapter remembers: polls use one


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter over pools whose connections obey ``within``; through an HTTP(S)
    proxy too (a SOCKS proxy gets requests' own pools: per-read timeouts only)."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self._pools: dict[tuple[Any, ...], Any] = {}  # requests types them as ConnectionPool
        self._pool_connections = connections  # what requests' proxy_manager_for reads
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = _PoolManager(
            num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def get_connection_with_tls_context(
        self,
        request: PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        """requests' choice of pool, kept per origin and TLS settings: worked out anew it
        parses the URL twice, stats the CA bundle's path and builds the pool's key on every
        request, a tenth of a poll's CPU, for the one pool a daemon's polls all use. (urllib3
        2 no longer closes a pool its manager lets go, so a kept one stays usable; they
        are closed with the adapter.)"""
        url = request.url or ""
        slash = url.find("/", url.find("//") + 2)
        key = (
            url if slash < 0 else url[:slash],
            verify,
            cert if isinstance(cert, (str, tuple)) else repr(cert),
            frozenset(proxies.items()) if proxies else None,
        )
        kept = self._pools.get(key)
        if kept is not None:
            return kept
        pool = super().get_connection_with_tls_context(
            request, verify, dict(proxies) if proxies else None, cert
        )
        if len(self._pools) >= _POOLS_KEPT:
            self._pools.clear()
        self._pools[key] = pool
        return pool

    def close(self) -> None:
        kept, self._pools = list(self._pools.values()), {}
        for pool in kept:
            pool.close()
        super().close()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy not in self.proxy_manager and not proxy.lower().startswith("socks"):
            self.proxy_manager[proxy] = _ProxyManager(
                proxy_url=proxy,
                proxy_headers=self.proxy_headers(proxy),
                num_pools=self._pool_connections,
                maxsize=self._pool_maxsize,
                block=self._pool_block,
                **proxy_kwargs,
            )
        return super().proxy_manager_for(proxy, **proxy_kwargs)


__all__ = ["Deadline", "DeadlineAdapter", "DeadlineExceeded", "current", "within"]
