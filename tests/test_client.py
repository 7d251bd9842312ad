"""The VideoSDK client against the simulator: tokens, retries and every injected fault."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta

import jwt
import pytest
from pydantic import SecretStr

from watchdog.config.settings import VideoSDKSettings
from watchdog.obs.telemetry import API_RETRIES, SAMPLE_ERRORS
from watchdog.sim.simulator import Fault, Simulator
from watchdog.testing import HttpReceiver, Received, Reply
from watchdog.videosdk.client import (
    AuthenticationError,
    BadResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
    VideoSDKClient,
)
from watchdog.videosdk.stats import StatsShapeError, parse_stats
from watchdog.videosdk.tokens import TokenSource, mint_token

from .conftest import API_KEY, SECRET


def settings(sim: Simulator, **kw: object) -> VideoSDKSettings:
    values: dict[str, object] = {
        "base_url": sim.url,
        "api_key": API_KEY,
        "secret_key": SECRET,
        "retries": 2,
        "backoff": 0.01,
        "read_timeout": 1.0,
    }
    values.update(kw)
    return VideoSDKSettings.model_validate(values)


@pytest.fixture
def client(sim: Simulator) -> VideoSDKClient:
    sim.add_participant("s1", "p1", scenario="healthy", name="Alice", meeting_id="m-1")
    sim.advance(30)
    return VideoSDKClient(settings(sim))


def test_minted_token_claims() -> None:
    token = mint_token(API_KEY, SecretStr(SECRET), timedelta(minutes=10), now=1_700_000_000.7)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "apikey": API_KEY,
        "permissions": ["allow_join"],
        "version": 2,
        "roles": ["crawler"],
        "iat": 1_700_000_000,
        "exp": 1_700_000_600,
    }


def test_token_is_reused_then_refreshed_before_expiry() -> None:
    now = [1_000_000.0]
    source = TokenSource(
        VideoSDKSettings(
            api_key=API_KEY, secret_key=SecretStr(SECRET), token_ttl=timedelta(minutes=10)
        ),
        clock=lambda: now[0],
    )
    first = source.get()
    now[0] += 400
    assert source.get() == first
    now[0] += 90  # 490 s of 600: inside the last 20 %
    second = source.get()
    assert second != first
    claims = jwt.decode(second, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["iat"] == 1_000_490
    assert repr(source) == f"TokenSource(minted, apikey={API_KEY})"


def test_fetches_documented_shape(client: VideoSDKClient, sim: Simulator) -> None:
    raw = client.participant_stats_at("s1", "p1")[0]
    stats = parse_stats(raw, "s1", "p1")
    assert stats.info.name == "Alice"
    assert stats.info.meeting_id == "m-1"
    assert len(stats.samples) == 4
    assert sim.requests[-1][2] == 200


def test_401_mints_a_new_token_once(client: VideoSDKClient, sim: Simulator) -> None:
    sim.inject(Fault(status=401, count=1))
    assert client.participant_stats_at("s1", "p1")[0]["participantId"] == "p1"
    assert [r[2] for r in sim.requests[-2:]] == [401, 200]
    sim.inject(Fault(status=401, count=2))
    with pytest.raises(AuthenticationError):
        client.participant_stats_at("s1", "p1")[0]


def test_ready_made_token_is_used_as_is(sim: Simulator) -> None:
    token = mint_token(API_KEY, SecretStr(SECRET), timedelta(days=30))
    sim.add_participant("s1", "p1")
    static = VideoSDKClient(settings(sim, api_key=None, secret_key=None, token=token))
    assert static.participant_stats_at("s1", "p1")[0]["sessionId"] == "s1"
    sim.inject(Fault(status=401, count=1))
    with pytest.raises(AuthenticationError):  # a static token cannot be re-minted
        static.participant_stats_at("s1", "p1")[0]
    assert token not in repr(static)


def test_wrong_secret_and_missing_role(sim: Simulator) -> None:
    sim.add_participant("s1", "p1")
    with pytest.raises(AuthenticationError):
        VideoSDKClient(
            settings(sim, secret_key="wrong-secret-of-a-proper-length-123456")
        ).participant_stats_at("s1", "p1")[0]
    no_role = jwt.encode(
        {"apikey": API_KEY, "version": 2, "iat": int(time.time()), "exp": int(time.time()) + 60},
        SECRET,
        algorithm="HS256",
    )
    client = VideoSDKClient(settings(sim, api_key=None, secret_key=None, token=no_role))
    with pytest.raises(PermissionDeniedError) as caught:
        client.participant_stats_at("s1", "p1")[0]
    assert caught.value.status == 403
    assert "CRAWLER" in str(caught.value)


def test_unknown_participant_is_404(client: VideoSDKClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.participant_stats_at("s1", "nobody")[0]
    assert caught.value.status == 404


def test_5xx_is_retried_with_backoff(client: VideoSDKClient, sim: Simulator) -> None:
    before = API_RETRIES.labels("http_503")._value.get()
    sim.inject(Fault(status=503, count=2))
    assert client.participant_stats_at("s1", "p1")[0]["participantId"] == "p1"
    assert [r[2] for r in sim.requests[-3:]] == [503, 503, 200]
    assert API_RETRIES.labels("http_503")._value.get() - before == 2


def test_persistent_5xx_becomes_server_error(client: VideoSDKClient, sim: Simulator) -> None:
    sim.inject(Fault(status=500, count=3))
    with pytest.raises(ServerError) as caught:
        client.participant_stats_at("s1", "p1")[0]
    assert caught.value.status == 500


def test_429_honours_retry_after(client: VideoSDKClient, sim: Simulator) -> None:
    sim.inject(Fault(status=429, retry_after=1, count=1))
    start = time.monotonic()
    assert client.participant_stats_at("s1", "p1")[0]["participantId"] == "p1"
    assert time.monotonic() - start >= 0.9
    sim.inject(Fault(status=429, retry_after=0, count=3))
    with pytest.raises(RateLimitedError):
        client.participant_stats_at("s1", "p1")[0]


def test_slow_response_times_out_and_is_retried(sim: Simulator) -> None:
    sim.add_participant("s1", "p1")
    client = VideoSDKClient(settings(sim, read_timeout=0.3, retries=1))
    sim.inject(Fault(delay=1.0, count=1))
    assert client.participant_stats_at("s1", "p1")[0]["participantId"] == "p1"
    sim.inject(Fault(delay=1.0, count=2))
    with pytest.raises(TransportError):
        client.participant_stats_at("s1", "p1")[0]


def test_connection_refused_is_a_transport_error(sim: Simulator) -> None:
    client = VideoSDKClient(settings(sim, base_url="http://127.0.0.1:9", retries=1))
    with pytest.raises(TransportError):
        client.participant_stats_at("s1", "p1")[0]


def test_malformed_json(client: VideoSDKClient, sim: Simulator) -> None:
    sim.inject(Fault(malformed=True, count=1))
    with pytest.raises(BadResponseError, match="not valid JSON"):
        client.participant_stats_at("s1", "p1")[0]


def test_huge_body_is_refused(sim: Simulator) -> None:
    sim.add_participant("s1", "p1")
    client = VideoSDKClient(settings(sim, max_response_bytes=1_000_000))
    sim.inject(Fault(huge_bytes=5_000_000, count=1))
    with pytest.raises(BadResponseError, match="max_response_bytes"):
        client.participant_stats_at("s1", "p1")[0]
    assert client.participant_stats_at("s1", "p1")[0]["participantId"] == "p1"  # pool still healthy


def _sample_errors() -> float:
    return sum(
        s.value for m in SAMPLE_ERRORS.collect() for s in m.samples if s.name.endswith("_total")
    )


def test_schema_violation_is_logged_and_counted_not_fatal(
    client: VideoSDKClient, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim.inject(Fault(schema=True, count=1))
    raw = client.participant_stats_at("s1", "p1")[0]
    before = _sample_errors()
    # an unusable response as a whole raises StatsShapeError: also counted
    with caplog.at_level(logging.WARNING), contextlib.suppress(StatsShapeError):
        parse_stats(raw, "s1", "p1")
    assert _sample_errors() > before
    assert parse_stats(client.participant_stats_at("s1", "p1")[0], "s1", "p1").samples


def test_secrets_absent_from_errors_and_repr(client: VideoSDKClient, sim: Simulator) -> None:
    token = client.tokens.get()
    assert SECRET not in repr(client)
    assert token not in repr(client)
    sim.inject(Fault(status=401, count=2))
    with pytest.raises(AuthenticationError) as caught:
        client.participant_stats_at("s1", "p1")[0]
    assert SECRET not in str(caught.value)
    assert token not in str(caught.value)


def test_a_poll_answered_with_a_redirect_follows_it() -> None:
    """Polls go straight through the session's adapter; a redirect is still followed (on
    the same host, with the token), as requests does."""
    stats = {"stats": [], "participantId": "p1", "sessionId": "s1"}

    def answer(request: Received) -> Reply:
        if request.path.startswith("/v2/"):
            return Reply(307, headers={"Location": "/moved" + request.path})
        return Reply(200, stats)

    with HttpReceiver(answer) as receiver:
        values = {"base_url": receiver.url, "api_key": API_KEY, "secret_key": SECRET}
        client = VideoSDKClient(VideoSDKSettings.model_validate(values))
        assert client.participant_stats_at("s1", "p1")[0] == stats
        client.close()
        paths = [r.path for r in receiver.requests]
        assert paths == [
            "/v2/sessions/s1/participant/p1/stats",
            "/moved/v2/sessions/s1/participant/p1/stats",
        ]
        assert all(r.headers.get("authorization") for r in receiver.requests)


def test_polls_reuse_one_pool_which_closes_with_the_client(
    client: VideoSDKClient, sim: Simulator
) -> None:
    adapter = client._adapter
    client.participant_stats_at("s1", "p1")
    client.participant_stats_at("s1", "p1")
    (pool,) = adapter._pools.values()
    assert pool.num_connections == 1  # the second poll reused the first one's connection
    assert sim.requests[-1][2] == 200
    client.close()
    assert pool.pool is None
    assert adapter._pools == {}
