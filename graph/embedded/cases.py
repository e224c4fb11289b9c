"""The embedded backend's cases domain: the append-only ``case_events`` table and the ``cases`` table.

``cases`` holds each case's current state (JSON), the columns its views filter and sort by, its dues
and its "due" sort key; a case's customer is read through its anchor record (``records``), so it
follows merges and splits. Every view has an index: (filter, sort key, id) for assignee, team and
status, the sort keys alone, the anchor record for the customer view, the open cases by id.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from ..case_codecs import case_from_json, case_to_json, due_from_json, due_key, due_to_json, event_from_json
from ..case_codecs import event_to_json as case_event_json
from ..cases import Case, CaseDue, CaseEvent, CaseVocabulary, fold
from ..errors import NotFoundError
from ..models import ChangeSet, event_time
from ..ports.cases import CaseFilter, new_case_events, plan_case_events
from .connection import EmbeddedBase, chunks, marks

_KEYS = {"due": "due_key", "updated": "updated_at", "created": "created_at"}

_INDEXES = "\n".join(
    f"CREATE INDEX IF NOT EXISTS cases_{col}_{order} ON cases({col}, {key}, id)"
    + (f" WHERE {col} IS NOT NULL;" if col != "status" else ";")
    for col in ("assignee", "team", "status")
    for order, key in _KEYS.items()
)

# AUTOINCREMENT: a sequence number is never reused, not even after reset, so append order is seq order.
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS case_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, case_id TEXT NOT NULL,
    event TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS case_events_case ON case_events(case_id, seq);
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY, record_uid TEXT NOT NULL, status TEXT NOT NULL, assignee TEXT, team TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, due_key TEXT NOT NULL, state TEXT NOT NULL,
    dues TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cases_record ON cases(record_uid);
CREATE INDEX IF NOT EXISTS cases_due ON cases(due_key, id);
CREATE INDEX IF NOT EXISTS cases_updated ON cases(updated_at, id);
CREATE INDEX IF NOT EXISTS cases_created ON cases(created_at, id);
CREATE INDEX IF NOT EXISTS cases_open ON cases(id) WHERE status <> 'closed';
{_INDEXES}
"""

_UPSERT = (
    "INSERT INTO cases (id, record_uid, status, assignee, team, created_at, updated_at, due_key, state) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET status = excluded.status, "
    "assignee = excluded.assignee, team = excluded.team, updated_at = excluded.updated_at, "
    "due_key = excluded.due_key, state = excluded.state"
)
_ROW = "c.id, c.state, c.dues, r.customer_id FROM cases c LEFT JOIN records r ON r.uid = c.record_uid"


def _case_row(state: str, dues: str | None, customer_id: str | None) -> tuple[Case, CaseDue | None]:
    return case_from_json(state, customer_id), due_from_json(dues)


