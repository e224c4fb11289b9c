"""The neo4j backend's journey domain: ``(:Event {record_uid})`` nodes, read through the customer's records."""

from __future__ import annotations

from typing import Any

from neo4j import ManagedTransaction

from ..codecs import EVENT_COLUMNS, as_dicts, event_rows, parse_event_time
from ..models import ChangeSet, StoredEvent
from ..ports.journey import ChangedEvent, moved_records
from .connection import Neo4jBase, unwind
from .identity import next_seq


class Neo4jJourney(Neo4jBase):
    """Journey events as nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_event_id IF NOT EXISTS FOR (e:Event) REQUIRE e.id IS UNIQUE",
            "CREATE INDEX c360_event_record IF NOT EXISTS FOR (e:Event) ON (e.record_uid)",
            "CREATE INDEX c360_event_seq IF NOT EXISTS FOR (e:Event) ON (e.seq)",
            # the change feed: events stored before it read as sequence 0
            "MATCH (e:Event) WHERE e.seq IS NULL SET e.seq = 0",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Event"]

    def _write(self, tx: ManagedTransaction, changes: ChangeSet) -> None:
        # Idempotent by event id: an event applied before changes nothing.
        rows = as_dicts(EVENT_COLUMNS, event_rows(changes))
        moved = moved_records(changes)
        if rows or moved:
            seq = next_seq(tx, "event_seq")
            unwind(
                tx,
                "UNWIND $rows AS row MERGE (e:Event {id: row.id}) ON CREATE SET e.type = row.type, e.at = row.at, "
                "e.data = row.data, e.record_uid = row.record_uid, e.seq = row.seq",
                [{**r, "seq": seq} for r in rows],
            )
            # their events come again in the feed, with their new customer
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (e:Event {record_uid: row.uid}) SET e.seq = row.seq",
                [{"uid": u, "seq": seq} for u in moved],
            )
        super()._write(tx, changes)

    def _records_relinked(self, tx: Any, record_uids: list[str]) -> None:
        seq = next_seq(tx, "event_seq")
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (e:Event {record_uid: row.uid}) SET e.seq = row.seq",
            [{"uid": u, "seq": seq} for u in record_uids],
        )

    def _seen_events(self, event_ids: list[str]) -> set[str]:
        rows = self._read("UNWIND $ids AS id MATCH (e:Event {id: id}) RETURN e.id AS id", ids=event_ids)
        return {r["id"] for r in rows}

    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]:
        where = []
        if before is not None:
            where.append("(e.at < $at OR (e.at = $at AND e.id < $eid))")
        if types is not None:
            where.append("e.type IN $types")
        rows = self._read(
            "MATCH (:Customer {id: $cid})<-[:BELONGS_TO]-(r:Record) MATCH (e:Event {record_uid: r.uid}) "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            "RETURN e.id AS id, e.type AS type, e.at AS at, e.data AS data, e.record_uid AS record_uid "
            "ORDER BY at DESC, id DESC LIMIT $limit",
            cid=customer_id,
            at=before[0] if before else None,
            eid=before[1] if before else None,
            types=types,
            limit=limit,
        )
        return [StoredEvent(r["id"], r["type"], parse_event_time(r["at"]), r["data"], r["record_uid"]) for r in rows]

    def _event_changes(self, after: tuple[int, str], limit: int, types: list[str] | None) -> list[ChangedEvent]:
        rows = self._read(
            "MATCH (e:Event) WHERE e.seq >= $seq AND (e.seq > $seq OR e.id > $id) "
            f"{'AND e.type IN $types ' if types is not None else ''}"
            "WITH e ORDER BY e.seq, e.id LIMIT $limit "
            "OPTIONAL MATCH (:Record {uid: e.record_uid})-[:BELONGS_TO]->(c:Customer) "
            "RETURN e.seq AS seq, e.id AS id, e.type AS type, e.at AS at, e.data AS data, "
            "e.record_uid AS record_uid, c.id AS customer_id ORDER BY seq, id",
            seq=after[0],
            id=after[1],
            types=types,
            limit=limit,
        )
        return [
            ChangedEvent(
                r["seq"],
                StoredEvent(r["id"], r["type"], parse_event_time(r["at"]), r["data"], r["record_uid"]),
                r["customer_id"],
            )
            for r in rows
        ]
