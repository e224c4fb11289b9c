"""The notification outbox's domain model and its pure rules.

A producer (a service that records consent, assigns a case, sees an SLA at risk) enqueues an
:class:`OutboxMessage` under an id it chooses as the dedupe key (``consent-receipt|<event id>``), so that a
producer retrying after a crash enqueues once. The store keeps beside each message its delivery state
(:class:`OutboxItem`): ``pending`` -> ``sending`` (leased to one worker) -> ``sent``, or back to ``pending``
with a later attempt time after a transient failure, or ``dead`` (kept with the reason; an operator may
requeue it). :class:`RetryPolicy` is the backoff schedule.

Times are stored as :func:`stamp` text (UTC, fixed width), which sorts as the instants do, on both backends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import InvalidInputError

Channel = Literal["email", "sms"]
Status = Literal["pending", "sending", "sent", "dead"]

CHANNELS: tuple[Channel, ...] = ("email", "sms")
STATUSES: tuple[Status, ...] = ("pending", "sending", "sent", "dead")

MAX_ID = 200
MAX_SUBJECT = 200
#: The longest body in characters: an e-mail of plain text, an SMS of at most ten concatenated parts.
MAX_BODY: dict[str, int] = {"email": 100_000, "sms": 1_600}
#: The longest failure reason kept (longer ones are cut).
MAX_ERROR = 1_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Deliberately plain: one @, no spaces or controls, a dotted domain. ASCII only (no SMTPUTF8 needed).
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _line(what: str, value: object, limit: int) -> str:
    """A non-empty single line of at most ``limit`` characters (no CR/LF: no header injection)."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit or _CONTROL.search(value):
        raise InvalidInputError(f"{what} must be one line of 1 to {limit} characters without control characters")
    return value


def _aware(what: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be an aware datetime, not {value!r}")
    return value


def check_address(channel: str, to: object) -> str:
    """Return ``to`` if it is an address of ``channel``: an e-mail address, or an E.164 number for SMS."""
    pattern, example = (_EMAIL, "ann@example.com") if channel == "email" else (_E164, "+447700900123")
    if not isinstance(to, str) or len(to) > 254 or not pattern.fullmatch(to):
        raise InvalidInputError(f"{channel} recipient {str(to)[:60]!r} is not an address such as {example}")
    return to


def stamp(at: datetime) -> str:
    """``at`` as stored: UTC ISO 8601 to the microsecond, fixed width, so that text order is time order."""
    return _aware("time", at).astimezone(UTC).isoformat(timespec="microseconds")


def unstamp(text: str | None) -> datetime | None:
    """The time a :func:`stamp` stored (None stays None)."""
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One notification to send once.

    ``id`` is the producer's dedupe key (``case-assigned|<case id>|<agent id>``); ``channel`` ``email`` or
    ``sms``; ``to`` an e-mail address or an E.164 number; ``subject`` e-mail only (required there);
    ``body`` plain text (at most :data:`MAX_BODY` characters); ``kind`` what it is about (``consent_receipt``,
    ``case_assigned``, ``sla_at_risk``); ``not_before`` the earliest send time (None: at ``created_at``);
    ``customer_id`` / ``case_id`` optional references for tracing.
    """

    id: str
    channel: Channel
    to: str
    body: str
    kind: str
    created_at: datetime
    subject: str | None = None
    not_before: datetime | None = None
    customer_id: str | None = None
    case_id: str | None = None

    def __post_init__(self) -> None:
        _line("outbox id", self.id, MAX_ID)
        if self.channel not in CHANNELS:
            raise InvalidInputError(f"message {self.id}: unknown channel {self.channel!r}: expected email or sms")
        check_address(self.channel, self.to)
        limit = MAX_BODY[self.channel]
        if not isinstance(self.body, str) or not self.body.strip() or len(self.body) > limit:
            raise InvalidInputError(f"message {self.id}: the body must be non-empty text of at most {limit} characters")
        if not isinstance(self.kind, str) or not _KIND.fullmatch(self.kind):
            raise InvalidInputError(f"message {self.id}: kind {self.kind!r} is not a lower-case token")
        _aware("created_at", self.created_at)
        if self.channel == "email":
            _line(f"message {self.id}: the subject", self.subject, MAX_SUBJECT)
        elif self.subject is not None:
            raise InvalidInputError(f"message {self.id}: an SMS has no subject")
        if self.not_before is not None:
            _aware("not_before", self.not_before)
        for name in ("customer_id", "case_id"):
            if (value := getattr(self, name)) is not None:
                _line(f"message {self.id}: {name}", value, MAX_ID)

    @property
    def first_attempt_at(self) -> datetime:
        """When the message may first be sent: ``not_before``, else ``created_at``."""
        return self.not_before if self.not_before is not None else self.created_at


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A stored message with its delivery state.

    ``attempts`` counts claims (send attempts started); ``next_attempt_at`` is when a ``pending`` message
    is due; ``lease_owner`` / ``lease_until`` the worker holding a ``sending`` one and until when;
    ``last_error`` the reason of the last failure; ``sent_at`` / ``provider_id`` what the transport answered.
    """

    message: OutboxMessage
    status: Status
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    sent_at: datetime | None = None
    provider_id: str | None = None

    @property
    def id(self) -> str:
        """The message id."""
        return self.message.id


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: the n-th failed attempt waits ``base * 2**(n-1)``, at most ``cap``.

    After ``max_attempts`` attempts the message is dead.
    """

    max_attempts: int = 8
    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be at least 1, not {self.max_attempts!r}")
        if self.base <= timedelta(0) or self.cap < self.base:
            raise InvalidInputError("the backoff base must be positive and the cap at least the base")

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 for the first)."""
        if attempts < 1:
            raise InvalidInputError(f"attempts must be at least 1, not {attempts}")
        # 2**40 * base exceeds any sensible cap; bound the exponent so the product never overflows.
        factor: int = 2 ** min(attempts - 1, 40)
        return min(self.cap, self.base * factor)

    def retry_at(self, attempts: int, failed_at: datetime) -> datetime | None:
        """When to try again after the ``attempts``-th attempt failed at ``failed_at``; None: give up (dead)."""
        if attempts >= self.max_attempts:
            return None
        return _aware("failed_at", failed_at) + self.delay(attempts)


def message_to_json(message: OutboxMessage) -> str:
    """The message as stored (JSON, times as :func:`stamp` text)."""
    data: dict[str, Any] = {
        "id": message.id,
        "channel": message.channel,
        "to": message.to,
        "subject": message.subject,
        "body": message.body,
        "kind": message.kind,
        "created_at": stamp(message.created_at),
        "not_before": None if message.not_before is None else stamp(message.not_before),
        "customer_id": message.customer_id,
        "case_id": message.case_id,
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def message_from_json(text: str) -> OutboxMessage:
    """The message :func:`message_to_json` stored."""
    data = json.loads(text)
    return OutboxMessage(
        id=data["id"],
        channel=data["channel"],
        to=data["to"],
        body=data["body"],
        kind=data["kind"],
        created_at=datetime.fromisoformat(data["created_at"]),
        subject=data["subject"],
        not_before=unstamp(data["not_before"]),
        customer_id=data["customer_id"],
        case_id=data["case_id"],
    )
