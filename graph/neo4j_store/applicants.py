"""The neo4j backend's applicants domain: accounts, code challenges and sessions as nodes.

Graph model::

    (:Applicant {id, created_at, email, mobile, password_hash, status, failed_logins, locked_until,
                 last_login_at, customer_id})
    (:ApplicantOtp {id, applicant_id, code_hash, salt, channel, created_at, expires_at, max_attempts,
                    attempts, used})
    (:ApplicantSession {token_hash, applicant_id, created_at, expires_at, revoked})

Unique constraints on ``Applicant.id``, ``.email`` and ``.mobile`` (a node without the property is not
constrained), ``ApplicantOtp.id`` and ``ApplicantSession.token_hash``. A read-modify-write first takes
the node's write lock (``SET n._lock = true``, removed in the same transaction, Neo4j's documented way
to avoid lost updates), then reads, decides in Python by the port's rule, and writes, all in one
transaction: two concurrent failures both count.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from neo4j import ManagedTransaction
from neo4j import exceptions as neo4j_errors

from ..applicants import (
    Applicant,
    ApplicantSession,
    LockoutPolicy,
    OtpChallenge,
    OtpResult,
    after_failure,
    after_success,
    applicant_from_row,
    applicant_row,
    otp_attempt,
    otp_from_row,
    otp_row,
    session_from_row,
    session_row,
)
from ..errors import ConflictError, NotFoundError
from ..ports.applicants import ALREADY_REGISTERED
from .connection import Neo4jBase

T = TypeVar("T")

_APPLICANT = (
    "id",
    "created_at",
    "email",
    "mobile",
    "password_hash",
    "status",
    "failed_logins",
    "locked_until",
    "last_login_at",
    "customer_id",
)


def _row(props: dict[str, Any], columns: tuple[str, ...] = _APPLICANT) -> dict[str, Any]:
    """Node properties as a codec row: a property that is not set (a null) is None."""
    return {c: props.get(c) for c in columns}


def _locked(tx: ManagedTransaction, label: str, key: str, value: str) -> dict[str, Any] | None:
    """The node's properties after taking its write lock, or None if there is no such node."""
    record = tx.run(
        f"MATCH (n:{label} {{{key}: $value}}) SET n._lock = true RETURN properties(n) AS p", value=value
    ).single()
    if record is None:
        return None
    props = dict(record["p"])
    props.pop("_lock", None)
    return props


