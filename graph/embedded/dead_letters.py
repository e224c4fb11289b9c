"""The embedded backend's dead-letter domain: the ``dead_letters`` table."""

from __future__ import annotations

import sqlite3

from ..codecs import letter_from_row, letter_rows
from ..models import DeadLetter
from .connection import EmbeddedBase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, received_at TEXT NOT NULL, source TEXT, reason TEXT NOT NULL, payload TEXT NOT NULL,
    status TEXT NOT NULL, sender TEXT);
CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters(status, received_at);
"""

_COLUMNS = "id, received_at, source, reason, payload, status, sender"


class EmbeddedDeadLetters(EmbeddedBase):
    """Dead letters in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(dead_letters)")}
        if "sender" not in columns:  # before schema 4 letters did not say who sent them: their sender is NULL
            db.execute("ALTER TABLE dead_letters ADD COLUMN sender TEXT")

    def _tables(self) -> list[str]:
        return [*super()._tables(), "dead_letters"]

    def _add_dead_letters(self, letters: list[DeadLetter]) -> None:
        with self._transaction() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO dead_letters ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                letter_rows(letters),
            )

    def _dead_letters(self, status: str | None, limit: int | None, source: str | None) -> list[DeadLetter]:
        conditions = [c for c, v in (("status = ?", status), ("source = ?", source)) if v is not None]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._all(
            f"SELECT {_COLUMNS} FROM dead_letters {where} ORDER BY received_at, id LIMIT ?",
            [*(v for v in (status, source) if v is not None), -1 if limit is None else limit],
        )
        return [letter_from_row(*r) for r in rows]

    def _get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        rows = self._all(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,))
        return letter_from_row(*rows[0]) if rows else None

    def _mark_replayed(self, letter_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE dead_letters SET status = 'replayed' WHERE id = ?", (letter_id,))
