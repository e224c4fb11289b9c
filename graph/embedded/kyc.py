"""The embedded backend's KYC domain: the append-only ``kyc_events`` table, applications, tasks, decisions.

``kyc_applications`` holds each application's current state (JSON) and the columns its views filter and
sort by; its customer is read through its anchor record (``records``), so it follows merges and splits.
``kyc_tasks`` holds every task's state with its queue columns; ``kyc_screening_decisions`` one row per
(subject, list, entry, content hash). Every view has an index.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

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
from ..models import ChangeSet, event_time
from ..ports.kyc import ApplicationFilter, SummaryRow, TaskFilter, new_kyc_events, plan_kyc_events
from .connection import EmbeddedBase, chunks, marks

_KEYS = {"updated": "updated_at", "created": "created_at"}

# AUTOINCREMENT: a sequence number is never reused, not even after reset, so append order is seq order.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kyc_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, application_id TEXT NOT NULL,
    event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS kyc_events_application ON kyc_events(application_id, seq);
CREATE TABLE IF NOT EXISTS kyc_applications (
    id TEXT PRIMARY KEY, record_uid TEXT NOT NULL, applicant_id TEXT, status TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, state TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kyc_applications_record ON kyc_applications(record_uid);
CREATE INDEX IF NOT EXISTS kyc_applications_updated ON kyc_applications(updated_at, id);
CREATE INDEX IF NOT EXISTS kyc_applications_created ON kyc_applications(created_at, id);
CREATE INDEX IF NOT EXISTS kyc_applications_applicant_updated ON kyc_applications(applicant_id, updated_at, id)
    WHERE applicant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS kyc_applications_applicant_created ON kyc_applications(applicant_id, created_at, id)
    WHERE applicant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS kyc_applications_status_updated ON kyc_applications(status, updated_at, id);
CREATE INDEX IF NOT EXISTS kyc_applications_status_created ON kyc_applications(status, created_at, id);
CREATE TABLE IF NOT EXISTS kyc_tasks (
    id TEXT PRIMARY KEY, application_id TEXT NOT NULL, role TEXT NOT NULL, assignee TEXT, status TEXT NOT NULL,
    due_key TEXT NOT NULL, state TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kyc_tasks_due ON kyc_tasks(status, due_key, id);
CREATE INDEX IF NOT EXISTS kyc_tasks_role ON kyc_tasks(role, status, due_key, id);
CREATE INDEX IF NOT EXISTS kyc_tasks_assignee ON kyc_tasks(assignee, status, due_key, id) WHERE assignee IS NOT NULL;
CREATE TABLE IF NOT EXISTS kyc_screening_decisions (
    subject TEXT NOT NULL, list_name TEXT NOT NULL, entry_key TEXT NOT NULL, content_hash TEXT NOT NULL,
    decided_at TEXT NOT NULL, decision TEXT NOT NULL,
    PRIMARY KEY (subject, list_name, entry_key, content_hash)) WITHOUT ROWID;
"""

_UPSERT_APPLICATION = (
    "INSERT INTO kyc_applications (id, record_uid, applicant_id, status, created_at, updated_at, state) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
    "updated_at = excluded.updated_at, state = excluded.state"
)
_UPSERT_TASK = (
    "INSERT INTO kyc_tasks (id, application_id, role, assignee, status, due_key, state) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET role = excluded.role, assignee = excluded.assignee, status = excluded.status, "
    "due_key = excluded.due_key, state = excluded.state"
)
# The newest decision per key wins: an older one put later changes nothing.
_UPSERT_DECISION = (
    "INSERT INTO kyc_screening_decisions (subject, list_name, entry_key, content_hash, decided_at, decision) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(subject, list_name, entry_key, content_hash) DO UPDATE SET "
    "decided_at = excluded.decided_at, decision = excluded.decision "
    "WHERE excluded.decided_at >= kyc_screening_decisions.decided_at"
)
_ROW = "a.state, r.customer_id FROM kyc_applications a LEFT JOIN records r ON r.uid = a.record_uid"


def _application_row(app: Application) -> tuple[Any, ...]:
    created, updated = event_time(app.created_at), event_time(app.updated_at)
    return (app.id, app.record_uid, app.applicant_id, app.status, created, updated, application_to_json(app))


def _task_row(task: Task) -> tuple[Any, ...]:
    key = event_time(task.due_at)
    return (task.id, task.application_id, task.role, task.assignee, task.status, key, task_to_json(task))


