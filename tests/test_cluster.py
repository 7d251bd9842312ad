"""Several instances on one real PostgreSQL: leases, take-over after ``kill -9``, fencing,
and exactly one webhook per alert transition."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from watchdog.cluster.coordinator import Cluster, instances
from watchdog.engine.evaluate import AlertState
from watchdog.poll.meetings import MeetingStates
from watchdog.poll.participants import Participants
from watchdog.sim.simulator import Simulator
from watchdog.state import leases
from watchdog.state.leases import StaleLease
from watchdog.state.store import Store
from watchdog.state.watchlist import WatchRecord
from watchdog.testing import HttpReceiver, Received, Reply

from .conftest import API_KEY, SECRET, write_config
from .helpers import T0, at, video_series
from .pgserver import PostgresServer
from .processes import Daemon

HOOK_SECRET = "cluster-hook-secret-5a4b3c2d1e"
RULE = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: warning
    notify: [hook]
"""
N, BAD = 300, 60
INTERVAL, LEASE = 1.0, 3.0  # the default lease: three intervals


def _member(store: Store, lease: float, ident: str) -> Cluster:
    """An instance's membership over ``store``, with the participant state it loads."""
    return Cluster(store, lease, ident, Participants(store.polls), MeetingStates(store.polls))


def _watch(store: Store, keys: list[tuple[str, str]]) -> None:
    store.watchlist.save(
        WatchRecord(s, p, None, None, "static", "watching", at(0)) for s, p in keys
    )


def test_leases_spread_work_fence_stale_writes_and_move_from_a_dead_instance(
    postgres_url: str,
) -> None:
    store = Store(postgres_url)
    keys = [("s", f"p{i}") for i in range(10)]
    _watch(store, keys)
    one = _member(store, 1.0, "one")
    two = _member(store, 1.0, "two")
    try:
        one.tick()  # the first leader creates one lease row per watched participant
        assert one.leader
        assert len(one.held) == 10  # alone: everything
        two.tick()
        assert not two.leader
        one.tick()  # two joined: one hands back its surplus
        two.tick()
        assert len(one.held) == len(two.held) == 5
        assert not set(one.held) & set(two.held)

        key = next(iter(one.held))
        state = {"poor-video": AlertState("firing", at(0), 2.0, fired_at=at(0))}
        store.polls.commit_poll(key, at(10), state, ["poor-video"], fence=one.fence(key))
        with pytest.raises(StaleLease):  # two never held it: its write is refused
            store.polls.commit_poll(key, at(20), {}, ["poor-video"], fence=("two", one.held[key]))
        assert store.polls.load_cursors()[key] == at(10)

        time.sleep(1.1)  # "one" stops renewing, as if paused or killed
        two.tick()
        assert len(two.held) == 10  # took everything over once the lease expired
        assert two.leader is False  # leadership is a lock on one's live connection
        with pytest.raises(StaleLease):  # one wakes up and tries to write: fenced
            store.polls.commit_poll(key, at(30), {}, ["poor-video"], fence=one.fence(key))
        assert store.polls.load_cursors()[key] == at(10)
        rows = {r.id: r for r in instances(store)}
        assert rows["two"].held == 10
    finally:
        one.leave()
        two.leave()
        store.close()


