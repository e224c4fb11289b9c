"""The blocking-key port's contract (candidates, replacing keys): every backend passes every test here."""

from __future__ import annotations

import pytest
from c360.graph.errors import InvalidInputError
from c360.graph.models import (
    ChangeSet,
    Evidence,
    RecordWrite,
    SourceRecord,
)
from c360.graph.store import GraphStore
from store_contract import T, seed


def test_blocking_keys_find_candidates_and_can_be_replaced(store: GraphStore) -> None:
    seed(store)
    record = SourceRecord("web", "9", T, first_name="Ann", last_name="Lee")
    keys = ("fn_ln:ann|lee", "dob:1990-01-01")
    w = RecordWrite(record, "h9", (), "C2", Evidence("new"), blocking_keys=keys, match_view='["v9"]')
    store.apply(ChangeSet(records=[w]))
    found = store.candidates(["fn_ln:ann|lee", "nope"])
    assert [(c.uid, c.keys, c.view, c.record) for c in found] == [("web|9", ("fn_ln:ann|lee",), '["v9"]', None)]
    store.replace_blocking_keys(
        {"crm|1": ["fn_ln:ann|lee", "pc:x"], "crm|2": ["fn_ln:ann|lee"], "crm|3": ["pc:x"]}, {"crm|1": "[1]"}
    )
    # A view filed with the keys comes back instead of the record; without one, the record comes.
    filed = {c.uid: (c.view, c.record.first_name if c.record else None) for c in store.candidates(["pc:x"])}
    assert filed == {"crm|1": ("[1]", None), "crm|3": (None, "Ann")}
    assert [c.uid for c in store.candidates(["fn_ln:ann|lee"])] == ["crm|1", "crm|2"]
    both = store.candidates(["pc:x", "fn_ln:ann|lee"])
    assert [(c.uid, c.keys) for c in both] == [
        ("crm|1", ("fn_ln:ann|lee", "pc:x")),
        ("crm|2", ("fn_ln:ann|lee",)),
        ("crm|3", ("pc:x",)),
    ]
    assert [c.uid for c in store.candidates(["fn_ln:ann|lee"], per_key=1)] == ["crm|1"]  # first by uid
    # A rewritten record files under its new keys only.
    store.apply(ChangeSet(records=[RecordWrite(record, "h9b", (), "C2", Evidence("new"), blocking_keys=("pc:x",))]))
    assert [(c.uid, c.view) for c in store.candidates(["pc:x"])] == [("crm|1", "[1]"), ("crm|3", None), ("web|9", None)]
    assert "web|9" not in [c.uid for c in store.candidates(["dob:1990-01-01"])]
    assert store.candidates([]) == []


def test_per_key_below_one_is_an_argument_error(store: GraphStore) -> None:
    with pytest.raises(InvalidInputError):
        store.candidates(["k"], per_key=0)
