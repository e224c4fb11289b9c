"""Row and JSON codecs of the store, once for every backend.

A backend reads rows (SQLite tuples, Cypher records) and writes parameters; the conversions between
those and the domain models live here, so that both backends store the same text in the same shape.
Rows are tuples in the embedded store's column order (SQLite binds them as they are, the hot path of
ingest); :func:`as_dicts` names them with the module's ``*_COLUMNS`` for Cypher's ``$rows``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from .consent import ConsentEvent, Notice
from .models import (
    ChangeSet,
    Customer,
    DeadLetter,
    Evidence,
    GoldenRecord,
    GoldenValue,
    HistoryEvent,
    Identifier,
    IdentifierState,
    MergeEvent,
    Profile,
    ReviewItem,
    SourceRecord,
    SplitEvent,
    StoredRecord,
    dumps,
    event_time,
    loads,
)
from .ports.consent import ConsentEntry

__all__ = [
    "CONSENT_COLUMNS",
    "CUSTOMER_COLUMNS",
    "EVENT_COLUMNS",
    "IDENTIFIER_COLUMNS",
    "LETTER_COLUMNS",
    "MERGE_COLUMNS",
    "RECORD_COLUMNS",
    "REVIEW_COLUMNS",
    "SPLIT_COLUMNS",
    "Row",
    "as_dicts",
    "assemble_profile",
    "assemble_profiles",
    "consent_from_json",
    "consent_from_row",
    "consent_rows",
    "consent_to_json",
    "customer_from_row",
    "customer_rows",
    "dumps",
    "event_rows",
    "golden_from_json",
    "golden_to_json",
    "history_event",
    "identifier_rows",
    "identifier_state",
    "letter_from_row",
    "letter_rows",
    "loads",
    "merge_rows",
    "parse_event_time",
    "record_rows",
    "review_from_row",
    "review_rows",
    "split_rows",
]


def golden_to_json(golden: GoldenRecord) -> str:
    """Serialise a golden record compactly: each source record once, each field as a reference to it.

    Shape: ``{"r": [[source, key, observed_at], ...], "f": {field: [value, record index, rule]}}``.
    """
    index: dict[tuple[str, str, datetime], int] = {}
    lineage: list[list[str]] = []
    fields: dict[str, list[Any]] = {}
    for name, gv in golden.items():
        ref = (gv.source, gv.source_key, gv.observed_at)
        i = index.get(ref)
        if i is None:
            i = index[ref] = len(lineage)
            lineage.append([gv.source, gv.source_key, gv.observed_at.isoformat()])
        value = gv.value.isoformat() if isinstance(gv.value, date) else gv.value
        fields[name] = [value, i, gv.rule]
    return dumps({"r": lineage, "f": fields})


def golden_from_json(text: str) -> dict[str, GoldenValue]:
    """Parse a golden record written by :func:`golden_to_json`."""
    data = loads(text)
    if not data:
        return {}
    lineage = [(source, key, datetime.fromisoformat(at)) for source, key, at in data["r"]]
    out: dict[str, GoldenValue] = {}
    for name, (value, i, rule) in data["f"].items():
        if name == "date_of_birth" and value is not None:
            value = date.fromisoformat(value)
        source, key, at = lineage[i]
        out[name] = GoldenValue(value, source, key, at, rule)
    return out


def assemble_profile(
    customer: Customer,
    identifier_rows: Iterable[tuple[str, IdentifierState]],
    record_rows: Iterable[tuple[str, str, str]],
    merged_ids: Iterable[str],
    history: Iterable[HistoryEvent],
    requested_id: str,
) -> Profile:
    """Build a profile from a backend's rows.

    ``identifier_rows`` are ``(record uid, identifier state)``; ``record_rows`` are
    ``(record uid, record JSON, evidence JSON)`` in record-uid order.
    """
    idents: dict[str, list[Identifier]] = {}
    states: dict[str, IdentifierState] = {}
    for ruid, st in identifier_rows:
        idents.setdefault(ruid, []).append(st.identifier)
        states[st.identifier.uid] = st
    records = tuple(
        StoredRecord(
            SourceRecord.from_json(loads(data)),
            customer.id,
            Evidence.from_json(loads(ev)),
            tuple(sorted(idents.get(uid, ()))),
        )
        for uid, data, ev in record_rows
    )
    return Profile(
        customer=customer,
        records=records,
        identifiers=tuple(sorted(states.values(), key=lambda s: s.identifier)),
        merged_ids=tuple(merged_ids),
        history=tuple(history),
        requested_id=requested_id,
    )


def assemble_profiles(
    targets: Mapping[str, str],
    customers: Mapping[str, Customer],
    identifier_rows: Mapping[str, list[tuple[str, IdentifierState]]],
    record_rows: Mapping[str, list[tuple[str, str, str]]],
    merged_ids: Mapping[str, list[str]],
    histories: Mapping[str, list[HistoryEvent]],
) -> dict[str, Profile]:
    """The profiles of ``targets`` (requested id -> active id), keyed by requested id.

    Built from a backend's batched rows, each map keyed by active id. A requested id whose active
    customer is not in ``customers`` is left out.
    """
    return {
        rid: assemble_profile(
            customers[active],
            identifier_rows.get(active, ()),
            record_rows.get(active, ()),
            merged_ids.get(active, ()),
            histories.get(active, ()),
            rid,
        )
        for rid, active in targets.items()
        if active in customers
    }


def identifier_state(kind: str, value: str, joined: int, flagged: Any, reason: str | None) -> IdentifierState:
    """An identifier's state from its stored columns."""
    return IdentifierState(Identifier(kind, value), joined, bool(flagged), reason)


