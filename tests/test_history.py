"""Alert history (issue 20): what is recorded, filtered, pruned, summarised and reported, on
SQLite and PostgreSQL, and the daemon's ``/api/history`` against the simulator."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchdog.alerting.callreport import Worst, call_report, render
from watchdog.alerting.digest import read_day
from watchdog.alerting.noise import episodes, rule_noise
from watchdog.alerts import Alert, Notification, fingerprint
from watchdog.cli.main import main
from watchdog.config.matchers import Matcher
from watchdog.config.settings import Config
from watchdog.durations import format_time
from watchdog.runtime.history_api import BadQuery, parse_filters
from watchdog.runtime.service import Service
from watchdog.sim.simulator import Simulator
from watchdog.state.database import QueryTimeout
from watchdog.state.history import MAX_LIMIT, Event, Filters, record_transition
from watchdog.state.minutes import (
    BUCKET,
    COMPRESSED,
    Minute,
    Minutes,
    as_samples,
    decode,
    who_of,
)
from watchdog.state.silences import Ack, AuditEntry, Silence
from watchdog.state.store import Store
from watchdog.videosdk.stats import ParticipantInfo, Sample

from .helpers import T0, at, enqueue, record_alerts, video_series

NOW = datetime.now(UTC).replace(microsecond=0)
RETENTION = timedelta(days=30)


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
    store.silences.add_audit(audit(T0 + timedelta(seconds=8), "oncall-override", "ov-1", "bob"))
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
        ("oncall-override", None),  # any audited action, by its own name
        ("silence-expired", None),  # it ran out at T0 + 1m: read from the silences table
        ("resolved", "p1"),
        ("failed", "p2"),  # wall-clock times: after the sample times of T0
        ("failed", "p1"),
        ("sent", "p2"),
        ("sent", "p1"),
    ]
    assert kinds(store, participant="p1", kind="sent") == [("sent", "p1")]
    assert [k for k, _ in kinds(store, rule="high-rtt")] == [
        "firing",
        "inhibited",
        "failed",
        "sent",
    ]
    assert [k for k, _ in kinds(store, meeting="m-2", since=T0 - timedelta(hours=1))][:2] == [
        "firing",
        "inhibited",
    ]
    assert kinds(store, until=T0) == []  # until is exclusive
    page = store.history.query(Filters(participant="p1", limit=2))
    assert page.more
    assert [e.kind for e in page.events] == ["failed", "sent"]  # the newest two
    resolved = next(e for e in store.history.query(Filters(kind="resolved")).events)
    assert (resolved.value, resolved.detail) == (2.1, "left while degraded")
    failed = store.history.query(Filters(kind="failed", participant="p1")).events[0]
    assert (failed.notifier, failed.detail) == ("ops", "firing: HTTP 500 from hooks.example")
    (override,) = store.history.query(Filters(kind="oncall-override")).events
    assert (override.target, override.fingerprint, override.actor) == ("ov-1", None, "bob")


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

    pruned = store.history.prune(RETENTION, NOW, batch=1_000)
    assert pruned.done
    assert pruned.rows["history_events"] == 2_500
    assert pruned.rows["audit"] == 1
    assert pruned.rows["history_minutes"] == 1
    # 1,000 + 1,000 + 500 for the events, then one statement for each other table
    assert pruned.statements == 3 + 6
    assert len(store.history.query(Filters(limit=MAX_LIMIT)).events) == 11  # 10 sent, 1 ack
    assert store.history.prune(RETENTION, NOW).total == 0
    budget = store.history.prune(RETENTION, NOW, seconds=0)  # out of time: the next run goes on
    assert (budget.done, budget.statements) == (False, 0)


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
    assert [round(low, 2), round(avg, 2), round(high, 2)] == [3.5, 3.75, 4.0]
    assert abs(first.values["averageSendVideoBitrate"][1] - 103_900) < 100  # kbit/s half float
    # the poll path: folded in, written by the write-behind's flush (the open bucket at stop)
    store.polls.summarise(
        ("s", "p2"), info, [*samples, Sample(start + timedelta(minutes=BUCKET), {})]
    )
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


# -- the daemon, the API and the commands, against the simulator -----------------------


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()  # what the daemon's console notifier printed before
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_daemon_history_api_and_commands(
    sim: Simulator,
    config_for: Callable[..., Config],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scores = [(10.0 * i, 2.0 if 1 <= i <= 8 else 4.5) for i in range(12)]  # 10 s .. 80 s bad
    sim.add_participant("s-1", "p-1", samples=video_series(scores))
    sim.add_participant("s-1", "p-2", samples=video_series([(10.0 * i, 4.4) for i in range(12)]))
    sim.advance(120)
    config = config_for(
        [("s-1", "p-1"), ("s-1", "p-2")],
        poll={"interval": "100ms"},
        http={"listen": "127.0.0.1:0"},
        alerting={"group_wait": "0s"},
    )
    service = Service(config)
    codes: list[int] = []
    stop = threading.Event()
    thread = threading.Thread(target=lambda: codes.append(service.run(stop)), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while service.http is None:
            assert time.monotonic() < deadline
            assert thread.is_alive()
            time.sleep(0.02)
        api = service.http.url + "/api/history"
        while True:  # the resolution is told once delivered: bounded wait
            status, body = get(api + "?participant=p-1&since=30d")
            if [e["kind"] for e in body["events"]] == ["firing", "resolved", "sent"]:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
        firing, resolved, sent = body["events"]
        assert (firing["rule"], firing["value"]) == ("poor-video", 2.0)
        assert firing["at"] == format_time(T0 + timedelta(seconds=30))  # sample time
        assert resolved["at"] == format_time(T0 + timedelta(seconds=90))
        assert (sent["notifier"], sent["detail"]) == ("console", "resolved")
        assert get(api + "?participant=p-2")[1] == {"events": []}
        assert get(api + "?rule=poor-video&kind=firing&limit=1")[1]["events"][0]["kind"] == "firing"
        # hostile query strings: 400 with a reason, never a traceback or a 500
        for query, why in [
            ("?bogus=1", "unknown parameter"),
            ("?rule=a&rule=b", "given twice"),
            ("?limit=0", "limit"),
            ("?limit=99999999999", "limit"),
            ("?limit=-1", "limit"),
            ("?since=yesterday", "neither an ISO-8601"),
            ("?since=99999d", "neither an ISO-8601"),
            ("?rule=" + "x" * 300, "printable"),
            ("?rule=%00", "printable"),
            ("?" + "&".join(f"k{i}=1" for i in range(50)), "malformed"),
            ("?" + "a" * 5000, "longer than"),
        ]:
            status, body = get(api + query)
            assert status == 400, (query, body)
            assert why in body["error"], (query, body)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert codes == [0]

    path = str(config.path)
    code, out = run_cli(
        capsys, "history", "--config", path, "--rule", "poor-video", "--since", "30d", "--json"
    )
    assert code == 0
    assert [json.loads(line)["kind"] for line in out.splitlines()] == [
        "firing",
        "resolved",
        "sent",
    ], out
    code, out = run_cli(
        capsys, "history", "--config", path, "--participant", "p-1", "--since", "30d"
    )
    assert "firing poor-video @p-1 value=2" in out
    code, out = run_cli(capsys, "report", "rules", "--config", path, "--since", "30d", "--json")
    (noise,) = json.loads(out)["rules"]
    assert (noise["rule"], noise["fires"], noise["flapping_share"]) == ("poor-video", 1, 0.0)
    assert noise["median_duration_seconds"] == 60.0
    # the minute summaries the daemon kept (written at the stop), replayed
    since = format_time(T0 - timedelta(minutes=5))
    rules = str(tmp_path / "rules.yaml")
    code, out = run_cli(
        capsys, "replay", "--config", path, "--rules", rules, "--from-history", "--since", since
    )
    assert (code, out) == (0, "")  # minute averages: 2.33 then 3.25, one minute under 3
    code, out = run_cli(
        capsys, "replay", "--config", path, "--rules", rules, "--from-history",
        "--since", since, "--summary", "min",
    )  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(t["participantId"], t["state"], t["time"]) for t in lines] == [
        ("p-1", "firing", format_time(T0 + timedelta(seconds=90)))  # minute 1's middle
    ]
    # what the call was like (the session's ID names it as well as the meeting's)
    code, out = run_cli(capsys, "report", "meeting", "s-1", "--config", path, "--json")
    report = json.loads(out)
    assert (report["start"], report["duration_seconds"]) == (format_time(T0), 120.0)
    assert [
        (p["participant_id"], p["minutes"], p["degraded_minutes"]) for p in report["participants"]
    ] == [
        ("p-1", 2, 2),  # fired at 0:30, resolved at 1:30: both minutes
        ("p-2", 2, 0),
    ]
    (worst,) = report["worst"]  # the min: within a spread code's ~4% of its distance
    assert (worst["metric"], worst["participant_id"]) == ("qualityScore.video", "p-1")
    assert abs(worst["value"] - 2.0) < 0.05
    (fired,) = report["alerts"]
    assert (fired["rule"], fired["resolved"]) == ("poor-video", format_time(at(90)))
    code, out = run_cli(capsys, "report", "meeting", "s-1", "--config", path)
    assert "p-1 (p-1): 2 of 2 min degraded" in out
    assert run_cli(capsys, "report", "meeting", "nobody", "--config", path)[0] == 1


def test_rule_noise_figures_on_a_hand_built_history(store: Store) -> None:
    def episode(rule: str, who: str, start: float, seconds: float | None) -> str:
        fired = alert(rule=rule, participant=who, when=at(start))
        record_alerts(store, [(fired, ["ops"])])
        if seconds is not None:
            done = alert(rule=rule, participant=who, status="resolved", when=at(start + seconds))
            record_alerts(store, [(done, ["ops"])])
        return fired.fingerprint

    day = 86_400.0
    silenced = episode("a", "p1", 100, 30)  # flapped, and a silence was in force
    inhibited = episode("a", "p2", 200, 45)  # flapped, held back by an inhibition rule
    acked = episode("a", "p3", day, 600)
    episode("a", "p4", day + 100, None)  # still firing at the end
    episode("b", "p1", 300, 120)
    record_alerts(store, [(alert(rule="a", participant="p9", status="resolved"), ["ops"])])
    store.silences.add(
        Silence("s1", (Matcher("participant_id", "=", "p1"), Matcher("alertname", "=", "a")),
                at(0), at(150), "bob", "deploy", at(0))
    )  # fmt: skip
    store.silences.add_audit(audit(at(205), "inhibit", inhibited, "watchdog"))
    store.silences.add_audit(audit(at(day + 60), "acknowledge", acked))
    store.silences.add_audit(audit(at(5 * day), "acknowledge", silenced))  # long after: not it
    until = T0 + timedelta(days=2)
    found = episodes(store.history.transitions(T0, until))
    noise = rule_noise(
        found, store.history.actions(T0, ("acknowledge", "inhibit")), store.silences.all(),
        T0, until,
    )  # fmt: skip
    assert [n.to_json() for n in noise] == [
        {
            "rule": "a",
            "fires": 4,
            "fires_per_day": 2.0,
            "median_duration_seconds": 45.0,
            "flapping_share": 0.5,
            "acknowledged_share": 0.25,
            "inhibited": 1,
            "silenced": 1,
        },
        {
            "rule": "b",
            "fires": 1,
            "fires_per_day": 0.5,
            "median_duration_seconds": 120.0,
            "flapping_share": 0.0,
            "acknowledged_share": 0.0,
            "inhibited": 0,
            "silenced": 0,
        },
    ]


def test_hostile_and_valid_query_strings_parse_within_bounds() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    found = parse_filters("rule=poor-video&since=7d%20ago&until=2026-11-30T11:00:00Z&limit=5", now)
    assert found == Filters(
        since=now - timedelta(days=7),
        until=datetime(2026, 11, 30, 11, 0, tzinfo=UTC),
        rule="poor-video",
        limit=5,
    )
    assert parse_filters("", now) == Filters()
    for query in ["limit=1e3", "limit=+5", "limit=%EF%BC%95", "since=" + "1" * 70, "=x", "a"]:
        with pytest.raises(BadQuery):
            parse_filters(query, now)


def test_a_read_past_its_budget_is_stopped(store: Store) -> None:
    """What bounds a query /api/history runs, on either engine (a count to 10^9 would take
    minutes)."""
    endless = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000)"
        " SELECT COUNT(*) FROM n"
    )
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        store.database.read(endless, (), 0.2)
    assert time.monotonic() - started < 5
    assert store.database.read("SELECT 1", (), 1.0) == [(1,)]  # the connection still serves


def test_call_report_names_causes_and_who_acknowledged() -> None:
    info = {1: ParticipantInfo("s", "p1", name="Ana"), 2: ParticipantInfo("s", "p2")}
    minutes = {
        1: [
            Minute(at(60 * i), 6, {"averageVideoRtt": (100.0, 200.0, 900.0 + i)}) for i in range(5)
        ],
        2: [Minute(at(60 * i), 6, {"averageVideoRtt": (50.0, 60.0, 70.0)}) for i in range(3)],
    }
    events = [
        Event(at(60), "firing", "f1", "high-rtt", participant_id="p1", value=900, cause="uplink"),
        Event(at(90), "acknowledged", "f1", "high-rtt", participant_id="p1", actor="bob"),
        Event(at(100), "acknowledged", "f1", "high-rtt", participant_id="p1", actor="eve"),
        Event(at(150), "resolved", "f1", "high-rtt", participant_id="p1"),
        Event(at(200), "firing", "f2", "high-rtt", participant_id="p1", cause="uplink"),
    ]
    report = call_report("m", info, minutes, events, {"averageVideoRtt": "high"})
    assert report is not None
    assert [(a.info.participant_id, a.minutes, a.degraded) for a in report.attendees] == [
        ("p1", 5, 4),  # minutes 1, 2 (first alert), 3, 4 (the second, still firing)
        ("p2", 3, 0),
    ]
    assert report.worst == [Worst("averageVideoRtt", 904.0, "p1")]
    assert [(f.acked_by, f.ended) for f in report.alerts] == [("bob", at(150)), (None, None)]
    assert report.causes == [("uplink", 2)]
    assert "cause: uplink, acknowledged by bob" in render(report)
    assert call_report("m", info, {}, events, {}) is None


def test_the_rule_report_and_the_digest_read_a_long_history_as_it_streams(store: Store) -> None:
    """A noisy deployment's weeks of transitions are read a page at a time: what the rule
    report and the digest hold grows with the rules and the participants, not with the
    history (before, every transition and every episode's labels were held at once)."""
    now = format_time(T0)

    def seed(episodes_count: int, start: int) -> datetime:
        with store.transaction() as cur:  # a test's shortcut: one transaction for them all
            for i in range(episodes_count):
                fired = T0 + timedelta(seconds=start + 30 * i)
                who = f"p{i % 40}"
                firing = alert(participant=who, when=fired)
                if i % 4 == 0:
                    firing = replace(firing, cause="uplink")
                record_transition(cur, firing, now)
                ended = fired + timedelta(seconds=20)
                record_transition(cur, alert(participant=who, status="resolved", when=ended), now)
        return T0 + timedelta(seconds=start + 30 * episodes_count)

    def held(until: datetime) -> tuple[int, int, int]:
        """Peak bytes allocated while reading, the fires counted, and their causes."""
        tracemalloc.start()
        try:
            day = read_day(store.history, store.silences, T0, until)
            report = rule_noise(episodes(store.history.transitions(T0, until)), [], [], T0, until)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert day.fires == report[0].fires
        return peak, report[0].fires, day.causes["uplink"]

    small_until = seed(4_000, 0)
    small, fires, causes = held(small_until)
    assert (fires, causes) == (4_000, 1_000)
    until = seed(16_000, 30 * 4_000)
    large, fires, causes = held(until)
    assert fires == 20_000
    assert causes == 5_000  # every alert's cause, not those of a page of the newest
    # five times the history (both past one page of 5,000 rows); what is held grows by the
    # arrays alone
    assert large < 2 * small, (small, large)
