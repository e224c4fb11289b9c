"""E-mail over SMTP (the standard library's :mod:`smtplib`).

Each message is an :class:`email.message.EmailMessage` (text/plain, UTF-8) whose ``Message-ID`` is derived
from the outbox id and whose ``Date`` is the message's ``created_at``: a re-send after a crash (the one
window the outbox cannot close: the server accepted, the worker died before marking it sent) is the
same message, which mail systems and people can recognise as a duplicate.

Replies: 5xx to MAIL FROM, RCPT TO or DATA is permanent; 4xx, a refused or dropped connection and a
timeout are transient. A failed login or a server without STARTTLS is transient too: it is the
configuration's fault, not the message's, and is fixed without losing the queue.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from c360.graph.errors import ConfigError
from c360.graph.outbox import OutboxMessage

from . import PermanentSendError, TransientSendError
from .config import SmtpConfig


def message_id(outbox_id: str, domain: str) -> str:
    """The stable ``Message-ID`` of the outbox message ``outbox_id``: ``<hash@domain>``."""
    digest = hashlib.sha256(outbox_id.encode("utf-8")).hexdigest()[:32]
    return f"<c360.{digest}@{domain}>"


def read_secret(path: object, what: str) -> str:
    """The content of the secret file ``path`` without its trailing newline; ConfigError if unreadable."""
    try:
        with open(str(path), encoding="utf-8") as f:
            secret = f.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"the {what} file {path} is empty")
    return secret


def _failure(step: str, code: int, reply: bytes | str) -> PermanentSendError | TransientSendError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    reason = f"SMTP {step}: {code} {text}".strip()
    return PermanentSendError(reason) if 500 <= code < 600 else TransientSendError(reason)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


class SmtpTransport:
    """Sends ``email`` outbox messages through one SMTP server, one connection per message."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._password = None if config.password_file is None else read_secret(config.password_file, "SMTP password")
        self._domain = config.from_address.rpartition("@")[2]

    def build(self, message: OutboxMessage) -> EmailMessage:
        """The e-mail of ``message``: From, To, Subject, Date, the stable Message-ID, the text body."""
        mail = EmailMessage()
        mail["From"] = self.config.from_address
        mail["To"] = message.to
        mail["Subject"] = message.subject or ""
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = message_id(message.id, self._domain)
        mail.set_content(message.body, charset="utf-8", cte="quoted-printable")  # 7-bit: any server takes it
        return mail

    def send(self, message: OutboxMessage) -> str:
        """Send ``message``; return the server's reply to DATA (e.g. ``250 2.0.0 Ok: queued as 4Xk...``)."""
        # CRLF line ends: smtplib sends bytes as they are, and a server reads a bare-LF body as one line.
        payload = self.build(message).as_bytes(policy=policy.SMTP)
        try:
            smtp = self._connect()
            try:
                code, reply = smtp.mail(self.config.from_address)
                if code != 250:
                    raise _failure("MAIL FROM", code, reply)
                code, reply = smtp.rcpt(message.to)
                if code not in (250, 251):
                    raise _failure("RCPT TO", code, reply)
                code, reply = smtp.data(payload)
                if code != 250:
                    raise _failure("DATA", code, reply)
            finally:
                _quit(smtp)  # once DATA is accepted the message is sent, whatever QUIT answers
        except smtplib.SMTPAuthenticationError as exc:
            raise TransientSendError(f"SMTP login as {self.config.username} refused: {exc.smtp_code}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise TransientSendError(f"SMTP server {self.config.host}: {exc}") from exc
        except smtplib.SMTPResponseException as exc:  # DATA refused before the body, HELO refused
            raise _failure("reply", exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, dropped, timed out, TLS failed
            where = f"{self.config.host}:{self.config.port}"
            raise TransientSendError(f"SMTP server {where}: {type(exc).__name__}: {exc}") from exc
        text = reply.decode("utf-8", "replace").strip()
        return f"{code} {text}"[:200]

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        smtp: smtplib.SMTP
        if c.ssl:
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        try:
            smtp.ehlo()
            if c.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if c.username is not None and self._password is not None:
                smtp.login(c.username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp
