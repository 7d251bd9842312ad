"""The schema of the state database: every migration, in order, and applying them.

Plain SQL that SQLite and PostgreSQL both accept. A migration is applied once, by
version (not by maximum), each in its own transaction; on PostgreSQL an advisory
lock makes instances that start together migrate one after the other.
"""

from __future__ import annotations

from watchdog.state.database import Database

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE cursors (
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            last_sample_time TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (session_id, participant_id)
        );
        CREATE TABLE alert_states (
            rule TEXT NOT NULL,
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            phase TEXT NOT NULL,
            active_since TEXT NOT NULL,
            fired_at TEXT,
            value DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (rule, session_id, participant_id)
        );
        CREATE TABLE outbox (
            id TEXT PRIMARY KEY,
            dedup_key TEXT NOT NULL UNIQUE,
            seq BIGINT NOT NULL,
            notifier TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT
        );
        CREATE INDEX outbox_due ON outbox (next_attempt_at);
        """,
    ),
    (
        2,
        """
        CREATE TABLE notifier_state (
            notifier TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (notifier, key)
        );
        """,
    ),
    (
        3,
        """
        ALTER TABLE alert_states ADD COLUMN keep_firing_since TEXT;
        CREATE TABLE rule_memory (
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            payload TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (session_id, participant_id)
        );
        CREATE TABLE meeting_alert_states (
            rule TEXT NOT NULL,
            meeting_id TEXT NOT NULL,
            phase TEXT NOT NULL,
            active_since TEXT NOT NULL,
            fired_at TEXT,
            keep_firing_since TEXT,
            value DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (rule, meeting_id)
        );
        """,
    ),
    (
        5,
        """
        CREATE TABLE am_alerts (
            fingerprint TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            version BIGINT NOT NULL,
            changed_at TEXT NOT NULL,
            notify TEXT NOT NULL,
            payload TEXT NOT NULL
        );
        CREATE TABLE am_notified (
            notifier TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            version BIGINT NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (notifier, fingerprint)
        );
        CREATE TABLE am_groups (
            notifier TEXT NOT NULL,
            group_key TEXT NOT NULL,
            thread TEXT NOT NULL,
            notified_at TEXT NOT NULL,
            sent INTEGER NOT NULL,
            PRIMARY KEY (notifier, group_key)
        );
        CREATE TABLE silences (
            id TEXT PRIMARY KEY,
            matchers TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            ends_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            comment TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX silences_ends ON silences (ends_at);
        ALTER TABLE outbox ADD COLUMN permanent INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE outbox ADD COLUMN warned_at TEXT
        """,
    ),
    (
        6,
        """
        CREATE TABLE watchlist (
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            room_id TEXT,
            name TEXT,
            source TEXT NOT NULL,
            status TEXT NOT NULL,
            since TEXT NOT NULL,
            missing INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (session_id, participant_id)
        );
        """,
    ),
    (
        # issue 9: several instances on one PostgreSQL (unused, and harmless, on SQLite)
        8,
        """
        CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL,
            held INTEGER NOT NULL DEFAULT 0,
            roles TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE leases (
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            owner TEXT,
            generation BIGINT NOT NULL DEFAULT 0,
            expires_at DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, participant_id)
        );
        CREATE INDEX leases_owner ON leases (owner);
        ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
        ALTER TABLE outbox ADD COLUMN claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0
        """,
    ),
    (
        9,
        """
        CREATE TABLE acks (
            fingerprint TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            acked_by TEXT NOT NULL,
            acked_at TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (fingerprint, starts_at)
        );
        CREATE TABLE audit (
            id TEXT PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            source TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        CREATE INDEX audit_target ON audit (target, at);
        CREATE TABLE silence_meetings (
            silence_id TEXT PRIMARY KEY,
            meeting_id TEXT NOT NULL
        );
        """,
    ),
    (
        # several instances: the leader evaluates meeting-level rules over every
        # participant's stored conditions, so it needs who each one is
        10,
        """
        ALTER TABLE rule_memory ADD COLUMN info TEXT
        """,
    ),
    (
        # several instances: a lease is valid while its owner's heartbeat is fresh, so
        # renewing is one heartbeat row per instance, not a write of every held lease.
        # expires_at goes by a copy, not DROP COLUMN, which SQLite has only since 3.35
        11,
        """
        CREATE TABLE leases_v11 (
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            owner TEXT,
            generation BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (session_id, participant_id)
        );
        INSERT INTO leases_v11 (session_id, participant_id, owner, generation)
            SELECT session_id, participant_id, owner, generation FROM leases;
        DROP TABLE leases;
        ALTER TABLE leases_v11 RENAME TO leases;
        CREATE INDEX leases_owner ON leases (owner)
        """,
    ),
    (
        # a delivery pass reads only the due heads of each notifier's groups, so a slow
        # or dead notifier's backlog costs nothing per pass: finding a group's head (no
        # earlier row of the same notifier and fingerprint) is an index probe, and so are
        # the next retry time and the rows not yet reported overdue
        12,
        """
        CREATE INDEX outbox_group ON outbox (notifier, fingerprint, seq);
        CREATE INDEX outbox_unwarned ON outbox (created_at) WHERE warned_at IS NULL
        """,
    ),
    (
        # polls of a participant that hit the request deadline in a row, for `status`
        13,
        """
        ALTER TABLE watchlist ADD COLUMN deadline_misses INTEGER NOT NULL DEFAULT 0
        """,
    ),
    (
        # issue 14: one row rewritten every poll cycle, so a full or read-only disk shows
        # even while nothing else is written (an empty transaction writes nothing)
        14,
        """
        CREATE TABLE storage_probe (
            id INTEGER PRIMARY KEY,
            written_at TEXT NOT NULL
        )
        """,
    ),
    (
        # issue 17: the firing alerts an inhibition rule holds back, and by which alert,
        # for `status`, the audit log and the notes told when the inhibition ends; the
        # audit log's machine-made entries are trimmed to the newest by action and time
        15,
        """
        CREATE TABLE am_inhibited (
            fingerprint TEXT PRIMARY KEY,
            alertname TEXT NOT NULL,
            inhibit_rule TEXT NOT NULL,
            source TEXT NOT NULL,
            source_alertname TEXT NOT NULL,
            since TEXT NOT NULL
        );
        CREATE INDEX audit_action ON audit (action, at)
        """,
    ),
    (
        # issue 17, self-monitoring: each notifier's run of failed deliveries (since its
        # last success), and, with several instances, each one's latest poll cycle as the
        # API answered it, which the leader pools to judge the API
        17,
        """
        CREATE TABLE notifier_failures (
            notifier TEXT PRIMARY KEY,
            since TEXT NOT NULL,
            failures INTEGER NOT NULL,
            last_error TEXT NOT NULL
        );
        ALTER TABLE instances ADD COLUMN polls_answered INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE instances ADD COLUMN polls_failed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE instances ADD COLUMN poll_reasons TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE instances ADD COLUMN polls_at DOUBLE PRECISION NOT NULL DEFAULT 0
        """,
    ),
    (
        # issue 18: an acknowledgement's note; each firing alert's escalation ladder (when
        # it started, time paused while acknowledged or silenced, the owner its notifiers
        # were last told of) and the steps it ran, one row each: the primary key makes a
        # step run at most once per alert episode, whichever instance claims it
        20,
        """
        ALTER TABLE acks ADD COLUMN note TEXT NOT NULL DEFAULT '';
        CREATE TABLE esc_ladders (
            fingerprint TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            route TEXT NOT NULL,
            started_at TEXT NOT NULL,
            paused_at TEXT,
            paused_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
            owner TEXT,
            PRIMARY KEY (fingerprint, starts_at)
        );
        CREATE TABLE esc_steps (
            fingerprint TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            step INTEGER NOT NULL,
            round INTEGER NOT NULL,
            done_at TEXT NOT NULL,
            running DOUBLE PRECISION NOT NULL,
            outcome TEXT NOT NULL,
            notifiers TEXT NOT NULL,
            PRIMARY KEY (fingerprint, starts_at, step, round)
        )
        """,
    ),
    (
        # issue 18: who is on call; overrides of the schedule (from the CLI or Slack), and
        # each calendar feed's last good copy, so a restart while the feed is down still knows
        30,
        """
        CREATE TABLE oncall_overrides (
            id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            person TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            ends_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            source TEXT NOT NULL
        );
        CREATE INDEX oncall_overrides_team ON oncall_overrides (team, ends_at);
        CREATE TABLE oncall_feeds (
            team TEXT PRIMARY KEY,
            body TEXT NOT NULL,
            fetched_at TEXT NOT NULL
        )
        """,
    ),
    (
        # issue 18: how each calendar feed's last refresh went (the failure and since when),
        # so `status` shows a failing feed and a restart keeps counting from its first failure
        31,
        """
        CREATE TABLE oncall_feed_health (
            team TEXT PRIMARY KEY,
            checked_at TEXT NOT NULL,
            error TEXT,
            failing_since TEXT
        )
        """,
    ),
    (
        # issue 20: alert history (watchdog.state.history). Each alert's identity once
        # (its labels, for filters and silence matching), then its events: transitions,
        # notifications sent or failed, and what other modules record through History.
        # Acknowledgements, silences and inhibitions are read from ``audit`` and
        # ``silences``, not written twice. Pruned by time in bounded batches.
        40,
        """
        CREATE TABLE history_alerts (
            fingerprint TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            meeting_id TEXT,
            session_id TEXT,
            participant_id TEXT,
            labels TEXT NOT NULL,
            last_at TEXT NOT NULL
        );
        CREATE INDEX history_alerts_rule ON history_alerts (rule);
        CREATE INDEX history_alerts_meeting ON history_alerts (meeting_id);
        CREATE INDEX history_alerts_participant ON history_alerts (participant_id);
        CREATE INDEX history_alerts_last ON history_alerts (last_at);
        CREATE TABLE history_events (
            id TEXT PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            fingerprint TEXT,
            value DOUBLE PRECISION,
            notifier TEXT,
            actor TEXT,
            detail TEXT,
            cause TEXT
        );
        CREATE INDEX history_events_at ON history_events (at);
        CREATE INDEX history_events_alert ON history_events (fingerprint, at);
        CREATE INDEX audit_at ON audit (at)
        """,
    ),
    (
        # issue 20: per-participant summaries of the rules' metrics, one row per participant
        # and (at most) 30 minutes, each minute's avg, min and max packed and compressed
        # (watchdog.state.minutes); who is who once per participant. Keyed by time first:
        # pruning and reports read time ranges.
        41,
        """
        CREATE TABLE history_participants (
            who BIGINT PRIMARY KEY,
            session_id TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            meeting_id TEXT,
            name TEXT,
            first_minute BIGINT NOT NULL,
            last_minute BIGINT NOT NULL
        );
        CREATE INDEX history_participants_last ON history_participants (last_minute);
        CREATE INDEX history_participants_meeting ON history_participants (meeting_id);
        CREATE TABLE history_minutes (
            start BIGINT NOT NULL,
            who BIGINT NOT NULL,
            metrics BIGINT NOT NULL,
            minutes INTEGER NOT NULL,
            data BYTEA NOT NULL,
            PRIMARY KEY (start, who)
        )
        """,
    ),
    (
        # issue 20: the sessions whose end was learned, until the leader writes their call
        # report (watchdog.state.reports); and every report written, by a unique key (a
        # session's, a digest's day), so each goes out once across instances and restarts
        42,
        """
        CREATE TABLE ended_sessions (
            session_id TEXT PRIMARY KEY,
            meeting_id TEXT,
            ended_at TEXT NOT NULL
        );
        CREATE TABLE reports_sent (
            report_key TEXT PRIMARY KEY,
            sent_at TEXT NOT NULL
        );
        CREATE INDEX reports_sent_at ON reports_sent (sent_at)
        """,
    ),
    (
        # issue 20, several instances: each one's place loads (meetings seen, and seen
        # degraded, per region and network) as of its latest cycle, so a platform cause
        # counts every instance's meetings
        43,
        """
        ALTER TABLE instances ADD COLUMN places TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE instances ADD COLUMN places_at DOUBLE PRECISION NOT NULL DEFAULT 0
        """,
    ),
)


def applied(db: Database) -> set[int]:
    """The versions already recorded in ``db``."""
    with db.transaction() as cur:
        db.lock_schema(cur)
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = cur.execute("SELECT version FROM schema_version").fetchall()
    return {int(row[0]) for row in rows}


def pending(db: Database) -> list[int]:
    done = applied(db)
    return [version for version, _ in sorted(MIGRATIONS) if version not in done]


def migrate(db: Database) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied."""
    done = []
    for version, script in sorted(MIGRATIONS):
        with db.transaction() as cur:
            db.lock_schema(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = cur.execute(
                "SELECT 1 FROM schema_version WHERE version = ?", (version,)
            ).fetchone()
            if found is not None:
                continue
            for statement in (s.strip() for s in script.split(";")):
                if statement:
                    cur.execute(statement)
            cur.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        done.append(version)
    return done


def columns(db: Database, table: str) -> list[str]:
    """A table's column names, in order."""
    if db.kind == "sqlite":
        rows = db.execute(f"PRAGMA table_info({table})").fetchall()
        return [str(r[1]) for r in rows]
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def copy_rows(target: Database, source: Database) -> dict[str, int]:
    """Copy every row of ``source`` into ``target``, in one transaction; rows whose key is
    already there are kept as they are. Returns the rows copied per table."""
    counts: dict[str, int] = {}
    mine = set(target.tables())
    with target.transaction() as cur:
        for table in source.tables():
            if table == "schema_version" or table not in mine:
                continue
            result = source.execute(f"SELECT * FROM {table}")  # noqa: S608
            names = columns(source, table)
            rows = result.fetchall()
            sql = (
                f"INSERT INTO {table} ({', '.join(names)})"  # noqa: S608
                f" VALUES ({', '.join('?' for _ in names)}) ON CONFLICT DO NOTHING"
            )
            copied = 0
            for row in rows:
                cur.execute(sql, tuple(row))
                copied += max(cur.rowcount, 0)
            counts[table] = copied
    return counts
