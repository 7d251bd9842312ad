"""The store's own behaviour, run unchanged on SQLite and on a real PostgreSQL (``state_url``)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchdog.alerts import Alert, Notification, fingerprint
from watchdog.config.matchers import parse_matchers
from watchdog.durations import format_time, parse_time
from watchdog.engine.evaluate import AlertState, Memory
from watchdog.engine.series import Series, micros
from watchdog.state.alertlog import AlertingWrite, GroupState, Notified
from watchdog.state.faults import StorageFault
from watchdog.state.migrations import MIGRATIONS
from watchdog.state.silences import Silence
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord

from .helpers import at, enqueue, record_alerts


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    opened = Store(state_url)
    try:
        yield opened
    finally:
        opened.close()


def alert(participant: str = "p", status: str = "firing", starts: float = 0) -> Alert:
    return Alert(
        fingerprint=fingerprint("poor-video", "s", participant),
        rule="poor-video",
        status=status,  # type: ignore[arg-type]
        severity="warning",
        metric="qualityScore.video",
        op="<",
        threshold=3,
        value=2.1,
        session_id="s",
        participant_id=participant,
        starts_at=at(starts),
        fired_at=at(starts + 60),
        sample_time=at(starts + 60),
    )


def note(key: str, participant: str = "p") -> tuple[str, Notification]:
    return key, Notification(
        id=key, notifier="oncall", status="firing", alerts=(alert(participant),)
    )


def test_a_new_store_is_fully_migrated_and_migrating_again_changes_nothing(state_url: str) -> None:
    fresh = Store(state_url, migrate=False)
    try:
        assert fresh.pending_migrations() == [v for v, _ in sorted(MIGRATIONS)]
        assert fresh.migrate() == [v for v, _ in sorted(MIGRATIONS)]
        assert fresh.pending_migrations() == []
        assert fresh.migrate() == []
        assert fresh.schema_version() == max(v for v, _ in MIGRATIONS)
        # several instances may share PostgreSQL, never a SQLite file: what cluster goes by
        assert fresh.shared == state_url.startswith("postgresql://")
    finally:
        fresh.close()


def test_instances_starting_together_migrate_once(state_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_one() -> None:
        try:
            stores.append(Store(state_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert stores[0].pending_migrations() == []
        rows = stores[0]._db.execute("SELECT version FROM schema_version").fetchall()
        assert sorted(int(r[0]) for r in rows) == sorted(v for v, _ in MIGRATIONS)
    finally:
        for opened in stores:
            opened.close()


def test_a_poll_commit_is_durable_and_a_dedup_key_inserts_once(state_url: str) -> None:
    store = Store(state_url)
    state = AlertState("firing", at(0), 2.1, fired_at=at(60))
    try:
        store.polls.commit_poll(
            ("s", "p"),
            at(60),
            {"poor-video": state},
            ["poor-video"],
            alerts=[(alert(), ["oncall"])],
            memory=Memory(),
        )
        assert enqueue(store, [note("k1")]) == 1
        store.polls.commit_poll(("s", "p"), at(70), {"poor-video": state}, [])
        assert enqueue(store, [note("k1")]) == 0  # the same decision twice: one notification
    finally:
        store.close()
    reopened = Store(state_url)
    try:
        assert reopened.polls.load_cursors() == {("s", "p"): at(70)}
        assert reopened.polls.load_alert_states() == {("s", "p"): {"poor-video": state}}
        assert ("s", "p") in reopened.polls.load_memories()
        (entry,) = reopened.outbox.entries()
        assert entry.notification.alerts[0].participant_id == "p"
        assert [a.alert.fingerprint for a in reopened.alert_log.active_alerts()] == [
            alert().fingerprint
        ]
    finally:
        reopened.close()


def test_rule_memory_round_trips_and_a_row_in_the_old_form_still_loads(store: Store) -> None:
    key = ("s", "p")
    memory = Memory(at(10), at(0))
    memory.series["averageVideoRtt"] = Series.load([(micros(at(0)), 1.0), (micros(at(10.5)), 2.5)])
    store.polls.commit_poll(key, at(10), {}, [], memory=memory)
    assert store.polls.load_memories() == {key: memory}
    assert store.polls.load_participant(key)[2] == memory
    old = {  # how rows were written before version 2
        "last": at(10).isoformat(),
        "first": at(0).isoformat(),
        "series": {"averageVideoRtt": [[at(0).isoformat(), 1.0], [at(10.5).isoformat(), 2.5]]},
        "conditions": {},
    }
    with store.transaction() as cur:
        cur.execute("UPDATE rule_memory SET payload = ?", (json.dumps(old),))
    assert store.polls.load_memories() == {key: memory}
    assert store.polls.load_participant(key)[2] == memory


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    intake = [(alert(), ["oncall"]), (None, ["oncall"])]
    with pytest.raises(AttributeError):
        store.polls.commit_poll(("s", "p"), at(60), {}, [], alerts=intake)  # type: ignore[arg-type]
    assert store.polls.load_cursors() == {}
    assert store.alert_log.active_alerts() == []
    bad = AlertingWrite(outbox=[("k1", "order", note("k1")[1]), ("k2", "order", None)])  # type: ignore[list-item]
    with pytest.raises(AttributeError):
        store.alert_log.apply_alerting(bad)
    assert store.outbox.depth() == 0


def test_outbox_order_retries_and_delivery(store: Store) -> None:
    assert enqueue(store, [note("a", "p1"), note("b", "p2"), note("a", "p1")]) == 2
    first, second = store.outbox.entries()
    assert (first.notification.id, second.notification.id) == ("a", "b")
    assert store.outbox.entries(limit=1) == [first]
    store.outbox.failed(first.id, 1, at(300), "HTTP 503", permanent=True)
    store.outbox.warned(first.id, at(301))
    failed = store.outbox.entries()[0]
    assert (failed.attempts, failed.last_error, failed.permanent) == (1, "HTTP 503", True)
    assert failed.next_attempt_at == at(300)
    assert failed.warned_at == at(301)
    assert store.outbox.retry_now([first.id]) == 1
    assert store.outbox.retry_now() == 2
    depth, oldest = store.outbox.stats()
    assert depth == 2
    assert oldest is not None
    store.outbox.delivered(first.id)
    store.outbox.delivered(second.id)
    assert store.outbox.depth() == 0
    store.check_storage(pages=True)


def test_a_snapshot_re_reads_only_alerts_changed_since_the_known_ones(store: Store) -> None:
    """The alert manager hands back what it read last: unchanged alerts come back as the
    same objects, changed ones afresh, in the store's order, gone ones not at all (the
    alerts to read afresh outnumber one ``IN`` list here)."""
    record_alerts(store, [(alert(f"p{i:03d}"), ["oncall"]) for i in range(600)])
    first = store.alert_log.active_alerts()
    known = {a.alert.fingerprint: a for a in first[:3]}  # as if the others were new to it
    assert store.alert_log.active_alerts(known) == first
    known = {a.alert.fingerprint: a for a in first}
    record_alerts(store, [(alert("p001", status="resolved"), ["oncall"])])
    store.alert_log.apply_alerting(AlertingWrite(done_alerts={alert("p002").fingerprint}))
    again = store.alert_log.active_alerts(known)
    kept = [a for a in first if a.alert.participant_id not in ("p001", "p002")]
    assert [a.alert.participant_id for a in again] == [
        *(a.alert.participant_id for a in kept),
        "p001",  # changed last
    ]
    assert all(new is old for new, old in zip(again[:-1], kept, strict=True))
    assert (again[-1].version, again[-1].alert.status) == (2, "resolved")


def test_alert_manager_state_round_trips(store: Store) -> None:
    record_alerts(store, [(alert(), ["oncall"])])
    record_alerts(store, [(alert(), ["oncall"])])  # the same transition twice changes nothing
    (active,) = store.alert_log.active_alerts()
    assert active.version == 1
    record_alerts(store, [(alert(status="resolved"), ["oncall"])])
    (active,) = store.alert_log.active_alerts()
    assert (active.version, active.alert.status, active.notify) == (2, "resolved", ("oncall",))
    write = AlertingWrite(
        outbox=[("n1", "order", note("n1")[1])],
        notified={("oncall", active.alert.fingerprint): Notified(2, "resolved")},
        groups={("oncall", "g"): GroupState("thread-1", at(5), 1)},
    )
    assert store.alert_log.apply_alerting(write) == 1
    snapshot = store.alert_log.alerting_snapshot(at(10))
    assert snapshot.notified == {("oncall", active.alert.fingerprint): Notified(2, "resolved")}
    assert snapshot.groups == {("oncall", "g"): GroupState("thread-1", at(5), 1)}
    assert store.outbox.entries()[0].fingerprint == "order"
    done = AlertingWrite(ended_groups={("oncall", "g")}, done_alerts={active.alert.fingerprint})
    store.alert_log.apply_alerting(done)
    assert store.alert_log.active_alerts() == []
    assert store.alert_log.alerting_snapshot(at(10)).groups == {}


def test_silences_are_shared_through_the_store(state_url: str) -> None:
    one, two = Store(state_url), Store(state_url)  # two instances on one database
    try:
        silence = Silence(
            id="abc123",
            matchers=parse_matchers(["alertname=poor-video"]),
            starts_at=at(0),
            ends_at=at(3600),
            created_by="ops",
            comment="maintenance",
            created_at=at(0),
        )
        one.silences.add(silence)
        assert two.silences.active(at(10)) == [silence]
        assert two.silences.active(at(4000)) == []
        assert two.silences.expire("abc123", at(20))
        assert not one.silences.expire("abc123", at(30))
        assert one.silences.active(at(25)) == []
    finally:
        one.close()
        two.close()


def test_watch_list_meetings_notifier_memory_and_departure(store: Store) -> None:
    record = WatchRecord("s", "p", "room", "Alice", "discovery", "watching", at(0))
    store.watchlist.save([record, WatchRecord("s", "q", None, None, "static", "watching", at(1))])
    store.watchlist.delete([("s", "q")])
    assert store.watchlist.load() == [record]
    state = AlertState("firing", at(0), 2.0, fired_at=at(60))
    store.polls.commit_poll(("s", "p"), at(60), {"poor-video": state}, ["poor-video"])
    (status,) = store.watchlist.status()
    assert status.last_sample == at(60)
    assert status.firing == (("poor-video", at(60)),)

    meeting = AlertState("pending", at(0), 2.0)
    store.polls.commit_meetings({("m-rule", "room"): meeting}, [("m-rule", "room")])
    assert store.polls.load_meeting_states() == {("m-rule", "room"): meeting}
    store.polls.commit_meetings({}, [("m-rule", "room")])
    assert store.polls.load_meeting_states() == {}

    memory = store.notifier_memory.for_notifier("oncall")
    memory.put("thread", {"ts": "1.2"})
    assert memory.get("thread") == {"ts": "1.2"}
    memory.delete("thread")
    assert memory.get("thread") is None

    store.polls.commit_departure(("s", "p"), [(alert(status="resolved"), ["oncall"])])
    assert store.watchlist.load() == []
    assert store.polls.load_cursors() == {}
    assert store.polls.load_alert_states() == {}
    assert store.alert_log.active_alerts()[0].alert.status == "resolved"


def test_state_copies_from_a_sqlite_file(state_url: str, tmp_path: Path) -> None:
    source = Store(str(tmp_path / "old.db"))
    target = Store(state_url)
    try:
        source.polls.commit_poll(
            ("s", "p"),
            at(60),
            {"poor-video": AlertState("firing", at(0), 2.0, fired_at=at(60))},
            ["poor-video"],
            alerts=[(alert(), ["oncall"])],
        )
        enqueue(source, [note("k1")])
        counts = target.copy_from(source)
        assert counts["cursors"] == 1
        assert counts["outbox"] == 1
        assert target.polls.load_cursors() == source.polls.load_cursors()
        assert target.polls.load_alert_states() == source.polls.load_alert_states()
        assert [e.id for e in target.outbox.entries()] == [e.id for e in source.outbox.entries()]
        assert target.copy_from(source)["outbox"] == 0  # a second copy duplicates nothing
        assert target.polls.load_cursors() == {("s", "p"): at(60)}
    finally:
        source.close()
        target.close()


def _committed(url: str) -> tuple[dict[tuple[str, str], object], dict[tuple[str, str], object]]:
    """Cursors and alert states as another process would read them."""
    other = Store(url)
    try:
        return dict(other.polls.load_cursors()), dict(other.polls.load_alert_states())
    finally:
        other._db.close()  # not close(): that would flush this reader's (empty) buffer


def test_deferred_poll_results_are_written_together_by_flush(state_url: str) -> None:
    store = Store(state_url)
    pending = AlertState("pending", at(0), 2.5)
    try:
        store.polls.commit_poll(("s", "a"), at(10), {"rtt": pending}, ["rtt"], defer=True)
        store.polls.commit_poll(("s", "b"), at(10), {}, [], memory=Memory(), defer=True)
        store.polls.commit_poll(("s", "a"), at(20), {}, ["rtt"], defer=True)  # pending, then gone
        if not store.shared:  # PostgreSQL defers only polls fenced by a lease
            assert _committed(state_url) == ({}, {})
        assert store.polls.flush() in (0, 2)
        assert _committed(state_url) == ({("s", "a"): at(20), ("s", "b"): at(10)}, {})
        assert store.polls.flush() == 0
    finally:
        store.close()


def test_an_alerting_poll_carries_what_was_deferred_for_its_participant(state_url: str) -> None:
    store = Store(state_url)
    pending = AlertState("pending", at(0), 2.5)
    firing = AlertState("firing", at(0), 2.1, fired_at=at(60))
    try:
        store.polls.commit_poll(("s", "p"), at(10), {"rtt": pending}, ["rtt"], defer=True)
        store.polls.commit_poll(
            ("s", "p"),
            at(60),
            {"rtt": pending, "poor-video": firing},
            ["poor-video"],
            alerts=[(alert(), ["oncall"])],
            defer=True,  # an alert is never deferred
        )
        cursors, states = _committed(state_url)
        assert cursors == {("s", "p"): at(60)}
        assert states == {("s", "p"): {"rtt": pending, "poor-video": firing}}
        assert store.polls.flush() == 0
    finally:
        store.close()


def test_a_departure_drops_what_was_deferred_and_close_writes_the_rest(state_url: str) -> None:
    store = Store(state_url)
    pending = AlertState("pending", at(0), 2.5)
    store.polls.commit_poll(("s", "gone"), at(10), {"rtt": pending}, ["rtt"], defer=True)
    store.polls.commit_poll(("s", "here"), at(10), {"rtt": pending}, ["rtt"], defer=True)
    store.polls.commit_departure(("s", "gone"))
    store.close()  # flushes: nothing of the departed participant comes back
    assert _committed(state_url) == ({("s", "here"): at(10)}, {("s", "here"): {"rtt": pending}})


def test_a_failed_flush_keeps_its_results_for_the_next_one(tmp_path: Path) -> None:
    url = str(tmp_path / "state.db")
    store = Store(url)
    pending = AlertState("pending", at(0), 2.5)
    try:
        store.polls.commit_poll(("s", "p"), at(10), {"rtt": pending}, ["rtt"], defer=True)
        blocker = Store(url)  # another writer holds the database: the flush fails
        blocker._db.execute("PRAGMA busy_timeout=0")
        store._db.execute("PRAGMA busy_timeout=0")
        blocker._db.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageFault, match="locked"):
            store.polls.flush()
        store.polls.commit_poll(("s", "p"), at(20), {"rtt": pending}, [], defer=True)  # newer
        blocker._db.execute("ROLLBACK")
        blocker._db.close()
        assert store.polls.flush() == 1
        assert _committed(url) == ({("s", "p"): at(20)}, {("s", "p"): {"rtt": pending}})
    finally:
        store.close()


def test_a_delivery_pass_reads_only_due_group_heads_of_lanes_with_room(store: Store) -> None:
    paging = Notification(id="k4", notifier="pager", status="firing", alerts=(alert("p"),))
    enqueue(store, [note("k1"), note("k2"), note("k3", participant="q"), ("k4", paging)])
    now = datetime.now(UTC) + timedelta(seconds=1)
    heads = store.outbox.due(now)
    assert [h.id for h in heads] == ["k1", "k3", "k4"]  # k2 waits behind k1, its group's head
    assert [h.payload for h in heads] == [None, None, None]
    with pytest.raises(LookupError):
        _ = heads[0].notification
    first = store.outbox.with_payload(heads[0])
    assert first is not None
    assert first.notification.alerts[0].participant_id == "p"

    retry = now + timedelta(seconds=60)
    store.outbox.failed("k1", 1, retry, "HTTP 503")  # backing off: its whole group waits
    assert [h.id for h in store.outbox.due(now)] == ["k3", "k4"]
    assert [h.id for h in store.outbox.due(now, skip=["pager"])] == ["k3"]  # a full lane
    assert [h.id for h in store.outbox.due(retry)] == ["k1", "k3", "k4"]
    assert store.outbox.depth() == 4
    assert store.outbox.next_retry(now) == parse_time(format_time(retry))

    assert [h.id for h in store.outbox.overdue(now)] == ["k1", "k2", "k3", "k4"]
    store.outbox.warned("k3", now)
    assert [h.id for h in store.outbox.overdue(now)] == ["k1", "k2", "k4"]
    assert store.outbox.overdue(now - timedelta(hours=1)) == []

    store.outbox.delivered("k3")
    assert store.outbox.with_payload(heads[1]) is None  # gone: nothing to start
    assert store.outbox.depth() == 3
    assert store.outbox.next_retry(retry) is None


def test_notifier_memory_forgets_old_records_by_prefix_for_its_notifier_only(
    store: Store,
) -> None:
    """``forget``: the records of one notifier under a prefix, not written since a time."""
    mine, other = (store.notifier_memory.for_notifier(n) for n in ("oncall", "mail"))
    for key in ("meeting-thread:a", "meeting-thread:b%_", "meeting-thread", "alert-thread"):
        mine.put(key, {"ts": "1.2"})
    other.put("meeting-thread:a", {"message_id": "<x@y>"})
    assert mine.forget("meeting-thread:", datetime.now(UTC) - timedelta(days=30)) == 0
    assert mine.forget("meeting-thread:", datetime.now(UTC)) == 2
    assert mine.get("meeting-thread:a") is None
    assert mine.get("meeting-thread:b%_") is None
    assert mine.get("meeting-thread") == {"ts": "1.2"}  # no prefix match: kept
    assert mine.get("alert-thread") == {"ts": "1.2"}
    assert other.get("meeting-thread:a") == {"message_id": "<x@y>"}  # another notifier's


def test_psycopg_is_loaded_only_when_postgresql_is_opened(state_url: str) -> None:
    """A daemon on SQLite never imports psycopg (~10 MB); on PostgreSQL, what callers
    catch as the database's errors includes psycopg's (a statement on a missing table)."""
    script = (
        "import sys\n"
        "from watchdog.state.database import database_errors\n"
        "from watchdog.state.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "try:\n"
        "    store.database.execute('SELECT * FROM no_such_table')\n"
        "except database_errors() as exc:\n"
        "    print(type(exc).__module__.split('.')[0])\n"
        "store.close()\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, state_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    postgres = state_url.startswith("postgresql://")
    assert out == (["psycopg", "True"] if postgres else ["sqlite3", "False"])


def _alerting_polls(
    store: Store, intakes: Mapping[str, Sequence[tuple[Alert | None, list[str]]]]
) -> dict[str, BaseException | None]:
    """One thread per participant commits an alerting poll while the test holds the
    writers' lock, so they queue behind it; returns each poll's outcome."""
    firing = AlertState("firing", at(0), 2.1, fired_at=at(60))
    outcome: dict[str, BaseException | None] = {}

    def poll(participant: str) -> None:
        try:
            store.polls.commit_poll(
                ("s", participant),
                at(60),
                {"poor-video": firing},
                ["poor-video"],
                alerts=intakes[participant],  # type: ignore[arg-type]
            )
            outcome[participant] = None
        except Exception as exc:
            outcome[participant] = exc

    threads = [threading.Thread(target=poll, args=(p,)) for p in intakes]
    with store._db.lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(store.polls._commits) < len(threads) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # bounded: every poll but the writer's is queued
        assert len(store.polls._commits) == len(threads) - 1
    for thread in threads:
        thread.join(timeout=10)
    return outcome


def test_alerting_polls_queued_behind_the_writer_share_one_transaction(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.db"))
    begun: list[str] = []
    store._db._db.set_trace_callback(  # type: ignore[attr-defined]
        lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None
    )
    try:
        names = [f"p{i}" for i in range(8)]
        outcome = _alerting_polls(store, {p: [(alert(p), ["oncall"])] for p in names})
        assert outcome == dict.fromkeys(names)
        assert len(begun) == 2  # the first poll's own, then the seven queued behind it
        store._db._db.set_trace_callback(None)  # type: ignore[attr-defined]
        cursors, states = _committed(str(tmp_path / "state.db"))
        assert set(cursors) == {("s", p) for p in names}
        assert all("poor-video" in held for held in states.values())  # type: ignore[operator]
        assert set(states) == set(cursors)
        assert {a.alert.participant_id for a in store.alert_log.active_alerts()} == set(names)
    finally:
        store.close()


def test_a_bad_poll_in_a_shared_transaction_costs_the_others_nothing(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.db"))
    pending = AlertState("pending", at(0), 2.5)
    try:  # something deferred for the bad one's participant waits for the next flush
        store.polls.commit_poll(("s", "bad"), at(10), {"rtt": pending}, ["rtt"], defer=True)
        names = ["p0", "bad", "p1", "p2"]
        intakes: dict[str, list[tuple[Alert | None, list[str]]]]
        intakes = {p: [(alert(p), ["oncall"])] for p in names}
        intakes["bad"] = [(alert("bad"), ["oncall"]), (None, ["oncall"])]
        outcome = _alerting_polls(store, intakes)
        assert isinstance(outcome.pop("bad"), AttributeError)
        assert outcome == {"p0": None, "p1": None, "p2": None}
        active = {a.alert.participant_id for a in store.alert_log.active_alerts()}
        assert active == {"p0", "p1", "p2"}
        assert store.polls.flush() == 1
        cursors, states = _committed(str(tmp_path / "state.db"))
        assert cursors[("s", "bad")] == at(10)
        assert states[("s", "bad")] == {"rtt": pending}
    finally:
        store.close()
