"""The embedded backend's outbox domain: the ``outbox`` table.

Every write runs under SQLite's write lock (``BEGIN IMMEDIATE``), so a claim's read and its update are
one step for every process on the file: two workers never lease one message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..outbox import OutboxItem, OutboxMessage, message_to_json
from ..ports.outbox import OUTBOX_COLUMNS, Change, Claim, item_from_row, new_messages, state_values
from .connection import EmbeddedBase, chunks, marks

# ``due``: when a pending or sending message can next be claimed (NULL once sent or dead).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY, channel TEXT NOT NULL, message TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, next_attempt_at TEXT, due TEXT, last_error TEXT, lease_owner TEXT,
    lease_until TEXT, sent_at TEXT, provider_id TEXT);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(due, id) WHERE due IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(status, id);
"""

_COLUMNS = ", ".join(OUTBOX_COLUMNS)
_STATE = ("status", "attempts", "next_attempt_at", "due", "last_error", "lease_owner", "lease_until", "sent_at")
_UPDATE = f"UPDATE outbox SET {', '.join(f'{c} = :{c}' for c in (*_STATE, 'provider_id'))} WHERE id = :id"


def _items(rows: Sequence[Sequence[Any]]) -> list[OutboxItem]:
    return [item_from_row(dict(zip(OUTBOX_COLUMNS, r, strict=True))) for r in rows]


class EmbeddedOutbox(EmbeddedBase):
    """The notification outbox in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "outbox"]

    def _write_states(self, db: sqlite3.Connection, items: list[OutboxItem]) -> None:
        db.executemany(_UPDATE, [{"id": i.id, **state_values(i)} for i in items])

    def _enqueue(self, messages: list[OutboxMessage]) -> list[str]:
        with self._transaction() as db:
            fresh = new_messages(messages, self._outbox_items([m.id for m in messages]))
            db.executemany(
                f"INSERT INTO outbox ({_COLUMNS}) VALUES ({marks(len(OUTBOX_COLUMNS))})",
                [(i.id, i.message.channel, message_to_json(i.message), *state_values(i).values()) for i in fresh],
            )
        return [i.id for i in fresh]

    def _claim(self, now: str, limit: int, channels: list[str], claim: Claim) -> list[OutboxItem]:
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE due IS NOT NULL AND due <= ? "
                f"AND channel IN ({marks(len(channels))}) ORDER BY due, id LIMIT ?",
                (now, *channels, limit),
            ).fetchall()
            taken = claim(_items(rows))
            self._write_states(db, taken)
        return taken

    def _change(self, ids: list[str], change: Change) -> list[OutboxItem]:
        with self._transaction() as db:
            changed = change(self._outbox_items(ids))
            self._write_states(db, changed)
        return changed

    def _outbox_items(self, ids: list[str]) -> dict[str, OutboxItem]:
        out: dict[str, OutboxItem] = {}
        for chunk in chunks(ids):
            rows = self._all(f"SELECT {_COLUMNS} FROM outbox WHERE id IN ({marks(len(chunk))})", chunk)
            out.update((i.id, i) for i in _items(rows))
        return out

    def _outbox_counts(self) -> dict[str, int]:
        return {s: int(n) for s, n in self._all("SELECT status, count(*) FROM outbox GROUP BY status")}

    def _outbox_list(self, status: str, after: str | None, limit: int) -> list[OutboxItem]:
        rows = self._all(
            f"SELECT {_COLUMNS} FROM outbox WHERE status = ? AND id > ? ORDER BY id LIMIT ?",
            (status, after or "", limit),
        )
        return _items(rows)
