"""Shared data of the store's contract suites (tests/test_store_*.py): one seed, record writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from c360.graph.models import (
    ChangeSet,
    Customer,
    Evidence,
    GoldenValue,
    Identifier,
    IdentifierState,
    MergeEvent,
    RecordWrite,
    SourceRecord,
)
from c360.graph.store import GraphStore

T = datetime(2025, 1, 1, tzinfo=UTC)


EMAIL = Identifier("email", "a@x.com")


PHONE = Identifier("phone", "+14155550100")


def write(key: str, cid: str, *idents: Identifier, source: str = "crm", last: str | None = None) -> RecordWrite:
    record = SourceRecord(source, key, T, first_name="Ann", last_name=last or "Lee", email="a@x.com")
    return RecordWrite(record, f"h{key}", idents, cid, Evidence("new", tuple(i.uid for i in idents)))


def seed(store: GraphStore) -> None:
    store.apply(
        ChangeSet(
            identifiers=[IdentifierState(EMAIL), IdentifierState(PHONE)],
            new_customers=[Customer("C1", T), Customer("C2", T), Customer("C3", T)],
            records=[write("1", "C1", EMAIL), write("2", "C2", PHONE), write("3", "C3", last="Wong")],
            goldens={"C1": {"first_name": GoldenValue("Ann", "crm", "1", T, "most_recent")}},
        )
    )


def customer_with_records(cid: str, n: int) -> ChangeSet:
    """Customer ``cid`` with ``n`` records, each with an e-mail of its own and a phone shared by all."""
    phone = Identifier("phone", f"+1415555{int(cid[1:]) % 10_000:04d}")
    emails = [Identifier("email", f"{cid.lower()}.{k}@x.com") for k in range(n)]
    return ChangeSet(
        identifiers=[IdentifierState(i) for i in (phone, *emails)],
        new_customers=[Customer(cid, T)],
        records=[write(f"{cid}-{k}", cid, emails[k], phone) for k in range(n)],
    )


def merge(survivor: str, merged: str, minutes: int = 0) -> ChangeSet:
    return ChangeSet(merges=[MergeEvent(survivor, merged, T + timedelta(minutes=minutes), Evidence("deterministic"))])
