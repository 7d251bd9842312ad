"""A real SMTP server on 127.0.0.1 (aiosmtpd): STARTTLS or implicit TLS, AUTH, a mailbox.

Every message it accepts must be standards-clean (:func:`mail_problems`): Python's strict
email parser finds no defect, a ``multipart/related`` names its root part's type (RFC 2387),
each HTML part parses without error by the WHATWG algorithm (html5lib, strict) and has a
``<title>``, and ``In-Reply-To``/``References`` name only messages this server received. A
message that is not is refused (554) and recorded, and the server fails the test when it
stops.
"""

from __future__ import annotations

import email.policy
import re
import ssl
import threading
from collections.abc import Collection
from email.errors import MessageError
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import html5lib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from watchdog.testing import free_port

USER = "watchdog@example.com"
PASSWORD = "smtp-pass-5e1f-secret"


XHTML = "{http://www.w3.org/1999/xhtml}"


def html_problems(document: str) -> list[str]:
    """Parse errors by the WHATWG algorithm, and a missing or empty ``<title>``."""
    try:
        tree = html5lib.HTMLParser(strict=True).parse(document)
    except html5lib.html5parser.ParseError as exc:
        return [f"text/html: parse error: {exc}"]
    title = tree.find(f"{XHTML}head/{XHTML}title")
    if title is None or not (title.text or "").strip():
        return ["text/html: no <title>"]
    return []


def mail_problems(message: EmailMessage, sent: Collection[str]) -> list[str]:
    """What keeps a strictly parsed message from being standards-clean; ``sent`` holds the
    Message-IDs of the messages received before it."""
    problems = []
    for name in ("From", "Date", "Message-ID"):
        if message[name] is None:
            problems.append(f"no {name} header")
    for part in message.walk():
        kind = part.get_content_type()
        problems += [f"{kind}: {defect!r}" for defect in part.defects]
        for name, value in part.items():
            problems += [f"{name}: {defect!r}" for defect in getattr(value, "defects", ())]
        if kind == "multipart/related":
            root = next(iter(part.iter_parts()), None)
            if root is None or part.get_param("type") != root.get_content_type():
                problems.append("multipart/related: its type parameter must name the root part's")
        if kind == "text/html":
            assert isinstance(part, EmailMessage)
            problems += html_problems(str(part.get_content()))
    for name in ("In-Reply-To", "References"):
        for reference in re.findall(r"<[^<>]*>", str(message.get(name, ""))):
            if reference not in sent:
                problems.append(f"{name}: {reference} was never sent")
    return problems


class Mailbox:
    """The aiosmtpd handler: keeps every accepted message, strictly parsed and checked."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.problems: list[str] = []  # what made a message be refused
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:  # the strict policy raises on any defect the parser meets
            parsed = BytesParser(policy=email.policy.strict).parsebytes(envelope.content)
        except (MessageError, ValueError) as exc:
            return self._refuse([f"strict parser: {type(exc).__name__}: {exc}"])
        assert isinstance(parsed, EmailMessage)
        with self.arrived:
            problems = mail_problems(parsed, {str(m["Message-ID"]) for m in self.messages})
            if problems:
                return self._refuse(problems)
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def _refuse(self, problems: list[str]) -> str:
        self.problems += problems
        return f"554 5.6.0 not standards-clean: {problems[0]}"[:500]


class SMTPServer:
    def __init__(
        self,
        tls: ssl.SSLContext,
        mode: str = "starttls",
        auth: bool = True,
        password: str = PASSWORD,
    ) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.mode = mode
        kwargs: dict[str, Any] = {}
        if mode == "starttls":
            kwargs.update(tls_context=tls, require_starttls=True)
        if auth:
            # aiosmtpd only counts STARTTLS as TLS; with implicit TLS the whole socket is TLS
            kwargs.update(authenticator=self._authenticate, auth_require_tls=mode == "starttls")
        self.controller = Controller(
            self.mailbox,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=tls if mode == "tls" else None,
            server_hostname="127.0.0.1",
            **kwargs,
        )
        self.password = password

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (
            data.login.decode() == USER and data.password.decode() == self.password
        ):
            self.mailbox.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.mailbox.messages

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.controller.stop()
        if kind is None and self.mailbox.problems:
            raise AssertionError(
                "mail that is not standards-clean:\n" + "\n".join(self.mailbox.problems)
            )
