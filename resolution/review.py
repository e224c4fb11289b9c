"""Data stewards' decisions on review items: approve (link the pair) or reject (never link it)."""

from __future__ import annotations

from datetime import datetime

from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import ApartPair, ChangeSet, Evidence, MergeEvent, ReviewItem
from c360.graph.store import GraphStore

from .survivorship import SurvivorshipConfig, golden_record


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
        found = store.lookup([item.record_uid], []).records.get(item.record_uid)
        target = store.resolve(item.customer_id)
        if found is None or target is None:
            raise NotFoundError(f"review item {review_id} refers to a record or customer that no longer exists")
        if found.customer_id != target:
            survivor, merged = sorted((found.customer_id, target))  # IDs are time-ordered: the older survives
            note = f"review {review_id} approved by {by}" + (f": {reason}" if reason else "")
            evidence = Evidence("review", (), record=item.record_uid, note=note)
            records = store.records_of([survivor, merged])
            everything = records.get(survivor, []) + records.get(merged, [])
            brought = tuple(sorted(r.uid for r in records.get(merged, [])))
            store.apply(
                ChangeSet(
                    merges=[MergeEvent(survivor, merged, now, evidence, brought)],
                    goldens={survivor: golden_record(everything, survivorship)},
                )
            )
        return store.decide_review(review_id, "approved", by, reason, now)


def reject(store: GraphStore, review_id: str, *, by: str, reason: str, now: datetime) -> ReviewItem:
    """Reject: the pair is not the same; later automatic decisions will not match it again."""
    if not reason or not reason.strip():
        raise InvalidInputError("a rejection needs a reason (--reason)")
    with store.exclusive():
        item = _open_item(store, review_id)
        # The pair is kept apart for deterministic links and batch runs too, not only for the model.
        note = f"review {review_id} rejected by {by}: {reason.strip()}"
        store.apply(ChangeSet(apart=[ApartPair(item.record_uid, item.candidate_uid, note)]))
        return store.decide_review(review_id, "rejected", by, reason.strip(), now)
