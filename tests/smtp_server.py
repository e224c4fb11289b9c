"""A real SMTP server on loopback (aiosmtpd) for the tests that send mail: it keeps what it receives."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from c360.connectors.notify import SmtpConfig
from c360.connectors.notify.smtp import SmtpTransport


class Inbox:
    """An aiosmtpd handler that keeps what it receives; ``rcpt_reply`` refuses recipients."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.rcpt_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append(mail)
        return f"250 2.0.0 Ok: queued as Q{len(self.mails)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that the test starts and stops."""

    def __init__(self, **options: Any) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.options = options
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **self.options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def transport(self, **config: Any) -> SmtpTransport:
        return SmtpTransport(
            SmtpConfig(host="127.0.0.1", port=self.port, from_address="notifications@c360.example", timeout=5, **config)
        )
