"""The snapshot's DuckDB schema, the Arrow types of what it stages, and the SQL that makes rows of staged events."""

from __future__ import annotations

import pyarrow as pa

#: the snapshot's tables, in the order they are written to Parquet
TABLES = ("customers", "orders", "line_items", "transactions", "web_events", "products", "snapshot_meta")

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id VARCHAR PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, email VARCHAR, phone VARCHAR,
    gender VARCHAR, date_of_birth DATE, city VARCHAR, state VARCHAR, country VARCHAR, postcode VARCHAR,
    created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS orders (
    order_id VARCHAR, source VARCHAR, customer_id VARCHAR, occurred_at TIMESTAMPTZ, status VARCHAR,
    channel VARCHAR, currency VARCHAR, total DECIMAL(18,2), PRIMARY KEY (source, order_id));
CREATE TABLE IF NOT EXISTS line_items (
    source VARCHAR, order_id VARCHAR, line_id VARCHAR, product_id VARCHAR, quantity INTEGER,
    unit_price DECIMAL(18,2), discount DECIMAL(18,2), PRIMARY KEY (source, order_id, line_id));
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id VARCHAR, source VARCHAR, customer_id VARCHAR, order_id VARCHAR, occurred_at TIMESTAMPTZ,
    kind VARCHAR, amount DECIMAL(18,2), currency VARCHAR, payment_method VARCHAR, status VARCHAR,
    PRIMARY KEY (source, transaction_id));
CREATE TABLE IF NOT EXISTS web_events (
    event_id VARCHAR PRIMARY KEY, customer_id VARCHAR, occurred_at TIMESTAMPTZ, action VARCHAR,
    session_id VARCHAR, product_id VARCHAR, order_id VARCHAR, channel VARCHAR, traffic_source VARCHAR);
CREATE TABLE IF NOT EXISTS products (
    product_id VARCHAR PRIMARY KEY, name VARCHAR, brand_id VARCHAR, category VARCHAR, price DECIMAL(18,2));
