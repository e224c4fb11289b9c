"""Applicant accounts of the KYC portal: the account, its one-time-code challenges and its sessions.

Pure model and rules, no I/O: the store keeps these values (:mod:`c360.graph.ports.applicants`) and the
service (``c360.graphql.applicant_auth``) decides with them. Login ids are normalised here, once: an
e-mail address lower-cased (the form the outbox sends to), a mobile number in E.164 (``phonenumbers``).
The rules that read and change a stored value under the store's write lock are here too, so that both
backends apply the same ones: :func:`after_failure`, :func:`after_success`, :func:`otp_attempt`.

Times are stored as :func:`~c360.graph.outbox.stamp` text (UTC, fixed width) on both backends.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import phonenumbers

from .errors import InvalidInputError
from .models import aware
from .outbox import Channel, check_address, stamp, unstamp

AccountStatus = Literal["active", "locked"]
OtpOutcome = Literal["ok", "wrong", "expired", "used", "exhausted"]

STATUSES: tuple[AccountStatus, ...] = ("active", "locked")

_APPLICANT_ID = re.compile(r"^ap_[A-Za-z0-9_-]{8,64}$")
_CHALLENGE_ID = re.compile(r"^otp_[A-Za-z0-9_-]{8,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def check_applicant_id(value: object) -> str:
    """``value`` if it is an applicant id (``ap_`` and 8 to 64 URL-safe characters)."""
    if not isinstance(value, str) or not _APPLICANT_ID.fullmatch(value):
        raise InvalidInputError(f"invalid applicant id {str(value)[:80]!r}")
    return value


def check_challenge_id(value: object) -> str:
    """``value`` if it is a one-time-code challenge id (``otp_`` and 8 to 64 URL-safe characters)."""
    if not isinstance(value, str) or not _CHALLENGE_ID.fullmatch(value):
        raise InvalidInputError(f"invalid challenge id {str(value)[:80]!r}")
    return value


def check_digest(what: str, value: object) -> str:
    """``value`` if it is a SHA-256 digest in lower-case hex (a token hash, a code hash)."""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidInputError(f"{what} is 64 lower-case hex digits")
    return value


def normalise_email(value: object) -> str:
    """The e-mail address lower-cased and trimmed; InvalidInputError unless it is one."""
    if not isinstance(value, str):
        raise InvalidInputError("an e-mail address is a string")
    return check_address("email", value.strip().lower())


def normalise_mobile(value: object, region: str = "IN") -> str:
    """The mobile number in E.164 (``+919812345678``); a number without ``+`` is read as of ``region``."""
    if not isinstance(value, str) or not value.strip() or len(value) > 40:
        raise InvalidInputError("a mobile number is a string of at most 40 characters")
    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidInputError("not a mobile number; give it with its country code, e.g. +91 98123 45678") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInputError("not a valid phone number; give it with its country code, e.g. +91 98123 45678")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def login_kind(login_id: object) -> Literal["email", "mobile"]:
    """Whether a normalised login id is a mobile number (E.164) or an e-mail address (lower case)."""
    if isinstance(login_id, str) and _E164.fullmatch(login_id):
        return "mobile"
    if isinstance(login_id, str) and check_address("email", login_id) == login_id.lower():
        return "email"
    raise InvalidInputError("a login id is normalised: a lower-case e-mail address or an E.164 number")


@dataclass(frozen=True, slots=True)
class Applicant:
    """An applicant's account.

    ``email`` / ``mobile`` are normalised login ids (at least one is set, each unique across applicants);
    ``password_hash`` an argon2id PHC string; ``status`` ``locked`` while ``locked_until`` is ahead;
    ``failed_logins`` the consecutive failures since the last success or lock; ``customer_id`` the
    customer KYC linked (None until then).
    """

    id: str
    created_at: datetime
    password_hash: str
    email: str | None = None
    mobile: str | None = None
    status: AccountStatus = "active"
    failed_logins: int = 0
    locked_until: datetime | None = None
    last_login_at: datetime | None = None
    customer_id: str | None = None

    def __post_init__(self) -> None:
        check_applicant_id(self.id)
        aware("created_at", self.created_at)
        if self.email is None and self.mobile is None:
            raise InvalidInputError("an applicant has an e-mail address, a mobile number or both")
        if self.email is not None and normalise_email(self.email) != self.email:
            raise InvalidInputError("an applicant's e-mail address is stored normalised (lower case)")
        if self.mobile is not None and (not isinstance(self.mobile, str) or not _E164.fullmatch(self.mobile)):
            raise InvalidInputError("an applicant's mobile number is stored in E.164 (+919812345678)")
        if not isinstance(self.password_hash, str) or not self.password_hash.startswith("$argon2"):
            raise InvalidInputError("an applicant's password hash is an argon2 PHC string")
        if self.status not in STATUSES:
            raise InvalidInputError(f"unknown applicant status {self.status!r}: expected active or locked")
        if isinstance(self.failed_logins, bool) or not isinstance(self.failed_logins, int) or self.failed_logins < 0:
            raise InvalidInputError("failed_logins is a count, 0 or more")
        for name in ("locked_until", "last_login_at"):
            if (value := getattr(self, name)) is not None:
                aware(name, value)
        if self.customer_id is not None and (not isinstance(self.customer_id, str) or not self.customer_id.strip()):
            raise InvalidInputError("customer_id is a non-empty string or None")

    def locked_at(self, now: datetime) -> bool:
        """Whether the account is locked at ``now`` (a lock ends by itself at ``locked_until``)."""
        return self.locked_until is not None and aware("now", now) < self.locked_until


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """After ``max_failures`` consecutive failed logins the account is locked for ``lock_for``."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < 1:
            raise InvalidInputError("max_failures is at least 1")
        if not isinstance(self.lock_for, timedelta) or self.lock_for <= timedelta(0):
            raise InvalidInputError("lock_for is a positive timedelta")


