"""KYC identity checks (issue 16): PAN and Aadhaar rules, and the name and date of birth against the profile.

Each check returns a :class:`~c360.graph.verification.Verification`; none stores or logs anything.

* PAN (:func:`check_pan_format`, :func:`check_pan_holder`, :func:`check_pan_surname`): the format, holder
  type and serial rules are python-stdnum's (:mod:`stdnum.in_.pan`); the 4th character is the holder
  type, the 5th, for an individual (``P``), the first letter of the surname (the last name).
* Aadhaar (:func:`check_aadhaar`): 12 digits, not starting with 0 or 1, Verhoeff check digit
  (:mod:`stdnum.in_.aadhaar`). Only the masked number (last four digits) ever leaves the function.
* Name and date of birth (:func:`check_name`, :func:`check_dob`): the comparison levels the matcher
  itself uses (:mod:`c360.resolution.specification`: exact, swapped names, Jaro-Winkler bands; exact,
  one digit wrong, two transposed, day and month swapped, same year), against the golden record, plus
  initials and middle names for given names. A near match is ``manual_review``, never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from c360.graph.errors import InvalidInputError
from c360.graph.models import GoldenValue
from c360.graph.verification import Result, Verification, new_verification_id
from stdnum import exceptions as stdnum_errors
from stdnum.in_ import aadhaar as stdnum_aadhaar
from stdnum.in_ import pan as stdnum_pan

from .features import clean_text
from .specification import Comparison, ComparisonSpec, Specification

#: The component named in ``by`` when the caller gives none.
BY: Final = "c360.identity_checks"

#: The holder kinds by the PAN's 4th character (stdnum's table decides which characters are valid and
#: gives the long description; these are the short names an applicant's kind is given in).
HOLDER_KINDS: Final[Mapping[str, str]] = {
    "P": "individual",
    "C": "company",
    "H": "huf",
    "F": "firm",
    "A": "aop",
    "T": "trust",
    "B": "boi",
    "L": "local_authority",
    "J": "artificial_juridical_person",
    "G": "government",
    "K": "krish",
}
#: Where a claimed name or date of birth came from.
CLAIM_SOURCES: tuple[str, ...] = ("document", "applicant", "provider")

#: A name at or above this confidence passes; at or above :data:`NAME_REVIEW` an officer decides.
NAME_PASS: Final = 0.8
NAME_REVIEW: Final = 0.5
#: The most confidence a name gets when only one part (given names or surname) could be compared.
PARTIAL_NAME: Final = 0.5
#: Confidence of each name level (the matcher's labels, and ``initials`` for a given name as initials).
NAME_LEVELS: Final[Mapping[str, float]] = {
    "exact match": 1.0,
    "swapped": 0.9,
    "Jaro-Winkler >= 0.92": 0.85,
    "initials": 0.8,
    "Jaro-Winkler >= 0.8": 0.6,
    "all other comparisons": 0.0,
}
#: The result and confidence of each date-of-birth level (the matcher's labels).
DOB_LEVELS: Final[Mapping[str, tuple[Result, float]]] = {
    "exact match": ("pass", 1.0),
    "one edit apart": ("manual_review", 0.6),
    "adjacent characters transposed": ("manual_review", 0.5),
    "day and month swapped": ("manual_review", 0.5),
    "same year": ("fail", 0.2),
    "all other comparisons": ("fail", 0.0),
}

# The matcher's own levels for these three columns, built as the model builds them.
_FIRST, _LAST, _DOB = Specification(
    comparisons=(
        ComparisonSpec("first_name", "name"),
        ComparisonSpec("last_name", "name"),
        ComparisonSpec("dob", "date"),
    ),
    blocking=(("last_name",),),
    em_sessions=(),
    deterministic=(),
    origin="kyc",
).built()
_NULL = "null"


@dataclass(frozen=True, slots=True)
class PanInfo:
    """What a valid PAN says: the number (compact), its holder type and the letter of the holder's name."""

    pan: str
    holder_code: str
    holder_kind: str
    holder_type: str
    name_letter: str

    @property
    def individual(self) -> bool:
        """Whether the holder is an individual person (4th character ``P``)."""
        return self.holder_code == "P"

    @property
    def masked(self) -> str:
        """The PAN masked as the CBDT standard says (serial number hidden)."""
        return stdnum_pan.mask(self.pan)


