"""The identity port's contract: every backend passes every test here.

Records, customers, identifiers, links, merges, splits and apart pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from c360.graph.errors import InvalidInputError, StoreError
from c360.graph.models import (
    ApartPair,
    ChangeSet,
    Customer,
    Evidence,
    Identifier,
    IdentifierState,
    MergeEvent,
    RecordMove,
    SplitEvent,
)
from c360.graph.store import GraphStore
from store_contract import EMAIL, PHONE, T, customer_with_records, merge, seed, write


def test_apply_then_lookup(store: GraphStore) -> None:
    seed(store)
    found = store.lookup(["crm|1", "crm|9"], [EMAIL.uid, "email|nobody@x.com"])
    assert set(found.records) == {"crm|1"}
    assert found.records["crm|1"].customer_id == "C1"
    assert found.records["crm|1"].content_hash == "h1"
    assert found.records["crm|1"].evidence == Evidence("new", (EMAIL.uid,))
    assert store.lookup(["crm|3"], []).records["crm|3"].identifiers == ()
    assert found.identifiers[EMAIL.uid] == IdentifierState(EMAIL)
    assert found.bearers == {EMAIL.uid: {"crm|1": "C1"}}
    assert found.records["crm|1"].identifiers == (EMAIL.uid,)
    assert store.records_of(["C1", "C2", "C9"])["C1"][0].key == "1"
    golden = store.get_customer("C1")
    assert golden is not None and golden.golden["first_name"].value == "Ann"


def test_merges_move_records_and_compress_redirects(store: GraphStore) -> None:
    seed(store)
    ev = Evidence("deterministic", (PHONE.uid,), record="crm|2")
    store.apply(ChangeSet(merges=[MergeEvent("C2", "C3", T, ev)]))
    assert store.resolve("C3") == "C2"
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, ev)]))
    assert store.resolve("C3") == "C1" and store.resolve("C2") == "C1" and store.resolve("C9") is None
    assert {cid for _, _, cid in store.iter_links()} == {"C1"}
    profile = store.get_profile("C3")
    assert profile is not None and profile.customer.id == "C1" and profile.requested_id == "C3"
    assert profile.merged_ids == ("C2", "C3")
    assert [(m.survivor, m.merged) for m in store.history("C2")] == [("C2", "C3"), ("C1", "C2")]
    assert store.stats().customers == 1 and store.stats().merged_customers == 2


def test_moves_splits_and_apart_pairs(store: GraphStore) -> None:
    seed(store)
    merge_ev = Evidence("deterministic", (PHONE.uid,), record="crm|2")
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, merge_ev, ("crm|2",))]))
    later = datetime(2025, 2, 1, tzinfo=UTC)
    split_ev = Evidence("split", record="crm|2", note="by ann: two people")
    store.apply(
        ChangeSet(
            new_customers=[Customer("C4", later)],
            moves=[RecordMove("crm|2", "C4", split_ev)],
            splits=[SplitEvent("C1", "C4", ("crm|2",), later, split_ev)],
            apart=[ApartPair("crm|2", "crm|1", "split by ann")],
        )
    )
    links = {key: cid for _, key, cid in store.iter_links()}
    assert links == {"1": "C1", "2": "C4", "3": "C3"}
    assert store.lookup(["crm|2"], []).records["crm|2"].evidence == split_ev
    history = store.history("C1")
    assert [type(e).__name__ for e in history] == ["MergeEvent", "SplitEvent"]
    merge, split = history
    assert isinstance(merge, MergeEvent) and merge.records == ("crm|2",)
    assert split == SplitEvent("C1", "C4", ("crm|2",), later, split_ev)
    assert store.history("C4") == [split]
    assert split.to_json()["before"] == ["C1"] and split.to_json()["after"] == ["C1", "C4"]
    expected = [ApartPair("crm|1", "crm|2", "split by ann", "C1", "C4")]
    assert store.apart(record_uids=["crm|2"]) == expected
    assert store.apart(customer_ids=["C1"]) == expected
    assert store.apart(customer_ids=None) == expected
    assert store.apart(customer_ids=["C3"]) == [] and store.apart() == []
    profile = store.get_profile("C1")
    assert profile is not None and [r.record.key for r in profile.records] == ["1"]
    assert [e["event"] for e in profile.to_json()["history"]] == ["merge", "split"]


def test_chained_merges_in_one_change_set(store: GraphStore) -> None:
    seed(store)
    ev = Evidence("deterministic")
    store.apply(ChangeSet(merges=[MergeEvent("C2", "C3", T, ev), MergeEvent("C1", "C2", T, ev)]))
    assert {cid for _, _, cid in store.iter_links()} == {"C1"}
    assert store.resolve("C3") == "C1"


def test_failed_apply_changes_nothing(store: GraphStore) -> None:
    seed(store)
    before = (list(store.iter_links()), store.stats())
    bad = ChangeSet(
        identifiers=[IdentifierState(Identifier("email", "new@x.com"))],
        new_customers=[Customer("C4", T), Customer("C1", T)],  # C1 exists: the unique key fails
        records=[write("4", "C4")],
    )
    with pytest.raises(StoreError):
        store.apply(bad)
    assert (list(store.iter_links()), store.stats()) == before
    assert store.get_customer("C4") is None


def test_profile_identifiers_and_finders(store: GraphStore) -> None:
    seed(store)
    profile = store.get_profile("C1")
    assert profile is not None and not profile.redirected
    assert [s.identifier for s in profile.identifiers] == [EMAIL]
    assert profile.records[0].identifiers == (EMAIL,)
    doc = profile.to_json()
    assert doc["sources"] == ["crm"] and doc["records"][0]["link"]["rule"] == "new"
    assert store.find_by_identifier(PHONE) == ["C2"]
    assert store.find_by_identifier(Identifier("email", "zz@x.com")) == []
    assert store.find_by_name("ANN", "lee") == ["C1", "C2"]
    assert store.find_by_name(None, "Wong") == ["C3"]
    with pytest.raises(InvalidInputError):
        store.find_by_name(None, None)


def test_links_are_ordered_and_flags_kept(store: GraphStore) -> None:
    seed(store)
    store.apply(ChangeSet(records=[write("0", "C2", source="aaa")]))
    assert [(s, k) for s, k, _ in store.iter_links()] == [
        ("aaa", "0"),
        ("crm", "1"),
        ("crm", "2"),
        ("crm", "3"),
    ]
    store.apply(ChangeSet(identifiers=[IdentifierState(EMAIL, 4, True, "too many")]))
    assert store.flagged_identifiers() == [(EMAIL, "too many")]
    # Flagged identifiers report no customers for linking.
    assert store.lookup([], [EMAIL.uid]).bearers == {}


def test_iter_records_returns_every_record_with_its_customer(store: GraphStore) -> None:
    seed(store)
    got = [(r.uid, r.first_name, r.last_name, cid) for r, cid in store.iter_records()]
    assert got == [("crm|1", "Ann", "Lee", "C1"), ("crm|2", "Ann", "Lee", "C2"), ("crm|3", "Ann", "Wong", "C3")]


def test_get_profiles_are_the_profiles_get_profile_returns(store: GraphStore) -> None:
    seed(store)  # C1 (email), C2 (phone), C3 (no identifier)
    store.apply(customer_with_records("C4", 2))
    store.apply(customer_with_records("C5", 1))
    store.apply(merge("C1", "C2", 1))
    store.apply(merge("C1", "C4", 2))
    later = T + timedelta(days=1)
    split_ev = Evidence("split", record="crm|C4-1")
    store.apply(
        ChangeSet(
            new_customers=[Customer("C6", later)],
            moves=[RecordMove("crm|C4-1", "C6", split_ev)],
            splits=[SplitEvent("C1", "C6", ("crm|C4-1",), later, split_ev)],
        )
    )
    asked = ["C5", "C2", "C404", "C1", "C4", "C3", "C6", "C2"]
    profiles = store.get_profiles(asked)
    # Known ids only, each once, in the order first asked; each equal to its get_profile.
    assert list(profiles) == ["C5", "C2", "C1", "C4", "C3", "C6"]
    assert profiles == {cid: store.get_profile(cid) for cid in profiles}
    # Two merged-away ids read their survivor's profile, each under its own id.
    c1, c2, c4 = profiles["C1"], profiles["C2"], profiles["C4"]
    assert (c2.customer.id, c2.requested_id, c2.redirected) == ("C1", "C2", True)
    assert (c4.customer.id, c4.requested_id, c4.redirected) == ("C1", "C4", True)
    assert (c1.customer.id, c1.requested_id, c1.redirected) == ("C1", "C1", False)
    assert c1.records == c2.records == c4.records and c1.merged_ids == ("C2", "C4")
    assert [r.record.key for r in c1.records] == ["1", "2", "C4-0"]
    assert [type(e).__name__ for e in c1.history] == ["MergeEvent", "MergeEvent", "SplitEvent"]
    assert [r.record.key for r in profiles["C6"].records] == ["C4-1"] and len(profiles["C6"].history) == 1
    assert profiles["C3"].identifiers == () and [s.identifier for s in profiles["C5"].identifiers] == sorted(
        [Identifier("phone", "+14155550005"), Identifier("email", "c5.0@x.com")]
    )
    assert store.get_profiles(["C404"]) == {} and store.get_profiles([]) == {}
    assert store.get_profiles({"C3"}) == {"C3": store.get_profile("C3")}


def test_get_profiles_rejects_too_many_ids_or_one_bare_id(store: GraphStore) -> None:
    seed(store)
    assert len(store.get_profiles(["C1"] * 1001)) == 1  # duplicates count once
    assert store.get_profiles([f"C{n}" for n in range(1000)]).keys() == {"C1", "C2", "C3"}
    with pytest.raises(InvalidInputError):
        store.get_profiles([f"C{n}" for n in range(1001)])
    with pytest.raises(InvalidInputError):
        store.get_profiles("C1")


def test_list_customers_pages_through_active_customers_by_id(store: GraphStore) -> None:
    assert store.list_customers() == ([], None)
    seed(store)
    for cid in ("C4", "C5"):
        store.apply(customer_with_records(cid, 1))
    store.apply(merge("C1", "C3"))
    pages, after = [], None
    while True:
        page, after = store.list_customers(first=2, after=after)
        pages.append(page)
        if after is None:
            break
    # Every active customer once, the merged-away C3 never; a full last page says there is no more.
    assert pages == [["C1", "C2"], ["C4", "C5"]]
    assert store.list_customers() == (["C1", "C2", "C4", "C5"], None)
    assert store.list_customers(first=3) == (["C1", "C2", "C4"], "C4")
    assert store.list_customers(first=3, after="C4") == (["C5"], None)
    # A cursor need not be an active id: the page starts after it in id order.
    assert store.list_customers(after="C3") == (["C4", "C5"], None)
    assert store.list_customers(after="C5") == ([], None)
    for bad in (0, 1001, -1):
        with pytest.raises(InvalidInputError):
            store.list_customers(first=bad)


def test_embedded_batched_reads_cost_a_fixed_number_of_statements(tmp_path: Path) -> None:
    """50 profiles read in as many SQL statements as one profile: no statement per customer."""
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore

    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    try:
        ids = [f"C{n:03d}" for n in range(60)]
        for cid in ids:
            store.apply(customer_with_records(cid, 2))
        for n in range(0, 20, 2):  # ten merged away: their requests redirect
            store.apply(merge(ids[n], ids[n + 1], n))
        statements: list[str] = []

        def count(call: Callable[[], object]) -> int:
            statements.clear()
            store._db.set_trace_callback(statements.append)
            try:
                call()
            finally:
                store._db.set_trace_callback(None)
            return len(statements)

        asked = ids[:50]
        one = count(lambda: store.get_profile(asked[0]))
        batch = count(lambda: store.get_profiles(asked))
        assert one <= 12 and batch == one
        profiles = store.get_profiles(asked)
        assert len(profiles) == 50 and sum(p.redirected for p in profiles.values()) == 10
        assert profiles == {cid: store.get_profile(cid) for cid in asked}
        assert count(lambda: store.get_profiles([])) == 0
        assert count(lambda: store.list_customers(first=50)) == 1
    finally:
        store.close()
