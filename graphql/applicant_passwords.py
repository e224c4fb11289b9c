"""Applicant passwords: the policy a new password must meet, and argon2id hashing.

:func:`password_problems` lists every rule a password breaks (never the password itself);
:func:`check_password` raises them together as one :class:`InvalidInputError`. Hashes are argon2id
PHC strings (``argon2-cffi``); :class:`Passwords` hashes, verifies in constant work whether or not an
account exists (:meth:`Passwords.verify_dummy`), and says when a stored hash needs the current parameters.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

import phonenumbers
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from c360.graph.errors import InvalidInputError

#: The most common passwords (leaked-password lists' heads and their usual 12+ character variants),
#: compared lower-cased. Short ones are here too: the policy's length may be configured down.
COMMON_PASSWORDS: frozenset[str] = frozenset(
    {
        "123456", "123456789", "12345678", "password", "qwerty123", "qwerty1", "111111", "12345", "secret",
        "123123", "1234567890", "1234567", "000000", "qwerty", "abc123", "password1", "iloveyou", "11111111",
        "dragon", "monkey", "123123123", "123321", "qwertyuiop", "00000000", "1q2w3e4r", "1q2w3e4r5t",
        "1q2w3e4r5t6y", "1qaz2wsx3edc", "654321", "666666", "987654321", "football", "baseball", "princess",
        "sunshine", "welcome", "admin", "letmein", "master", "shadow", "superman", "michael", "trustno1",
        "passw0rd", "p@ssw0rd", "p@ssword", "starwars", "whatever", "zaq12wsx", "asdfghjkl", "qazwsx",
        "password123", "password1234", "password12345", "password@123", "password@1234", "password!123",
        "passw0rd1234", "p@ssw0rd1234", "p@ssw0rd123!", "password123!", "qwerty123456", "qwertyuiop12",
        "qwertyuiop123", "qwerty@12345", "123456789012", "1234567890123", "12345678910", "123456789abc",
        "abcdefghijkl", "abcd1234abcd", "abc123abc123", "iloveyou1234", "iloveyou123!", "welcome12345",
        "welcome@1234", "welcome@123", "admin@123456", "administrator", "administrator1", "letmein12345",
        "changeme1234", "changeme123!", "india@123456", "india1234567", "mumbai@12345", "delhi@123456",
        "sachin@12345", "krishna@1234", "ganesh@12345", "sairam@12345", "omsairam1234", "jaishriram123",
        "aaaaaaaaaaaa", "111111111111", "000000000000", "qwer1234qwer", "asdf1234asdf", "zxcvbnm12345",
        "1qaz2wsx", "qwerty12345!", "monkey123456", "dragon123456", "football1234", "baseball1234",
        "sunshine1234", "princess1234", "superman1234", "starwars1234", "trustno11234", "q1w2e3r4t5y6",
    }
)  # fmt: skip

_SYMBOLS = frozenset(string.punctuation + " ")


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """What a new password must be.

    ``min_length`` to ``max_length`` characters, and either ``min_classes`` of lower case, upper case,
    digits and symbols, or at least ``passphrase_length`` characters.
    """

    min_length: int = 12
    max_length: int = 128
    min_classes: int = 3
    passphrase_length: int = 16


def _classes(password: str) -> int:
    kinds = (
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(c in _SYMBOLS or not c.isalnum() for c in password),
    )
    return sum(kinds)


def password_problems(
    password: str, policy: PasswordPolicy, *, email: str | None = None, mobile: str | None = None
) -> list[str]:
    """Every rule of ``policy`` that ``password`` breaks, in a fixed order (empty: it is acceptable).

    ``email`` / ``mobile`` are the applicant's normalised login ids: the password may not contain the
    e-mail's local part (3 characters or more, any case) or the mobile number's digits.
    """
    if not isinstance(password, str):
        return ["the password must be text"]
    problems: list[str] = []
    if len(password) < policy.min_length:
        problems.append(f"at least {policy.min_length} characters")
    if len(password) > policy.max_length:
        problems.append(f"at most {policy.max_length} characters")
    if len(password) < policy.passphrase_length and _classes(password) < policy.min_classes:
        problems.append(
            f"at least {policy.min_classes} of lower case, upper case, digits and symbols "
            f"(or at least {policy.passphrase_length} characters)"
        )
    folded = password.casefold()
    local = email.partition("@")[0].casefold() if email else ""
    if len(local) >= 3 and local in folded:
        problems.append("not containing the e-mail address's name")
    if mobile:
        digits = mobile.lstrip("+")
        national = str(phonenumbers.parse(mobile).national_number)
        squeezed = "".join(c for c in password if c.isdigit())
        if national in squeezed or digits in squeezed:
            problems.append("not containing the mobile number")
    if folded in COMMON_PASSWORDS:
        problems.append("not one of the most common passwords")
    return problems


def check_password(
    password: str, policy: PasswordPolicy, *, email: str | None = None, mobile: str | None = None
) -> None:
    """Raise :class:`InvalidInputError` naming every rule ``password`` breaks (:func:`password_problems`)."""
    problems = password_problems(password, policy, email=email, mobile=mobile)
    if problems:
        raise InvalidInputError("the password must be: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class HashParameters:
    """argon2id's cost: passes (``time_cost``), memory in KiB, lanes; hash and salt lengths in bytes."""

    time_cost: int = 3
    memory_kib: int = 65_536
    parallelism: int = 4
    hash_len: int = 32
    salt_len: int = 16


class Passwords:
    """Hash and verify passwords with argon2id under :class:`HashParameters`."""

    def __init__(self, params: HashParameters) -> None:
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=Type.ID,
        )
        # Verified against when there is no account, so that an unknown login id costs what a wrong password does.
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        """The argon2id PHC string of ``password`` under the current parameters."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (an unreadable hash never matches)."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def verify_dummy(self, password: str) -> None:
        """Spend what :meth:`verify` spends, for a login id that has no account."""
        self.verify(self._dummy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether ``password_hash`` was made under other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
