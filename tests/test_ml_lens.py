"""The lens: YAML model, query compilation to DuckDB with bound values, answers on snapshots the tests build."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.ml.lens import LensModel, load_model, parse_model, run_query, with_labels
from typer.testing import CliRunner

from c360.cli.common import State
from c360.cli.lens import lens_app, parse_filter

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)
SEGMENTS = ("High Spending Customers", "Expecting Parents", "Frequent Cart Abandoner", "Frequent Buyers")
#: segment_members holds segment ids (ml/segments.yaml); the lens labels them with their names.
SEGMENT_IDS = {name: name.lower().replace(" ", "_") for name in SEGMENTS}

SCHEMA = """
CREATE TABLE customers(customer_id VARCHAR PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, email VARCHAR,
  phone VARCHAR, gender VARCHAR, date_of_birth DATE, city VARCHAR, state VARCHAR, country VARCHAR, postcode VARCHAR,
  created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ);
CREATE TABLE orders(order_id VARCHAR, source VARCHAR, customer_id VARCHAR, occurred_at TIMESTAMPTZ, status VARCHAR,
  channel VARCHAR, currency VARCHAR, total DECIMAL(18,2), PRIMARY KEY (source, order_id));
CREATE TABLE line_items(source VARCHAR, order_id VARCHAR, line_id VARCHAR, product_id VARCHAR, quantity INTEGER,
  unit_price DECIMAL(18,2), discount DECIMAL(18,2));
CREATE TABLE transactions(transaction_id VARCHAR, source VARCHAR, customer_id VARCHAR, order_id VARCHAR,
  occurred_at TIMESTAMPTZ, kind VARCHAR, amount DECIMAL(18,2), currency VARCHAR, payment_method VARCHAR,
  status VARCHAR);
CREATE TABLE web_events(event_id VARCHAR PRIMARY KEY, customer_id VARCHAR, occurred_at TIMESTAMPTZ, action VARCHAR,
  session_id VARCHAR, product_id VARCHAR, order_id VARCHAR, channel VARCHAR, traffic_source VARCHAR);
CREATE TABLE products(product_id VARCHAR PRIMARY KEY, name VARCHAR, brand_id VARCHAR, category VARCHAR,
  price DECIMAL(18,2));
