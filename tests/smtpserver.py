"""A real SMTP server on 127.0.0.1 (aiosmtpd): STARTTLS or implicit TLS, AUTH, a mailbox."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from watchdog.testing import free_port

USER = "watchdog@example.com"
PASSWORD = "smtp-pass-5e1f-secret"


class Mailbox:
    """The aiosmtpd handler: keeps every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.arrived:
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 Message accepted for delivery"


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

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
