"""``videosdk-watchdog demo``: the whole path on one machine, no VideoSDK account needed.

Starts the bundled simulator with a small population of calls in trouble,
writes a throwaway config that watches them with a console notifier, and
runs the real daemon against it until Ctrl-C.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from importlib.resources import files
from pathlib import Path

import yaml

from watchdog.logs import setup_logging
from watchdog.scenarios import demo_population
from watchdog.service import run
from watchdog.settings import load_config
from watchdog.simulator import Simulator

log = logging.getLogger(__name__)

DEMO_API_KEY = "demo-api-key"


def demo_config(sim_url: str, secret: str, workdir: Path, population: list[dict[str, str]]) -> Path:
    rules = workdir / "rules.yaml"
    rules.write_text(files("watchdog").joinpath("demo_rules.yaml").read_text(encoding="utf-8"))
    config = {
        "videosdk": {"base_url": sim_url, "api_key": DEMO_API_KEY, "secret_key": secret},
        "poll": {"interval": "1s", "concurrency": 4},
        "watch": {
            "participants": [
                {"session": p["session"], "participant": p["participant"]} for p in population
            ]
        },
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
        Simulator(api_key=DEMO_API_KEY, secret=secret, speed=speed, sample_period=10.0) as sim,
    ):
        for p in population:
            sim.add_participant(
                p["session"],
                p["participant"],
                scenario=p["scenario"],
                name=p["name"],
                meeting_id=p["meeting_id"],
            )
        path = demo_config(sim.url, secret, Path(tmp), population)
        setup_logging("warning")  # the alerts are the show; problems still appear
        print(
            f"videosdk-watchdog demo: simulator at {sim.url} ({len(population)} participants, "
            f"{speed:g}x real time); alerts appear below. Ctrl-C to stop.",
            flush=True,
        )
        return run(load_config(str(path)))
