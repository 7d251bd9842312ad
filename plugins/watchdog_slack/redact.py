"""Keep the token and the webhook URL out of slack-sdk's own log lines.

slack-sdk logs request URLs (an incoming webhook's URL is its credential) at
debug level; a filter on the logger we hand it rewrites every record first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

MASK = "**********"


class Redact(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        record.msg, record.args = text, None
        return True


def redacting_logger(parent: logging.Logger, name: str, secrets: Iterable[str]) -> logging.Logger:
    """``parent``'s child logger ``name`` with every secret masked in its records."""
    logger = parent.getChild(name)
    for old in [f for f in logger.filters if isinstance(f, Redact)]:
        logger.removeFilter(old)
    logger.addFilter(Redact(secrets))
    return logger