def _pan_text(pan: object) -> str:
    if not isinstance(pan, str):
        raise InvalidInputError(f"a PAN must be a string, not {type(pan).__name__}")
    return stdnum_pan.compact(pan)


def pan_problem(pan: str) -> str | None:
    """Why ``pan`` is not a valid PAN, or None if it is (stdnum's rules)."""
    number = _pan_text(pan)
    try:
        stdnum_pan.validate(number)
    except stdnum_errors.InvalidLength:
        return f"a PAN has 10 characters, this one has {len(number)}"
    except stdnum_errors.InvalidFormat:
        return "a PAN is five letters, four digits and a letter"
    except stdnum_errors.ValidationError:  # InvalidComponent: the holder type or the serial number
        try:
            stdnum_pan.info(number)
        except stdnum_errors.ValidationError:
            return f"its 4th character {number[3]!r} is no holder type ({', '.join(sorted(HOLDER_KINDS))})"
        return "its serial number 0000 is never issued"
    return None


def parse_pan(pan: str) -> PanInfo:
    """The :class:`PanInfo` of a valid PAN; InvalidInputError naming the problem otherwise."""
    problem = pan_problem(pan)
    if problem is not None:
        raise InvalidInputError(f"invalid PAN: {problem}")
    number = _pan_text(pan)
    info = stdnum_pan.info(number)
    code = number[3]
    return PanInfo(number, code, HOLDER_KINDS.get(code, "other"), info["holder_type"], info["initial"])


def check_record(
    check: str,
    result: Result,
    confidence: float,
    reason: str,
    evidence: Mapping[str, Any],
    *,
    subject: str,
    by: str,
    at: datetime,
    id: str | None,
) -> Verification:
    """One check's verification record (a new id unless ``id``)."""
    return Verification(
        id=id or new_verification_id(),
        subject=subject,
        check=check,
        result=result,
        confidence=confidence,
        reason=reason,
        evidence=evidence,
        by=by,
        at=at,
    )


def check_pan_format(pan: str, *, subject: str, at: datetime, by: str = BY, id: str | None = None) -> Verification:
    """``pan_format``: pass if ``pan`` is a valid PAN (length, 5 letters 4 digits 1 letter, holder type, serial)."""
    problem = pan_problem(pan)
    if problem is not None:
        return check_record(
            "pan_format",
            "fail",
            1.0,
            f"not a valid PAN: {problem}",
            {"length": len(_pan_text(pan))},
            subject=subject,
            by=by,
            at=at,
            id=id,
        )
    info = parse_pan(pan)
    evidence = {"pan": info.masked, "holder_code": info.holder_code, "holder_type": info.holder_type}
    return check_record(
        "pan_format",
        "pass",
        1.0,
        f"a valid PAN of a holder of type {info.holder_type}",
        evidence,
        subject=subject,
        by=by,
        at=at,
        id=id,
    )


