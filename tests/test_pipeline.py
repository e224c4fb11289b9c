"""The event pipeline: validation, dead letters, resolution, journeys and idempotency, on every backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from c360.streams.events import export_schemas, json_schemas, parse_event
from c360.streams.pipeline import Pipeline

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "events"


def profile(eid: str, key: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "type": "profile_update",
        "source": "crm",
        "occurred_at": f"2026-05-01T10:{minute:02d}:00+02:00",
        "profile": {"customer_key": key, **fields},
    }


def order(eid: str, key: str, minute: int, source: str = "crm") -> dict[str, Any]:
    return {
        "event_id": eid,
        "type": "order",
        "source": source,
        "occurred_at": f"2026-05-01T11:{minute:02d}:00Z",
        "order_id": f"O-{eid}",
        "customer_key": key,
        "currency": "EUR",
        "total": "19.90",
        "line_items": [{"line_id": "1", "product_id": "P1", "quantity": 2, "unit_price": "9.95"}],
    }


def click(eid: str, key: str, minute: int) -> dict[str, Any]:
    return {
        "event_id": eid,
        "type": "web_activity",
        "source": "web",
        "occurred_at": f"2026-05-01T12:{minute:02d}:00Z",
        "customer_key": key,
        "action": "add_to_cart",
        "session_id": "S1",
        "product_id": "P1",
        "traffic_source": "paid_search",
    }


def test_a_batch_lands_on_customers_and_bad_events_become_dead_letters(store: GraphStore) -> None:
    pipeline = Pipeline(store, Linker(store))
    batch = [
        profile("e1", "1", 0, first_name="Ann", email="ann@example.com"),
        {**profile("e2", "w9", 1, first_name="Ann", email="ANN@example.com"), "source": "web"},
        order("o1", "1", 5),
        click("c1", "w9", 7),
        {**order("o2", "1", 6), "total": "-3"},  # negative total
        {"event_id": "x", "type": "teleport", "source": "crm", "occurred_at": "2026-05-01T00:00:00Z"},
        "{not json",
    ]
    out = pipeline.process(batch)
    assert out.accepted == ["crm|e1", "web|e2", "crm|o1", "web|c1"]
    assert [(r.index, r.event_id) for r in out.rejected] == [(4, "o2"), (5, "x"), (6, None)]
    assert "total" in out.rejected[0].reason and "teleport" in out.rejected[1].reason
    letters = store.dead_letters()
    assert {d.id for d in letters} == {r.dead_letter for r in out.rejected}
    assert any(d.payload == "{not json" for d in letters)
    # The two profiles share an email: one customer, whose timeline holds the order and the click.
    cid = {f"{s}|{k}": c for s, k, c in store.iter_links()}["crm|1"]
    assert {f"{s}|{k}": c for s, k, c in store.iter_links()}["web|w9"] == cid
    page = store.timeline(cid)
    assert [e.id for e in page.events] == ["web|c1", "crm|o1"]
    assert json.loads(page.events[1].data)["line_items"][0]["unit_price"] == "9.95"
    # Redelivered: nothing changes, everything is a duplicate.
    again = pipeline.process(batch[:4])
    assert again.accepted == [] and again.duplicates == 4 and again.ingest.inserted == 0
    assert len(store.dead_letters()) == 3


def test_a_replayed_old_profile_update_does_not_overwrite_a_newer_one(store: GraphStore) -> None:
    pipeline = Pipeline(store, Linker(store))
    old = profile("e1", "1", 0, first_name="Ann", city="Berlin")
    pipeline.process([old])
    pipeline.process([profile("e2", "1", 5, first_name="Ann", city="Hamburg")])
    replay = pipeline.process([old])
    assert replay.accepted == [] and replay.duplicates == 1
    [(record, _)] = list(store.iter_records())
    assert record.city == "Hamburg"


def test_an_order_before_its_profile_appears_once_the_profile_arrives(store: GraphStore) -> None:
    pipeline = Pipeline(store, Linker(store))
    assert pipeline.process([order("o1", "7", 1)]).accepted == ["crm|o1"]
    pipeline.process([profile("p7", "7", 2, first_name="Bo")])
    cid = {f"{s}|{k}": c for s, k, c in store.iter_links()}["crm|7"]
    assert [e.id for e in store.timeline(cid).events] == ["crm|o1"]


def test_committed_json_schemas_match_the_models(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    assert {p.name for p in written} == set(json_schemas())
    for path in written:
        committed = SCHEMAS / path.name
        assert committed.exists(), f"run: c360 events schema --out schemas/events ({path.name} missing)"
        assert committed.read_text() == path.read_text(), f"{path.name} is stale: re-export the schemas"


@pytest.mark.parametrize(
    "bad",
    [
        {"occurred_at": "2026-05-01T10:00:00"},  # no time zone
        {"schema_version": 2},
        {"source": "Has Spaces"},
        {"surprise": 1},
    ],
)
def test_event_envelope_is_strict(bad: dict[str, Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        parse_event({**order("o", "1", 1), **bad})


def test_profile_payload_round_trips_a_source_record() -> None:
    from datetime import UTC, date, datetime

    from c360.graph.models import SourceRecord
    from c360.streams.pipeline import profile_payload, to_record

    record = SourceRecord(
        "crm",
        "42",
        datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        first_name="Zoë",
        date_of_birth=date(1990, 5, 6),
        email="z@example.com",
        attributes={"tier": "gold"},
    )
    event = parse_event(profile_payload(record, "e42"))
    assert to_record(event) == record  # type: ignore[arg-type]


def test_timelines_merge_with_customers_and_follow_records_on_a_split(store: GraphStore) -> None:
    from datetime import UTC, datetime

    from c360.resolution.config import SurvivorshipConfig
    from c360.resolution.linker import CustomerIdFactory
    from c360.resolution.undo import split

    pipeline = Pipeline(store, Linker(store))
    pipeline.process([profile("a", "1", 0, first_name="Ann"), order("o1", "1", 1)])
    pipeline.process([{**profile("b", "w9", 2, first_name="Ann"), "source": "web"}, click("c1", "w9", 3)])
    links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
    assert links["crm|1"] != links["web|w9"]
    # The same email arrives for both: their customers merge, and so do their timelines.
    pipeline.process([profile("a2", "1", 4, first_name="Ann", email="ann@example.com")])
    pipeline.process([{**profile("b2", "w9", 5, first_name="Ann", email="ann@example.com"), "source": "web"}])
    links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
    survivor = links["crm|1"]
    assert links["web|w9"] == survivor
    assert [e.id for e in store.timeline(survivor).events] == ["web|c1", "crm|o1"]
    # A steward splits the web record out: its click goes with it.
    event = split(
        store,
        survivor,
        ["web|w9"],
        by="steward",
        reason="different people",
        now=datetime.now(UTC),
        new_id=CustomerIdFactory(),
        survivorship=SurvivorshipConfig(),
    )
    assert [e.id for e in store.timeline(event.new).events] == ["web|c1"]
    assert [e.id for e in store.timeline(survivor).events] == ["crm|o1"]
