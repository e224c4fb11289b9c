"""The embedded backend's consent domain: the append-only ``consents`` table, read through records."""

from __future__ import annotations

import sqlite3

from ..codecs import consent_from_json, consent_from_row, consent_rows
from ..consent import ConsentEvent
from ..ports.consent import ConsentEntry, missing_records, new_entries
from .connection import EmbeddedBase, chunks, marks

# AUTOINCREMENT: a sequence number is never reused, not even after reset, so append order is seq order.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS consents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, record_uid TEXT NOT NULL,
    chain_id TEXT NOT NULL, event TEXT NOT NULL, receipt TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS consents_record ON consents(record_uid, seq);
CREATE INDEX IF NOT EXISTS consents_chain ON consents(chain_id, seq);
CREATE INDEX IF NOT EXISTS consents_topic
    ON consents(record_uid, json_extract(event, '$.purpose'), json_extract(event, '$.channel'), seq);
"""


class EmbeddedConsent(EmbeddedBase):
    """The consent ledger in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "consents"]

    def _append_consent(self, entries: list[ConsentEntry]) -> list[str]:
        # BEGIN IMMEDIATE (or the open exclusive() transaction): checks and writes under the write lock.
        with self._transaction() as db:
            uids = sorted({e.event.record_uid for e in entries})
            found: set[str] = set()
            for chunk in chunks(uids):
                found.update(
                    r[0] for r in db.execute(f"SELECT uid FROM records WHERE uid IN ({marks(len(chunk))})", chunk)
                )
            missing_records(entries, found)
            fresh = new_entries(entries, self._get_consents([e.event.id for e in entries]))
            db.executemany(
                "INSERT INTO consents (event_id, record_uid, chain_id, event, receipt) VALUES (?, ?, ?, ?, ?)",
                consent_rows(fresh),
            )
        return [e.event.id for e in fresh]

    def _consents_of(self, customer_ids: list[str], topic: tuple[str, str] | None) -> dict[str, list[ConsentEvent]]:
        out: dict[str, list[ConsentEvent]] = {}
        for chunk in chunks(customer_ids):
            sql = (
                "SELECT r.customer_id, c.event FROM records r JOIN consents c ON c.record_uid = r.uid "
                f"WHERE r.customer_id IN ({marks(len(chunk))})"
            )
            params: tuple[str, ...] = tuple(chunk)
            if topic is not None:  # decoding is the cost: filter in SQL
                sql += " AND json_extract(c.event, '$.purpose') = ? AND json_extract(c.event, '$.channel') = ?"
                params += topic
            for cid, event in self._all(sql + " ORDER BY c.seq", params):
                out.setdefault(cid, []).append(consent_from_json(event))
        return out

    def _consent_chain(self, chain_id: str) -> list[tuple[str, str]]:
        rows = self._all("SELECT event_id, receipt FROM consents WHERE chain_id = ? ORDER BY seq", (chain_id,))
        return [(eid, receipt) for eid, receipt in rows]

    def _last_receipt(self, chain_id: str) -> str | None:
        rows = self._all("SELECT receipt FROM consents WHERE chain_id = ? ORDER BY seq DESC LIMIT 1", (chain_id,))
        return str(rows[0][0]) if rows else None

    def _consent_chain_ids(self) -> list[str]:
        return [r[0] for r in self._all("SELECT DISTINCT chain_id FROM consents ORDER BY chain_id")]

    def _get_consents(self, event_ids: list[str]) -> dict[str, ConsentEntry]:
        out: dict[str, ConsentEntry] = {}
        for chunk in chunks(event_ids):
            for eid, event, receipt, chain in self._all(
                f"SELECT event_id, event, receipt, chain_id FROM consents WHERE event_id IN ({marks(len(chunk))})",
                chunk,
            ):
                out[eid] = consent_from_row(event, receipt, chain)
        return out
