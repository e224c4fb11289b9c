"""The ML snapshot: the store's active customers and their journeys in DuckDB, with Parquet files beside it.

Incremental through the store's two change feeds (``customer_changes`` and ``event_changes``). Each
write to the store takes a change sequence number higher than every write before it (writers are
exclusive on both backends) and is seen whole or not at all, so a keyset cursor on (seq, id) kept in
``snapshot_meta`` misses nothing and reads nothing twice: no clock, no overlap window. An event comes
again in the feed when its record changes customer (new, moved, split off, brought by a merge), and a
merged customer comes with its survivor, whose id replaces it in every table. Rows are upserted by key,
so reading an entry again is harmless. Store pages (1,000 entries) are gathered up to 20,000 entries
(bounded memory), written as one DuckDB transaction together with their cursor: a run stopped by its
time budget (or killed) keeps exactly what it finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from c360.graph.errors import InvalidInputError
from c360.graph.models import Customer
from c360.graph.ports.identity import ChangedCustomer
from c360.graph.ports.journey import ChangedEvent
from c360.graph.store import GraphStore

from .snapshot_sql import ARROW, GOLDEN_FIELDS, KEYS, SCHEMA, TABLES, newer_than_stored

#: the event types the snapshot reads from the journey feed
EVENT_TYPES = ("order", "product", "transaction", "web_activity")
#: the tables whose rows name a customer
_CUSTOMER_TABLES = ("orders", "transactions", "web_events")
_PAGE = 1000
#: store pages are gathered up to this many entries, then written to DuckDB in one transaction
_FLUSH = 20_000

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TableCounts:
    """What one run did to one table: rows read from the store, inserted, updated, deleted."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass(slots=True)
class _Tally:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def frozen(self) -> TableCounts:
        return TableCounts(self.read, self.inserted, self.updated, self.deleted)


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    """The outcome of one snapshot run."""

    mode: str  #: "full" (from an empty snapshot) or "incremental" (from the stored cursors)
    seconds: float
    complete: bool  #: False when the time budget stopped the run (the next run goes on from there)
    tables: Mapping[str, TableCounts]
    customers_read: int  #: entries the customer feed returned
    events_read: int  #: entries the event feed returned
    path: Path
    written_parquet: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "mode": self.mode,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "customers_read": self.customers_read,
            "events_read": self.events_read,
            "path": str(self.path),
            "parquet_written": self.written_parquet,
            "tables": {
                name: {"read": c.read, "inserted": c.inserted, "updated": c.updated, "deleted": c.deleted}
                for name, c in self.tables.items()
            },
        }


@dataclass(slots=True)
class _Run:
    con: duckdb.DuckDBPyConnection
    counts: dict[str, _Tally] = field(default_factory=lambda: {t: _Tally() for t in TABLES[:-1]})
    deadline: float | None = None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def database_path(folder: Path) -> Path:
    """The snapshot's DuckDB file in ``folder`` (``DATA_DIR/ml``)."""
    return folder / "snapshot.duckdb"


def snapshot(
    store: GraphStore,
    folder: Path,
    *,
    full: bool = False,
    progress: Progress | None = None,
    budget_seconds: float | None = None,
    page_size: int = _PAGE,
) -> SnapshotReport:
    """Bring the snapshot in ``folder`` up to date with ``store``: all of it the first time (or ``full``), then changes.

    ``progress`` receives a line per page; ``budget_seconds`` stops the run cleanly after the page that
    passes it (the cursors keep what was finished). Parquet files are rewritten when anything changed.
    """
    if budget_seconds is not None and not budget_seconds > 0:
        raise InvalidInputError(f"budget_seconds must be positive, not {budget_seconds}")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= _PAGE:
        raise InvalidInputError(f"page_size must be between 1 and {_PAGE}")
    say = progress or (lambda _line: None)
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database_path(folder)))
    try:
        if full:
            for table in TABLES:
                con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(SCHEMA)
        run = _Run(con, deadline=None if budget_seconds is None else started + budget_seconds)
        cursors = _cursors(con)
        mode = "incremental" if cursors else "full"
        say(f"snapshot ({mode}) into {database_path(folder)}")
        customers_read, done = _follow_customers(store, run, cursors.get("customer_cursor"), page_size, say)
        events_read = 0
        if done:
            events_read, done = _follow_events(store, run, cursors.get("event_cursor"), page_size, say)
        changed = any(c.inserted or c.updated or c.deleted for c in run.counts.values())
        parquet = folder / "parquet"
        written = False
        if changed or not all((parquet / f"{t}.parquet").exists() for t in TABLES):
            _write_parquet(con, parquet)
            written = True
            say(f"parquet files written under {parquet}")
    finally:
        con.close()
    seconds = time.monotonic() - started
    say(f"snapshot {'done' if done else 'stopped by its time budget'} in {seconds:.1f} s")
    counts = {t: c.frozen() for t, c in run.counts.items()}
    return SnapshotReport(mode, seconds, done, counts, customers_read, events_read, folder, written)


