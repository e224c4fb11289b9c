"""The ML snapshot: the store's customers and journeys in DuckDB and Parquet, full then incremental."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from c360.connectors.synthetic.retail import RetailSet, generate_retail, shoppers_from_keys
from c360.graph.errors import InvalidInputError
from c360.graph.store import GraphStore
from c360.ml.snapshot import SnapshotReport, database_path, snapshot
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from payloads import order_event, profile_event, web_event

UNTIL = datetime(2026, 6, 1, tzinfo=UTC)
KEYS = [("crm" if i % 2 else "webshop", f"K{i:03d}") for i in range(24)]


def _profiles() -> list[dict[str, Any]]:
    return [
        profile_event(f"p{i}", s, k, i % 60, first_name=f"Fn{i}", last_name=f"Ln{i}", email=f"k{i}@example.com")
        for i, (s, k) in enumerate(KEYS)
    ]


def _retail() -> RetailSet:
    shoppers = shoppers_from_keys(KEYS, start=datetime(2026, 5, 1, tzinfo=UTC), seed=5)
    return generate_retail(shoppers, seed=7, until=UNTIL, brands=5, products=20)


def _click(eid: str, source: str, key: str, minute: int) -> dict[str, Any]:
    at = f"2026-06-01T12:{minute:02d}:00Z"
    return web_event(eid, key, at, source=source, session_id=f"S-{eid}", product_id="P-x")


def _rows(folder: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database_path(folder)), read_only=True) as con:
        return con.execute(sql).fetchall()


def _counts(report: SnapshotReport) -> dict[str, tuple[int, int, int, int]]:
    return {t: (c.read, c.inserted, c.updated, c.deleted) for t, c in report.tables.items()}


Ingested = tuple[GraphStore, Pipeline, RetailSet]


@pytest.fixture
def ingested(store: GraphStore) -> Ingested:
    pipeline = Pipeline(store, Linker(store))
    rs = _retail()
    out = pipeline.process(_profiles())
    assert not out.rejected
    events = rs.events()
    for i in range(0, len(events), 500):
        assert not pipeline.process(events[i : i + 500]).rejected
    return store, pipeline, rs


def test_a_full_snapshot_holds_what_was_ingested(ingested: Ingested, tmp_path: Path) -> None:
    store, _, rs = ingested
    lines: list[str] = []
    report = snapshot(store, tmp_path, progress=lines.append, page_size=200)
    assert report.mode == "full" and report.complete and report.written_parquet
    assert any(line.startswith("events:") for line in lines)
    counts = rs.counts()
    assert report.events_read == counts["order"] + counts["transaction"] + counts["web_activity"] + counts["product"]
    links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
    assert _rows(tmp_path, "SELECT count(*) FROM customers") == [(len(set(links.values())),)]
    # Every order once (the latest event of an order wins), with the customer its record belongs to.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for o in sorted(rs.orders, key=lambda o: (o["occurred_at"], o["source"] + "|" + o["event_id"])):
        latest[(o["source"], o["order_id"])] = o
    got = {
        (s, o): (c, st, t)
        for s, o, c, st, t in _rows(tmp_path, "SELECT source, order_id, customer_id, status, total FROM orders")
    }
    assert set(got) == set(latest)
    for key, o in latest.items():
        assert got[key] == (links[f"{o['source']}|{o['customer_key']}"], o["status"], Decimal(o["total"]))
    lines_expected = sum(len(o["line_items"]) for o in latest.values())
    assert _rows(tmp_path, "SELECT count(*) FROM line_items") == [(lines_expected,)]
    assert _rows(tmp_path, "SELECT count(*) FROM web_events") == [(len(rs.web_activity),)]
    actions = Counter(w["action"] for w in rs.web_activity)
    assert dict(_rows(tmp_path, "SELECT action, count(*) FROM web_events GROUP BY action")) == actions
    assert _rows(tmp_path, "SELECT count(*) FROM products") == [(len(rs.products),)]
    tx = {(t["source"], t["transaction_id"]) for t in rs.transactions}
    assert _rows(tmp_path, "SELECT count(*) FROM transactions") == [(len(tx),)]
    assert _rows(tmp_path, "SELECT count(*) FROM transactions WHERE customer_id IS NULL") == [(0,)]
    # The golden fields, typed as the schema says.
    cid = links["crm|K001"]
    assert _rows(tmp_path, f"SELECT first_name, email FROM customers WHERE customer_id = '{cid}'") == [
        ("Fn1", "k1@example.com")
    ]
    types = dict(
        _rows(tmp_path, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders'")
    )
    assert types["total"] == "DECIMAL(18,2)" and types["occurred_at"] == "TIMESTAMP WITH TIME ZONE"
    # The Parquet files hold the same rows, readable by DuckDB.
    for table in ("customers", "orders", "line_items", "transactions", "web_events", "products", "snapshot_meta"):
        parquet = str(tmp_path / "parquet" / f"{table}.parquet")
        with duckdb.connect() as con:
            n = con.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchone()
        assert n == _rows(tmp_path, f"SELECT count(*) FROM {table}")[0]


def test_a_second_run_reads_only_what_changed(ingested: Ingested, tmp_path: Path) -> None:
    store, pipeline, _ = ingested
    snapshot(store, tmp_path)
    parquet = tmp_path / "parquet" / "orders.parquet"
    before = parquet.stat().st_mtime_ns
    again = snapshot(store, tmp_path)
    assert again.mode == "incremental" and again.complete
    assert again.events_read == 0 and again.customers_read == 0 and not again.written_parquet
    assert all(c == (0, 0, 0, 0) for c in _counts(again).values())
    assert parquet.stat().st_mtime_ns == before
    # Five new clicks of known shoppers: the next run reads those five and nothing else.
    web_before = _rows(tmp_path, "SELECT count(*) FROM web_events")[0][0]
    clicks = [_click(f"new{i}", KEYS[i][0], KEYS[i][1], i) for i in range(5)]
    assert len(pipeline.process(clicks).accepted) == 5
    third = snapshot(store, tmp_path)
    assert third.events_read == 5 and third.tables["web_events"].read == 5
    assert third.tables["web_events"].inserted == 5 and third.tables["orders"].read == 0
    assert _rows(tmp_path, "SELECT count(*) FROM web_events")[0][0] == web_before + 5
    assert snapshot(store, tmp_path).events_read == 0
    # --full starts again from nothing and reads everything.
    full = snapshot(store, tmp_path, full=True)
    assert full.mode == "full" and full.events_read > 5 and full.tables["web_events"].inserted == web_before + 5


def test_a_merge_moves_the_rows_to_the_survivor(ingested: Ingested, tmp_path: Path) -> None:
    store, pipeline, rs = ingested
    snapshot(store, tmp_path)
    links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
    a, b = links["webshop|K000"], links["crm|K001"]
    rows_of_b = _rows(tmp_path, f"SELECT count(*) FROM orders WHERE customer_id = '{b}'")[0][0]
    # The same e-mail and name arrive for both records: their customers merge.
    same = {"first_name": "Fn0", "last_name": "Ln0", "email": "k0@example.com", "phone": "+14155550199"}
    pipeline.process([profile_event("m1", "webshop", "K000", 50, **same)])
    pipeline.process([profile_event("m2", "crm", "K001", 51, **same)])
    links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
    assert links["webshop|K000"] == links["crm|K001"]
    survivor = links["crm|K001"]
    merged = b if survivor == a else a
    report = snapshot(store, tmp_path)
    assert report.tables["customers"].deleted == 1
    assert _rows(tmp_path, f"SELECT count(*) FROM customers WHERE customer_id = '{merged}'") == [(0,)]
    for table in ("orders", "transactions", "web_events"):
        assert _rows(tmp_path, f"SELECT count(*) FROM {table} WHERE customer_id = '{merged}'") == [(0,)]
    mine = [o for o in rs.orders if o["customer_key"] in ("K000", "K001")]
    n = len({(o["source"], o["order_id"]) for o in mine})
    assert _rows(tmp_path, f"SELECT count(*) FROM orders WHERE customer_id = '{survivor}'") == [(n,)]
    assert n >= rows_of_b
    # The survivor's golden record came with the merge.
    assert _rows(tmp_path, f"SELECT phone FROM customers WHERE customer_id = '{survivor}'") == [("+14155550199",)]
    meta = dict(_rows(tmp_path, "SELECT key, value FROM snapshot_meta"))
    assert json.loads(meta["event_cursor"])[0] > 0 and "customer_at" in meta


def test_a_time_budget_stops_cleanly_and_the_next_run_goes_on(ingested: Ingested, tmp_path: Path) -> None:
    store, _, _ = ingested
    whole = snapshot(store, tmp_path / "whole")
    part = snapshot(store, tmp_path / "part", budget_seconds=1e-9, page_size=50)
    assert not part.complete and part.events_read == 0
    rest = snapshot(store, tmp_path / "part")
    assert rest.complete and rest.events_read == whole.events_read
    for table in ("customers", "orders", "line_items", "web_events"):
        q = f"SELECT * FROM {table} ORDER BY ALL"
        assert _rows(tmp_path / "part", q) == _rows(tmp_path / "whole", q)
    with pytest.raises(InvalidInputError):
        snapshot(store, tmp_path, budget_seconds=0)
    with pytest.raises(InvalidInputError):
        snapshot(store, tmp_path, page_size=0)


def test_a_split_moves_the_split_records_rows(ingested: Ingested, tmp_path: Path) -> None:
    from c360.resolution.config import SurvivorshipConfig
    from c360.resolution.linker import CustomerIdFactory
    from c360.resolution.undo import split

    store, pipeline, rs = ingested
    same = {"first_name": "Fn2", "last_name": "Ln2", "email": "k2@example.com", "phone": "+14155550198"}
    pipeline.process([profile_event("s1", "webshop", "K002", 52, **same)])
    pipeline.process([profile_event("s2", "crm", "K003", 53, **same)])
    survivor = {f"{s}|{k}": c for s, k, c in store.iter_links()}["crm|K003"]
    snapshot(store, tmp_path)
    event = split(
        store,
        survivor,
        ["webshop|K002"],
        by="steward",
        reason="different people",
        now=datetime.now(UTC) + timedelta(seconds=1),
        new_id=CustomerIdFactory(),
        survivorship=SurvivorshipConfig(),
    )
    report = snapshot(store, tmp_path)
    assert report.tables["customers"].inserted == 1
    web = sum(1 for w in rs.web_activity if w["customer_key"] == "K002")
    assert _rows(tmp_path, f"SELECT count(*) FROM web_events WHERE customer_id = '{event.new}'") == [(web,)]
    assert report.events_read == sum(
        1 for e in rs.events() if e.get("customer_key") == "K002" and e["type"] != "product"
    )


def test_the_command_prints_the_report_audits_it_and_fails_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from c360.cli.common import State
    from c360.cli.ml import ml_app
    from c360.deps import build_store

    state = State(data_dir=tmp_path / "data")
    store = build_store(state.settings)
    try:
        pipeline = Pipeline(store, Linker(store))
        pipeline.process(_profiles())
        pipeline.process([_click(f"c{i}", KEYS[i][0], KEYS[i][1], i) for i in range(3)])
    finally:
        store.close()
    runner = CliRunner()
    first = runner.invoke(ml_app, ["snapshot", "--json"], obj=state)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["mode"] == "full" and report["events_read"] == 3 and report["tables"]["customers"]["inserted"] == 24
    second = runner.invoke(ml_app, ["snapshot"], obj=state)
    assert second.exit_code == 0 and "incremental snapshot complete: 0 customer and 0 event" in second.stdout
    assert (tmp_path / "data" / "ml" / "parquet" / "web_events.parquet").exists()
    entries = [json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()]
    mine = [e for e in entries if e["action"] == "ml_snapshot"]
    assert [e["outcome"] for e in mine] == ["ok", "ok"] and "3 event changes" in mine[0]["detail"]
    # A snapshot folder that cannot be written: a one-line error, a non-zero exit, audited as refused.
    broken = State(data_dir=tmp_path / "broken")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ml").write_text("not a folder")
    bad = runner.invoke(ml_app, ["snapshot"], obj=broken)
    assert bad.exit_code == 1 and "error: snapshot failed" in bad.stderr
    entries = [json.loads(line) for line in (tmp_path / "broken" / "audit.log").read_text().splitlines()]
    assert [e["outcome"] for e in entries if e["action"] == "ml_snapshot"] == ["refused"]


def test_payloads_are_decoded_in_the_database_as_the_row_reader_had_them(store: GraphStore, tmp_path: Path) -> None:
    # Money rounds half to even to cents (Decimal.quantize), a line without a discount has 0, the later
    # of two events of one order in one page wins with its own line items, a missing field is NULL.
    pipeline = Pipeline(store, Linker(store))
    assert not pipeline.process(_profiles()).rejected
    source, key = KEYS[1]

    def order(eid: str, minute: int, status: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        at = f"2026-06-01T12:{minute:02d}:00Z"
        return order_event(eid, key, at, source=source, order_id="O-1", status=status, total="10.005", line_items=lines)

    events = [
        order("o2", 5, "shipped", [{"line_id": "L1", "product_id": "P-1", "quantity": 2, "unit_price": "3.335"}]),
        order("o1", 1, "placed", [{"line_id": "L9", "product_id": "P-9", "quantity": 1, "unit_price": "1"}]),
        {
            "event_id": "t1",
            "type": "transaction",
            "source": source,
            "occurred_at": "2026-06-01T12:06:00Z",
            "customer_key": key,
            "transaction_id": "T-1",
            "kind": "refund",
            "amount": "-1.015",
            "currency": "EUR",
        },
    ]
    assert not pipeline.process(events).rejected
    report = snapshot(store, tmp_path)
    assert report.tables["orders"].read == 2 and report.tables["orders"].inserted == 1
    assert _rows(tmp_path, "SELECT status, total, channel FROM orders") == [("shipped", Decimal("10.00"), "web")]
    assert _rows(tmp_path, "SELECT line_id, product_id, quantity, unit_price, discount FROM line_items") == [
        ("L1", "P-1", 2, Decimal("3.34"), Decimal("0.00"))
    ]
    assert _rows(tmp_path, "SELECT amount, order_id, payment_method FROM transactions") == [
        (Decimal("-1.02"), None, "card")
    ]


def test_a_failed_write_stops_the_run_and_the_next_run_goes_on_from_the_last_written(
    ingested: Ingested, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writes run in the snapshot's writer thread while the store is read: the error of the second write
    # surfaces from snapshot(), what the first wrote stays, and the next run ends equal to a whole run.
    from c360.ml import snapshot as module

    store, _, _ = ingested
    whole = snapshot(store, tmp_path / "whole")
    monkeypatch.setattr(module, "_FLUSH", 100)
    real, calls = module._apply_events, []

    def failing(run: Any, page: Any, cursor: Any) -> None:
        calls.append(cursor)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        real(run, page, cursor)

    monkeypatch.setattr(module, "_apply_events", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        snapshot(store, tmp_path / "part", page_size=50)
    meta = dict(_rows(tmp_path / "part", "SELECT key, value FROM snapshot_meta"))
    assert json.loads(meta["event_cursor"]) == list(calls[0])
    monkeypatch.setattr(module, "_apply_events", real)
    rest = snapshot(store, tmp_path / "part")
    assert rest.complete and 0 < rest.events_read < whole.events_read
    for table in ("customers", "orders", "line_items", "transactions", "web_events", "products"):
        q = f"SELECT * FROM {table} ORDER BY ALL"
        assert _rows(tmp_path / "part", q) == _rows(tmp_path / "whole", q)
