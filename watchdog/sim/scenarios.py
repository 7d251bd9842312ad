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


DEVICE_ONSET = 9  # a device limit shows against its earlier bitrate: 90 s of it at 10 s a sample


def _bad_video(rng: random.Random) -> dict[str, float]:
    return {"audio": _uniform(rng, 3.6, 4.2), "video": _uniform(rng, 2.0, 2.8)}


def _send_loss(k: int, rng: random.Random) -> Sample:
    """The participant's uplink: what they send is lost and jittery, what they receive is fine."""
    sample = _healthy(rng)
    if k >= ONSET:
        sample["sendAudioPacketLost"] = _whole(rng, 2, 6)
        sample["sendVideoPacketLost"] = _whole(rng, 8, 25)
        sample["averageAudioJitter"] = _uniform(rng, 8, 20)
        sample["averageVideoRtt"] = _uniform(rng, 120, 250)
        sample["averageSendVideoBitrate"] = _whole(rng, 300_000, 600_000)
        sample["qualityScore"] = _bad_video(rng)
    return sample


def _receive_loss(k: int, rng: random.Random) -> Sample:
    """Loss on what the participant receives, what they send is fine: their downlink, or a
    lossy sender upstream (which it is, only the rest of the meeting tells)."""
    sample = _healthy(rng)
    if k >= ONSET:
        sample["recvAudioPacketLost"] = _whole(rng, 2, 6)
        sample["recvVideoPacketLost"] = _whole(rng, 8, 25)
        sample["averageVideoJitter"] = _uniform(rng, 10, 25)
        sample["averageRecvVideoBitrate"] = _whole(rng, 200_000, 500_000)
        sample["qualityScore"] = _bad_video(rng)
    return sample


def _device_limit(k: int, rng: random.Random) -> Sample:
    """CPU or bandwidth adaptation: the send bitrate (and the resolution with the video
    score) drops on a clean network."""
    sample = _healthy(rng)
    if k >= DEVICE_ONSET:
        sample["averageSendVideoBitrate"] = _whole(rng, 90_000, 250_000)
        sample["qualityScore"] = _bad_video(rng)
    return sample


def _regional(k: int, rng: random.Random) -> Sample:
    """A platform or regional problem: long, uneven paths and some loss both ways."""
    sample = _healthy(rng)
    if k >= ONSET:
        sample["averageAudioRtt"] = _uniform(rng, 350, 600)
        sample["averageVideoRtt"] = _uniform(rng, 350, 600)
        sample["averageAudioJitter"] = _uniform(rng, 20, 40)
        sample["averageVideoJitter"] = _uniform(rng, 35, 60)
        sample["recvVideoPacketLost"] = _whole(rng, 3, 10)
        sample["sendVideoPacketLost"] = _whole(rng, 1, 5)
        sample["qualityScore"] = _bad_video(rng)
    return sample


def _noisy(k: int, rng: random.Random) -> Sample:
    """Poor video with nothing in the figures to explain it, over single-sample blips of
    loss or RTT: what a cause must call unknown."""
    sample = _healthy(rng)
    blip = rng.random()
    if blip < 0.08:
        sample[rng.choice(_LOSS_FIELDS)] = _whole(rng, 4, 12)
    elif blip < 0.14:
        sample["averageVideoRtt"] = _uniform(rng, 300, 450)
    if k >= ONSET:
        sample["qualityScore"] = _bad_video(rng)
    return sample


_LOSS_FIELDS = ("recvVideoPacketLost", "sendVideoPacketLost")


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
        Scenario(
            "send-loss",
            f"from sample {ONSET}: their send loss, jitter and RTT up, what they receive fine",
            _send_loss,
            settles=ONSET,
        ),
        Scenario(
            "receive-loss",
            f"from sample {ONSET}: loss on what they receive, what they send fine",
            _receive_loss,
            settles=ONSET,
        ),
        Scenario(
            "device-limit",
            f"from sample {DEVICE_ONSET}: send bitrate down to a fifth on a clean network",
            _device_limit,
            settles=DEVICE_ONSET,
        ),
        Scenario(
            "regional",
            f"from sample {ONSET}: RTT 350-600 ms, jitter and loss up both ways",
            _regional,
            settles=ONSET,
        ),
        Scenario(
            "noisy",
            f"blips of loss and RTT; from sample {ONSET} poor video nothing explains",
            _noisy,
            settles=None,
        ),
    )
}
# what a participant lives through in the likely-cause meetings (CAUSE_MEETINGS); the
# demo's population plays the others
CAUSE_SCENARIOS = ("send-loss", "receive-loss", "device-limit", "regional", "noisy")

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


