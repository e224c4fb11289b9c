"""RFM scores and segments over a DuckDB snapshot (issue 17, point 3)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from c360.graph.errors import InvalidInputError
from c360.ml.rfm import _SEGMENT_CASE, NO_ORDERS, RFM_SEGMENTS, compute_rfm

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)

SCHEMA = """
CREATE TABLE customers(customer_id VARCHAR PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, email VARCHAR,
  phone VARCHAR, gender VARCHAR, date_of_birth DATE, city VARCHAR, state VARCHAR, country VARCHAR,
  postcode VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ);
CREATE TABLE orders(order_id VARCHAR, source VARCHAR, customer_id VARCHAR, occurred_at TIMESTAMPTZ,
  status VARCHAR, channel VARCHAR, currency VARCHAR, total DECIMAL(18,2), PRIMARY KEY (source, order_id));
CREATE TABLE line_items(source VARCHAR, order_id VARCHAR, line_id VARCHAR, product_id VARCHAR,
  quantity INTEGER, unit_price DECIMAL(18,2), discount DECIMAL(18,2));
CREATE TABLE transactions(transaction_id VARCHAR, source VARCHAR, customer_id VARCHAR, order_id VARCHAR,
  occurred_at TIMESTAMPTZ, kind VARCHAR, amount DECIMAL(18,2), currency VARCHAR, payment_method VARCHAR,
  status VARCHAR);
CREATE TABLE web_events(event_id VARCHAR PRIMARY KEY, customer_id VARCHAR, occurred_at TIMESTAMPTZ,
  action VARCHAR, session_id VARCHAR, product_id VARCHAR, order_id VARCHAR, channel VARCHAR,
  traffic_source VARCHAR);
CREATE TABLE products(product_id VARCHAR PRIMARY KEY, name VARCHAR, brand_id VARCHAR, category VARCHAR,
  price DECIMAL(18,2));
CREATE TABLE snapshot_meta(key VARCHAR PRIMARY KEY, value VARCHAR);
"""


def snapshot(path: object = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB database with the snapshot's schema and no rows."""
    con = duckdb.connect(str(path))
    con.execute(SCHEMA)
    return con


def add_customer(con: duckdb.DuckDBPyConnection, cid: str, **fields: object) -> None:
    columns = ["customer_id", *fields]
    con.execute(
        f"INSERT INTO customers ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [cid, *fields.values()],
    )


def add_order(
    con: duckdb.DuckDBPyConnection,
    cid: str,
    order_id: str,
    at: datetime,
    total: str,
    status: str = "placed",
    source: str = "shop",
) -> None:
    con.execute(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, 'web', 'USD', ?)",
        [order_id, source, cid, at, status, Decimal(total)],
    )


def rows(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[object, ...]]:
    return {r[0]: r[1:] for r in con.execute("SELECT * FROM rfm ORDER BY customer_id").fetchall()}


def test_scores_values_and_the_customer_without_orders() -> None:
    con = snapshot()
    for i in range(1, 6):  # c1 bought longest ago, least often, least; c5 most recently, most often, most
        add_customer(con, f"c{i}")
        for k in range(i):
            add_order(con, f"c{i}", f"o{i}-{k}", AS_OF - timedelta(days=60 - 10 * i, hours=k), f"{10 * i}.50")
    add_customer(con, "c0")
    # not counted: cancelled, returned, after as_of, of a customer not in the snapshot
    add_order(con, "c0", "x1", AS_OF - timedelta(days=1), "999", status="cancelled")
    add_order(con, "c0", "x2", AS_OF - timedelta(days=1), "999", status="returned")
    add_order(con, "c0", "x3", AS_OF + timedelta(seconds=1), "999")
    add_order(con, "gone", "x4", AS_OF - timedelta(days=1), "999")

    assert compute_rfm(con, as_of=AS_OF) == 6
    result = rows(con)
    assert set(result) == {"c0", "c1", "c2", "c3", "c4", "c5"}
    assert result["c0"] == (None, 0, Decimal("0.00"), None, None, None, NO_ORDERS)
    assert result["c1"][:3] == (50, 1, Decimal("10.50"))
    assert result["c5"][:3] == (10, 5, Decimal("252.50"))
    assert [result[f"c{i}"][3:6] for i in range(1, 6)] == [(i, i, i) for i in range(1, 6)]
    assert result["c5"][6] == "champions"
    assert result["c1"][6] == "lost"


