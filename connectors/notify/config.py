"""Settings of the notification transports and the outbox worker (pydantic, unknown keys are errors).

The safe default sends nothing: without ``email`` (an :class:`SmtpConfig`) or with ``sms.type = "none"``
that channel has no transport, its messages stay queued, and the worker names the channels it cannot
send when it starts. Nothing is sent to a guessed server such as localhost:25. Secrets are never
inline: a password or token is read from the file named.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from c360.graph.errors import InvalidInputError
from c360.graph.outbox import RetryPolicy, check_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..http_json import LOOPBACK, check_bearer_url

_SENDER = re.compile(r"^(\+[1-9][0-9]{6,14}|[A-Za-z0-9 ]{1,11})$")  # E.164, or an alphanumeric sender id


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpConfig(_Config):
    """The SMTP server e-mail is handed to."""

    host: str = Field(default="localhost", min_length=1, description="SMTP server host name or address.")
    port: int = Field(default=25, ge=1, le=65535, description="SMTP port: 25 or 587 (STARTTLS), 465 (ssl).")
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS before sending.")
    ssl: bool = Field(default=False, description="Connect over TLS from the start (SMTPS, usually port 465).")
    username: str | None = Field(default=None, description="Login name; unset: no authentication.")
    password_file: Path | None = Field(
        default=None, description="File whose content (trailing newline stripped) is the login password."
    )
    from_address: str = Field(description="The From address of every message, e.g. notifications@example.com.")
    timeout: float = Field(default=10, gt=0, le=300, description="Seconds each network operation may take.")

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        try:
            return check_address("email", value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.starttls and self.ssl:
            raise ValueError("choose starttls or ssl, not both")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        if self.username is not None and not (self.starttls or self.ssl) and self.host not in LOOPBACK:
            raise ValueError(f"a login to {self.host} needs starttls or ssl: the password would cross in clear")
        return self


class SmsConfig(_Config):
    """The SMS provider: ``none`` (SMS stay queued) or ``http`` (a JSON API with a bearer token)."""

    type: Literal["none", "http"] = Field(default="none", description="none: no SMS transport; http: the API.")
    url: str | None = Field(default=None, description="The provider's send endpoint (https; http only on loopback).")
    token_file: Path | None = Field(default=None, description="File whose content is the API's bearer token.")
    sender: str | None = Field(default=None, description="The from of each SMS: an E.164 number or a sender id.")
    timeout: float = Field(default=10, gt=0, le=300, description="Seconds a request may take.")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.type == "none":
            return self
        if self.url is None or self.token_file is None or self.sender is None:
            raise ValueError("an http SMS transport needs url, token_file and sender")
        check_bearer_url("sms", self.url)
        if not _SENDER.fullmatch(self.sender):
            raise ValueError(f"sms sender {self.sender!r}: an E.164 number or up to 11 letters and digits")
        return self


class OutboxConfig(_Config):
    """How the outbox worker claims, retries and gives up."""

    max_attempts: int = Field(default=8, ge=1, le=100, description="Attempts before a message is dead.")
    backoff_base: float = Field(default=30, gt=0, le=86_400, description="Seconds after the first failure.")
    backoff_cap: float = Field(default=3600, gt=0, le=7 * 86_400, description="Longest wait between attempts, s.")
    lease_seconds: float = Field(
        default=300,
        ge=1,
        le=86_400,
        description="How long a claimed message is the worker's; after that another worker may send it.",
    )
    batch_size: int = Field(default=50, ge=1, le=1000, description="Messages claimed at once.")
    poll_interval: float = Field(default=5, gt=0, le=3600, description="Seconds to wait when nothing is due.")

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be at least backoff_base")
        return self

    def retry_policy(self) -> RetryPolicy:
        """The backoff schedule these settings give."""
        return RetryPolicy(self.max_attempts, timedelta(seconds=self.backoff_base), timedelta(seconds=self.backoff_cap))

    @property
    def lease(self) -> timedelta:
        """The lease of a claim."""
        return timedelta(seconds=self.lease_seconds)


class NotifyConfig(_Config):
    """The transports and the outbox worker."""

    email: SmtpConfig | None = Field(default=None, description="The SMTP server; unset: e-mail stays queued.")
    sms: SmsConfig = Field(default_factory=SmsConfig, description="The SMS provider (type none: SMS stay queued).")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="The outbox worker.")

    @model_validator(mode="after")
    def _lease_covers_a_send(self) -> Self:
        timeouts = [t.timeout for t in (self.email, self.sms) if t is not None and getattr(t, "type", "") != "none"]
        if timeouts and self.outbox.lease_seconds < 4 * max(timeouts):
            raise ValueError(
                f"outbox.lease_seconds ({self.outbox.lease_seconds:g}) must be at least four transport timeouts "
                f"({4 * max(timeouts):g} s): a send must end before another worker may take the message over"
            )
        return self
