"""Inhibition: what the rules add to the alert manager's once-a-second flush.

Records N firing alerts in a fresh SQLite state file: one meeting-level source per meeting
(``--sources``) and per-participant targets on the same metric for the rest, then times
the steady flush (everything already decided: the cost of every tick) and the pure
``plan()`` behind it (the least CPU time of 30 runs), without inhibition rules and with
the example config's, and at four times the size: the rules cost one pass over the
alerts (sources indexed by their ``equal`` values), so the time grows with the alerts,
never with sources x targets. Figures, never asserts.

Run: ``.venv/bin/python -m benchmarks.inhibition --alerts 2000 --sources 200``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import record_alerts
from watchdog.alerting.inhibition import rules_from
from watchdog.alerting.manager import AlertingConfig, AlertManager, Policy, plan
from watchdog.alerts import Alert, fingerprint, meeting_fingerprint
from watchdog.config.settings import InhibitRuleSettings
from watchdog.state.store import Store

RULES = rules_from(
    [
        InhibitRuleSettings(
            name="meeting-mutes-its-participants",
            source_matchers=["scope=meeting"],
            target_matchers=["scope=participant"],
            equal=["meeting_id", "metric"],
        ),
        InhibitRuleSettings(
            name="api-degraded-mutes-absent-stats",
            source_matchers=["alertname=videosdk-api-degraded"],
            target_matchers=['metric="seconds without stats"'],
        ),
    ]
)


def _alerts(count: int, sources: int, now: datetime) -> list[Alert]:
    out = []
    for index in range(count):
        meeting = f"meeting-{index % sources}"
        source = index < sources
        rule = "meeting-poor-video" if source else "poor-video"
        out.append(
            Alert(
                fingerprint=(
                    meeting_fingerprint(rule, meeting)
                    if source
                    else fingerprint(rule, "s", f"p{index}")
                ),
                rule=rule,
                status="firing",
                severity="warning",
                metric="qualityScore.video",
                op="<",
                threshold=3,
                value=2.1,
                session_id="s",
                participant_id="" if source else f"p{index}",
                starts_at=now - timedelta(minutes=1),
                fired_at=now,
                sample_time=now,
                meeting_id=meeting,
                participant_name=f"Participant {index}",
                labels={"alertname": rule, "severity": "warning"},
                scope="meeting" if source else "participant",
            )
        )
    return out


def _least_cpu(action: Callable[[], object], rounds: int = 30) -> float:
    """The least CPU time of ``rounds`` runs: on a shared machine the wall clock and even the
    median mostly measure the neighbours."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        action()
        times.append(time.process_time() - start)
    return min(times)


def _measure(tmp: str, count: int, sources: int, inhibit: bool) -> tuple[float, float, int]:
    """(steady flush, steady plan(), alerts held back) in seconds, on a fresh store."""
    store = Store(str(Path(tmp) / f"state-{count}-{inhibit}.db"))
    now = datetime.now(UTC)
    record_alerts(store, [(a, ()) for a in _alerts(count, sources, now)])
    config = AlertingConfig({"sink": Policy()}, inhibit_rules=RULES if inhibit else ())
    manager = AlertManager(store.alert_log, store.silences, config)
    with manager.poll_cycle():  # the first cycle: decides everything, queues the outbox
        pass
    flush = _least_cpu(manager.flush)
    snapshot = store.alert_log.alerting_snapshot(now)
    pure = _least_cpu(lambda: plan(snapshot, config, now))
    held = len(store.alert_log.inhibited())
    store.close()
    return flush, pure, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--sources", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not the new state files' warnings
    print("alerts  sources  inhibit_rules  held back  steady flush  plan() alone  (CPU)")
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 4):
            count, sources = args.alerts * scale, args.sources * scale
            for inhibit in (False, True):
                flush, pure, held = _measure(tmp, count, sources, inhibit)
                print(
                    f"{count:6d}  {sources:7d}  {'2' if inhibit else 'none':>13}  {held:9d}"
                    f"  {flush * 1000:9.1f} ms  {pure * 1000:9.1f} ms"
                )


if __name__ == "__main__":
    main()