class EmbeddedKyc(EmbeddedBase):
    """KYC applications, tasks and screening decisions in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "kyc_events", "kyc_applications", "kyc_tasks", "kyc_screening_decisions"]

    def _kyc_events_by(self, column: str, values: list[str]) -> list[KycEvent]:
        out: list[KycEvent] = []
        for chunk in chunks(values):
            rows = self._all(
                f"SELECT event FROM kyc_events WHERE {column} IN ({marks(len(chunk))}) ORDER BY seq", chunk
            )
            out.extend(event_from_json(r[0]) for r in rows)
        return out

    def _append_kyc_events(self, events: list[KycEvent]) -> list[str]:
        # BEGIN IMMEDIATE (or the open exclusive() transaction): reads, checks and writes under the write lock.
        with self._transaction() as db:
            stored = {e.id: e for e in self._kyc_events_by("event_id", [e.id for e in events])}
            fresh = new_kyc_events(events, stored)
            if not fresh:
                return []
            app_ids = sorted({e.application_id for e in fresh})
            histories: dict[str, list[KycEvent]] = defaultdict(list)
            for event in self._kyc_events_by("application_id", app_ids):
                histories[event.application_id].append(event)
            current = {aid: fold(history) for aid, history in histories.items()}
            created = [e for e in fresh if e.kind == "created"]
            owners: dict[str, str] = {}
            for chunk in chunks(sorted({str(e.data["record_uid"]) for e in created})):
                owners.update(
                    db.execute(f"SELECT uid, customer_id FROM records WHERE uid IN ({marks(len(chunk))})", chunk)
                )
            active = self._resolve_many(sorted({str(e.data["customer_id"]) for e in created}))
            task_owners: dict[str, str] = {}
            for chunk in chunks(sorted({str(e.data["task_id"]) for e in fresh if e.kind == "task_opened"})):
                task_owners.update(
                    db.execute(f"SELECT id, application_id FROM kyc_tasks WHERE id IN ({marks(len(chunk))})", chunk)
                )
            plan = plan_kyc_events(fresh, current, owners, active, task_owners)
            db.executemany(
                "INSERT INTO kyc_events (event_id, application_id, event) VALUES (?, ?, ?)",
                [(e.id, e.application_id, kyc_event_json(e)) for e in plan.events],
            )
            db.executemany(_UPSERT_APPLICATION, [_application_row(a) for a in plan.applications.values()])
            db.executemany(_UPSERT_TASK, [_task_row(t) for t in plan.tasks()])
            self._write(db, ChangeSet(events=plan.journey))  # the journey domain writes the timeline rows
        return [e.id for e in fresh]

    def _get_application(self, application_id: str) -> Application | None:
        rows = self._all(f"SELECT {_ROW} WHERE a.id = ?", (application_id,))
        return application_from_json(*rows[0]) if rows else None

    def _kyc_events(self, application_id: str) -> list[KycEvent]:
        return self._kyc_events_by("application_id", [application_id])

    def _list_applications(
        self, where: ApplicationFilter, order: str, limit: int, after: tuple[str, str] | None
    ) -> list[Application]:
        key = _KEYS[order]
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("r.customer_id", where.customer_id), ("a.applicant_id", where.applicant_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.statuses is not None:
            clauses.append(f"a.status IN ({marks(len(where.statuses))})")
            params.extend(where.statuses)
        if after is not None:
            clauses.append(f"(a.{key}, a.id) < (?, ?)")
            params.extend(after)
        sql = f"SELECT {_ROW}{' WHERE ' + ' AND '.join(clauses) if clauses else ''} "
        rows = self._all(f"{sql}ORDER BY a.{key} DESC, a.id DESC LIMIT ?", [*params, limit])
        return [application_from_json(state, cid) for state, cid in rows]

    def _list_tasks(self, where: TaskFilter, limit: int, after: tuple[str, str] | None) -> list[Task]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("role", where.role), ("assignee", where.assignee)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.statuses is not None:
            clauses.append(f"status IN ({marks(len(where.statuses))})")
            params.extend(where.statuses)
        if where.due_before is not None:
            clauses.append("due_key < ?")
            params.append(where.due_before)
        if after is not None:
            clauses.append("(due_key, id) > (?, ?)")
            params.extend(after)
        sql = f"SELECT state FROM kyc_tasks{' WHERE ' + ' AND '.join(clauses) if clauses else ''} "
        rows = self._all(f"{sql}ORDER BY due_key, id LIMIT ?", [*params, limit])
        return [task_from_json(r[0]) for r in rows]

    def _application_rows(self, after: str | None, limit: int) -> list[Application]:
        rows = self._all(f"SELECT {_ROW} WHERE a.id > ? ORDER BY a.id LIMIT ?", (after or "", limit))
        return [application_from_json(state, cid) for state, cid in rows]

    def _application_summaries(self, after: str | None, limit: int) -> list[SummaryRow]:
        rows = self._all(
            "SELECT id, status, json_extract(state, '$.risk[1]'), json_extract(state, '$.submitted_at'), "
            "json_extract(state, '$.decided_at') FROM kyc_applications WHERE id > ? ORDER BY id LIMIT ?",
            (after or "", limit),
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def _put_screening_decisions(self, decisions: list[ScreeningDecision]) -> None:
        with self._transaction() as db:
            db.executemany(
                _UPSERT_DECISION, [(*d.key, event_time(d.decided_at), decision_to_json(d)) for d in decisions]
            )

    def _screening_decisions(self, subject: str) -> list[ScreeningDecision]:
        rows = self._all(
            "SELECT decision FROM kyc_screening_decisions WHERE subject = ? "
            "ORDER BY list_name, entry_key, content_hash",
            (subject,),
        )
        return [decision_from_json(r[0]) for r in rows]
