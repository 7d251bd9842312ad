"""Detect PyPI's filesystem ``watchdog`` library sharing our import name."""

from __future__ import annotations

import importlib.metadata

OTHER_DISTRIBUTION = "watchdog"

MESSAGE = (
    "videosdk-watchdog cannot run in this Python environment: the PyPI package "
    "'watchdog' {version} (filesystem events) is installed here and uses the same "
    "import name. Install videosdk-watchdog in its own virtual environment, from its "
    "checkout or a wheel built from it, e.g.\n"
    "    python3 -m venv /opt/videosdk-watchdog && "
    "/opt/videosdk-watchdog/bin/pip install /path/to/videosdk-watchdog"
)


class ImportClashError(ImportError):
    """The filesystem ``watchdog`` distribution is installed beside us."""


def ensure_no_clash() -> None:
    try:
        version = importlib.metadata.version(OTHER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return
    raise ImportClashError(MESSAGE.format(version=version))
