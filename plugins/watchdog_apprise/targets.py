"""Apprise URLs as delivery targets: parsed once, their secrets known, their logs kept in.

Apprise's own logger writes URLs, payloads and the services' answers. :func:`quiet`
keeps every record of it out of the process's handlers (``propagate`` off, level
WARNING); what a send needs, it reads from Apprise's per-service result logs, and what a
URL check needs, from :func:`apprise_says`: both are masked before anyone sees them.

Which parts of a URL are secret is Apprise's own knowledge: each service declares its
private tokens (Telegram's bot token sits where a host would, Discord's webhook token in
the path); :func:`secret_parts` collects their values, with the URL's userinfo and any
``+Header=`` values, so the notifier masks every one of them beside the whole URL.

Apprise is imported when a URL is first checked or loaded, not with the plugin: every
daemon loads the plugin through its entry point, and Apprise's ~100 services cost ~4 MB
of memory to a daemon that configures no Apprise notifier.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from watchdog.notifiers import Redactor

if TYPE_CHECKING:
    from apprise import AppriseAsset, NotifyFormat

URL_LIST = "https://github.com/caronc/apprise/wiki#notification-services"
LOGGER_NAME = "apprise"  # apprise.LOGGER_NAME, named without importing Apprise
_LOGGER = logging.getLogger(LOGGER_NAME)
_PIECES = re.compile(r"[/:@?&=#,;+ ]+")


def quiet() -> None:
    """Keep Apprise's log records away from the process's handlers (they name secrets).

    A NullHandler stands in, so Python's last-resort handler does not print them either;
    Apprise's capture handlers, which feed its results, still receive them.
    """
    _LOGGER.propagate = False
    _LOGGER.setLevel(logging.WARNING)
    if not any(isinstance(h, logging.NullHandler) for h in _LOGGER.handlers):
        _LOGGER.addHandler(logging.NullHandler())


class _Collect(logging.Handler):
    """What Apprise logs in one thread, while a check of a URL runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and len(self.lines) < 10:
            self.lines.append(record.getMessage())


@contextmanager
def apprise_says() -> Iterator[list[str]]:
    """The warnings and errors Apprise logs in this thread meanwhile (unmasked: mask them)."""
    quiet()
    collect = _Collect()
    _LOGGER.addHandler(collect)
    try:
        yield collect.lines
    finally:
        _LOGGER.removeHandler(collect)


def url_pieces(url: str) -> Redactor:
    """Masks every piece of ``url`` (host, user, path, query): for Apprise's words about a
    URL it could not parse, when nothing says which pieces are secret."""
    _, _, rest = url.partition("://")
    pieces = {p for p in _PIECES.split(rest) if p}
    return Redactor([url, *pieces, *(unquote(p) for p in pieces)])


def problem(url: str) -> str | None:
    """Why Apprise cannot use ``url``, masked; None when it can."""
    import apprise  # noqa: PLC0415  # lazily: see the module's docstring
    from apprise.plugins import N_MGR  # noqa: PLC0415

    with apprise_says() as said:
        plugin = apprise.Apprise.instantiate(url, asset=asset(10.0))
    if plugin is not None:
        return None
    scheme = url.partition("://")[0] if "://" in url else ""
    reason = "; ".join(said) or "not an Apprise URL"
    if scheme and scheme.lower() not in N_MGR:
        reason = f"no Apprise service has the scheme {scheme}://"
    masked = url_pieces(url)(reason)
    return f"Apprise cannot use this URL: {masked} (the URL of each service: {URL_LIST})"


def asset(timeout: float) -> AppriseAsset:
    """Apprise's settings for our sends: no disk, no emoji or escape interpretation (a
    participant named ``:fire:\\n`` is shown as written), each service bounded in time."""
    from apprise import AppriseAsset  # noqa: PLC0415  # lazily: see the module's docstring

    return AppriseAsset(
        storage_mode="memory",
        service_timeout=timeout,
        interpret_emojis=False,
        interpret_escapes=False,
        async_mode=True,
    )


def secret_parts(url: str) -> list[str]:
    """The values in ``url`` that its Apprise service calls private, its userinfo and its
    header values (``+Authorization=...``): masked wherever they appear alone."""
    from apprise.plugins import N_MGR, url_to_dict  # noqa: PLC0415  # lazily: see above

    # Apprise's URL parser, untyped there: a dict of the URL's parts by the service's
    # argument names, or None when it cannot parse the URL
    parse: Callable[[str], dict[str, Any] | None] = url_to_dict
    parsed = parse(url) or {}
    schema = parsed.get("schema")
    found: list[str] = [str(parsed[k]) for k in ("user", "password") if parsed.get(k)]
    found += [str(v) for v in (parsed.get("qsd+") or {}).values()]
    if schema in N_MGR:
        kind = N_MGR[schema]
        declared = {**kind.template_tokens, **kind.template_args}
        for name, spec in declared.items():
            if spec.get("private"):
                found += list(_strings(parsed.get(spec.get("map_to", name))))
    return [unquote(s) for s in found] + found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _strings(item)


@dataclass(frozen=True, slots=True)
class Target:
    """One Apprise URL of an entry: its place in ``urls``, its service, the body format it
    reads (``markdown`` targets get Markdown, converted by Apprise to HTML for services
    that take HTML; ``text`` ones get the plain-text rendering), and the URL itself, which
    the send's process loads (:mod:`watchdog_apprise.worker`)."""

    index: int
    service: str
    body_format: NotifyFormat
    url: str = field(repr=False)  # a secret: what the send's process is given on its stdin

    @property
    def label(self) -> str:
        """``urls[1] (Discord)``: which target, without any part of its URL."""
        return f"urls[{self.index}] ({self.service})"


def load(urls: list[str], fmt: str, timeout: float) -> list[Target]:
    """A :class:`Target` for each URL (already checked at config time)."""
    import apprise  # noqa: PLC0415  # lazily: see the module's docstring
    from apprise import NotifyFormat  # noqa: PLC0415

    settings = asset(timeout)
    targets = []
    for index, url in enumerate(urls):
        with apprise_says():
            plugin = apprise.Apprise.instantiate(url, asset=settings)
        if plugin is None:  # checked by the config model; only a changed Apprise gets here
            raise ValueError(f"urls[{index}]: Apprise cannot use this URL")
        wants = plugin.resolve_format(NotifyFormat.MARKDOWN)
        text = fmt == "text" or wants == NotifyFormat.TEXT
        targets.append(
            Target(
                index,
                str(plugin.service_name),
                NotifyFormat.TEXT if text else NotifyFormat.MARKDOWN,
                url,
            )
        )
    return targets
