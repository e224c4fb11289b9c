"""Undo: splitting records out of a customer, its history, and decisions that keep records apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import MergeEvent, SourceRecord, SplitEvent
from c360.graph.store import GraphStore
from c360.resolution.config import SurvivorshipConfig
from c360.resolution.linker import CustomerIdFactory, Linker
from c360.resolution.undo import split

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def rec(source: str, key: str, minutes: int = 0, **fields: object) -> SourceRecord:
    return SourceRecord(source, key, T0 + timedelta(minutes=minutes), **fields)  # type: ignore[arg-type]


def links(store: GraphStore) -> dict[str, str]:
    return {f"{s}|{k}": c for s, k, c in store.iter_links()}


def do_split(store: GraphStore, cid: str, records: list[str], reason: str = "two people") -> SplitEvent:
    return split(
        store,
        cid,
        records,
        by="steward",
        reason=reason,
        now=datetime.now(UTC),
        new_id=CustomerIdFactory(),
        survivorship=SurvivorshipConfig(),
    )


@pytest.fixture
def merged(store: GraphStore) -> tuple[Linker, str]:
    """Ann (crm|1) and a namesake sharing a family email (web|a), wrongly merged, plus her phone record."""
    linker = Linker(store)
    linker.ingest([rec("crm", "1", first_name="Ann", last_name="Lee", email="lee.family@example.com")])
    linker.ingest([rec("shop", "7", first_name="Ann", phone="+1 415 555 0101")])
    linker.ingest(
        [rec("web", "a", 5, first_name="Amy", last_name="Lee", email="lee.family@example.com", phone="4155550101")]
    )
    cid = links(store)["crm|1"]
    assert set(links(store).values()) == {cid}
    return linker, cid


def test_split_moves_records_keeps_history_and_is_not_merged_back(
    store: GraphStore, merged: tuple[Linker, str]
) -> None:
    linker, cid = merged
    event = do_split(store, cid, ["web|a"])
    got = links(store)
    assert got["web|a"] == event.new != cid and got["crm|1"] == got["shop|7"] == cid
    new_profile = store.get_profile(event.new)
    assert new_profile is not None and new_profile.customer.golden["first_name"].value == "Amy"
    old_profile = store.get_profile(cid)
    assert old_profile is not None and old_profile.customer.golden["first_name"].value == "Ann"
    history = store.history(cid)
    assert [e.kind for e in history] == ["merge", "split"]
    merge = history[0]
    assert isinstance(merge, MergeEvent) and merge.records == ("shop|7",)
    assert history[-1] == event and event.records == ("web|a",) and "steward" in (event.evidence.note or "")
    assert store.history(event.new) == [event]

    # A new record bearing both the family email and the phone bridges the two customers: no merge back.
    result = linker.ingest([rec("app", "z", 9, email="lee.family@example.com", phone="415-555-0101")])
    assert result.merges == 0
    after = links(store)
    assert after["app|z"] == cid and after["web|a"] == event.new
    # An update of the split record keeps it apart, although it still shares the email.
    linker.ingest([rec("web", "a", 12, first_name="Amy", last_name="Lee", email="lee.family@example.com")])
    assert links(store)["web|a"] == event.new
    assert store.stats().customers == 2


def test_split_refuses_bad_requests_and_changes_nothing(store: GraphStore, merged: tuple[Linker, str]) -> None:
    _, cid = merged
    before = links(store)
    with pytest.raises(InvalidInputError, match="not a record of"):
        do_split(store, cid, ["web|nope"])
    with pytest.raises(InvalidInputError, match="at least one must stay"):
        do_split(store, cid, ["crm|1", "shop|7", "web|a"])
    with pytest.raises(InvalidInputError, match="reason"):
        do_split(store, cid, ["web|a"], reason=" ")
    with pytest.raises(NotFoundError):
        do_split(store, "C404", ["web|a"])
    assert links(store) == before and store.apart(customer_ids=None) == []
    # A bare key is enough when it is unique within the customer.
    event = do_split(store, cid, ["a"])
    assert event.records == ("web|a",)
    # The survivor of a later merge is split, not the ID merged away.
    with pytest.raises(ConflictError, match="merged into"):
        store_merged = next(m.merged for m in store.history(cid) if isinstance(m, MergeEvent))
        do_split(store, store_merged, ["shop|7"])


def test_review_decisions_respect_a_split(store: GraphStore, merged: tuple[Linker, str]) -> None:
    from c360.graph.models import ChangeSet, ReviewItem
    from c360.resolution.review import approve, reject

    _, cid = merged
    now = datetime.now(UTC)
    items = [
        ReviewItem("R1", "web|a", "crm|1", cid, 10.0, 0.9, now),
        ReviewItem("R2", "shop|7", "crm|1", cid, 9.0, 0.8, now),
    ]
    store.apply(ChangeSet(reviews=items))
    # Both records of R2 are one customer already: rejecting it cannot separate them, a split can.
    with pytest.raises(ConflictError, match="customer split"):
        reject(store, "R2", by="steward", reason="no", now=now)
    event = do_split(store, cid, ["web|a"])
    # Approving R1 now would merge back what the split separated.
    with pytest.raises(ConflictError, match="kept apart"):
        approve(store, "R1", by="steward", reason=None, now=now, survivorship=SurvivorshipConfig())
    assert links(store)["web|a"] == event.new
    assert store.get_review("R1") is not None and store.get_review("R1").status == "open"  # type: ignore[union-attr]


def test_merge_history_keeps_the_records_of_chained_merges(store: GraphStore) -> None:
    linker = Linker(store)
    linker.ingest([rec("crm", "1", email="a@example.com")])
    linker.ingest([rec("crm", "2", phone="+1 415 555 0101")])
    linker.ingest([rec("crm", "3", national_id="532-44-8710", national_id_kind="ssn")])
    a, b = links(store)["crm|1"], links(store)["crm|2"]
    # One batch: x joins 3 into 2's customer, then y joins that into 1's.
    linker.ingest(
        [
            rec("web", "x", 1, phone="4155550101", national_id="532448710", national_id_kind="ssn"),
            rec("web", "y", 2, email="a@example.com", phone="+14155550101"),
        ]
    )
    merges = {(m.survivor, m.merged): m.records for m in store.history(a) if isinstance(m, MergeEvent)}
    assert merges[(a, b)] == ("crm|2", "crm|3", "web|x")


def test_manual_merge_redirects_and_respects_splits(store: GraphStore, merged: tuple[Linker, str]) -> None:
    from c360.resolution.review import merge_customers

    def do_merge(a: str, b: str, reason: str = "same person, confirmed by phone") -> MergeEvent:
        return merge_customers(
            store, a, b, by="steward", reason=reason, now=datetime.now(UTC), survivorship=SurvivorshipConfig()
        )

    linker, cid = merged
    linker.ingest([rec("pos", "9", first_name="Bo", last_name="Kim", email="bo@example.com")])
    other = links(store)["pos|9"]
    with pytest.raises(InvalidInputError):
        do_merge(cid, other, reason=" ")
    with pytest.raises(NotFoundError):
        do_merge(cid, "C404")
    event = do_merge(other, cid)
    survivor = min(cid, other)
    assert (event.survivor, event.merged) == (survivor, max(cid, other))
    assert set(links(store).values()) == {survivor} and store.resolve(max(cid, other)) == survivor
    assert "same person" in (event.evidence.note or "") and event.evidence.rule == "manual"
    with pytest.raises(ConflictError, match="merged into"):
        do_merge(survivor, max(cid, other))
    # A split keeps records apart; merging the parts back is refused.
    split_off = do_split(store, survivor, ["web|a"])
    with pytest.raises(ConflictError, match="kept apart"):
        do_merge(survivor, split_off.new)