CREATE TABLE snapshot_meta(key VARCHAR PRIMARY KEY, value VARCHAR);
"""

# id, state, date of birth
CUSTOMERS = [
    ("c1", "CA", date(1990, 3, 1)),
    ("c2", "CA", date(1960, 7, 1)),
    ("c3", "CA", date(2001, 1, 15)),
    ("c4", "NY", date(1985, 5, 5)),
    ("c5", "TX", None),
    ("c6", "CA", date(1999, 12, 31)),  # in no segment
]
MEMBERS = [
    ("High Spending Customers", "c1"),
    ("High Spending Customers", "c2"),
    ("High Spending Customers", "c4"),
    ("Expecting Parents", "c1"),
    ("Expecting Parents", "c5"),
    ("Frequent Cart Abandoner", "c3"),
    ("Frequent Cart Abandoner", "c4"),
    ("Frequent Buyers", "c1"),
    ("Frequent Buyers", "c2"),
    ("Frequent Buyers", "c3"),
]
# order id, customer, time, channel, total
ORDERS = [
    ("o1", "c1", "2026-06-01 10:00:00+00", "web", "100.00"),
    ("o2", "c1", "2026-06-20 10:00:00+00", "app", "50.50"),
    ("o3", "c2", "2026-01-10 10:00:00+00", "web", "20.00"),
    ("o4", "c4", "2026-06-29 23:30:00+00", "store", "5.00"),
]
# event id, customer, time, action, session
EVENTS = [
    ("e1", "c1", "2026-06-01 09:00:00+00", "product_view", "s1"),
    ("e2", "c1", "2026-06-01 09:10:00+00", "add_to_cart", "s1"),
    ("e3", "c1", "2026-06-01 09:40:00+00", "order_placed", "s1"),
    ("e4", "c3", "2026-06-05 12:00:00+00", "add_to_cart", "s2"),
    ("e5", "c3", "2026-06-05 12:20:00+00", "add_to_cart", "s2"),
    ("e6", "c3", "2026-06-07 08:00:00+00", "product_view", "s3"),
    ("e7", "c4", "2026-06-08 08:00:00+00", "add_to_favourites", "s4"),
    ("e8", "c4", "2026-06-08 08:06:00+00", "product_view", "s4"),
]


def build_snapshot(path: Path, *, segments: bool = True, data: bool = True) -> Path:
    """A snapshot file with the fixed schema (and segment_members when ``segments``)."""
    con = duckdb.connect(str(path))
    con.execute(SCHEMA)
    if segments:
        con.execute("CREATE TABLE segment_members(segment VARCHAR, customer_id VARCHAR, entered_at TIMESTAMPTZ)")
    if data:
        con.executemany(
            "INSERT INTO customers(customer_id, first_name, state, date_of_birth, created_at) VALUES (?, ?, ?, ?, ?)",
            [(cid, f"name-{cid}", state, dob, "2025-01-01 00:00:00+00") for cid, state, dob in CUSTOMERS],
        )
        con.executemany(
            "INSERT INTO orders VALUES (?, 'shop', ?, ?, 'placed', ?, 'EUR', ?)",
            [(oid, cid, at, channel, Decimal(total)) for oid, cid, at, channel, total in ORDERS],
        )
        con.executemany(
            "INSERT INTO line_items VALUES ('shop', ?, ?, ?, ?, 10, 0)",
            [("o1", "1", "p1", 2), ("o1", "2", "p2", 1), ("o2", "1", "p1", 5), ("o4", "1", "p3", 1)],
        )
        con.execute(
            "INSERT INTO transactions VALUES ('t1', 'shop', 'c1', 'o1', '2026-06-01 10:05:00+00', 'payment', 100,"
            " 'EUR', 'card', 'settled')"
        )
        con.executemany(
            "INSERT INTO web_events VALUES (?, ?, ?, ?, ?, 'p1', NULL, 'web', 'direct')",
            [list(event) for event in EVENTS],
        )
        if segments:
            con.executemany(
                "INSERT INTO segment_members VALUES (?, ?, '2026-06-01 00:00:00+00')",
                [(SEGMENT_IDS[name], cid) for name, cid in MEMBERS],
            )
    con.close()
    return path


@pytest.fixture(scope="module")
def model() -> LensModel:
    return load_model()


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path = build_snapshot(tmp_path_factory.mktemp("lens") / "snapshot.duckdb")
    connection = duckdb.connect(str(path), read_only=True)
    yield connection
    connection.close()


def ask(con: duckdb.DuckDBPyConnection, model: LensModel, **query: Any) -> list[dict[str, Any]]:
    return run_query(con, model, {"as_of": AS_OF.isoformat(), **query}).records()


def test_the_bundled_model_has_the_requirements_entities(model: LensModel) -> None:
    wanted = {"customer", "product_view", "favourite", "cart", "order_placed", "order", "line_item", "transaction"}
    assert wanted | {"segment"} <= set(model.entities)
    for name in model.entities:
        assert model.path_to_hub(name) is not None, name
    assert model.path_to_hub("line_item") is not None and len(model.path_to_hub("line_item") or []) == 2


def test_the_requirements_example_counts_customers_by_segment_in_california(con: Any, model: LensModel) -> None:
    result = run_query(
        con,
        model,
        {
            "measures": ["customer.count"],
            "dimensions": ["segment.name"],
            "filters": [{"member": "customer.state", "op": "equals", "values": ["CA"]}],
        },
    )
    counts = {row["segment.name"]: row["customer.count"] for row in result.records()}
    # CA customers: c1, c2, c3, c6 (c6 in no segment); c4 (NY) and c5 (TX) are left out.
    assert counts == {
        "High Spending Customers": 2,
        "Expecting Parents": 1,
        "Frequent Cart Abandoner": 1,
        "Frequent Buyers": 3,
    }
    assert set(counts) == set(SEGMENTS)
    assert result.columns == ("segment.name", "customer.count")
    assert "'CA'" not in result.sql and "CA" in result.params.values()


def test_without_the_state_filter_every_state_counts(con: Any, model: LensModel) -> None:
    rows = ask(con, model, measures=["customer.count"], dimensions=["name"], order=["customer.count desc", "name"])
    assert [(r["segment.name"], r["customer.count"]) for r in rows] == [
        ("Frequent Buyers", 3),
        ("High Spending Customers", 3),
        ("Expecting Parents", 2),
        ("Frequent Cart Abandoner", 2),
    ]


def test_segment_ids_keep_their_labels_in_filters_and_unlabelled_ids_show_as_they_are(
    tmp_path: Path, model: LensModel
) -> None:
    path = build_snapshot(tmp_path / "more.duckdb")
    with duckdb.connect(str(path)) as writable:
        writable.execute("INSERT INTO segment_members VALUES ('vip_2026', 'c6', '2026-06-01 00:00:00+00')")
        rows = ask(writable, model, measures=["customer.count"], dimensions=["segment.id", "segment.name"])
        assert {(r["segment.id"], r["segment.name"]) for r in rows} == {
            *((i, n) for n, i in SEGMENT_IDS.items()),
            ("vip_2026", "vip_2026"),
        }
        by_name = {"member": "segment.name", "op": "in", "values": ["Frequent Buyers", "vip_2026"]}
        [row] = ask(writable, model, measures=["customer.count"], filters=[by_name])
        assert row == {"customer.count": 4}  # c1, c2, c3 and c6
        relabelled = with_labels(model, "segment.name", {"vip_2026": "VIPs of 2026"})
        names = {r["segment.name"] for r in ask(writable, relabelled, dimensions=["segment.name"])}
        assert names == {*SEGMENTS, "VIPs of 2026"}
    with pytest.raises(InvalidInputError, match="not a text column dimension"):
        with_labels(model, "customer.age_band", {"x": "y"})


def test_rfm_measures_per_customer(con: Any, model: LensModel) -> None:
    rows = ask(con, model, measures=["recency_days", "frequency", "monetary"], dimensions=["customer.customer_id"])
    by_id = {r["customer.customer_id"]: r for r in rows}
    assert set(by_id) == {"c1", "c2", "c4"}
    assert by_id["c1"]["order.frequency"] == 2 and by_id["c1"]["order.monetary"] == 150.5
    assert by_id["c1"]["order.recency_days"] == 10  # 2026-06-20 -> 2026-06-30
    assert by_id["c2"]["order.recency_days"] == 171
    assert by_id["c4"]["order.recency_days"] == 1  # UTC days: 23:30 on the 29th is the day before


def test_days_since_last_order_and_age_band_as_dimensions(con: Any, model: LensModel) -> None:
    rows = ask(
        con,
        model,
        dimensions=["customer.customer_id", "days_since_last_order", "age_band"],
        filters=[{"member": "days_since_last_order", "op": "gt", "values": ["5"]}],
    )
    assert [(r["customer.customer_id"], r["customer.days_since_last_order"], r["customer.age_band"]) for r in rows] == [
        ("c1", 10, "35-44"),
        ("c2", 171, "65+"),
    ]
    bands = ask(con, model, measures=["customer.count"], dimensions=["age_band"])
    # At 2026-06-30: c1 36, c2 65 (the birthday is on 1 July), c3 25, c4 41, c5 unknown, c6 26.
    assert {r["customer.age_band"]: r["customer.count"] for r in bands} == {"35-44": 2, "65+": 1, "25-34": 2, None: 1}


def test_session_engagement_minutes(con: Any, model: LensModel) -> None:
    # Sessions: s1 40 min, s2 20 min, s3 0 min (one event), s4 6 min.
    [row] = ask(con, model, measures=["session_engagement_minutes", "total_engagement_minutes", "session.count"])
    assert row == {
        "session.session_engagement_minutes": pytest.approx(16.5),
        "session.total_engagement_minutes": pytest.approx(66.0),
        "session.count": 4,
    }
    per = ask(con, model, measures=["session_engagement_minutes"], dimensions=["customer.customer_id"])
    assert {r["customer.customer_id"]: r["session.session_engagement_minutes"] for r in per} == {
        "c1": pytest.approx(40.0),
        "c3": pytest.approx(10.0),
        "c4": pytest.approx(6.0),
    }


def test_event_entities_read_their_action_only(con: Any, model: LensModel) -> None:
    [row] = ask(con, model, measures=["cart.count", "cart.customers", "product_view.count", "favourite.count"])
    assert row == {"cart.count": 3, "cart.customers": 2, "product_view.count": 3, "favourite.count": 1}
    [placed] = ask(con, model, measures=["order_placed.count"])
    assert placed == {"order_placed.count": 1}


def test_line_items_reach_the_customer_through_their_order(con: Any, model: LensModel) -> None:
    rows = ask(con, model, measures=["line_item.units"], dimensions=["customer.state", "order.channel"])
    assert rows == [
        {"customer.state": "CA", "order.channel": "app", "line_item.units": 5},
        {"customer.state": "CA", "order.channel": "web", "line_item.units": 3},
        {"customer.state": "NY", "order.channel": "store", "line_item.units": 1},
    ]


def test_measures_of_several_entities_do_not_fan_out(con: Any, model: LensModel) -> None:
    rows = ask(con, model, measures=["monetary", "product_view.count", "cart.count"], dimensions=["segment.name"])
    got = {r["segment.name"]: (r["order.monetary"], r["product_view.count"], r["cart.count"]) for r in rows}
    # c1 has 2 orders (150.50), 1 view, 1 cart add; c3: 1 view, 2 cart adds; c4: 5.00, 1 view; c2: 20.00.
    assert got == {
        "High Spending Customers": (175.5, 2, 1),  # c1, c2, c4
        "Expecting Parents": (150.5, 1, 1),  # c1, c5
        "Frequent Cart Abandoner": (5.0, 2, 2),  # c3, c4
        "Frequent Buyers": (170.5, 2, 3),  # c1, c2, c3
    }
    favs = ask(con, model, measures=["monetary", "favourite.count"], dimensions=["segment.name"])
    # Only c4 has a favourite: the segments without one count 0 (not NULL), and keep their monetary value.
    assert {r["segment.name"]: (r["order.monetary"], r["favourite.count"]) for r in favs} == {
        "High Spending Customers": (175.5, 1),
        "Expecting Parents": (150.5, 0),
        "Frequent Cart Abandoner": (5.0, 1),
        "Frequent Buyers": (170.5, 0),
    }
    [total] = ask(con, model, measures=["monetary", "product_view.count"])
    assert total == {"order.monetary": 175.5, "product_view.count": 3}


def test_filter_on_another_entity_is_a_semi_join(con: Any, model: LensModel) -> None:
    # Orders of customers who added something to the cart (c1 and c3; c3 has no order).
    [row] = ask(
        con, model, measures=["frequency"], filters=[{"member": "cart.product_id", "op": "equals", "values": ["p1"]}]
    )
    assert row == {"order.frequency": 2}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"member": "customer.state", "op": "in", "values": ["NY", "TX"]}, {"c4", "c5"}),
        ({"member": "customer.state", "op": "not_equals", "values": ["CA"]}, {"c4", "c5"}),
        ({"member": "customer.first_name", "op": "contains", "values": ["E-C6"]}, {"c6"}),
        ({"member": "customer.date_of_birth", "op": "between", "values": ["1985-01-01", "1995-01-01"]}, {"c1", "c4"}),
        ({"member": "customer.date_of_birth", "op": "lt", "values": ["1970-01-01"]}, {"c2"}),
        ({"member": "customer.days_since_last_order", "op": "lte", "values": [10]}, {"c1", "c4"}),
    ],
)
def test_filter_operators(con: Any, model: LensModel, flt: dict[str, Any], expected: set[str]) -> None:
    rows = ask(con, model, dimensions=["customer.customer_id"], filters=[flt])
    assert {r["customer.customer_id"] for r in rows} == expected


def test_filters_on_times_and_measures(con: Any, model: LensModel) -> None:
    june = {"member": "order.occurred_at", "op": "gte", "values": ["2026-06-01T00:00:00Z"]}
    rows = ask(con, model, measures=["frequency"], dimensions=["customer.customer_id"], filters=[june])
    assert {r["customer.customer_id"]: r["order.frequency"] for r in rows} == {"c1": 2, "c4": 1}
    big = {"member": "monetary", "op": "gt", "values": ["100"]}
    rows = ask(con, model, measures=["monetary"], dimensions=["customer.customer_id"], filters=[big])
    assert rows == [{"customer.customer_id": "c1", "order.monetary": 150.5}]


def test_limit_and_order(con: Any, model: LensModel) -> None:
    rows = ask(con, model, measures=["monetary"], dimensions=["customer.customer_id"], order=["monetary desc"], limit=2)
    assert [r["customer.customer_id"] for r in rows] == ["c1", "c2"]
    with pytest.raises(InvalidInputError, match="over the model's maximum, 10000"):
        ask(con, model, measures=["monetary"], limit=10_001)
    with pytest.raises(InvalidInputError, match="not a member of the query"):
        ask(con, model, measures=["monetary"], order=["customer.state"])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"measures": ["customer.nope"]}, r"unknown member 'customer.nope'; customer has: customer.customer_id"),
        ({"measures": ["nope"]}, r"unknown member 'nope'; known members: .*segment.name"),
        ({"measures": ["planet.count"]}, r"unknown entity 'planet'"),
        ({"measures": ["count"]}, r"ambiguous: say customer.count or order.count"),
        ({"measures": ["customer.state"]}, r"customer.state is a dimension, not a measure"),
        ({"dimensions": ["monetary"]}, r"order.monetary is a measure, not a dimension"),
        ({"measures": []}, r"at least one measure or dimension"),
        ({"measures": ["monetary"], "limit": 0}, r"lens query: limit"),
        ({"measures": ["monetary"], "colour": "red"}, r"lens query: colour: Extra inputs"),
        ({"dimensions": ["state"], "filters": [{"member": "state", "op": "like", "values": ["C%"]}]}, r"filters.0.op"),
        ({"dimensions": ["state"], "filters": [{"member": "state", "op": "equals", "values": [3]}]}, r"not a string"),
        ({"dimensions": ["state"], "filters": [{"member": "state", "op": "gt", "values": ["A"]}]}, r"gt applies to"),
        ({"dimensions": ["state"], "filters": [{"member": "state", "op": "equals", "values": []}]}, r"takes 1 value"),
        ({"dimensions": ["state"], "filters": [{"member": "state", "op": "in", "values": []}]}, r"one or more"),
        ({"measures": ["monetary"], "filters": [{"member": "monetary", "op": "gt", "values": ["lots"]}]}, r"number"),
        ({"measures": ["frequency"], "filters": [{"member": "monetary", "op": "gt", "values": [1]}]}, r"among"),
        (
            {"dimensions": ["date_of_birth"], "filters": [{"member": "date_of_birth", "op": "lt", "values": ["soon"]}]},
            r"'soon' is not a date",
        ),
        ({"dimensions": ["state"], "filters": [{"member": "state", "op": "between", "values": ["A"]}]}, r"takes 2"),
        ({"measures": ["monetary", "order.monetary"]}, r"a member is named twice"),
    ],
)
def test_bad_queries_are_clear_errors(con: Any, model: LensModel, query: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        run_query(con, model, query)


INJECTIONS = [
    "CA' OR '1'='1",
    "CA'; DROP TABLE customers; --",
    '" OR 1=1 --',
    "CA\\'); SELECT * FROM customers --",
]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_in_values_is_inert(tmp_path: Path, model: LensModel, attack: str) -> None:
    path = build_snapshot(tmp_path / "snap.duckdb")
    with duckdb.connect(str(path)) as writable:  # even on a writable connection
        result = run_query(
            writable,
            model,
            {"measures": ["customer.count"], "filters": [{"member": "state", "op": "equals", "values": [attack]}]},
        )
        assert result.records() == [{"customer.count": 0}]
        assert attack not in result.sql and attack in result.params.values()
        contains = {"member": "first_name", "op": "contains", "values": [attack]}
        assert run_query(writable, model, {"measures": ["customer.count"], "filters": [contains]}).rows == ((0,),)
        assert writable.execute("SELECT count(*) FROM customers").fetchone() == (len(CUSTOMERS),)


@pytest.mark.parametrize(
    "name",
    [
        'customer.state"; DROP TABLE customers; --',
        "customer.state) OR (1=1",
        "customer.*",
        'segment."name"',
        "customer.count; SELECT 1",
    ],
)
def test_injection_in_member_names_is_an_error(con: Any, model: LensModel, name: str) -> None:
    for query in (
        {"measures": [name]},
        {"dimensions": [name]},
        {"measures": ["customer.count"], "filters": [{"member": name, "op": "equals", "values": ["CA"]}]},
        {"measures": ["customer.count"], "order": [{"member": name}]},
    ):
        with pytest.raises(InvalidInputError, match=r"unknown member|not a member"):
            run_query(con, model, query)


def test_a_model_cannot_carry_sql_either(tmp_path: Path) -> None:
    base: dict[str, Any] = {"entities": {"customer": {"table": "customers", "key": "customer_id"}}}
    with pytest.raises(InvalidInputError, match=r"entities.customer.table: String should match pattern"):
        parse_model({"entities": {"customer": {"table": "customers; DROP TABLE x", "key": "customer_id"}}})
    with pytest.raises(InvalidInputError, match=r"entities.customer.filter: Input should be a valid dictionary"):
        parse_model({"entities": {"customer": {**base["entities"]["customer"], "filter": "action = 'x'"}}})
    with pytest.raises(InvalidInputError, match=r"entities.customer.dimensions.x: Value error, give exactly one of"):
        parse_model({"entities": {"customer": {**base["entities"]["customer"], "dimensions": {"x": {"type": "date"}}}}})
    with pytest.raises(InvalidInputError, match=r"entities.customer.measures.n.agg"):
        parse_model({"entities": {"customer": {**base["entities"]["customer"], "measures": {"n": {"agg": "median"}}}}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("entities:\n  customer:\n    table: customers\n    key: customer_id\n    colour: red\n")
    with pytest.raises(InvalidInputError, match=rf"lens model {bad}: entities.customer.colour: Extra inputs"):
        load_model(bad)
    bad.write_text("entities: [unclosed\n")
    with pytest.raises(InvalidInputError, match="is not valid YAML"):
        load_model(bad)
    with pytest.raises(InvalidInputError, match="cannot read lens model"):
        load_model(tmp_path / "absent.yaml")
    with pytest.raises(InvalidInputError, match="hub 'customer' is not an entity"):
        parse_model({"entities": {"order": {"table": "orders", "key": "order_id"}}})


def test_entities_without_a_join_to_the_hub_stand_alone(con: Any) -> None:
    model = parse_model(
        {
            "entities": {
                "customer": {"table": "customers", "key": "customer_id", "measures": {"count": {"agg": "count"}}},
                "product": {
                    "table": "products",
                    "key": "product_id",
                    "dimensions": {"category": "category"},
                    "measures": {"count": {"agg": "count"}},
                },
            }
        }
    )
    assert run_query(con, model, {"measures": ["product.count"]}).rows == ((0,),)
    with pytest.raises(InvalidInputError, match="entity product has no join to 'customer'"):
        run_query(con, model, {"measures": ["customer.count"], "dimensions": ["product.category"]})


def test_a_snapshot_without_segments_answers_the_rest(tmp_path: Path, model: LensModel) -> None:
    path = build_snapshot(tmp_path / "plain.duckdb", segments=False)
    with duckdb.connect(str(path), read_only=True) as plain:
        assert ask(plain, model, measures=["customer.count"]) == [{"customer.count": len(CUSTOMERS)}]
        with pytest.raises(NotFoundError, match=r"no table segment_members \(segments are not computed yet\)"):
            ask(plain, model, measures=["customer.count"], dimensions=["segment.name"])


def test_an_empty_snapshot_answers_with_zero_and_no_groups(tmp_path: Path, model: LensModel) -> None:
    path = build_snapshot(tmp_path / "empty.duckdb", data=False)
    with duckdb.connect(str(path), read_only=True) as empty:
        assert ask(empty, model, measures=["customer.count", "monetary"]) == [
            {"customer.count": 0, "order.monetary": None}
        ]
        assert ask(empty, model, measures=["customer.count"], dimensions=["segment.name"]) == []


def test_the_bundled_yaml_is_what_load_model_reads_by_default() -> None:
    assert load_model(None) == load_model(Path(__file__).resolve().parents[1] / "ml" / "lens.yaml")


# The CLI ---------------------------------------------------------------------------------------------
# ``c360 lens query`` answers through c360.ml.lens_source, as the API does: the snapshot's Parquet files
# under DATA_DIR/ml/parquet and the store's segment memberships (never the snapshot's own table).

_TABLES = ("customers", "orders", "line_items", "transactions", "web_events", "products")


def cli_home(home: Path) -> dict[str, str]:
    """An embedded store in ``home`` with the fixture's customers and memberships, and their Parquet snapshot.

    Returns the fixture's customer ids (c1...) -> the store's. The snapshot file itself is left out: the
    CLI reads only the Parquet files.
    """
    from c360.graph.insights import SegmentChange
    from payloads import profile_event

    from c360.deps import build_pipeline, build_store
    from c360.settings import Settings

    settings = Settings(data_dir=home)
    store = build_store(settings)
    try:
        events = [
            profile_event(f"p-{cid}", "crm", cid, i, first_name=f"name-{cid}") for i, (cid, *_) in enumerate(CUSTOMERS)
        ]
        assert len(build_pipeline(settings, store).process(events).accepted) == len(CUSTOMERS)
        records = store.lookup([f"crm|{cid}" for cid, *_ in CUSTOMERS], []).records
        ids = {cid: records[f"crm|{cid}"].customer_id for cid, *_ in CUSTOMERS}
        at = datetime(2026, 6, 1, tzinfo=UTC)
        changes = [
            SegmentChange(f"{SEGMENT_IDS[name]}|{cid}", SEGMENT_IDS[name], ids[cid], "entered", at, "test", "test")
            for name, cid in MEMBERS
        ]
        assert len(store.apply_segment_changes(changes)) == len(MEMBERS)
    finally:
        store.close()
    built = build_snapshot(home / "built.duckdb", segments=False)
    parquet = home / "ml" / "parquet"
    parquet.mkdir(parents=True)
    with duckdb.connect(str(built)) as con:
        for cid, store_id in ids.items():
            for table in ("customers", "orders", "transactions", "web_events"):
                con.execute(f"UPDATE {table} SET customer_id = ? WHERE customer_id = ?", [store_id, cid])
        for table in _TABLES:
            con.execute(f"COPY {table} TO '{parquet / table}.parquet' (FORMAT parquet)")
    built.unlink()
    return ids


def _cli(data_dir: Path, *args: str) -> Any:
    root = typer.Typer()

    @root.callback()
    def _state(ctx: typer.Context) -> None:
        ctx.obj = State(data_dir=data_dir)

    root.add_typer(lens_app, name="lens")
    return CliRunner().invoke(root, ["lens", "query", *args])


def test_cli_answers_the_example_as_json(tmp_path: Path) -> None:
    ids = cli_home(tmp_path)
    result = _cli(tmp_path, "-m", "customer.count", "-d", "segment.name", "--filter", "state:equals:CA", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert {r["segment.name"]: r["customer.count"] for r in answer["rows"]} == {
        "High Spending Customers": 2,
        "Expecting Parents": 1,
        "Frequent Cart Abandoner": 1,
        "Frequent Buyers": 3,
    }
    assert "segment_members" in answer["sql"] and "CA" in answer["params"].values()
    table = _cli(tmp_path, "--measures", "frequency,monetary", "--dimensions", "customer.customer_id", "--limit", "1",
                 "--order", "monetary:desc")  # fmt: skip
    assert table.exit_code == 0, table.output
    assert ids["c1"] in table.stdout and ids["c2"] not in table.stdout and "1 rows" in table.stdout


def test_cli_reads_the_stores_memberships_not_the_snapshots(tmp_path: Path) -> None:
    from c360.graph.insights import SegmentChange

    from c360.deps import build_store
    from c360.settings import Settings

    ids = cli_home(tmp_path)
    buyers = ("-m", "segment.members", "-f", "segment.id:equals:frequent_buyers", "--json")
    assert json.loads(_cli(tmp_path, *buyers).stdout)["rows"] == [{"segment.members": 3}]
    store = build_store(Settings(data_dir=tmp_path))
    try:  # the segment follower puts c6 in: the next CLI query counts it, no snapshot in between
        at = datetime(2026, 6, 2, tzinfo=UTC)
        store.apply_segment_changes([SegmentChange("in|c6", "frequent_buyers", ids["c6"], "entered", at, "t", "t")])
    finally:
        store.close()
    assert json.loads(_cli(tmp_path, *buyers).stdout)["rows"] == [{"segment.members": 4}]


def test_cli_labels_segments_by_their_definitions(tmp_path: Path) -> None:
    cli_home(tmp_path)
    defs = tmp_path / "segments.yaml"
    defs.write_text(
        "segments:\n  - id: frequent_buyers\n    name: Buyers Who Come Back\n    description: x\n"
        "    rule: {sum: order_count, within_days: 90, gte: 3}\n"
    )
    result = _cli(tmp_path, "-m", "customer.count", "-d", "segment.name", "--segments", str(defs), "--json")
    assert result.exit_code == 0, result.output
    names = {r["segment.name"] for r in json.loads(result.stdout)["rows"]}
    assert "Buyers Who Come Back" in names and "Frequent Buyers" not in names


def test_cli_errors(tmp_path: Path) -> None:
    missing = _cli(tmp_path, "-m", "customer.count")
    assert isinstance(missing.exception, NotFoundError) and "run `c360 ml snapshot` first" in str(missing.exception)
    other = tmp_path / "elsewhere"
    elsewhere = _cli(tmp_path, "-m", "customer.count", "--snapshot-dir", str(other))
    assert isinstance(elsewhere.exception, NotFoundError)
    cli_home(tmp_path)
    bad = _cli(tmp_path, "-m", "customer.count", "--filter", "state=CA")
    assert isinstance(bad.exception, InvalidInputError) and "member:operator:value" in str(bad.exception)
    unknown = _cli(tmp_path, "-m", "customer.cuont")
    assert isinstance(unknown.exception, InvalidInputError) and "unknown member 'customer.cuont'" in str(
        unknown.exception
    )
    # the whole snapshot folder moved elsewhere: --snapshot-dir reads it there
    (tmp_path / "ml").rename(other)
    moved = _cli(tmp_path, "-m", "customer.count", "--snapshot-dir", str(other), "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["rows"] == [{"customer.count": len(CUSTOMERS)}]


def test_parse_filter_keeps_colons_of_times() -> None:
    assert parse_filter("order.occurred_at:gte:2026-06-01T00:00:00Z") == {
        "member": "order.occurred_at",
        "op": "gte",
        "values": ["2026-06-01T00:00:00Z"],
    }
    assert parse_filter("state:in:CA, NY")["values"] == ["CA", "NY"]


def test_every_member_of_the_bundled_model_runs(con: Any, model: LensModel) -> None:
    for name, entity in model.entities.items():
        query = {
            "measures": [f"{name}.{m}" for m in entity.measures],
            "dimensions": [f"{name}.{d}" for d in entity.dimensions],
        }
        result = run_query(con, model, query)
        assert result.columns == (*query["dimensions"], *query["measures"]), name
        assert result.rows, name  # the fixture has rows for every entity


def test_a_snapshot_of_views_over_parquet_files(tmp_path: Path, model: LensModel) -> None:
    source = build_snapshot(tmp_path / "source.duckdb")
    (tmp_path / "parquet").mkdir()
    with duckdb.connect(str(source)) as src:
        for table in ("customers", "orders", "segment_members"):
            src.execute(f"COPY {table} TO '{tmp_path / 'parquet' / table}.parquet' (FORMAT parquet)")
    with duckdb.connect(str(tmp_path / "views.duckdb")) as views:
        for table in ("customers", "orders", "segment_members"):
            views.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{tmp_path / 'parquet' / table}.parquet')"
            )
        rows = ask(views, model, measures=["monetary"], dimensions=["segment.name"], order=["monetary desc"])
        assert {r["segment.name"]: r["order.monetary"] for r in rows} == {
            "High Spending Customers": 175.5,
            "Frequent Buyers": 170.5,
            "Expecting Parents": 150.5,
            "Frequent Cart Abandoner": 5.0,
        }
        assert rows[0]["segment.name"] == "High Spending Customers"
        with pytest.raises(NotFoundError, match="no table web_events"):
            ask(views, model, measures=["cart.count"])


def test_the_bundled_model_fits_the_snapshot_writers_own_schema(model: LensModel) -> None:
    from c360.ml import snapshot_sql

    with duckdb.connect() as fresh:
        schema = snapshot_sql.SCHEMA
        fresh.execute(schema if isinstance(schema, str) else ";".join(schema))
        fresh.execute("CREATE TABLE segment_members(segment VARCHAR, customer_id VARCHAR, entered_at TIMESTAMPTZ)")
        for name, entity in model.entities.items():
            members = {"measures": [f"{name}.{m}" for m in entity.measures]}
            members["dimensions"] = [f"{name}.{d}" for d in entity.dimensions]
            # A member reading a column the snapshot lacks fails here ("the lens model does not fit").
            result = run_query(fresh, model, members)
            assert result.columns == (*members["dimensions"], *members["measures"])
