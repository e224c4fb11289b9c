"""KYC document checks (issue 16): the fields read from a document against what the applicant entered.

Pure: :func:`check_document` turns :class:`~c360.resolution.document_fields.DocumentFields` and the
applicant's entries into :class:`~c360.graph.verification.Verification` records. The name and the date
of birth are compared by :func:`~c360.resolution.identity_checks.check_name` and
:func:`~c360.resolution.identity_checks.check_dob` (source ``document``, the entries as the profile
side); the PAN here, where one character off is an OCR slip an officer decides. Evidence holds masked
numbers only and the document's id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Final

from c360.graph.errors import InvalidInputError
from c360.graph.models import GoldenValue, aware
from c360.graph.verification import Result, Verification
from stdnum.in_ import pan as stdnum_pan

from .document_fields import DocumentFields, parse_date
from .identity_checks import (
    check_aadhaar,
    check_dob,
    check_name,
    check_record,
    pan_problem,
    parse_pan,
    split_name,
)

#: The component named in ``by``.
BY: Final = "c360.document_checks"
#: The entries :func:`check_document` reads (others are ignored): ``name`` is used when neither
#: ``first_name`` nor ``last_name`` is given; ``date_of_birth`` in ISO or any format the fields parse.
ENTRIES: tuple[str, ...] = ("pan", "first_name", "last_name", "name", "date_of_birth")
#: The confidence of a PAN one character off the entered one (manual_review).
PAN_SLIP: Final = 0.7
#: The source named in the golden values built from the entries.
ENTERED: Final = "applicant"


def _masked(pan: str) -> str:
    """``pan`` masked by the CBDT standard when it is a valid PAN; all hidden otherwise."""
    return parse_pan(pan).masked if pan_problem(pan) is None else "X" * len(pan)


def _record(
    check: str,
    result: Result,
    confidence: float,
    reason: str,
    evidence: Mapping[str, Any],
    *,
    subject: str,
    at: datetime,
) -> Verification:
    return check_record(check, result, confidence, reason, evidence, subject=subject, by=BY, at=at, id=None)


def _entry(entered: Mapping[str, str], key: str) -> str | None:
    value = entered.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"the entered {key} must be a string, not {type(value).__name__}")
    return (value.strip() or None) if value else None


def _golden(entered: Mapping[str, str], *, subject: str, at: datetime) -> dict[str, GoldenValue]:
    """The entries as the golden values :func:`check_name` and :func:`check_dob` compare with."""
    first, last = _entry(entered, "first_name"), _entry(entered, "last_name")
    if first is None and last is None and (full := _entry(entered, "name")) is not None:
        first, last = split_name(full)
    values: dict[str, Any] = {"first_name": first, "last_name": last}
    dob_text = _entry(entered, "date_of_birth")
    if dob_text is not None:
        values["date_of_birth"] = parse_date(dob_text)
        if values["date_of_birth"] is None:
            raise InvalidInputError(f"the entered date of birth {dob_text!r} is not a date")
    return {
        name: GoldenValue(value, ENTERED, subject, at, "entered") for name, value in values.items() if value is not None
    }


def check_pan_document(
    document_pan: str | None, entered_pan: str | None, *, subject: str, at: datetime, document_id: str
) -> Verification:
    """``pan_document``: the PAN read from a document against the one entered.

    Equal passes; one character off (an OCR slip or a typo) is manual_review; otherwise fail; no PAN
    read or none entered is inconclusive. The evidence holds masked PANs only.
    """
    evidence: dict[str, Any] = {"document_id": document_id}
    if document_pan is None:
        reason = "no PAN could be read from the document"
        return _record("pan_document", "inconclusive", 0.0, reason, evidence, subject=subject, at=at)
    read = stdnum_pan.compact(document_pan)
    evidence["document_pan"] = _masked(read)
    if entered_pan is None:
        reason = "no PAN was entered to compare with the document's"
        return _record("pan_document", "inconclusive", 0.0, reason, evidence, subject=subject, at=at)
    typed = stdnum_pan.compact(entered_pan)
    evidence["entered_pan"] = _masked(typed)
    if read == typed:
        reason = "the PAN on the document is the one entered"
        return _record("pan_document", "pass", 1.0, reason, evidence, subject=subject, at=at)
    differs = [i for i, (a, b) in enumerate(zip(read, typed, strict=False)) if a != b]
    if len(read) == len(typed) and len(differs) == 1:
        evidence["differs_at"] = differs
        reason = f"the PAN on the document differs from the one entered in one character (position {differs[0] + 1})"
        return _record("pan_document", "manual_review", PAN_SLIP, reason, evidence, subject=subject, at=at)
    reason = "the PAN on the document is not the one entered"
    return _record("pan_document", "fail", 1.0, reason, evidence, subject=subject, at=at)


def check_expiry(expires_on: date, *, subject: str, at: datetime, document_id: str) -> Verification:
    """``document_expiry``: pass if the document is valid on ``at``'s day (it expires at the end of ``expires_on``)."""
    if not isinstance(expires_on, date) or isinstance(expires_on, datetime):
        raise InvalidInputError(f"expires_on must be a date, not {type(expires_on).__name__}")
    evidence = {"document_id": document_id, "expires_on": expires_on.isoformat()}
    if aware("at", at).date() > expires_on:
        reason = f"the document expired on {expires_on.isoformat()}"
        return _record("document_expiry", "fail", 1.0, reason, evidence, subject=subject, at=at)
    reason = f"the document is valid until {expires_on.isoformat()}"
    return _record("document_expiry", "pass", 1.0, reason, evidence, subject=subject, at=at)