def test_a_cycles_deferred_results_are_written_only_under_the_leases_they_were_polled_with(
    postgres_url: str,
) -> None:
    mine, other = Store(postgres_url), Store(postgres_url)  # two instances' stores
    kept, lost = ("s", "p0"), ("s", "p1")
    _watch(mine, [kept, lost])
    one = _member(mine, 60.0, "one")
    state = {"poor-video": AlertState("pending", at(0), 2.0)}
    try:
        one.tick()
        assert set(one.held) == {kept, lost}
        for key in (kept, lost):
            mine.polls.commit_poll(
                key, at(10), state, ["poor-video"], fence=one.fence(key), defer=True
            )
        assert other.polls.load_cursors() == {}  # kept in memory until the cycle ends
        assert mine.polls.flush() == 2
        assert other.polls.load_cursors() == {kept: at(10), lost: at(10)}

        for key in (kept, lost):
            mine.polls.commit_poll(key, at(20), state, [], fence=one.fence(key), defer=True)
        with psycopg.connect(postgres_url, autocommit=True) as conn:  # taken over meanwhile
            conn.execute(
                "UPDATE leases SET owner = 'two', generation = generation + 1"
                " WHERE participant_id = 'p1'"
            )
        assert mine.polls.flush() == 1  # the lost one is fenced off, the kept one written
        assert other.polls.load_cursors() == {kept: at(20), lost: at(10)}
        discarded = mine.polls.take_stale()  # what the poller tells the cluster
        assert [key for key, _ in discarded] == [lost]
        assert "no longer held by one" in discarded[0][1]

        # a poll that alerts is written at once and carries what was deferred under the
        # same lease with it
        mine.polls.commit_poll(
            kept, at(30), state, ["poor-video"], fence=one.fence(kept), defer=True
        )
        firing = {"poor-video": AlertState("firing", at(0), 2.0, fired_at=at(30))}
        mine.polls.commit_poll(kept, at(40), firing, [], fence=one.fence(kept))
        assert other.polls.load_cursors()[kept] == at(40)
        assert other.polls.load_alert_states()[kept]["poor-video"].phase == "firing"
        assert mine.polls.flush() == 0
    finally:
        one.leave()
        mine.close()
        other.close()


