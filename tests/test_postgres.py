"""The PostgreSQL connector against the real server on this machine.

Each test gets its own schema (``c360_test_<hex>``), dropped afterwards. Without a reachable server the
tests are skipped, unless ``C360_REQUIRE_POSTGRES`` is set, where that is a failure. The DSN is
``C360_TEST_POSTGRES_DSN`` (default: ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from c360.connectors.postgres import Batch, FileWatermarks, PostgresSource, PostgresSourceConfig
from c360.graph.errors import InvalidInputError
from c360.streams.events import Order, Transaction, parse_event
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

DSN = os.environ.get("C360_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_INFO = conninfo_to_dict(DSN)
WHERE = f"{_INFO.get('host', 'localhost')}:{_INFO.get('port', 5432)}/{_INFO.get('dbname', '')}"  # no password
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

TABLES = """
CREATE TABLE {s}.orders (
    order_id text PRIMARY KEY, customer_id text NOT NULL, order_status text, channel text,
    currency char(3), order_total numeric(14,4), created_at timestamptz, updated_at timestamptz NOT NULL);
CREATE TABLE {s}.order_line_item (
    line_item_id text PRIMARY KEY, order_id text REFERENCES {s}.orders, product_id text, quantity int,
    unit_price numeric(14,4), discount numeric(14,4) DEFAULT 0);
CREATE TABLE {s}.transactions (
    transaction_id text PRIMARY KEY, order_id text, customer_id text NOT NULL, transaction_type text,
    amount numeric(14,4), currency char(3), payment_method text, status text,
    created_at timestamptz, updated_at timestamptz NOT NULL);
"""

pytestmark = pytest.mark.servers  # the PostgreSQL server (C360_TEST_POSTGRES_DSN)


def _require() -> bool:
    return os.environ.get("C360_REQUIRE_POSTGRES", "") not in ("", "0")


@pytest.fixture(scope="module")
def server() -> str:
    try:
        with psycopg.connect(DSN, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        if _require():
            pytest.fail(f"PostgreSQL at {WHERE} cannot be reached but C360_REQUIRE_POSTGRES is set: {exc}")
        pytest.skip(f"PostgreSQL at {WHERE} cannot be reached (set C360_REQUIRE_POSTGRES=1 to fail instead): {exc}")
    return DSN


@pytest.fixture
def db(server: str) -> Iterator[Db]:
    schema = f"c360_test_{uuid.uuid4().hex}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(TABLES.format(s=schema))
            yield Db(conn, schema)
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


class Db:
    """Writes rows into the test schema."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self.conn = conn
        self.schema = schema

    def order(self, order_id: str, updated_at: datetime, **cols: Any) -> None:
        row: dict[str, Any] = {
            "order_id": order_id,
            "customer_id": "c-1",
            "order_status": "paid",
            "channel": "web",
            "currency": "EUR",
            "order_total": Decimal("10.0000"),
            "created_at": updated_at,
            "updated_at": updated_at,
        } | cols
        self._insert("orders", row)

    def line(self, line_id: str, order_id: str, **cols: Any) -> None:
        row = {
            "line_item_id": line_id,
            "order_id": order_id,
            "product_id": "p-1",
            "quantity": 1,
            "unit_price": Decimal("10.0000"),
        } | cols
        self._insert("order_line_item", row)

    def order_with_line(self, order_id: str, updated_at: datetime, **cols: Any) -> None:
        self.order(order_id, updated_at, **cols)
        self.line(f"{order_id}-l1", order_id)

    def transaction(self, tx_id: str, updated_at: datetime, **cols: Any) -> None:
        row: dict[str, Any] = {
            "transaction_id": tx_id,
            "order_id": None,
            "customer_id": "c-1",
            "transaction_type": "payment",
            "amount": Decimal("10.0000"),
            "currency": "EUR",
            "payment_method": "card",
            "status": "settled",
            "created_at": updated_at,
            "updated_at": updated_at,
        } | cols
        self._insert("transactions", row)

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        self.conn.execute(f"INSERT INTO {self.schema}.{table} ({cols}) VALUES ({marks})", list(row.values()))

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self.conn.execute(statement.format(s=self.schema), params)


