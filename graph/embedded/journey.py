"""The embedded backend's journey domain: the ``events`` table."""

from __future__ import annotations

import sqlite3

from ..codecs import event_rows, parse_event_time
from ..models import ChangeSet, StoredEvent
from .connection import EmbeddedBase, chunks, marks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, occurred_at TEXT NOT NULL, data TEXT NOT NULL,
    record_uid TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_record ON events(record_uid, occurred_at, id) WHERE record_uid IS NOT NULL;
"""


class EmbeddedJourney(EmbeddedBase):
    """Journey events in SQLite, read through the records their customer holds."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _write(self, db: sqlite3.Connection, changes: ChangeSet) -> None:
        # Idempotent by event id: an event applied before changes nothing.
        db.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)", event_rows(changes))

        super()._write(db, changes)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "events"]

    def _seen_events(self, event_ids: list[str]) -> set[str]:
        out: set[str] = set()
        for chunk in chunks(event_ids):
            out.update(r[0] for r in self._all(f"SELECT id FROM events WHERE id IN ({marks(len(chunk))})", chunk))
        return out

    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]:
        where, params = "", []
        if before is not None:
            where += " AND (e.occurred_at < ? OR (e.occurred_at = ? AND e.id < ?))"
            params += [before[0], before[0], before[1]]
        if types is not None:
            where += f" AND e.type IN ({marks(len(types))})"
            params += types
        rows = self._all(
            "SELECT e.id, e.type, e.occurred_at, e.data, e.record_uid FROM records r "
            f"JOIN events e ON e.record_uid = r.uid WHERE r.customer_id = ?{where} "
            "ORDER BY e.occurred_at DESC, e.id DESC LIMIT ?",
            [customer_id, *params, limit],
        )
        return [StoredEvent(i, t, parse_event_time(at), d, r) for i, t, at, d, r in rows]
