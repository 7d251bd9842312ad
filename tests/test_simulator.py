"""The simulator through real HTTP on 127.0.0.1, exactly as the daemon will see it."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests

from watchdog.sim.scenarios import (
    CAUSE_SCENARIOS,
    SCENARIOS,
    demo_population,
    scenario_population,
)
from watchdog.sim.simulator import CRAWLER_REQUIRED, Fault, Simulator, serve

API_KEY = "test-api-key"
SECRET = "a-test-secret-that-is-long-enough-for-hs256"
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SAMPLE_FIELDS = {
    "time",
    "recvAudioPacketLost",
    "recvVideoPacketLost",
    "sendAudioPacketLost",
    "sendVideoPacketLost",
    "averageAudioRtt",
    "averageVideoRtt",
    "averageAudioJitter",
    "averageVideoJitter",
    "averageSendAudioBitrate",
    "averageSendVideoBitrate",
    "averageRecvAudioBitrate",
    "averageRecvVideoBitrate",
    "qualityScore",
}


def token(secret: str = SECRET, **overrides: Any) -> str:
    """A token like VideoSDK's examples mint; an override of None drops the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "apikey": API_KEY,
        "permissions": ["allow_join"],
        "version": 2,
        "roles": ["crawler"],
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


def get(
    sim: Simulator,
    participant: str = "part1",
    session: str = "sess1",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    return requests.get(
        f"{sim.url}/v2/sessions/{session}/participant/{participant}/stats",
        headers={"Authorization": token()} if headers is None else headers,
        timeout=10,
    )


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(API_KEY, SECRET, sample_period=10.0, manual_clock=True, start=START) as sim:
        sim.add_participant(
            "sess1", "part1", scenario="healthy", name="Alice", meeting_id="abcd-efgh-ijkl"
        )
        yield sim


def test_stats_have_the_documented_shape(sim: Simulator) -> None:
    response = get(sim)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["sessionId"] == "sess1"
    assert body["participantId"] == "part1"
    assert body["participantName"] == "Alice"
    assert body["meetingId"] == "abcd-efgh-ijkl"
    for key in ("deviceInfo", "sdkInfo", "location", "network"):
        assert isinstance(body[key], dict)
    [sample] = body["stats"]
    assert set(sample) == SAMPLE_FIELDS
    assert sample["time"] == "2024-05-01T12:00:00.000Z"
    assert set(sample["qualityScore"]) == {"audio", "video"}
    [usage] = body["resolutionUsage"]
    assert usage["time"] == sample["time"]
    assert sum(usage[r] for r in ("180", "360", "720", "1080", "1440", "2160")) == 1


def test_history_grows_as_sample_time_advances(sim: Simulator) -> None:
    first = get(sim).json()["stats"]
    sim.advance(30.0)
    assert sim.now() == START + timedelta(seconds=30)
    grown = get(sim).json()["stats"]
    assert len(grown) == 4
    assert grown[0] == first[0]
    assert [s["time"][11:19] for s in grown] == ["12:00:00", "12:00:10", "12:00:20", "12:00:30"]
    sim.advance(9.9)
    assert len(get(sim).json()["stats"]) == 4


def test_history_prefill_and_late_joiners() -> None:
    with Simulator(API_KEY, SECRET, manual_clock=True, start=START, history=120) as sim:
        sim.add_participant("s", "early")
        sim.add_participant("s", "late", joined_at_offset=20.0)
        stats = get(sim, "early", "s").json()["stats"]
        assert len(stats) == 120
        assert stats[-1]["time"] == "2024-05-01T12:00:00.000Z"
        assert len(get(sim, "late", "s").json()["stats"]) == 118  # history shifts joins back
        sim.advance(20.0)
        assert len(get(sim, "late", "s").json()["stats"]) == 120


def test_series_are_deterministic_per_participant() -> None:
    bodies = []
    for _ in range(2):
        with Simulator(API_KEY, SECRET, manual_clock=True, start=START) as sim:
            sim.add_participant("s", "a", scenario="flapping")
            sim.add_participant("s", "b", scenario="flapping")
            sim.advance(50)
            bodies.append((get(sim, "a", "s").json()["stats"], get(sim, "b", "s").json()["stats"]))
    assert bodies[0] == bodies[1]
    assert bodies[0][0] != bodies[0][1]


# the tokens are minted when the test runs, not at collection: one minted then expires
# (``exp`` is 10 minutes on) before a long run reaches the test, and says "Token expired"
@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        (lambda: {}, 401, "missing"),
        (lambda: {"Authorization": token(secret="x" * 32 + "-wrong")}, 401, "Invalid token"),
        (lambda: {"Authorization": "Bearer " + token()}, 401, "Invalid token"),
        (lambda: {"Authorization": token(apikey="someone-else")}, 401, "apikey"),
        (lambda: {"Authorization": token(exp=int(time.time()) - 5)}, 401, "Token expired"),
        (lambda: {"Authorization": token(exp=None)}, 401, "Invalid token"),
        (lambda: {"Authorization": token(exp=time.time() + 600)}, 401, "integer"),
        (lambda: {"Authorization": token(iat=str(int(time.time())))}, 401, "Invalid token"),
        (lambda: {"Authorization": token(roles=None)}, 403, CRAWLER_REQUIRED),
        (lambda: {"Authorization": token(roles=["rtc"])}, 403, CRAWLER_REQUIRED),
        (lambda: {"Authorization": token(version=1)}, 403, CRAWLER_REQUIRED),
    ],
    ids=[
        "missing",
        "bad-signature",
        "bearer-prefix",
        "wrong-apikey",
        "expired",
        "no-exp",
        "float-exp",
        "string-iat",
        "no-roles",
        "no-crawler",
        "version-1",
    ],
)
def test_tokens_are_checked_like_videosdk(
    sim: Simulator, headers: Callable[[], dict[str, str]], status: int, message: str
) -> None:
    response = get(sim, headers=headers())
    assert response.status_code == status
    assert message in response.json()["message"]
    assert response.json()["statusCode"] == status


