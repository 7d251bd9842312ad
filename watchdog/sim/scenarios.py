"""Named call-quality scenarios for the simulator.

A scenario turns sample index ``k`` and the participant's own seeded
``random.Random`` into one stats sample (every documented field, no
``time``: the simulator stamps it). The simulator calls it with k = 0, 1,
2, ... in order, so a (session, participant) pair always replays the same
series: tests and demos are reproducible, and each participant still looks
different from its neighbours.

Values follow what VideoSDK's docs suggest: RTT and jitter in ms, bitrates
in bit/s, packet loss as a count per sample, quality scores on a 1-5 scale.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Sample = dict[str, Any]
Generator = Callable[[int, random.Random], Sample]

ONSET = 3  # samples of good quality before trouble starts: alerts show up quickly in a demo
BURST = 6  # samples a packet-loss burst (or the bad start of "recovery") lasts


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    generate: Generator
    length: int | None = None  # None: the participant stays in the call for ever
    settles: int | None = 0  # the sample from which it no longer changes; None: never


def _uniform(rng: random.Random, low: float, high: float) -> float:
    return round(low + rng.random() * (high - low), 2)


def _whole(rng: random.Random, low: int, high: int) -> int:
    return int(low + rng.random() * (high - low))


def _rarely(rng: random.Random, chance: float) -> int:
    return 1 if rng.random() < chance else 0


def _healthy(rng: random.Random) -> Sample:
    """A good call on a decent connection: the baseline every scenario bends."""
    return {
        "recvAudioPacketLost": _rarely(rng, 0.1),
        "recvVideoPacketLost": _rarely(rng, 0.3),
        "sendAudioPacketLost": _rarely(rng, 0.05),
        "sendVideoPacketLost": _rarely(rng, 0.2),
        "averageAudioRtt": _uniform(rng, 20, 80),
        "averageVideoRtt": _uniform(rng, 20, 80),
        "averageAudioJitter": _uniform(rng, 0, 4),
        "averageVideoJitter": _uniform(rng, 1, 8),
        "averageSendAudioBitrate": _whole(rng, 40_000, 64_000),
        "averageSendVideoBitrate": _whole(rng, 600_000, 1_200_000),
        "averageRecvAudioBitrate": _whole(rng, 40_000, 64_000),
        "averageRecvVideoBitrate": _whole(rng, 800_000, 1_500_000),
        "qualityScore": {"audio": _uniform(rng, 4.2, 4.45), "video": _uniform(rng, 4.0, 4.6)},
    }


def _poor_video(rng: random.Random) -> Sample:
    """Congested downlink: video loses bitrate and frames, audio hangs on."""
    sample = _healthy(rng)
    sample["recvVideoPacketLost"] = _whole(rng, 5, 15)
    sample["averageVideoJitter"] = _uniform(rng, 15, 40)
    sample["averageRecvVideoBitrate"] = _whole(rng, 150_000, 400_000)
    sample["qualityScore"] = {"audio": _uniform(rng, 3.9, 4.3), "video": _uniform(rng, 2.0, 2.8)}
    return sample


def _lossy(rng: random.Random) -> Sample:
    """A burst of loss: scores sag but stay above 3, so loss rules (not video ones) fire."""
    sample = _healthy(rng)
    sample["recvAudioPacketLost"] = _whole(rng, 10, 30)
    sample["recvVideoPacketLost"] = _whole(rng, 40, 80)
    sample["averageVideoJitter"] = _uniform(rng, 10, 25)
    sample["qualityScore"] = {"audio": _uniform(rng, 3.5, 3.9), "video": _uniform(rng, 3.1, 3.6)}
    return sample


def _far_away(rng: random.Random) -> Sample:
    """A long (satellite, VPN, other continent) path: high RTT, scores still above 3."""
    sample = _healthy(rng)
    sample["averageAudioRtt"] = _uniform(rng, 400, 700)
    sample["averageVideoRtt"] = _uniform(rng, 400, 700)
    sample["averageAudioJitter"] = _uniform(rng, 10, 30)
    sample["averageVideoJitter"] = _uniform(rng, 20, 50)
    sample["qualityScore"] = {"audio": _uniform(rng, 3.4, 3.9), "video": _uniform(rng, 3.2, 3.8)}
    return sample


def _video_degradation(k: int, rng: random.Random) -> Sample:
    return _healthy(rng) if k < ONSET else _poor_video(rng)


def _packet_loss_spike(k: int, rng: random.Random) -> Sample:
    return _lossy(rng) if ONSET <= k < ONSET + BURST else _healthy(rng)


def _recovery(k: int, rng: random.Random) -> Sample:
    return _poor_video(rng) if k < BURST else _healthy(rng)


def _high_rtt(k: int, rng: random.Random) -> Sample:
    return _healthy(rng) if k < ONSET else _far_away(rng)


def _flapping(k: int, rng: random.Random) -> Sample:
    """Two samples above 3, two below, for ever: the case hysteresis and `for:` exist for."""
    sample = _healthy(rng)
    bad = (k // 2) % 2 == 1
    video = _uniform(rng, 2.2, 2.8) if bad else _uniform(rng, 3.4, 4.2)
    sample["qualityScore"] = {"audio": sample["qualityScore"]["audio"], "video": video}
    return sample


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("healthy", "good audio and video throughout", lambda _k, rng: _healthy(rng)),
        Scenario(
            "video-degradation",
            f"healthy for {ONSET} samples, then video quality below 3 for good",
            _video_degradation,
            settles=ONSET,
        ),
        Scenario(
            "packet-loss-spike",
            f"healthy, then {BURST} samples of heavy packet loss from sample {ONSET}, then healthy",
            _packet_loss_spike,
            settles=ONSET + BURST,
        ),
        Scenario(
            "recovery",
            f"video quality below 3 for {BURST} samples, then healthy",
            _recovery,
            settles=BURST,
        ),
        Scenario(
            "high-rtt",
            f"round-trip times of 400-700 ms from sample {ONSET}",
            _high_rtt,
            settles=ONSET,
        ),
        Scenario("flapping", "video quality crosses 3 every 2 samples", _flapping, settles=None),
    )
}

_NAMES = (
    "Alice Martin", "Bilal Khan", "Chen Wei", "Dana Cohen", "Emeka Obi", "Farah Haddad",
    "Grace Kim", "Hugo Silva", "Ines Moreau", "Jonas Berg", "Kavya Rao", "Lena Novak",
)  # fmt: skip


def meeting_id_for(session: str) -> str:
    """A stable, VideoSDK-looking meeting id ("abcd-efgh-ijkl") for a session id."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    digest = hashlib.sha256(session.encode()).digest()
    chars = "".join(alphabet[byte % len(alphabet)] for byte in digest[:12])
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def demo_population() -> list[dict[str, Any]]:
    """Two calls, one healthy-ish and one troubled, so a demo shows every kind of alert early."""
    standup, support = "sess-daily-standup", "sess-customer-support"
    cast = [
        (standup, "alice", "healthy"),
        (standup, "bilal", "video-degradation"),
        (standup, "chen", "flapping"),
        (support, "dana", "packet-loss-spike"),
        (support, "emeka", "high-rtt"),
        (support, "farah", "recovery"),
    ]
    return [
        {
            "session": session,
            "participant": participant,
            "scenario": scenario,
            "name": name,
            "meeting_id": meeting_id_for(session),
        }
        for (session, participant, scenario), name in zip(cast, _NAMES, strict=False)
    ]


def watch_entries(population: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A population as a config's ``watch.participants`` (session and participant each)."""
    return [{"session": p["session"], "participant": p["participant"]} for p in population]


def scenario_population(name: str, n: int = 4) -> list[dict[str, Any]]:
    """``n`` participants of one call, all living through scenario ``name``."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    session = f"sess-{name}"
    return [
        {
            "session": session,
            "participant": f"{name}-{i + 1}",
            "scenario": name,
            "name": _NAMES[i % len(_NAMES)],
            "meeting_id": meeting_id_for(session),
        }
        for i in range(n)
    ]
