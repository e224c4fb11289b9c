"""The embedded backend's review domain: the ``review_items`` table."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from ..codecs import review_from_row, review_rows
from ..models import ChangeSet, ReviewItem
from .connection import EmbeddedBase, chunks, marks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY, record_uid TEXT NOT NULL, candidate_uid TEXT NOT NULL, customer_id TEXT NOT NULL,
    match_weight REAL NOT NULL, match_probability REAL NOT NULL, created_at TEXT NOT NULL,
    status TEXT NOT NULL, decided_by TEXT, decided_at TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS review_items_status ON review_items(status, created_at);
CREATE INDEX IF NOT EXISTS review_items_record ON review_items(record_uid);
CREATE INDEX IF NOT EXISTS review_items_candidate ON review_items(candidate_uid);
"""

_COLUMNS = (
    "id, record_uid, candidate_uid, customer_id, match_weight, match_probability, created_at, status, "
    "decided_by, decided_at, reason"
)


class EmbeddedReview(EmbeddedBase):
    """Review items in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _write(self, db: sqlite3.Connection, changes: ChangeSet) -> None:
        db.executemany(
            "INSERT INTO review_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            review_rows(changes.reviews),
        )

        super()._write(db, changes)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "review_items"]

    def _review_items(self, status: str | None, limit: int | None) -> list[ReviewItem]:
        where = "WHERE status = ?" if status else ""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM review_items {where} ORDER BY created_at, id LIMIT ?",
            [*([status] if status else []), -1 if limit is None else limit],
        )
        return [review_from_row(*r) for r in rows]

    def _get_review(self, review_id: str) -> ReviewItem | None:
        rows = self._all(f"SELECT {_COLUMNS} FROM review_items WHERE id = ?", (review_id,))
        return review_from_row(*rows[0]) if rows else None

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
            for chunk in chunks(record_uids):
                m = marks(len(chunk))
                for a, b in self._db.execute(
                    f"SELECT record_uid, candidate_uid FROM review_items WHERE status = 'rejected' "
                    f"AND (record_uid IN ({m}) OR candidate_uid IN ({m}))",
                    [*chunk, *chunk],
                ):
                    out.add(frozenset((a, b)))
        return out
