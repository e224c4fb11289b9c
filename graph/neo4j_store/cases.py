"""The neo4j backend's cases domain: cases hanging off their anchor records, each with its logged events.

Graph model::

    (:Record)-[:HAS_CASE]->(:Case {id, record_uid, status, assignee, team, created_at, updated_at,
                                    due_key, state, dues})
    (:Case)-[:LOGGED]->(:CaseEvent {id, case_id, seq, event})
    (:Sequence {name: 'case', value})

Each append (and each write of dues) writes the ``case`` sequence node first thing in its transaction:
Neo4j's lock on it serialises them across processes, so what an append folds is what the one before it
committed, and ``seq`` increases in commit order. Every view has an index: on the anchor record, the
assignee, team, status and each sort key. Reset keeps the sequence node: numbers are never reused.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from neo4j import ManagedTransaction

from ..case_codecs import case_from_json, case_to_json, due_from_json, due_key, due_to_json, event_from_json
from ..case_codecs import event_to_json as case_event_json
from ..cases import Case, CaseDue, CaseEvent, CaseVocabulary, fold
from ..errors import NotFoundError
from ..models import ChangeSet, event_time
from ..ports.cases import CaseFilter, new_case_events, plan_case_events
from .connection import Neo4jBase, unwind

_KEYS = {"due": "due_key", "updated": "updated_at", "created": "created_at"}
_LOCK = (
    "MERGE (s:Sequence {name: 'case'}) ON CREATE SET s.value = 0 SET s.value = s.value + $n RETURN s.value - $n AS base"
)
_CUSTOMER = "OPTIONAL MATCH (c)<-[:HAS_CASE]-(:Record)-[:BELONGS_TO]->(cu:Customer)"
_ROW = "c.id AS id, c.state AS state, c.dues AS dues, cu.id AS customer_id"


def _row(r: dict[str, Any]) -> tuple[Case, CaseDue | None]:
    return case_from_json(r["state"], r["customer_id"]), due_from_json(r["dues"])


def _state(case: Case, key: str) -> dict[str, Any]:
    return {
        "id": case.id,
        "record_uid": case.record_uid,
        "status": case.status,
        "assignee": case.assignee,
        "team": case.team,
        "created_at": event_time(case.created_at),
        "updated_at": event_time(case.updated_at),
        "due_key": key,
        "state": case_to_json(case),
    }


class Neo4jCases(Neo4jBase):
    """Service cases as ``(:Case)`` nodes with ``(:CaseEvent)`` nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_case_id IF NOT EXISTS FOR (c:Case) REQUIRE c.id IS UNIQUE",
            "CREATE CONSTRAINT c360_case_event_id IF NOT EXISTS FOR (e:CaseEvent) REQUIRE e.id IS UNIQUE",
            "CREATE INDEX c360_case_event_case IF NOT EXISTS FOR (e:CaseEvent) ON (e.case_id)",
            *(
                f"CREATE INDEX c360_case_{p} IF NOT EXISTS FOR (c:Case) ON (c.{p})"
                for p in ("record_uid", "assignee", "team", "status", "due_key", "updated_at", "created_at")
            ),
            "CREATE CONSTRAINT c360_sequence_name IF NOT EXISTS FOR (s:Sequence) REQUIRE s.name IS UNIQUE",
            "MERGE (s:Sequence {name: 'case'}) ON CREATE SET s.value = 0",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Case", "CaseEvent"]

    def _append_case_events(self, events: list[CaseEvent], vocabulary: CaseVocabulary) -> list[str]:
        def work(tx: ManagedTransaction) -> list[str]:
            # The write on the sequence node first: from here on no other append runs until this one ends.
            base = tx.run(_LOCK, n=len(events)).single(strict=True)["base"]
            stored = tx.run(
                "UNWIND $ids AS id MATCH (e:CaseEvent {id: id}) RETURN e.event AS event", ids=[e.id for e in events]
            )
            fresh = new_case_events(events, {(e := event_from_json(r["event"])).id: e for r in stored})
            if not fresh:
                return []
            case_ids = sorted({e.case_id for e in fresh})
            histories: dict[str, list[CaseEvent]] = defaultdict(list)
            for r in tx.run(
                "UNWIND $ids AS cid MATCH (e:CaseEvent {case_id: cid}) RETURN e.event AS event ORDER BY e.seq",
                ids=case_ids,
            ):
                event = event_from_json(r["event"])
                histories[event.case_id].append(event)
            current = {cid: fold(history, None) for cid, history in histories.items()}
            dues: dict[str, CaseDue] = {}
            for r in tx.run(
                "UNWIND $ids AS cid MATCH (c:Case {id: cid}) RETURN c.id AS id, c.dues AS dues", ids=case_ids
            ):
                if (due := due_from_json(r["dues"])) is not None:
                    dues[r["id"]] = due
            created = [e for e in fresh if e.kind == "created"]
            owners = tx.run(
                "UNWIND $uids AS uid MATCH (r:Record {uid: uid})-[:BELONGS_TO]->(c:Customer) "
                "RETURN r.uid AS uid, c.id AS cid",
                uids=sorted({str(e.data["record_uid"]) for e in created}),
            )
            owner = {r["uid"]: r["cid"] for r in owners}
            resolved = tx.run(
                "UNWIND $ids AS id MATCH (c:Customer {id: id}) "
                "RETURN c.id AS id, CASE c.status WHEN 'active' THEN c.id ELSE c.merged_into END AS active",
                ids=sorted({str(e.data["customer_id"]) for e in created}),
            )
            active = {r["id"]: r["active"] for r in resolved if r["active"] is not None}
            plan = plan_case_events(fresh, current, dues, owner, active, vocabulary)
            states = {cid: _state(case, plan.keys[cid]) for cid, case in plan.cases.items()}
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (r:Record {uid: row.record_uid}) "
                "CREATE (r)-[:HAS_CASE]->(:Case {id: row.id, record_uid: row.record_uid})",
                [states[cid] for cid in plan.created],
            )
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (c:Case {id: row.id}) SET c.status = row.status, c.assignee = row.assignee, "
                "c.team = row.team, c.created_at = row.created_at, c.updated_at = row.updated_at, "
                "c.due_key = row.due_key, c.state = row.state",
                list(states.values()),
            )
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (c:Case {id: row.case_id}) "
                "CREATE (c)-[:LOGGED]->(:CaseEvent {id: row.id, case_id: row.case_id, seq: row.seq, event: row.event})",
                [
                    {"id": e.id, "case_id": e.case_id, "seq": base + i + 1, "event": case_event_json(e)}
                    for i, e in enumerate(plan.events)
                ],
            )
            self._write(tx, ChangeSet(events=plan.journey))  # the journey domain writes the timeline rows
            return [e.id for e in fresh]

        with self._session() as s:
            return s.execute_write(work)

    def _get_case(self, case_id: str) -> tuple[Case, CaseDue | None] | None:
        rows = self._read(f"MATCH (c:Case {{id: $id}}) {_CUSTOMER} RETURN {_ROW}", id=case_id)
        return _row(rows[0]) if rows else None

    def _case_events(self, case_id: str) -> list[CaseEvent]:
        rows = self._read("MATCH (e:CaseEvent {case_id: $id}) RETURN e.event AS event ORDER BY e.seq", id=case_id)
        return [event_from_json(r["event"]) for r in rows]

    def _set_case_dues(self, dues: dict[str, CaseDue]) -> None:
        def work(tx: ManagedTransaction) -> None:
            # In turn with appends, which compute the key from the dues (the number it takes is a gap).
            tx.run(_LOCK, n=1).consume()
            ids = sorted(dues)
            found = tx.run("UNWIND $ids AS id MATCH (c:Case {id: id}) RETURN c.id AS id, c.state AS state", ids=ids)
            states = {r["id"]: case_from_json(r["state"]) for r in found}
            missing = [cid for cid in ids if cid not in states]
            if missing:
                raise NotFoundError(f"no case {', '.join(missing)}")
            rows = [
                {"id": cid, "dues": due_to_json(dues[cid]), "due_key": due_key(states[cid], dues[cid])} for cid in ids
            ]
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (c:Case {id: row.id}) SET c.dues = row.dues, c.due_key = row.due_key",
                rows,
            )

        with self._session() as s:
            s.execute_write(work)

    def _list_cases(
        self, where: CaseFilter, order: str, limit: int, after: tuple[str, str] | None
    ) -> list[tuple[Case, CaseDue | None]]:
        key = _KEYS[order]
        direction, cmp = ("ASC", ">") if order == "due" else ("DESC", "<")
        if where.customer_id is not None:
            match = "MATCH (:Customer {id: $cid})<-[:BELONGS_TO]-(:Record)-[:HAS_CASE]->(c:Case)"
        else:
            match = "MATCH (c:Case)"
        clauses = []
        if where.assignee is not None:
            clauses.append("c.assignee = $assignee")
        if where.team is not None:
            clauses.append("c.team = $team")
        if where.statuses is not None:
            clauses.append("c.status IN $statuses")
        if after is not None:
            clauses.append(f"(c.{key} {cmp} $key OR (c.{key} = $key AND c.id {cmp} $id))")
        sort = f"ORDER BY c.{key} {direction}, c.id {direction}"
        rows = self._read(
            f"{match} {'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
            f"WITH c {sort} LIMIT $limit {_CUSTOMER} RETURN {_ROW} {sort}",
            cid=where.customer_id,
            assignee=where.assignee,
            team=where.team,
            statuses=list(where.statuses) if where.statuses is not None else None,
            key=after[0] if after else None,
            id=after[1] if after else None,
            limit=limit,
        )
        return [_row(r) for r in rows]

    def _open_case_ids(self, after: str | None, limit: int) -> list[str]:
        rows = self._read(
            "MATCH (c:Case) WHERE c.status <> 'closed' AND c.id > $after RETURN c.id AS id ORDER BY id LIMIT $limit",
            after=after or "",
            limit=limit,
        )
        return [r["id"] for r in rows]

    def _case_counts(self) -> dict[str, int]:
        rows = self._read("MATCH (c:Case) RETURN c.status AS status, count(*) AS n")
        return {r["status"]: r["n"] for r in rows}