class EmbeddedCases(EmbeddedBase):
    """Service cases in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "case_events", "cases"]

    def _events_by(self, column: str, values: list[str]) -> list[CaseEvent]:
        out: list[CaseEvent] = []
        for chunk in chunks(values):
            rows = self._all(
                f"SELECT event FROM case_events WHERE {column} IN ({marks(len(chunk))}) ORDER BY seq", chunk
            )
            out.extend(event_from_json(r[0]) for r in rows)
        return out

    def _append_case_events(self, events: list[CaseEvent], vocabulary: CaseVocabulary) -> list[str]:
        # BEGIN IMMEDIATE (or the open exclusive() transaction): reads, checks and writes under the write lock.
        with self._transaction() as db:
            stored = {e.id: e for e in self._events_by("event_id", [e.id for e in events])}
            fresh = new_case_events(events, stored)
            if not fresh:
                return []
            case_ids = sorted({e.case_id for e in fresh})
            histories: dict[str, list[CaseEvent]] = defaultdict(list)
            for event in self._events_by("case_id", case_ids):
                histories[event.case_id].append(event)
            current = {cid: fold(history, None) for cid, history in histories.items()}
            dues: dict[str, CaseDue] = {}
            for chunk in chunks(case_ids):
                for cid, text in db.execute(f"SELECT id, dues FROM cases WHERE id IN ({marks(len(chunk))})", chunk):
                    if (due := due_from_json(text)) is not None:
                        dues[cid] = due
            created = [e for e in fresh if e.kind == "created"]
            uids = sorted({str(e.data["record_uid"]) for e in created})
            owners: dict[str, str] = {}
            for chunk in chunks(uids):
                owners.update(
                    db.execute(f"SELECT uid, customer_id FROM records WHERE uid IN ({marks(len(chunk))})", chunk)
                )
            active = self._resolve_many(sorted({str(e.data["customer_id"]) for e in created}))
            plan = plan_case_events(fresh, current, dues, owners, active, vocabulary)
            db.executemany(
                "INSERT INTO case_events (event_id, case_id, event) VALUES (?, ?, ?)",
                [(e.id, e.case_id, case_event_json(e)) for e in plan.events],
            )
            db.executemany(_UPSERT, [_state_row(c, plan.keys[cid]) for cid, c in plan.cases.items()])
            self._write(db, ChangeSet(events=plan.journey))  # the journey domain writes the timeline rows
        return [e.id for e in fresh]

    def _get_case(self, case_id: str) -> tuple[Case, CaseDue | None] | None:
        rows = self._all(f"SELECT {_ROW} WHERE c.id = ?", (case_id,))
        return _case_row(*rows[0][1:]) if rows else None

    def _case_events(self, case_id: str) -> list[CaseEvent]:
        return self._events_by("case_id", [case_id])

    def _set_case_dues(self, dues: dict[str, CaseDue]) -> None:
        with self._transaction() as db:
            ids = sorted(dues)
            states: dict[str, Case] = {}
            for chunk in chunks(ids):
                for cid, state in db.execute(f"SELECT id, state FROM cases WHERE id IN ({marks(len(chunk))})", chunk):
                    states[cid] = case_from_json(state)
            missing = [cid for cid in ids if cid not in states]
            if missing:
                raise NotFoundError(f"no case {', '.join(missing)}")
            db.executemany(
                "UPDATE cases SET dues = ?, due_key = ? WHERE id = ?",
                [(due_to_json(dues[cid]), due_key(states[cid], dues[cid]), cid) for cid in ids],
            )

    def _list_cases(
        self, where: CaseFilter, order: str, limit: int, after: tuple[str, str] | None
    ) -> list[tuple[Case, CaseDue | None]]:
        key = _KEYS[order]
        direction, cmp = ("ASC", ">") if order == "due" else ("DESC", "<")
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("r.customer_id", where.customer_id),
            ("c.assignee", where.assignee),
            ("c.team", where.team),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.statuses is not None:
            clauses.append(f"c.status IN ({marks(len(where.statuses))})")
            params.extend(where.statuses)
        if after is not None:
            clauses.append(f"(c.{key}, c.id) {cmp} (?, ?)")
            params.extend(after)
        sql = f"SELECT {_ROW}{' WHERE ' + ' AND '.join(clauses) if clauses else ''} "
        rows = self._all(f"{sql}ORDER BY c.{key} {direction}, c.id {direction} LIMIT ?", [*params, limit])
        return [_case_row(state, dues, cid) for _, state, dues, cid in rows]

    def _open_case_ids(self, after: str | None, limit: int) -> list[str]:
        rows = self._all(
            "SELECT id FROM cases WHERE status <> 'closed' AND id > ? ORDER BY id LIMIT ?", (after or "", limit)
        )
        return [r[0] for r in rows]

    def _case_counts(self) -> dict[str, int]:
        return {s: n for s, n in self._all("SELECT status, COUNT(*) FROM cases GROUP BY status")}


def _state_row(case: Case, key: str) -> tuple[Any, ...]:
    return (
        case.id,
        case.record_uid,
        case.status,
        case.assignee,
        case.team,
        event_time(case.created_at),
        event_time(case.updated_at),
        key,
        case_to_json(case),
    )