def test_server_errors_then_recovery(sim: Simulator) -> None:
    sim.inject(Fault(status=503, count=2))
    assert [get(sim).status_code for _ in range(3)] == [503, 503, 200]
    path = "/v2/sessions/sess1/participant/part1/stats"
    assert sim.requests == [("GET", path, 503), ("GET", path, 503), ("GET", path, 200)]


def test_rate_limit_sends_retry_after(sim: Simulator) -> None:
    sim.inject(Fault(status=429, retry_after=1, count=1))
    response = get(sim)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert get(sim).status_code == 200


def test_401_fault_refuses_a_valid_token_once(sim: Simulator) -> None:
    sim.inject(Fault(status=401))
    assert [get(sim).status_code for _ in range(2)] == [401, 200]


def test_delay_fault_slows_one_answer(sim: Simulator) -> None:
    sim.inject(Fault(delay=0.3))
    began = time.monotonic()
    assert get(sim).status_code == 200
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    get(sim)
    assert time.monotonic() - began < 0.3


def test_malformed_fault_is_not_json(sim: Simulator) -> None:
    sim.inject(Fault(malformed=True))
    response = get(sim)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert get(sim).json()["stats"]


def test_schema_fault_is_json_in_the_wrong_shape(sim: Simulator) -> None:
    sim.inject(Fault(schema=True))
    body = get(sim).json()
    stats = body["stats"]
    assert any(isinstance(s, dict) and "time" not in s for s in stats)
    assert any(not isinstance(s, dict) for s in stats)
    assert any(isinstance(s, dict) and isinstance(s.get("qualityScore"), str) for s in stats)
    assert not isinstance(body["resolutionUsage"], list)


def test_body_fault_serves_any_json(sim: Simulator) -> None:
    sim.inject(Fault(body={"stats": "not a list"}))
    assert get(sim).json() == {"stats": "not a list"}


