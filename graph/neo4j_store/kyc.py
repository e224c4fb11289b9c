"""The neo4j backend's KYC domain: applications hanging off their anchor records, their events and tasks.

Graph model::

    (:Record)-[:HAS_KYC]->(:KycApplication {id, record_uid, applicant_id, status, created_at, updated_at, state})
    (:KycApplication)-[:LOGGED]->(:KycEvent {id, application_id, seq, event})
    (:KycApplication)-[:HAS_TASK]->(:KycTask {id, application_id, role, assignee, status, due_key, state})
    (:KycScreeningDecision {key, subject, list_name, entry_key, content_hash, decided_at, decision})
    (:Sequence {name: 'kyc', value})

Each append writes the ``kyc`` sequence node first thing in its transaction: Neo4j's lock on it
serialises appends across processes, so what an append folds is what the one before it committed, and
``seq`` increases in commit order. Every view has an index. Reset keeps the sequence node.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from neo4j import ManagedTransaction

from ..kyc import Application, KycEvent, ScreeningDecision, Task, fold
from ..kyc_codecs import (
    application_from_json,
    application_to_json,
    decision_from_json,
    decision_to_json,
    event_from_json,
    task_from_json,
    task_to_json,
)
from ..kyc_codecs import event_to_json as kyc_event_json
from ..models import ChangeSet, dumps, event_time, loads
from ..ports.kyc import ApplicationFilter, SummaryRow, TaskFilter, new_kyc_events, plan_kyc_events
from .connection import Neo4jBase, unwind

_KEYS = {"updated": "updated_at", "created": "created_at"}
_LOCK = (
    "MERGE (s:Sequence {name: 'kyc'}) ON CREATE SET s.value = 0 SET s.value = s.value + $n RETURN s.value - $n AS base"
)
_CUSTOMER = "OPTIONAL MATCH (a)<-[:HAS_KYC]-(:Record)-[:BELONGS_TO]->(cu:Customer)"
_ROW = "a.state AS state, cu.id AS customer_id"


def _app(r: dict[str, Any]) -> Application:
    return application_from_json(r["state"], r["customer_id"])


def _state(app: Application) -> dict[str, Any]:
    return {
        "id": app.id,
        "record_uid": app.record_uid,
        "applicant_id": app.applicant_id,
        "status": app.status,
        "created_at": event_time(app.created_at),
        "updated_at": event_time(app.updated_at),
        "state": application_to_json(app),
    }


def _task(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "application_id": task.application_id,
        "role": task.role,
        "assignee": task.assignee,
        "status": task.status,
        "due_key": event_time(task.due_at),
        "state": task_to_json(task),
    }


class Neo4jKyc(Neo4jBase):
    """KYC applications as ``(:KycApplication)`` nodes with ``(:KycEvent)`` and ``(:KycTask)`` nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_kyc_application_id IF NOT EXISTS FOR (a:KycApplication) REQUIRE a.id IS UNIQUE",
            "CREATE CONSTRAINT c360_kyc_event_id IF NOT EXISTS FOR (e:KycEvent) REQUIRE e.id IS UNIQUE",
            "CREATE INDEX c360_kyc_event_application IF NOT EXISTS FOR (e:KycEvent) ON (e.application_id)",
            *(
                f"CREATE INDEX c360_kyc_application_{p} IF NOT EXISTS FOR (a:KycApplication) ON (a.{p})"
                for p in ("record_uid", "applicant_id", "status", "updated_at", "created_at")
            ),
            "CREATE CONSTRAINT c360_kyc_task_id IF NOT EXISTS FOR (t:KycTask) REQUIRE t.id IS UNIQUE",
            *(
                f"CREATE INDEX c360_kyc_task_{p} IF NOT EXISTS FOR (t:KycTask) ON (t.{p})"
                for p in ("role", "assignee", "status", "due_key")
            ),
            "CREATE CONSTRAINT c360_kyc_decision_key IF NOT EXISTS "
            "FOR (d:KycScreeningDecision) REQUIRE d.key IS UNIQUE",
            "CREATE INDEX c360_kyc_decision_subject IF NOT EXISTS FOR (d:KycScreeningDecision) ON (d.subject)",
            "CREATE CONSTRAINT c360_sequence_name IF NOT EXISTS FOR (s:Sequence) REQUIRE s.name IS UNIQUE",
            "MERGE (s:Sequence {name: 'kyc'}) ON CREATE SET s.value = 0",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "KycApplication", "KycEvent", "KycTask", "KycScreeningDecision"]

    def _append_kyc_events(self, events: list[KycEvent]) -> list[str]:
        def work(tx: ManagedTransaction) -> list[str]:
            # The write on the sequence node first: from here on no other append runs until this one ends.
            base = tx.run(_LOCK, n=len(events)).single(strict=True)["base"]
            stored = tx.run(
                "UNWIND $ids AS id MATCH (e:KycEvent {id: id}) RETURN e.event AS event", ids=[e.id for e in events]
            )
            fresh = new_kyc_events(events, {(e := event_from_json(r["event"])).id: e for r in stored})
            if not fresh:
                return []
            app_ids = sorted({e.application_id for e in fresh})
            histories: dict[str, list[KycEvent]] = defaultdict(list)
            for r in tx.run(
                "UNWIND $ids AS aid MATCH (e:KycEvent {application_id: aid}) RETURN e.event AS event ORDER BY e.seq",
                ids=app_ids,
            ):
                event = event_from_json(r["event"])
                histories[event.application_id].append(event)
            current = {aid: fold(history) for aid, history in histories.items()}
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
            taken = tx.run(
                "UNWIND $ids AS id MATCH (t:KycTask {id: id}) RETURN t.id AS id, t.application_id AS aid",
                ids=sorted({str(e.data["task_id"]) for e in fresh if e.kind == "task_opened"}),
            )
            task_owners = {r["id"]: r["aid"] for r in taken}
            plan = plan_kyc_events(fresh, current, owner, active, task_owners)
            states = {aid: _state(app) for aid, app in plan.applications.items()}
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (r:Record {uid: row.record_uid}) "
                "CREATE (r)-[:HAS_KYC]->(:KycApplication {id: row.id, record_uid: row.record_uid, "
                "applicant_id: row.applicant_id, created_at: row.created_at})",
                [states[aid] for aid in plan.created],
            )
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (a:KycApplication {id: row.id}) SET a.status = row.status, "
                "a.updated_at = row.updated_at, a.state = row.state",
                list(states.values()),
            )
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (a:KycApplication {id: row.application_id}) "
                "MERGE (a)-[:HAS_TASK]->(t:KycTask {id: row.id}) SET t.application_id = row.application_id, "
                "t.role = row.role, t.assignee = row.assignee, t.status = row.status, t.due_key = row.due_key, "
                "t.state = row.state",
                [_task(t) for t in plan.tasks()],
            )
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (a:KycApplication {id: row.application_id}) "
                "CREATE (a)-[:LOGGED]->(:KycEvent {id: row.id, application_id: row.application_id, seq: row.seq, "
                "event: row.event})",
                [
                    {"id": e.id, "application_id": e.application_id, "seq": base + i + 1, "event": kyc_event_json(e)}
                    for i, e in enumerate(plan.events)
                ],
            )
            self._write(tx, ChangeSet(events=plan.journey))  # the journey domain writes the timeline rows
            return [e.id for e in fresh]

        with self._session() as s:
            return s.execute_write(work)

    def _get_application(self, application_id: str) -> Application | None:
        rows = self._read(f"MATCH (a:KycApplication {{id: $id}}) {_CUSTOMER} RETURN {_ROW}", id=application_id)
        return _app(rows[0]) if rows else None

    def _kyc_events(self, application_id: str) -> list[KycEvent]:
        rows = self._read(
            "MATCH (e:KycEvent {application_id: $id}) RETURN e.event AS event ORDER BY e.seq", id=application_id
        )
        return [event_from_json(r["event"]) for r in rows]

    def _list_applications(
        self, where: ApplicationFilter, order: str, limit: int, after: tuple[str, str] | None
    ) -> list[Application]:
        key = _KEYS[order]
        if where.customer_id is not None:
            match = "MATCH (:Customer {id: $cid})<-[:BELONGS_TO]-(:Record)-[:HAS_KYC]->(a:KycApplication)"
        else:
            match = "MATCH (a:KycApplication)"
        clauses = []
        if where.applicant_id is not None:
            clauses.append("a.applicant_id = $applicant")
        if where.statuses is not None:
            clauses.append("a.status IN $statuses")
        if after is not None:
            clauses.append(f"(a.{key} < $key OR (a.{key} = $key AND a.id < $id))")
        sort = f"ORDER BY a.{key} DESC, a.id DESC"
        rows = self._read(
            f"{match} {'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
            f"WITH a {sort} LIMIT $limit {_CUSTOMER} RETURN {_ROW} {sort}",
            cid=where.customer_id,
            applicant=where.applicant_id,
            statuses=list(where.statuses) if where.statuses is not None else None,
            key=after[0] if after else None,
            id=after[1] if after else None,
            limit=limit,
        )
        return [_app(r) for r in rows]

    def _list_tasks(self, where: TaskFilter, limit: int, after: tuple[str, str] | None) -> list[Task]:
        clauses = []
        if where.role is not None:
            clauses.append("t.role = $role")
        if where.assignee is not None:
            clauses.append("t.assignee = $assignee")
        if where.statuses is not None:
            clauses.append("t.status IN $statuses")
        if where.due_before is not None:
            clauses.append("t.due_key < $before")
        if after is not None:
            clauses.append("(t.due_key > $key OR (t.due_key = $key AND t.id > $id))")
        rows = self._read(
            f"MATCH (t:KycTask) {'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
            "RETURN t.state AS state ORDER BY t.due_key, t.id LIMIT $limit",
            role=where.role,
            assignee=where.assignee,
            statuses=list(where.statuses) if where.statuses is not None else None,
            before=where.due_before,
            key=after[0] if after else None,
            id=after[1] if after else None,
            limit=limit,
        )
        return [task_from_json(r["state"]) for r in rows]

    def _application_rows(self, after: str | None, limit: int) -> list[Application]:
        rows = self._read(
            f"MATCH (a:KycApplication) WHERE a.id > $after WITH a ORDER BY a.id LIMIT $limit {_CUSTOMER} "
            f"RETURN {_ROW} ORDER BY a.id",
            after=after or "",
            limit=limit,
        )
        return [_app(r) for r in rows]

    def _application_summaries(self, after: str | None, limit: int) -> list[SummaryRow]:
        rows = self._read(
            "MATCH (a:KycApplication) WHERE a.id > $after "
            "RETURN a.id AS id, a.status AS status, a.state AS state ORDER BY a.id LIMIT $limit",
            after=after or "",
            limit=limit,
        )
        out: list[SummaryRow] = []
        for r in rows:
            state = loads(r["state"])
            risk = state.get("risk")
            out.append((r["id"], r["status"], risk[1] if risk else None, state["submitted_at"], state["decided_at"]))
        return out

    def _put_screening_decisions(self, decisions: list[ScreeningDecision]) -> None:
        rows = [
            {
                "key": dumps(list(d.key)),
                "subject": d.subject,
                "list_name": d.list_name,
                "entry_key": d.entry_key,
                "content_hash": d.content_hash,
                "decided_at": event_time(d.decided_at),
                "decision": decision_to_json(d),
            }
            for d in decisions
        ]

        def work(tx: ManagedTransaction) -> None:
            # The newest decision per key wins: an older one put later changes nothing.
            unwind(
                tx,
                "UNWIND $rows AS row MERGE (d:KycScreeningDecision {key: row.key}) "
                "ON CREATE SET d.subject = row.subject, d.list_name = row.list_name, d.entry_key = row.entry_key, "
                "d.content_hash = row.content_hash "
                "WITH d, row WHERE d.decided_at IS NULL OR d.decided_at <= row.decided_at "
                "SET d.decided_at = row.decided_at, d.decision = row.decision",
                rows,
            )

        with self._session() as s:
            s.execute_write(work)

    def _screening_decisions(self, subject: str) -> list[ScreeningDecision]:
        rows = self._read(
            "MATCH (d:KycScreeningDecision {subject: $subject}) RETURN d.decision AS decision "
            "ORDER BY d.list_name, d.entry_key, d.content_hash",
            subject=subject,
        )
        return [decision_from_json(r["decision"]) for r in rows]
