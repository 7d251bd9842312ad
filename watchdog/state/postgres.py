"""The PostgreSQL backend of watchdog.state.database: a psycopg 3 connection pool shared
by the poll threads. Imported by ``open_database`` for ``postgresql://`` URLs only, so a
daemon on SQLite never loads psycopg (~10 MB)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import psycopg
import psycopg_pool

from watchdog.state.database import (
    MIGRATION_LOCK,
    ROUND_TRIPS,
    Cursor,
    QueryTimeout,
    Rows,
    redacted_url,
)
from watchdog.state.faults import StorageFault, StorageFaults

# what PostgreSQL adds to watchdog.state.database.database_errors()
ERRORS: tuple[type[Exception], ...] = (psycopg.Error, psycopg_pool.PoolTimeout)

_PLACEHOLDER = re.compile(r"\?")


def _pg_sql(sql: str) -> str:
    """``?`` to ``%s``: the store's SQL holds no literal ``?`` or ``%``."""
    return _PLACEHOLDER.sub("%s", sql)


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


def _pg_reason(exc: psycopg.Error) -> str | None:
    """The storage fault a PostgreSQL error means, None for an error of the statement."""
    state = exc.sqlstate
    if state is None:  # no answer from the server: connection lost, pool timed out
        return "unreachable" if isinstance(exc, psycopg.OperationalError) else None
    if state == "53100":
        return "disk_full"
    if state == "25006":
        return "read_only"
    if state in ("XX001", "XX002"):
        return "corrupt"
    if state.startswith("08") or state in ("53300", "57P01", "57P02", "57P03"):
        return "unreachable"  # connection failures, too many clients, server shut down
    if state.startswith(("53", "58")):
        return "io_error"  # out of resources, system error
    return None


class PostgresDatabase:
    kind = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.lock: AbstractContextManager[Any] = nullcontext()  # the pool is thread-safe
        self.faults = StorageFaults(redacted_url(url))
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
        with self._faults(), self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_pg_sql(sql), tuple(params))
            rows = cur.fetchall() if cur.description is not None else []
            return Rows(rows, cur.rowcount)

    def read(self, sql: str, params: Sequence[Any], seconds: float) -> list[Any]:
        """In a read-only transaction whose statements the server stops after ``seconds``."""
        ROUND_TRIPS.inc(4)
        try:
            with self._faults(), self._pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
                rows = conn.execute(_pg_sql(sql), tuple(params)).fetchall()
                return list(rows)
        except psycopg.errors.QueryCanceled:
            raise QueryTimeout(f"the query took longer than {seconds:g}s") from None

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        ROUND_TRIPS.inc(2)  # BEGIN and COMMIT (or ROLLBACK)
        with (
            self._faults(),
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            yield _PgCursor(cur)

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """PostgreSQL's storage and connection errors as StorageFaults, reported."""
        try:
            yield
        except psycopg.Error as exc:
            reason = _pg_reason(exc)
            if reason is None:
                raise
            raise self.faults.report(StorageFault(reason, str(exc).strip())) from exc

    def check_file(self) -> None:
        """The server owns its files."""

    def quick_check(self, seconds: float) -> None:
        """The server checks its own pages (data checksums, amcheck)."""

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
