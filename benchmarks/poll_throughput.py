"""Poll-path throughput: N watched participants against the simulator in another process.

Runs the daemon's real poll path (``watchdog.runtime.build.build``: pooled client, parsing,
rule engine over ``rules.example.yaml``, SQLite) on the poll interval's schedule and
prints per cycle and in steady state: cycle time, polls/s, whether a cycle overran the
interval, CPU per poll in this process, and peak RSS. Then, in the same run and the same
kind of thread pool, the bare floor: one pooled ``requests.Session`` GET and a JSON
decode of the same responses, and the daemon's CPU per poll over it. Each cycle also
prints the simulator's CPU (Linux: read from /proc), and the first cycle what share of
the machine's cores the daemon and the simulator took together: the simulator runs on
the same machine, so a machine with two cores has what it leaves for a second process.

The floor is measured before the cycles (in a process of its own) and after them, and the
ratio taken against their mean. The benchmark runs with ``MALLOC_ARENA_MAX=2`` (it
re-executes itself when the variable is unset), as the systemd unit runs the daemon.

Run: ``.venv/bin/python -m benchmarks.poll_throughput`` (defaults: the issue's target of
10,000 participants, 30 s interval, 50 ms latency, 120 samples of history).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml
from requests.adapters import HTTPAdapter

from benchmarks.simserver import participant_ids
from watchdog.config.settings import load_config
from watchdog.engine.rules import load_rules
from watchdog.runtime.build import Runtime, build

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789"
SAMPLE_PERIOD = 10.0  # the simulator's seconds between samples


def start_simulator(
    participants: int,
    history: int,
    latency: float,
    speed: float = 10.0,
    *,
    extra: Sequence[str] = (),
) -> tuple[subprocess.Popen[str], str]:
    """``benchmarks.simserver`` in a process of its own (``extra``: more of its options,
    e.g. ``--manual``); the process and the simulator's URL once it is ready."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.simserver",
            f"--participants={participants}",
            f"--history={history}",
            f"--latency={latency}",
            f"--speed={speed}",
            f"--secret={SECRET}",
            *extra,
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
    return proc, line.split()[1]


def write_config(
    workdir: Path, url: str, participants: int, concurrency: int, interval: float = 30.0
) -> Path:
    config = {
        "videosdk": {"base_url": url, "api_key": "bench-key", "secret_key": SECRET},
        "poll": {"interval": f"{interval:g}s", "concurrency": concurrency},
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


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) another process has used, from Linux's /proc; None
    where there is none."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    cycles: list[tuple[float, float, int]]  # wall s, CPU s, new samples
    overran: bool
    floors: dict[str, tuple[float, float]]  # decoder -> CPU s per poll, before and after
    peak_mb: float
    points: int  # the most window points any participant's memory holds for one metric
    # per cycle: (daemon, simulator) CPU seconds, what the machine's cores gave both
    busy: list[tuple[float, float | None]] = field(default_factory=list)

    def steady(self) -> tuple[float, float, float]:
        """Mean wall, CPU per poll and new samples per poll over the cycles after the first."""
        rows = self.cycles[1:] or self.cycles
        return (
            sum(r[0] for r in rows) / len(rows),
            sum(r[1] for r in rows) / len(rows),
            sum(r[2] for r in rows) / len(rows),
        )


