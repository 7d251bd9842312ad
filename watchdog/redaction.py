"""The one redaction rule: every form a secret can take in text, masked in one pass.

A secret leaks in more shapes than its own text: a receiver echoes it JSON-escaped
(``\\/`` or ``\\u00e9`` included) or URL-encoded, ``requests`` quotes a URL's host
and path apart (``Max retries exceeded with url: /services/T0/B0/XXXX``), HTTP Basic
carries ``user:password`` in base64, an ``Authorization`` secret is echoed without its
``Bearer``. :class:`Redactor` knows all these forms of each secret and replaces them
with one compiled alternation of literals, longest first: one pass over the text, in
time linear in its length (``benchmarks/redaction.py``).

Everything the daemon and its commands write goes through it: the log handler
(``watchdog.obs.logs``), the outbox's ``last_error``, ``notify-test``, ``outbox list``,
``status`` and the errors plugins raise. Plugins get theirs as
``NotifierContext.redactor`` (public, via ``watchdog.notifiers``).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from pydantic import BaseModel, SecretBytes, SecretStr

__all__ = ["MASK", "MIN_LENGTH", "Redactor", "forms", "secret_values"]

MASK = "**********"
MIN_LENGTH = 4  # masking "" or "ab" would mangle every message; a secret is never that short

# what precedes a URL path segment or a query value in text, as written and URL-encoded
_SEGMENT_LEADS = ("/", "%2F", "%2f")
_VALUE_LEADS = ("=", "%3D", "%3d")
_HEX = re.compile(r"%[0-9A-F]{2}")


def secret_values(value: object) -> Iterator[str]:
    """Every SecretStr/SecretBytes value inside a validated config (nested too)."""
    if isinstance(value, SecretStr | SecretBytes):
        raw = value.get_secret_value()
        yield raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    elif isinstance(value, BaseModel):
        for key in type(value).model_fields:
            yield from secret_values(getattr(value, key))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secret_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from secret_values(item)


def _escaped(text: str) -> set[str]:
    """``text`` as it appears quoted in JSON, in a URL, in a Python repr."""
    as_json = json.dumps(text)[1:-1]
    encoded = {quote(text, safe=""), quote(text), quote_plus(text)}
    return {
        text,
        as_json,
        as_json.replace("/", "\\/"),  # PHP and some Java encoders escape slashes
        json.dumps(text, ensure_ascii=False)[1:-1],
        repr(text)[1:-1],
        *encoded,
        *(_HEX.sub(lambda m: m.group().lower(), e) for e in encoded),
    }


def _base64(text: str) -> set[str]:
    """Base64 of the secret (HTTP Basic, tokens in headers): padded, and its whole
    3-byte groups alone, which stay the same whatever bytes follow the secret."""
    raw = text.encode()
    whole = raw[: len(raw) // 3 * 3]
    encoded = {
        encode(part).decode()
        for encode in (base64.b64encode, base64.urlsafe_b64encode)
        for part in (raw, whole)
    }
    return encoded | {e.rstrip("=") for e in encoded}


def _url_parts(secret: str) -> tuple[set[str], set[str], set[str]]:
    """A URL secret's userinfo and password; its path segments; its query values."""
    try:
        parts = urlsplit(secret)
        password = parts.password
    except ValueError:
        return set(), set(), set()
    if not parts.scheme or not parts.netloc:
        return set(), set(), set()
    whole: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        whole |= {userinfo, unquote(userinfo)}
        if password:
            whole |= {password, unquote(password)}
    segments = {s for s in parts.path.split("/") if s} | {unquote(s) for s in parts.path.split("/")}
    values = {v for _, v in parse_qsl(parts.query, keep_blank_values=True)}
    values |= {quote_plus(v) for v in values} | {quote(v, safe="") for v in values}
    return whole, segments, values


def _credentials(secret: str) -> set[str]:
    """An ``Authorization`` value's credentials alone (a receiver echoes the token, not
    ``Bearer``), and for HTTP Basic the ``user:password`` and password it encodes."""
    scheme, space, credentials = secret.strip().partition(" ")
    if not space or not scheme.isalnum():
        return set()
    found = {credentials.strip()}
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(credentials.strip(), validate=True).decode()
        except ValueError:
            return found
        found |= {pair, pair.partition(":")[2]}
    return found


def forms(secret: str) -> dict[str, str]:
    """Each text that betrays ``secret``, mapped to what replaces it.

    A URL's path segments and query values are masked only after a ``/`` or a
    ``=`` (kept): ``webhook`` alone is a word, ``/webhook`` is a path.
    """
    if len(secret) < MIN_LENGTH:
        return {}
    whole, segments, values = _url_parts(secret)
    table: dict[str, str] = {}
    for lead, parts in [("/", segments), ("=", values)]:
        for part in parts:
            if len(part) < MIN_LENGTH:
                continue
            leads = _SEGMENT_LEADS if lead == "/" else _VALUE_LEADS
            for form in _escaped(part):
                table.update({prefix + form: prefix + MASK for prefix in leads})
    for base in {secret} | whole | _credentials(secret):
        if len(base) < MIN_LENGTH:
            continue
        for form in _escaped(base) | _base64(base):
            if len(form) >= MIN_LENGTH:
                table[form] = MASK
    return table


class Redactor(logging.Filter):
    """Masks every form of the given secrets; also a logging filter that does the same.

    Immutable and cheap to call: the pattern is compiled once here. Combine with
    ``|``. As a filter (``logger.addFilter(redactor)``) it rewrites a record's
    message, its arguments and its traceback text before any handler sees them.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = frozenset(s for s in secrets if len(s) >= MIN_LENGTH)
        self._table: dict[str, str] = {}
        for secret in self.secrets:
            self._table.update(forms(secret))
        literals = sorted(self._table, key=lambda s: (-len(s), s))
        self._pattern = re.compile("|".join(map(re.escape, literals))) if literals else None

    @classmethod
    def of(cls, *configs: object) -> Redactor:
        """The secrets (SecretStr, SecretBytes) of validated config models."""
        return cls(s for config in configs for s in secret_values(config))

    def __or__(self, other: Redactor) -> Redactor:
        return Redactor(self.secrets | other.secrets)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        table = self._table
        return self._pattern.sub(lambda match: table[match.group()], text)

    def data(self, value: Any) -> Any:
        """A JSON-like value with every string in it masked (keys too): masking the
        encoded JSON instead could cut an escape sequence in two."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value

    def leaks(self, text: str) -> bool:
        """True when ``text`` holds any form of a secret (what the contract test asks)."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        record.msg, record.args = self(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self(record.exc_text)
        if record.stack_info:
            record.stack_info = self(record.stack_info)
        return True

    def install(self, logger: logging.Logger) -> logging.Logger:
        """Put this redactor on ``logger`` in place of any earlier one (after a reload)."""
        for old in [f for f in logger.filters if isinstance(f, Redactor)]:
            logger.removeFilter(old)
        logger.addFilter(self)
        return logger
