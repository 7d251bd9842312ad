"""What the service adds on top of polling: a /metrics scrape and a reload, at scale.

Both touch every alert state: a scrape counts active alerts by rule and state
(plus the outbox's oldest row), and a reload that removes a rule closes that
rule's firing alerts in the state database. Prints milliseconds for each with
N participants, each with every rule of ``rules.example.yaml`` active (half
firing). Run: ``.venv/bin/python -m benchmarks.service_overhead``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from watchdog.alerting.carryover import carry_over, closed_alerts
from watchdog.engine.evaluate import AlertState
from watchdog.engine.rules import RuleSet, load_rules
from watchdog.runtime.gauges import LiveCollector
from watchdog.state.rows import Key
from watchdog.state.store import Store

ROOT = Path(__file__).resolve().parent.parent


def states_for(rules: RuleSet, participants: int) -> dict[Key, dict[str, AlertState]]:
    start = datetime(2026, 11, 24, tzinfo=UTC)
    out: dict[Key, dict[str, AlertState]] = {}
    for n in range(participants):
        key = (f"session-{n // 10}", f"participant-{n}")
        out[key] = {
            rule.name: (
                AlertState("firing", start, 1.0, fired_at=start + timedelta(seconds=30))
                if i % 2 == 0
                else AlertState("pending", start, 1.0)
            )
            for i, rule in enumerate(rules)
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rules = load_rules([ROOT / "rules.example.yaml"])
    states = states_for(rules, args.participants)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "state.db"))
        registry = CollectorRegistry()
        registry.register(LiveCollector(lambda: states, store.outbox.stats))
        scrapes = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            body = generate_latest(registry)
            scrapes.append(time.perf_counter() - began)
        # a reload that drops the first rule: close its firing alerts, one transaction each
        kept = RuleSet(rules=rules.rules[1:], sources=rules.sources)
        began = time.perf_counter()
        carried = carry_over(rules, kept, states, datetime.now(UTC))
        for key, result in carried.items():
            store.polls.commit_poll(
                key, None, result.states, result.dropped, alerts=closed_alerts(result)
            )
        reload_seconds = time.perf_counter() - began
        closed = sum(a.alert.status == "resolved" for a in store.alert_log.active_alerts())
        store.close()
    active = sum(len(s) for s in states.values())
    print(
        f"{args.participants} participants x {len(rules)} rules = {active} active alerts "
        f"({len(body)} bytes of /metrics)"
    )
    print(f"/metrics scrape: median {statistics.median(scrapes) * 1000:.1f} ms")
    print(
        f"reload removing one rule: {reload_seconds * 1000:.0f} ms "
        f"({closed} firing alerts closed and queued)"
    )


if __name__ == "__main__":
    main()