# -- cursors -----------------------------------------------------------------------------------------------


def _cursors(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    rows = con.execute("SELECT key, value FROM snapshot_meta WHERE key LIKE '%_cursor'").fetchall()
    out: dict[str, tuple[int, str]] = {}
    for key, value in rows:
        seq, cid = orjson.loads(value)
        out[key] = (int(seq), str(cid))
    return out


def _save(con: duckdb.DuckDBPyConnection, key: str, cursor: tuple[int, str]) -> None:
    now = datetime.now(UTC).isoformat()
    con.execute(
        "INSERT OR REPLACE INTO snapshot_meta VALUES (?, ?), (?, ?)",
        [key, orjson.dumps(list(cursor)).decode(), key.replace("_cursor", "_at"), now],
    )


# -- customers ---------------------------------------------------------------------------------------------


def _follow_customers(
    store: GraphStore, run: _Run, cursor: tuple[int, str] | None, size: int, say: Progress
) -> tuple[int, bool]:
    read, buffer = 0, []
    while True:
        late = run.out_of_time()
        page = [] if late else store.customer_changes(after=cursor, first=size)
        buffer += page
        read += len(page)
        if page:
            cursor = (page[-1].seq, page[-1].customer.id)
        if buffer and cursor is not None and (not page or len(buffer) >= _FLUSH):
            _apply_customers(run, buffer, cursor)
            say(f"customers: {read:,} read")
            buffer = []
        if not page:
            return read, not late


def _apply_customers(run: _Run, page: list[ChangedCustomer], cursor: tuple[int, str]) -> None:
    con, counts = run.con, run.counts["customers"]
    active = [c for c in page if c.customer.status == "active"]
    merged = [(c.customer.id, c.customer.merged_into) for c in page if c.customer.status != "active"]
    counts.read += len(page)
    con.execute("BEGIN")
    try:
        if active:
            con.register("stage_customers", _table("customers", [_customer_row(c) for c in active]))
            known = _count(con, "SELECT count(*) FROM stage_customers s JOIN customers t USING (customer_id)")
            con.execute("INSERT OR REPLACE INTO customers SELECT * FROM stage_customers")
            con.unregister("stage_customers")
            counts.updated += known
            counts.inserted += len(active) - known
        if merged:
            con.register("stage_merged", pa.table({"id": [m for m, _ in merged], "survivor": [s for _, s in merged]}))
            counts.deleted += _count(
                con, "SELECT count(*) FROM customers WHERE customer_id IN (SELECT id FROM stage_merged)"
            )
            con.execute("DELETE FROM customers WHERE customer_id IN (SELECT id FROM stage_merged)")
            for table in _CUSTOMER_TABLES:  # a merged-away customer's rows move to the survivor
                n = _count(con, f"SELECT count(*) FROM {table} WHERE customer_id IN (SELECT id FROM stage_merged)")
                con.execute(
                    f"UPDATE {table} SET customer_id = m.survivor FROM stage_merged m WHERE {table}.customer_id = m.id"
                )
                run.counts[table].updated += n
            con.unregister("stage_merged")
        _save(con, "customer_cursor", cursor)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _customer_row(change: ChangedCustomer) -> dict[str, Any]:
    c: Customer = change.customer
    row: dict[str, Any] = {"customer_id": c.id}
    for name in GOLDEN_FIELDS:
        value = c.golden[name].value if name in c.golden else None
        if name == "date_of_birth":
            row[name] = value if isinstance(value, date) else None
        else:
            row[name] = None if value is None else str(value)
    row["created_at"] = c.created_at
    row["updated_at"] = change.changed_at or c.created_at
    return row


# -- journey events ----------------------------------------------------------------------------------------


def _follow_events(
    store: GraphStore, run: _Run, cursor: tuple[int, str] | None, size: int, say: Progress
) -> tuple[int, bool]:
    read, buffer = 0, []
    while True:
        late = run.out_of_time()
        page = [] if late else store.event_changes(after=cursor, first=size, types=EVENT_TYPES)
        buffer += page
        read += len(page)
        if page:
            cursor = (page[-1].seq, page[-1].event.id)
        if buffer and cursor is not None and (not page or len(buffer) >= _FLUSH):
            _apply_events(run, buffer, cursor)
            say(f"events: {read:,} read")
            buffer = []
        if not page:
            return read, not late


def _apply_events(run: _Run, page: list[ChangedEvent], cursor: tuple[int, str]) -> None:
    rows = _event_rows(page)
    for change in page:
        table = _TABLE_OF[change.event.type]
        run.counts[table].read += 1
    con = run.con
    con.execute("BEGIN")
    try:
        for table, by_key in rows.items():
            if table == "line_items" or not by_key:
                continue
            stage = f"stage_{table}"
            con.register(stage, _table(table, [r for _, r in by_key.values()]))
            con.execute(f"CREATE OR REPLACE TEMP TABLE win AS {newer_than_stored(table, stage)}")
            keys = KEYS[table]
            on = " AND ".join(f"t.{k} = w.{k}" for k in keys)
            won = _count(con, "SELECT count(*) FROM win")
            known = _count(con, f"SELECT count(*) FROM win w JOIN {table} t ON {on}")
            if table == "orders":  # the winning event's line items replace the order's
                run.counts["line_items"].deleted += _count(
                    con,
                    "SELECT count(*) FROM line_items t JOIN win w ON t.source = w.source AND t.order_id = w.order_id",
                )
                con.execute(
                    "DELETE FROM line_items t USING win w WHERE t.source = w.source AND t.order_id = w.order_id"
                )
                lines = [line for _rank, items in rows["line_items"].values() for line in items]
                con.register("stage_lines", _table("line_items", lines))
                n = _count(con, "SELECT count(*) FROM stage_lines JOIN win USING (source, order_id)")
                con.execute("INSERT INTO line_items SELECT l.* FROM stage_lines l JOIN win USING (source, order_id)")
                con.unregister("stage_lines")
                run.counts["line_items"].inserted += n
            con.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM win")
            con.execute("DROP TABLE win")
            con.unregister(stage)
            run.counts[table].inserted += won - known
            run.counts[table].updated += known
        _save(con, "event_cursor", cursor)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


_TABLE_OF = {"order": "orders", "transaction": "transactions", "web_activity": "web_events", "product": "products"}


def _event_rows(page: Iterable[ChangedEvent]) -> dict[str, dict[tuple[str, ...], tuple[tuple[datetime, str], Any]]]:
    """The page's rows by table and key; of two events of one key, the later (time, id) wins."""
    out: dict[str, dict[tuple[str, ...], tuple[tuple[datetime, str], Any]]] = {
        t: {} for t in ("orders", "transactions", "web_events", "products", "line_items")
    }
    for change in page:
        e = change.event
        data = orjson.loads(e.data)
        rank = (e.occurred_at, e.id)
        table = _TABLE_OF[e.type]
        row = _ROW[e.type](data, e.id, change.customer_id, e.occurred_at)
        key = tuple(str(row[k]) for k in KEYS[table])
        if key in out[table] and out[table][key][0] > rank:
            continue
        out[table][key] = (rank, row)
        if e.type == "order":
            items = [
                {
                    "source": data["source"],
                    "order_id": data["order_id"],
                    "line_id": li["line_id"],
                    "product_id": li["product_id"],
                    "quantity": int(li["quantity"]),
                    "unit_price": _money(li["unit_price"]),
                    "discount": _money(li.get("discount", "0")),
                }
                for li in data["line_items"]
            ]
            out["line_items"][key] = (rank, items)
    return out


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


def _order(d: dict[str, Any], _eid: str, cid: str | None, at: datetime) -> dict[str, Any]:
    keys = ("order_id", "source", "status", "channel", "currency")
    return {**{k: d.get(k) for k in keys}, "customer_id": cid, "occurred_at": at, "total": _money(d.get("total"))}


def _transaction(d: dict[str, Any], _eid: str, cid: str | None, at: datetime) -> dict[str, Any]:
    keys = ("transaction_id", "source", "order_id", "kind", "currency", "payment_method", "status")
    return {**{k: d.get(k) for k in keys}, "customer_id": cid, "occurred_at": at, "amount": _money(d.get("amount"))}


def _web(d: dict[str, Any], eid: str, cid: str | None, at: datetime) -> dict[str, Any]:
    keys = ("action", "session_id", "product_id", "order_id", "channel", "traffic_source")
    return {**{k: d.get(k) for k in keys}, "event_id": eid, "customer_id": cid, "occurred_at": at}


def _product(d: dict[str, Any], _eid: str, _cid: str | None, _at: datetime) -> dict[str, Any]:
    keys = ("product_id", "name", "brand_id", "category")
    return {**{k: d.get(k) for k in keys}, "price": _money(d.get("price"))}


_ROW: dict[str, Callable[[dict[str, Any], str, str | None, datetime], dict[str, Any]]] = {
    "order": _order,
    "transaction": _transaction,
    "web_activity": _web,
    "product": _product,
}


# -- DuckDB and Parquet ------------------------------------------------------------------------------------


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = ARROW[name]
    return pa.Table.from_pylist([{f: r.get(f) for f in schema.names} for r in rows], schema=schema)


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _write_parquet(con: duckdb.DuckDBPyConnection, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        target = folder / f"{table}.parquet"
        partial = folder / f".{table}.parquet.tmp"
        # the path is ours, never a user's string; quotes doubled all the same
        path = str(partial).replace("'", "''")
        con.execute(f"COPY {table} TO '{path}' (FORMAT parquet)")
        partial.replace(target)  # readers never see half a file
