"""Poll-path throughput: N watched participants against the simulator in another process.

Prints polls/s, CPU seconds per poll (this process only: client, parsing, engine,
SQLite) and peak RSS. Run: ``.venv/bin/python benchmarks/poll_throughput.py``.
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.simserver import participant_ids
from watchdog.daemon import build
from watchdog.settings import load_config

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789"


def start_simulator(
    participants: int, history: int, latency: float
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.simserver",
            f"--participants={participants}",
            f"--history={history}",
            f"--latency={latency}",
            f"--secret={SECRET}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def write_config(workdir: Path, url: str, participants: int, concurrency: int) -> Path:
    config = {
        "videosdk": {"base_url": url, "api_key": "bench-key", "secret_key": SECRET},
        "poll": {"interval": "30s", "concurrency": concurrency},
        "watch": {
            "participants": [
                {"session": s, "participant": p} for s, p in participant_ids(participants)
            ]
        },
        "rules": [str(ROOT / "rules.example.yaml")],
        "notifiers": {"console": {"type": "console", "stream": "stderr"}},
        "state": {"url": str(workdir / "state.db")},
        "log": {"level": "warning"},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--history", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.0, help="simulator latency, seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    proc, url = start_simulator(args.participants, args.history, args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(
                str(write_config(Path(tmp), url, args.participants, args.concurrency))
            )
            runtime = build(config)
            try:
                print(
                    f"participants={args.participants} history={args.history} "
                    f"latency={args.latency * 1000:.0f}ms concurrency={args.concurrency}"
                )
                walls, cpus, samples = [], [], []
                for cycle in range(args.cycles):
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    report = runtime.poller.cycle()
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                    walls.append(wall)
                    cpus.append(cpu)
                    samples.append(report.samples)
                    print(
                        f"cycle {cycle + 1}: {wall:.2f}s wall, {report.polled / wall:.0f} polls/s, "
                        f"{cpu / report.polled * 1000:.2f} ms CPU/poll, "
                        f"{report.samples} new samples, {report.failed} failed"
                    )
                    time.sleep(1.0)  # let the simulator release new samples
                steady = slice(1, None) if args.cycles > 1 else slice(None)
                wall = sum(walls[steady]) / len(walls[steady])
                cpu = sum(cpus[steady]) / len(cpus[steady])
                peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"RESULT steady-state: {args.participants / wall:.0f} polls/s, "
                    f"{cpu / args.participants * 1000:.2f} ms CPU per poll, "
                    f"cycle {wall:.2f}s, peak RSS {peak_mb:.0f} MB"
                )
            finally:
                runtime.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
