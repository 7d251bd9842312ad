"""Gauges computed when Prometheus scrapes, from the daemon's live state.

Alerts currently pending or firing, and the age of the oldest undelivered
notification, are facts about *now*: reading them at scrape time (the
``collect()`` protocol) means they can never go stale or be left behind by a
rule that was removed on reload.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from watchdog.engine.evaluate import AlertState
from watchdog.state.faults import StorageFault
from watchdog.state.rows import Key

log = logging.getLogger(__name__)

States = Callable[[], Mapping[Key, Mapping[str, AlertState]]]
OutboxStats = Callable[[], tuple[int, datetime | None]]


class LiveCollector(Collector):
    def __init__(self, states: States, outbox: OutboxStats) -> None:
        self._states = states
        self._outbox = outbox

    def collect(self) -> Iterator[GaugeMetricFamily]:
        alerts = GaugeMetricFamily(
            "watchdog_alerts",
            "Alerts currently active, by rule and state (pending or firing)",
            labels=["rule", "state"],
        )
        counts: Counter[tuple[str, str]] = Counter()
        for rules in list(self._states().values()):
            for rule, state in list(rules.items()):
                counts[(rule, state.phase)] += 1
        for (rule, phase), count in sorted(counts.items()):
            alerts.add_metric([rule, phase], count)
        yield alerts
        oldest = GaugeMetricFamily(
            "watchdog_outbox_oldest_age_seconds",
            "Age of the oldest notification waiting in the outbox (0 when empty)",
        )
        try:
            _, created = self._outbox()
        except StorageFault:  # counted and logged once by the store
            return
        except Exception:  # a scrape must never take the daemon down, nor hide other metrics
            log.exception("cannot read the outbox for /metrics")
            return
        age = 0.0 if created is None else (datetime.now(UTC) - created).total_seconds()
        oldest.add_metric([], max(age, 0.0))
        yield oldest
