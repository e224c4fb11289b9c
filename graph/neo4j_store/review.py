"""The neo4j backend's review domain: ``(:Review)`` nodes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from neo4j import ManagedTransaction

from ..codecs import REVIEW_COLUMNS, as_dicts, review_from_row, review_rows
from ..models import ChangeSet, ReviewItem
from .connection import Neo4jBase, unwind

_FIELDS = (
    "v.id AS id, v.record_uid AS record_uid, v.candidate_uid AS candidate_uid, v.customer_id AS customer_id, "
    "v.match_weight AS match_weight, v.match_probability AS match_probability, v.created_at AS created_at, "
    "v.status AS status, v.decided_by AS decided_by, v.decided_at AS decided_at, v.reason AS reason"
)


def _review(row: dict[str, Any]) -> ReviewItem:
    return review_from_row(*row.values())


class Neo4jReview(Neo4jBase):
    """Review items as nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_review_id IF NOT EXISTS FOR (v:Review) REQUIRE v.id IS UNIQUE",
            "CREATE INDEX c360_review_status IF NOT EXISTS FOR (v:Review) ON (v.status)",
            "CREATE INDEX c360_review_record IF NOT EXISTS FOR (v:Review) ON (v.record_uid)",
            "CREATE INDEX c360_review_candidate IF NOT EXISTS FOR (v:Review) ON (v.candidate_uid)",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Review"]

    def _write(self, tx: ManagedTransaction, changes: ChangeSet) -> None:
        unwind(
            tx,
            "UNWIND $rows AS row CREATE (v:Review {id: row.id, record_uid: row.record_uid, "
            "candidate_uid: row.candidate_uid, customer_id: row.customer_id, match_weight: row.match_weight, "
            "match_probability: row.match_probability, created_at: row.created_at, status: row.status})",
            as_dicts(REVIEW_COLUMNS, review_rows(changes.reviews)),
        )
        super()._write(tx, changes)

    def _review_items(self, status: str | None, limit: int | None) -> list[ReviewItem]:
        where = "WHERE v.status = $status" if status else ""
        cap = "" if limit is None else "LIMIT $limit"
        rows = self._read(
            f"MATCH (v:Review) {where} RETURN {_FIELDS} ORDER BY created_at, id {cap}", status=status, limit=limit
        )
        return [_review(r) for r in rows]

    def _get_review(self, review_id: str) -> ReviewItem | None:
        rows = self._read(f"MATCH (v:Review {{id: $id}}) RETURN {_FIELDS}", id=review_id)
        return _review(rows[0]) if rows else None

    def _decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> None:
        with self._session() as s:
            s.run(
                "MATCH (v:Review {id: $id}) WHERE v.status = 'open' "
                "SET v.status = $status, v.decided_by = $by, v.decided_at = $at, v.reason = $reason",
                id=review_id,
                status=status,
                by=by,
                at=at.isoformat(),
                reason=reason,
            ).consume()

    def _rejected_pairs(self, record_uids: list[str]) -> set[frozenset[str]]:
        rows = self._read(
            "MATCH (v:Review) WHERE v.status = 'rejected' AND (v.record_uid IN $uids OR v.candidate_uid IN $uids) "
            "RETURN v.record_uid AS a, v.candidate_uid AS b",
            uids=record_uids,
        )
        return {frozenset((r["a"], r["b"])) for r in rows}
