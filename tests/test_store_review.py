"""The review port's contract (review items, decisions, rejected pairs): every backend passes every test here."""

from __future__ import annotations

import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import (
    ChangeSet,
    ReviewItem,
)
from c360.graph.store import GraphStore
from store_contract import T, seed


def test_review_items_are_kept_decided_once_and_rejections_remembered(store: GraphStore) -> None:
    seed(store)
    items = [ReviewItem(f"R{n}", f"crm|{n}", "crm|3", "C3", 3.5, 0.92, T.replace(minute=n)) for n in (1, 2)]
    store.apply(ChangeSet(reviews=items))
    assert [r.id for r in store.review_items()] == ["R1", "R2"]
    decided = store.decide_review("R1", "rejected", "ann", "different people", T)
    assert (decided.status, decided.decided_by, decided.reason, decided.decided_at) == (
        "rejected",
        "ann",
        "different people",
        T,
    )
    assert [r.id for r in store.review_items()] == ["R2"]
    assert [r.id for r in store.review_items(status=None)] == ["R1", "R2"]
    assert store.rejected_pairs(["crm|3"]) == {frozenset({"crm|1", "crm|3"})}
    assert store.rejected_pairs(["crm|2"]) == set()
    with pytest.raises(ConflictError):
        store.decide_review("R1", "approved", "bob", None, T)
    with pytest.raises(NotFoundError):
        store.decide_review("R9", "approved", "bob", None, T)
    assert store.get_review("R2") == items[1]


def test_review_arguments_are_checked_before_the_store_is_asked(store: GraphStore) -> None:
    with pytest.raises(InvalidInputError):
        store.review_items(status="maybe")
    with pytest.raises(InvalidInputError):
        store.decide_review("R1", "perhaps", "ann", None, T)