def after_failure(applicant: Applicant, now: datetime, policy: LockoutPolicy) -> Applicant:
    """The account after a failed login at ``now``: one more failure; the ``max_failures``-th locks it.

    A failure while locked changes nothing; after a lock has run out the count starts again from 0.
    Locking resets the count, so that after the lock the applicant has ``max_failures`` tries again.
    """
    if applicant.locked_at(now):
        return applicant
    count = (0 if applicant.locked_until is not None else applicant.failed_logins) + 1
    if count >= policy.max_failures:
        return replace(applicant, status="locked", failed_logins=0, locked_until=now + policy.lock_for)
    return replace(applicant, status="active", failed_logins=count, locked_until=None)


def after_success(applicant: Applicant, now: datetime) -> Applicant:
    """The account after a completed login at ``now``: no failures, no lock, ``last_login_at`` now."""
    return replace(applicant, status="active", failed_logins=0, locked_until=None, last_login_at=aware("now", now))


@dataclass(frozen=True, slots=True)
class OtpChallenge:
    """A one-time-code challenge: the code is kept only as ``code_hash`` (HMAC-SHA256 under ``salt``).

    ``channel`` is where the code went; ``attempts`` the codes tried so far (at most ``max_attempts``);
    ``used`` whether a correct code consumed it (single use).
    """

    id: str
    applicant_id: str
    code_hash: str
    salt: str
    channel: Channel
    created_at: datetime
    expires_at: datetime
    max_attempts: int = 5
    attempts: int = 0
    used: bool = False

    def __post_init__(self) -> None:
        check_challenge_id(self.id)
        check_applicant_id(self.applicant_id)
        check_digest("a code hash", self.code_hash)
        if not isinstance(self.salt, str) or not 16 <= len(self.salt) <= 128:
            raise InvalidInputError("a challenge's salt is 16 to 128 characters")
        if self.channel not in ("email", "sms"):
            raise InvalidInputError(f"unknown channel {self.channel!r}: expected email or sms")
        if aware("expires_at", self.expires_at) <= aware("created_at", self.created_at):
            raise InvalidInputError("a challenge expires after it is created")
        for name in ("max_attempts", "attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} is a count, 0 or more")
        if self.max_attempts < 1:
            raise InvalidInputError("max_attempts is at least 1")


