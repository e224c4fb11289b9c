"""Applicant accounts of the KYC portal: registration, sign-in with a one-time code, sessions.

Applicants sign in apart from staff (whose SSO tokens :mod:`~c360.graphql.auth` verifies):

1. :meth:`ApplicantAuth.register`: an e-mail address and/or a mobile number and a password that meets
   the policy (:mod:`~c360.graphql.applicant_passwords`), hashed with argon2id.
2. :meth:`ApplicantAuth.login`: the right password does not open a session; it sends a 6-digit code
   through the notification outbox (e-mail when the login id was the e-mail address, SMS when it was
   the mobile number) and answers the challenge's id. An unknown login id and a wrong password give the
   same :class:`LoginFailed` and cost the same (a dummy hash is verified).
3. :meth:`ApplicantAuth.verify_otp`: the right code opens a session, an opaque bearer token
   (``c360a_...``) of which only the SHA-256 is stored.

Wrong passwords and wrong codes both count towards the lockout: after ``max_failed_logins`` in a row the
account is locked for ``lockout_minutes`` (:class:`AccountLocked`, HTTP 429 with ``Retry-After``). A
completed sign-in resets the count. Every method takes ``now`` (aware) or reads the service's clock.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Self

from c360.graph.applicants import (
    Applicant,
    ApplicantSession,
    LockoutPolicy,
    OtpChallenge,
    code_hash,
    normalise_email,
    normalise_mobile,
)
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import aware
from c360.graph.outbox import Channel, OutboxMessage
from c360.graph.store import GraphStore
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .applicant_passwords import HashParameters, PasswordPolicy, Passwords, check_password
from .errors import RateLimited
from .principal import AuthError, Principal

#: The prefix of an applicant session token (staff JWTs and partner keys ``c360_`` never start so).
TOKEN_PREFIX = "c360a_"
ROLE = "applicant"


class ApplicantAuthConfig(BaseModel):
    """Applicant sign-in: login ids, password policy and hashing, lockout, one-time codes, sessions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_region: str = Field(
        default="IN", pattern=r"^[A-Z]{2}$", description="Region of a mobile number given without +country code."
    )
    password_min_length: int = Field(default=12, ge=8, le=128, description="Fewest characters in a password.")
    password_max_length: int = Field(default=128, ge=8, le=1024, description="Most characters in a password.")
    password_min_classes: int = Field(
        default=3, ge=1, le=4, description="Character classes (lower, upper, digit, symbol) a shorter password needs."
    )
    passphrase_length: int = Field(
        default=16, ge=8, le=1024, description="A password at least this long needs no mix of character classes."
    )
    argon2_time_cost: int = Field(default=3, ge=1, le=20, description="argon2id passes over the memory.")
    argon2_memory_kib: int = Field(default=65_536, ge=8, le=4_194_304, description="argon2id memory, in KiB.")
    argon2_parallelism: int = Field(default=4, ge=1, le=64, description="argon2id lanes (threads).")
    argon2_hash_len: int = Field(default=32, ge=16, le=64, description="argon2id hash length, in bytes.")
    argon2_salt_len: int = Field(default=16, ge=16, le=64, description="argon2id salt length, in bytes.")
    max_failed_logins: int = Field(
        default=5, ge=1, le=100, description="Consecutive failed logins (passwords or codes) that lock the account."
    )
    lockout_minutes: float = Field(default=15, gt=0, le=1440, description="How long a lock lasts, in minutes.")
    otp_ttl_seconds: int = Field(default=300, ge=30, le=3600, description="How long a one-time code is valid.")
    otp_max_attempts: int = Field(default=5, ge=1, le=20, description="Codes that may be tried against one challenge.")
    session_hours: float = Field(default=8, gt=0, le=720, description="How long a session lasts, in hours.")
    otp_email_subject: str = Field(
        default="Your sign-in code", min_length=1, max_length=200, description="Subject of the code's e-mail."
    )

    @model_validator(mode="after")
    def _lengths(self) -> Self:
        if self.password_max_length < self.password_min_length:
            raise ValueError("password_max_length must be at least password_min_length")
        return self

    def password_policy(self) -> PasswordPolicy:
        """The password rules of this configuration."""
        return PasswordPolicy(
            self.password_min_length, self.password_max_length, self.password_min_classes, self.passphrase_length
        )

    def hash_parameters(self) -> HashParameters:
        """The argon2id parameters of this configuration."""
        return HashParameters(
            self.argon2_time_cost,
            self.argon2_memory_kib,
            self.argon2_parallelism,
            self.argon2_hash_len,
            self.argon2_salt_len,
        )

    def lockout(self) -> LockoutPolicy:
        """The lockout rule of this configuration."""
        return LockoutPolicy(self.max_failed_logins, timedelta(minutes=self.lockout_minutes))


