"""``migrate``: show and apply pending schema migrations, and copy state from SQLite.

The daemon migrates at startup by itself; this command lets an operator see what
a new version will change first, apply it before a rolling restart, and move an
existing SQLite state file into PostgreSQL once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from watchdog.config.problems import ConfigError
from watchdog.config.settings import Config
from watchdog.state.database import database_errors, is_postgres, redacted_url
from watchdog.state.store import Store


def _exists(url: str) -> bool:
    return is_postgres(url) or url == ":memory:" or Path(url).exists()


def pending_note(config: Config) -> str | None:
    """What ``check`` says about the state database's schema (None: nothing to say)."""
    url = config.state_url
    if not _exists(url):
        return None  # created and migrated on first start
    try:
        store = Store(url, migrate=False)
    except database_errors() as exc:
        return f"warning: cannot reach the state database {redacted_url(url)}: {exc}"
    try:
        pending = store.pending_migrations()
    finally:
        store.close()
    if not pending:
        return None
    listed = ", ".join(str(v) for v in pending)
    return (
        f"note: the state database {redacted_url(url)} has {len(pending)} pending migrations "
        f"({listed}); the daemon applies them at startup, or run `videosdk-watchdog migrate`"
    )


def run_migrate(config: Config, out: TextIO, *, dry_run: bool, from_sqlite: str | None) -> int:
    url = config.state_url
    if from_sqlite is not None and not Path(from_sqlite).is_file():
        raise ConfigError.single(from_sqlite, None, "no such SQLite state file")
    store = Store(url, migrate=False)
    try:
        pending = store.pending_migrations()
        if dry_run:
            if pending:
                out.write(
                    f"{redacted_url(url)}: pending migrations {', '.join(map(str, pending))}\n"
                )
            else:
                out.write(
                    f"{redacted_url(url)}: schema version {store.schema_version()}, up to date\n"
                )
            return 0
        applied = store.migrate()
        if applied:
            out.write(f"{redacted_url(url)}: applied migrations {', '.join(map(str, applied))}\n")
        else:
            out.write(f"{redacted_url(url)}: schema version {store.schema_version()}, up to date\n")
        if from_sqlite is not None:
            source = Store(from_sqlite)  # brings an old file to the same schema first
            try:
                counts = store.copy_from(source)
            finally:
                source.close()
            total = sum(counts.values())
            detail = ", ".join(f"{table} {n}" for table, n in sorted(counts.items()) if n)
            out.write(
                f"copied {total} rows from {from_sqlite}"
                + (f" ({detail})" if detail else "")
                + "\n"
            )
    finally:
        store.close()
    return 0