def check_pan_holder(
    pan: str, applicant_kind: str, *, subject: str, at: datetime, by: str = BY, id: str | None = None
) -> Verification:
    """``pan_holder``: pass if the PAN's holder type is the applicant's kind (one of :data:`HOLDER_KINDS`' values).

    An individual's PAN presented by a company (or any other mismatch) fails; an invalid PAN is inconclusive.
    """
    if applicant_kind not in HOLDER_KINDS.values():
        raise InvalidInputError(
            f"unknown applicant kind {applicant_kind!r}: expected one of {', '.join(HOLDER_KINDS.values())}"
        )
    problem = pan_problem(pan)
    if problem is not None:
        return check_record(
            "pan_holder",
            "inconclusive",
            0.0,
            f"no holder type: not a valid PAN ({problem})",
            {"applicant_kind": applicant_kind},
            subject=subject,
            by=by,
            at=at,
            id=id,
        )
    info = parse_pan(pan)
    evidence = {"pan": info.masked, "holder_code": info.holder_code, "applicant_kind": applicant_kind}
    if info.holder_kind == applicant_kind:
        reason = f"the PAN's holder type ({info.holder_type}) is the applicant's kind"
        return check_record("pan_holder", "pass", 1.0, reason, evidence, subject=subject, by=by, at=at, id=id)
    reason = (
        f"the PAN belongs to a holder of type {info.holder_type} (4th character {info.holder_code}), "
        f"but the applicant is of kind {applicant_kind}"
    )
    return check_record("pan_holder", "fail", 1.0, reason, evidence, subject=subject, by=by, at=at, id=id)


def check_pan_surname(
    pan: str, last_name: str | None, *, subject: str, at: datetime, by: str = BY, id: str | None = None
) -> Verification:
    """``pan_surname``: for an individual's PAN, pass if its 5th character is the surname's first letter.

    The surname is the last name, compared after c360's text cleaning (accents stripped, lower case). A
    mismatch fails; an invalid PAN, a PAN that is not an individual's, or no surname is inconclusive.
    """
    problem = pan_problem(pan)
    if problem is not None:
        return check_record(
            "pan_surname",
            "inconclusive",
            0.0,
            f"not a valid PAN ({problem})",
            {},
            subject=subject,
            by=by,
            at=at,
            id=id,
        )
    info = parse_pan(pan)
    evidence: dict[str, Any] = {"pan": info.masked, "holder_code": info.holder_code, "pan_letter": info.name_letter}
    if not info.individual:
        reason = f"the 5th character of a {info.holder_type}'s PAN is not a surname's letter"
        return check_record("pan_surname", "inconclusive", 0.0, reason, evidence, subject=subject, by=by, at=at, id=id)
    surname = _name_text("last_name", last_name)
    if surname is None:
        reason = "no surname to compare with the PAN's 5th character"
        return check_record("pan_surname", "inconclusive", 0.0, reason, evidence, subject=subject, by=by, at=at, id=id)
    letter = surname[0].upper()
    evidence["surname_letter"] = letter
    if letter == info.name_letter:
        reason = f"the PAN's 5th character {info.name_letter} is the surname's first letter"
        return check_record("pan_surname", "pass", 1.0, reason, evidence, subject=subject, by=by, at=at, id=id)
    reason = f"the PAN's 5th character {info.name_letter} is not the surname's first letter {letter}"
    return check_record("pan_surname", "fail", 1.0, reason, evidence, subject=subject, by=by, at=at, id=id)


def mask_aadhaar(number: str) -> str:
    """``number`` masked: only its last four digits shown (``XXXX XXXX 2346``); all hidden if it is short."""
    if not isinstance(number, str):
        raise InvalidInputError(f"an Aadhaar number must be a string, not {type(number).__name__}")
    compact = stdnum_aadhaar.compact(number)
    return stdnum_aadhaar.mask(compact) if len(compact) >= 8 else "X" * len(compact)