def test_flushes_racing_hand_backs_and_claims_never_deadlock(postgres_url: str) -> None:
    """The end-of-cycle flush locks every lease its instance holds while the same instance
    hands leases back and claims them again: both lock in key order, so PostgreSQL never
    has to break a deadlock, and what is written is always the newest."""
    store = Store(postgres_url)
    keys = [("s", f"p{i:03d}") for i in range(200)]
    _watch(store, keys)
    one = _member(store, 60.0, "one")
    errors: list[str] = []
    stop = time.monotonic() + 6.0
    pending = {"poor-video": AlertState("pending", at(0), 2.0)}

    def poll_all(second: int) -> None:
        for key in keys:
            with one._lock:
                generation = one.held.get(key)
            if generation is not None:
                store.polls.commit_poll(
                    key, at(second), pending, [], fence=("one", generation), defer=True
                )

    def cycles() -> None:
        second = 10
        while time.monotonic() < stop:
            second += 1
            poll_all(second)
            try:
                store.polls.flush()
            except Exception as exc:
                errors.append(f"flush: {exc}")

    def churn() -> None:
        rng = random.Random(7)
        while time.monotonic() < stop:
            sample = rng.sample(keys, 40)
            try:
                with store.transaction() as cur:
                    leases.release(cur, sample, one.id)
                with store.transaction() as cur:
                    leases.lock_in_order(cur, sample)  # as a claim's ordered SELECT ... SKIP LOCKED
                    claimed = leases.bump(cur, sample, one.id)
                with one._lock:
                    one.held.update(claimed)
            except Exception as exc:
                errors.append(f"churn: {exc}")

    try:
        one.tick()
        assert len(one.held) == len(keys)
        threads = [threading.Thread(target=cycles), threading.Thread(target=churn)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        poll_all(10_000)
        assert store.polls.flush() == len(keys)
        assert set(store.polls.load_cursors().values()) == {at(10_000)}
    finally:
        one.leave()
        store.close()


def test_renewal_writes_one_heartbeat_row_and_a_silent_instance_falls_due(
    postgres_url: str,
) -> None:
    store = Store(postgres_url)
    _watch(store, [("s", f"p{i}") for i in range(6)])
    one = _member(store, 30.0, "one")
    two = _member(store, 30.0, "two")

    def versions() -> dict[tuple[str, str], str]:  # xmin: the transaction that wrote a row
        rows = store.database.execute(
            "SELECT session_id, participant_id, owner, xmin::text FROM leases"
        ).fetchall()
        return {(r[0], r[1]): f"{r[2]}@{r[3]}" for r in rows}

    try:
        for member in (one, two, one, two):
            member.tick()
        assert len(one.held) == len(two.held) == 3
        leases = versions()
        due = one.renew()
        assert two.renew() is not None
        assert versions() == leases  # renewing is the heartbeat alone: no lease row rewritten
        assert due is not None
        assert 0 < due <= 30.0  # when two's leases fall due, should it stop heartbeating
        assert one.take_over()[0] == []  # two is alive: nothing falls due yet

        with psycopg.connect(postgres_url, autocommit=True) as conn:  # two falls silent
            conn.execute("UPDATE instances SET heartbeat_at = heartbeat_at - 30 WHERE id = 'two'")
        acquired, _ = one.take_over()
        assert sorted((t.session, t.participant) for t in acquired) == sorted(two.held)
        assert len(one.held) == 6
        for key in two.held:  # two wakes up and writes: fenced by the new generation
            with pytest.raises(StaleLease):
                store.polls.commit_poll(key, at(10), {}, [], fence=two.fence(key))
        two.tick()  # and learns it lost them: nothing is handed back to it
        assert not two.held
    finally:
        one.leave()
        two.leave()
        store.close()


def _transitions(requests: list[Received]) -> Counter[tuple[str, str, str]]:
    """(fingerprint, status, startsAt) of every alert the receiver accepted."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for request in requests:
        body = json.loads(request.body)
        for alert in body["alerts"]:
            seen[(alert["fingerprint"], alert["status"], alert["startsAt"])] += 1
    return seen


def _stats_paths(sim: Simulator, since: int = 0) -> set[str]:
    return {path for _, path, _ in sim.requests[since:] if path.endswith("/stats")}


def test_three_instances_survive_kill_9_with_every_transition_delivered_once(
    tmp_path: Path, postgres_url: str
) -> None:
    with Simulator(
        api_key=API_KEY, secret=SECRET, manual_clock=True, start=T0, sample_period=10.0
    ) as sim:
        _cluster_run(tmp_path, postgres_url, sim)


def _cluster_run(tmp_path: Path, postgres_url: str, sim: Simulator) -> None:
    participants = [("s", f"p{i:03}") for i in range(N)]
    for i, (session, participant) in enumerate(participants):
        video = [(t, 2.0 if i < BAD and 30 <= t < 90 else 4.2) for t in range(0, 300, 10)]
        sim.add_participant(session, participant, samples=video_series(video), meeting_id="m")
    down = True
    accepted: list[Received] = []

    def answer(request: Received) -> Reply:
        digest = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(
            request.headers.get("x-watchdog-signature", ""), f"sha256={digest}"
        ):
            return Reply(401, "bad signature")
        if down:
            return Reply(503, "maintenance")
        accepted.append(request)
        return Reply(200, "ok")

    with HttpReceiver(answer) as receiver:
        config = write_config(tmp_path, sim.url, participants, RULE)
        data: dict[str, Any] = yaml.safe_load(config.read_text())
        data["poll"] = {"interval": f"{INTERVAL}s", "concurrency": 8}
        data["state"] = {"url": postgres_url, "lease": f"{LEASE}s"}
        data["notifiers"] = {
            "hook": {"type": "webhook", "url": receiver.url, "secret": HOOK_SECRET}
        }
        data["delivery"] = {"timeout": "2s", "max_backoff": "1s"}
        data["alerting"] = {"group_by": ["..."], "repeat_interval": "1h"}
        config.write_text(yaml.safe_dump(data))
        daemons = [
            Daemon(["run", "--config", str(config)], env={"WATCHDOG_HTTP__LISTEN": "127.0.0.1:0"})
            for _ in range(3)
        ]
        try:
            ports = [_served_port(daemon) for daemon in daemons]
            for daemon in daemons:
                daemon.wait_for("sharing", stream="err")
            _wait(lambda: len(_stats_paths(sim)) == N, "every participant polled")
            sim.advance(40)  # 60 participants go bad at 30 s: 60 firing transitions
            store = Store(postgres_url)
            try:
                _wait(lambda: _outbox_firing(store) >= BAD, "firing notifications queued")
                _wait(
                    lambda: sorted(r.held for r in instances(store)) == [N // 3] * 3,
                    lambda: f"an even spread: {instances(store)}",
                )
                leader = next(r for r in instances(store) if r.roles == "leader")
                victim = next(d for d in daemons if str(d.proc.pid) == str(leader.pid))
                assert store.outbox.depth() > 0  # undelivered: the receiver is down
                victim.kill()  # kill -9 of the leader, mid-run, with alerts undelivered
                killed_at, mark = time.monotonic(), len(sim.requests)
                _wait(
                    lambda: len(_stats_paths(sim, mark)) == N,
                    "every participant polled again",
                    timeout=LEASE + INTERVAL,
                )
                took = time.monotonic() - killed_at
                down = False
                sim.advance(60)  # recover at 90 s: 60 resolved transitions
                _wait(
                    lambda: len(_transitions(accepted)) == 2 * BAD,
                    lambda: (
                        f"all transitions: {Counter(s for _, s, _ in _transitions(accepted))}, "
                        f"outbox {store.outbox.depth()}, "
                        + " | ".join(d.all_output()[-3000:] for d in daemons)
                    ),
                    30,
                )
                time.sleep(2 * INTERVAL + 1)  # time for any duplicate to show up
                seen = _transitions(accepted)
                assert sorted(set(seen.values())) == [1], "a transition was delivered twice"
                assert Counter(status for _, status, _ in seen) == {
                    "firing": BAD,
                    "resolved": BAD,
                }
                assert store.outbox.depth() == 0
                live = instances(store)
                assert len(live) == 3  # the dead one stays listed until it ages out
                assert sum(r.held for r in live if r.pid != victim.proc.pid) == N
                assert took <= LEASE + INTERVAL, f"took {took:.2f}s"
                status = subprocess.run(
                    [sys.executable, "-m", "watchdog", "status", "--config", str(config)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                assert "3 instances share this database" in status
                assert str(victim.proc.pid) in status
                survivors = [p for d, p in zip(daemons, ports, strict=True) if d is not victim]
                metrics = "".join(_get(port, "/metrics")[1] for port in survivors)
                assert _sum(metrics, "watchdog_lease_takeovers_total") >= N // 3
                assert _sum(metrics, "watchdog_leases_held") == N
                assert _sum(metrics, "watchdog_leader") == 1  # leadership moved
                assert all(_get(port, "/healthz")[0] == 200 for port in survivors)
            finally:
                store.close()
            for daemon in daemons:
                if daemon is not victim:
                    assert daemon.stop() == 0
            for daemon in daemons:
                assert HOOK_SECRET not in daemon.all_output()
                assert postgres_url.split("@", maxsplit=1)[
                    0
                ] + "@" not in daemon.all_output().replace("postgresql://***@", "")
        finally:
            for daemon in daemons:
                daemon.kill()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening (yet, or any more)


def _sum(metrics: str, name: str) -> float:
    return sum(
        float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name + " ")
    )


def test_healthz_fails_when_the_database_is_unreachable(
    tmp_path: Path, sim: Simulator, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    sim.add_participant("s", "p", scenario="healthy")
    config = write_config(tmp_path, sim.url, [("s", "p")], RULE.replace("notify: [hook]", ""))
    data: dict[str, Any] = yaml.safe_load(config.read_text())
    data["poll"] = {"interval": f"{INTERVAL}s"}
    data["state"] = {"url": url, "lease": "1s"}
    data["http"] = {"listen": "127.0.0.1:0"}
    config.write_text(yaml.safe_dump(data))
    daemon = Daemon(["run", "--config", str(config)])
    try:
        port = _served_port(daemon)
        daemon.wait_for("sharing", stream="err")
        _wait(lambda: _get(port, "/healthz")[0] == 200, "healthy")
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        _wait(lambda: _get(port, "/healthz")[0] == 503, "/healthz failing", 10)
        body = _get(port, "/healthz")[1]  # the first failed write already says it
        assert "state database postgresql://" in body
        assert ": unreachable: " in body
        assert "***@" in daemon.all_output() or "postgres@" not in daemon.all_output()
    finally:
        daemon.kill()


def _served_port(daemon: Daemon) -> int:
    """The port the OS gave the daemon's HTTP listener (configured as port 0)."""
    url = daemon.wait_for(r"serving /metrics", stream="err").rsplit(" ", 1)[1]
    return int(url.rsplit(":", 1)[1])


def _outbox_firing(store: Store) -> int:
    return sum(1 for e in store.outbox.entries() if e.notification.status == "firing")


def _wait(check: Any, what: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, (
            f"timed out waiting: {what() if callable(what) else what}"
        )
        time.sleep(0.05)
