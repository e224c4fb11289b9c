"""The insights port's contract (insights upserted per customer and name; segment memberships changed by
idempotent entered/exited changes that leave timeline events; merged ids read and write their survivor's):
every backend passes every test here."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest
from c360.graph.errors import InvalidInputError
from c360.graph.insights import Insight, Membership, SegmentChange
from c360.graph.models import ChangeSet, Customer, Evidence, MergeEvent, loads
from c360.graph.store import GraphStore
from store_contract import PHONE, T, customer_with_records, seed


def insight(cid: str, name: str = "churn", score: float | None = 0.25, minutes: int = 0, **kw: Any) -> Insight:
    return Insight(cid, name, kw.pop("model", f"{name}@v1"), T + timedelta(minutes=minutes), score, **kw)


def change(cid: str, kind: str, minutes: int, segment: str = "vip") -> SegmentChange:
    at = T + timedelta(minutes=minutes)
    return SegmentChange(
        f"{segment}|{cid}|{kind}|{at.isoformat()}|realtime",
        segment,
        cid,
        kind,  # type: ignore[arg-type]
        at,
        f"spend_90d >= 1000 ({kind})",
        "realtime",
    )


def merge_c2_into_c1(store: GraphStore) -> None:
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))


def test_insights_are_upserted_per_customer_and_name_and_read_sorted(store: GraphStore) -> None:
    seed(store)
    detail = {"r": 5, "f": 4, "m": 3, "products": [{"sku": "A-1", "confidence": 0.5}]}
    first = [insight("C1", "rfm", 5.0, label="champions", detail=detail), insight("C1", "churn"), insight("C3", "clv")]
    assert store.put_insights(first) == 3
    got = store.insights_of(["C1", "C2", "C3", "nobody"])
    assert set(got) == {"C1", "C2", "C3"}  # a known customer without insights has an empty list
    assert got["C1"] == [first[1], first[0]] and got["C2"] == [] and got["C3"] == [first[2]]
    newer = insight("C1", "churn", None, minutes=5, model="churn@v2", label="low")
    assert store.put_insights([newer]) == 1  # replaces the old value: score gone, label set
    [churn, rfm] = store.insights_of(["C1"])["C1"]
    assert churn == newer and churn.score is None and churn.model == "churn@v2"
    assert rfm.detail == detail and rfm.label == "champions" and rfm.computed_at == T
    # Two of one name for one customer in a batch: the later wins, counted once; unknown ids are skipped.
    twice = [insight("C2", "clv", 1.0), insight("C2", "clv", 2.0), insight("C9", "clv", 3.0)]
    assert store.put_insights(twice) == 1
    assert [i.score for i in store.insights_of(["C2"])["C2"]] == [2.0]
    assert store.put_insights([]) == 0 and store.insights_of([]) == {}


BAD_INSIGHTS: list[Any] = [
    insight("C1", "Churn"),  # upper case
    insight("C1", "1churn"),
    insight("C1", "churn-90"),
    insight("C1", "x" * 65),
    insight("C1", ""),
    Insight("C1", "churn", "churn@v1", datetime(2025, 1, 1), 0.1),  # naive time
    insight("C1", score=float("nan")),
    insight("C1", score=float("inf")),
    insight("C1", score=True),  # type: ignore[arg-type]
    insight("C1", model=""),
    insight("C1", model="m" * 201),
    insight("", "churn"),
    insight("C1", detail={"blob": "x" * (16 * 1024)}),  # oversized
    insight("C1", detail={1: "non-string key"}),
    insight("C1", detail={"x": object()}),
    insight("C1", label=7),
    "not an insight",
]


@pytest.mark.parametrize("bad", BAD_INSIGHTS, ids=range(len(BAD_INSIGHTS)))
def test_a_bad_insight_is_an_invalid_input_and_writes_nothing_of_its_batch(store: GraphStore, bad: Any) -> None:
    seed(store)
    with pytest.raises(InvalidInputError):
        store.put_insights([insight("C1", "clv"), bad])
    assert store.insights_of(["C1"]) == {"C1": []}


def test_bad_arguments_of_the_reads_and_changes_are_invalid_inputs(store: GraphStore) -> None:
    seed(store)
    ok = change("C1", "entered", 0)
    calls: list[Any] = [
        lambda: store.put_insights(insight("C1")),  # type: ignore[arg-type]
        lambda: store.insights_of("C1"),
        lambda: store.segments_of("C1"),
        lambda: store.segments_of([1]),  # type: ignore[list-item]
        lambda: store.apply_segment_changes(ok),  # type: ignore[arg-type]
        lambda: store.segment_members("VIP"),
        lambda: store.segment_members("vip", first=0),
        lambda: store.segment_members("vip", first=10_001),
        lambda: store.segment_members("vip", first=True),
        lambda: store.segment_members("vip", after=3),  # type: ignore[arg-type]
        lambda: store.insights_of([f"C{i}" for i in range(10_001)]),
    ]
    for bad in (
        SegmentChange("", "vip", "C1", "entered", T, "r", "realtime"),
        SegmentChange("x" * 301, "vip", "C1", "entered", T, "r", "realtime"),
        SegmentChange("a", "Vip", "C1", "entered", T, "r", "realtime"),
        SegmentChange("a", "vip", "", "entered", T, "r", "realtime"),
        SegmentChange("a", "vip", "C1", "joined", T, "r", "realtime"),  # type: ignore[arg-type]
        SegmentChange("a", "vip", "C1", "entered", datetime(2025, 1, 1), "r", "realtime"),
        SegmentChange("a", "vip", "C1", "entered", T, "r" * 1001, "realtime"),
        SegmentChange("a", "vip", "C1", "entered", T, "r", "real time"),
    ):
        calls.append(lambda bad=bad: store.apply_segment_changes([ok, bad]))
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert store.segments_of(["C1"]) == {"C1": []} and store.timeline("C1").events == []


def test_a_merged_id_writes_and_reads_its_survivors_insights(store: GraphStore) -> None:
    seed(store)
    store.put_insights([insight("C2", "clv", 9.0)])  # on C2 while it is active
    merge_c2_into_c1(store)
    assert store.put_insights([insight("C2", "churn", 0.75), insight("nobody", "churn")]) == 1
    got = store.insights_of(["C2", "C1"])
    assert list(got) == ["C2", "C1"] and got["C2"] == got["C1"]
    assert [(i.customer_id, i.name, i.score) for i in got["C1"]] == [("C1", "churn", 0.75)]


def test_membership_entered_exited_no_ops_and_replays(store: GraphStore) -> None:
    seed(store)
    enter = change("C1", "entered", 0)
    assert store.apply_segment_changes([enter]) == [enter]
    assert store.segments_of(["C1", "C2", "nobody"]) == {
        "C1": [Membership("vip", "C1", T, enter.reason)],
        "C2": [],
    }
    again = change("C1", "entered", 1)
    assert store.apply_segment_changes([again]) == []  # a member entering: no-op, since stays
    assert store.segments_of(["C1"])["C1"][0].since == T
    leave = change("C1", "exited", 2)
    assert store.apply_segment_changes([leave]) == [leave]
    assert store.segments_of(["C1"]) == {"C1": []}
    assert store.apply_segment_changes([change("C1", "exited", 3)]) == []  # not a member: no-op
    # A replay of the first change is a no-op, though the customer is not a member now.
    assert store.apply_segment_changes([enter, again, leave]) == []
    assert store.segments_of(["C1"]) == {"C1": []}
    # In one batch, in order: in, out, in again (the last since wins); an unknown customer is skipped.
    batch = [
        change("C2", "entered", 4),
        change("C2", "exited", 5),
        change("C2", "entered", 6),
        change("C9", "entered", 4),
    ]
    assert store.apply_segment_changes(batch) == batch[:3]
    assert store.segments_of(["C2"])["C2"] == [Membership("vip", "C2", T + timedelta(minutes=6), batch[2].reason)]
    assert store.apply_segment_changes([]) == []


def test_changes_that_take_effect_are_on_the_customers_timeline(store: GraphStore) -> None:
    seed(store)
    enter, noop, leave = change("C1", "entered", 0), change("C1", "entered", 1), change("C1", "exited", 2)
    risk = change("C1", "entered", 3, segment="churn_risk")
    store.apply_segment_changes([enter, noop, leave, risk])
    events = store.timeline("C1", types=["segment_entered", "segment_exited"]).events
    assert [(e.id, e.type, e.occurred_at, e.record_uid) for e in events] == [
        (f"segment|{risk.id}", "segment_entered", risk.at, "crm|1"),
        (f"segment|{leave.id}", "segment_exited", T + timedelta(minutes=2), "crm|1"),
        (f"segment|{enter.id}", "segment_entered", T, "crm|1"),
    ]
    assert loads(events[1].data) == {"segment": "vip", "reason": leave.reason, "source": "realtime"}
    assert store.segments_of(["C1"])["C1"] == [Membership("churn_risk", "C1", risk.at, risk.reason)]


def test_a_merged_id_changes_and_reads_its_survivors_memberships(store: GraphStore) -> None:
    seed(store)
    store.apply_segment_changes([change("C2", "entered", 0, segment="lapsed")])  # C2's, before the merge
    merge_c2_into_c1(store)
    via_merged = change("C2", "entered", 1)
    [applied] = store.apply_segment_changes([via_merged])
    assert applied.customer_id == "C1" and applied.id == via_merged.id
    got = store.segments_of(["C2", "C1"])
    assert got["C2"] == got["C1"] == [Membership("vip", "C1", T + timedelta(minutes=1), via_merged.reason)]
    assert store.apply_segment_changes([change("C1", "entered", 2)]) == []  # the survivor is a member
    # The survivor's timeline carries it, through its oldest record; the merged-away membership is not counted.
    # (C2's own event came with its record crm|2: events follow their records.)
    events = store.timeline("C1", types=["segment_entered"]).events
    assert [(e.id, e.record_uid) for e in events] == [
        (f"segment|{via_merged.id}", "crm|1"),
        (f"segment|{change('C2', 'entered', 0, segment='lapsed').id}", "crm|2"),
    ]
    assert store.segment_counts() == {"vip": 1}
    assert store.segment_members("lapsed") == ([], None)


def test_segment_members_page_by_customer_id_active_only_and_counts(store: GraphStore) -> None:
    seed(store)
    extra = [customer_with_records(f"C{n}", 1) for n in range(4, 8)]
    for changes in extra:
        store.apply(changes)
    ids = [f"C{n}" for n in range(1, 8)]
    store.apply_segment_changes([change(cid, "entered", n) for n, cid in enumerate(ids)])
    store.apply_segment_changes([change("C5", "entered", 9, segment="lapsed"), change("C6", "exited", 9)])
    merge_c2_into_c1(store)  # C2 is no longer active: not listed, not counted
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = store.segment_members("vip", first=2, after=cursor)
        pages.append([m.customer_id for m in page])
        if cursor is None:
            break
    assert pages == [["C1", "C3"], ["C4", "C5"], ["C7"]]
    page, cursor = store.segment_members("vip", after="C4")
    assert [m.customer_id for m in page] == ["C5", "C7"] and cursor is None
    assert page[0] == Membership("vip", "C5", T + timedelta(minutes=4), change("C5", "entered", 4).reason)
    assert store.segment_counts() == {"vip": 5, "lapsed": 1}
    assert store.segment_members("nothing") == ([], None)


def test_a_batch_of_5000_insights_and_changes_in_one_call(store: GraphStore) -> None:
    ids = [f"B{n:05d}" for n in range(2500)]
    store.apply(ChangeSet(new_customers=[Customer(cid, T) for cid in ids]))
    batch = [insight(cid, name, n / 2500) for n, cid in enumerate(ids) for name in ("churn", "clv")]
    assert store.put_insights(batch) == 5000
    got = store.insights_of(ids[:1000])
    assert len(got) == 1000 and all(len(v) == 2 for v in got.values())
    assert got["B00999"][0] == insight("B00999", "churn", 999 / 2500)
    changes = [change(cid, "entered", 0, segment=seg) for cid in ids for seg in ("vip", "lapsed")]
    assert len(store.apply_segment_changes(changes)) == 5000
    assert store.segment_counts() == {"vip": 2500, "lapsed": 2500}
    page, cursor = store.segment_members("vip", first=10_000)
    assert len(page) == 2500 and cursor is None
    assert store.apply_segment_changes(changes) == []


def test_a_store_opened_again_keeps_and_creates_its_schema(store: GraphStore) -> None:
    """Opening the store again runs the schema again (idempotent); the data stays."""
    seed(store)
    store.put_insights([insight("C1")])
    store.apply_segment_changes([change("C1", "entered", 0)])
    again = type(store)(store.config)  # type: ignore[call-arg, attr-defined]
    try:
        assert again.insights_of(["C1"])["C1"] == [insight("C1")]
        assert again.segment_counts() == {"vip": 1}
    finally:
        again.close()


def test_an_embedded_file_without_the_insights_tables_gains_them(tmp_path: Any) -> None:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore

    path = tmp_path / "old.db"
    store = EmbeddedStore(EmbeddedConfig(path=path))
    seed(store)
    store.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE insights; DROP TABLE segment_members; DROP TABLE segment_changes;")
    db.close()
    store = EmbeddedStore(EmbeddedConfig(path=path))
    try:
        assert store.put_insights([insight("C1")]) == 1
        assert store.apply_segment_changes([change("C1", "entered", 0)]) != []
        assert store.segment_counts() == {"vip": 1}
    finally:
        store.close()


def test_reset_empties_the_insights_domain(store: GraphStore) -> None:
    seed(store)
    store.put_insights([insight("C1")])
    store.apply_segment_changes([change("C1", "entered", 0)])
    store.reset(confirm=True)
    seed(store)
    assert store.insights_of(["C1"]) == {"C1": []} and store.segment_counts() == {}
    assert store.apply_segment_changes([change("C1", "entered", 0)]) != []  # the change ids went too