def _source(db: Db, state: Path, batch_size: int = 1000) -> PostgresSource:
    config = PostgresSourceConfig(dsn=DSN, source="shop", schema_name=db.schema, batch_size=batch_size)
    return PostgresSource(config, FileWatermarks(state))


def _valid(payload: dict[str, Any]) -> Order | Transaction:
    event = parse_event(payload)
    assert isinstance(event, Order | Transaction)
    return event


def _ids(batches: list[Batch]) -> list[str]:
    return [p["event_id"] for b in batches for p in b.payloads]


def _read_all(source: PostgresSource, *, commit: bool = True) -> list[Batch]:
    batches = []
    for batch in source.read():
        batches.append(batch)
        if commit:
            batch.commit()
    return batches


def test_first_read_maps_orders_with_line_items_and_transactions(db: Db, tmp_path: Path) -> None:
    db.order(
        "o-1",
        T0,
        customer_id="cust-42",
        order_status="Canceled",
        channel="online",
        currency="eur",
        order_total=Decimal("59.9000"),
    )
    db.line("li-2", "o-1", product_id="p-9", quantity=1, unit_price=Decimal("9.9000"))
    db.line("li-1", "o-1", product_id="p-7", quantity=2, unit_price=Decimal("25.0000"), discount=Decimal("0.5000"))
    db.transaction(
        "t-1",
        T0 + timedelta(minutes=5),
        order_id="o-1",
        customer_id="cust-42",
        transaction_type="SALE",
        amount=Decimal("59.9000"),
        payment_method="PayPal",
        status="captured",
    )

    batches = _read_all(_source(db, tmp_path / "wm.json"))

    assert [b.table for b in batches] == ["orders", "transactions"]
    order, tx = batches[0].payloads[0], batches[1].payloads[0]
    assert order == {
        "event_id": "order:o-1:2024-05-01T12:00:00.000000+00:00",
        "type": "order",
        "source": "shop",
        "occurred_at": "2024-05-01T12:00:00.000000+00:00",
        "schema_version": 1,
        "order_id": "o-1",
        "customer_key": "cust-42",
        "status": "cancelled",
        "channel": "web",
        "currency": "EUR",
        "total": "59.9000",
        "line_items": [
            {"line_id": "li-1", "product_id": "p-7", "quantity": 2, "unit_price": "25.0000", "discount": "0.5000"},
            {"line_id": "li-2", "product_id": "p-9", "quantity": 1, "unit_price": "9.9000", "discount": "0.0000"},
        ],
    }
    assert tx == {
        "event_id": "transaction:t-1:2024-05-01T12:05:00.000000+00:00",
        "type": "transaction",
        "source": "shop",
        "occurred_at": "2024-05-01T12:05:00.000000+00:00",
        "schema_version": 1,
        "transaction_id": "t-1",
        "customer_key": "cust-42",
        "order_id": "o-1",
        "kind": "payment",
        "amount": "59.9000",
        "currency": "EUR",
        "payment_method": "wallet",
        "status": "settled",
    }
    json.dumps([order, tx])  # plain JSON

    event = _valid(order)
    assert isinstance(event, Order)
    assert event.total == Decimal("59.9") and len(event.line_items) == 2
    assert event.occurred_at == T0 and event.identity == "shop|cust-42"
    assert isinstance(_valid(tx), Transaction)


