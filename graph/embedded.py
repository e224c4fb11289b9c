"""The embedded backend: one SQLite file (WAL), in-process, transactional. The default store."""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from .errors import StoreUnavailableError
from .models import (
    ApartPair,
    Candidate,
    ChangeSet,
    Customer,
    DeadLetter,
    Evidence,
    ExistingRecord,
    HistoryEvent,
    Identifier,
    IdentifierState,
    Lookup,
    MergeEvent,
    Profile,
    ReviewItem,
    SourceRecord,
    SplitEvent,
    StoredEvent,
    StoreStats,
    assemble_profiles,
    dumps,
    event_time,
    golden_from_json,
    golden_to_json,
    loads,
)
from .store import GraphStore, StoreConfig

SCHEMA_VERSION = "3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, status TEXT NOT NULL,
    merged_into TEXT, golden TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS customers_merged_into ON customers(merged_into) WHERE merged_into IS NOT NULL;
CREATE TABLE IF NOT EXISTS records (
    uid TEXT PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
    hash TEXT NOT NULL, customer_id TEXT NOT NULL, evidence TEXT NOT NULL,
    first_lc TEXT, last_lc TEXT);
CREATE INDEX IF NOT EXISTS records_customer ON records(customer_id);
CREATE INDEX IF NOT EXISTS records_name ON records(last_lc, first_lc) WHERE last_lc IS NOT NULL;
CREATE TABLE IF NOT EXISTS identifiers (
    uid TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL,
    joined INTEGER NOT NULL, flagged INTEGER NOT NULL, flag_reason TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record_identifiers (
    record_uid TEXT NOT NULL, identifier_uid TEXT NOT NULL,
    PRIMARY KEY (record_uid, identifier_uid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_identifiers_identifier ON record_identifiers(identifier_uid, record_uid);
CREATE TABLE IF NOT EXISTS record_blocks (
    key TEXT NOT NULL, record_uid TEXT NOT NULL, view TEXT, PRIMARY KEY (key, record_uid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_blocks_record ON record_blocks(record_uid);
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY, record_uid TEXT NOT NULL, candidate_uid TEXT NOT NULL, customer_id TEXT NOT NULL,
    match_weight REAL NOT NULL, match_probability REAL NOT NULL, created_at TEXT NOT NULL,
    status TEXT NOT NULL, decided_by TEXT, decided_at TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS review_items_status ON review_items(status, created_at);
CREATE INDEX IF NOT EXISTS review_items_record ON review_items(record_uid);
CREATE INDEX IF NOT EXISTS review_items_candidate ON review_items(candidate_uid);
CREATE TABLE IF NOT EXISTS merges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, survivor TEXT NOT NULL, merged TEXT NOT NULL,
    at TEXT NOT NULL, evidence TEXT NOT NULL, records TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS merges_survivor ON merges(survivor);
CREATE INDEX IF NOT EXISTS merges_merged ON merges(merged);
CREATE TABLE IF NOT EXISTS splits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, new TEXT NOT NULL, records TEXT NOT NULL,
    at TEXT NOT NULL, evidence TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS splits_source ON splits(source);
CREATE INDEX IF NOT EXISTS splits_new ON splits(new);
CREATE TABLE IF NOT EXISTS apart (
    a TEXT NOT NULL, b TEXT NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS apart_b ON apart(b, a);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, occurred_at TEXT NOT NULL, data TEXT NOT NULL,
    record_uid TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_record ON events(record_uid, occurred_at, id) WHERE record_uid IS NOT NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, received_at TEXT NOT NULL, source TEXT, reason TEXT NOT NULL, payload TEXT NOT NULL,
    status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters(status, received_at);
"""

_TABLES = (
    "customers",
    "records",
    "identifiers",
    "record_identifiers",
    "record_blocks",
    "merges",
    "splits",
    "apart",
    "review_items",
    "events",
    "dead_letters",
)

# SQLite allows 32766 host parameters; stay far below for IN lists.
_CHUNK = 900


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _parse_event_time(text: str) -> datetime:
    return datetime.fromisoformat(text)  # event_time(): fixed-width UTC with a Z, which 3.11 reads


def _marks(n: int) -> str:
    return ",".join("?" * n)


class EmbeddedConfig(StoreConfig):
    """Configuration of the embedded (SQLite) store."""

    path: Path = Field(description="The database file; its folder is created if missing.")
    wal_autocheckpoint: int = Field(
        default=10_000, ge=0, description="WAL pages (4 KiB) after which SQLite checkpoints; 0 turns it off."
    )
    cache_mb: int = Field(default=64, ge=1, description="SQLite page cache of the connection, in MiB.")
    mmap_mb: int = Field(
        default=0, ge=0, description="Bytes of the file SQLite reads through a memory map, in MiB (0: plain reads)."
    )
    synchronous: str = Field(
        default="NORMAL",
        pattern="^(OFF|NORMAL|FULL|EXTRA)$",
        description="SQLite synchronous mode; NORMAL in WAL mode is durable across process crashes.",
    )
    lock_timeout: float = Field(
        default=30, gt=0, le=3600, description="Seconds a writer waits for another process's write lock."
    )


class EmbeddedStore(GraphStore):
    """The identity graph in one SQLite file. Safe to share between threads (one lock)."""

    name = "embedded"

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        try:
            config.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                config.path, isolation_level=None, check_same_thread=False, timeout=config.lock_timeout
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={config.synchronous}")
            # Checkpoint the WAL less often than the default 1,000 pages: fewer fsyncs while ingesting.
            self._db.execute(f"PRAGMA wal_autocheckpoint={config.wal_autocheckpoint}")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.execute(f"PRAGMA cache_size=-{config.cache_mb * 1024}")
            self._db.execute(f"PRAGMA mmap_size={config.mmap_mb * 1024 * 1024}")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(merges)")}
            if "records" not in columns:  # a schema-1 file: merges did not keep their records
                self._db.execute("ALTER TABLE merges ADD COLUMN records TEXT NOT NULL DEFAULT '[]'")
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(record_blocks)")}
            if "view" not in columns:  # before schema 3 candidates were read from their records
                self._db.execute("ALTER TABLE record_blocks ADD COLUMN view TEXT")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"cannot open embedded store at {config.path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- reads -----------------------------------------------------------------------------------------

    def _lookup(self, record_uids: list[str], identifier_uids: list[str]) -> Lookup:
        records: dict[str, ExistingRecord] = {}
        states: dict[str, IdentifierState] = {}
        bearers: dict[str, dict[str, str]] = defaultdict(dict)
        record_idents: dict[str, list[str]] = defaultdict(list)
        with self._lock:
            for chunk in _chunks(record_uids):
                marks = _marks(len(chunk))
                for ruid, iuid in self._db.execute(
                    f"SELECT record_uid, identifier_uid FROM record_identifiers WHERE record_uid IN ({marks})", chunk
                ):
                    record_idents[ruid].append(iuid)
                for uid, h, cid, ev in self._db.execute(
                    f"SELECT uid, hash, customer_id, evidence FROM records WHERE uid IN ({marks})", chunk
                ):
                    records[uid] = ExistingRecord(
                        uid, h, cid, Evidence.from_json(loads(ev)), tuple(sorted(record_idents.get(uid, ())))
                    )
            for chunk in _chunks(identifier_uids):
                for uid, kind, value, joined, flagged, reason in self._db.execute(
                    f"SELECT uid, kind, value, joined, flagged, flag_reason FROM identifiers "
                    f"WHERE uid IN ({_marks(len(chunk))})",
                    chunk,
                ):
                    states[uid] = IdentifierState(Identifier(kind, value), joined, bool(flagged), reason)
            linking = [uid for uid, st in states.items() if not st.flagged]
            for chunk in _chunks(linking):
                for iuid, ruid, cid in self._db.execute(
                    f"SELECT ri.identifier_uid, ri.record_uid, r.customer_id FROM record_identifiers ri "
                    f"JOIN records r ON r.uid = ri.record_uid WHERE ri.identifier_uid IN ({_marks(len(chunk))})",
                    chunk,
                ):
                    bearers[iuid][ruid] = cid
        return Lookup(records, states, dict(bearers))

    def _records_of(self, customer_ids: list[str]) -> dict[str, list[SourceRecord]]:
        out: dict[str, list[SourceRecord]] = defaultdict(list)
        with self._lock:
            for chunk in _chunks(customer_ids):
                for cid, data in self._db.execute(
                    f"SELECT customer_id, data FROM records WHERE customer_id IN ({_marks(len(chunk))})",
                    chunk,
                ):
                    out[cid].append(SourceRecord.from_json(loads(data)))
        return dict(out)

    def _resolve(self, customer_id: str) -> str | None:
        return self._resolve_many([customer_id]).get(customer_id)

    def _resolve_many(self, customer_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self._lock:
            for chunk in _chunks(customer_ids):
                for cid, status, merged_into in self._db.execute(
                    f"SELECT id, status, merged_into FROM customers WHERE id IN ({_marks(len(chunk))})", chunk
                ):
                    active = cid if status == "active" else merged_into  # chains are compressed on merge
                    if active is not None:
                        out[cid] = active
        return out

    def _customer(self, row: Sequence[Any]) -> Customer:
        cid, created_at, status, merged_into, golden = row
        return Customer(cid, datetime.fromisoformat(created_at), status, merged_into, golden_from_json(golden))

    def _get_customer(self, customer_id: str) -> Customer | None:
        rows = self._all(
            "SELECT id, created_at, status, merged_into, golden FROM customers WHERE id = ?", (customer_id,)
        )
        return self._customer(rows[0]) if rows else None

    def _get_profiles(self, targets: Mapping[str, str]) -> dict[str, Profile]:
        # Four reads a chunk of 900 active ids plus one for their history, whatever the number of ids.
        actives = sorted(set(targets.values()))
        customers: dict[str, Customer] = {}
        identifier_rows: dict[str, list[tuple[str, IdentifierState]]] = defaultdict(list)
        record_rows: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        merged: dict[str, list[str]] = defaultdict(list)
        with self._lock:
            for chunk in _chunks(actives):
                marks = _marks(len(chunk))
                for row in self._db.execute(
                    f"SELECT id, created_at, status, merged_into, golden FROM customers WHERE id IN ({marks})", chunk
                ):
                    customers[row[0]] = self._customer(row)
                for cid, ruid, kind, value, joined, flagged, reason in self._db.execute(
                    "SELECT r.customer_id, ri.record_uid, i.kind, i.value, i.joined, i.flagged, i.flag_reason "
                    "FROM records r JOIN record_identifiers ri ON ri.record_uid = r.uid "
                    f"JOIN identifiers i ON i.uid = ri.identifier_uid WHERE r.customer_id IN ({marks})",
                    chunk,
                ):
                    identifier_rows[cid].append(
                        (ruid, IdentifierState(Identifier(kind, value), joined, bool(flagged), reason))
                    )
                for cid, uid, data, evidence in self._db.execute(
                    f"SELECT customer_id, uid, data, evidence FROM records WHERE customer_id IN ({marks}) "
                    "ORDER BY customer_id, uid",
                    chunk,
                ):
                    record_rows[cid].append((uid, data, evidence))
                for into, mid in self._db.execute(
                    f"SELECT merged_into, id FROM customers WHERE merged_into IN ({marks}) ORDER BY merged_into, id",
                    chunk,
                ):
                    merged[into].append(mid)
            histories = self._histories(actives)
        return assemble_profiles(targets, customers, identifier_rows, record_rows, merged, histories)

    def _list_customers(self, limit: int, after: str | None) -> list[str]:
        # Keyset pagination on the primary key: a range read from the cursor, never an offset.
        if after is None:
            rows = self._all("SELECT id FROM customers WHERE status = 'active' ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self._all(
                "SELECT id FROM customers WHERE status = 'active' AND id > ? ORDER BY id LIMIT ?", (after, limit)
            )
        return [r[0] for r in rows]

    def _find_by_identifier(self, identifier_uid: str) -> list[str]:
        rows = self._all(
            "SELECT DISTINCT r.customer_id FROM record_identifiers ri JOIN records r ON r.uid = ri.record_uid "
            "WHERE ri.identifier_uid = ? ORDER BY r.customer_id",
            (identifier_uid,),
        )
        return [r[0] for r in rows]

    def _find_by_name(self, first: str | None, last: str | None, limit: int) -> list[str]:
        where, params = [], []
        if first:
            where.append("first_lc = ?")
            params.append(first)
        if last:
            where.append("last_lc = ?")
            params.append(last)
        rows = self._all(
            f"SELECT DISTINCT customer_id FROM records WHERE {' AND '.join(where)} ORDER BY customer_id LIMIT ?",
            [*params, limit],
        )
        return [r[0] for r in rows]

    def _iter_links(self) -> Iterator[tuple[str, str, str]]:
        # A snapshot read: a separate cursor so that the caller may stream while others read.
        with self._lock:
            rows = self._db.execute("SELECT source, key, customer_id FROM records ORDER BY source, key").fetchall()
        yield from rows

    def _candidates(self, keys: list[str], per_key: int) -> list[Candidate]:
        # One range read per key, stopping at per_key (the primary key orders by record uid); the view is
        # filed with the key, so no record is read unless it was filed without one.
        out: list[Candidate] = []
        with self._lock:
            for key in keys:
                for uid, view, data in self._db.execute(
                    "SELECT b.record_uid, b.view, CASE WHEN b.view IS NULL THEN "
                    "(SELECT data FROM records WHERE uid = b.record_uid) END "
                    "FROM record_blocks b WHERE b.key = ? ORDER BY b.record_uid LIMIT ?",
                    (key, per_key),
                ):
                    record = SourceRecord.from_json(loads(data)) if data is not None else None
                    out.append(Candidate(uid, (key,), view, record))
        return out

    def _replace_blocking_keys(self, keys: Mapping[str, Collection[str]], views: Mapping[str, str]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM record_blocks")
            db.executemany(
                "INSERT OR IGNORE INTO record_blocks VALUES (?, ?, ?)",
                [(k, uid, views.get(uid)) for uid, ks in keys.items() for k in ks],
            )

    _REVIEW_COLUMNS = (
        "id, record_uid, candidate_uid, customer_id, match_weight, match_probability, created_at, status, "
        "decided_by, decided_at, reason"
    )

    @staticmethod
    def _review(row: Sequence[Any]) -> ReviewItem:
        rid, rec, cand, cid, w, p, created, status, by, at, reason = row
        decided = datetime.fromisoformat(at) if at else None
        return ReviewItem(rid, rec, cand, cid, w, p, datetime.fromisoformat(created), status, by, decided, reason)

    def _review_items(self, status: str | None, limit: int | None) -> list[ReviewItem]:
        where = "WHERE status = ?" if status else ""
        params: list[Any] = [status] if status else []
        rows = self._all(
            f"SELECT {self._REVIEW_COLUMNS} FROM review_items {where} ORDER BY created_at, id LIMIT ?",
            [*params, -1 if limit is None else limit],
        )
        return [self._review(r) for r in rows]

    def _get_review(self, review_id: str) -> ReviewItem | None:
        rows = self._all(f"SELECT {self._REVIEW_COLUMNS} FROM review_items WHERE id = ?", (review_id,))
        return self._review(rows[0]) if rows else None

    def _decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE review_items SET status = ?, decided_by = ?, decided_at = ?, reason = ? "
                "WHERE id = ? AND status = 'open'",
                (status, by, at.isoformat(), reason, review_id),
            )

    def _rejected_pairs(self, record_uids: list[str]) -> set[frozenset[str]]:
        out: set[frozenset[str]] = set()
        with self._lock:
            for chunk in _chunks(record_uids):
                marks = _marks(len(chunk))
                for a, b in self._db.execute(
                    f"SELECT record_uid, candidate_uid FROM review_items WHERE status = 'rejected' "
                    f"AND (record_uid IN ({marks}) OR candidate_uid IN ({marks}))",
                    [*chunk, *chunk],
                ):
                    out.add(frozenset((a, b)))
        return out

    def _apart(self, record_uids: list[str] | None, customer_ids: list[str] | None) -> list[ApartPair]:
        select = (
            "SELECT a.a, ra.customer_id, a.b, rb.customer_id, a.reason FROM apart a "
            "JOIN records ra ON ra.uid = a.a JOIN records rb ON rb.uid = a.b"
        )
        rows: set[tuple[str, str, str, str, str]] = set()
        with self._lock:
            if record_uids is None:
                rows.update(self._db.execute(select))
            else:
                uids = set(record_uids)
                for chunk in _chunks(customer_ids or []):
                    uids.update(
                        r[0]
                        for r in self._db.execute(
                            f"SELECT uid FROM records WHERE customer_id IN ({_marks(len(chunk))})", chunk
                        )
                    )
                for chunk in _chunks(sorted(uids)):
                    marks = _marks(len(chunk))
                    rows.update(
                        self._db.execute(f"{select} WHERE a.a IN ({marks}) OR a.b IN ({marks})", [*chunk, *chunk])
                    )
        return [ApartPair(a, b, reason, ca, cb) for a, ca, b, cb, reason in sorted(rows)]

    def _iter_records(self) -> Iterator[tuple[SourceRecord, str]]:
        with self._lock:
            rows = self._db.execute("SELECT data, customer_id FROM records ORDER BY uid").fetchall()
        for data, cid in rows:
            yield SourceRecord.from_json(loads(data)), cid

    def _history(self, customer_id: str) -> list[HistoryEvent]:
        return self._histories([customer_id])[customer_id]

    def _histories(self, customer_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Each customer's merges and splits (either side), oldest first: one read a chunk of 900 ids."""
        rows: dict[tuple[int, int], tuple[str, str, str, str, str]] = {}  # (kind, seq): an event found once
        with self._lock:
            for chunk in _chunks(customer_ids):
                marks = _marks(len(chunk))
                for kind, seq, one, other, records, at, ev in self._db.execute(
                    "SELECT 0, seq, survivor, merged, records, at, evidence FROM merges "
                    f"WHERE survivor IN ({marks}) OR merged IN ({marks}) "
                    "UNION ALL SELECT 1, seq, source, new, records, at, evidence FROM splits "
                    f"WHERE source IN ({marks}) OR new IN ({marks})",
                    [*chunk, *chunk, *chunk, *chunk],
                ):
                    rows[(kind, seq)] = (one, other, records, at, ev)
        wanted = set(customer_ids)
        out: dict[str, list[HistoryEvent]] = {cid: [] for cid in customer_ids}
        for (kind, _), (one, other, records, at, ev) in sorted(rows.items(), key=lambda kv: (kv[1][3], *kv[0])):
            evidence = Evidence.from_json(loads(ev))
            recs = tuple(loads(records))
            when = datetime.fromisoformat(at)
            event: HistoryEvent = (
                MergeEvent(one, other, when, evidence, recs)
                if kind == 0
                else SplitEvent(one, other, recs, when, evidence)
            )
            for cid in {one, other} & wanted:  # a set: an event of a customer with itself counts once
                out[cid].append(event)
        return out

    def _seen_events(self, event_ids: list[str]) -> set[str]:
        out: set[str] = set()
        for chunk in _chunks(event_ids):
            out.update(r[0] for r in self._all(f"SELECT id FROM events WHERE id IN ({_marks(len(chunk))})", chunk))
        return out

    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]:
        where, params = "", []
        if before is not None:
            where += " AND (e.occurred_at < ? OR (e.occurred_at = ? AND e.id < ?))"
            params += [before[0], before[0], before[1]]
        if types is not None:
            where += f" AND e.type IN ({_marks(len(types))})"
            params += types
        rows = self._all(
            "SELECT e.id, e.type, e.occurred_at, e.data, e.record_uid FROM records r "
            f"JOIN events e ON e.record_uid = r.uid WHERE r.customer_id = ?{where} "
            "ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?",
            [customer_id, *params, limit],
        )
        return [StoredEvent(i, t, _parse_event_time(at), d, r) for i, t, at, d, r in rows]

    def _add_dead_letters(self, letters: list[DeadLetter]) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                [(d.id, d.received_at.isoformat(), d.source, d.reason, d.payload, d.status) for d in letters],
            )

    @staticmethod
    def _letter(row: Sequence[Any]) -> DeadLetter:
        lid, at, source, reason, payload, status = row
        return DeadLetter(lid, datetime.fromisoformat(at), reason, payload, source, status)

    def _dead_letters(self, status: str | None, limit: int | None) -> list[DeadLetter]:
        where = "WHERE status = ?" if status else ""
        rows = self._all(
            f"SELECT id, received_at, source, reason, payload, status FROM dead_letters {where} "
            "ORDER BY received_at, id LIMIT ?",
            [*([status] if status else []), -1 if limit is None else limit],
        )
        return [self._letter(r) for r in rows]

    def _get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        rows = self._all(
            "SELECT id, received_at, source, reason, payload, status FROM dead_letters WHERE id = ?", (letter_id,)
        )
        return self._letter(rows[0]) if rows else None

    def _mark_replayed(self, letter_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE dead_letters SET status = 'replayed' WHERE id = ?", (letter_id,))

    def _flagged(self) -> list[tuple[Identifier, str]]:
        rows = self._all("SELECT kind, value, flag_reason FROM identifiers WHERE flagged = 1 ORDER BY uid")
        return [(Identifier(k, v), reason or "") for k, v, reason in rows]

    def _stats(self) -> StoreStats:
        with self._lock:
            q = self._db.execute
            return StoreStats(
                records=q("SELECT count(*) FROM records").fetchone()[0],
                customers=q("SELECT count(*) FROM customers WHERE status = 'active'").fetchone()[0],
                merged_customers=q("SELECT count(*) FROM customers WHERE status = 'merged'").fetchone()[0],
                identifiers=q("SELECT count(*) FROM identifiers").fetchone()[0],
                flagged_identifiers=q("SELECT count(*) FROM identifiers WHERE flagged = 1").fetchone()[0],
            )

    def _ping(self) -> None:
        self._all("SELECT 1")

    # -- writes ----------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, all of it or none; inside an open one (``exclusive()``), that one."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            # BEGIN IMMEDIATE takes SQLite's write lock: other processes' writers wait (up to the timeout).
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailableError(
                    f"embedded store: no write lock within {self.config.lock_timeout:g} s "
                    f"(another process is writing to {self.config.path}): {exc}"
                ) from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _reset(self) -> None:
        with self._transaction() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._transaction():
            yield

    def _apply(self, changes: ChangeSet) -> None:
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO identifiers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(uid) DO UPDATE SET "
                "joined = excluded.joined, flagged = excluded.flagged, flag_reason = excluded.flag_reason",
                [
                    (
                        s.identifier.uid,
                        s.identifier.kind,
                        s.identifier.value,
                        s.joined,
                        int(s.flagged),
                        s.flag_reason,
                    )
                    for s in changes.identifiers
                ],
            )
            db.executemany(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
                [
                    (c.id, c.created_at.isoformat(), c.status, c.merged_into, golden_to_json(c.golden))
                    for c in changes.new_customers
                ],
            )
            final = changes.final_targets()
            db.executemany(
                "UPDATE records SET customer_id = ? WHERE customer_id = ?",
                [(t, m) for m, t in final.items()],
            )
            db.executemany(
                "UPDATE customers SET status = 'merged', merged_into = ?, golden = '{}' WHERE id = ?",
                [(t, m) for m, t in final.items()],
            )
            db.executemany(
                "UPDATE customers SET merged_into = ? WHERE merged_into = ?",
                [(t, m) for m, t in final.items()],
            )
            db.executemany(
                "INSERT INTO merges (survivor, merged, at, evidence, records) VALUES (?, ?, ?, ?, ?)",
                [
                    (m.survivor, m.merged, m.at.isoformat(), dumps(m.evidence.to_json()), dumps(list(m.records)))
                    for m in changes.merges
                ],
            )
            uids = [w.record.uid for w in changes.records if w.update]
            for chunk in _chunks(uids):
                db.execute(f"DELETE FROM record_identifiers WHERE record_uid IN ({_marks(len(chunk))})", chunk)
                db.execute(f"DELETE FROM record_blocks WHERE record_uid IN ({_marks(len(chunk))})", chunk)
            db.executemany(
                "INSERT OR IGNORE INTO record_blocks VALUES (?, ?, ?)",
                [(k, w.record.uid, w.match_view) for w in changes.records for k in w.blocking_keys],
            )
            db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        w.record.uid,
                        w.record.source,
                        w.record.key,
                        w.document_json(),
                        w.content_hash,
                        w.customer_id,
                        dumps(w.evidence.to_json()),
                        w.record.first_name.casefold() if w.record.first_name else None,
                        w.record.last_name.casefold() if w.record.last_name else None,
                    )
                    for w in changes.records
                ],
            )
            db.executemany(
                "INSERT OR IGNORE INTO record_identifiers VALUES (?, ?)",
                [(w.record.uid, i.uid) for w in changes.records for i in w.identifiers],
            )
            db.executemany(
                "UPDATE records SET customer_id = ?, evidence = ? WHERE uid = ?",
                [(m.customer_id, dumps(m.evidence.to_json()), m.record_uid) for m in changes.moves],
            )
            db.executemany(
                "INSERT INTO splits (source, new, records, at, evidence) VALUES (?, ?, ?, ?, ?)",
                [
                    (e.source, e.new, dumps(list(e.records)), e.at.isoformat(), dumps(e.evidence.to_json()))
                    for e in changes.splits
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO apart VALUES (?, ?, ?)",
                [(*sorted((p.a, p.b)), p.reason) for p in changes.apart],
            )
            db.executemany(
                "INSERT INTO review_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.id,
                        r.record_uid,
                        r.candidate_uid,
                        r.customer_id,
                        r.match_weight,
                        r.match_probability,
                        r.created_at.isoformat(),
                        r.status,
                        r.decided_by,
                        r.decided_at.isoformat() if r.decided_at else None,
                        r.reason,
                    )
                    for r in changes.reviews
                ],
            )
            db.executemany(
                "UPDATE customers SET golden = ? WHERE id = ?",
                [(golden_to_json(g), cid) for cid, g in changes.goldens.items()],
            )
            # Idempotent by event id: an event applied before changes nothing.
            db.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)",
                [(e.id, e.type, event_time(e.occurred_at), e.data, e.record_uid) for e in changes.events],
            )
