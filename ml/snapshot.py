"""The ML snapshot: the store's active customers and their journeys in DuckDB, with Parquet files beside it.

Incremental through the store's two change feeds (``customer_changes`` and ``event_changes``). Each
write to the store takes a change sequence number higher than every write before it (writers are
exclusive on both backends) and is seen whole or not at all, so a keyset cursor on (seq, id) kept in
``snapshot_meta`` misses nothing and reads nothing twice: no clock, no overlap window. An event comes
again in the feed when its record changes customer (new, moved, split off, brought by a merge), and a
merged customer comes with its survivor, whose id replaces it in every table. Rows are upserted by key,
so reading an entry again is harmless. Store pages (1,000 entries) are gathered up to 50,000 entries
(bounded memory), written as one DuckDB transaction together with their cursor: a run stopped by its
time budget (or killed) keeps exactly what it finished. A page of events goes to DuckDB as it came, one
Arrow table with the payloads still JSON text; DuckDB decodes them, keeps the latest event of each key
and upserts (``snapshot_sql.staged``): no Python object per row.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import Customer
from c360.graph.ports.identity import ChangedCustomer
from c360.graph.ports.journey import ChangedEvent
from c360.graph.store import GraphStore

from .snapshot_sql import (
    ARROW,
    EVENT_TYPE,
    EVENTS,
    GOLDEN_FIELDS,
    KEYS,
    SCHEMA,
    TABLES,
    newer_than_stored,
    staged,
    staged_lines,
)

#: the event types the snapshot reads from the journey feed
EVENT_TYPES = ("order", "product", "transaction", "web_activity")
#: the tables whose rows name a customer
_CUSTOMER_TABLES = ("orders", "transactions", "web_events")
_PAGE = 1000
#: store pages are gathered up to this many entries, then written to DuckDB in one transaction
_FLUSH = 50_000

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
    """One run's DuckDB connection, tallies and deadline, and the one thread that writes to DuckDB.

    The store is read on the caller's thread while the previous gathered pages are written (DuckDB
    works outside the GIL): at most one write is in flight, and writes happen in the order submitted.
    """

    con: duckdb.DuckDBPyConnection
    counts: dict[str, _Tally] = field(default_factory=lambda: {t: _Tally() for t in TABLES[:-1]})
    deadline: float | None = None
    writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "snapshot-writer"))
    pending: Future[None] | None = None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def submit(self, write: Callable[..., None], *args: Any) -> None:
        """Write in the writer thread once the previous write has finished (its error is raised here)."""
        self.drain()
        self.pending = self.writer.submit(write, self, *args)

    def drain(self) -> None:
        """Wait for the write in flight, if any; re-raise its error."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


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
    run = _Run(con, deadline=None if budget_seconds is None else started + budget_seconds)
    try:
        if full:
            for table in TABLES:
                con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(SCHEMA)
        # A checkpoint rewrites the tables' key indexes whole; at the default (16 MiB of WAL) every flush
        # of a large run took one. The WAL is as durable; closing the file checkpoints once.
        con.execute("SET checkpoint_threshold = '4GB'")
        cursors = read_cursors(con)
        mode = "incremental" if cursors else "full"
        say(f"snapshot ({mode}) into {database_path(folder)}")
        customers_read, done = _follow_customers(store, run, cursors.get("customer_cursor"), page_size, say)
        events_read = 0
        if done:
            events_read, done = _follow_events(store, run, cursors.get("event_cursor"), page_size, say)
        run.drain()
        changed = any(c.inserted or c.updated or c.deleted for c in run.counts.values())
        parquet = folder / "parquet"
        written = False
        if changed or not all((parquet / f"{t}.parquet").exists() for t in TABLES):
            _write_parquet(con, parquet)
            written = True
            say(f"parquet files written under {parquet}")
    finally:
        run.writer.shutdown(wait=True)  # a write in flight finishes (or rolls back) before the file closes
        con.close()
    seconds = time.monotonic() - started
    say(f"snapshot {'done' if done else 'stopped by its time budget'} in {seconds:.1f} s")
    counts = {t: c.frozen() for t, c in run.counts.items()}
    return SnapshotReport(mode, seconds, done, counts, customers_read, events_read, folder, written)


# -- cursors -----------------------------------------------------------------------------------------------


