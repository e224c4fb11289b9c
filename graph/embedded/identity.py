"""The embedded backend's identity domain: customers, records, identifiers, merges, splits, apart pairs."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

from ..codecs import (
    assemble_profiles,
    customer_from_row,
    customer_rows,
    dumps,
    golden_to_json,
    history_event,
    identifier_rows,
    identifier_state,
    loads,
    merge_rows,
    record_rows,
    split_rows,
)
from ..models import (
    ApartPair,
    ChangeSet,
    Customer,
    Evidence,
    HistoryEvent,
    Identifier,
    IdentifierState,
    Profile,
    SourceRecord,
)
from ..ports.identity import ChangedCustomer, changed_customers
from ..reads import ExistingRecord, Lookup, StoreStats
from .connection import EmbeddedBase, chunks, marks

_SCHEMA = """
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
"""

_CUSTOMER_COLUMNS = "id, created_at, status, merged_into, golden"


def next_seq(db: sqlite3.Connection, name: str) -> int:
    """Take the next number of change sequence ``name`` (kept in ``meta``) inside the open write transaction."""
    row = db.execute(
        "INSERT INTO meta VALUES (?, '1') ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 "
        "RETURNING value",
        (name,),
    ).fetchone()
    return int(row[0])


class EmbeddedIdentity(EmbeddedBase):
    """The identity graph's nodes and links in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)
        if "seq" not in {row[1] for row in db.execute("PRAGMA table_info(customers)")}:
            # the change feed: older files' customers all read as sequence 0
            db.execute("ALTER TABLE customers ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
            db.execute("ALTER TABLE customers ADD COLUMN changed_at TEXT")
        db.execute("CREATE INDEX IF NOT EXISTS customers_seq ON customers(seq, id)")
        columns = {row[1] for row in db.execute("PRAGMA table_info(merges)")}
        if "records" not in columns:  # a schema-1 file: merges did not keep their records
            db.execute("ALTER TABLE merges ADD COLUMN records TEXT NOT NULL DEFAULT '[]'")

    def _tables(self) -> list[str]:
        return [
            *super()._tables(),
            "customers",
            "records",
            "identifiers",
            "record_identifiers",
            "merges",
            "splits",
            "apart",
        ]

    # -- reads -----------------------------------------------------------------------------------------

    def _lookup(self, record_uids: list[str], identifier_uids: list[str]) -> Lookup:
        records: dict[str, ExistingRecord] = {}
        states: dict[str, IdentifierState] = {}
        bearers: dict[str, dict[str, str]] = defaultdict(dict)
        record_idents: dict[str, list[str]] = defaultdict(list)
        with self._lock:
            for chunk in chunks(record_uids):
                m = marks(len(chunk))
                for ruid, iuid in self._db.execute(
                    f"SELECT record_uid, identifier_uid FROM record_identifiers WHERE record_uid IN ({m})", chunk
                ):
                    record_idents[ruid].append(iuid)
                for uid, h, cid, ev in self._db.execute(
                    f"SELECT uid, hash, customer_id, evidence FROM records WHERE uid IN ({m})", chunk
                ):
                    records[uid] = ExistingRecord(
                        uid, h, cid, Evidence.from_json(loads(ev)), tuple(sorted(record_idents.get(uid, ())))
                    )
            for chunk in chunks(identifier_uids):
                for uid, *state in self._db.execute(
                    f"SELECT uid, kind, value, joined, flagged, flag_reason FROM identifiers "
                    f"WHERE uid IN ({marks(len(chunk))})",
                    chunk,
                ):
                    states[uid] = identifier_state(*state)
            linking = [uid for uid, st in states.items() if not st.flagged]
            for chunk in chunks(linking):
                for iuid, ruid, cid in self._db.execute(
                    f"SELECT ri.identifier_uid, ri.record_uid, r.customer_id FROM record_identifiers ri "
                    f"JOIN records r ON r.uid = ri.record_uid WHERE ri.identifier_uid IN ({marks(len(chunk))})",
                    chunk,
                ):
                    bearers[iuid][ruid] = cid
        return Lookup(records, states, dict(bearers))

    def _records_of(self, customer_ids: list[str]) -> dict[str, list[SourceRecord]]:
        out: dict[str, list[SourceRecord]] = defaultdict(list)
        with self._lock:
            for chunk in chunks(customer_ids):
                for cid, data in self._db.execute(
                    f"SELECT customer_id, data FROM records WHERE customer_id IN ({marks(len(chunk))})",
                    chunk,
                ):
                    out[cid].append(SourceRecord.from_json(loads(data)))
        return dict(out)

    def _resolve_many(self, customer_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        with self._lock:
            for chunk in chunks(customer_ids):
                for cid, status, merged_into in self._db.execute(
                    f"SELECT id, status, merged_into FROM customers WHERE id IN ({marks(len(chunk))})", chunk
                ):
                    active = cid if status == "active" else merged_into  # chains are compressed on merge
                    if active is not None:
                        out[cid] = active
        return out

    def _get_customers(self, customer_ids: list[str]) -> dict[str, Customer]:
        out: dict[str, Customer] = {}
        with self._lock:
            for chunk in chunks(customer_ids):
                for row in self._db.execute(
                    f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE id IN ({marks(len(chunk))})", chunk
                ):
                    out[row[0]] = customer_from_row(*row)
        return out

    def _get_profiles(self, targets: Mapping[str, str]) -> dict[str, Profile]:
        # Four reads a chunk of 900 active ids plus one for their history, whatever the number of ids.
        actives = sorted(set(targets.values()))
        identifier_rows_: dict[str, list[tuple[str, IdentifierState]]] = defaultdict(list)
        record_rows_: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        merged: dict[str, list[str]] = defaultdict(list)
        with self._lock:  # held throughout, so that no writer of this process comes between the reads
            customers = self._get_customers(actives)
            for chunk in chunks(actives):
                m = marks(len(chunk))
                for cid, ruid, *state in self._db.execute(
                    "SELECT r.customer_id, ri.record_uid, i.kind, i.value, i.joined, i.flagged, i.flag_reason "
                    "FROM records r JOIN record_identifiers ri ON ri.record_uid = r.uid "
                    f"JOIN identifiers i ON i.uid = ri.identifier_uid WHERE r.customer_id IN ({m})",
                    chunk,
                ):
                    identifier_rows_[cid].append((ruid, identifier_state(*state)))
                for cid, uid, data, evidence in self._db.execute(
                    f"SELECT customer_id, uid, data, evidence FROM records WHERE customer_id IN ({m}) "
                    "ORDER BY customer_id, uid",
                    chunk,
                ):
                    record_rows_[cid].append((uid, data, evidence))
                for into, mid in self._db.execute(
                    f"SELECT merged_into, id FROM customers WHERE merged_into IN ({m}) ORDER BY merged_into, id",
                    chunk,
                ):
                    merged[into].append(mid)
            histories = self._histories(actives)
        return assemble_profiles(targets, customers, identifier_rows_, record_rows_, merged, histories)

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
                for chunk in chunks(customer_ids or []):
                    uids.update(
                        r[0]
                        for r in self._db.execute(
                            f"SELECT uid FROM records WHERE customer_id IN ({marks(len(chunk))})", chunk
                        )
                    )
                for chunk in chunks(sorted(uids)):
                    m = marks(len(chunk))
                    rows.update(self._db.execute(f"{select} WHERE a.a IN ({m}) OR a.b IN ({m})", [*chunk, *chunk]))
        return [ApartPair(a, b, reason, ca, cb) for a, ca, b, cb, reason in sorted(rows)]

    def _iter_records(self) -> Iterator[tuple[SourceRecord, str]]:
        with self._lock:
            rows = self._db.execute("SELECT data, customer_id FROM records ORDER BY uid").fetchall()
        for data, cid in rows:
            yield SourceRecord.from_json(loads(data)), cid

    def _histories(self, customer_ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """Each customer's merges and splits (either side), oldest first: one read a chunk of 900 ids."""
        rows: dict[tuple[int, int], tuple[str, str, str, str, str]] = {}  # (kind, seq): an event found once
        with self._lock:
            for chunk in chunks(customer_ids):
                m = marks(len(chunk))
                for kind, seq, one, other, records, at, ev in self._db.execute(
                    "SELECT 0, seq, survivor, merged, records, at, evidence FROM merges "
                    f"WHERE survivor IN ({m}) OR merged IN ({m}) "
                    "UNION ALL SELECT 1, seq, source, new, records, at, evidence FROM splits "
                    f"WHERE source IN ({m}) OR new IN ({m})",
                    [*chunk, *chunk, *chunk, *chunk],
                ):
                    rows[(kind, seq)] = (one, other, records, at, ev)
        wanted = set(customer_ids)
        out: dict[str, list[HistoryEvent]] = {cid: [] for cid in customer_ids}
        for (kind, _), (one, other, records, at, ev) in sorted(rows.items(), key=lambda kv: (kv[1][3], *kv[0])):
            event = history_event(kind, one, other, records, at, ev)
            for cid in {one, other} & wanted:  # a set: an event of a customer with itself counts once
                out[cid].append(event)
        return out

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

    # -- writes ----------------------------------------------------------------------------------------

    def _write(self, db: sqlite3.Connection, changes: ChangeSet) -> None:
        db.executemany(
            "INSERT INTO identifiers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(uid) "
            "DO UPDATE SET joined = excluded.joined, flagged = excluded.flagged, flag_reason = excluded.flag_reason",
            identifier_rows(changes),
        )
        db.executemany(f"INSERT INTO customers ({_CUSTOMER_COLUMNS}) VALUES (?, ?, ?, ?, ?)", customer_rows(changes))
        final = [(t, m) for m, t in changes.final_targets().items()]
        db.executemany("UPDATE records SET customer_id = ? WHERE customer_id = ?", final)
        db.executemany("UPDATE customers SET status = 'merged', merged_into = ?, golden = '{}' WHERE id = ?", final)
        db.executemany("UPDATE customers SET merged_into = ? WHERE merged_into = ?", final)
        db.executemany(
            "INSERT INTO merges (survivor, merged, at, evidence, records) VALUES (?, ?, ?, ?, ?)",
            merge_rows(changes),
        )
        updates = {w.record.uid: w.customer_id for w in changes.records if w.update}
        relinked = []  # updated records that change customer (after the merges above)
        for chunk in chunks(list(updates)):
            rows = db.execute(f"SELECT uid, customer_id FROM records WHERE uid IN ({marks(len(chunk))})", chunk)
            relinked += [uid for uid, cid in rows if updates[uid] != cid]
        for chunk in chunks(list(updates)):
            db.execute(f"DELETE FROM record_identifiers WHERE record_uid IN ({marks(len(chunk))})", chunk)
        db.executemany(
            # The view is the blocking domain's (record_blocks), the last field of the row.
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row[:9] for row in record_rows(changes)],
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
            split_rows(changes),
        )
        db.executemany(
            "INSERT OR REPLACE INTO apart VALUES (?, ?, ?)", [(*sorted((p.a, p.b)), p.reason) for p in changes.apart]
        )
        db.executemany(
            "UPDATE customers SET golden = ? WHERE id = ?",
            [(golden_to_json(g), cid) for cid, g in changes.goldens.items()],
        )
        if relinked:
            self._records_relinked(db, sorted(relinked))
        if touched := changed_customers(changes):
            seq = next_seq(db, "customer_seq")
            at = datetime.now(UTC).isoformat()
            for chunk in chunks(touched):
                db.execute(
                    f"UPDATE customers SET seq = ?, changed_at = ? WHERE id IN ({marks(len(chunk))})", [seq, at, *chunk]
                )
        super()._write(db, changes)

    def _customer_changes(self, after: tuple[int, str], limit: int) -> list[ChangedCustomer]:
        rows = self._all(
            f"SELECT seq, changed_at, {_CUSTOMER_COLUMNS} FROM customers WHERE (seq, id) > (?, ?) "
            "ORDER BY seq, id LIMIT ?",
            (after[0], after[1], limit),
        )
        return [
            ChangedCustomer(seq, datetime.fromisoformat(at) if at else None, customer_from_row(*rest))
            for seq, at, *rest in rows
        ]