def code_hash(salt: str, code: str) -> str:
    """The stored form of a one-time code: HMAC-SHA256 keyed by the challenge's salt, in hex."""
    return hmac.new(salt.encode(), code.encode(), "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class OtpResult:
    """What one attempt at a challenge came to, and how many attempts remain."""

    outcome: OtpOutcome
    attempts_left: int


def otp_attempt(challenge: OtpChallenge, given_hash: str, now: datetime) -> tuple[OtpResult, OtpChallenge]:
    """One attempt with the code whose hash is ``given_hash`` at ``now``: the result and the challenge after.

    A used, expired or exhausted challenge is left as it is; otherwise the attempt counts, and a match
    (compared in constant time) uses the challenge up.
    """
    left = max(challenge.max_attempts - challenge.attempts, 0)
    if challenge.used:
        return OtpResult("used", left), challenge
    if aware("now", now) >= challenge.expires_at:
        return OtpResult("expired", left), challenge
    if left == 0:
        return OtpResult("exhausted", 0), challenge
    ok = hmac.compare_digest(challenge.code_hash, given_hash)
    after = replace(challenge, attempts=challenge.attempts + 1, used=ok)
    return OtpResult("ok" if ok else "wrong", left - 1), after


@dataclass(frozen=True, slots=True)
class ApplicantSession:
    """A session: the SHA-256 hex of its bearer token (the token itself is never stored), owner and lifetime."""

    token_hash: str
    applicant_id: str
    created_at: datetime
    expires_at: datetime
    revoked: bool = False

    def __post_init__(self) -> None:
        check_digest("a token hash", self.token_hash)
        check_applicant_id(self.applicant_id)
        if aware("expires_at", self.expires_at) <= aware("created_at", self.created_at):
            raise InvalidInputError("a session expires after it is created")

    def valid_at(self, now: datetime) -> bool:
        """Whether the session authenticates at ``now``: not revoked and not expired."""
        return not self.revoked and aware("now", now) < self.expires_at


# -- codecs: one row shape (primitive values, times as stamp text) for both backends -------------------


def applicant_row(a: Applicant) -> dict[str, Any]:
    """The account as a row of primitive values."""
    return {
        "id": a.id,
        "created_at": stamp(a.created_at),
        "email": a.email,
        "mobile": a.mobile,
        "password_hash": a.password_hash,
        "status": a.status,
        "failed_logins": a.failed_logins,
        "locked_until": None if a.locked_until is None else stamp(a.locked_until),
        "last_login_at": None if a.last_login_at is None else stamp(a.last_login_at),
        "customer_id": a.customer_id,
    }


def applicant_from_row(row: dict[str, Any]) -> Applicant:
    """The account :func:`applicant_row` made."""
    return Applicant(
        id=row["id"],
        created_at=datetime.fromisoformat(row["created_at"]),
        password_hash=row["password_hash"],
        email=row["email"],
        mobile=row["mobile"],
        status=row["status"],
        failed_logins=int(row["failed_logins"]),
        locked_until=unstamp(row["locked_until"]),
        last_login_at=unstamp(row["last_login_at"]),
        customer_id=row["customer_id"],
    )


def otp_row(c: OtpChallenge) -> dict[str, Any]:
    """The challenge as a row of primitive values."""
    return {
        "id": c.id,
        "applicant_id": c.applicant_id,
        "code_hash": c.code_hash,
        "salt": c.salt,
        "channel": c.channel,
        "created_at": stamp(c.created_at),
        "expires_at": stamp(c.expires_at),
        "max_attempts": c.max_attempts,
        "attempts": c.attempts,
        "used": bool(c.used),
    }


def otp_from_row(row: dict[str, Any]) -> OtpChallenge:
    """The challenge :func:`otp_row` made."""
    return OtpChallenge(
        id=row["id"],
        applicant_id=row["applicant_id"],
        code_hash=row["code_hash"],
        salt=row["salt"],
        channel=row["channel"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        max_attempts=int(row["max_attempts"]),
        attempts=int(row["attempts"]),
        used=bool(row["used"]),
    )


def session_row(s: ApplicantSession) -> dict[str, Any]:
    """The session as a row of primitive values."""
    return {
        "token_hash": s.token_hash,
        "applicant_id": s.applicant_id,
        "created_at": stamp(s.created_at),
        "expires_at": stamp(s.expires_at),
        "revoked": bool(s.revoked),
    }


def session_from_row(row: dict[str, Any]) -> ApplicantSession:
    """The session :func:`session_row` made."""
    return ApplicantSession(
        token_hash=row["token_hash"],
        applicant_id=row["applicant_id"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]),
        revoked=bool(row["revoked"]),
    )