def test_batches_respect_batch_size_and_watermark_order(db: Db, tmp_path: Path) -> None:
    # inserted out of order; read by updated_at
    for n in (3, 0, 4, 1, 2):
        db.order_with_line(f"o-{n}", T0 + timedelta(seconds=n))
    for n in (2, 0, 1):
        db.transaction(f"t-{n}", T0 + timedelta(seconds=n))

    batches = _read_all(_source(db, tmp_path / "wm.json", batch_size=2))

    assert [(b.table, len(b.payloads)) for b in batches] == [
        ("orders", 2),
        ("orders", 2),
        ("orders", 1),
        ("transactions", 2),
        ("transactions", 1),
    ]
    orders = [p["order_id"] for b in batches if b.table == "orders" for p in b.payloads]
    assert orders == ["o-0", "o-1", "o-2", "o-3", "o-4"]
    txs = [p["transaction_id"] for b in batches if b.table == "transactions" for p in b.payloads]
    assert txs == ["t-0", "t-1", "t-2"]
    for batch in batches:
        for payload in batch.payloads:
            _valid(payload)
    assert batches[1].start == batches[0].end
    assert batches[0].end == ("2024-05-01T12:00:01.000000+00:00", "o-1")


def test_resume_after_commit_reads_only_newer_rows(db: Db, tmp_path: Path) -> None:
    state = tmp_path / "state" / "wm.json"
    db.order_with_line("o-1", T0)
    db.transaction("t-1", T0)
    first = _read_all(_source(db, state))
    assert len(_ids(first)) == 2
    assert json.loads(state.read_text()) == {
        f"postgres:shop:{db.schema}.orders": ["2024-05-01T12:00:00.000000+00:00", "o-1"],
        f"postgres:shop:{db.schema}.transactions": ["2024-05-01T12:00:00.000000+00:00", "t-1"],
    }

    assert _read_all(_source(db, state)) == []  # nothing new

    db.order_with_line("o-2", T0 + timedelta(hours=1))
    db.transaction("t-2", T0 + timedelta(hours=1))
    again = _read_all(_source(db, state))
    assert [p.get("order_id") or p["transaction_id"] for b in again for p in b.payloads] == ["o-2", "t-2"]


def test_crash_before_commit_rereads_the_same_batch(db: Db, tmp_path: Path) -> None:
    state = tmp_path / "wm.json"
    for n in range(5):
        db.order_with_line(f"o-{n}", T0 + timedelta(seconds=n))
    source = _source(db, state, batch_size=2)

    reader = source.read()
    first = next(reader)
    first.commit()
    second = next(reader)  # applied partly, then the consumer dies: no commit
    reader.close()

    rerun = _read_all(_source(db, state, batch_size=2))
    assert [p["event_id"] for p in rerun[0].payloads] == [p["event_id"] for p in second.payloads]
    assert rerun[0].payloads == second.payloads
    assert _ids(rerun) == [*_ids([second]), "order:o-4:2024-05-01T12:00:04.000000+00:00"]


def test_uncommitted_batches_still_advance_within_one_read(db: Db, tmp_path: Path) -> None:
    for n in range(5):
        db.order_with_line(f"o-{n}", T0 + timedelta(seconds=n))
    state = tmp_path / "wm.json"
    batches = _read_all(_source(db, state, batch_size=2), commit=False)
    assert len(_ids(batches)) == 5
    assert not state.exists()

    # a later batch's commit covers the earlier ones; committing an older one never moves back
    batches[1].commit()
    batches[0].commit()
    assert FileWatermarks(state).get(f"postgres:shop:{db.schema}.orders") == batches[1].end
    assert _ids(_read_all(_source(db, state))) == _ids(batches[2:])


def test_updated_row_comes_again_with_a_new_event_id(db: Db, tmp_path: Path) -> None:
    state = tmp_path / "wm.json"
    db.order_with_line("o-1", T0, order_status="placed")
    db.order_with_line("o-2", T0)
    (before,) = _ids(_read_all(_source(db, state)))[:1]

    db.execute(
        "UPDATE {s}.orders SET order_status = 'shipped', updated_at = %s WHERE order_id = 'o-1'",
        (T0 + timedelta(days=1),),
    )
    (batch,) = _read_all(_source(db, state))
    (payload,) = batch.payloads
    assert payload["order_id"] == "o-1" and payload["status"] == "shipped"
    assert payload["event_id"] == "order:o-1:2024-05-02T12:00:00.000000+00:00" != before
    assert _valid(payload).occurred_at == T0 + timedelta(days=1)