def test_recency_counts_whole_days_elapsed() -> None:
    con = snapshot()
    add_customer(con, "a")
    add_order(con, "a", "o", AS_OF - timedelta(days=3, seconds=1), "1")
    add_customer(con, "b")
    add_order(con, "b", "o2", AS_OF - timedelta(hours=23), "1")
    compute_rfm(con, as_of=AS_OF)
    assert rows(con)["a"][0] == 3
    assert rows(con)["b"][0] == 0


def test_ties_get_equal_scores_and_the_result_is_deterministic() -> None:
    con = snapshot()
    at = AS_OF - timedelta(days=5)
    for i in range(10):
        add_customer(con, f"t{i}")
        add_order(con, f"t{i}", f"o{i}", at, "20")  # all equal
    add_customer(con, "top")
    add_order(con, "top", "a", AS_OF - timedelta(days=1), "30")
    add_order(con, "top", "b", AS_OF - timedelta(days=2), "30")
    compute_rfm(con, as_of=AS_OF)
    first = rows(con)
    assert {first[f"t{i}"][3:6] for i in range(10)} == {(1, 1, 1)}
    assert first["top"][3:6] == (5, 5, 5)

    other = snapshot()  # the same data inserted in another order gives the same table
    add_customer(other, "top")
    for i in reversed(range(10)):
        add_customer(other, f"t{i}")
        add_order(other, f"t{i}", f"o{i}", at, "20")
    add_order(other, "top", "b", AS_OF - timedelta(days=2), "30")
    add_order(other, "top", "a", AS_OF - timedelta(days=1), "30")
    compute_rfm(other, as_of=AS_OF)
    assert rows(other) == first
    compute_rfm(con, as_of=AS_OF)
    assert rows(con) == first


def test_quintiles_split_distinct_values_evenly() -> None:
    con = snapshot()
    for i in range(100):
        add_customer(con, f"c{i:03}")
        add_order(con, f"c{i:03}", f"o{i}", AS_OF - timedelta(days=i), str(i + 1))
    compute_rfm(con, as_of=AS_OF)
    counts = con.execute("SELECT m, count(*) FROM rfm GROUP BY m ORDER BY m").fetchall()
    assert counts == [(score, 20) for score in range(1, 6)]
    r_of_newest = con.execute("SELECT r FROM rfm WHERE customer_id = 'c000'").fetchone()
    assert r_of_newest == (5,)


def test_the_segment_grid_covers_every_score_triple_and_reaches_every_name() -> None:
    con = duckdb.connect()
    triples = list(itertools.product(range(1, 6), repeat=3))
    con.execute("CREATE TABLE s(r INTEGER, f INTEGER, m INTEGER)")
    con.executemany("INSERT INTO s VALUES (?, ?, ?)", triples)
    named = dict(
        ((r, f, m), name)
        for r, f, m, name in con.execute(
            f"SELECT r, f, m, {_SEGMENT_CASE} FROM (SELECT *, f + m AS fm2 FROM s)"
        ).fetchall()
    )
    assert set(named.values()) == set(RFM_SEGMENTS) - {NO_ORDERS}
    assert named[(5, 5, 5)] == "champions"
    assert named[(1, 5, 5)] == "cannot lose"
    assert named[(3, 3, 3)] == "loyal"
    assert named[(5, 1, 1)] == "new"
    assert named[(3, 1, 1)] == "promising"
    assert named[(4, 2, 2)] == "potential loyalists"
    assert named[(2, 2, 2)] == "need attention"
    assert named[(2, 1, 1)] == "about to sleep"
    assert named[(1, 3, 2)] == "at risk"
    assert named[(1, 1, 1)] == "lost"
    assert named[(1, 2, 1)] == "hibernating"


def test_bad_arguments() -> None:
    con = snapshot()
    with pytest.raises(InvalidInputError, match="time zone"):
        compute_rfm(con, as_of=datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError, match="lacks a table"):
        compute_rfm(duckdb.connect(), as_of=AS_OF)


def test_the_connection_is_free_afterwards() -> None:
    con = snapshot()
    add_customer(con, "a")
    compute_rfm(con, as_of=AS_OF)
    con.register("free", pa.table({"x": [1]}))  # DuckDB refuses this with a result left unread
    assert con.execute("SELECT x FROM free").fetchall() == [(1,)]
