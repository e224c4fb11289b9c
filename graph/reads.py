"""What the store's reads answer: blocking candidates, what an ingest knows of stored records, counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .models import Evidence, IdentifierState, SourceRecord


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored record found through blocking keys, and the keys that found it.

    ``view`` is the comparison view filed with the keys (opaque to the store); a record filed without one
    comes as ``record`` instead. The customer is not read here: only the few candidates that score need it.
    """

    uid: str
    keys: tuple[str, ...]
    view: str | None = None
    record: SourceRecord | None = None


@dataclass(frozen=True, slots=True)
class ExistingRecord:
    """What an ingest needs to know of a record already stored."""

    uid: str
    content_hash: str
    customer_id: str
    evidence: Evidence
    #: uids of the identifiers the stored version carries
    identifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lookup:
    """The store's answer to an ingest batch's questions: known records and identifiers."""

    records: Mapping[str, ExistingRecord]
    identifiers: Mapping[str, IdentifierState]
    #: identifier uid -> {record uid: customer id} of the records bearing it (flagged identifiers omitted)
    bearers: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counts of what the graph holds."""

    records: int
    customers: int
    merged_customers: int
    identifiers: int
    flagged_identifiers: int
