"""The neo4j backend's insights domain: insights and segment memberships on customers.

Graph model::

    (:Customer)-[:HAS_INSIGHT]->(:Insight {key: '<customer id>|<name>', customer_id, name, model,
                                          computed_at, score, label, detail})
    (:Customer)-[:IN_SEGMENT {segment_id, customer_id, since, reason}]->(:Segment {id})
    (:SegmentChange {id, segment_id, customer_id, kind, at, effect})
    (:Sequence {name: 'segment', value})

An insight's ``key`` is unique (names hold no ``|``, so the pair maps to one key). Each apply of segment
changes writes the ``segment`` sequence node first thing in its transaction: Neo4j's lock on it
serialises applies across processes, so what one reads of the memberships is what the one before it
committed. ``(:SegmentChange)`` nodes keep the ids processed, for replays.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from neo4j import ManagedTransaction

from ..codecs import parse_event_time
from ..insights import Insight, Membership, SegmentChange, anchor_records, insight_from_row, insight_row
from ..models import ChangeSet, event_time, loads
from ..ports.insights import plan_segment_changes
from .connection import Neo4jBase, unwind

_LOCK = "MERGE (s:Sequence {name: 'segment'}) ON CREATE SET s.value = 0 SET s.value = s.value + 1"
_ACTIVE = (
    "UNWIND $ids AS id MATCH (c:Customer {id: id}) "
    "RETURN c.id AS id, CASE c.status WHEN 'active' THEN c.id ELSE c.merged_into END AS active"
)
_UPSERT = (
    "UNWIND $rows AS row MATCH (c:Customer {id: row.customer_id}) "
    "MERGE (i:Insight {key: row.key}) MERGE (c)-[:HAS_INSIGHT]->(i) "
    "SET i.customer_id = row.customer_id, i.name = row.name, i.model = row.model, "
    "i.computed_at = row.computed_at, i.score = row.score, i.label = row.label, i.detail = row.detail"
)
_MEMBERSHIP = "m.segment_id AS segment_id, m.customer_id AS customer_id, m.since AS since, m.reason AS reason"


def _active(tx: ManagedTransaction, ids: list[str]) -> dict[str, str]:
    return {r["id"]: r["active"] for r in tx.run(_ACTIVE, ids=ids) if r["active"] is not None}


def _membership(r: dict[str, Any]) -> Membership:
    return Membership(r["segment_id"], r["customer_id"], parse_event_time(r["since"]), r["reason"])


class Neo4jInsights(Neo4jBase):
    """Insights as ``(:Insight)`` nodes, memberships as ``[:IN_SEGMENT]`` relationships."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_insight_key IF NOT EXISTS FOR (i:Insight) REQUIRE i.key IS UNIQUE",
            "CREATE INDEX c360_insight_customer IF NOT EXISTS FOR (i:Insight) ON (i.customer_id)",
            "CREATE CONSTRAINT c360_segment_id IF NOT EXISTS FOR (s:Segment) REQUIRE s.id IS UNIQUE",
            "CREATE CONSTRAINT c360_segment_change_id IF NOT EXISTS FOR (x:SegmentChange) REQUIRE x.id IS UNIQUE",
            "CREATE INDEX c360_in_segment IF NOT EXISTS FOR ()-[m:IN_SEGMENT]-() ON (m.segment_id, m.customer_id)",
            "CREATE INDEX c360_in_segment_customer IF NOT EXISTS FOR ()-[m:IN_SEGMENT]-() ON (m.customer_id)",
            "CREATE CONSTRAINT c360_sequence_name IF NOT EXISTS FOR (s:Sequence) REQUIRE s.name IS UNIQUE",
            "MERGE (s:Sequence {name: 'segment'}) ON CREATE SET s.value = 0",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Insight", "Segment", "SegmentChange"]

    def _put_insights(self, insights: list[Insight]) -> int:
        def work(tx: ManagedTransaction) -> int:
            active = _active(tx, sorted({i.customer_id for i in insights}))
            rows: dict[str, dict[str, Any]] = {}
            for insight in insights:
                cid = active.get(insight.customer_id)
                if cid is not None:  # the later of two for one (customer, name) wins
                    key = f"{cid}|{insight.name}"
                    rows[key] = {"key": key, **insight_row(insight, cid, event_time(insight.computed_at))}
            unwind(tx, _UPSERT, list(rows.values()))
            return len(rows)

        with self._session() as s:
            return s.execute_write(work)

    def _insights_of(self, customer_ids: list[str]) -> dict[str, list[Insight]]:
        out: dict[str, list[Insight]] = defaultdict(list)
        rows = self._read(
            "UNWIND $ids AS cid MATCH (i:Insight {customer_id: cid}) RETURN i.customer_id AS customer_id, "
            "i.name AS name, i.model AS model, i.computed_at AS computed_at, i.score AS score, i.label AS label, "
            "i.detail AS detail ORDER BY customer_id, name",
            ids=customer_ids,
        )
        for r in rows:
            out[r["customer_id"]].append(
                insight_from_row(
                    r["customer_id"],
                    r["name"],
                    r["model"],
                    parse_event_time(r["computed_at"]),
                    r["score"],
                    r["label"],
                    r["detail"],
                )
            )
        return dict(out)

    def _apply_segment_changes(self, changes: list[SegmentChange]) -> list[SegmentChange]:
        def work(tx: ManagedTransaction) -> list[SegmentChange]:
            # The write on the sequence node first: from here on no other apply runs until this one ends.
            tx.run(_LOCK).consume()
            done = tx.run(
                "UNWIND $ids AS id MATCH (x:SegmentChange {id: id}) RETURN x.id AS id",
                ids=sorted({c.id for c in changes}),
            )
            done_ids = {r["id"] for r in done}
            active = _active(tx, sorted({c.customer_id for c in changes}))
            customers = sorted(set(active.values()))
            members = tx.run(
                "UNWIND $ids AS cid MATCH (:Customer {id: cid})-[m:IN_SEGMENT]->() WHERE m.segment_id IN $segments "
                "RETURN m.segment_id AS seg, cid",
                ids=customers,
                segments=sorted({c.segment_id for c in changes}),
            )
            plan = plan_segment_changes(changes, done_ids, active, {(r["seg"], r["cid"]) for r in members})
            records = tx.run(
                "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[:BELONGS_TO]-(r:Record) "
                "RETURN cid, r.uid AS uid, r.data AS data",
                ids=sorted({c.customer_id for c in plan.applied}),
            )
            anchors = anchor_records((r["cid"], r["uid"], loads(r["data"])["observed_at"]) for r in records)
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (:Customer {id: row.customer_id})-[m:IN_SEGMENT]->"
                "(:Segment {id: row.segment_id}) DELETE m",
                [{"segment_id": seg, "customer_id": cid} for seg, cid in plan.removed],
            )
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (c:Customer {id: row.customer_id}) MERGE (s:Segment {id: row.segment_id}) "
                "CREATE (c)-[:IN_SEGMENT {segment_id: row.segment_id, customer_id: row.customer_id, "
                "since: row.since, reason: row.reason}]->(s)",
                [
                    {"segment_id": m.segment_id, "customer_id": m.customer_id, "since": event_time(m.since)}
                    | {"reason": m.reason}
                    for m in plan.added
                ],
            )
            unwind(
                tx,
                "UNWIND $rows AS row CREATE (:SegmentChange {id: row.id, segment_id: row.segment_id, "
                "customer_id: row.customer_id, kind: row.kind, at: row.at, effect: row.effect})",
                [
                    {
                        "id": c.id,
                        "segment_id": c.segment_id,
                        "customer_id": active[c.customer_id],
                        "kind": c.kind,
                        "at": event_time(c.at),
                        "effect": effect,
                    }
                    for c, effect in plan.seen
                ],
            )
            self._write(tx, ChangeSet(events=plan.journey(anchors)))  # the journey domain writes the timeline rows
            return plan.applied

        with self._session() as s:
            return s.execute_write(work)

    def _segments_of(self, customer_ids: list[str]) -> dict[str, list[Membership]]:
        out: dict[str, list[Membership]] = defaultdict(list)
        rows = self._read(
            f"UNWIND $ids AS cid MATCH (:Customer {{id: cid}})-[m:IN_SEGMENT]->() RETURN {_MEMBERSHIP} "
            "ORDER BY customer_id, segment_id",
            ids=customer_ids,
        )
        for r in rows:
            out[r["customer_id"]].append(_membership(r))
        return dict(out)

    def _segment_members(self, segment_id: str, limit: int, after: str | None) -> list[Membership]:
        rows = self._read(
            "MATCH (c:Customer)-[m:IN_SEGMENT]->() WHERE m.segment_id = $seg AND m.customer_id > $after "
            f"AND c.status = 'active' RETURN {_MEMBERSHIP} ORDER BY m.customer_id LIMIT $limit",
            seg=segment_id,
            after=after or "",
            limit=limit,
        )
        return [_membership(r) for r in rows]

    def _segment_counts(self) -> dict[str, int]:
        rows = self._read(
            "MATCH (c:Customer {status: 'active'})-[m:IN_SEGMENT]->() RETURN m.segment_id AS seg, count(*) AS n"
        )
        return {r["seg"]: r["n"] for r in rows}