def read_cursors(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
    """The snapshot's feed cursors by name (``<feed>_cursor`` rows of ``snapshot_meta``): (sequence, id)."""
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
            run.submit(_apply_customers, buffer, cursor)
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
            con.register("stage_customers", customers_table(active))
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


def customers_table(changes: list[ChangedCustomer]) -> pa.Table:
    """The customers' rows (golden fields, times) as an Arrow table, built column by column."""
    customers: list[Customer] = [c.customer for c in changes]
    goldens = [c.golden for c in customers]
    columns: dict[str, list[Any]] = {"customer_id": [c.id for c in customers]}
    for name in GOLDEN_FIELDS:
        values = [g[name].value if name in g else None for g in goldens]
        if name == "date_of_birth":
            columns[name] = [v if isinstance(v, date) else None for v in values]
        else:
            columns[name] = [None if v is None else str(v) for v in values]
    schema = ARROW["customers"]
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema if f.name in columns]
    arrays.append(_times([c.created_at for c in customers]))
    arrays.append(_times([ch.changed_at or ch.customer.created_at for ch in changes]))
    return pa.Table.from_arrays(arrays, schema=schema)


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
            run.submit(_apply_events, buffer, cursor)
            say(f"events: {read:,} read")
            buffer = []
        if not page:
            return read, not late


def _apply_events(run: _Run, page: list[ChangedEvent], cursor: tuple[int, str]) -> None:
    kinds = Counter(change.event.type for change in page)
    for kind, n in kinds.items():
        run.counts[_TABLE_OF[kind]].read += n
    con = run.con
    con.execute("BEGIN")
    try:
        con.register("stage_events", _events_table(page))
        for table, kind in EVENT_TYPE.items():
            if not kinds[kind]:
                continue
            con.execute(f"CREATE OR REPLACE TEMP TABLE stage AS {staged(table, 'stage_events')}")
            con.execute(f"CREATE OR REPLACE TEMP TABLE win AS {newer_than_stored(table, 'stage')}")
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
                con.execute(f"CREATE OR REPLACE TEMP TABLE lines AS {staged_lines('win', 'stage_events')}")
                run.counts["line_items"].inserted += _count(con, "SELECT count(*) FROM lines")
                con.execute("INSERT INTO line_items SELECT * FROM lines")
                con.execute("DROP TABLE lines")
            con.execute(f"INSERT OR REPLACE INTO {table} SELECT * EXCLUDE (_pos) FROM win")
            con.execute("DROP TABLE win")
            con.execute("DROP TABLE stage")
            run.counts[table].inserted += won - known
            run.counts[table].updated += known
        con.unregister("stage_events")
        _save(con, "event_cursor", cursor)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


_TABLE_OF = {kind: table for table, kind in EVENT_TYPE.items()}


def _events_table(page: list[ChangedEvent]) -> pa.Table:
    """The page as an Arrow table of :data:`EVENTS`, built column by column (payloads stay JSON text)."""
    events = [c.event for c in page]
    arrays = [
        pa.array(range(len(page)), type=pa.int64()),
        pa.array([e.id for e in events], type=pa.string()),
        pa.array([e.type for e in events], type=pa.string()),
        _times([e.occurred_at for e in events]),
        pa.array([c.customer_id for c in page], type=pa.string()),
        pa.array([e.data for e in events], type=pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=EVENTS)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _times(values: list[datetime]) -> pa.Array:
    """Aware datetimes as a UTC microsecond timestamp array (integers first: no pandas on the way)."""
    micros = pa.array([(v - _EPOCH) // _MICROSECOND for v in values], type=pa.int64())
    return micros.cast(pa.timestamp("us", tz="UTC"))


# -- DuckDB and Parquet ------------------------------------------------------------------------------------


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


def snapshot_time(con: duckdb.DuckDBPyConnection) -> datetime:
    """When the snapshot's feeds were last read (``snapshot_meta``); NotFoundError before any snapshot."""
    rows = dict(con.execute("SELECT key, value FROM snapshot_meta WHERE key IN ('customer_at', 'event_at')").fetchall())
    if not rows:
        raise NotFoundError("no snapshot yet: run c360 ml snapshot first")
    return max(datetime.fromisoformat(str(v)) for v in rows.values())
