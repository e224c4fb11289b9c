"""The embedded backend's insights domain: the ``insights``, ``segment_members`` and ``segment_changes`` tables.

``insights`` holds the latest insight per (customer, name); ``segment_members`` one row per (segment,
customer) in the segment, keyed for keyset pages by customer id; ``segment_changes`` every change id
processed (with whether it took effect), so that replays are no-ops. Rows are keyed by the active customer
they were written to; reads join ``customers`` to keep active ones only.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ..codecs import parse_event_time
from ..insights import Insight, Membership, SegmentChange, anchor_records, insight_from_row, insight_row
from ..models import ChangeSet, event_time
from ..ports.insights import plan_segment_changes
from .connection import EmbeddedBase, chunks, marks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS insights (
    customer_id TEXT NOT NULL, name TEXT NOT NULL, model TEXT NOT NULL, computed_at TEXT NOT NULL,
    score REAL, label TEXT, detail TEXT NOT NULL, PRIMARY KEY (customer_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segment_members (
    segment_id TEXT NOT NULL, customer_id TEXT NOT NULL, since TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (segment_id, customer_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segment_members_customer ON segment_members(customer_id, segment_id);
CREATE TABLE IF NOT EXISTS segment_changes (
    id TEXT PRIMARY KEY, segment_id TEXT NOT NULL, customer_id TEXT NOT NULL, kind TEXT NOT NULL,
    at TEXT NOT NULL, effect INTEGER NOT NULL) WITHOUT ROWID;
"""

_UPSERT = (
    "INSERT INTO insights (customer_id, name, model, computed_at, score, label, detail) "
    "VALUES (:customer_id, :name, :model, :computed_at, :score, :label, :detail) "
    "ON CONFLICT(customer_id, name) DO UPDATE SET model = excluded.model, computed_at = excluded.computed_at, "
    "score = excluded.score, label = excluded.label, detail = excluded.detail"
)
_ACTIVE = "JOIN customers c ON c.id = m.customer_id AND c.status = 'active'"


def _membership(segment_id: str, customer_id: str, since: str, reason: str) -> Membership:
    return Membership(segment_id, customer_id, parse_event_time(since), reason)


class EmbeddedInsights(EmbeddedBase):
    """Insights and segment memberships in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)  # IF NOT EXISTS: an older file gains the tables when it is opened

    def _tables(self) -> list[str]:
        return [*super()._tables(), "insights", "segment_members", "segment_changes"]

    def _put_insights(self, insights: list[Insight]) -> int:
        with self._transaction() as db:
            active = self._resolve_many(sorted({i.customer_id for i in insights}))
            rows: dict[tuple[str, str], dict[str, object]] = {}
            for insight in insights:
                cid = active.get(insight.customer_id)
                if cid is not None:  # the later of two for one (customer, name) wins
                    rows[(cid, insight.name)] = insight_row(insight, cid, event_time(insight.computed_at))
            db.executemany(_UPSERT, list(rows.values()))
        return len(rows)

    def _insights_of(self, customer_ids: list[str]) -> dict[str, list[Insight]]:
        out: dict[str, list[Insight]] = defaultdict(list)
        select = "SELECT customer_id, name, model, computed_at, score, label, detail FROM insights"
        for cid, name, model, at, score, label, detail in self._of_customers(select, "customer_id, name", customer_ids):
            out[cid].append(insight_from_row(cid, name, model, parse_event_time(at), score, label, detail))
        return dict(out)

    def _of_customers(self, select: str, order_by: str, customer_ids: list[str]) -> Iterator[Any]:
        """The rows of ``select`` for ``customer_ids``, ordered by ``order_by`` in each chunk of ids."""
        for chunk in chunks(customer_ids):
            yield from self._all(f"{select} WHERE customer_id IN ({marks(len(chunk))}) ORDER BY {order_by}", chunk)

    def _apply_segment_changes(self, changes: list[SegmentChange]) -> list[SegmentChange]:
        # BEGIN IMMEDIATE (or the open exclusive() transaction): reads, plan and writes under the write lock.
        with self._transaction() as db:
            ids = sorted({c.id for c in changes})
            done: set[str] = set()
            for chunk in chunks(ids):
                sql = f"SELECT id FROM segment_changes WHERE id IN ({marks(len(chunk))})"
                done.update(r[0] for r in db.execute(sql, chunk))
            active = self._resolve_many(sorted({c.customer_id for c in changes}))
            customers = sorted(set(active.values()))
            segments = {c.segment_id for c in changes}
            members: set[tuple[str, str]] = set()
            for chunk in chunks(customers):
                for seg, cid in db.execute(
                    f"SELECT segment_id, customer_id FROM segment_members WHERE customer_id IN ({marks(len(chunk))})",
                    chunk,
                ):
                    if seg in segments:
                        members.add((seg, cid))
            plan = plan_segment_changes(changes, done, active, members)
            anchors: list[tuple[str, str, str]] = []
            for chunk in chunks(sorted({c.customer_id for c in plan.applied})):
                anchors.extend(
                    db.execute(
                        "SELECT customer_id, uid, json_extract(data, '$.observed_at') FROM records "
                        f"WHERE customer_id IN ({marks(len(chunk))})",
                        chunk,
                    )
                )
            db.executemany("DELETE FROM segment_members WHERE segment_id = ? AND customer_id = ?", plan.removed)
            db.executemany(
                "INSERT INTO segment_members (segment_id, customer_id, since, reason) VALUES (?, ?, ?, ?)",
                [(m.segment_id, m.customer_id, event_time(m.since), m.reason) for m in plan.added],
            )
            db.executemany(
                "INSERT INTO segment_changes (id, segment_id, customer_id, kind, at, effect) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (c.id, c.segment_id, active[c.customer_id], c.kind, event_time(c.at), int(effect))
                    for c, effect in plan.seen
                ],
            )
            # the journey domain writes the timeline rows
            self._write(db, ChangeSet(events=plan.journey(anchor_records(anchors))))
        return plan.applied

    def _segments_of(self, customer_ids: list[str]) -> dict[str, list[Membership]]:
        out: dict[str, list[Membership]] = defaultdict(list)
        select = "SELECT segment_id, customer_id, since, reason FROM segment_members"
        for row in self._of_customers(select, "customer_id, segment_id", customer_ids):
            out[row[1]].append(_membership(*row))
        return dict(out)

    def _segment_members(self, segment_id: str, limit: int, after: str | None) -> list[Membership]:
        rows = self._all(
            f"SELECT m.segment_id, m.customer_id, m.since, m.reason FROM segment_members m {_ACTIVE} "
            "WHERE m.segment_id = ? AND m.customer_id > ? ORDER BY m.customer_id LIMIT ?",
            (segment_id, after or "", limit),
        )
        return [_membership(*row) for row in rows]

    def _segment_counts(self) -> dict[str, int]:
        rows = self._all(f"SELECT m.segment_id, COUNT(*) FROM segment_members m {_ACTIVE} GROUP BY m.segment_id")
        return {seg: n for seg, n in rows}