@dataclass(frozen=True, slots=True)
class CauseMeeting:
    """A meeting whose alerts have a known likely cause: the first participant lives through
    ``first``, the others through ``rest``; ``meetings`` such meetings (in one region and
    network when more than one, beside one healthy meeting there)."""

    cause: str  # what the first participant's alerts should carry
    first: str
    rest: str = "healthy"
    rest_cause: str | None = None  # what the others' alerts should carry
    meetings: int = 1


CAUSE_MEETINGS: dict[str, CauseMeeting] = {
    "cause-uplink": CauseMeeting("uplink", "send-loss"),
    "cause-sender-uplink": CauseMeeting(
        "uplink", "send-loss", rest="receive-loss", rest_cause="sender-uplink"
    ),
    "cause-downlink": CauseMeeting("downlink", "receive-loss"),
    "cause-device": CauseMeeting("device", "device-limit"),
    "cause-platform": CauseMeeting(
        "platform", "regional", rest="regional", rest_cause="platform", meetings=4
    ),
    "cause-noise": CauseMeeting("unknown", "noisy"),
}
"""Simulated meetings for each likely cause (docs/causes.md; benchmarks/causes.py)."""

PLATFORM_PLACE = {
    "location": {"country": "Germany", "city": "Frankfurt", "region": "Hesse"},
    "network": {"asn": "AS3320", "org": "Deutsche Telekom"},
}


def cause_population(name: str, n: int = 4, tag: str = "") -> list[dict[str, Any]]:
    """The participants of cause meeting ``name`` (``n`` a meeting), each with the ``cause``
    its alerts should carry (None: it should not alert) and, for a platform case, an
    ``envelope`` putting every meeting, and one healthy meeting beside them, in one place."""
    case = CAUSE_MEETINGS[name]
    plans: list[CauseMeeting | None] = [case] * case.meetings
    if case.meetings > 1:
        plans.append(None)  # a healthy meeting in the same place
    people: list[dict[str, Any]] = []
    for number, plan in enumerate(plans):
        session = f"sess-{name}{tag}" + (f"-{number + 1}" if case.meetings > 1 else "")
        for i in range(n):
            scenario, cause = _role(plan, i)
            member: dict[str, Any] = {
                "session": session,
                "participant": f"{session.removeprefix('sess-')}-{i + 1}",
                "scenario": scenario,
                "name": _NAMES[(i + number) % len(_NAMES)],
                "meeting_id": meeting_id_for(session),
                "cause": cause,
            }
            if case.meetings > 1:
                member["envelope"] = PLATFORM_PLACE
            people.append(member)
    return people


def _role(plan: CauseMeeting | None, index: int) -> tuple[str, str | None]:
    """(scenario, expected cause) of a cause meeting's ``index``-th participant."""
    if plan is None:
        return "healthy", None
    if index == 0:
        return plan.first, plan.cause
    return plan.rest, plan.rest_cause


def scenario_population(name: str, n: int = 4) -> list[dict[str, Any]]:
    """``n`` participants of one call, all living through scenario ``name``; or, for a
    cause meeting's name (CAUSE_MEETINGS), its meetings (see cause_population)."""
    if name in CAUSE_MEETINGS:
        return cause_population(name, n)
    if name not in SCENARIOS:
        choices = ", ".join([*SCENARIOS, *CAUSE_MEETINGS])
        raise ValueError(f"unknown scenario {name!r}; choose from {choices}")
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
