"""Email notifier: SMTP with STARTTLS or implicit TLS, optional AUTH, text and HTML.

Written against the public plugin API only, as an outside plugin would be.
Every mail about one alert (or group) belongs to one thread: the first firing
gets a Message-ID derived from the notification's thread, and reminders and
the resolve mail carry ``In-Reply-To``/``References`` pointing at it, so mail
clients show them together. Only a mail that was sent is pointed at: the
Message-ID is kept in the notifier's state once the server accepted it, so a
resolve whose firing mail never went out (fired and resolved within the
group wait) stands alone. With ``group_by: [meeting_id]`` a meeting is one
thread whose every mail shows the meeting as it is then (who is affected,
the worst metric of each, what changed since the last mail, how long it has
gone on) until it is over. Certificates are always verified (``ca_file``
adds a private CA); a password is only ever sent over TLS.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from watchdog.alerts import REPORT_EVENTS, MeetingChanges, Notification, Report, meeting_changes
from watchdog.charts import chart_png, report_chart_png
from watchdog.hookspecs import hookimpl
from watchdog.notifiers import (
    DEFAULT_RETENTION,
    DeliveryError,
    NotifierConfig,
    NotifierState,
    NotifierType,
    Register,
)
from watchdog_email.render import (
    header_value,
    html_body,
    meeting_html,
    meeting_subject,
    meeting_text,
    over,
    report_html,
    subject,
    text_body,
    worst,
)

__version__ = "0.1.0"

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}

MAX_CHARTS = 5  # a grouped mail embeds charts for its first firing alerts


def _address(value: str) -> str:
    _, address = parseaddr(value)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ValueError(f"{value!r} is not an email address")
    return value


class EmailConfig(NotifierConfig):
    host: str = Field(min_length=1, description="SMTP server (your relay or provider).")
    port: int | None = Field(default=None, ge=1, le=65535, description="Default by security.")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (port 587), tls: implicit TLS (465), none: a local relay only.",
    )
    username: str | None = None
    """SMTP AUTH user; with ``password``, only ever over TLS."""
    password: SecretStr | None = None
    """SMTP AUTH password (refused with ``security: none``)."""
    sender: str = Field(alias="from", description="From address, e.g. 'Watchdog <wd@example.com>'.")
    to: list[str] = Field(min_length=1)
    """Recipients."""
    cc: list[str] = Field(default_factory=list)
    """Copy recipients."""
    subject_prefix: str = "[videosdk-watchdog]"
    """Put before every subject, for filters."""
    ca_file: str | None = Field(default=None, description="PEM bundle of a private CA.")
    timeout: float = Field(default=30.0, gt=0, le=300)
    """Seconds for the SMTP conversation of one mail."""
    local_hostname: str | None = Field(default=None, description="Name to send in EHLO.")
    charts: bool = Field(
        default=True, description="Embed a PNG chart of each firing alert (needs [charts])."
    )

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _address(value)

    @field_validator("to", "cc")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @model_validator(mode="after")
    def _auth(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.password is not None and self.security == "none":
            raise ValueError("a password is only sent over TLS: use security starttls or tls")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "videosdk-watchdog.invalid"


THREAD_PREFIX = "meeting-thread:"


def meeting_key(meeting_id: str) -> str:
    """The notifier state key of a meeting's mail thread (its first mail's Message-ID):
    deleted when the call's report is mailed, else forgotten after ``history.retention``."""
    return THREAD_PREFIX + meeting_id


def stable_message_id(seed: str, domain: str) -> str:
    """A Message-ID from ``seed`` (a thread, a notification): the same on every retry and
    restart, so a mail sent twice is recognised as one."""
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"<watchdog.{digest}@{domain}>"