def test_equal_updated_at_across_batch_boundaries_is_neither_lost_nor_duplicated(db: Db, tmp_path: Path) -> None:
    state = tmp_path / "wm.json"
    # seven rows share one updated_at; keys in code point order: "O-9" < "o-10" < "o-2" < ...
    keys = ["o-2", "o-10", "O-9", "o-3", "o-a", "o-b", "o-c"]
    for key in keys:
        db.order_with_line(key, T0)
    db.order_with_line("o-late", T0 + timedelta(seconds=1))

    reader = _source(db, state, batch_size=3).read()
    first = next(reader)
    first.commit()
    reader.close()  # stop after one batch; the next run resumes in the middle of the tie
    rest = _read_all(_source(db, state, batch_size=3))

    read = [p["order_id"] for b in [first, *rest] for p in b.payloads]
    assert read == [*sorted(keys), "o-late"]
    assert [len(b.payloads) for b in [first, *rest]] == [3, 3, 2]
    assert first.end == ("2024-05-01T12:00:00.000000+00:00", "o-2")


def test_unmappable_rows_become_payloads_that_validation_rejects(db: Db, tmp_path: Path) -> None:
    db.order_with_line("o-hold", T0, order_status="On Hold")
    db.order("o-empty", T0 + timedelta(seconds=1))  # no line items
    db.order_with_line("o-ok", T0 + timedelta(seconds=2), order_status=None, channel=None)
    db.transaction("t-null", T0, amount=None, payment_method="klarna")
    db.transaction("t-kind", T0 + timedelta(seconds=1), transaction_type="gift")

    batches = _read_all(_source(db, tmp_path / "wm.json"))
    payloads = {
        p.get("order_id") if p["type"] == "order" else p["transaction_id"]: p for b in batches for p in b.payloads
    }
    assert set(payloads) == {"o-hold", "o-empty", "o-ok", "t-null", "t-kind"}

    def reason(key: str) -> list[tuple[Any, ...]]:
        with pytest.raises(ValidationError) as exc:
            parse_event(payloads[key])
        return [err["loc"] for err in exc.value.errors()]

    assert payloads["o-hold"]["status"] == "On Hold"  # the raw value, for the dead letter
    assert reason("o-hold") == [("order", "status")]
    assert payloads["o-empty"]["line_items"] == []
    assert reason("o-empty") == [("order", "line_items")]
    assert payloads["t-null"]["amount"] is None
    assert payloads["t-null"]["payment_method"] == "other"
    assert reason("t-null") == [("transaction", "amount")]
    assert payloads["t-kind"]["kind"] == "gift"
    assert reason("t-kind") == [("transaction", "kind")]
    # NULL status and channel take the schema's defaults
    ok = _valid(payloads["o-ok"])
    assert isinstance(ok, Order) and (ok.status, ok.channel) == ("placed", "web")
    # the bad rows do not stall the reader: the watermark moved past them
    assert _read_all(_source(db, tmp_path / "wm.json")) == []


def test_timestamp_without_time_zone_is_read_as_utc(db: Db, tmp_path: Path) -> None:
    db.execute(
        "ALTER TABLE {s}.transactions ALTER COLUMN updated_at TYPE timestamp USING updated_at AT TIME ZONE 'UTC'"
    )
    db.transaction("t-1", T0)
    db.transaction("t-2", T0 + timedelta(seconds=1))
    state = tmp_path / "wm.json"
    reader = _source(db, state, batch_size=1).read()
    first = next(reader)
    first.commit()
    reader.close()
    assert first.payloads[0]["occurred_at"] == "2024-05-01T12:00:00.000000+00:00"
    (rest,) = _read_all(_source(db, state, batch_size=1))
    assert [p["transaction_id"] for p in rest.payloads] == ["t-2"]


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("postgresql://postgres:s3cret@127.0.0.1:1/test", "127.0.0.1:1/test"),
        ("host=127.0.0.1 port=5432 dbname=c360_no_such_database user=postgres", "c360_no_such_database"),
        ("not a dsn", "the configured DSN"),
    ],
)
def test_bad_dsn_gives_a_clear_error(tmp_path: Path, dsn: str, needle: str) -> None:
    source = PostgresSource(PostgresSourceConfig(dsn=dsn, source="shop"), FileWatermarks(tmp_path / "wm.json"))
    with pytest.raises(InvalidInputError, match="cannot connect to the PostgreSQL source") as exc:
        next(source.read())
    assert needle in str(exc.value)
    assert "s3cret" not in str(exc.value)