def test_huge_fault_then_keep_alive_still_works(sim: Simulator) -> None:
    sim.inject(Fault(huge_bytes=20_000_000))
    with requests.Session() as http:
        url = f"{sim.url}/v2/sessions/sess1/participant/part1/stats"
        response = http.get(url, headers={"Authorization": token()}, timeout=10)
        assert int(response.headers["Content-Length"]) == len(response.content) == 20_000_000
        assert response.json()["stats"] == []
        assert http.get(url, headers={"Authorization": token()}, timeout=10).status_code == 200


def test_faults_can_target_one_participant(sim: Simulator) -> None:
    sim.add_participant("sess1", "part2")
    sim.inject(Fault(status=500, participant="part2"))
    assert get(sim, "part1").status_code == 200
    assert get(sim, "part2").status_code == 500
    assert get(sim, "part2").status_code == 200


def test_faults_apply_in_injection_order(sim: Simulator) -> None:
    sim.inject(Fault(status=502))
    sim.inject(Fault(status=504, session="sess1"))
    assert [get(sim).status_code for _ in range(3)] == [502, 504, 200]


def test_unknown_participant_and_path(sim: Simulator) -> None:
    response = get(sim, "nobody")
    assert response.status_code == 404
    assert response.json()["message"] == "Participant not found"
    assert requests.get(f"{sim.url}/v2/nothing", timeout=10).status_code == 404


def test_removed_participant_is_gone(sim: Simulator) -> None:
    sim.remove_participant("sess1", "part1")
    assert get(sim).status_code == 404
    with pytest.raises(KeyError):
        sim.remove_participant("sess1", "part1")


def test_session_level_stats(sim: Simulator) -> None:
    response = requests.get(
        f"{sim.url}/v2/sessions/sess1/stats", headers={"Authorization": token()}, timeout=10
    )
    assert response.status_code == 200
    assert set(response.json()["stats"][0]) == SAMPLE_FIELDS
    assert (
        requests.get(
            f"{sim.url}/v2/sessions/other/stats", headers={"Authorization": token()}, timeout=10
        ).status_code
        == 404
    )


def test_crafted_samples_are_served_as_is_when_due(sim: Simulator) -> None:
    samples = [
        {"time": "2024-05-01T12:00:00.000Z", "qualityScore": {"video": 4.5}},
        {"time": "2024-05-01T12:00:05.000Z", "qualityScore": {"video": 2.5}, "extra": "kept"},
        {"time": "garbage", "qualityScore": "n/a"},
    ]
    sim.add_participant("sess1", "crafted", samples=samples, envelope={"deviceInfo": None})
    body = get(sim, "crafted").json()
    assert body["deviceInfo"] is None
    assert body["stats"] == [samples[0], samples[2]]
    assert [u["time"] for u in body["resolutionUsage"]] == ["2024-05-01T12:00:00.000Z", "garbage"]
    sim.advance(5)
    assert get(sim, "crafted").json()["stats"] == samples


def test_admin_endpoints_drive_the_simulator(sim: Simulator) -> None:
    def admin(method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{sim.url}/_sim/{path}", json=body, timeout=10)

    added = admin(
        "POST",
        "participants",
        [{"session": "s2", "participant": "p", "scenario": "high-rtt", "name": "Bob"}],
    )
    assert added.status_code == 201
    assert admin("POST", "participants", {"session": "s2"}).status_code == 400
    assert (
        admin(
            "POST", "participants", {"session": "s", "participant": "p", "scenario": "x"}
        ).status_code
        == 400
    )
    assert admin("POST", "advance", {"seconds": 40}).json()["now"] == "2024-05-01T12:00:40.000Z"
    assert get(sim, "p", "s2").json()["stats"][-1]["averageVideoRtt"] >= 400
    assert admin("POST", "faults", {"status": 503, "participant": "p"}).status_code == 201
    assert admin("POST", "faults", {"nonsense": 1}).status_code == 400
    assert get(sim, "p", "s2").status_code == 503
    state = admin("GET", "state").json()
    assert state["participants"] == 2
    assert state["requests"] == {"200": 1, "503": 1}
    assert state["pending_faults"] == 0
    assert admin("DELETE", "participants/s2/p").status_code == 200
    assert admin("DELETE", "participants/s2/p").status_code == 404
    assert get(sim, "p", "s2").status_code == 404


def test_speed_releases_samples_faster_than_real_time() -> None:
    with Simulator(API_KEY, SECRET, sample_period=10.0, speed=100.0) as sim:
        sim.add_participant("s", "p")
        time.sleep(0.35)
        assert len(get(sim, "p", "s").json()["stats"]) >= 4


def test_many_concurrent_keep_alive_clients(sim: Simulator) -> None:
    for i in range(50):
        sim.add_participant("load", f"p{i}", scenario="packet-loss-spike")
    sim.advance(600)
    with requests.Session() as http:
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=32)
        http.mount("http://", adapter)
        headers = {"Authorization": token()}

        def fetch(i: int) -> int:
            url = f"{sim.url}/v2/sessions/load/participant/p{i % 50}/stats"
            response = http.get(url, headers=headers, timeout=10)
            assert len(response.json()["stats"]) == 61
            return response.status_code

        with ThreadPoolExecutor(32) as pool:
            assert set(pool.map(fetch, range(400))) == {200}


