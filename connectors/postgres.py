"""The PostgreSQL connector: orders (with their line items) and transactions, read incrementally.

It reads the retail tables below and yields event payloads (plain dicts in the JSON shape of the
``order`` and ``transaction`` event schemas, version 1); the stream layer validates them.

.. code-block:: sql

    CREATE TABLE orders (
        order_id text PRIMARY KEY, customer_id text NOT NULL, order_status text, channel text,
        currency char(3), order_total numeric(14,4), created_at timestamptz, updated_at timestamptz NOT NULL);
    CREATE TABLE order_line_item (
        line_item_id text PRIMARY KEY, order_id text REFERENCES orders, product_id text, quantity int,
        unit_price numeric(14,4), discount numeric(14,4) DEFAULT 0);
    CREATE TABLE transactions (
        transaction_id text PRIMARY KEY, order_id text, customer_id text NOT NULL, transaction_type text,
        amount numeric(14,4), currency char(3), payment_method text, status text,
        created_at timestamptz, updated_at timestamptz NOT NULL);

Mapping: ``customer_id`` -> ``customer_key``; ``order_status`` -> ``status``; ``order_total`` -> ``total``;
``transaction_type`` -> ``kind``; ``line_item_id`` -> ``line_id``. Coded values are compared lower-case
with spaces and hyphens as ``_`` and common synonyms are translated (``canceled`` -> ``cancelled``,
``online`` -> ``web``, ``sale`` -> ``payment``, ``credit_card`` -> ``card``, ...). Money is a decimal
string, times are ISO 8601 in UTC (a ``timestamp`` without time zone is taken as UTC). ``occurred_at``
and the ``event_id`` come from the row version's ``updated_at`` (``order:<order_id>:<updated_at>``,
``transaction:<transaction_id>:<updated_at>``): re-reading a row version gives the same event, a
changed row a new one. ``created_at`` is not mapped. A NULL status, channel or kind takes the schema's
default; a NULL or unknown payment method becomes ``other``.

Rows that cannot be mapped are not dropped: they become payloads carrying the raw value (an unknown
status, a NULL amount, an order without line items), so the stream layer rejects them into the
dead-letter store with the reason, where they can be fixed and replayed.

Reading is incremental by a composite watermark ``(updated_at, primary key)``: each query asks for
``(updated_at, pk) > watermark ORDER BY updated_at, pk LIMIT batch_size``, so rows sharing one
``updated_at`` are neither lost nor read twice across batch boundaries. Keys compare in the ``"C"``
collation (code point order), whatever the database's collation. An index on
``(updated_at, order_id COLLATE "C")`` (and likewise for transactions) keeps the queries cheap. Each
:class:`Batch` is committed by the caller once applied; until then a new run reads it again
(at-least-once; the pipeline is idempotent by event id). An order's line items are read with the
order; a change to a line item must touch the order's ``updated_at`` to be picked up.

Limitation: ``updated_at`` must grow with commit order. A writer transaction that commits after rows with
a later ``updated_at`` were read is missed; writers should set ``updated_at`` at commit time, or the
reader should run behind them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import psycopg
from c360.graph.errors import InvalidInputError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

Watermark = tuple[str, str]
"""``(updated_at as ISO 8601 in UTC, primary key)`` of the last row of a batch."""

SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 10
_Row = dict[str, Any]
_Build = Callable[[psycopg.Connection[_Row], list[_Row]], list[dict[str, Any]]]

_ORDER_STATUSES = {"placed", "paid", "shipped", "delivered", "cancelled", "returned"}
_ORDER_STATUS_SYNONYMS = {
    "new": "placed",
    "created": "placed",
    "pending": "placed",
    "open": "placed",
    "canceled": "cancelled",
    "dispatched": "shipped",
    "refunded": "returned",
}
_CHANNELS = {"web", "app", "store", "call_center", "partner"}
_CHANNEL_SYNONYMS = {
    "online": "web",
    "website": "web",
    "ecommerce": "web",
    "mobile": "app",
    "mobile_app": "app",
    "in_store": "store",
    "retail": "store",
    "pos": "store",
    "phone": "call_center",
    "callcenter": "call_center",
    "call_centre": "call_center",
    "marketplace": "partner",
}
_KINDS = {"payment", "refund", "chargeback"}
_KIND_SYNONYMS = {"sale": "payment", "purchase": "payment", "charge": "payment", "capture": "payment"}
_KIND_SYNONYMS |= {"return": "refund", "dispute": "chargeback"}
_METHODS = {"card", "bank_transfer", "wallet", "cash", "voucher", "other"}
_METHOD_SYNONYMS = {
    "credit_card": "card",
    "debit_card": "card",
    "creditcard": "card",
    "bank": "bank_transfer",
    "transfer": "bank_transfer",
    "wire": "bank_transfer",
    "sepa": "bank_transfer",
    "ach": "bank_transfer",
    "paypal": "wallet",
    "apple_pay": "wallet",
    "google_pay": "wallet",
    "gift_card": "voucher",
    "giftcard": "voucher",
    "coupon": "voucher",
}
_TX_STATUSES = {"authorised", "settled", "declined", "failed"}
_TX_STATUS_SYNONYMS = {
    "authorized": "authorised",
    "captured": "settled",
    "completed": "settled",
    "succeeded": "settled",
    "success": "settled",
    "paid": "settled",
    "rejected": "declined",
    "denied": "declined",
    "error": "failed",
}


class PostgresSourceConfig(BaseModel):
    """Where the retail tables live and how many rows a batch holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: str = Field(
        min_length=1, description="libpq connection string or URI, e.g. postgresql://postgres@127.0.0.1:5432/test."
    )
    source: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64, description="Event source name, e.g. shop.")
    schema_name: str = Field(default="public", min_length=1, description="Schema that holds the tables.")
    orders_table: str = Field(default="orders", min_length=1, description="Table of orders.")
    line_items_table: str = Field(default="order_line_item", min_length=1, description="Table of order lines.")
    transactions_table: str = Field(default="transactions", min_length=1, description="Table of transactions.")
    batch_size: int = Field(default=1000, ge=1, le=100_000, description="Rows (orders or transactions) per batch.")


