"""The journey port's contract (events, idempotency by id, timelines): every backend passes every test here."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import (
    ChangeSet,
    Evidence,
    MergeEvent,
    StoredEvent,
)
from c360.graph.store import GraphStore
from store_contract import PHONE, T, seed, write


def _event(eid: str, record: str | None, minutes: int, kind: str = "order") -> StoredEvent:
    return StoredEvent(eid, kind, T + timedelta(minutes=minutes), f'{{"n": "{eid}"}}', record)


def test_events_are_idempotent_and_timelines_follow_records(store: GraphStore) -> None:
    seed(store)
    events = [
        _event("s|o1", "crm|1", 1),
        _event("s|t1", "crm|2", 2, "transaction"),
        _event("s|w1", "crm|1", 3, "web_activity"),
        _event("s|p1", None, 4, "product"),
        _event("s|o2", "crm|1", 3),  # same time as w1: the id breaks the tie
    ]
    store.apply(ChangeSet(events=events))
    assert store.seen_events(["s|o1", "s|p1", "s|nope"]) == {"s|o1", "s|p1"}
    # A redelivered event changes nothing, even when its payload differs.
    store.apply(ChangeSet(events=[replace(events[0], data='{"n": "changed"}')]))
    page = store.timeline("C1")
    assert [e.id for e in page.events] == ["s|w1", "s|o2", "s|o1"] and page.next_cursor is None
    assert page.events[-1].data == '{"n": "s|o1"}' and page.events[-1].occurred_at == T + timedelta(minutes=1)
    first = store.timeline("C1", first=2)
    assert [e.id for e in first.events] == ["s|w1", "s|o2"] and first.next_cursor is not None
    rest = store.timeline("C1", first=2, after=first.next_cursor)
    assert [e.id for e in rest.events] == ["s|o1"] and rest.next_cursor is None
    assert [e.id for e in store.timeline("C1", types=["order"]).events] == ["s|o2", "s|o1"]
    # A merge brings the merged customer's timeline along; the old ID reads the survivor's.
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)))]))
    assert [e.id for e in store.timeline("C2").events] == ["s|w1", "s|o2", "s|t1", "s|o1"]
    with pytest.raises(NotFoundError):
        store.timeline("C404")
    with pytest.raises(InvalidInputError):
        store.timeline("C1", after="garbage")
    with pytest.raises(InvalidInputError):
        store.timeline("C1", first=0)


def test_the_change_feeds_page_in_order_and_bring_back_what_moved(store: GraphStore) -> None:
    from c360.graph.models import RecordMove

    seed(store)
    customers = store.customer_changes()
    assert sorted(c.customer.id for c in customers) == ["C1", "C2", "C3"]
    assert customers[0].changed_at is not None and customers[0].customer.golden["first_name"].value == "Ann"
    mark = (customers[-1].seq, customers[-1].customer.id)
    assert store.customer_changes(after=mark) == []
    store.apply(ChangeSet(events=[_event("s|o1", "crm|1", 1), _event("s|p1", None, 2, "product")]))
    store.apply(ChangeSet(events=[_event("s|t1", "crm|2", 3, "transaction"), _event("s|o1", "crm|1", 9)]))
    feed = store.event_changes()
    assert [(c.event.id, c.customer_id) for c in feed] == [("s|o1", "C1"), ("s|p1", None), ("s|t1", "C2")]
    assert feed[0].seq == feed[1].seq < feed[2].seq  # one sequence number per write, rising
    assert feed[0].event.data == '{"n": "s|o1"}'
    # Paging from the last entry read: one at a time gives the same feed; types filter it.
    page, cursor, seen = [True], None, []
    while page:
        page = store.event_changes(after=cursor, first=1)
        seen += [c.event.id for c in page]
        cursor = (page[-1].seq, page[-1].event.id) if page else cursor
    assert seen == ["s|o1", "s|p1", "s|t1"]
    assert store.event_changes(after=cursor) == []
    assert [c.event.id for c in store.event_changes(types=["transaction"])] == ["s|t1"]
    # A record that moves brings its events back with their new customer; both customers changed.
    store.apply(ChangeSet(moves=[RecordMove("crm|1", "C3", Evidence("steward"))]))
    moved = store.event_changes(after=cursor)
    assert [(c.event.id, c.customer_id) for c in moved] == [("s|o1", "C3")]
    cursor = (moved[-1].seq, moved[-1].event.id)
    assert {c.customer.id for c in store.customer_changes(after=mark)} == {"C3"}
    # A merge: both sides change, the merged one with its survivor.
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)))]))
    changed = {c.customer.id: c.customer for c in store.customer_changes(after=mark)}
    assert changed["C2"].status == "merged" and changed["C2"].merged_into == "C1" and "C1" in changed
    # An updated record that the write gives another customer: its events come back too.
    assert store.event_changes(after=cursor) == []
    store.apply(ChangeSet(records=[write("2", "C3", PHONE)]))
    assert [(c.event.id, c.customer_id) for c in store.event_changes(after=cursor)] == [("s|t1", "C3")]
    store.apply(ChangeSet(records=[write("2", "C3", PHONE)]))  # the same customer: nothing comes back
    assert len(store.event_changes(after=cursor)) == 1
    with pytest.raises(InvalidInputError):
        store.event_changes(first=0)
    with pytest.raises(InvalidInputError):
        store.customer_changes(after=("1", "x"))  # type: ignore[arg-type]
