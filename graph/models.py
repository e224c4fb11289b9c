"""The domain model of the identity graph: frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal, NamedTuple

import orjson

from .errors import InvalidInputError

#: The canonical person fields every source is mapped onto, in display order.
#: The earliest birth date taken (a file's earlier date of birth is left empty; an event's is refused).
EARLIEST_BIRTH = date(1900, 1, 1)

CANONICAL_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "date_of_birth",
    "gender",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "postcode",
    "state",
    "country",
    "national_id",
    "national_id_kind",
    "customer_number",
)

#: Identifier kinds c360 derives from a record's fields.
IDENTIFIER_KINDS: tuple[str, ...] = ("email", "phone", "national_id", "customer_number")

CustomerStatus = Literal["active", "merged"]


#: What a source system may be named: it names records (``source|key``), dead letters and, on the command
#: line, files; a name of this shape is never a path (no ``/``, no leading ``.``), so it cannot leave a folder.
SOURCE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_SOURCE_NAME = re.compile(SOURCE_NAME_PATTERN)


def is_source_name(name: object) -> bool:
    """Whether ``name`` is a valid source name (:data:`SOURCE_NAME_PATTERN`)."""
    return isinstance(name, str) and _SOURCE_NAME.fullmatch(name) is not None


def source_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid source name, or None if it is."""
    if is_source_name(name):
        return None
    shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80] + "...")
    return (
        f"invalid source name {shown}: 1 to 64 lower-case letters, digits, '_', '.' or '-', starting with a "
        "letter or digit (a source name is never a path)"
    )


def record_uid(source: str, key: str) -> str:
    """Return the graph-wide unique id of the record ``key`` from ``source``."""
    return f"{source}|{key}"


def source_of(uid: str) -> str:
    """The source of the record ``uid`` (source names never hold ``|``)."""
    return uid.partition("|")[0]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as a source system holds it, mapped onto the canonical fields.

    Values are as the source gave them (trimmed); identifiers are derived from them by normalisation.
    ``attributes`` keeps any source columns that have no canonical field.
    """

    source: str
    key: str
    observed_at: datetime
    first_name: str | None = None
    last_name: str | None = None
    date_of_birth: date | None = None
    gender: str | None = None
    email: str | None = None
    phone: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postcode: str | None = None
    state: str | None = None
    country: str | None = None
    national_id: str | None = None
    national_id_kind: str | None = None
    customer_number: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: the graph-wide unique id, ``source|key``
    uid: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uid", record_uid(self.source, self.key))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-safe dict of this record (dates as ISO strings)."""
        out: dict[str, Any] = {
            "source": self.source,
            "key": self.key,
            "observed_at": self.observed_at.isoformat(),
        }
        for name in CANONICAL_FIELDS:
            v = getattr(self, name)
            if v is not None:
                out[name] = v.isoformat() if isinstance(v, date) else v
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceRecord:
        """Build a record from :meth:`to_json` output."""
        values: dict[str, Any] = {name: data.get(name) for name in CANONICAL_FIELDS}
        if values["date_of_birth"] is not None:
            values["date_of_birth"] = date.fromisoformat(values["date_of_birth"])
        return cls(
            source=data["source"],
            key=data["key"],
            observed_at=datetime.fromisoformat(data["observed_at"]),
            attributes=dict(data.get("attributes") or {}),
            **values,
        )


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """A normalised identifier: ``kind`` (email, phone, national_id, customer_number) and ``value``.

    ``uid`` is the graph-wide unique id, ``kind|value``.
    """

    kind: str
    value: str
    uid: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uid", f"{self.kind}|{self.value}")

    @classmethod
    def from_uid(cls, uid: str) -> Identifier:
        """Parse ``kind|value``."""
        kind, _, value = uid.partition("|")
        return cls(kind, value)


