"""Several instances on one PostgreSQL: 1, 2 and 3 daemons against a slow simulator.

Each instance is a real ``videosdk-watchdog run`` process; the state is a throwaway
PostgreSQL started from this machine's binaries (as tests do), or ``--url``.
Prints, per instance count: participants kept within the poll interval (polls per
second times the interval, at most all of them), polls per second, each instance's
leases and mean cycle time, PostgreSQL round trips per poll (every statement the
instances sent, BEGIN/COMMIT, heartbeats, leases and the alert manager included, over
the polls in the same window), and the coordination rows written per second: ``leases``
rows (claims, hand-backs) and ``instances`` rows (heartbeats, which renew every lease an
instance holds), from the server's own counters (``pg_stat_user_tables``).
Run: ``.venv/bin/python -m benchmarks.cluster_scale``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg
import yaml

from benchmarks.poll_throughput import SECRET, start_simulator
from benchmarks.simserver import participant_ids

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    wanted = {
        "polls": r'^watchdog_polls_total\{outcome="ok"\} (\S+)$',
        "trips": r"^watchdog_db_round_trips_total (\S+)$",
        "held": r"^watchdog_leases_held (\S+)$",
        "cycle_sum": r"^watchdog_cycle_seconds_sum (\S+)$",
        "cycle_count": r"^watchdog_cycle_seconds_count (\S+)$",
    }
    out = {}
    for name, pattern in wanted.items():
        match = re.search(pattern, text, re.MULTILINE)
        out[name] = float(match.group(1)) if match else 0.0
    return out


def row_writes(url: str) -> dict[str, float]:
    """Rows inserted, updated or deleted so far in the coordination tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables"
            " WHERE relname IN ('leases', 'instances')"
        ).fetchall()
    return {str(name): float(count) for name, count in rows}


def run(url: str, sim_url: str, instances: int, args: argparse.Namespace, work: Path) -> None:
    config = {
        "videosdk": {"base_url": sim_url, "api_key": "bench-key", "secret_key": SECRET},
        "poll": {"interval": f"{args.interval}s", "concurrency": args.concurrency},
        "watch": {
            "participants": [
                {"session": s, "participant": p} for s, p in participant_ids(args.participants)
            ]
        },
        "rules": [str(ROOT / "rules.example.yaml")],
        "notifiers": {"console": {"type": "console", "stream": "stderr"}},
        "state": {"url": url},
        "log": {"level": "warning"},
    }
    path = work / f"config-{instances}.yaml"
    path.write_text(yaml.safe_dump(config))
    ports = [free_port() for _ in range(instances)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "watchdog", "run", "--config", str(path)],
            env={**os.environ, "WATCHDOG_HTTP__LISTEN": f"127.0.0.1:{port}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        for port in ports
    ]
    try:
        time.sleep(args.warmup)
        before, written = [scrape(p) for p in ports], row_writes(url)
        start = time.monotonic()
        time.sleep(args.seconds)
        after = [scrape(p) for p in ports]
        elapsed = time.monotonic() - start
        written = {k: v - written.get(k, 0.0) for k, v in row_writes(url).items()}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    polls = sum(a["polls"] - b["polls"] for a, b in zip(after, before, strict=True))
    trips = sum(a["trips"] - b["trips"] for a, b in zip(after, before, strict=True))
    cycles = [
        (a["cycle_sum"] - b["cycle_sum"]) / (a["cycle_count"] - b["cycle_count"])
        for a, b in zip(after, before, strict=True)
        if a["cycle_count"] > b["cycle_count"]
    ]
    rate = polls / elapsed
    held = "/".join(f"{a['held']:.0f}" for a in after)
    print(
        f"instances={instances}: {min(rate * args.interval, args.participants):.0f} of "
        f"{args.participants} participants kept within {args.interval:g}s "
        f"({rate:.0f} polls/s; leases {held}; mean cycle "
        f"{sum(cycles) / len(cycles) if cycles else float('nan'):.2f}s), "
        f"{trips / polls if polls else float('nan'):.1f} DB round trips per poll; "
        f"rows written/s: leases {written.get('leases', 0.0) / elapsed:.1f}, "
        f"instances {written.get('instances', 0.0) / elapsed:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=600)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.1, help="simulator latency, seconds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=30.0, help="past first sight")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--url", help="an empty PostgreSQL database (default: a throwaway one)")
    args = parser.parse_args()
    print(
        f"participants={args.participants} latency={args.latency * 1000:.0f}ms "
        f"interval={args.interval:g}s concurrency={args.concurrency} per instance"
    )
    sim, sim_url = start_simulator(args.participants, args.history, args.latency)
    server = None
    try:
        if args.url is None:
            sys.path.insert(0, str(ROOT))
            from tests.pgserver import PostgresServer  # noqa: PLC0415 - only without --url

            server = PostgresServer().start()
        with tempfile.TemporaryDirectory() as tmp:
            for instances in (1, 2, 3):
                url = args.url or (server.create_database() if server else "")
                run(url, sim_url, instances, args, Path(tmp))
    finally:
        if server is not None:
            server.stop()
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
