"""Storage of the per-participant minute summaries (issue 20): bytes per participant-hour on
SQLite and PostgreSQL, and the daily growth at 1,000 and 10,000 participants.

Participants follow the simulator's scenarios (a mix, random figures every sample: the
least compressible case) at one sample every 10 s; the metrics kept are those of
``rules.example.yaml`` (8 metrics); the rows go through the daemon's own code
(``Minutes.add`` and ``Minutes.insert``). Measured: the bytes the two summary tables
take on disk (SQLite: pages after VACUUM; PostgreSQL: ``pg_total_relation_size``,
indexes and TOAST included), over an empty store's.

Run: ``.venv/bin/python -m benchmarks.history_size [--participants 500 --hours 3]``
(PostgreSQL: a throwaway server from tests/pgserver.py, or ``--url``).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watchdog.engine.rules import load_rules
from watchdog.sim.scenarios import SCENARIOS
from watchdog.state.minutes import Minutes, Row
from watchdog.state.store import Store
from watchdog.videosdk.derived import derive
from watchdog.videosdk.stats import ParticipantInfo, Sample

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PERIOD = 10  # seconds between samples
BUDGET = 50e6  # bytes a day per 1,000 participants (issue 20)


def _flat(raw: dict[str, Any]) -> dict[str, float]:
    values = {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}
    for name, score in raw.get("qualityScore", {}).items():
        values[f"qualityScore.{name}"] = float(score)
    derive(values)
    values["resolution"] = 720.0
    return values


def rows(participants: int, hours: float, metrics: list[str]) -> list[Row]:
    """Every participant's summary rows over ``hours``, as the poller would write them."""
    minutes = Minutes(db=None, metrics=metrics)  # type: ignore[arg-type]  # no I/O here
    rng = random.Random(20)
    names = list(SCENARIOS)
    out: list[Row] = []
    for index in range(participants):
        scenario = SCENARIOS[names[index % len(names)]]
        key = (f"session-{index // 8:05d}", f"participant-{index:05d}")
        info = ParticipantInfo(*key, meeting_id=f"mtg-{index // 8:04d}-abcd", name=f"P {index}")
        for k in range(int(hours * 3600 / PERIOD)):
            moment = START + timedelta(seconds=k * PERIOD)
            out += minutes.add(key, info, [Sample(moment, _flat(scenario.generate(k, rng)))])
    return out + minutes.close_all()


def measure(url: str, written: list[Row]) -> int:
    """Bytes the summary tables take once ``written`` is in them."""
    store = Store(url)
    try:
        before = _size(store)
        for start in range(0, len(written), 500):
            with store.transaction() as cur:
                Minutes.insert(cur, written[start : start + 500])
        return _size(store) - before
    finally:
        store.close()


def _size(store: Store) -> int:
    db = store.database
    if db.kind == "sqlite":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)
    db.execute("VACUUM ANALYZE history_minutes")
    found = db.execute(
        "SELECT pg_total_relation_size('history_minutes')"
        " + pg_total_relation_size('history_participants')"
    ).fetchone()
    return int(found[0])


def report(engine: str, size: int, participants: int, hours: float) -> None:
    per_minute = size / (participants * hours * 60)
    day = per_minute * 60 * 24
    print(
        f"RESULT {engine}: {per_minute * 60:,.0f} bytes per participant-hour "
        f"({per_minute:.1f} per participant-minute); per day: "
        f"{day * 1000 / 1e6:.1f} MB at 1,000 participants, {day * 10_000 / 1e6:.0f} MB at "
        f"10,000 (budget {BUDGET / 1e6:.0f} MB per 1,000: "
        f"{'within' if day * 1000 <= BUDGET else 'OVER'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--url", help="a PostgreSQL database to use (default: a throwaway)")
    args = parser.parse_args()
    metrics = sorted({r.metric for r in load_rules([ROOT / "rules.example.yaml"]) if r.metric})
    written = rows(args.participants, args.hours, metrics)
    print(
        f"participants={args.participants} hours={args.hours} sample period={PERIOD}s "
        f"metrics={len(metrics)} ({', '.join(metrics)}) rows={len(written)}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        report(
            "SQLite", measure(str(Path(tmp) / "state.db"), written), args.participants, args.hours
        )
    server = None
    url = args.url
    if url is None:
        from tests.pgserver import PostgresServer  # noqa: PLC0415 - only without --url

        server = PostgresServer().start()
        url = server.create_database()
    try:
        report("PostgreSQL", measure(url, written), args.participants, args.hours)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
