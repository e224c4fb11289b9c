"""The applicants port: KYC-portal accounts, their one-time-code challenges and their sessions.

Login ids (a normalised e-mail address, an E.164 mobile number) are unique across applicants: the
backend enforces it (a unique index or constraint on each), so that two registrations racing for one
id cannot both succeed. Everything that reads a value to decide its next state (a failed login, an
attempt at a code) does so under the store's write lock, with the same rule on both backends
(:func:`~c360.graph.applicants.after_failure`, :func:`~c360.graph.applicants.otp_attempt`): two
concurrent wrong passwords both count.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from typing import final

from ..applicants import (
    Applicant,
    ApplicantSession,
    LockoutPolicy,
    OtpChallenge,
    OtpResult,
    check_applicant_id,
    check_challenge_id,
    check_digest,
    login_kind,
)
from ..errors import InvalidInputError, NotFoundError
from ..models import aware
from .identity import IdentityPort

#: The message of a login id taken already: it says no more (not which id, not whose).
ALREADY_REGISTERED = "already registered"


def _check(what: str, value: object, cls: type) -> None:
    if not isinstance(value, cls):
        raise InvalidInputError(f"{what} takes {cls.__name__}, not {type(value).__name__}")


class ApplicantsPort(IdentityPort):
    """Create and find applicants; count failed logins; keep code challenges and sessions."""

    @final
    def create_applicant(self, applicant: Applicant) -> None:
        """Store a new applicant; ConflictError (``already registered``) if its id, e-mail or mobile is taken."""
        _check("create_applicant", applicant, Applicant)
        self._call("create_applicant", lambda: self._create_applicant(applicant))

    @final
    def get_applicant(self, applicant_id: str) -> Applicant:
        """The applicant; :class:`NotFoundError` if there is none of that id."""
        check_applicant_id(applicant_id)
        found = self._call("get_applicant", lambda: self._get_applicant(applicant_id))
        if found is None:
            raise NotFoundError(f"no applicant {applicant_id}")
        return found

    @final
    def find_applicant(self, login_id: str) -> Applicant | None:
        """The applicant whose normalised e-mail address or E.164 mobile number is ``login_id``, or None."""
        kind = login_kind(login_id)
        return self._call("find_applicant", lambda: self._find_applicant(kind, login_id))

    @final
    def record_login_failure(self, applicant_id: str, now: datetime, policy: LockoutPolicy) -> Applicant:
        """Count a failed login at ``now`` atomically (:func:`~c360.graph.applicants.after_failure`); the account after.

        :class:`NotFoundError` for an unknown applicant.
        """
        check_applicant_id(applicant_id)
        aware("now", now)
        _check("record_login_failure", policy, LockoutPolicy)
        return self._call("record_login_failure", lambda: self._record_login(applicant_id, now, policy))

    @final
    def record_login_success(self, applicant_id: str, now: datetime) -> Applicant:
        """Reset the failures and any lock and set ``last_login_at`` to ``now``; the account after."""
        check_applicant_id(applicant_id)
        aware("now", now)
        return self._call("record_login_success", lambda: self._record_login(applicant_id, now, None))

    @final
    def set_applicant_customer(self, applicant_id: str, customer_id: str | None) -> Applicant:
        """Link the applicant to the customer ``customer_id`` (None unlinks); the account after.

        :class:`NotFoundError` for an unknown applicant or customer (a merged-away id counts: it resolves).
        """
        check_applicant_id(applicant_id)
        if customer_id is not None:
            if not isinstance(customer_id, str) or not customer_id.strip():
                raise InvalidInputError("customer_id is a non-empty string or None")
            if self.resolve(customer_id) is None:
                raise NotFoundError(f"no customer {customer_id}")
        return self._call(
            "set_applicant_customer", lambda: self._update_applicant(applicant_id, {"customer_id": customer_id})
        )

    @final
    def update_password_hash(self, applicant_id: str, password_hash: str) -> Applicant:
        """Replace the applicant's password hash (a new password, or a rehash under new parameters)."""
        check_applicant_id(applicant_id)
        if not isinstance(password_hash, str) or not password_hash.startswith("$argon2"):
            raise InvalidInputError("a password hash is an argon2 PHC string")
        return self._call(
            "update_password_hash", lambda: self._update_applicant(applicant_id, {"password_hash": password_hash})
        )

    @final
    def create_otp(self, challenge: OtpChallenge) -> None:
        """Store a new challenge; NotFoundError if its applicant is unknown, ConflictError if its id is taken."""
        _check("create_otp", challenge, OtpChallenge)
        self._call("create_otp", lambda: self._create_otp(challenge))

    @final
    def get_otp(self, challenge_id: str) -> OtpChallenge | None:
        """The challenge, or None."""
        check_challenge_id(challenge_id)
        return self._call("get_otp", lambda: self._get_otp(challenge_id))

    @final
    def consume_otp(self, challenge_id: str, given_hash: str, now: datetime) -> OtpResult:
        """One attempt at the challenge with a code whose hash is ``given_hash``, atomically.

        :func:`~c360.graph.applicants.otp_attempt` under the write lock: an attempt counts unless the
        challenge is used, expired or exhausted, and a match uses it up (single use). NotFoundError for
        an unknown challenge.
        """
        check_challenge_id(challenge_id)
        check_digest("a code hash", given_hash)
        aware("now", now)
        found = self._call("consume_otp", lambda: self._consume_otp(challenge_id, given_hash, now))
        if found is None:
            raise NotFoundError(f"no challenge {challenge_id}")
        return found

    @final
    def create_session(self, session: ApplicantSession) -> None:
        """Store a new session; :class:`NotFoundError` if its applicant is unknown."""
        _check("create_session", session, ApplicantSession)
        self._call("create_session", lambda: self._create_session(session))

    @final
    def get_session(self, token_hash: str) -> ApplicantSession | None:
        """The session whose token hashes to ``token_hash`` (revoked and expired ones included), or None."""
        check_digest("a token hash", token_hash)
        return self._call("get_session", lambda: self._get_session(token_hash))

    @final
    def revoke_session(self, token_hash: str) -> bool:
        """Revoke the session; whether it existed and was not revoked yet."""
        check_digest("a token hash", token_hash)
        return self._call("revoke_session", lambda: self._revoke_session(token_hash))

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _create_applicant(self, applicant: Applicant) -> None:
        """Insert; a taken id, e-mail or mobile (the backend's unique index) is ConflictError(ALREADY_REGISTERED)."""

    @abstractmethod
    def _get_applicant(self, applicant_id: str) -> Applicant | None: ...

    @abstractmethod
    def _find_applicant(self, kind: str, login_id: str) -> Applicant | None:
        """By ``email`` or ``mobile`` (``kind``)."""

    @abstractmethod
    def _record_login(self, applicant_id: str, now: datetime, policy: LockoutPolicy | None) -> Applicant:
        """Under the write lock: read, apply ``after_failure`` (a policy) or ``after_success`` (None), write."""

    @abstractmethod
    def _update_applicant(self, applicant_id: str, values: dict[str, str | None]) -> Applicant:
        """Set these columns of the applicant; NotFoundError if unknown; the account after."""

    @abstractmethod
    def _create_otp(self, challenge: OtpChallenge) -> None: ...

    @abstractmethod
    def _get_otp(self, challenge_id: str) -> OtpChallenge | None: ...

    @abstractmethod
    def _consume_otp(self, challenge_id: str, given_hash: str, now: datetime) -> OtpResult | None:
        """Under the write lock: read, apply ``otp_attempt``, write; None for an unknown challenge."""

    @abstractmethod
    def _create_session(self, session: ApplicantSession) -> None: ...

    @abstractmethod
    def _get_session(self, token_hash: str) -> ApplicantSession | None: ...

    @abstractmethod
    def _revoke_session(self, token_hash: str) -> bool: ...
