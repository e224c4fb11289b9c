"""Data stewards' decisions on review items: approve (link the pair) or reject (never link it)."""

from __future__ import annotations

from datetime import datetime

from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import ApartPair, ChangeSet, Evidence, MergeEvent, ReviewItem
from c360.graph.store import GraphStore

from .config import SurvivorshipConfig
from .survivorship import golden_record


def _open_item(store: GraphStore, review_id: str) -> ReviewItem:
    item = store.get_review(review_id)
    if item is None:
        raise NotFoundError(f"no review item {review_id}")
    if item.status != "open":
        raise ConflictError(f"review item {review_id} is already {item.status}")
    return item


def approve(
    store: GraphStore, review_id: str, *, by: str, reason: str | None, now: datetime, survivorship: SurvivorshipConfig
) -> ReviewItem:
    """Approve: the record and the candidate's customer are one customer (merged if they are not yet)."""
    with store.exclusive():
        item = _open_item(store, review_id)
        # Both sides as they are now (a split or a batch run may have moved them since the item was opened).
        sides = store.lookup([item.record_uid, item.candidate_uid], []).records
        found, candidate = sides.get(item.record_uid), sides.get(item.candidate_uid)
        if found is None or candidate is None:
            raise NotFoundError(f"review item {review_id} refers to a record that no longer exists")
        if found.customer_id != candidate.customer_id:
            note = f"review {review_id} approved by {by}" + (f": {reason}" if reason else "")
            _merge(
                store,
                found.customer_id,
                candidate.customer_id,
                Evidence("review", (), record=item.record_uid, note=note),
                now,
                survivorship,
            )
        return store.decide_review(review_id, "approved", by, reason, now)


def reject(store: GraphStore, review_id: str, *, by: str, reason: str, now: datetime) -> ReviewItem:
    """Reject: the pair is not the same; later automatic decisions will not match it again."""
    if not reason or not reason.strip():
        raise InvalidInputError("a rejection needs a reason (--reason)")
    with store.exclusive():
        item = _open_item(store, review_id)
        sides = store.lookup([item.record_uid, item.candidate_uid], []).records
        if len(sides) == 2 and len({s.customer_id for s in sides.values()}) == 1:
            raise ConflictError(
                f"{item.record_uid} and {item.candidate_uid} are one customer by now; "
                f"to separate them: c360 customer split {next(iter(sides.values())).customer_id} --records ..."
            )
        # The pair is kept apart for deterministic links and batch runs too, not only for the model.
        note = f"review {review_id} rejected by {by}: {reason.strip()}"
        store.apply(ChangeSet(apart=[ApartPair(item.record_uid, item.candidate_uid, note)]))
        return store.decide_review(review_id, "rejected", by, reason.strip(), now)


def _merge(
    store: GraphStore, a: str, b: str, evidence: Evidence, now: datetime, survivorship: SurvivorshipConfig
) -> MergeEvent:
    """Merge two active customers (inside ``exclusive``) unless records of theirs are kept apart."""
    blocking = [p for p in store.apart(customer_ids=[a, b]) if {p.customer_a, p.customer_b} == {a, b}]
    if blocking:
        raise ConflictError(
            f"records {blocking[0].a} and {blocking[0].b} of these customers are kept apart "
            f"({blocking[0].reason}); split differently or leave them apart"
        )
    survivor, merged = sorted((a, b))  # IDs are time-ordered: the older survives
    records = store.records_of([survivor, merged])
    everything = records.get(survivor, []) + records.get(merged, [])
    brought = tuple(sorted(r.uid for r in records.get(merged, [])))
    event = MergeEvent(survivor, merged, now, evidence, brought)
    store.apply(ChangeSet(merges=[event], goldens={survivor: golden_record(everything, survivorship)}))
    return event


def merge_customers(
    store: GraphStore, a: str, b: str, *, by: str, reason: str, now: datetime, survivorship: SurvivorshipConfig
) -> MergeEvent:
    """A steward's merge of two customers: the older ID survives, the other redirects to it.

    Raises ConflictError when one of them was merged away already or their records are kept apart.
    """
    if not reason or not reason.strip():
        raise InvalidInputError("a merge needs a reason")
    if a == b:
        raise InvalidInputError("a customer cannot be merged with itself")
    with store.exclusive():
        for cid in (a, b):
            active = store.resolve(cid)
            if active is None:
                raise NotFoundError(f"no customer {cid}")
            if active != cid:
                raise ConflictError(f"customer {cid} was merged into {active} already")
        evidence = Evidence("manual", (), note=f"merged by {by}: {reason.strip()}")
        return _merge(store, a, b, evidence, now, survivorship)
