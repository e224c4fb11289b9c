"""The in-process runner: file rows through the pipeline, bad rows as dead letters, on every backend."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from c360.connectors.files import FileSource
from c360.graph.models import Identifier
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from c360.streams.runner import Runner, file_payloads

ROWS = (
    "id,first_name,email,date_of_birth,updated_at\n"
    "1,Ann,ann@example.com,1990-01-01,2026-05-01\n"
    ",Bob,bob@example.com,1980-02-02,2026-05-01\n"  # row 3: no key
    "3,Cy,cy@example.com,1970-03-03\n"  # row 4: a field short
    "1,Ann,ann@example.com,1990-01-01,2026-05-02\n"  # row 5: a key seen before in the file
    "5,Dee,dee@example.com,soon,2026-05-01\n"  # a date that does not parse: kept, the field empty
)


def _ingest(store: GraphStore, path: Path, batch_size: int = 2) -> Runner:
    runner = Runner(Pipeline(store, Linker(store)), batch_size=batch_size)
    runner.run(file_payloads(FileSource(path, "shop")))
    return runner


def test_file_rows_become_events_and_bad_rows_dead_letters_with_row_and_reason(
    store: GraphStore, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(ROWS)
    totals = _ingest(store, path).totals
    assert (totals.events, totals.accepted, totals.duplicates) == (5, 2, 0)
    assert (totals.ingest.received, totals.ingest.inserted, totals.ingest.new_customers) == (2, 2, 2)
    assert [r.index for r in totals.rejected] == [1, 2, 3]  # positions in the input, across batches
    letters = store.dead_letters(source="shop")
    assert [d.reason.split(":")[0] for d in letters] == ["people.csv row 3", "people.csv row 4", "people.csv row 5"]
    assert "missing key" in letters[0].reason and "fields" in letters[1].reason and "duplicate key" in letters[2].reason
    assert json.loads(letters[0].payload)["first_name"] == "Bob"  # the row as the file held it
    assert letters[1].payload == "3,Cy,cy@example.com,1970-03-03"
    assert {r.dead_letter for r in totals.rejected} == {d.id for d in letters}
    assert store.dead_letters(source="crm") == []
    # Each row is a profile update event, kept like one a partner posts (its id makes a re-read idempotent).
    ids = [f"shop|{p['event_id']}" for p in file_payloads(FileSource(path, "shop")) if isinstance(p, dict)]
    assert len(ids) == 2 and store.seen_events(ids) == set(ids)
    assert len(store.find_by_identifier(Identifier("email", "ann@example.com"))) == 1


def test_reading_a_file_again_changes_nothing_and_a_changed_row_is_applied(store: GraphStore, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(ROWS)
    _ingest(store, path)
    before = (store.stats(), [d.id for d in store.dead_letters(status=None)])
    again = _ingest(store, path).totals
    assert (again.accepted, again.duplicates, len(again.rejected)) == (0, 2, 3)
    assert (store.stats(), [d.id for d in store.dead_letters(status=None)]) == before  # no second letter
    path.write_text(ROWS.replace("Dee,dee@example.com", "Dee,dee@example.org"))
    later = int(time.time()) + 3600  # newer, and within the day ahead that occurred_at may be
    os.utime(path, (later, later))
    changed = _ingest(store, path).totals
    # Without a time column a row's time is the file's: a newer file is new events, the same rows unchanged.
    assert (changed.accepted, changed.ingest.updated, changed.ingest.unchanged) == (2, 1, 1)
    assert len(store.find_by_identifier(Identifier("email", "dee@example.org"))) == 1


def test_an_unreadable_row_can_be_replayed_as_a_corrected_event(store: GraphStore, tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_bytes(b'{"id": "1", "first_name": "Ann"}\n{"id": "2", "first_name": "B\xff"}\nnot json\n')
    runner = _ingest(store, path)
    reasons = [r.reason for r in runner.totals.rejected]
    assert reasons == ["people.jsonl row 2: not valid UTF-8", "people.jsonl row 3: invalid JSON: Expecting value"]
    letter = store.dead_letters(source="shop")[0]
    assert letter.payload == '{"id": "2", "first_name": "B\ufffd"}'
    fixed = {
        "event_id": "fix-2",
        "type": "profile_update",
        "source": "shop",
        "occurred_at": "2026-05-01T00:00:00Z",
        "profile": {"customer_key": "2", "first_name": "Bea"},
    }
    outcome = runner.apply([fixed])
    store.mark_replayed(letter.id)
    assert outcome.accepted == ["shop|fix-2"]
    assert [d.id for d in store.dead_letters(source="shop")] == [runner.totals.rejected[1].dead_letter]


def test_the_bad_rows_of_one_batch_are_listed_in_row_order(store: GraphStore, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("id,first_name\n" + "".join(f",Nobody{i}\n" for i in range(12)))
    _ingest(store, path, batch_size=100)  # one batch: the letters share a batch, not an instant
    rows = [int(d.reason.split(" row ")[1].split(":")[0]) for d in store.dead_letters(source="shop")]
    assert rows == list(range(2, 14))
