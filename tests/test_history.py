"""Alert history (issue 20): what is recorded, filtered, pruned, summarised and reported, on
SQLite and PostgreSQL, and the daemon's ``/api/history`` against the simulator."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchdog.alerting.noise import episodes, rule_noise
from watchdog.alerts import Alert, Notification, fingerprint
from watchdog.cli.main import main
from watchdog.config.matchers import Matcher
from watchdog.config.settings import Config
from watchdog.durations import format_time
from watchdog.runtime.history_api import BadQuery, parse_filters
from watchdog.runtime.service import Service
from watchdog.sim.simulator import Simulator
from watchdog.state.history import MAX_LIMIT, Filters
from watchdog.state.minutes import BUCKET, COMPRESSED, Minutes, as_samples, decode, who_of
from watchdog.state.silences import Ack, AuditEntry, Silence
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo, Sample

from .helpers import T0, at, enqueue, record_alerts, video_series

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    opened = Store(state_url)
    try:
        yield opened
    finally:
        opened.close()


def alert(
    rule: str = "poor-video",
    participant: str = "p1",
    status: str = "firing",
    when: datetime = T0,
    meeting: str = "m-1",
    value: float = 2.1,
) -> Alert:
    return Alert(
        fingerprint=fingerprint(rule, "s", participant),
        rule=rule,
        status=status,  # type: ignore[arg-type]
        severity="warning",
        metric="qualityScore.video",
        op="<",
        threshold=3,
        value=value,
        session_id="s",
        participant_id=participant,
        meeting_id=meeting,
        starts_at=when - timedelta(seconds=20),
        fired_at=when,
        sample_time=when,
        reason="left while degraded" if status == "resolved" and value < 3 else None,
    )


def audit(at_: datetime, action: str, target: str, actor: str = "ana") -> AuditEntry:
    return AuditEntry(f"{action}-{target}-{at_.timestamp()}", at_, actor, action, target, "cli", "")


def kinds(store: Store, **filters: Any) -> list[tuple[str, str | None]]:
    page = store.history.query(Filters(**filters))
    return [(e.kind, e.participant_id) for e in page.events]


def test_every_kind_of_event_is_kept_once_and_filtered_by_labels(store: Store) -> None:
    one, two = alert(participant="p1"), alert(participant="p2", rule="high-rtt", meeting="m-2")
    record_alerts(store, [(one, ["ops"]), (two, ["ops"])])
    record_alerts(store, [(one, ["ops"])])  # the same transition again: nothing new
    note = Notification(id="n1", notifier="ops", status="firing", alerts=(one, two))
    enqueue(store, [("k1", note)])
    (entry,) = store.outbox.entries()
    store.outbox.failed(entry.id, 1, T0, "HTTP 500 from hooks.example")
    store.outbox.failed(entry.id, 2, T0, "HTTP 500 again")  # retries are not recorded
    store.outbox.delivered(entry.id)
    store.silences.add_ack(
        Ack(one.fingerprint, one.starts_at, "ana", T0 + timedelta(seconds=5), "slack"),
        audit(T0 + timedelta(seconds=5), "acknowledge", one.fingerprint),
    )
    store.silences.add_audit(audit(T0 + timedelta(seconds=6), "inhibit", two.fingerprint, "wd"))
    silence = Silence(
        "sil-1", (Matcher("alertname", "=", "poor-video"),), T0, T0 + timedelta(minutes=1),
        "bob", "maintenance", T0,
    )  # fmt: skip
    store.silences.add(silence)
    store.silences.add_audit(audit(T0 + timedelta(seconds=7), "silence", "sil-1", "bob"))
    record_alerts(store, [(alert(participant="p1", status="resolved", when=at(90)), ["ops"])])

    everything = kinds(store, since=T0 - timedelta(hours=1))
    assert everything == [
        ("firing", "p2"),  # one moment: by rule (high-rtt first), then participant
        ("firing", "p1"),
        ("acknowledged", "p1"),
        ("inhibited", "p2"),
        ("silence-created", None),
        ("silence-expired", None),  # it ran out at T0 + 1m: read from the silences table
        ("resolved", "p1"),
        ("failed", "p2"),  # wall-clock times: after the sample times of T0
        ("failed", "p1"),
        ("sent", "p2"),
        ("sent", "p1"),
    ]
    assert kinds(store, participant="p1", kind="sent") == [("sent", "p1")]
    assert [k for k, _ in kinds(store, rule="high-rtt")] == ["firing", "inhibited", "failed", "sent"]
    assert [k for k, _ in kinds(store, meeting="m-2", since=T0 - timedelta(hours=1))][:2] == [
        "firing",
        "inhibited",
    ]
    assert kinds(store, until=T0) == []  # until is exclusive
    page = store.history.query(Filters(participant="p1", limit=2))
    assert page.more and [e.kind for e in page.events] == ["failed", "sent"]  # the newest two
    resolved = next(e for e in store.history.query(Filters(kind="resolved")).events)
    assert resolved.value == 2.1 and resolved.detail == "left while degraded"
    failed = store.history.query(Filters(kind="failed", participant="p1")).events[0]
    assert failed.notifier == "ops" and failed.detail == "firing: HTTP 500 from hooks.example"


def test_record_is_the_one_call_for_other_modules(store: Store) -> None:
    first = alert()
    record_alerts(store, [(first, ["ops"])])
    store.history.record(
        "escalated", fingerprint=first.fingerprint, actor="step 2", detail="paged ana"
    )
    (event,) = store.history.query(Filters(kind="escalated", rule="poor-video")).events
    assert (event.participant_id, event.actor, event.detail) == ("p1", "step 2", "paged ana")
    with pytest.raises(ValueError, match="short word"):
        store.history.record("x" * 41)


def test_pruning_deletes_old_rows_in_bounded_batches(store: Store) -> None:
    old, new = NOW - timedelta(days=40), NOW - timedelta(days=1)
    with store.transaction() as cur:
        for index in range(2_500):
            store.history.record_in(cur, "sent", fingerprint=f"f{index}", at=old)
        for index in range(10):
            store.history.record_in(cur, "sent", fingerprint=f"n{index}", at=new)
    store.silences.add_audit(audit(old, "acknowledge", "f1"))
    store.silences.add_audit(audit(new, "acknowledge", "n1"))
    minutes = store.minutes
    minutes.keep(["qualityScore.video"])
    info = ParticipantInfo("s", "p", meeting_id="m")
    rows = minutes.add(("s", "p"), info, [Sample(old, {"qualityScore.video": 2.0})])
    rows += minutes.add(("s", "p"), info, [Sample(new, {"qualityScore.video": 4.0})])
    rows += minutes.close_all()
    with store.transaction() as cur:
        Minutes.insert(cur, rows)

    pruned = store.history.prune(NOW, batch=1_000)
    assert pruned.done
    assert pruned.rows["history_events"] == 2_500
    assert pruned.rows["audit"] == 1
    assert pruned.rows["history_minutes"] == 1
    # 1,000 + 1,000 + 500 for the events, then one statement for each other table
    assert pruned.statements == 3 + 6
    assert len(store.history.query(Filters(limit=MAX_LIMIT)).events) == 11  # 10 sent, 1 ack
    assert store.history.prune(NOW).total == 0
    budget = store.history.prune(NOW, seconds=0)  # out of time: the next run goes on
    assert not budget.done and budget.statements == 0


def test_minutes_are_packed_per_participant_bucket_and_read_back(store: Store) -> None:
    minutes = store.minutes
    minutes.keep(["qualityScore.video", "averageSendVideoBitrate", "nonsense"])
    info = ParticipantInfo("s", "p", meeting_id="m", name="Alice")
    start = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    samples = [
        Sample(start + timedelta(seconds=10 * i), {"qualityScore.video": 4.0 - (i % 6) * 0.1})
        for i in range(6 * BUCKET)  # ten whole minutes, six samples each
    ]
    samples[0].values["averageSendVideoBitrate"] = 103_900.0
    assert minutes.add(("s", "p"), info, samples) == []  # the bucket is still open
    (row,) = minutes.add(("s", "p"), info, [Sample(start + timedelta(minutes=BUCKET), {})])
    assert row.minutes & ~COMPRESSED == (1 << BUCKET) - 1
    assert len(row.data) < BUCKET * (1 + 4 * 2)  # count, avg, min, max of 2 metrics, packed
    first = decode(row.start, row.metrics, row.minutes, row.data)[0]
    assert first.samples == 6
    low, avg, high = first.values["qualityScore.video"]
    assert abs(low - 3.5) < 0.01 and abs(high - 4.0) < 0.01 and abs(avg - 3.75) < 0.01
    assert abs(first.values["averageSendVideoBitrate"][1] - 103_900) < 100  # kbit/s half float
    # the poll path: folded in, written by the write-behind's flush (the open bucket at stop)
    store.polls.summarise(("s", "p2"), info, [*samples, Sample(start + timedelta(minutes=BUCKET), {})])
    store.polls.flush()
    store.polls.close_summaries()
    store.polls.flush()
    who = who_of("s", "p2")
    read = minutes.read(start, start + timedelta(hours=1), [who])
    assert len(read[who]) == BUCKET + 1  # both buckets, the open one written at the stop
    assert read.keys() == {who}
    assert minutes.participants(start, start + timedelta(hours=1))[who].name == "Alice"
    sampled = as_samples(read[who], "min")
    assert sampled[0].time == start + timedelta(seconds=30)
    assert abs(sampled[0].values["qualityScore.video"] - 3.5) < 0.01
