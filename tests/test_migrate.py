"""``migrate`` and ``check`` on an older PostgreSQL schema, and the one-off copy from SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchdog.cli.main import main
from watchdog.engine.evaluate import AlertState
from watchdog.state.database import database_errors
from watchdog.state.migrations import MIGRATIONS, columns
from watchdog.state.store import Store

from .conftest import POOR_VIDEO, write_config
from .helpers import at


def _old_schema(url: str, upto: int) -> None:
    """A database as an older release left it: only the migrations up to ``upto``."""
    store = Store(url, migrate=False)
    try:
        store.applied_migrations()  # the version table
        with store.transaction() as cur:
            for version, script in sorted(MIGRATIONS):
                if version > upto:
                    break
                for statement in (s.strip() for s in script.split(";")):
                    if statement:
                        cur.execute(statement)
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    finally:
        store.close()


def test_check_reports_and_migrate_applies_pending_migrations_then_copies_sqlite_state(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _old_schema(postgres_url, upto=2)
    later = [v for v, _ in sorted(MIGRATIONS) if v > 2]
    config = write_config(
        tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO, state={"url": postgres_url}
    )
    assert main(["check", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert f"{len(later)} pending migrations ({', '.join(map(str, later))})" in err
    assert "postgres@" not in err  # the URL's user part is masked like a password

    assert main(["migrate", "--config", str(config), "--dry-run"]) == 0
    assert f"pending migrations {', '.join(map(str, later))}" in capsys.readouterr().out
    check = Store(postgres_url, migrate=False)
    assert check.pending_migrations() == later  # a dry run changed nothing
    check.close()

    old = Store(str(tmp_path / "old.db"))
    old.polls.commit_poll(
        ("s", "p"),
        at(60),
        {"poor-video": AlertState("firing", at(0), 2.0, fired_at=at(60))},
        ["poor-video"],
    )
    old.close()
    args = ["migrate", "--config", str(config), "--from-sqlite", str(tmp_path / "old.db")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"applied migrations {', '.join(map(str, later))}" in out
    assert "copied 2 rows" in out
    assert "alert_states 1, cursors 1" in out

    assert main(["check", "--config", str(config)]) == 0
    assert "pending" not in capsys.readouterr().err
    store = Store(postgres_url)
    try:
        assert store.polls.load_cursors() == {("s", "p"): at(60)}
    finally:
        store.close()


def test_migrate_from_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", [("s", "p")], POOR_VIDEO)
    args = ["migrate", "--config", str(config), "--from-sqlite", str(tmp_path / "nope.db")]
    assert main(args) == 2
    assert "no such SQLite state file" in capsys.readouterr().err


def test_migration_11_keeps_who_holds_each_lease_and_drops_its_expiry(
    state_url: str,
) -> None:
    _old_schema(state_url, 10)
    store = Store(state_url, migrate=False)
    try:
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO leases (session_id, participant_id, owner, generation, expires_at)"
                " VALUES ('s', 'p0', 'one', 7, 123.0), ('s', 'p1', NULL, 2, 0)"
            )
        assert store.migrate() == [v for v, _ in sorted(MIGRATIONS) if v > 10]
        rows = store.database.execute(
            "SELECT session_id, participant_id, owner, generation FROM leases"
            " ORDER BY participant_id"
        ).fetchall()
        assert [tuple(r) for r in rows] == [("s", "p0", "one", 7), ("s", "p1", None, 2)]
        assert "expires_at" not in set(columns(store.database, "leases"))
        with store.transaction() as cur:  # the primary key is back
            cur.execute("INSERT INTO leases (session_id, participant_id) VALUES ('s', 'p2')")
        again = "INSERT INTO leases (session_id, participant_id) VALUES ('s', 'p2')"
        with pytest.raises(database_errors(), match=r"(?i)unique|duplicate"):
            store.database.execute(again)
    finally:
        store.close()