class WatermarkStore(Protocol):
    """Where the position of each table's reader is kept between runs."""

    def get(self, name: str) -> Watermark | None:
        """The stored watermark of ``name``, or ``None`` if it has none yet."""
        ...

    def set(self, name: str, value: Watermark) -> None:
        """Store ``value`` as the watermark of ``name``, durably."""
        ...


class FileWatermarks:
    """Watermarks in one JSON file, replaced atomically on every change (one writer per file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Watermark]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{self.path}: cannot read the watermark file: {exc}") from exc
        if not isinstance(data, dict) or not all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v) for v in data.values()
        ):
            raise InvalidInputError(f"{self.path}: not a watermark file (expected {{name: [updated_at, key]}})")
        return {k: (v[0], v[1]) for k, v in data.items()}

    def get(self, name: str) -> Watermark | None:
        """The stored watermark of ``name``, or ``None``."""
        return self._load().get(name)

    def set(self, name: str, value: Watermark) -> None:
        """Store ``value`` for ``name``: written to a temporary file, flushed, then renamed over the old one."""
        data = self._load()
        data[name] = value
        text = json.dumps({k: list(v) for k, v in sorted(data.items())}, indent=2, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise InvalidInputError(f"{self.path}: cannot write the watermark file: {exc.strerror or exc}") from exc


def _after(a: Watermark, b: Watermark | None) -> bool:
    """Whether ``a`` lies after ``b`` (key order is code point order, as ``COLLATE "C"``)."""
    return b is None or (datetime.fromisoformat(a[0]), a[1]) > (datetime.fromisoformat(b[0]), b[1])


@dataclass(slots=True)
class Batch:
    """Payloads read from one table, in watermark order; :meth:`commit` once they are applied."""

    table: str
    payloads: list[dict[str, Any]]
    #: the watermark the batch was read after (``None``: from the start)
    start: Watermark | None
    #: the watermark of the batch's last row
    end: Watermark
    _state: WatermarkStore = field(repr=False)
    _name: str = field(repr=False)

    def commit(self) -> None:
        """Advance the stored watermark to :attr:`end`.

        The watermark never moves back: committing a batch also covers the earlier batches of the
        same table, and committing it again changes nothing.
        """
        if _after(self.end, self._state.get(self._name)):
            self._state.set(self._name, self.end)


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _coded(value: str | None, allowed: set[str], synonyms: Mapping[str, str]) -> str | None:
    """A coded value in the schema's terms; an unknown one is returned as it was, for validation to reject."""
    if value is None:
        return None
    term = re.sub(r"[\s-]+", "_", value.strip().lower())
    if term in allowed:
        return term
    return synonyms.get(term, value)


