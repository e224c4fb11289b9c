"""The embedded backend's blocking-key domain: the ``record_blocks`` table (key, record, view)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping

from ..codecs import loads
from ..models import ChangeSet, SourceRecord
from ..reads import Candidate
from .connection import EmbeddedBase, chunks, marks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS record_blocks (
    key TEXT NOT NULL, record_uid TEXT NOT NULL, view TEXT, PRIMARY KEY (key, record_uid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_blocks_record ON record_blocks(record_uid);
"""


class EmbeddedBlocking(EmbeddedBase):
    """Blocking keys in SQLite, each filed with its record's comparison view."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(record_blocks)")}
        if "view" not in columns:  # before schema 3 candidates were read from their records
            db.execute("ALTER TABLE record_blocks ADD COLUMN view TEXT")

    def _write(self, db: sqlite3.Connection, changes: ChangeSet) -> None:
        for chunk in chunks([w.record.uid for w in changes.records if w.update]):
            db.execute(f"DELETE FROM record_blocks WHERE record_uid IN ({marks(len(chunk))})", chunk)
        db.executemany(
            "INSERT OR IGNORE INTO record_blocks VALUES (?, ?, ?)",
            [(k, w.record.uid, w.match_view) for w in changes.records for k in w.blocking_keys],
        )

        super()._write(db, changes)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "record_blocks"]

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