def test_missing_table_gives_a_clear_error(db: Db, tmp_path: Path) -> None:
    config = PostgresSourceConfig(dsn=DSN, source="shop", schema_name=db.schema, orders_table="nope")
    with pytest.raises(InvalidInputError, match=rf"cannot read {db.schema}\.nope"):
        next(PostgresSource(config, FileWatermarks(tmp_path / "wm.json")).read())


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        PostgresSourceConfig(dsn=DSN, source="shop", batch_sise=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PostgresSourceConfig(dsn=DSN, source="Shop|x")
    with pytest.raises(ValidationError):
        PostgresSourceConfig(dsn=DSN, source="shop", batch_size=0)


def test_file_watermarks_round_trip_and_reject_garbage(tmp_path: Path) -> None:
    path = tmp_path / "a" / "wm.json"
    marks = FileWatermarks(path)
    assert marks.get("x") is None
    marks.set("x", ("2024-05-01T12:00:00+00:00", "k1"))
    marks.set("y", ("2024-05-02T12:00:00+00:00", "k2"))
    assert FileWatermarks(path).get("x") == ("2024-05-01T12:00:00+00:00", "k1")
    assert sorted(p.name for p in path.parent.iterdir()) == ["wm.json"]  # no temporary file left

    path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="cannot read the watermark file"):
        marks.get("x")
    path.write_text('{"x": "oops"}')
    with pytest.raises(InvalidInputError, match="not a watermark file"):
        marks.get("x")


def test_cli_pull_lands_orders_on_the_customer_timeline_and_resumes(db: Db, tmp_path: Path) -> None:
    from test_cli import c360
    from test_pipeline import profile

    people = tmp_path / "people.jsonl"
    people.write_text(
        json.dumps({**profile("p1", "c-1", 0, first_name="Ann", email="ann@example.com"), "source": "shop"})
    )
    c360("events", "send", str(people), cwd=tmp_path)
    db.order_with_line("o-1", T0)
    db.transaction("t-1", T0 + timedelta(minutes=1), order_id="o-1")
    db.order("o-bad", T0 + timedelta(minutes=2), order_status="lost in space")
    db.line("o-bad-l1", "o-bad")
    args = ("pull", "postgres", "--dsn", DSN, "--source", "shop", "--schema", db.schema, "--batch-size", "1")
    first = c360(*args, cwd=tmp_path)
    assert "3 rows: 2 applied, 0 seen before, 1 rejected" in first.stdout
    assert "rejected orders event order:o-bad" in first.stderr and "status" in first.stderr
    # A second run starts after the watermarks: nothing is read again.
    assert "0 rows" in c360(*args, cwd=tmp_path).stdout
    db.order_with_line("o-2", T0 + timedelta(minutes=3))
    assert "1 rows: 1 applied" in c360(*args, cwd=tmp_path).stdout
    found = json.loads(c360("customer", "find", "--email", "ann@example.com", cwd=tmp_path).stdout)
    cid = found[0]["id"] if isinstance(found, list) else found["id"]
    page = json.loads(c360("customer", "timeline", cid, cwd=tmp_path).stdout)
    assert [e["type"] for e in page["events"]] == ["order", "transaction", "order"]
    bad = c360("pull", "postgres", "--dsn", DSN, "--source", "Bad Name", cwd=tmp_path, ok=False)
    assert bad.returncode == 1 and "--source" in bad.stderr
