"""videosdk-watchdog: alerting daemon for VideoSDK call quality.

The import name ``watchdog`` is shared with PyPI's filesystem-events library;
both cannot live in one environment, so we refuse to start in one that has it
rather than fail later with a confusing AttributeError.
"""

from watchdog.runtime.clash import ensure_no_clash

ensure_no_clash()

__all__ = ["__version__"]

__version__ = "0.1.0"