@dataclass(frozen=True, slots=True)
class IdentifierState:
    """What the graph knows of one identifier: how many customers it joined and whether it is flagged."""

    identifier: Identifier
    joined: int = 1
    flagged: bool = False
    flag_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a record belongs to its customer, or why two customers were merged.

    ``rule`` is ``new`` (no match: a new customer), ``deterministic`` (shared identifiers, listed in
    ``identifiers`` as ``kind|value``), or a later rule name.
    """

    rule: str
    identifiers: tuple[str, ...] = ()
    record: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        out: dict[str, Any] = {"rule": self.rule}
        if self.identifiers:
            out["identifiers"] = list(self.identifiers)
        if self.record:
            out["record"] = self.record
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        """Build evidence from :meth:`to_json` output."""
        return cls(
            rule=data["rule"],
            identifiers=tuple(data.get("identifiers") or ()),
            record=data.get("record"),
            note=data.get("note"),
        )


class GoldenValue(NamedTuple):
    """One surviving value of the golden record and the source record it came from.

    A named tuple rather than a dataclass: golden records are rebuilt on every ingest, and tuples are
    several times cheaper to make.
    """

    value: Any
    source: str
    source_key: str
    observed_at: datetime
    rule: str

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        v = self.value.isoformat() if isinstance(self.value, date) else self.value
        return {
            "value": v,
            "source": self.source,
            "source_key": self.source_key,
            "observed_at": self.observed_at.isoformat(),
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> GoldenValue:
        """Build a golden value of field ``name`` from :meth:`to_json` output."""
        value = data["value"]
        if name == "date_of_birth" and value is not None:
            value = date.fromisoformat(value)
        return cls(
            value,
            data["source"],
            data["source_key"],
            datetime.fromisoformat(data["observed_at"]),
            data["rule"],
        )


GoldenRecord = Mapping[str, GoldenValue]


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (the store's serialisation)."""
    return orjson.dumps(value).decode()


def loads(text: str | bytes) -> Any:
    """Parse JSON text written by :func:`dumps`."""
    return orjson.loads(text)


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer node: stable ID, status, and (when merged) the survivor it redirects to."""

    id: str
    created_at: datetime
    status: CustomerStatus = "active"
    merged_into: str | None = None
    golden: GoldenRecord = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A source record as stored: its customer and the evidence of that link."""

    record: SourceRecord
    customer_id: str
    evidence: Evidence
    identifiers: tuple[Identifier, ...] = ()


@dataclass(frozen=True, slots=True)
class MergeEvent:
    """One merge: ``merged`` now redirects to ``survivor``; ``records`` are the ones ``merged`` brought."""

    survivor: str
    merged: str
    at: datetime
    evidence: Evidence
    records: tuple[str, ...] = ()

    kind: ClassVar[str] = "merge"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: before (both customers), after (the survivor) and the evidence."""
        return {
            "event": "merge",
            "at": self.at.isoformat(),
            "before": [self.survivor, self.merged],
            "after": [self.survivor],
            "survivor": self.survivor,
            "merged": self.merged,
            "records": list(self.records),
            "evidence": self.evidence.to_json(),
        }


@dataclass(frozen=True, slots=True)
class SplitEvent:
    """One split: ``records`` left ``source`` (which keeps its ID) for the new customer ``new``."""

    source: str
    new: str
    records: tuple[str, ...]
    at: datetime
    evidence: Evidence

    kind: ClassVar[str] = "split"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: before (the source), after (both customers) and the evidence."""
        return {
            "event": "split",
            "at": self.at.isoformat(),
            "before": [self.source],
            "after": [self.source, self.new],
            "source": self.source,
            "new": self.new,
            "records": list(self.records),
            "evidence": self.evidence.to_json(),
        }


#: What ``history`` lists: merges and splits.
HistoryEvent = MergeEvent | SplitEvent


@dataclass(frozen=True, slots=True)
class RecordMove:
    """A stored record moves to another customer (batch resolution, split), with the new link's evidence."""

    record_uid: str
    customer_id: str
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class ApartPair:
    """Two records a decision keeps in different customers (a rejected review, a split)."""

    a: str
    b: str
    reason: str
    #: the customers the records belong to when read (empty when written)
    customer_a: str = ""
    customer_b: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    """The unified profile of one active customer."""

    customer: Customer
    records: tuple[StoredRecord, ...]
    identifiers: tuple[IdentifierState, ...]
    merged_ids: tuple[str, ...]
    history: tuple[HistoryEvent, ...]
    requested_id: str

    @property
    def redirected(self) -> bool:
        """Whether the requested ID was merged away and resolved to this survivor."""
        return self.requested_id != self.customer.id

    def to_json(self) -> dict[str, Any]:
        """The profile document: golden record with sources, identifiers, records, merged IDs, history."""
        c = self.customer
        return {
            "id": c.id,
            "requested_id": self.requested_id,
            "redirected": self.redirected,
            "status": c.status,
            "created_at": c.created_at.isoformat(),
            "golden": {name: gv.to_json() for name, gv in c.golden.items()},
            "sources": sorted({r.record.source for r in self.records}),
            "identifiers": [
                {"kind": s.identifier.kind, "value": s.identifier.value, "flagged": s.flagged} for s in self.identifiers
            ],
            "records": [
                {
                    **r.record.to_json(),
                    "identifiers": [i.uid for i in r.identifiers],
                    "link": r.evidence.to_json(),
                }
                for r in self.records
            ],
            "merged_ids": list(self.merged_ids),
            "history": [event.to_json() for event in self.history],
        }


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """A record to insert or replace, with its identifiers and final customer."""

    record: SourceRecord
    content_hash: str
    identifiers: tuple[Identifier, ...]
    customer_id: str
    evidence: Evidence
    #: the record as JSON text (``SourceRecord.to_json``), when the caller already serialised it
    document: str | None = None
    #: candidate-retrieval keys of the model in use (empty when no model is trained)
    blocking_keys: tuple[str, ...] = ()
    #: the record's comparison view, filed with its blocking keys so that candidates read no record
    match_view: str | None = None
    #: the record replaces a stored version, whose identifier and blocking-key links go
    update: bool = True

    def document_json(self) -> str:
        """The record as JSON text."""
        return self.document if self.document is not None else dumps(self.record.to_json())


