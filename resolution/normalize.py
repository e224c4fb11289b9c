"""Identifier normalisation: the one place that decides when two raw values are the same identifier."""

from __future__ import annotations

import re

import phonenumbers
from c360.graph.models import Identifier, SourceRecord

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ID_SEPARATORS = re.compile(r"[\s\-./_]")
_NANP_REGIONS = frozenset({"US", "CA"})
_NANP_SHAPE = re.compile(r"^\+?[\d\s().-]+$")


def _nanp(raw: str) -> str | None:
    """E.164 of a plain North American number (+1 NXX NXX XXXX), or ``None`` to ask phonenumbers."""
    if not _NANP_SHAPE.match(raw):
        return None
    digits = "".join(ch for ch in raw if ch.isdigit())
    plus = raw.lstrip().startswith("+")
    if len(digits) == 10 and not plus and digits[0] not in "01" and digits[3] not in "01":
        return "+1" + digits
    if len(digits) == 11 and digits[0] == "1" and digits[1] not in "01" and digits[4] not in "01":
        return "+" + digits
    return None


def normalize_email(raw: str | None) -> str | None:
    """Lower-case and trim an email; ``None`` unless it looks like ``local@domain.tld``."""
    if not raw:
        return None
    value = raw.strip().lower()
    return value if _EMAIL.match(value) else None


def normalize_phone(raw: str | None, region: str) -> str | None:
    """Return the phone number in E.164 (``+14155550123``), reading national numbers in ``region``.

    ``None`` when the value cannot be a phone number.
    """
    if not raw or not raw.strip():
        return None
    if region in _NANP_REGIONS and (fast := _nanp(raw)) is not None:
        return fast
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_national_id(raw: str | None, kind: str | None) -> str | None:
    """Upper-case a national id without separators, prefixed by its kind: ``SSN:123456789``."""
    if not raw:
        return None
    value = _ID_SEPARATORS.sub("", raw).upper()
    if len(value) < 4 or not value.isalnum():
        return None
    return f"{(kind or 'ID').strip().upper()}:{value}"


def normalize_customer_number(raw: str | None, source: str) -> str | None:
    """Scope a source's customer number by the source: ``crm:C-0001``."""
    if not raw or not raw.strip():
        return None
    return f"{source}:{raw.strip()}"


def identifiers_of(record: SourceRecord, region: str) -> tuple[Identifier, ...]:
    """Return the normalised identifiers a record carries, sorted, without duplicates."""
    found = {
        ("email", normalize_email(record.email)),
        ("phone", normalize_phone(record.phone, region)),
        ("national_id", normalize_national_id(record.national_id, record.national_id_kind)),
        ("customer_number", normalize_customer_number(record.customer_number, record.source)),
    }
    return tuple(sorted(Identifier(kind, value) for kind, value in found if value))


def blocklist_key(raw: str) -> str:
    """The form in which a blocklisted id or customer number is compared: upper-case, no separators."""
    return "value|" + _ID_SEPARATORS.sub("", raw).upper()


def is_junk(identifier: Identifier, blocklist: frozenset[str]) -> bool:
    """Whether ``identifier`` is a placeholder value that must never link (blocklisted or degenerate).

    ``blocklist`` holds identifier uids (``email|test@test.com``) and :func:`blocklist_key` forms, which
    match national ids and customer numbers whatever their kind or source prefix.
    """
    if identifier.uid in blocklist:
        return True
    prefixed = identifier.kind in ("national_id", "customer_number")
    if prefixed and blocklist_key(identifier.value.partition(":")[2]) in blocklist:
        return True
    if identifier.kind == "phone":
        digits = identifier.value.lstrip("+")
        national = digits[-10:]
        return len(set(national)) <= 2 or national in ("1234567890", "0123456789")
    if identifier.kind == "national_id":
        value = identifier.value.partition(":")[2]
        return len(set(value)) <= 1 or value in ("123456789", "0123456789")
    return False
