"""The neo4j backend's dead-letter domain: ``(:DeadLetter)`` nodes."""

from __future__ import annotations

from typing import Any

from neo4j import ManagedTransaction

from ..codecs import LETTER_COLUMNS, as_dicts, letter_from_row, letter_rows
from ..models import DeadLetter
from .connection import Neo4jBase, unwind

_FIELDS = (
    "d.id AS id, d.received_at AS received_at, d.source AS source, d.reason AS reason, d.payload AS payload, "
    "d.status AS status, d.sender AS sender"
)


def _letter(row: dict[str, Any]) -> DeadLetter:
    return letter_from_row(*row.values())


class Neo4jDeadLetters(Neo4jBase):
    """Dead letters as nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_dead_letter_id IF NOT EXISTS FOR (d:DeadLetter) REQUIRE d.id IS UNIQUE",
            "CREATE INDEX c360_dead_letter_status IF NOT EXISTS FOR (d:DeadLetter) ON (d.status)",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "DeadLetter"]

    def _add_dead_letters(self, letters: list[DeadLetter]) -> None:
        def work(tx: ManagedTransaction) -> None:
            unwind(
                tx,
                "UNWIND $rows AS row MERGE (d:DeadLetter {id: row.id}) ON CREATE SET d.received_at = row.received_at, "
                "d.source = row.source, d.reason = row.reason, d.payload = row.payload, d.status = row.status, "
                "d.sender = row.sender",
                as_dicts(LETTER_COLUMNS, letter_rows(letters)),
            )

        with self._session() as s:
            s.execute_write(work)

    def _dead_letters(self, status: str | None, limit: int | None, source: str | None) -> list[DeadLetter]:
        conditions = [c for c, v in (("d.status = $status", status), ("d.source = $source", source)) if v is not None]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        cap = "" if limit is None else "LIMIT $limit"
        rows = self._read(
            f"MATCH (d:DeadLetter) {where} RETURN {_FIELDS} ORDER BY received_at, id {cap}",
            status=status,
            source=source,
            limit=limit,
        )
        return [_letter(r) for r in rows]

    def _get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        rows = self._read(f"MATCH (d:DeadLetter {{id: $id}}) RETURN {_FIELDS}", id=letter_id)
        return _letter(rows[0]) if rows else None

    def _mark_replayed(self, letter_id: str) -> None:
        with self._session() as s:
            s.run("MATCH (d:DeadLetter {id: $id}) SET d.status = 'replayed'", id=letter_id).consume()
