"""The embedded backend's applicants domain: ``applicants``, ``applicant_otps``, ``applicant_sessions``.

``email`` and ``mobile`` are UNIQUE columns (SQLite lets several rows hold NULL), so a login id is
taken once however registrations race. Read-modify-writes run in ``BEGIN IMMEDIATE`` (or the open
``exclusive()`` transaction): no other writer, in this process or another, runs between the read and
the write.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

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
from .connection import EmbeddedBase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applicants (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, email TEXT UNIQUE, mobile TEXT UNIQUE,
    password_hash TEXT NOT NULL, status TEXT NOT NULL, failed_logins INTEGER NOT NULL, locked_until TEXT,
    last_login_at TEXT, customer_id TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applicants_customer ON applicants(customer_id) WHERE customer_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS applicant_otps (
    id TEXT PRIMARY KEY, applicant_id TEXT NOT NULL, code_hash TEXT NOT NULL, salt TEXT NOT NULL,
    channel TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL, max_attempts INTEGER NOT NULL,
    attempts INTEGER NOT NULL, used INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applicant_sessions (
    token_hash TEXT PRIMARY KEY, applicant_id TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
    revoked INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applicant_sessions_owner ON applicant_sessions(applicant_id);
"""

_APPLICANT_COLUMNS = (
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
_OTP_COLUMNS = (
    "id",
    "applicant_id",
    "code_hash",
    "salt",
    "channel",
    "created_at",
    "expires_at",
    "max_attempts",
    "attempts",
    "used",
)
_SESSION_COLUMNS = ("token_hash", "applicant_id", "created_at", "expires_at", "revoked")


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def _one(db: sqlite3.Connection, table: str, columns: tuple[str, ...], key: str, value: str) -> dict[str, Any] | None:
    found = db.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {key} = ?", (value,)).fetchone()
    return None if found is None else dict(zip(columns, found, strict=True))


class EmbeddedApplicants(EmbeddedBase):
    """Applicant accounts, code challenges and sessions in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "applicants", "applicant_otps", "applicant_sessions"]

    def _row_of(self, table: str, columns: tuple[str, ...], key: str, value: str) -> dict[str, Any] | None:
        with self._lock:
            return _one(self._db, table, columns, key, value)

    def _create_applicant(self, applicant: Applicant) -> None:
        try:
            with self._transaction() as db:
                _insert(db, "applicants", applicant_row(applicant))
        except sqlite3.IntegrityError:
            raise ConflictError(ALREADY_REGISTERED) from None

    def _get_applicant(self, applicant_id: str) -> Applicant | None:
        row = self._row_of("applicants", _APPLICANT_COLUMNS, "id", applicant_id)
        return None if row is None else applicant_from_row(row)

    def _find_applicant(self, kind: str, login_id: str) -> Applicant | None:
        row = self._row_of("applicants", _APPLICANT_COLUMNS, "email" if kind == "email" else "mobile", login_id)
        return None if row is None else applicant_from_row(row)

    def _record_login(self, applicant_id: str, now: datetime, policy: LockoutPolicy | None) -> Applicant:
        with self._transaction() as db:
            row = _one(db, "applicants", _APPLICANT_COLUMNS, "id", applicant_id)
            if row is None:
                raise NotFoundError(f"no applicant {applicant_id}")
            before = applicant_from_row(row)
            after = after_success(before, now) if policy is None else after_failure(before, now, policy)
            new = applicant_row(after)
            db.execute(
                "UPDATE applicants SET status = ?, failed_logins = ?, locked_until = ?, last_login_at = ? WHERE id = ?",
                (new["status"], new["failed_logins"], new["locked_until"], new["last_login_at"], applicant_id),
            )
        return after

    def _update_applicant(self, applicant_id: str, values: dict[str, str | None]) -> Applicant:
        with self._transaction() as db:
            sets = ", ".join(f"{column} = ?" for column in values)
            cur = db.execute(f"UPDATE applicants SET {sets} WHERE id = ?", (*values.values(), applicant_id))
            if not cur.rowcount:
                raise NotFoundError(f"no applicant {applicant_id}")
            row = _one(db, "applicants", _APPLICANT_COLUMNS, "id", applicant_id)
        if row is None:  # deleted by a reset between the update and the read: nothing to return
            raise NotFoundError(f"no applicant {applicant_id}")
        return applicant_from_row(row)

    def _owner_exists(self, db: sqlite3.Connection, applicant_id: str) -> None:
        if db.execute("SELECT 1 FROM applicants WHERE id = ?", (applicant_id,)).fetchone() is None:
            raise NotFoundError(f"no applicant {applicant_id}")

    def _create_otp(self, challenge: OtpChallenge) -> None:
        try:
            with self._transaction() as db:
                self._owner_exists(db, challenge.applicant_id)
                _insert(db, "applicant_otps", otp_row(challenge))
        except sqlite3.IntegrityError:
            raise ConflictError(f"challenge {challenge.id} exists already") from None

    def _get_otp(self, challenge_id: str) -> OtpChallenge | None:
        row = self._row_of("applicant_otps", _OTP_COLUMNS, "id", challenge_id)
        return None if row is None else otp_from_row(row)

    def _consume_otp(self, challenge_id: str, given_hash: str, now: datetime) -> OtpResult | None:
        with self._transaction() as db:
            row = _one(db, "applicant_otps", _OTP_COLUMNS, "id", challenge_id)
            if row is None:
                return None
            before = otp_from_row(row)
            result, after = otp_attempt(before, given_hash, now)
            if after != before:
                db.execute(
                    "UPDATE applicant_otps SET attempts = ?, used = ? WHERE id = ?",
                    (after.attempts, int(after.used), challenge_id),
                )
        return result

    def _create_session(self, session: ApplicantSession) -> None:
        try:
            with self._transaction() as db:
                self._owner_exists(db, session.applicant_id)
                _insert(db, "applicant_sessions", session_row(session))
        except sqlite3.IntegrityError:
            raise ConflictError("that session exists already") from None

    def _get_session(self, token_hash: str) -> ApplicantSession | None:
        row = self._row_of("applicant_sessions", _SESSION_COLUMNS, "token_hash", token_hash)
        return None if row is None else session_from_row(row)

    def _revoke_session(self, token_hash: str) -> bool:
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE applicant_sessions SET revoked = 1 WHERE token_hash = ? AND revoked = 0", (token_hash,)
            )
            return bool(cur.rowcount)
