"""``videosdk-watchdog demo``: the whole path on one machine, no VideoSDK account needed.

Starts the bundled simulator with a small population of calls in trouble,
writes a throwaway config that watches them with a console notifier, and
runs the real daemon against it until Ctrl-C. Once every scenario has
reached its last change and the rules have had their ``for:`` to answer it,
the demo says so: nothing new is coming, what still fires stays firing.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
from collections.abc import Iterable
from datetime import timedelta
from importlib.resources import files
from pathlib import Path

import yaml

from watchdog.config.settings import load_config
from watchdog.engine.rules import Rule, load_rules
from watchdog.obs.logs import setup_logging
from watchdog.runtime.service import run
from watchdog.sim.scenarios import SCENARIOS, demo_population, watch_entries
from watchdog.sim.simulator import Simulator

log = logging.getLogger(__name__)

DEMO_API_KEY = "demo-api-key"
SAMPLE_PERIOD = 10.0  # sample seconds between a participant's stats samples
POLL_INTERVAL = 1.0  # real seconds between the demo daemon's polls
PLAYED_OUT = (
    "demo: every scenario has played out; nothing new will fire or resolve. What still fires "
    "stays firing, as a call still in trouble would, and the flapping participant keeps "
    "flapping without paging (its rule's for: holds it). Ctrl-C to stop."
)


def played_out_after(
    population: Iterable[dict[str, str]], rules: Iterable[Rule], speed: float
) -> float:
    """Real seconds from the simulator's start until the last scenario change has been
    answered: its sample, the longest ``for:``, a sample to spare, and three polls."""
    settles = [SCENARIOS[p["scenario"]].settles for p in population]
    last = max((s for s in settles if s is not None), default=0)
    longest = max((rule.for_ for rule in rules), default=timedelta(0))
    sample_seconds = (last + 1) * SAMPLE_PERIOD + longest.total_seconds()
    return sample_seconds / speed + 3 * POLL_INTERVAL


def demo_config(sim_url: str, secret: str, workdir: Path, population: list[dict[str, str]]) -> Path:
    rules = workdir / "rules.yaml"
    rules.write_text(files("watchdog.sim").joinpath("demo_rules.yaml").read_text(encoding="utf-8"))
    config = {
        "videosdk": {"base_url": sim_url, "api_key": DEMO_API_KEY, "secret_key": secret},
        "poll": {"interval": f"{POLL_INTERVAL:g}s", "concurrency": 4},
        "watch": {"participants": watch_entries(population)},
        "rules": [str(rules)],
        "notifiers": {"console": {"type": "console"}},
        "state": {"url": str(workdir / "state.db")},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_demo(speed: float = 10.0) -> int:
    secret = secrets.token_urlsafe(32)
    population = demo_population()
    with (
        tempfile.TemporaryDirectory(prefix="videosdk-watchdog-demo-") as tmp,
        Simulator(
            api_key=DEMO_API_KEY, secret=secret, speed=speed, sample_period=SAMPLE_PERIOD
        ) as sim,
    ):
        sim.add_population(population)
        path = demo_config(sim.url, secret, Path(tmp), population)
        setup_logging("warning")  # the alerts are the show; problems still appear
        config = load_config(str(path))
        delay = played_out_after(population, load_rules(config.rule_paths), speed)
        print(
            f"videosdk-watchdog demo: simulator at {sim.url} ({len(population)} participants, "
            f"{speed:g}x real time); alerts appear below, the scenarios play out in about "
            f"{delay:.0f}s. Ctrl-C to stop.",
            flush=True,
        )
        announce = threading.Timer(delay, print, args=(PLAYED_OUT,), kwargs={"flush": True})
        announce.daemon = True
        announce.start()
        try:
            return run(config)
        finally:
            announce.cancel()