class LoginFailed(AuthError):
    """Wrong login id or password (one message for both: it does not say which) (HTTP 401)."""

    def __init__(self) -> None:
        super().__init__("wrong login id or password")


class CodeRejected(AuthError):
    """A one-time code that is wrong, expired, used or past its attempts, or an unknown challenge (HTTP 401)."""


class AccountLocked(RateLimited):
    """The account is locked after too many failed logins, until ``locked_until`` (HTTP 429, ``Retry-After``)."""

    def __init__(self, locked_until: datetime, now: datetime) -> None:
        Exception.__init__(self, f"account locked until {locked_until.astimezone(UTC).isoformat(timespec='seconds')}")
        self.locked_until = locked_until
        self.wait = max((locked_until - now).total_seconds(), 1.0)


@dataclass(frozen=True, slots=True)
class OtpSent:
    """A code was queued: the challenge to answer, where the code went, until when it is valid."""

    challenge_id: str
    channel: Channel
    expires_at: datetime
    applicant_id: str = ""


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """A new session: the bearer token (shown once, never stored), whose it is, until when it is valid."""

    token: str = field(repr=False)
    applicant_id: str
    expires_at: datetime


def token_hash(token: str) -> str:
    """What the store keeps of a session token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApplicantAuth:
    """The applicant sign-in service over a store (see the module's notes). Thread-safe."""

    def __init__(
        self,
        store: GraphStore,
        config: ApplicantAuthConfig | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.config = config or ApplicantAuthConfig()
        self._clock = clock
        self._passwords = Passwords(self.config.hash_parameters())
        self._policy = self.config.password_policy()
        self._lockout = self.config.lockout()

    def _now(self, now: datetime | None) -> datetime:
        return aware("now", self._clock() if now is None else now)

    def now(self) -> datetime:
        """The service clock's time."""
        return self._now(None)

    def normalise_login(self, login: str) -> str:
        """A login id as stored: an e-mail address lower-cased, a mobile number in E.164 (default region)."""
        if not isinstance(login, str) or not login.strip():
            raise InvalidInputError("a login id is an e-mail address or a mobile number")
        if "@" in login:
            return normalise_email(login)
        return normalise_mobile(login, self.config.default_region)

    def register(
        self, *, password: str, email: str | None = None, mobile: str | None = None, now: datetime | None = None
    ) -> Applicant:
        """Open an account; InvalidInputError (every broken rule) or ConflictError (``already registered``)."""
        at = self._now(now)
        if email is None and mobile is None:
            raise InvalidInputError("register with an e-mail address, a mobile number or both")
        mail = None if email is None else normalise_email(email)
        phone = None if mobile is None else normalise_mobile(mobile, self.config.default_region)
        check_password(password, self._policy, email=mail, mobile=phone)
        applicant = Applicant(
            id="ap_" + secrets.token_urlsafe(16),
            created_at=at,
            password_hash=self._passwords.hash(password),
            email=mail,
            mobile=phone,
        )
        self.store.create_applicant(applicant)
        return applicant

    def login(self, *, login: str, password: str, now: datetime | None = None) -> OtpSent:
        """Check the password and send a one-time code; LoginFailed, or AccountLocked while locked."""
        at = self._now(now)
        if not isinstance(password, str):
            raise InvalidInputError("the password must be text")
        try:
            login_id = self.normalise_login(login)
        except InvalidInputError:
            login_id = None
        applicant = None if login_id is None else self.store.find_applicant(login_id)
        if applicant is None:
            self._passwords.verify_dummy(password)
            raise LoginFailed()
        if applicant.locked_at(at):
            raise AccountLocked(applicant.locked_until or at, at)
        if not self._passwords.verify(applicant.password_hash, password):
            self._failed(applicant.id, at)
            raise LoginFailed()
        if self._passwords.needs_rehash(applicant.password_hash):
            self.store.update_password_hash(applicant.id, self._passwords.hash(password))
        channel: Channel = "email" if login_id == applicant.email else "sms"
        return self._send_code(applicant, channel, at)

    def _failed(self, applicant_id: str, at: datetime) -> None:
        after = self.store.record_login_failure(applicant_id, at, self._lockout)
        if after.locked_at(at) and after.locked_until is not None:
            raise AccountLocked(after.locked_until, at)

    def _send_code(self, applicant: Applicant, channel: Channel, at: datetime) -> OtpSent:
        code = f"{secrets.randbelow(1_000_000):06d}"
        salt = secrets.token_urlsafe(16)
        ttl = timedelta(seconds=self.config.otp_ttl_seconds)
        challenge = OtpChallenge(
            id="otp_" + secrets.token_urlsafe(16),
            applicant_id=applicant.id,
            code_hash=code_hash(salt, code),
            salt=salt,
            channel=channel,
            created_at=at,
            expires_at=at + ttl,
            max_attempts=self.config.otp_max_attempts,
        )
        self.store.create_otp(challenge)
        to = applicant.email if channel == "email" else applicant.mobile
        minutes = max(round(ttl.total_seconds() / 60), 1)
        body = (
            f"Your sign-in code is {code}. It expires in {minutes} minute{'s' if minutes != 1 else ''}. "
            "If you did not try to sign in, ignore this message and do not share the code."
        )
        message = OutboxMessage(
            id=f"applicant-otp|{challenge.id}",
            channel=channel,
            to=str(to),
            body=body,
            kind="applicant_otp",
            created_at=at,
            subject=self.config.otp_email_subject if channel == "email" else None,
        )
        self.store.enqueue([message])
        return OtpSent(challenge.id, channel, challenge.expires_at, challenge.applicant_id)

    def verify_otp(self, *, challenge_id: str, code: str, now: datetime | None = None) -> SessionGrant:
        """Answer a challenge: the right code opens a session; CodeRejected otherwise (a wrong one counts)."""
        at = self._now(now)
        if not isinstance(code, str) or len(code) > 32:
            raise InvalidInputError("a code is the 6 digits that were sent")
        try:
            challenge = self.store.get_otp(challenge_id)
        except InvalidInputError:
            challenge = None
        if challenge is None:
            raise CodeRejected("unknown challenge; sign in again")
        applicant = self.store.get_applicant(challenge.applicant_id)
        if applicant.locked_at(at):
            raise AccountLocked(applicant.locked_until or at, at)
        result = self.store.consume_otp(challenge.id, code_hash(challenge.salt, code.strip()), at)
        if result.outcome == "wrong":
            self._failed(applicant.id, at)
            raise CodeRejected(
                f"wrong code; {result.attempts_left} attempt{'s' if result.attempts_left != 1 else ''} left"
            )
        if result.outcome != "ok":
            reason = {"expired": "the code has expired", "used": "the code was used", "exhausted": "too many attempts"}
            raise CodeRejected(f"{reason[result.outcome]}; sign in again")
        self.store.record_login_success(applicant.id, at)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = at + timedelta(hours=self.config.session_hours)
        self.store.create_session(ApplicantSession(token_hash(token), applicant.id, at, expires))
        return SessionGrant(token, applicant.id, expires)

    def _session(self, token: str, at: datetime) -> ApplicantSession:
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            raise AuthError("not an applicant session token")
        session = self.store.get_session(token_hash(token))
        if session is None or not session.valid_at(at):
            raise AuthError("unknown, expired or revoked applicant session; sign in again")
        return session

    def authenticate(self, token: str, *, now: datetime | None = None) -> Principal:
        """The applicant a session token belongs to (role ``applicant``); AuthError if unknown, expired or revoked."""
        session = self._session(token, self._now(now))
        return Principal(subject=session.applicant_id, role=ROLE, kind="user")

    def logout(self, token: str, *, now: datetime | None = None) -> None:
        """Revoke the session of ``token``; AuthError if it does not authenticate."""
        session = self._session(token, self._now(now))
        self.store.revoke_session(session.token_hash)

    def account(self, who: Principal) -> Applicant:
        """The account of an authenticated applicant; AuthError for any other principal or a deleted account."""
        if who.role != ROLE:
            raise AuthError("not an applicant")
        try:
            return self.store.get_applicant(who.subject)
        except (NotFoundError, InvalidInputError):
            raise AuthError("unknown applicant; sign in again") from None
