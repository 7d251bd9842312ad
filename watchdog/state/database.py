"""The two database backends under watchdog.state: SQLite (one file) and PostgreSQL.

The repositories write plain SQL with ``?`` placeholders; this module runs it on
either engine, so they, and everything above them, never know which one is behind.
SQLite is one connection guarded by a lock (the embedded default, one instance).
PostgreSQL (watchdog.state.postgres, imported when a ``postgresql://`` URL is opened:
psycopg costs ~10 MB to a daemon on SQLite) is a psycopg 3 connection pool shared by
the poll threads, and the engine that coordinates several instances.

Each backend also knows its engine's errors: one that means the storage failed
(disk full, read-only, I/O, corruption, a lost server) is reported to the database's
:class:`~watchdog.state.faults.StorageFaults` and raised as a StorageFault; anything
else (a constraint, a bug in a statement) passes through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import Counter

from watchdog.state.faults import StorageFault, StorageFaults

log = logging.getLogger(__name__)

# one advisory lock key for schema migrations (the project's other locks use other keys)
MIGRATION_LOCK = 0x5644_5701

# exported by a watchdog.cluster.coordinator.Cluster (PostgreSQL only: absent on SQLite)
ROUND_TRIPS = Counter(
    "watchdog_db_round_trips",
    "Statements sent to PostgreSQL, BEGIN and COMMIT included",
    registry=None,
)

_errors: tuple[type[Exception], ...] = (StorageFault, sqlite3.Error, OSError)


def database_errors() -> tuple[type[Exception], ...]:
    """The errors a caller may see from either backend when the database is unusable
    (``except database_errors():``): PostgreSQL's join them once a PostgreSQL database
    was opened, which is when psycopg is imported."""
    return _errors


class QueryTimeout(Exception):
    """A read (``Database.read``) ran past its time budget and was stopped."""


class Cursor(Protocol):
    """What the store needs of a cursor inside a transaction."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Database(Protocol):
    kind: str  # "sqlite" | "postgresql"
    lock: AbstractContextManager[Any]  # serialises access where the engine needs it
    for_update: str  # " FOR UPDATE" where the engine has row locks
    faults: StorageFaults  # where every failure of the storage is reported

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def transaction(self) -> AbstractContextManager[Cursor]: ...

    def read(self, sql: str, params: Sequence[Any], seconds: float) -> list[Any]:
        """A read that others may ask for at will (``/api/history``): stopped with
        QueryTimeout after ``seconds``, and never holding the writers' lock."""

    def lock_schema(self, cur: Cursor) -> None: ...

    def tables(self) -> list[str]: ...

    def check_file(self) -> None: ...

    def quick_check(self, seconds: float) -> None: ...

    def close(self) -> None: ...


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def redacted_url(url: str) -> str:
    """A database URL without any password in it, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def open_database(url: str, pool_size: int = 10) -> Database:
    """``postgresql://...`` opens a pool; anything else is a SQLite path (or ``:memory:``)."""
    global _errors  # noqa: PLW0603  # written here only, before any such error can occur
    if is_postgres(url):
        from watchdog.state import postgres  # noqa: PLC0415  # psycopg: only when used

        _errors = (StorageFault, sqlite3.Error, *postgres.ERRORS, OSError)
        return postgres.PostgresDatabase(url, pool_size)
    return SqliteDatabase(url)


