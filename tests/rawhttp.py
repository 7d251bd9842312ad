"""Hostile HTTP clients on raw sockets, for the daemon's listeners; every loop bounded.

Each speaks to ``127.0.0.1:port`` only and gives up after its own timeout.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MIB = 1 << 20

# requests no client should send; each must cost one short answer (or a close) and at most
# one log line. {path} and {method} are filled in for the listener under test.
MALFORMED = [
    b"\x00\xff\xfe garbage\r\n\r\n",
    b"{method} {path} HTTP/9.9\r\n\r\n",
    b"{method} {path} HTTP/1.1 extra words\r\n\r\n",
    b"{method} {path} HTTP/1.x\r\n\r\n",
    b"BREW {path} HTTP/1.1\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nContent-Length: \xb2\r\n\r\nx",  # a digit to str.isdigit
    b"{method} {path} HTTP/1.1\r\nContent-Length: 9999999999999999999999\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    b"{method} {path} HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"{method} {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    b"{method} {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffff\r\n",
    b"{method} {path} HTTP/1.1\r\n" + b"X-Many: y\r\n" * 150 + b"\r\n",
    b"{method} {path} HTTP/1.1\r\nX-Long: " + b"y" * 70_000 + b"\r\n\r\n",
    b"{method} /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nContent-Length: 100\r\n\r\nhalf a body, then a half-close",
    b"{method} {path} HTTP/1.1\r\nX-Bad\x00Header: \x01\x02\r\nContent-Length: 0\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nNo colon here\r\nContent-Length: 0\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nX-Ctl: a\x07b\r\nContent-Length: 0\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nContent-Length: 9\r\n\r\n{not json",
    b"{method} {path} HTTP/1.1\r\nContent-Length: 12\r\n\r\npayload=%ZZ%",
    b"{method} {path} HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    b"\xff\xfe\xfd\xfc",
]
# requests that end before they are complete: answered or not, quietly
UNFINISHED = [
    b"",
    b"{method} {path} HTTP/1.1\r\nHost: x\r\n",  # then a half-close: headers never end
    b"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
    b"{method} {path} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"{method}",
]


def fill(raw: bytes, method: str, path: str) -> bytes:
    return raw.replace(b"{method}", method.encode()).replace(b"{path}", path.encode())


def status_of(answer: bytes) -> int:
    """The final status code of an HTTP/1.x answer (after any 100 Continue); 0 if none."""
    for _ in range(2):
        words = answer.split(b"\r\n", 1)[0].split()
        if len(words) < 2 or not words[0].startswith(b"HTTP/1.") or not words[1].isdigit():
            return 0
        if words[1] != b"100":
            return int(words[1])
        answer = answer.partition(b"\r\n\r\n")[2]
    return 0


def exchange(port: int, raw: bytes, timeout: float = 10.0) -> bytes:
    """Sends ``raw``, half-closes, and returns what came back before the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        answer = b""
        try:
            conn.sendall(raw)
            conn.shutdown(socket.SHUT_WR)
            for _ in range(64):
                data = conn.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
        return answer


@contextmanager
def peak_rss() -> Iterator[list[int]]:
    """Samples this process's VmRSS (kB) every 5 ms; the list holds [baseline, peak]."""
    found = [_rss_kb(), 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            found[1] = max(found[1], _rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        done.set()
        sampler.join(timeout=5)
        found[1] = max(found[1], _rss_kb())


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def flood(port: int, head: bytes, mebibytes: int, chunked: bool = False) -> tuple[int, int]:
    """Sends ``head`` and then up to ``mebibytes`` MiB of body, as fast as the server reads it.

    Returns the answer's status and how many MiB the server took before it stopped
    reading. The answer is read on another thread while the body is still being sent.
    """
    block = b"x" * MIB
    if chunked:
        block = b"%x\r\n%s\r\n" % (MIB, block)
    answer: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        reader = threading.Thread(target=lambda: answer.append(_read_some(conn)), daemon=True)
        reader.start()
        sent = 0
        try:
            conn.sendall(head)
            for _ in range(mebibytes):
                conn.sendall(block)
                sent += 1
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server stopped reading and closed: what we want
        reader.join(timeout=30)
    return status_of(answer[0] if answer else b""), sent


def _read_some(conn: socket.socket) -> bytes:
    try:
        return conn.recv(4096)
    except OSError:
        return b""


def concurrently(port: int, raw: bytes, count: int, timeout: float = 60.0) -> list[int]:
    """Opens ``count`` connections at once, sends ``raw`` on each; the statuses (0: none)."""
    selector = selectors.DefaultSelector()
    answers: dict[socket.socket, bytes] = {}
    statuses: list[int] = []
    for _ in range(count):
        conn = socket.socket()
        conn.setblocking(False)
        conn.connect_ex(("127.0.0.1", port))
        answers[conn] = b""
        selector.register(conn, selectors.EVENT_WRITE, conn)
    deadline = time.monotonic() + timeout
    while selector.get_map() and time.monotonic() < deadline:
        for key, events in selector.select(timeout=1):
            ready: socket.socket = key.data
            try:
                if events & selectors.EVENT_WRITE:
                    ready.sendall(raw)
                    selector.modify(ready, selectors.EVENT_READ, ready)
                    continue
                data = ready.recv(65536)
            except OSError:
                data = b""
            if data:
                answers[ready] += data
                continue
            selector.unregister(ready)
            statuses.append(status_of(answers.pop(ready)))
            ready.close()
    for conn in answers:  # never answered
        statuses.append(0)
        conn.close()
    selector.close()
    return statuses


def trickle(port: int, head: bytes, every: float = 0.25, limit: float = 20.0) -> float:
    """Sends ``head``, then a byte every ``every`` s; seconds until the server hung up.

    Returns ``limit`` if it never did.
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=every) as conn:
        try:
            conn.sendall(head)
            for _ in range(int(limit / every)):
                conn.send(b"a")
                try:
                    if not conn.recv(4096):
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass  # reset: hung up too
    return min(time.monotonic() - started, limit)
