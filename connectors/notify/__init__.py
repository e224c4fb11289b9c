"""Notification transports: e-mail over SMTP and SMS over a provider's HTTP API.

A transport sends one :class:`~c360.graph.outbox.OutboxMessage` and returns the provider's id for it, or
raises :class:`TransientSendError` (worth retrying: the server is down, slow, or answered 4xx) or
:class:`PermanentSendError` (will never succeed: a 5xx SMTP reply, a recipient the provider refuses). The
outbox worker (:mod:`c360.streams.outbox`) retries the first with backoff and gives up on the second.

:func:`build_transports` builds the configured ones; a channel without a transport is not sent: its
messages stay queued (the worker says so when it starts). The adapters are imported only when chosen.
"""

from __future__ import annotations

from typing import Protocol

from c360.graph.errors import C360Error
from c360.graph.outbox import OutboxMessage

from .config import NotifyConfig, OutboxConfig, SmsConfig, SmtpConfig

__all__ = [
    "EmailTransport",
    "NotifyConfig",
    "OutboxConfig",
    "PermanentSendError",
    "SendError",
    "SmsConfig",
    "SmsTransport",
    "SmtpConfig",
    "TransientSendError",
    "Transport",
    "build_transports",
]


class SendError(C360Error):
    """A message could not be sent; the reason is the message text."""


class TransientSendError(SendError):
    """Sending failed in a way that may pass: connection refused or dropped, a timeout, a 4xx reply."""


class PermanentSendError(SendError):
    """Sending can never succeed for this message: a 5xx SMTP reply, a recipient or request refused."""


class Transport(Protocol):
    """Sends one message of its channel; returns the provider's id for it."""

    def send(self, message: OutboxMessage) -> str:
        """Send ``message``; :class:`TransientSendError` or :class:`PermanentSendError` if it fails."""
        ...


class EmailTransport(Transport, Protocol):
    """A transport of ``email`` messages."""


class SmsTransport(Transport, Protocol):
    """A transport of ``sms`` messages."""


def build_transports(config: NotifyConfig) -> dict[str, Transport]:
    """The transports ``config`` configures, by channel (``email``, ``sms``); unconfigured ones are absent.

    Secrets are read from their files now: a missing or unreadable file is a ConfigError.
    """
    transports: dict[str, Transport] = {}
    if config.email is not None:
        from .smtp import SmtpTransport

        transports["email"] = SmtpTransport(config.email)
    if config.sms.type == "http":
        from .sms import HttpSmsTransport

        transports["sms"] = HttpSmsTransport(config.sms)
    return transports
