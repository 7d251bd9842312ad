"""Fake installed distributions on PYTHONPATH, for plugin-loading and clash tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def fake_distribution(
    root: Path,
    name: str,
    version: str = "1.0.0",
    entry_points: dict[str, str] | None = None,
    modules: dict[str, str] | None = None,
) -> Path:
    """Write ``name``'s dist-info (and modules) under ``root``; returns ``root``."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if entry_points:
        lines = ["[videosdk_watchdog]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(source)
    return root


def env_with_path(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


PYTHON = sys.executable
