"""All durable state in one database: the repositories of watchdog.state under one name.

Each concern has its own module and owns its tables (poll state, outbox, notifier
memory, alert log, silences/acks/audit, watch list; the schema in migrations).
``Store`` opens the database, builds them over it and hands out their methods, for
callers not yet moved to the repositories themselves.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from watchdog.state import migrations
from watchdog.state.alertlog import AlertLog
from watchdog.state.database import Cursor, Database, DatabaseError, open_database
from watchdog.state.faults import StorageFault, StorageFaults
from watchdog.state.notifier_memory import NotifierMemory
from watchdog.state.outbox import Outbox
from watchdog.state.polls import PollState
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
        self.kind = self._db.kind
        # several instances may share the database (PostgreSQL; SQLite is one instance's):
        # what the cluster and ``status`` go by, so nothing above asks which engine it is
        self.shared = self._db.kind == "postgresql"
        self._lock = self._db.lock
        self.polls = PollState(self._db)
        self.outbox_queue = Outbox(self._db)
        self.notifier_memory = NotifierMemory(self._db)
        self.silencing = Silences(self._db)
        self.alert_log = AlertLog(self._db, self.outbox_queue, self.silencing)
        self.watchlist = WatchList(self._db, self.polls)
        # poll state
        self.load_cursors = self.polls.load_cursors
        self.load_alert_states = self.polls.load_alert_states
        self.load_memories = self.polls.load_memories
        self.load_meeting_inputs = self.polls.load_meeting_inputs
        self.load_meeting_states = self.polls.load_meeting_states
        self.load_participant = self.polls.load_participant
        self.commit_meetings = self.polls.commit_meetings
        self.commit_poll = self.polls.commit_poll
        self.commit_departure = self.polls.commit_departure
        self.flush = self.polls.flush
        # outbox
        self.outbox = self.outbox_queue.outbox
        self.outbox_due = self.outbox_queue.outbox_due
        self.outbox_overdue = self.outbox_queue.outbox_overdue
        self.next_retry = self.outbox_queue.next_retry
        self.with_payload = self.outbox_queue.with_payload
        self.outbox_stats = self.outbox_queue.outbox_stats
        self.outbox_depth = self.outbox_queue.outbox_depth
        self.claim_outbox = self.outbox_queue.claim_outbox
        self.delivered = self.outbox_queue.delivered
        self.failed = self.outbox_queue.failed
        self.warned = self.outbox_queue.warned
        self.retry_now = self.outbox_queue.retry_now
        # notifier memory
        self.notifier_state = self.notifier_memory.notifier_state
        self.state_get = self.notifier_memory.state_get
        self.state_put = self.notifier_memory.state_put
        self.state_delete = self.notifier_memory.state_delete
        # the alert manager's log
        self.active_alerts = self.alert_log.active_alerts
        self.alerting_snapshot = self.alert_log.alerting_snapshot
        self.apply_alerting = self.alert_log.apply_alerting
        self.meeting_in_progress = self.alert_log.meeting_in_progress
        # silences, acknowledgements, audit
        self.add_silence = self.silencing.add_silence
        self.silences = self.silencing.silences
        self.ended_silences = self.silencing.ended_silences
        self.expire_silence = self.silencing.expire_silence
        self.tie_silence_to_meeting = self.silencing.tie_silence_to_meeting
        self.meeting_silences = self.silencing.meeting_silences
        self.add_ack = self.silencing.add_ack
        self.acks = self.silencing.acks
        self.add_audit = self.silencing.add_audit
        self.audit = self.silencing.audit
        # the watch list
        self.load_watchlist = self.watchlist.load_watchlist
        self.save_watch = self.watchlist.save_watch
        self.delete_watch = self.watchlist.delete_watch
        self.watch_status = self.watchlist.watch_status
        if migrate:
            self.migrate()

    def close(self) -> None:
        try:
            self.flush()
        except DatabaseError as exc:  # replayed from the older cursor on the next start
            log.error("writing the last poll results failed: %s", exc)
        self._db.close()

    def transaction(self) -> AbstractContextManager[Cursor]:
        """For watchdog.cluster.coordinator: the coordination tables share this database."""
        return self._db.transaction()

    @property
    def database(self) -> Database:
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
        except DatabaseError as exc:  # the table gone, say: a failed check all the same
            raise self.faults.report(StorageFault("other", str(exc))) from exc