ReviewStatus = Literal["open", "approved", "rejected"]


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """An uncertain pair for a data steward: a new record and the best candidate the model found."""

    id: str
    record_uid: str
    candidate_uid: str
    customer_id: str
    match_weight: float
    match_probability: float
    created_at: datetime
    status: ReviewStatus = "open"
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "id": self.id,
            "record": self.record_uid,
            "candidate": self.candidate_uid,
            "customer": self.customer_id,
            "match_weight": self.match_weight,
            "match_probability": self.match_probability,
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "reason": self.reason,
        }


def aware(what: str, value: object) -> datetime:
    """``value`` if it is a datetime with a time zone; InvalidInputError naming ``what`` otherwise."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} {value.isoformat()} has no time zone: give an aware datetime (e.g. UTC)")
    return value


def event_time(at: datetime) -> str:
    """A time as the stores keep event times: UTC, fixed width, so text order is time order."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An accepted event as the graph keeps it: the key of idempotency and, for journey events, the record.

    ``id`` is ``source|event_id``; ``record_uid`` names the source record the event is about (journey
    events: orders, transactions, web activity), so the event follows that record through merges and splits.
    """

    id: str
    type: str
    occurred_at: datetime
    data: str  # the event as JSON text
    record_uid: str | None = None


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """One page of a customer's timeline, newest first, and the cursor of the next page (None: the last)."""

    events: list[StoredEvent]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that could not be applied, kept with the reason until it is replayed.

    ``source`` is the source the payload claims (it may be a lie); ``sender`` is who handed it over, as
    authenticated: ``partner:<name>``, ``user:<subject>``, ``cli:<os user>``, ``kafka``; None for letters
    kept before senders were recorded.
    """

    id: str
    received_at: datetime
    reason: str
    payload: str
    source: str | None = None
    status: Literal["open", "replayed"] = "open"
    sender: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "sender": self.sender,
            "reason": self.reason,
            "status": self.status,
            "payload": self.payload,
        }


@dataclass(slots=True)
class ChangeSet:
    """Everything one ingest batch changes, applied by the store in one transaction.

    Order of application: identifiers, new customers, merges (in list order), records, record moves,
    splits, apart pairs, golden records, review items, events.
    """

    identifiers: list[IdentifierState] = field(default_factory=list)
    new_customers: list[Customer] = field(default_factory=list)
    merges: list[MergeEvent] = field(default_factory=list)
    records: list[RecordWrite] = field(default_factory=list)
    goldens: dict[str, GoldenRecord] = field(default_factory=dict)
    reviews: list[ReviewItem] = field(default_factory=list)
    moves: list[RecordMove] = field(default_factory=list)
    splits: list[SplitEvent] = field(default_factory=list)
    apart: list[ApartPair] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)

    def final_targets(self) -> dict[str, str]:
        """Map each customer merged in this change set to the survivor it ends up in (chains followed)."""
        direct = {m.merged: m.survivor for m in self.merges}
        out: dict[str, str] = {}
        for merged in direct:
            target = direct[merged]
            seen = {merged}
            while target in direct and target not in seen:
                seen.add(target)
                target = direct[target]
            out[merged] = target
        return out

    def is_empty(self) -> bool:
        """Whether applying this change set would change nothing."""
        return not (
            self.identifiers
            or self.new_customers
            or self.merges
            or self.records
            or self.goldens
            or self.reviews
            or self.moves
            or self.splits
            or self.apart
            or self.events
        )