CREATE TABLE IF NOT EXISTS snapshot_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
"""

#: the key of each table the journey events fill (upserts replace by it)
KEYS = {
    "orders": ("source", "order_id"),
    "transactions": ("source", "transaction_id"),
    "web_events": ("event_id",),
    "products": ("product_id",),
}

_TEXT = pa.string()
_MONEY = pa.decimal128(18, 2)
_AT = pa.timestamp("us", tz="UTC")

ARROW = {
    "customers": pa.schema(
        [
            ("customer_id", _TEXT),
            ("first_name", _TEXT),
            ("last_name", _TEXT),
            ("email", _TEXT),
            ("phone", _TEXT),
            ("gender", _TEXT),
            ("date_of_birth", pa.date32()),
            ("city", _TEXT),
            ("state", _TEXT),
            ("country", _TEXT),
            ("postcode", _TEXT),
            ("created_at", _AT),
            ("updated_at", _AT),
        ]
    ),
    "orders": pa.schema(
        [
            ("order_id", _TEXT),
            ("source", _TEXT),
            ("customer_id", _TEXT),
            ("occurred_at", _AT),
            ("status", _TEXT),
            ("channel", _TEXT),
            ("currency", _TEXT),
            ("total", _MONEY),
        ]
    ),
    "line_items": pa.schema(
        [
            ("source", _TEXT),
            ("order_id", _TEXT),
            ("line_id", _TEXT),
            ("product_id", _TEXT),
            ("quantity", pa.int32()),
            ("unit_price", _MONEY),
            ("discount", _MONEY),
        ]
    ),
    "transactions": pa.schema(
        [
            ("transaction_id", _TEXT),
            ("source", _TEXT),
            ("customer_id", _TEXT),
            ("order_id", _TEXT),
            ("occurred_at", _AT),
            ("kind", _TEXT),
            ("amount", _MONEY),
            ("currency", _TEXT),
            ("payment_method", _TEXT),
            ("status", _TEXT),
        ]
    ),
    "web_events": pa.schema(
        [
            ("event_id", _TEXT),
            ("customer_id", _TEXT),
            ("occurred_at", _AT),
            ("action", _TEXT),
            ("session_id", _TEXT),
            ("product_id", _TEXT),
            ("order_id", _TEXT),
            ("channel", _TEXT),
            ("traffic_source", _TEXT),
        ]
    ),
    "products": pa.schema(
        [("product_id", _TEXT), ("name", _TEXT), ("brand_id", _TEXT), ("category", _TEXT), ("price", _MONEY)]
    ),
}

#: the staged page of the event feed: one row per entry, the payload still JSON (DuckDB decodes it)
EVENTS = pa.schema(
    [
        ("_pos", pa.int64()),  #: the entry's place in the feed (a later entry wins a tie)
        ("id", _TEXT),
        ("type", _TEXT),
        ("occurred_at", _AT),
        ("customer_id", _TEXT),
        ("data", _TEXT),
    ]
)

#: the golden fields copied into ``customers``, in column order
GOLDEN_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "gender",
    "date_of_birth",
    "city",
    "state",
    "country",
    "postcode",
)


def newer_than_stored(table: str, stage: str) -> str:
    """SQL: the rows of ``stage`` that are new to ``table`` or not older than its row of the same key.

    The latest event of an order (or transaction, product) wins, whatever order the feed reads them in;
    an equal time wins too, so that an event read again with a new customer rewrites its row.
    ``products`` has no time: the feed's order (the later write) wins.
    """
    keys = KEYS[table]
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    if table == "products":
        return f"SELECT s.* FROM {stage} s"
    return (
        f"SELECT s.* FROM {stage} s LEFT JOIN {table} t ON {on} "
        f"WHERE t.{keys[-1]} IS NULL OR t.occurred_at <= s.occurred_at"
    )


#: the event type that fills each table
EVENT_TYPE = {"orders": "order", "transactions": "transaction", "web_events": "web_activity", "products": "product"}
#: columns taken from the feed entry, not from the payload
_FROM_ENTRY = {"customer_id": "e.customer_id", "occurred_at": "e.occurred_at", "event_id": "e.id"}


def _money(expr: str) -> str:
    # Decimal.quantize's rounding (half to even), as the row-by-row reader had it
    return f"CAST(round_even(CAST({expr} AS DECIMAL(38, 10)), 2) AS DECIMAL(18, 2))"


def _payload_type(fields: list[str]) -> str:
    return "{" + ", ".join(f'"{f}": "VARCHAR"' for f in fields) + "}"


def staged(table: str, events: str) -> str:
    """SQL: the rows of ``table`` from the staged events ``events`` (schema :data:`EVENTS`), one per key.

    Of two events of one key, the later (occurred_at, id) wins, then the later feed entry. The row keeps
    its entry's ``_pos`` (for its line items); the table's columns follow in its own order.
    """
    schema = ARROW[table]
    payload = [n for n in schema.names if n not in _FROM_ENTRY]
    columns = []
    for name in schema.names:
        if name in _FROM_ENTRY:
            columns.append(f"{_FROM_ENTRY[name]} AS {name}")
        elif pa.types.is_decimal(schema.field(name).type):
            columns.append(f"{_money(f'd.{name}')} AS {name}")
        else:
            columns.append(f"d.{name} AS {name}")
    keys = ", ".join(_FROM_ENTRY.get(k, f"d.{k}") for k in KEYS[table])
    return (
        f"SELECT e._pos, {', '.join(columns)} FROM "
        f"(SELECT *, from_json(data, '{_payload_type(payload)}') AS d FROM {events} "
        f"WHERE type = '{EVENT_TYPE[table]}') e "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY e.occurred_at DESC, e.id DESC, e._pos DESC) = 1"
    )


_LINE = "[" + _payload_type(["line_id", "product_id", "quantity", "unit_price", "discount"]) + "]"


def staged_lines(orders: str, events: str) -> str:
    """SQL: the line items of the order rows ``orders`` (from :func:`staged`), out of their events' payloads.

    A line without a discount has none (0).
    """
    discount = _money("coalesce(x.l.discount, '0')")
    return (
        f"SELECT o.source, o.order_id, x.l.line_id, x.l.product_id, CAST(x.l.quantity AS INTEGER) AS quantity, "
        f"{_money('x.l.unit_price')} AS unit_price, {discount} AS discount FROM {orders} o "
        f"JOIN (SELECT _pos, unnest(from_json(json_extract(data, '$.line_items'), '{_LINE}')) AS l FROM {events} "
        "WHERE type = 'order') x ON x._pos = o._pos"
    )