def _put(payload: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is NULL (the schema's default then applies)."""
    if value is not None:
        payload[key] = value


def _envelope(event_type: str, key: str, updated_at: datetime, source: str) -> dict[str, Any]:
    when = _iso(updated_at)
    return {
        "event_id": f"{event_type}:{key}:{when}",
        "type": event_type,
        "source": source,
        "occurred_at": when,
        "schema_version": SCHEMA_VERSION,
    }


def _line_item(row: _Row) -> dict[str, Any]:
    item = {
        "line_id": row["line_item_id"],
        "product_id": row["product_id"],
        "quantity": row["quantity"],
        "unit_price": _money(row["unit_price"]),
    }
    _put(item, "discount", _money(row["discount"]))
    return item


def order_payload(row: _Row, line_items: Sequence[_Row], source: str) -> dict[str, Any]:
    """The ``order`` payload of an ``orders`` row and its ``order_line_item`` rows."""
    payload = _envelope("order", row["order_id"], row["updated_at"], source)
    payload |= {"order_id": row["order_id"], "customer_key": row["customer_id"]}
    _put(payload, "status", _coded(row["order_status"], _ORDER_STATUSES, _ORDER_STATUS_SYNONYMS))
    _put(payload, "channel", _coded(row["channel"], _CHANNELS, _CHANNEL_SYNONYMS))
    payload["currency"] = row["currency"].strip().upper() if row["currency"] is not None else None
    payload["total"] = _money(row["order_total"])
    payload["line_items"] = [_line_item(li) for li in line_items]
    return payload


def transaction_payload(row: _Row, source: str) -> dict[str, Any]:
    """The ``transaction`` payload of a ``transactions`` row."""
    payload = _envelope("transaction", row["transaction_id"], row["updated_at"], source)
    payload |= {"transaction_id": row["transaction_id"], "customer_key": row["customer_id"]}
    _put(payload, "order_id", row["order_id"])
    _put(payload, "kind", _coded(row["transaction_type"], _KINDS, _KIND_SYNONYMS))
    payload["amount"] = _money(row["amount"])
    payload["currency"] = row["currency"].strip().upper() if row["currency"] is not None else None
    method = _coded(row["payment_method"], _METHODS, _METHOD_SYNONYMS)
    payload["payment_method"] = method if method in _METHODS else "other"
    _put(payload, "status", _coded(row["status"], _TX_STATUSES, _TX_STATUS_SYNONYMS))
    return payload


def _describe(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, without its password."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "the configured DSN"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', info.get('user', ''))}"


_ORDER_COLUMNS = ("order_id", "customer_id", "order_status", "channel", "currency", "order_total", "updated_at")
_LINE_COLUMNS = ("line_item_id", "order_id", "product_id", "quantity", "unit_price", "discount")
_TX_COLUMNS = (
    "transaction_id",
    "order_id",
    "customer_id",
    "transaction_type",
    "amount",
    "currency",
    "payment_method",
    "status",
    "updated_at",
)


class PostgresSource:
    """Reads orders, then transactions, in batches after the stored watermarks.

    Example::

        source = PostgresSource(config, FileWatermarks(Path("state/shop.json")))
        for batch in source.read():
            pipeline.process(batch.payloads)
            batch.commit()
    """

    def __init__(self, config: PostgresSourceConfig, state: WatermarkStore) -> None:
        self.config = config
        self.state = state

    def watermark_name(self, table: str) -> str:
        """The name a table's watermark is stored under."""
        return f"postgres:{self.config.source}:{self.config.schema_name}.{table}"

    def read(self) -> Generator[Batch, None, None]:
        """Yield batches of order payloads, then of transaction payloads, each in watermark order.

        Within one call, batches follow one another whether or not they are committed; a new call
        starts after the stored watermarks. Close the generator to release the connection early.

        Raises:
            InvalidInputError: the database cannot be reached or a table cannot be read.

        """
        with self._connect() as conn:
            cfg = self.config
            yield from self._batches(conn, cfg.orders_table, "order_id", _ORDER_COLUMNS, self._order_payloads)
            yield from self._batches(conn, cfg.transactions_table, "transaction_id", _TX_COLUMNS, self._tx_payloads)

    def _connect(self) -> psycopg.Connection[_Row]:
        kwargs: dict[str, Any] = {}
        try:
            if "connect_timeout" not in conninfo_to_dict(self.config.dsn):
                kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
            conn = psycopg.connect(self.config.dsn, autocommit=True, row_factory=dict_row, **kwargs)
        except psycopg.Error as exc:
            raise InvalidInputError(
                f"cannot connect to the PostgreSQL source at {_describe(self.config.dsn)}: {exc}"
            ) from exc
        try:
            # Session times in UTC, so a timestamp without time zone reads (and compares) as UTC.
            conn.execute("SET TIME ZONE 'UTC'")
            # One snapshot per batch: an order and its line items are read consistently.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        except psycopg.Error as exc:
            conn.close()
            raise InvalidInputError(f"cannot set up the PostgreSQL session: {exc}") from exc
        return conn

    def _batches(
        self, conn: psycopg.Connection[_Row], table: str, key: str, columns: Sequence[str], build: _Build
    ) -> Iterator[Batch]:
        name = self.watermark_name(table)
        mark = self.state.get(name)
        while True:
            try:
                with conn.transaction():
                    rows = self._rows(conn, table, key, columns, mark)
                    if not rows:
                        return
                    last = rows[-1]  # NULLs sort last
                    if last["updated_at"] is None:
                        raise InvalidInputError(f"{table} {last[key]!r}: updated_at is NULL; it must be NOT NULL")
                    payloads = build(conn, rows)
            except psycopg.Error as exc:
                raise InvalidInputError(f"cannot read {self.config.schema_name}.{table}: {exc}") from exc
            end = (_iso(last["updated_at"]), str(last[key]))
            yield Batch(table, payloads, mark, end, self.state, name)
            mark = end
            if len(rows) < self.config.batch_size:
                return

    def _rows(
        self, conn: psycopg.Connection[_Row], table: str, key: str, columns: Sequence[str], mark: Watermark | None
    ) -> list[_Row]:
        query = sql.SQL('SELECT {cols} FROM {table} {where} ORDER BY updated_at, {key} COLLATE "C" LIMIT %s').format(
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            table=sql.Identifier(self.config.schema_name, table),
            key=sql.Identifier(key),
            where=sql.SQL('WHERE (updated_at, {key} COLLATE "C") > (%s, %s)').format(key=sql.Identifier(key))
            if mark is not None
            else sql.SQL(""),
        )
        params: tuple[Any, ...] = (self.config.batch_size,)
        if mark is not None:
            params = (datetime.fromisoformat(mark[0]), mark[1], self.config.batch_size)
        return conn.execute(query, params).fetchall()

    def _order_payloads(self, conn: psycopg.Connection[_Row], rows: list[_Row]) -> list[dict[str, Any]]:
        query = sql.SQL('SELECT {cols} FROM {table} WHERE order_id = ANY(%s) ORDER BY line_item_id COLLATE "C"').format(
            cols=sql.SQL(", ").join(map(sql.Identifier, _LINE_COLUMNS)),
            table=sql.Identifier(self.config.schema_name, self.config.line_items_table),
        )
        items: dict[str, list[_Row]] = {}
        if rows:
            for item in conn.execute(query, ([r["order_id"] for r in rows],)).fetchall():
                items.setdefault(item["order_id"], []).append(item)
        return [order_payload(r, items.get(r["order_id"], []), self.config.source) for r in rows]

    def _tx_payloads(self, conn: psycopg.Connection[_Row], rows: list[_Row]) -> list[dict[str, Any]]:
        return [transaction_payload(r, self.config.source) for r in rows]
