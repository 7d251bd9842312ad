"""Apprise's sends in processes of their own, bounded in memory and stopped at the deadline.

Apprise's services read a service's answer whole, however long it is, and a service's
timeout is per read: a receiver answering with a body that never ends took 1.8 GB of
memory in 5 s when Apprise ran in the daemon, and a thread kept reading after the send
had given up on it. Here a send runs in a child process (``python -m
watchdog_apprise.worker``) that limits its own address space once Apprise is imported,
and the notifier kills it at the send's deadline: what one receiver answers costs at
most :data:`MEMORY` and the send's timeout, and nothing goes on after it.

Starting a process costs about half a second of CPU (importing Apprise), so
:class:`Workers` keeps the processes between sends: each takes one request at a time, a
line of JSON on its stdin (the URLs, which are secrets, among it: never the command
line), and answers a line of JSON on its stdout. A process that was killed, hit its
limit, or left a service's thread reading (Apprise stopped waiting for it) is not used
again. The children's stderr is dropped: Apprise and a traceback would name the URLs;
what Apprise says of a target is masked with the URLs' secrets before it is cut short.
"""

from __future__ import annotations

import json
import os
import re
import resource
import selectors
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from watchdog.notifiers import RETRIED_STATUSES, Redactor

MEMORY = 256 * 2**20  # bytes of address space a process may take beyond Apprise's own
STACK = 1 * 2**20  # each thread's stack in a child (Apprise sends to services at once)
KEEP = 4  # idle processes kept for the next sends
MAX_DETAIL = 2000  # characters of what Apprise said about one target, in an answer
MAX_ANSWER = 4 * 2**20  # bytes of a child's answer the notifier reads
MEMORY_EXIT = 3  # a child's status when its memory limit stopped a send
_STATUS = re.compile(r"\berror=(\d{3})\b")  # how Apprise's services report an HTTP status


@dataclass(frozen=True, slots=True)
class Group:
    """The URLs that read one body (``format``: Apprise's ``text`` or ``markdown``)."""

    urls: Sequence[str]
    body: str
    format: str


@dataclass(frozen=True, slots=True)
class Answer:
    """How one URL took the notification: ``ok``, else why, and whether a retry can help."""

    ok: bool
    detail: str = ""
    permanent: bool = False


class WorkerFailed(Exception):
    """A child gave no usable answer (killed at the deadline, out of memory, crashed)."""


