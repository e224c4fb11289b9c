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
from store_contract import PHONE, T, seed


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
