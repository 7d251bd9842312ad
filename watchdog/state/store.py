"""The state database as a whole, and one repository per concern over it.

Each concern has its own module and owns its tables: ``polls`` (cursors, alert states,
engine memory, with the write-behind buffer), ``outbox``, ``notifier_memory``,
``alert_log`` (the alert manager's), ``escalations`` (its ladders), ``silences`` (with
acks and the audit log), ``watchlist``, ``oncall`` (overrides, calendar copies),
``history`` (alert history and its retention), ``minutes`` (the per-participant minute
summaries) and ``reports`` (ended sessions, reports sent); the schema is in
watchdog.state.migrations. ``Store`` opens the database, builds the repositories over it,
and keeps what concerns the whole: closing, migrations, the storage check and its faults.
Callers take the repositories they use; only what needs the whole database (the build, the
cluster, ``migrate``) takes the ``Store``.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from watchdog.state import migrations
from watchdog.state.alertlog import AlertLog
from watchdog.state.database import Cursor, Database, database_errors, open_database
from watchdog.state.escalations import Escalations
from watchdog.state.faults import StorageFault, StorageFaults
from watchdog.state.history import History
from watchdog.state.minutes import Minutes
from watchdog.state.notifier_memory import NotifierMemory
from watchdog.state.oncall import OnCallState
from watchdog.state.outbox import Outbox
from watchdog.state.polls import PollState
from watchdog.state.reports import Reports
from watchdog.state.rows import now_text
from watchdog.state.silences import Silences
from watchdog.state.watchlist import WatchList

log = logging.getLogger(__name__)

QUICK_CHECK_SECONDS = 10.0  # a state file larger than this reads is checked as it is used


class Store:
    """Durable state on SQLite (one file) or PostgreSQL (see watchdog.state.database).

    Thread-safe: polls run in a pool. ``migrate=False`` opens without touching the
    schema, for ``check`` and ``migrate`` to report what is pending.
    """

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 10) -> None:
        self.url = url
        self._db: Database = open_database(url, pool_size)
        # several instances may share the database (PostgreSQL; SQLite is one instance's):
        # what the cluster and ``status`` go by, so nothing above asks which engine it is
        self.shared = self._db.kind == "postgresql"
        self.minutes = Minutes(self._db)  # history's minute summaries (metrics: the build's)
        self.polls = PollState(self._db, self.minutes)
        self.outbox = Outbox(self._db)
        self.notifier_memory = NotifierMemory(self._db)
        self.silences = Silences(self._db)
        self.alert_log = AlertLog(self._db, self.outbox, self.silences)
        self.escalations = Escalations(self._db, self.outbox, self.silences)
        self.watchlist = WatchList(self._db, self.polls)
        self.oncall = OnCallState(self._db, self.silences)
        self.history = History(self._db)
        self.reports = Reports(self._db, self.outbox)
        if migrate:
            self.migrate()

    def close(self) -> None:
        try:
            self.polls.close_summaries()  # the open buckets too: nothing summarised is lost
            self.polls.flush()
        except database_errors() as exc:  # replayed from the older cursor on the next start
            log.error("writing the last poll results failed: %s", exc)
        self._db.close()

    def transaction(self) -> AbstractContextManager[Cursor]:
        """For watchdog.cluster.coordinator: the coordination tables share this database."""
        return self._db.transaction()

    @property
    def database(self) -> Database:
        """For watchdog.cluster: the lease tables (watchdog.state.leases) read it whole."""
        return self._db

    @property
    def faults(self) -> StorageFaults:
        """Where this database's storage failures are counted, logged and remembered."""
        return self._db.faults

    # -- the schema (watchdog.state.migrations) ------------------------------------

    def schema_version(self) -> int:
        done = self.applied_migrations()
        return max(done) if done else 0

    def applied_migrations(self) -> set[int]:
        return migrations.applied(self._db)

    def pending_migrations(self) -> list[int]:
        return migrations.pending(self._db)

    def migrate(self) -> list[int]:
        """Apply every migration not yet recorded (see watchdog.state.migrations)."""
        return migrations.migrate(self._db)

    def copy_from(self, source: Store) -> dict[str, int]:
        """Copy every row of ``source`` (e.g. an old SQLite file) into this store, in one
        transaction; rows whose key is already here are kept as they are."""
        return migrations.copy_rows(self._db, source._db)

    # -- storage health (issue 14) -------------------------------------------------

    def check_storage(self, *, pages: bool = False) -> None:
        """Is the state database still taking writes? The file is the one opened, a row
        is really written, and with ``pages`` every page reads back sound (SQLite's
        quick_check, at most QUICK_CHECK_SECONDS). Raises StorageFault, reported."""
        self._db.check_file()
        try:
            with self._db.transaction() as cur:
                cur.execute(
                    "INSERT INTO storage_probe (id, written_at) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at",
                    (now_text(),),
                )
            if pages:
                self._db.quick_check(QUICK_CHECK_SECONDS)
        except StorageFault:
            raise
        except database_errors() as exc:  # the table gone, say: a failed check all the same
            raise self.faults.report(StorageFault("other", str(exc))) from exc
