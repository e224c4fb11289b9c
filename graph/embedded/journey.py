"""The embedded backend's journey domain: the ``events`` table."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..codecs import event_rows, parse_event_time
from ..models import ChangeSet, StoredEvent
from ..ports.journey import ChangedEvent, moved_records
from .connection import EmbeddedBase, chunks, marks
from .identity import next_seq

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, occurred_at TEXT NOT NULL, data TEXT NOT NULL,
    record_uid TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_record ON events(record_uid, occurred_at, id) WHERE record_uid IS NOT NULL;
"""
_COLUMNS = "id, type, occurred_at, data, record_uid"


class EmbeddedJourney(EmbeddedBase):
    """Journey events in SQLite, read through the records their customer holds."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)
        if "seq" not in {row[1] for row in db.execute("PRAGMA table_info(events)")}:
            # the change feed: older files' events all read as sequence 0
            db.execute("ALTER TABLE events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0")
        db.execute("CREATE INDEX IF NOT EXISTS events_seq ON events(seq, id)")

    def _write(self, db: sqlite3.Connection, changes: ChangeSet) -> None:
        # Idempotent by event id: an event applied before changes nothing.
        rows = event_rows(changes)
        moved = moved_records(changes)
        if rows or moved:
            seq = next_seq(db, "event_seq")
            db.executemany(f"INSERT OR IGNORE INTO events ({_COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, {seq})", rows)
            for chunk in chunks(moved):  # their events come again in the feed, with their new customer
                db.execute(f"UPDATE events SET seq = ? WHERE record_uid IN ({marks(len(chunk))})", [seq, *chunk])

        super()._write(db, changes)

    def _records_relinked(self, tx: Any, record_uids: list[str]) -> None:
        seq = next_seq(tx, "event_seq")
        for chunk in chunks(record_uids):
            tx.execute(f"UPDATE events SET seq = ? WHERE record_uid IN ({marks(len(chunk))})", [seq, *chunk])

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

    def _event_changes(self, after: tuple[int, str], limit: int, types: list[str] | None) -> list[ChangedEvent]:
        where, params = "", [after[0], after[1]]
        if types is not None:
            where = f" AND e.type IN ({marks(len(types))})"
            params += types
        rows = self._all(
            "SELECT e.seq, e.id, e.type, e.occurred_at, e.data, e.record_uid, r.customer_id FROM events e "
            f"LEFT JOIN records r ON r.uid = e.record_uid WHERE (e.seq, e.id) > (?, ?){where} "
            "ORDER BY e.seq, e.id LIMIT ?",
            [*params, limit],
        )
        return [ChangedEvent(s, StoredEvent(i, t, parse_event_time(at), d, r), c) for s, i, t, at, d, r, c in rows]