def customer_from_row(cid: str, created_at: str, status: str, merged_into: str | None, golden: str | None) -> Customer:
    """A customer node from its stored columns."""
    return Customer(cid, datetime.fromisoformat(created_at), status, merged_into, golden_from_json(golden or "{}"))  # type: ignore[arg-type]


def history_event(kind: int, one: str, other: str, records: str | None, at: str, evidence: str) -> HistoryEvent:
    """A merge (``kind`` 0: survivor, merged) or split (1: source, new) from its stored columns."""
    recs = tuple(loads(records or "[]"))
    when = datetime.fromisoformat(at)
    ev = Evidence.from_json(loads(evidence))
    return MergeEvent(one, other, when, ev, recs) if kind == 0 else SplitEvent(one, other, recs, when, ev)


def parse_event_time(text: str) -> datetime:
    """Read an :func:`~c360.graph.models.event_time` text (fixed-width UTC with a Z, which 3.11 reads)."""
    return datetime.fromisoformat(text)


def review_from_row(
    rid: str,
    record_uid: str,
    candidate_uid: str,
    customer_id: str,
    weight: float,
    probability: float,
    created_at: str,
    status: str,
    decided_by: str | None,
    decided_at: str | None,
    reason: str | None,
) -> ReviewItem:
    """A review item from its stored columns."""
    decided = datetime.fromisoformat(decided_at) if decided_at else None
    return ReviewItem(
        rid,
        record_uid,
        candidate_uid,
        customer_id,
        float(weight),
        float(probability),
        datetime.fromisoformat(created_at),
        status,  # type: ignore[arg-type]
        decided_by,
        decided,
        reason,
    )


def letter_from_row(
    lid: str, received_at: str, source: str | None, reason: str, payload: str, status: str, sender: str | None
) -> DeadLetter:
    """A dead letter from its stored columns (``sender`` None: kept before senders were recorded)."""
    return DeadLetter(lid, datetime.fromisoformat(received_at), reason, payload, source, status, sender)  # type: ignore[arg-type]


# -- change set -> rows: tuples in the embedded store's column order; ``as_dicts`` names them for Cypher --

Row = tuple[Any, ...]

IDENTIFIER_COLUMNS = ("uid", "kind", "value", "joined", "flagged", "reason")
CUSTOMER_COLUMNS = ("id", "created_at", "status", "merged_into", "golden")
MERGE_COLUMNS = ("survivor", "merged", "at", "evidence", "records")
SPLIT_COLUMNS = ("source", "new", "records", "at", "evidence")
#: The record table's columns, then the comparison view (the blocking domain's, filed with the record).
RECORD_COLUMNS = ("uid", "source", "key", "data", "hash", "cid", "evidence", "first_lc", "last_lc", "view")
REVIEW_COLUMNS = (
    "id",
    "record_uid",
    "candidate_uid",
    "customer_id",
    "match_weight",
    "match_probability",
    "created_at",
    "status",
    "decided_by",
    "decided_at",
    "reason",
)
EVENT_COLUMNS = ("id", "type", "at", "data", "record_uid")
LETTER_COLUMNS = ("id", "received_at", "source", "reason", "payload", "status", "sender")