class Neo4jApplicants(Neo4jBase):
    """Applicant accounts, code challenges and sessions as nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_applicant_id IF NOT EXISTS FOR (a:Applicant) REQUIRE a.id IS UNIQUE",
            "CREATE CONSTRAINT c360_applicant_email IF NOT EXISTS FOR (a:Applicant) REQUIRE a.email IS UNIQUE",
            "CREATE CONSTRAINT c360_applicant_mobile IF NOT EXISTS FOR (a:Applicant) REQUIRE a.mobile IS UNIQUE",
            "CREATE CONSTRAINT c360_applicant_otp_id IF NOT EXISTS FOR (o:ApplicantOtp) REQUIRE o.id IS UNIQUE",
            "CREATE CONSTRAINT c360_applicant_session IF NOT EXISTS "
            "FOR (s:ApplicantSession) REQUIRE s.token_hash IS UNIQUE",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Applicant", "ApplicantOtp", "ApplicantSession"]

    def _write_tx(self, work: Callable[[ManagedTransaction], T]) -> T:
        with self._session() as s:
            return s.execute_write(work)

    def _create_applicant(self, applicant: Applicant) -> None:
        row = applicant_row(applicant)
        try:
            self._write_tx(lambda tx: tx.run("CREATE (a:Applicant) SET a = $row", row=row).consume())
        except neo4j_errors.ConstraintError:
            raise ConflictError(ALREADY_REGISTERED) from None

    def _applicant_by(self, key: str, value: str) -> Applicant | None:
        rows = self._read(f"MATCH (a:Applicant {{{key}: $value}}) RETURN properties(a) AS p", value=value)
        return applicant_from_row(_row(rows[0]["p"])) if rows else None

    def _get_applicant(self, applicant_id: str) -> Applicant | None:
        return self._applicant_by("id", applicant_id)

    def _find_applicant(self, kind: str, login_id: str) -> Applicant | None:
        return self._applicant_by("email" if kind == "email" else "mobile", login_id)

    def _record_login(self, applicant_id: str, now: datetime, policy: LockoutPolicy | None) -> Applicant:
        def work(tx: ManagedTransaction) -> Applicant:
            props = _locked(tx, "Applicant", "id", applicant_id)
            if props is None:
                raise NotFoundError(f"no applicant {applicant_id}")
            before = applicant_from_row(_row(props))
            after = after_success(before, now) if policy is None else after_failure(before, now, policy)
            new = applicant_row(after)
            values = {k: new[k] for k in ("status", "failed_logins", "locked_until", "last_login_at")}
            tx.run("MATCH (a:Applicant {id: $id}) SET a += $values REMOVE a._lock", id=applicant_id, values=values)
            return after

        return self._write_tx(work)

    def _update_applicant(self, applicant_id: str, values: dict[str, str | None]) -> Applicant:
        def work(tx: ManagedTransaction) -> Applicant:
            record = tx.run(
                "MATCH (a:Applicant {id: $id}) SET a += $values RETURN properties(a) AS p",
                id=applicant_id,
                values=values,
            ).single()
            if record is None:
                raise NotFoundError(f"no applicant {applicant_id}")
            return applicant_from_row(_row(dict(record["p"])))

        return self._write_tx(work)

    def _create_owned(self, label: str, row: dict[str, Any], what: str) -> None:
        def work(tx: ManagedTransaction) -> int:
            record = tx.run(
                f"OPTIONAL MATCH (a:Applicant {{id: $owner}}) WITH a WHERE a IS NOT NULL "
                f"CREATE (n:{label}) SET n = $row RETURN count(n) AS n",
                owner=row["applicant_id"],
                row=row,
            ).single(strict=True)
            return int(record["n"])

        try:
            created = self._write_tx(work)
        except neo4j_errors.ConstraintError:
            raise ConflictError(f"that {what} exists already") from None
        if not created:
            raise NotFoundError(f"no applicant {row['applicant_id']}")

    def _create_otp(self, challenge: OtpChallenge) -> None:
        self._create_owned("ApplicantOtp", otp_row(challenge), "challenge")

    def _get_otp(self, challenge_id: str) -> OtpChallenge | None:
        rows = self._read("MATCH (o:ApplicantOtp {id: $id}) RETURN properties(o) AS p", id=challenge_id)
        return otp_from_row(rows[0]["p"]) if rows else None

    def _consume_otp(self, challenge_id: str, given_hash: str, now: datetime) -> OtpResult | None:
        def work(tx: ManagedTransaction) -> OtpResult | None:
            props = _locked(tx, "ApplicantOtp", "id", challenge_id)
            if props is None:
                return None
            result, after = otp_attempt(otp_from_row(props), given_hash, now)
            tx.run(
                "MATCH (o:ApplicantOtp {id: $id}) SET o.attempts = $attempts, o.used = $used REMOVE o._lock",
                id=challenge_id,
                attempts=after.attempts,
                used=after.used,
            )
            return result

        return self._write_tx(work)

    def _create_session(self, session: ApplicantSession) -> None:
        self._create_owned("ApplicantSession", session_row(session), "session")

    def _get_session(self, token_hash: str) -> ApplicantSession | None:
        rows = self._read("MATCH (s:ApplicantSession {token_hash: $h}) RETURN properties(s) AS p", h=token_hash)
        return session_from_row(rows[0]["p"]) if rows else None

    def _revoke_session(self, token_hash: str) -> bool:
        def work(tx: ManagedTransaction) -> bool:
            record = tx.run(
                "MATCH (s:ApplicantSession {token_hash: $h}) SET s._lock = true "
                "WITH s, NOT s.revoked AS fresh SET s.revoked = true REMOVE s._lock RETURN fresh",
                h=token_hash,
            ).single()
            return bool(record and record["fresh"])

        return self._write_tx(work)
