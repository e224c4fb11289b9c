"""The dead-letter port's contract: every backend passes every test here."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import (
    DeadLetter,
)
from c360.graph.store import GraphStore
from store_contract import T


def test_dead_letters_are_kept_listed_and_replayed_once(store: GraphStore) -> None:
    letters = [
        DeadLetter("D2", T + timedelta(seconds=1), "bad email", '{"x": 2}', "partner"),
        DeadLetter("D1", T, "not JSON", "{oops"),
    ]
    store.add_dead_letters(letters)
    store.add_dead_letters([replace(letters[1], reason="again")])  # a redelivered bad event: kept once
    assert [(d.id, d.reason) for d in store.dead_letters()] == [("D1", "not JSON"), ("D2", "bad email")]
    assert store.get_dead_letter("D2") == letters[0]
    store.mark_replayed("D1")
    assert [d.id for d in store.dead_letters()] == ["D2"]
    assert [d.id for d in store.dead_letters(status=None)] == ["D1", "D2"]
    with pytest.raises(ConflictError):
        store.mark_replayed("D1")
    with pytest.raises(NotFoundError):
        store.get_dead_letter("D9")


def test_an_unknown_dead_letter_status_is_an_argument_error(store: GraphStore) -> None:
    with pytest.raises(InvalidInputError):
        store.dead_letters(status="lost")


def test_dead_letters_are_listed_by_source(store: GraphStore) -> None:
    store.add_dead_letters(
        [
            DeadLetter("D1", T, "row 2: missing key", "{}", "crm"),
            DeadLetter("D2", T + timedelta(seconds=1), "bad email", "{}", "shop"),
            DeadLetter("D3", T + timedelta(seconds=2), "not JSON", "{oops"),
            DeadLetter("D4", T + timedelta(seconds=3), "row 9: not valid UTF-8", "", "crm"),
        ]
    )
    store.mark_replayed("D4")
    assert [d.id for d in store.dead_letters(source="crm")] == ["D1"]
    assert [d.id for d in store.dead_letters(status=None, source="crm")] == ["D1", "D4"]
    assert store.dead_letters(source="erp") == []
    assert [d.id for d in store.dead_letters(status=None, limit=2)] == ["D1", "D2"]
    with pytest.raises(InvalidInputError):
        store.dead_letters(limit=0)
