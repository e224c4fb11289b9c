"""The neo4j backend's blocking-key domain: ``(:Record)-[:IN_BLOCK]->(:Block {key})``, views on records."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from neo4j import ManagedTransaction

from ..codecs import loads
from ..models import ChangeSet, SourceRecord
from ..reads import Candidate
from .connection import Neo4jBase, unwind


def _write_blocks(tx: ManagedTransaction, rows: list[dict[str, Any]]) -> None:
    unwind(tx, "UNWIND $rows AS row MERGE (:Block {key: row.k})", rows)
    unwind(
        tx,
        "UNWIND $rows AS row MATCH (r:Record {uid: row.r}) MATCH (b:Block {key: row.k}) CREATE (r)-[:IN_BLOCK]->(b)",
        rows,
    )


class Neo4jBlocking(Neo4jBase):
    """Blocking keys as block nodes; each record's comparison view is a property of the record."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_block_key IF NOT EXISTS FOR (b:Block) REQUIRE b.key IS UNIQUE",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Block"]

    def _write(self, tx: ManagedTransaction, changes: ChangeSet) -> None:
        # After the identity domain's part: the records exist, with their views.
        updated = [{"uid": w.record.uid} for w in changes.records if w.update]
        unwind(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.uid})-[e:IN_BLOCK]->() DELETE e", updated)
        _write_blocks(tx, [{"r": w.record.uid, "k": k} for w in changes.records for k in w.blocking_keys])
        super()._write(tx, changes)

    def _candidates(self, keys: list[str], per_key: int) -> list[Candidate]:
        rows = self._read(
            "UNWIND $keys AS k MATCH (:Block {key: k})<-[:IN_BLOCK]-(r:Record) "
            "RETURN k, r.uid AS uid, r.view AS view, r.data AS data ORDER BY k, uid",
            keys=keys,
        )
        taken: dict[str, int] = {}
        out = []
        for row in rows:  # at most per_key a key, as the embedded store does
            if taken.get(row["k"], 0) < per_key:
                taken[row["k"]] = taken.get(row["k"], 0) + 1
                view = row["view"]
                record = None if view is not None else SourceRecord.from_json(loads(row["data"]))
                out.append(Candidate(row["uid"], (row["k"],), view, record))
        return out

    def _replace_blocking_keys(self, keys: Mapping[str, Collection[str]], views: Mapping[str, str]) -> None:
        def work(tx: ManagedTransaction) -> None:
            tx.run("MATCH (:Record)-[e:IN_BLOCK]->(:Block) DELETE e").consume()
            tx.run("MATCH (b:Block) DELETE b").consume()
            tx.run("MATCH (r:Record) WHERE r.view IS NOT NULL REMOVE r.view").consume()
            _write_blocks(tx, [{"r": uid, "k": k} for uid, ks in keys.items() for k in ks])
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (r:Record {uid: row.uid}) SET r.view = row.view",
                [{"uid": uid, "view": view} for uid, view in views.items()],
            )

        with self._session() as s:
            s.execute_write(work)