def floor(
    url: str, token: str, participants: int, concurrency: int, decode: Callable[[bytes], Any]
) -> float:
    """CPU seconds per poll of the bare minimum: pooled GET + JSON decode, same pool size."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency, pool_block=True))
    urls = [
        f"{url}/v2/sessions/{s}/participant/{p}/stats" for s, p in participant_ids(participants)
    ]

    def get(target: str) -> int:
        response = session.get(target, headers={"Authorization": token}, timeout=30)
        return len(decode(response.content)["stats"])

    with ThreadPoolExecutor(concurrency) as pool:
        cpu0 = time.process_time()
        list(pool.map(get, urls))
        cpu = time.process_time() - cpu0
    session.close()
    return cpu / participants


def _floors(url: str, token: str, participants: int, concurrency: int) -> dict[str, float]:
    return {
        name: floor(url, token, participants, concurrency, decode)
        for name, decode in (("json", json.loads), ("orjson", orjson.loads))
    }


def _floors_elsewhere(
    url: str, token: str, participants: int, concurrency: int
) -> dict[str, float]:
    """``_floors`` in a process of its own: its threads and decoded answers would otherwise
    count in this process's peak RSS before the daemon's own."""
    code = (
        "import json, sys\n"
        "from benchmarks.poll_throughput import _floors\n"
        "print(json.dumps(_floors(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url, token, str(participants), str(concurrency)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=600,
    )
    floors: dict[str, float] = json.loads(done.stdout)
    return floors


def run(
    participants: int,
    history: int,
    latency: float,
    interval: float,
    cycles: int,
    concurrency: int,
    speed: float | None = None,
    report: Callable[[str], None] = print,
) -> Result:
    """Cycles start every ``interval`` (like the scheduler); the floor runs after them."""
    # ~3 new samples per participant per interval, as with a 10 s sampling period at 30 s
    speed = speed if speed is not None else 3 * SAMPLE_PERIOD / interval
    proc, url = start_simulator(participants, history, latency, speed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(
                str(write_config(Path(tmp), url, participants, concurrency, interval))
            )
            runtime = build(config)
            token = runtime.client.tokens.get()
            # the floor before the cycles and after them: this machine's speed drifts by a
            # quarter within minutes, so the ratio is taken against the mean of the two
            before = _floors_elsewhere(url, token, participants, concurrency)
            rows: list[tuple[float, float, int]] = []
            busy: list[tuple[float, float | None]] = []
            overran = False
            try:
                next_start = time.monotonic()
                for cycle in range(cycles):
                    time.sleep(max(0.0, next_start - time.monotonic()))
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    sim0 = process_cpu(proc.pid)
                    done = runtime.poller.cycle()
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                    sim1 = process_cpu(proc.pid)
                    sim = None if sim0 is None or sim1 is None else sim1 - sim0
                    busy.append((cpu, sim))
                    over = wall > interval
                    overran |= over  # the first cycle too: it must fit as well
                    rows.append((wall, cpu / max(done.polled, 1), done.samples))
                    report(
                        f"cycle {cycle + 1}: {wall:.2f}s{' OVERRAN' if over else ''}, "
                        f"{done.polled / wall:.0f} polls/s, "
                        f"{cpu / max(done.polled, 1) * 1000:.2f} ms CPU/poll, "
                        f"{done.samples} new samples, {done.failed} failed; CPU s: daemon "
                        f"{cpu:.1f}, simulator {'?' if sim is None else f'{sim:.1f}'}"
                    )
                    next_start += interval
                token = runtime.client.tokens.get()
                points = _longest_series(runtime)
            finally:
                runtime.close()
        after = _floors(url, token, participants, concurrency)
        floors = {name: (before[name], after[name]) for name in before}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Result(rows, overran, floors, peak_mb, points, busy)


def _longest_series(runtime: Runtime) -> int:
    """The most points any participant's rule memory holds for one metric (read from the
    poller's memory, as it stands: loading the stored copies would add to the peak RSS)."""
    participants = runtime.poller.participants
    longest = 0
    for target in runtime.watchlist.targets():
        memory = participants.memory((target.session, target.participant))
        if memory is not None:
            longest = max([longest, *(len(series) for series in memory.series.values())])
    return longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=120)
    parser.add_argument("--latency", type=float, default=0.05, help="simulator latency, seconds")
    parser.add_argument("--interval", type=float, default=30.0, help="poll interval, seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=4, help="the first reads whole histories")
    args = parser.parse_args()
    if "MALLOC_ARENA_MAX" not in os.environ:  # as the systemd unit runs the daemon
        environ = {**os.environ, "MALLOC_ARENA_MAX": "2"}
        os.execve(
            sys.executable,
            [sys.executable, "-m", "benchmarks.poll_throughput", *sys.argv[1:]],
            environ,
        )
    logging.basicConfig(level=logging.WARNING)
    print(
        f"MALLOC_ARENA_MAX={os.environ['MALLOC_ARENA_MAX']} "
        f"participants={args.participants} history={args.history} "
        f"latency={args.latency * 1000:.0f}ms interval={args.interval:g}s "
        f"concurrency={args.concurrency}"
    )
    result = run(
        args.participants,
        args.history,
        args.latency,
        args.interval,
        args.cycles,
        args.concurrency,
    )
    wall, cpu, samples = result.steady()
    first_wall, first_cpu, first_samples = result.cycles[0]
    print(
        f"RESULT first cycle (first sight: {first_samples / args.participants:.0f} samples "
        f"each): {first_wall:.2f}s of {args.interval:g}s, {first_cpu * 1000:.2f} ms CPU/poll"
    )
    daemon, simulator = result.busy[0]
    if simulator is not None:
        # one process: the daemon's Python runs on one core at a time; this says how much
        # of the whole machine the first cycle asked for, the simulator sharing it
        cores = os.cpu_count() or 1
        print(
            f"RESULT first cycle's work: daemon {daemon:.1f} CPU s + simulator "
            f"{simulator:.1f} CPU s = {(daemon + simulator) / (cores * args.interval):.0%} "
            f"of the {cores * args.interval:g} core-seconds {cores} cores give in "
            f"{args.interval:g}s"
        )
    print(
        f"RESULT steady-state: cycle {wall:.2f}s of {args.interval:g}s, "
        f"{args.participants / wall:.0f} polls/s, "
        f"any cycle overran: {'yes' if result.overran else 'no'}, "
        f"{samples / args.participants:.1f} new samples per poll"
    )
    for name, (first, last) in result.floors.items():
        per_poll = (first + last) / 2
        print(
            f"RESULT CPU per poll: daemon {cpu * 1000:.2f} ms, floor (GET + {name}) "
            f"{per_poll * 1000:.2f} ms (before the cycles {first * 1000:.2f}, after "
            f"{last * 1000:.2f}), ratio {cpu / per_poll:.2f}x"
        )
    print(
        f"RESULT peak RSS {result.peak_mb:.0f} MB; state per participant: at most "
        f"{result.points} points per metric (longest window {longest_window()}, plus the "
        f"engine's 16 recent values)"
    )


def longest_window() -> str:
    rules = load_rules([str(ROOT / "rules.example.yaml")])
    return f"{max(rule.window for rule in rules).total_seconds():g}s"


if __name__ == "__main__":
    main()