def check_aadhaar(number: str, *, subject: str, at: datetime, by: str = BY, id: str | None = None) -> Verification:
    """``aadhaar_checksum``: pass if ``number`` is 12 digits, not starting with 0 or 1, with a right check digit.

    The record holds only the masked number (:func:`mask_aadhaar`); neither it, its reason nor an error
    raised here contains the full number.
    """
    masked = mask_aadhaar(number)
    compact = stdnum_aadhaar.compact(number)
    evidence = {"aadhaar": masked}
    problem: str | None = None
    try:
        stdnum_aadhaar.validate(compact)
    except stdnum_errors.InvalidLength:
        problem = f"an Aadhaar number has 12 digits, this one has {len(compact)} characters"
    except stdnum_errors.InvalidChecksum:
        problem = "its check digit is wrong (Verhoeff)"
    except stdnum_errors.ValidationError:  # InvalidFormat
        if not compact.isdigit():
            problem = "an Aadhaar number is digits only"
        elif compact[0] in "01":
            problem = "an Aadhaar number never starts with 0 or 1"
        else:
            problem = "an Aadhaar number is never a palindrome"
    if problem is not None:
        return check_record(
            "aadhaar_checksum",
            "fail",
            1.0,
            f"Aadhaar {masked}: {problem}",
            evidence,
            subject=subject,
            by=by,
            at=at,
            id=id,
        )
    return check_record(
        "aadhaar_checksum",
        "pass",
        1.0,
        f"Aadhaar {masked}: 12 digits with a valid check digit",
        evidence,
        subject=subject,
        by=by,
        at=at,
        id=id,
    )


def split_name(full_name: str) -> tuple[str | None, str | None]:
    """A full name as read from a document, as (given names, surname): the surname is the last word."""
    if not isinstance(full_name, str):
        raise InvalidInputError(f"a name must be a string, not {type(full_name).__name__}")
    words = (clean_text(full_name) or "").split()
    if not words:
        return None, None
    return (" ".join(words[:-1]) or None), words[-1]


def _source(source: str) -> str:
    if source not in CLAIM_SOURCES:
        raise InvalidInputError(f"unknown claim source {source!r}: expected one of {', '.join(CLAIM_SOURCES)}")
    return source


def _golden(golden: Mapping[str, GoldenValue], name: str) -> tuple[Any, str | None]:
    """The golden record's value of field ``name`` and the record it came from (``source|key``)."""
    if not isinstance(golden, Mapping):
        raise InvalidInputError(f"golden must be a golden record (a mapping), not {type(golden).__name__}")
    value = golden.get(name)
    if value is None:
        return None, None
    return value.value, f"{value.source}|{value.source_key}"


