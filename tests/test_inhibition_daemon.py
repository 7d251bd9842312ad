"""Inhibition end to end: the simulator, the daemon's own poll cycle (its alert-manager
thread running, as in the service), the webhook notifier and a receiver on 127.0.0.1; after
a start, after a reload, and with two instances sharing PostgreSQL.

A slow stats answer for one participant keeps the cycle open after the others' alerts are
recorded: the alert manager's intake flushes would send those alerts then, before the
meeting-level rule (run at the cycle's end) records the source that mutes them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from watchdog.cli.status import print_status
from watchdog.config.settings import Config, load_config
from watchdog.runtime.build import Runtime, build, make_notifiers, prepare
from watchdog.sim.simulator import Fault, Simulator

from .helpers import as_instance, video_series
from .sinks import Sink

MakeConfig = Callable[..., Config]

POOR_VIDEO = """\
rules:
  - name: poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: warning
"""
MEETING = """\
  - name: meeting-poor-video
    metric: qualityScore.video
    op: "<"
    threshold: 3
    severity: critical
    meeting: {fraction: 0.5, min_participants: 2}
"""
INHIBIT = {
    "inhibit_rules": [
        {
            "name": "meeting-mutes-its-participants",
            "source_matchers": ["scope=meeting"],
            "target_matchers": ["scope=participant"],
            "equal": ["meeting_id", "metric"],
        }
    ]
}
# room-1: a and b poor, c fine (2 of 3: the meeting alert fires); room-2: d alone poor
PEOPLE = [
    ("s-1", "a", "room-1"),
    ("s-1", "b", "room-1"),
    ("s-1", "c", "room-1"),
    ("s-2", "d", "room-2"),
    ("s-2", "e", "room-2"),
    ("s-2", "f", "room-2"),
]
POOR = {"a", "b", "d"}


def _people(sim: Simulator, poor_from: float = 10) -> None:
    for session, who, room in PEOPLE:
        scores = [(t, 2.0 if who in POOR and t >= poor_from else 4.0) for t in range(0, 70, 10)]
        sim.add_participant(session, who, name=who, meeting_id=room, samples=video_series(scores))


def _told(sink: Sink, start: int = 0) -> list[tuple[str, str, str]]:
    """(alertname, participant or meeting, status) of each alert the receiver was sent."""
    return sorted(
        (
            alert["labels"]["alertname"],
            alert["labels"].get("participant_id", alert["labels"]["meeting_id"]),
            alert["status"],
        )
        for body in sink.received[start:]
        for alert in body["alerts"]
    )


@contextmanager
def _daemon(config: Config, *, join: bool = False) -> Iterator[Runtime]:
    """The runtime as the service builds it, its alert-manager thread running."""
    runtime = build(config, join=join)
    runtime.manager.start()
    try:
        yield runtime
    finally:
        runtime.manager.stop()
        runtime.close()


def _cycle(runtime: Runtime) -> None:
    """A poll cycle, then what the alert-manager thread flushes right after it, delivered."""
    runtime.cycle()
    runtime.manager.flush()
    assert runtime.dispatcher.drain(10) == 0


def _config(config_for: MakeConfig, sink: Sink, rules: str, **extra: Any) -> Config:
    return config_for(
        [(s, p) for s, p, _ in PEOPLE],
        rules=rules,
        notifiers={"hook": {"type": "webhook", "url": sink.url}},
        alerting=INHIBIT,
        **extra,
    )


def test_after_a_start_a_meeting_alert_mutes_its_participants_until_it_resolves(
    sim: Simulator, config_for: MakeConfig
) -> None:
    _people(sim)
    sim.advance(20)
    sim.inject(Fault(delay=1.0, session="s-1", participant="c"))  # a long first cycle
    with Sink() as sink:
        config = _config(config_for, sink, POOR_VIDEO + MEETING)
        with _daemon(config) as runtime:
            _cycle(runtime)
            assert _told(sink) == [
                ("meeting-poor-video", "room-1", "firing"),
                ("poor-video", "d", "firing"),  # room-2's meeting is fine: nothing mutes d
            ]
            # evaluated and stored all the same, and shown as suppressed
            assert (
                REGISTRY.get_sample_value(
                    "watchdog_alerts_inhibited",
                    {"inhibit_rule": "meeting-mutes-its-participants", "rule": "poor-video"},
                )
                == 2.0
            )
            audit = runtime.store.silences.audit()
            assert sorted(e.action for e in audit) == ["inhibit", "inhibit"]
            assert all(
                e.detail.startswith("poor-video suppressed by meeting-poor-video ")
                and e.detail.endswith(" in meeting room-1")
                for e in audit
            )
            text, document = io.StringIO(), io.StringIO()
            print_status(config, text)
            print_status(config, document, as_json=True)
            assert "3 alerts firing (0 silenced, 2 inhibited)" in text.getvalue()
            suppressed = [line for line in text.getvalue().splitlines() if "SUPPRESSED" in line]
            assert len(suppressed) == 2
            assert all(
                "SUPPRESSED by meeting-poor-video (alert " in line
                and "inhibit rule meeting-mutes-its-participants) since" in line
                for line in suppressed
            )
            rows = {row["participantId"]: row for row in json.loads(document.getvalue())}
            for who in ("a", "b"):
                (firing,) = rows[who]["firing"]
                held = firing["inhibitedBy"]
                assert (held["alertname"], held["inhibitRule"]) == (
                    "meeting-poor-video",
                    "meeting-mutes-its-participants",
                )
            assert "inhibitedBy" not in rows["d"]["firing"][0]

            sent = len(sink.received)
            _cycle(runtime)  # nothing changed: nothing more, muted or not
            assert len(sink.received) == sent

            # b recovers: the meeting (1 of 3) resolves; a still has poor video
            sim.add_participant(
                "s-1", "b", name="b", meeting_id="room-1",
                samples=video_series([(0, 4), (10, 2), (20, 2), (30, 4)]),
            )  # fmt: skip
            sim.advance(10)
            _cycle(runtime)
            assert _told(sink, sent) == [
                ("meeting-poor-video", "room-1", "resolved"),
                ("poor-video", "a", "firing"),  # told now; b, never told, is not told of it
            ]
            (note,) = [
                alert["annotations"]["reason"]
                for body in sink.received[sent:]
                for alert in body["alerts"]
                if alert["labels"].get("participant_id") == "a"
            ]
            assert note.startswith("still firing; no longer inhibited by meeting-poor-video ")
            assert (
                REGISTRY.get_sample_value(
                    "watchdog_alerts_inhibited",
                    {"inhibit_rule": "meeting-mutes-its-participants", "rule": "poor-video"},
                )
                is None
            )
            actions = [e.action for e in runtime.store.silences.audit()]
            assert sorted(actions) == ["inhibit", "inhibit", "uninhibit", "uninhibit"]


def test_after_a_reload_the_new_sources_are_recorded_before_anything_goes_out(
    sim: Simulator, config_for: MakeConfig, tmp_path: Path
) -> None:
    _people(sim, poor_from=30)  # everyone fine until the reload
    sim.advance(20)
    with Sink() as sink:
        config = _config(config_for, sink, POOR_VIDEO)  # no meeting rule yet
        with _daemon(config) as runtime:
            _cycle(runtime)
            assert sink.received == []
            (tmp_path / "rules.yaml").write_text(POOR_VIDEO + MEETING)  # the reload adds it
            prepared = prepare(load_config(config.path), runtime.host)
            runtime.reconfigure(prepared, make_notifiers(prepared, runtime.host, runtime.store))
            sim.advance(10)  # a, b and d turn poor
            sim.inject(Fault(delay=1.0, session="s-1", participant="c"))
            _cycle(runtime)
            assert _told(sink) == [
                ("meeting-poor-video", "room-1", "firing"),
                ("poor-video", "d", "firing"),
            ]


# -- two instances on one PostgreSQL ---------------------------------------------------------


@contextmanager
def _member(config: Config, ident: str) -> Iterator[Runtime]:
    with _daemon(as_instance(config, ident), join=True) as runtime:
        yield runtime


def test_two_instances_send_one_stream_with_inhibition_applied(
    sim: Simulator, config_for: MakeConfig, postgres_url: str
) -> None:
    """Each instance polls its share (leases); the leader alone runs the meeting rules and
    the alert manager, so the receiver hears each alert once, muted or not."""
    _people(sim)
    sim.advance(20)
    with Sink() as sink:
        config = _config(config_for, sink, POOR_VIDEO + MEETING, state={"url": postgres_url})
        with _member(config, "one") as one, _member(config, "two") as two:
            assert one.cluster is not None
            assert two.cluster is not None
            one.cluster.tick()  # one leads and claims everyone ...
            two.cluster.tick()
            one.cluster.tick()  # ... then hands half back, and two claims it
            two.cluster.tick()
            assert one.cluster.leader
            assert not two.cluster.leader
            assert len(one.cluster.held) == len(two.cluster.held) == 3
            sim.inject(Fault(delay=1.0, session="s-1", participant="c"))
            _cycle(two)  # the follower polls its half first: its alerts wait in the log
            _cycle(one)  # the leader's cycle: its half, the meeting rule, then the flush
            _cycle(two)
            _cycle(one)
            assert _told(sink) == [
                ("meeting-poor-video", "room-1", "firing"),
                ("poor-video", "d", "firing"),
            ]
            assert len(sink.received) == 2  # one notification each, from one instance
            assert set(one.store.alert_log.inhibited()) == set(two.store.alert_log.inhibited())
            assert len(one.store.alert_log.inhibited()) == 2
