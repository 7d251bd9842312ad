"""The ``videosdk-watchdog`` command line: its parser and commands, and the
operator's views (status, outbox, JSON Schemas, notify test, migrate).

The top: commands start the runtime or read state directly; only here is the
simulator imported, and only inside the commands that run it.
"""

from watchdog.cli.main import main

__all__ = ["main"]
