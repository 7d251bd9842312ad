"""videosdk-watchdog: alerting daemon for VideoSDK call quality.

Data flows through the stages in this order, one subpackage each:
``config`` (files) → ``videosdk`` (API client, stats) → ``watch`` (who) → ``poll``
(fetch) → ``engine`` (rules) → ``alerting`` (alerts, routing, silences) → ``delivery``
(notifiers). ``state``, ``cluster`` and ``obs`` (logs, metrics) sit beside them;
``runtime`` wires them into the daemon and ``cli`` sits on top; ``sim`` is apart.
The modules at this level are the public plugin API (alerts, notifiers, hookspecs,
durations, charts, listener, redaction, testing). ``pyproject.toml``'s import-linter
contracts hold this layering.

The import name ``watchdog`` is shared with PyPI's filesystem-events library;
both cannot live in one environment, so we refuse to start in one that has it
rather than fail later with a confusing AttributeError.
"""

from watchdog.runtime.clash import ensure_no_clash

ensure_no_clash()

__all__ = ["__version__"]

__version__ = "0.1.0"