def series(name: str, n: int = 24) -> list[dict[str, Any]]:
    rng = random.Random(f"s/{name}")
    return [SCENARIOS[name].generate(k, rng) for k in range(n)]


def video(sample: dict[str, Any]) -> float:
    return float(sample["qualityScore"]["video"])


def test_scenarios_produce_what_they_advertise() -> None:
    healthy = series("healthy")
    assert all(4 <= video(s) <= 4.6 and 20 <= s["averageVideoRtt"] <= 80 for s in healthy)
    assert all(s["recvVideoPacketLost"] <= 1 for s in healthy)

    degraded = series("video-degradation")
    assert all(video(s) >= 4 for s in degraded[:3])
    assert all(2 <= video(s) < 3 for s in degraded[3:])

    spike = [s["recvVideoPacketLost"] for s in series("packet-loss-spike")]
    assert all(40 <= lost <= 80 for lost in spike[3:9])
    assert all(lost <= 1 for lost in spike[:3] + spike[9:])

    recovery = series("recovery")
    assert all(video(s) < 3 for s in recovery[:6])
    assert all(video(s) >= 4 for s in recovery[6:])

    rtt = series("high-rtt")
    assert all(s["averageVideoRtt"] <= 80 for s in rtt[:3])
    assert all(400 <= s["averageVideoRtt"] <= 700 for s in rtt[3:])
    assert all(400 <= s["averageAudioRtt"] <= 700 for s in rtt[3:])

    flapping = [video(s) >= 3 for s in series("flapping")]
    assert flapping[:8] == [True, True, False, False, True, True, False, False]


def test_populations_name_real_scenarios() -> None:
    demo = demo_population()
    assert len({p["session"] for p in demo}) == 2
    assert {p["scenario"] for p in demo} == set(SCENARIOS) - set(CAUSE_SCENARIOS)
    only = scenario_population("high-rtt", n=3)
    assert [p["scenario"] for p in only] == ["high-rtt"] * 3
    for member in demo + only:
        assert set(member) == {"session", "participant", "scenario", "name", "meeting_id"}
    with pytest.raises(ValueError):
        scenario_population("nope")


def test_serve_runs_until_interrupted() -> None:
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO);"
        "from watchdog.sim.simulator import serve;"
        f"sys.exit(serve(0, api_key={API_KEY!r}, secret={SECRET!r}, scenario='high-rtt',"
        " speed=1.0, sample_period=10.0))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        logged = ""
        while "participant: high-rtt-4" not in logged:
            line = proc.stderr.readline()
            assert line, f"serve exited early: {logged}"
            logged += line
        match = re.search(r"http://127\.0\.0\.1:\d+", logged)
        assert match is not None
        response = requests.get(
            f"{match.group()}/v2/sessions/sess-high-rtt/participant/high-rtt-1/stats",
            headers={"Authorization": token()},
            timeout=10,
        )
        assert response.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_serve_refuses_an_unknown_scenario() -> None:
    assert serve(0, api_key=API_KEY, secret=SECRET, scenario="nope", speed=1, sample_period=10) == 2
