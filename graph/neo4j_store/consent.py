"""The neo4j backend's consent domain: the append-only ledger as nodes hanging off records.

Graph model::

    (:Record)-[:GAVE]->(:Consent {event_id, seq, chain_id, event, receipt})
    (:Sequence {name: 'consent', value})

``seq`` comes from the ``consent`` sequence node, which each append increments first thing in its
transaction: Neo4j's lock on that node serialises appends across processes and makes ``seq`` increase
in commit order (a replay uses numbers up too: they increase, with gaps). The append does not touch
the writer lock node, so it runs inside ``exclusive()``. Reset keeps the sequence node: numbers are
never reused.
"""

from __future__ import annotations

from typing import Any

from neo4j import ManagedTransaction

from ..codecs import CONSENT_COLUMNS, as_dicts, consent_from_json, consent_from_row, consent_rows
from ..consent import ConsentEvent
from ..ports.consent import ConsentEntry, missing_records, new_entries
from .connection import Neo4jBase


def _entries(rows: list[dict[str, Any]]) -> dict[str, ConsentEntry]:
    return {r["id"]: consent_from_row(r["event"], r["receipt"], r["chain_id"]) for r in rows}


_ENTRY = "c.event_id AS id, c.event AS event, c.receipt AS receipt, c.chain_id AS chain_id"


class Neo4jConsent(Neo4jBase):
    """The consent ledger as ``(:Consent)`` nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_consent_event_id IF NOT EXISTS FOR (c:Consent) REQUIRE c.event_id IS UNIQUE",
            "CREATE INDEX c360_consent_chain IF NOT EXISTS FOR (c:Consent) ON (c.chain_id)",
            "CREATE CONSTRAINT c360_sequence_name IF NOT EXISTS FOR (s:Sequence) REQUIRE s.name IS UNIQUE",
            "MERGE (s:Sequence {name: 'consent'}) ON CREATE SET s.value = 0",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Consent"]

    def _append_consent(self, entries: list[ConsentEntry]) -> list[str]:
        def work(tx: ManagedTransaction) -> list[str]:
            # The write on the sequence node first: from here on no other append runs until this one ends.
            base = tx.run(
                "MERGE (s:Sequence {name: 'consent'}) ON CREATE SET s.value = 0 "
                "SET s.value = s.value + $n RETURN s.value - $n AS base",
                n=len(entries),
            ).single(strict=True)["base"]
            uids = sorted({e.event.record_uid for e in entries})
            found = tx.run("UNWIND $uids AS uid MATCH (r:Record {uid: uid}) RETURN r.uid AS uid", uids=uids)
            missing_records(entries, [r["uid"] for r in found])
            stored = tx.run(
                f"UNWIND $ids AS id MATCH (c:Consent {{event_id: id}}) RETURN {_ENTRY}",
                ids=[e.event.id for e in entries],
            )
            fresh = new_entries(entries, _entries([r.data() for r in stored]))
            rows = [
                {**row, "seq": base + i + 1, "topic": f"{e.event.purpose}|{e.event.channel}"}
                for i, (row, e) in enumerate(zip(as_dicts(CONSENT_COLUMNS, consent_rows(fresh)), fresh, strict=True))
            ]
            if rows:
                tx.run(
                    "UNWIND $rows AS row MATCH (r:Record {uid: row.record_uid}) "
                    "CREATE (r)-[:GAVE]->(:Consent {event_id: row.event_id, seq: row.seq, chain_id: row.chain_id, "
                    "topic: row.topic, event: row.event, receipt: row.receipt})",
                    rows=rows,
                ).consume()
            return [e.event.id for e in fresh]

        with self._session() as s:
            return s.execute_write(work)

    def _consents_of(self, customer_ids: list[str], topic: tuple[str, str] | None) -> dict[str, list[ConsentEvent]]:
        rows = self._read(
            "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[:BELONGS_TO]-(:Record)-[:GAVE]->(c:Consent) "
            "WHERE $topic IS NULL OR c.topic = $topic RETURN cid, c.event AS event ORDER BY c.seq",
            ids=customer_ids,
            topic=None if topic is None else "|".join(topic),
        )
        out: dict[str, list[ConsentEvent]] = {}
        for r in rows:
            out.setdefault(r["cid"], []).append(consent_from_json(r["event"]))
        return out

    def _consent_chain(self, chain_id: str) -> list[tuple[str, str]]:
        rows = self._read(
            "MATCH (c:Consent {chain_id: $chain}) RETURN c.event_id AS id, c.receipt AS receipt ORDER BY c.seq",
            chain=chain_id,
        )
        return [(r["id"], r["receipt"]) for r in rows]

    def _last_receipt(self, chain_id: str) -> str | None:
        rows = self._read(
            "MATCH (c:Consent {chain_id: $chain}) RETURN c.receipt AS receipt ORDER BY c.seq DESC LIMIT 1",
            chain=chain_id,
        )
        return str(rows[0]["receipt"]) if rows else None

    def _consent_chain_ids(self) -> list[str]:
        rows = self._read("MATCH (c:Consent) RETURN DISTINCT c.chain_id AS chain ORDER BY chain")
        return [r["chain"] for r in rows]

    def _get_consents(self, event_ids: list[str]) -> dict[str, ConsentEntry]:
        return _entries(
            self._read(f"UNWIND $ids AS id MATCH (c:Consent {{event_id: id}}) RETURN {_ENTRY}", ids=event_ids)
        )