def as_dicts(columns: tuple[str, ...], rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Rows as dicts keyed by ``columns`` (Cypher's ``$rows``)."""
    return [dict(zip(columns, row, strict=True)) for row in rows]


def identifier_rows(changes: ChangeSet) -> list[Row]:
    """Rows of the identifiers a change set writes (:data:`IDENTIFIER_COLUMNS`)."""
    return [
        (s.identifier.uid, s.identifier.kind, s.identifier.value, s.joined, s.flagged, s.flag_reason)
        for s in changes.identifiers
    ]


def customer_rows(changes: ChangeSet) -> list[Row]:
    """Rows of the customers a change set creates (:data:`CUSTOMER_COLUMNS`)."""
    return [
        (c.id, c.created_at.isoformat(), c.status, c.merged_into, golden_to_json(c.golden))
        for c in changes.new_customers
    ]


def merge_rows(changes: ChangeSet) -> list[Row]:
    """Rows of the merges a change set records (:data:`MERGE_COLUMNS`)."""
    return [
        (m.survivor, m.merged, m.at.isoformat(), dumps(m.evidence.to_json()), dumps(list(m.records)))
        for m in changes.merges
    ]


def split_rows(changes: ChangeSet) -> list[Row]:
    """Rows of the splits a change set records (:data:`SPLIT_COLUMNS`)."""
    return [
        (e.source, e.new, dumps(list(e.records)), e.at.isoformat(), dumps(e.evidence.to_json())) for e in changes.splits
    ]


def record_rows(changes: ChangeSet) -> list[Row]:
    """Rows of the records a change set writes (:data:`RECORD_COLUMNS`)."""
    return [
        (
            w.record.uid,
            w.record.source,
            w.record.key,
            w.document_json(),
            w.content_hash,
            w.customer_id,
            dumps(w.evidence.to_json()),
            w.record.first_name.casefold() if w.record.first_name else None,
            w.record.last_name.casefold() if w.record.last_name else None,
            w.match_view,
        )
        for w in changes.records
    ]


def review_rows(reviews: Iterable[ReviewItem]) -> list[Row]:
    """Rows of review items (:data:`REVIEW_COLUMNS`)."""
    return [
        (
            r.id,
            r.record_uid,
            r.candidate_uid,
            r.customer_id,
            r.match_weight,
            r.match_probability,
            r.created_at.isoformat(),
            r.status,
            r.decided_by,
            r.decided_at.isoformat() if r.decided_at else None,
            r.reason,
        )
        for r in reviews
    ]


def event_rows(changes: ChangeSet) -> list[Row]:
    """Rows of the journey events a change set records (:data:`EVENT_COLUMNS`)."""
    return [(e.id, e.type, event_time(e.occurred_at), e.data, e.record_uid) for e in changes.events]


def letter_rows(letters: Iterable[DeadLetter]) -> list[Row]:
    """Rows of dead letters (:data:`LETTER_COLUMNS`)."""
    return [(d.id, d.received_at.isoformat(), d.source, d.reason, d.payload, d.status, d.sender) for d in letters]


# -- consent ledger ----------------------------------------------------------------------------------

CONSENT_COLUMNS = ("event_id", "record_uid", "chain_id", "event", "receipt")


def consent_to_json(event: ConsentEvent) -> str:
    """A consent event as JSON text: its fields by name, times in ISO 8601 with their offset."""
    n = event.notice
    return dumps(
        {
            "id": event.id,
            "record_uid": event.record_uid,
            "purpose": event.purpose,
            "channel": event.channel,
            "status": event.status,
            "captured_at": event.captured_at.isoformat(),
            "actor_kind": event.actor_kind,
            "actor_id": event.actor_id,
            "source": event.source,
            "method": event.method,
            "notice": {"id": n.id, "version": n.version, "language": n.language, "text_sha256": n.text_sha256},
            "jurisdiction": event.jurisdiction,
            "expires_at": event.expires_at.isoformat() if event.expires_at is not None else None,
        }
    )


def consent_from_json(text: str) -> ConsentEvent:
    """The consent event :func:`consent_to_json` wrote."""
    data = loads(text)
    expires = data["expires_at"]
    return ConsentEvent(
        **{
            **data,
            "captured_at": datetime.fromisoformat(data["captured_at"]),
            "notice": Notice(**data["notice"]),
            "expires_at": datetime.fromisoformat(expires) if expires is not None else None,
        }
    )


def consent_rows(entries: Iterable[ConsentEntry]) -> list[Row]:
    """Rows of ledger entries (:data:`CONSENT_COLUMNS`)."""
    return [(e.event.id, e.event.record_uid, e.chain_id, consent_to_json(e.event), e.receipt) for e in entries]


def consent_from_row(event: str, receipt: str, chain_id: str) -> ConsentEntry:
    """A ledger entry from its stored event JSON, receipt and chain id."""
    return ConsentEntry(consent_from_json(event), receipt, chain_id)