def _name_text(what: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string or None, not {type(value).__name__}")
    return clean_text(value)


def _label(comparison: Comparison, left: Mapping[str, Any], right: Mapping[str, Any]) -> str:
    label = comparison.levels[comparison.level_of(left, right)].label
    return "swapped" if label.startswith("equals the other side's") else label


def _given_level(claimed: str, profile: str, left: Mapping[str, Any], right: Mapping[str, Any]) -> tuple[str, str]:
    """The best level of two given names and what reached it: ``whole``, ``first_word`` or ``initials``."""
    best = (_label(_FIRST, left, right), "whole")
    if best[0] == "exact match":
        return best
    a, b = claimed.split(), profile.split()
    candidates = [best]
    if len(a) > 1 or len(b) > 1:  # a middle name on one side only, or a different one
        candidates.append((_label(_FIRST, {"first_name": a[0]}, {"first_name": b[0]}), "first_word"))
    shorter, longer = (a, b) if len(a[0]) <= len(b[0]) else (b, a)
    initials = all(len(w) == 1 for w in shorter)
    if initials and all(w == x[0] for w, x in zip(shorter, longer, strict=False)):
        candidates.append(("initials", "initials"))
    # max keeps the first of equal confidence: the whole name before its parts.
    return max(candidates, key=lambda c: NAME_LEVELS[c[0]])


def check_name(
    first_name: str | None,
    last_name: str | None,
    golden: Mapping[str, GoldenValue],
    *,
    subject: str,
    at: datetime,
    source: str = "document",
    by: str = BY,
    id: str | None = None,
) -> Verification:
    """``name_match``: the claimed name against the golden record's, at the matcher's levels.

    ``source`` says where the claim came from (:data:`CLAIM_SOURCES`). Each part reaches a level (given
    names also as initials or without middle names; both parts swapped is one level); the confidence is
    the weaker part's (:data:`NAME_LEVELS`): from :data:`NAME_PASS` pass, from :data:`NAME_REVIEW`
    manual_review, below fail. With one part missing on either side the other decides, but at most
    manual_review and with at most :data:`PARTIAL_NAME` confidence; with nothing to compare, inconclusive.
    """
    _source(source)
    claimed = {"first_name": _name_text("first_name", first_name), "last_name": _name_text("last_name", last_name)}
    profile_first, first_from = _golden(golden, "first_name")
    profile_last, last_from = _golden(golden, "last_name")
    profile = {
        "first_name": _name_text("the golden first_name", profile_first),
        "last_name": _name_text("the golden last_name", profile_last),
    }
    last = _label(_LAST, claimed, profile)
    if last == "swapped" or claimed["first_name"] is None or profile["first_name"] is None:
        first, compared = _label(_FIRST, claimed, profile), "whole"
    else:
        first, compared = _given_level(claimed["first_name"], profile["first_name"], claimed, profile)
    evidence: dict[str, Any] = {
        "source": source,
        "first_name_level": first,
        "first_name_compared": compared,
        "last_name_level": last,
        "golden_records": {"first_name": first_from, "last_name": last_from},
    }
    if first == _NULL and last == _NULL:
        reason = "no name to compare: " + (
            "the claim has none" if not any(claimed.values()) else "the profile has none"
        )
        return check_record("name_match", "inconclusive", 0.0, reason, evidence, subject=subject, by=by, at=at, id=id)
    confidence = min(NAME_LEVELS[level] for level in (first, last) if level != _NULL)
    partial = _NULL in (first, last)
    if confidence >= NAME_PASS and not partial:
        result: Result = "pass"
    elif confidence >= NAME_REVIEW:
        result = "manual_review"
    else:
        result = "fail"
    if partial:  # half a name compared is at best half the evidence
        confidence = min(confidence, PARTIAL_NAME)
    evidence["confidence_levels"] = {"first_name": NAME_LEVELS.get(first), "last_name": NAME_LEVELS.get(last)}
    how = {"whole": "", "first_word": " (first words)", "initials": ""}[compared]
    reason = f"given names: {first}{how}; surname: {last}"
    if partial:
        reason += " (only one part of the name could be compared)"
    return check_record("name_match", result, confidence, reason, evidence, subject=subject, by=by, at=at, id=id)


def check_dob(
    dob: date,
    golden: Mapping[str, GoldenValue],
    *,
    subject: str,
    at: datetime,
    source: str = "document",
    by: str = BY,
    id: str | None = None,
) -> Verification:
    """``dob_match``: the claimed date of birth against the golden record's, at the matcher's date levels.

    Exact passes; one digit wrong, two digits transposed, or day and month swapped is manual_review; the
    same year only, or less, fails (:data:`DOB_LEVELS`). No date in the profile is inconclusive.
    """
    _source(source)
    if not isinstance(dob, date) or isinstance(dob, datetime):
        raise InvalidInputError(f"dob must be a date, not {type(dob).__name__}")
    profile_dob, dob_from = _golden(golden, "date_of_birth")
    if profile_dob is not None and (not isinstance(profile_dob, date) or isinstance(profile_dob, datetime)):
        raise InvalidInputError(f"the golden date_of_birth must be a date, not {type(profile_dob).__name__}")
    evidence: dict[str, Any] = {"source": source, "golden_record": dob_from}
    if profile_dob is None:
        evidence["level"] = _NULL
        reason = "the profile has no date of birth"
        return check_record("dob_match", "inconclusive", 0.0, reason, evidence, subject=subject, by=by, at=at, id=id)
    level = _label(_DOB, {"dob": dob.isoformat()}, {"dob": profile_dob.isoformat()})
    evidence["level"] = level
    result, confidence = DOB_LEVELS[level]
    reason = f"date of birth: {level}"
    return check_record("dob_match", result, confidence, reason, evidence, subject=subject, by=by, at=at, id=id)
