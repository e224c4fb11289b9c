"""KYC verification records (issue 16): what one identity check concluded about one subject.

A :class:`Verification` is the outcome of one check (a PAN's format, an Aadhaar check digit, the name
on a document against the golden record, an external PAN service's answer) for a subject, a customer
id or a loan application id. The checks themselves live where their dependencies are
(:mod:`c360.resolution.identity_checks`, :mod:`c360.connectors.pan_service`); this module is the pure
model they all return, which the store keeps and the workflow reads.

Evidence is a small JSON-able mapping: it holds what the check compared (levels, masked numbers), never
a full Aadhaar number.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from .errors import InvalidInputError

#: The checks a verification may record.
CHECKS: tuple[str, ...] = (
    "pan_format",
    "pan_holder",
    "pan_surname",
    "aadhaar_checksum",
    "name_match",
    "dob_match",
    "pan_service",
    "pan_document",
    "document_expiry",
)
#: ``pass`` and ``fail`` are conclusions; ``inconclusive``: the check could not be made (data missing);
#: ``manual_review``: an officer must decide (a near match, the provider down).
RESULTS: tuple[str, ...] = ("pass", "fail", "inconclusive", "manual_review")

Result = Literal["pass", "fail", "inconclusive", "manual_review"]

_MAX_ID = 200
_MAX_REASON = 1000
#: The evidence as compact JSON may not be longer than this (a verification is a small record).
MAX_EVIDENCE_CHARS = 4096
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def new_verification_id() -> str:
    """A fresh, unique verification id (``ver_`` and 32 hex digits)."""
    return f"ver_{uuid.uuid4().hex}"


def _text(what: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInputError(f"{what} must be a non-empty string of at most {limit} characters, not {value!r}")
    return value


def _frozen(path: str, value: object) -> Any:
    """``value`` as an immutable JSON value (mappings read-only, lists as tuples); InvalidInputError if not JSON."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"evidence {path}: {value} is not a finite number")
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise InvalidInputError(f"evidence {path}: key {key!r} is not a lower-case token ([a-z][a-z0-9_]*)")
            out[key] = _frozen(f"{path}.{key}", item)
        return MappingProxyType(out)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(_frozen(f"{path}[{i}]", item) for i, item in enumerate(value))
    raise InvalidInputError(f"evidence {path}: a {type(value).__name__} is not a JSON value")


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thawed(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thawed(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of one identity check.

    ``subject`` is a customer id or an application id; ``check`` one of :data:`CHECKS`; ``result`` one of
    :data:`RESULTS`; ``confidence`` in [0, 1] how sure the check is of its result; ``reason`` says why in
    words an officer reads; ``evidence`` what was compared (JSON-able, read-only once made); ``by`` the
    system component or the officer id that made it; ``at`` when (aware).
    """

    id: str
    subject: str
    check: str
    result: Result
    confidence: float
    reason: str
    evidence: Mapping[str, Any]
    by: str
    at: datetime

    def __post_init__(self) -> None:
        _text("verification id", self.id, _MAX_ID)
        _text("subject", self.subject, _MAX_ID)
        if self.check not in CHECKS:
            raise InvalidInputError(f"unknown check {self.check!r}: expected one of {', '.join(CHECKS)}")
        if self.result not in RESULTS:
            raise InvalidInputError(f"unknown result {self.result!r}: expected one of {', '.join(RESULTS)}")
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c) or not 0 <= c <= 1:
            raise InvalidInputError(f"confidence must be a number from 0 to 1, not {c!r}")
        object.__setattr__(self, "confidence", float(c))
        _text("reason", self.reason, _MAX_REASON)
        if not isinstance(self.evidence, Mapping):
            raise InvalidInputError(f"evidence must be a mapping, not {type(self.evidence).__name__}")
        evidence = _frozen("", self.evidence)
        if len(json.dumps(_thawed(evidence), separators=(",", ":"))) > MAX_EVIDENCE_CHARS:
            raise InvalidInputError(f"evidence is longer than {MAX_EVIDENCE_CHARS} characters as JSON")
        object.__setattr__(self, "evidence", evidence)
        _text("by", self.by, _MAX_ID)
        if not isinstance(self.at, datetime):
            raise InvalidInputError(f"at must be a datetime, not {type(self.at).__name__}")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InvalidInputError(f"at {self.at.isoformat()} has no time zone: give an aware datetime (e.g. UTC)")

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-safe dict (``at`` in ISO 8601)."""
        return {
            "id": self.id,
            "subject": self.subject,
            "check": self.check,
            "result": self.result,
            "confidence": self.confidence,
            "reason": self.reason,
            "evidence": _thawed(self.evidence),
            "by": self.by,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verification:
        """Read :meth:`to_json`'s output; InvalidInputError if a field is missing or bad."""
        try:
            at = datetime.fromisoformat(data["at"])
            return cls(
                id=data["id"],
                subject=data["subject"],
                check=data["check"],
                result=data["result"],
                confidence=data["confidence"],
                reason=data["reason"],
                evidence=data["evidence"],
                by=data["by"],
                at=at,
            )
        except KeyError as exc:
            raise InvalidInputError(f"a verification record has no {exc.args[0]!r}") from None
        except (TypeError, ValueError):
            raise InvalidInputError(f"a verification record's time {data.get('at')!r} is not ISO 8601") from None
