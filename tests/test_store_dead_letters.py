"""The dead-letter port's contract: every backend passes every test here."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

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


def test_dead_letters_keep_who_sent_them(store: GraphStore) -> None:
    letters = [
        DeadLetter(
            "D1",
            T,
            "source 'crm' is not one this sender may send as",
            '{"source": "crm"}',
            "crm",
            sender="partner:acme",
        ),
        DeadLetter("D2", T + timedelta(seconds=1), "row 2: missing key", "{}", "shop", sender="cli:ann"),
        DeadLetter("D3", T + timedelta(seconds=2), "not JSON", "{oops"),  # kept before senders were recorded
    ]
    store.add_dead_letters(letters)
    assert [(d.id, d.sender) for d in store.dead_letters()] == [("D1", "partner:acme"), ("D2", "cli:ann"), ("D3", None)]
    assert store.get_dead_letter("D1") == letters[0]
    assert store.get_dead_letter("D1").to_json()["sender"] == "partner:acme"
    store.mark_replayed("D1")
    assert store.get_dead_letter("D1").sender == "partner:acme"


def test_a_dead_letter_that_is_not_valid_unicode_is_an_argument_error(store: GraphStore) -> None:
    with pytest.raises(InvalidInputError, match="not valid Unicode"):
        store.add_dead_letters([DeadLetter("D1", T, "bad", '{"event_id": "\ud800"}', sender="partner:acme")])
    with pytest.raises(InvalidInputError, match="sender"):
        store.add_dead_letters([DeadLetter("D1", T, "bad", "{}", sender="partner:\udcff")])
    assert store.dead_letters(status=None) == []


def test_embedded_store_opens_dead_letters_of_an_older_schema(tmp_path: Path) -> None:
    """A schema-3 file (dead letters without a sender) opens; its letters have none, new ones do."""
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore

    path = tmp_path / "old.db"
    store = EmbeddedStore(EmbeddedConfig(path=path))
    store.close()
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE dead_letters; CREATE TABLE dead_letters (id TEXT PRIMARY KEY, received_at TEXT NOT NULL, "
        "source TEXT, reason TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL);"
        f"INSERT INTO dead_letters VALUES ('D1', '{T.isoformat()}', 'crm', 'bad email', '{{}}', 'open');"
        "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
    )
    db.close()
    store = EmbeddedStore(EmbeddedConfig(path=path))
    try:
        assert store.get_dead_letter("D1") == DeadLetter("D1", T, "bad email", "{}", "crm")
        store.add_dead_letters([DeadLetter("D2", T + timedelta(seconds=1), "not JSON", "{", sender="cli:ann")])
        assert [(d.id, d.sender) for d in store.dead_letters()] == [("D1", None), ("D2", "cli:ann")]
    finally:
        store.close()
    version = sqlite3.connect(path).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == ("4",)