class _Child:
    """One process, and the reading of its answers with a deadline."""

    def __init__(self) -> None:
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # an arena per thread reserves 64 MB
        self.process = subprocess.Popen(  # this interpreter, this module, no shell
            [sys.executable, "-m", "watchdog_apprise.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            bufsize=0,
        )

    def ask(self, request: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Send one request; its answer within ``seconds`` (from now) or WorkerFailed."""
        deadline = time.monotonic() + seconds
        stdin, stdout = self._pipes()
        data = memoryview(json.dumps(request).encode() + b"\n")
        try:
            while data:  # a pipe takes 64 KiB at a time; the child reads while idle
                data = data[os.write(stdin.fileno(), data) :]
        except OSError:
            raise WorkerFailed(self._ended()) from None
        line = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in line:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise WorkerFailed(f"no answer within {request['timeout']:g}s")
                piece = os.read(stdout.fileno(), 65536)
                if not piece:
                    raise WorkerFailed(self._ended())
                line += piece
                if len(line) > MAX_ANSWER:
                    raise WorkerFailed("Apprise's process answered at unbounded length")
        try:
            answer = json.loads(line[: line.index(b"\n")])
        except ValueError:
            raise WorkerFailed("Apprise's process gave an unreadable answer") from None
        if not isinstance(answer, dict):
            raise WorkerFailed("Apprise's process gave an unreadable answer")
        return answer

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None  # both are pipes
        assert stdout is not None
        return stdin, stdout

    def _ended(self) -> str:
        code = self.process.wait()
        if code == MEMORY_EXIT:
            return f"an answer took the send's whole memory ({MEMORY // 2**20} MB)"
        return f"Apprise's process ended with status {code}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Ends it at once, and reaps it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in self._pipes():
            pipe.close()


def _stop_all(idle: list[_Child]) -> None:
    while idle:
        idle.pop().stop()


class Workers:
    """The processes one Apprise entry sends through, kept between sends (at most
    :data:`KEEP` idle); :meth:`close` ends them (the notifier's ``close``; else when
    the entry is garbage)."""

    def __init__(self) -> None:
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._idle)
        self.started = 0  # processes started so far

    @property
    def idle(self) -> list[int]:
        """The process IDs of the processes kept for the next sends."""
        with self._lock:
            return [child.process.pid for child in self._idle]

    def run(
        self, group: Group, *, title: str, kind: str, timeout: float, grace: float
    ) -> list[Answer]:
        """Send ``group``; an answer per URL, in order. Its process is killed ``timeout +
        grace`` seconds from now if it has not answered: WorkerFailed says why."""
        request = {
            "urls": list(group.urls),
            "body": group.body,
            "format": group.format,
            "title": title,
            "kind": kind,
            "timeout": timeout,
        }
        child = self._take()
        try:
            answer = child.ask(request, timeout + grace)
            answers = _answers(answer, len(group.urls))
        except BaseException:
            child.stop()
            raise
        if answer.get("retire"):  # it exits by itself: a service's thread may read on
            child.stop()
        else:
            self._give_back(child)
        return answers

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    return child
                child.stop()
            self.started += 1
        return _Child()

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < KEEP:
                self._idle.append(child)
                return
        child.stop()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._finalizer()


def _answers(answer: dict[str, Any], expected: int) -> list[Answer]:
    try:
        answers = [
            Answer(bool(a[0]), str(a[1])[:MAX_DETAIL], bool(a[2])) for a in answer["answers"]
        ]
    except (KeyError, TypeError, IndexError):
        raise WorkerFailed("Apprise's process gave an unreadable answer") from None
    if len(answers) != expected:
        raise WorkerFailed("Apprise's process answered for other targets")
    return answers


# -- the child -----------------------------------------------------------------------------


def _limit_memory() -> None:
    """The address space this process has now, plus :data:`MEMORY`: a larger answer
    fails with MemoryError instead of growing the machine's memory. (Linux; elsewhere,
    without ``/proc``, only the deadline bounds a send.)"""
    try:
        with open("/proc/self/statm") as statm:  # pages of address space in use
            used = int(statm.read().split()[0]) * resource.getpagesize()
    except OSError:
        return
    limit = used + MEMORY
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _peak_memory() -> int:
    """Bytes of resident memory at this process's peak (the kernel's ``VmHWM``, which,
    unlike ``getrusage``'s, starts anew with the program: a child forked from a large
    daemon does not inherit the daemon's)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0


def _notify(request: dict[str, Any]) -> tuple[list[list[Any]], bool]:
    """One request through Apprise: an answer per URL, and whether this process should
    end (a service's thread still reading, or the memory nearly all taken)."""
    import apprise  # noqa: PLC0415  # imported by main() already

    from watchdog_apprise.targets import apprise_says, asset, secret_parts  # noqa: PLC0415

    urls: list[str] = request["urls"]
    # masked before a detail is cut to MAX_DETAIL: a secret cut in two no longer matches
    mask = Redactor([*urls, *(part for url in urls for part in secret_parts(url))])
    timeout = float(request["timeout"])
    sender = apprise.Apprise(asset=asset(timeout))
    with apprise_says():  # keeps Apprise's records (URLs among them) out of any handler
        for url in urls:
            sender.add(url)
    result = sender.notify(
        request["body"],
        title=request["title"],
        notify_type=apprise.NotifyType(request["kind"]),
        body_format=apprise.NotifyFormat(request["format"]),
        timeout=timeout,
    )
    results: list[Any] = list(result.results)
    said = mask("; ".join(entry.message for entry in result.call_logs()))
    answers: list[list[Any]] = []
    retire = False
    for position in range(len(urls)):
        if position >= len(results):
            answers.append([False, said[:MAX_DETAIL] or "Apprise did not send it", False])
            continue
        answer, timed_out = _answer(results[position], mask)
        answers.append(answer)
        retire |= timed_out
    # Apprise turns the limit's MemoryError into "raised an exception": say what it was
    if _peak_memory() > MEMORY // 2:
        retire = True
        for answer in answers:
            if not answer[0]:
                answer[1] += f" (an answer took the send's whole memory: {MEMORY // 2**20} MB)"
    return answers, retire


def _answer(result: Any, mask: Redactor) -> tuple[list[Any], bool]:
    """One service's result: Apprise's status, and its warnings (masked) as the reason; a
    refusal with a 4xx other than 408 and 429 is permanent (retrying cannot fix it). True
    with it when Apprise stopped waiting for the service."""
    from apprise import AppriseResultStatus  # noqa: PLC0415

    if bool(result):
        return [True, "", False], False
    said = [entry.message for entry in result.logs()]
    detail = mask("; ".join(said))[:MAX_DETAIL]
    if result.status == AppriseResultStatus.TIMEOUT:
        return [False, detail or "timed out", False], True
    statuses = {int(s) for line in said for s in _STATUS.findall(line)}
    refused = bool(statuses) and all(400 <= s < 500 and s not in RETRIED_STATUSES for s in statuses)
    return [False, detail or "failed", refused], False


def main() -> None:
    """Requests from stdin, a line each, until it closes; an answer a line on stdout."""
    import apprise  # noqa: F401, PLC0415  # before the limit: it counts only what sends take

    _limit_memory()
    threading.stack_size(STACK)
    for line in sys.stdin.buffer:
        try:
            answers, retire = _notify(json.loads(line))
        except MemoryError:
            os._exit(MEMORY_EXIT)
        sys.stdout.write(json.dumps({"answers": answers, "retire": retire}) + "\n")
        sys.stdout.flush()
        if retire:  # at once: a thread Apprise stopped waiting for may still be reading
            os._exit(0)


if __name__ == "__main__":
    main()