class EmailNotifier:
    def __init__(
        self,
        config: EmailConfig,
        state: NotifierState,
        logger: logging.Logger,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.config = config
        self.state = state
        self.retention = retention
        self.log = logger
        self.domain = _domain(config.sender)
        self.context = ssl.create_default_context(cafile=config.ca_file)

    def __repr__(self) -> str:
        c = self.config
        return f"EmailNotifier(host={c.host!r}, port={c.smtp_port}, to={c.to!r})"

    def compose(self, notification: Notification) -> EmailMessage:
        """The mail for a notification, threaded under its first firing."""
        return self._compose(notification)[0]

    def _compose(self, notification: Notification) -> tuple[EmailMessage, MeetingChanges | None]:
        """The mail, and for a meeting view what it tells (for the thread's memory)."""
        key = notification.thread or notification.id
        record = None if notification.test else self.state.get(key)
        sent = record
        if sent is not None and sent.get("notification") == notification.id:
            sent = None  # this is that first mail again: the core retries it
        changes = None
        notice = notification.event != "alert"  # an acknowledgement: told, not remembered
        if notification.meeting is not None and not notification.test and not notice:
            changes = meeting_changes(notification, record.get("meeting") if record else None)
        msg = EmailMessage()
        msg["Subject"] = (
            meeting_subject(notification, changes, self.config.subject_prefix)
            if changes is not None
            else subject(notification, self.config.subject_prefix)
        )
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        if self.config.cc:
            msg["Cc"] = ", ".join(self.config.cc)
        msg["Date"] = formatdate(usegmt=True)
        if sent is not None:  # the thread's first mail went out: answer it
            msg["Message-ID"] = stable_message_id(notification.id, self.domain)
            msg["In-Reply-To"] = str(sent["message_id"])
            msg["References"] = str(sent["message_id"])
        elif notification.test or notice or over(notification):  # nothing answers it
            msg["Message-ID"] = stable_message_id(notification.id, self.domain)
        else:  # the first mail of its thread
            msg["Message-ID"] = stable_message_id(key, self.domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        msg["X-Watchdog-Status"] = "resolved" if over(notification) else "firing"
        msg["X-Watchdog-Severity"] = header_value(worst(notification.alerts).severity)
        msg["X-Watchdog-Rule"] = header_value(
            ", ".join(sorted({a.rule for a in notification.alerts}))
        )
        msg["X-Watchdog-Thread"] = header_value(key)
        if changes is not None:
            msg["X-Watchdog-Meeting"] = header_value(notification.meeting or "")
        images = self._charts(notification, changes)
        cids = {fp: make_msgid(domain=self.domain)[1:-1] for fp in images}
        if changes is not None:
            msg.set_content(meeting_text(notification, changes))
            chart = next(iter(cids.values()), None)
            html = meeting_html(notification, changes, str(msg["Subject"]), chart)
        else:
            msg.set_content(text_body(notification))
            html = html_body(notification, cids, str(msg["Subject"]))
        msg.add_alternative(html, subtype="html")
        if images:
            related = msg.get_payload()[1]  # type: ignore[index]
            assert isinstance(related, EmailMessage)
            for fp, png in images.items():
                related.add_related(
                    png,
                    maintype="image",
                    subtype="png",
                    cid=f"<{cids[fp]}>",
                    filename=f"{fp}.png",
                    disposition="inline",
                )
            related.set_param("type", "text/html")  # RFC 2387: the root part's type is required
        return msg, changes

    def _charts(
        self, notification: Notification, changes: MeetingChanges | None
    ) -> dict[str, bytes]:
        """PNG charts of the firing alerts (first few; a meeting's worst alone), shown inline
        by their Content-ID."""
        if not self.config.charts or notification.test:
            return {}
        firing = [a for a in notification.alerts if a.status == "firing"][:MAX_CHARTS]
        if changes is not None:
            firing = [*changes.meeting_alerts, *(x.worst for x in changes.affected)][:1]
        out = {}
        for alert in firing:
            png = chart_png(alert)
            if png is not None:
                out[alert.fingerprint] = png
        return out

    def compose_report(self, notification: Notification, found: Report) -> EmailMessage:
        """A report's mail: a call's answers its meeting's thread where one was mailed."""
        key = meeting_key(found.meeting_id) if found.meeting_id else None
        thread = self.state.get(key) if key is not None else None
        msg = EmailMessage()
        msg["Subject"] = header_value(f"{self.config.subject_prefix} {found.title}")
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        if self.config.cc:
            msg["Cc"] = ", ".join(self.config.cc)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = stable_message_id(notification.id, self.domain)
        if thread is not None:
            msg["In-Reply-To"] = str(thread["message_id"])
            msg["References"] = str(thread["message_id"])
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Watchdog-Event"] = notification.event
        if found.meeting_id:
            msg["X-Watchdog-Meeting"] = header_value(found.meeting_id)
        png = report_chart_png(found) if self.config.charts else None
        cid = make_msgid(domain=self.domain)[1:-1] if png is not None else None
        msg.set_content(found.text)
        msg.add_alternative(report_html(found, cid), subtype="html")
        if png is not None:
            related = msg.get_payload()[1]  # type: ignore[index]
            assert isinstance(related, EmailMessage)
            related.add_related(
                png,
                maintype="image",
                subtype="png",
                cid=f"<{cid}>",
                filename="report.png",
                disposition="inline",
            )
            related.set_param("type", "text/html")
        return msg

    def send(self, notification: Notification) -> None:
        if notification.event in REPORT_EVENTS:
            if notification.report is not None:
                self._deliver(self.compose_report(notification, notification.report))
                if notification.report.meeting_id:  # told: the meeting's next call starts afresh
                    self.state.delete(meeting_key(notification.report.meeting_id))
            return
        msg, changes = self._compose(notification)
        self._deliver(msg)
        key = notification.thread or notification.id
        if notification.test or notification.event != "alert":
            return
        if notification.meeting is not None:  # the meeting's thread, for its call report
            self.state.forget(THREAD_PREFIX, datetime.now(UTC) - self.retention)
            self.state.put(
                meeting_key(notification.meeting),
                {
                    "message_id": str(
                        (self.state.get(key) or {}).get("message_id") or msg["Message-ID"]
                    )
                },
            )
        if over(notification):
            self.state.delete(key)
            return
        saved = self.state.get(key)
        record = saved or {  # what later mails of the thread may answer
            "message_id": str(msg["Message-ID"]),
            "notification": notification.id,
        }
        if changes is not None:  # and, for a meeting, what this mail told
            self.state.put(key, {**record, "meeting": changes.memory})
        elif saved is None:
            self.state.put(key, record)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.security == "tls":
            return smtplib.SMTP_SSL(
                c.host,
                c.smtp_port,
                local_hostname=c.local_hostname,
                timeout=c.timeout,
                context=self.context,
            )
        return smtplib.SMTP(c.host, c.smtp_port, local_hostname=c.local_hostname, timeout=c.timeout)

    def _deliver(self, msg: EmailMessage) -> None:
        c = self.config
        where = f"{c.host}:{c.smtp_port}"
        try:
            with self._connect() as smtp:
                smtp.ehlo()
                if c.security == "starttls":
                    if not smtp.has_extn("starttls"):
                        raise DeliveryError(
                            f"SMTP server {where} does not offer STARTTLS "
                            "(use security: tls for port 465)",
                            permanent=True,
                        )
                    smtp.starttls(context=self.context)
                    smtp.ehlo()
                if c.username is not None and c.password is not None:
                    smtp.login(c.username, c.password.get_secret_value())
                refused = smtp.send_message(msg)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP server {where} refused the login for {c.username!r}: {exc.smtp_code}",
                permanent=True,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            addresses = ", ".join(sorted(exc.recipients))
            raise DeliveryError(
                f"SMTP server {where} refused every recipient: {addresses}", permanent=True
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server {where}: {exc}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            reply = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise DeliveryError(
                f"SMTP server {where} answered {exc.smtp_code} {reply}".strip(),
                permanent=500 <= exc.smtp_code < 600,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"TLS certificate of SMTP server {where} is not trusted: {exc.verify_message} "
                "(ca_file adds a private CA)"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"cannot deliver to SMTP server {where}: {exc}") from None
        if refused:
            self.log.warning(
                "SMTP server %s refused some recipients: %s", where, ", ".join(sorted(refused))
            )


@hookimpl
def register_notifier_types(register: Register) -> None:
    register(
        NotifierType(
            name="email",
            config=EmailConfig,
            factory=lambda context: EmailNotifier(
                context.config, context.state, context.logger, context.retention
            ),
            description="Sends threaded text+HTML mail over SMTP (STARTTLS or TLS, optional AUTH).",
            reports=True,
        )
    )
