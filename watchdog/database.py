"""The two database backends behind watchdog.store: SQLite (one file) and PostgreSQL.

The store writes plain SQL with ``?`` placeholders; this module runs it on either
engine, so the store, and everything above it, never knows which one is behind.
SQLite is one connection guarded by a lock (the embedded default, one instance).
PostgreSQL is a psycopg 3 connection pool shared by the poll threads, and the
engine that coordinates several instances.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import psycopg
import psycopg_pool
from prometheus_client import Counter

# one advisory lock key for schema migrations (the project's other locks use other keys)
MIGRATION_LOCK = 0x5644_5701

ROUND_TRIPS = Counter(
    "watchdog_db_round_trips", "Statements sent to PostgreSQL, BEGIN and COMMIT included"
)

# the errors a caller may see from either backend when the database is unusable
DatabaseError: tuple[type[Exception], ...] = (
    sqlite3.Error,
    psycopg.Error,
    psycopg_pool.PoolTimeout,
    OSError,
)


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

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def transaction(self) -> AbstractContextManager[Cursor]: ...

    def lock_schema(self, cur: Cursor) -> None: ...

    def tables(self) -> list[str]: ...

    def close(self) -> None: ...


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_database(url: str, pool_size: int = 10) -> Database:
    """``postgresql://...`` opens a pool; anything else is a SQLite path (or ``:memory:``)."""
    if is_postgres(url):
        return PostgresDatabase(url, pool_size)
    return SqliteDatabase(url)


# -- SQLite --------------------------------------------------------------------


class SqliteDatabase:
    kind = "sqlite"
    for_update = ""  # BEGIN IMMEDIATE already locks the whole file

    def __init__(self, url: str) -> None:
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.lock: AbstractContextManager[Any] = threading.RLock()
        # the busy timeout first: switching to WAL waits for other openers too
        self._db = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=10000")
        _wal(self._db, 10.0)
        self._db.execute("PRAGMA synchronous=NORMAL")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        with self.lock:
            return self._db.execute(sql, tuple(params))

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.lock:
            cursor = self._db.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def lock_schema(self, cur: Cursor) -> None:
        """BEGIN IMMEDIATE already holds the only writer lock."""

    def tables(self) -> list[str]:
        rows = self.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        with self.lock:
            self._db.close()


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


# -- PostgreSQL ----------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\?")


def _pg_sql(sql: str) -> str:
    """``?`` to ``%s``: the store's SQL holds no literal ``?`` or ``%``."""
    return _PLACEHOLDER.sub("%s", sql)


class _Rows:
    """A finished statement's rows, read before the connection went back to the pool."""

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


class _PgCursor:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        ROUND_TRIPS.inc()
        self._cursor.execute(_pg_sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        ROUND_TRIPS.inc()  # psycopg pipelines the rows
        self._cursor.executemany(_pg_sql(sql), [tuple(r) for r in rows])

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


def _conninfo(url: str) -> str:
    """The URL, with a connect timeout unless the operator chose one."""
    if "connect_timeout" in url:
        return url
    return url + ("&" if "?" in url else "?") + "connect_timeout=5"


class PostgresDatabase:
    kind = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.lock: AbstractContextManager[Any] = nullcontext()  # the pool is thread-safe
        self._pool = psycopg_pool.ConnectionPool(
            _conninfo(url),
            min_size=1,
            max_size=max(pool_size, 1),
            kwargs={"autocommit": True},
            timeout=10,
            name="videosdk-watchdog",
            open=False,
        )
        self._pool.open(wait=True, timeout=15)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        ROUND_TRIPS.inc()
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_pg_sql(sql), tuple(params))
            rows = cur.fetchall() if cur.description is not None else []
            return _Rows(rows, cur.rowcount)

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        ROUND_TRIPS.inc(2)  # BEGIN and COMMIT (or ROLLBACK)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield _PgCursor(cur)

    def lock_schema(self, cur: Cursor) -> None:
        """Instances starting together migrate one after the other."""
        cur.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")

    def tables(self) -> list[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY table_name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        self._pool.close()