class Rows:
    """A finished statement's rows, read before the connection (or lock) was let go."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        raise TypeError("a finished result cannot run statements")

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise TypeError("a finished result cannot run statements")

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)


# -- SQLite --------------------------------------------------------------------

# SQLite's primary result codes that mean the file or its disk failed, not the statement
_SQLITE_FAULTS = {
    3: "read_only",  # SQLITE_PERM
    5: "locked",  # SQLITE_BUSY: another process kept the write lock past the busy timeout
    6: "locked",  # SQLITE_LOCKED
    8: "read_only",  # SQLITE_READONLY
    10: "io_error",  # SQLITE_IOERR
    11: "corrupt",  # SQLITE_CORRUPT
    13: "disk_full",  # SQLITE_FULL
    14: "cannot_open",  # SQLITE_CANTOPEN
    15: "io_error",  # SQLITE_PROTOCOL
    22: "io_error",  # SQLITE_NOLFS
    26: "corrupt",  # SQLITE_NOTADB
}
_ERRNO_FAULTS = {errno.EROFS: "read_only", errno.ENOSPC: "disk_full", errno.EDQUOT: "disk_full"}
QUICK_CHECK_ERRORS = 5  # problems a quick_check lists before it stops looking


class SqliteDatabase:
    kind = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE already locks the whole file

    def __init__(self, url: str) -> None:
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
        self.path = None if path == ":memory:" else Path(path)
        self.faults = StorageFaults(path)
        self.lock: AbstractContextManager[Any] = threading.RLock()
        self._read_lock = threading.Lock()
        self._read_db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _announce_new(self.path)
        # the busy timeout first: switching to WAL waits for other openers too
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        with self._faults():
            self._db.execute("PRAGMA busy_timeout=10000")
            _wal(self._db, 10.0)
            self._db.execute("PRAGMA synchronous=NORMAL")
        if self.path is not None:  # the file this connection writes: see check_file
            found = os.stat(self.path)
            self._identity = (found.st_dev, found.st_ino)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        with self.lock, self._faults():
            cursor = self._db.execute(sql, tuple(params))
            return Rows(cursor.fetchall(), cursor.rowcount)

    def read(self, sql: str, params: Sequence[Any], seconds: float) -> list[Any]:
        """On a read-only connection of its own (WAL: readers never wait for the writer nor
        hold it up), interrupted after ``seconds``. ``:memory:`` has one connection only."""
        deadline = time.monotonic() + seconds
        if self.path is None:
            lock, connection = self.lock, self._db
        else:
            lock, connection = self._read_lock, self._reader()
        with lock, self._faults():
            connection.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
            try:
                return connection.execute(sql, tuple(params)).fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise QueryTimeout(f"the query took longer than {seconds:g}s") from None
                raise
            finally:
                connection.set_progress_handler(None, 0)

    def _reader(self) -> sqlite3.Connection:
        """Under ``_read_lock``: the read-only connection, opened on first use."""
        if self._read_db is None:
            assert self.path is not None
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._read_db = sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False)
            self._read_db.execute("PRAGMA busy_timeout=10000")
        return self._read_db

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.lock, self._faults():
            cursor = self._db.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (a full disk, an I/O error), and a
                # failed COMMIT may leave the transaction open: end it either way
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's storage errors as StorageFaults, reported; any other error unchanged."""
        try:
            yield
        except sqlite3.Error as exc:
            reason = _SQLITE_FAULTS.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
            if reason is None:
                raise
            if reason == "io_error" and self.path is not None:
                reason = _io_cause(self.path.parent)
            raise self.faults.report(StorageFault(reason, str(exc))) from exc

    def lock_schema(self, cur: Cursor) -> None:
        """BEGIN IMMEDIATE already holds the only writer lock."""

    def tables(self) -> list[str]:
        rows = self.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def check_file(self) -> None:
        """Is the path still the file this connection writes? SQLite (in WAL mode) goes on
        writing into a file deleted or replaced under it, and nobody would read that back:
        compare the path's device and inode with those of the file opened."""
        if self.path is None or self._identity is None:
            return
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            fault = StorageFault("deleted", f"{self.path} no longer exists")
            raise self.faults.report(fault) from None
        except OSError as exc:
            raise self.faults.report(StorageFault("io_error", str(exc))) from exc
        if (found.st_dev, found.st_ino) != self._identity:
            fault = StorageFault(
                "replaced",
                f"{self.path} is another file now (inode {found.st_ino}, "
                f"this daemon opened inode {self._identity[1]})",
            )
            raise self.faults.report(fault)

    def quick_check(self, seconds: float) -> None:
        """Read every page back (``PRAGMA quick_check``) on a connection of its own, so what
        is on disk is read, not this connection's cache. Gives up (with a warning) after
        ``seconds``: a huge file is checked when a damaged page is next used instead."""
        if self.path is None:
            return
        deadline = time.monotonic() + seconds
        with self._faults():
            checker = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                checker.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
                rows = checker.execute(f"PRAGMA quick_check({QUICK_CHECK_ERRORS})").fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupted" not in str(exc):
                    raise
                log.warning(
                    "state database %s: quick_check did not finish within %gs; skipped",
                    self.path,
                    seconds,
                )
                return
            finally:
                checker.close()
        problems = [str(row[0]) for row in rows]
        if problems != ["ok"]:
            raise self.faults.report(StorageFault("corrupt", "; ".join(problems)))

    def close(self) -> None:
        with self._read_lock:
            if self._read_db is not None:
                self._read_db.close()
                self._read_db = None
        with self.lock:
            self._db.close()


def _announce_new(path: Path) -> None:
    """A missing state file is created: say so, since it may be a loss, not a first start."""
    try:
        if path.stat().st_size > 0:
            return
    except FileNotFoundError:
        pass
    log.warning(
        "state database %s does not exist: creating a new, empty one. Expected on a first "
        "start; otherwise cursors, alert states, silences and undelivered notifications "
        "are lost, and alerts still firing will be notified again",
        path,
    )


def _io_cause(directory: Path) -> str:
    """SQLite says "disk I/O error" for a file system that went read-only or full too: ask
    the file system, and failing that try to create a file there (unnamed, gone at once;
    ext4's read-only after an error shows only then)."""
    try:
        found = os.statvfs(directory)
        if found.f_flag & os.ST_RDONLY:
            return "read_only"
        if found.f_bavail == 0:
            return "disk_full"
        with tempfile.TemporaryFile(dir=directory) as probe:
            probe.write(b"\0")
            probe.flush()
    except OSError as exc:
        return _ERRNO_FAULTS.get(exc.errno or 0, "io_error")
    return "io_error"


def _wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL. The switch needs the file to itself for a moment, and SQLite can
    answer "database is locked" at once, busy timeout or not, when another process is
    opening the same new file: retry for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