def _on_document(record: Verification, document_id: str) -> Verification:
    return replace(record, evidence={**record.evidence, "document_id": document_id})


def check_document(
    fields: DocumentFields,
    entered: Mapping[str, str],
    *,
    subject: str,
    at: datetime,
    document_id: str,
    expires_on: date | None = None,
) -> list[Verification]:
    """The verifications of one document's fields against the applicant's ``entered`` values (:data:`ENTRIES`).

    In this order: ``pan_document`` (for a PAN card, or any document a PAN was read from);
    ``aadhaar_checksum`` (when an Aadhaar number was read; masked); ``name_match`` and ``dob_match``
    (the document's name and date of birth as the claim, the entries as the profile; nothing read is
    inconclusive); ``document_expiry`` when the document expires (``expires_on``, else the expiry read
    from it, e.g. a passport's MRZ). A document with nothing read gives inconclusive records, no error.
    """
    if not isinstance(fields, DocumentFields):
        raise InvalidInputError(f"fields must be DocumentFields, not {type(fields).__name__}")
    if not isinstance(entered, Mapping):
        raise InvalidInputError(f"entered must be a mapping of the applicant's entries, not {type(entered).__name__}")
    if not isinstance(document_id, str) or not document_id.strip() or len(document_id) > 200:
        raise InvalidInputError(
            f"document_id must be a non-empty string of at most 200 characters, not {document_id!r}"
        )
    aware("at", at)
    for key in ENTRIES:
        _entry(entered, key)
    out: list[Verification] = []
    if fields.doc_type == "pan_card" or fields.pan is not None:
        out.append(
            check_pan_document(fields.pan, _entry(entered, "pan"), subject=subject, at=at, document_id=document_id)
        )
    if fields.aadhaar is not None:
        out.append(_on_document(check_aadhaar(fields.aadhaar, subject=subject, at=at, by=BY), document_id))
    golden = _golden(entered, subject=subject, at=at)
    if fields.name is None:
        first, last = None, None
    elif "surname" in fields.other:  # a passport's MRZ names them apart
        first, last = fields.other.get("given_names"), fields.other["surname"]
    else:
        first, last = split_name(fields.name)
    name = check_name(first, last, golden, subject=subject, at=at, source="document", by=BY)
    out.append(_on_document(name, document_id))
    if fields.date_of_birth is None:
        evidence = {"document_id": document_id, "source": "document"}
        reason = "no date of birth could be read from the document"
        out.append(_record("dob_match", "inconclusive", 0.0, reason, evidence, subject=subject, at=at))
    else:
        dob = check_dob(fields.date_of_birth, golden, subject=subject, at=at, source="document", by=BY)
        out.append(_on_document(dob, document_id))
    expiry = expires_on if expires_on is not None else fields.expires_on
    if expiry is not None:
        out.append(check_expiry(expiry, subject=subject, at=at, document_id=document_id))
    return out
