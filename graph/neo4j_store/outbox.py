"""The neo4j backend's outbox domain: ``(:OutboxMessage)`` nodes.

Graph model::

    (:OutboxMessage {id, channel, message, status, attempts, next_attempt_at, due, last_error,
                     lease_owner, lease_until, sent_at, provider_id})
    (:OutboxLock {name: 'outbox'})

Every outbox write first writes the lock node, so Neo4j's lock on it serialises them across processes
and what the transaction reads next is committed state: a claim's read and its update are one step, and
two workers never lease one message. ``due`` (indexed) is when a message can next be claimed. Reset
keeps the lock node (a label of its own, not among the deleted ones).
"""

from __future__ import annotations

from typing import Any

from neo4j import ManagedTransaction

from ..outbox import OutboxItem, OutboxMessage, message_to_json
from ..ports.outbox import OUTBOX_COLUMNS, Change, Claim, item_from_row, new_messages, state_values
from .connection import Neo4jBase

_FIELDS = ", ".join(f"m.{c} AS {c}" for c in OUTBOX_COLUMNS)
_LOCK = "MERGE (l:OutboxLock {name: 'outbox'}) SET l.writes = coalesce(l.writes, 0) + 1"
_SET_STATE = "UNWIND $rows AS row MATCH (m:OutboxMessage {id: row.id}) SET " + ", ".join(
    f"m.{c} = row.{c}" for c in OUTBOX_COLUMNS[3:]
)


def _read_items(tx: ManagedTransaction, ids: list[str]) -> dict[str, OutboxItem]:
    rows = tx.run(f"UNWIND $ids AS id MATCH (m:OutboxMessage {{id: id}}) RETURN {_FIELDS}", ids=ids)
    return {i.id: i for i in (item_from_row(r.data()) for r in rows)}


def _write_states(tx: ManagedTransaction, items: list[OutboxItem]) -> None:
    if items:
        tx.run(_SET_STATE, rows=[{"id": i.id, **state_values(i)} for i in items]).consume()


class Neo4jOutbox(Neo4jBase):
    """The notification outbox as ``(:OutboxMessage)`` nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_outbox_id IF NOT EXISTS FOR (m:OutboxMessage) REQUIRE m.id IS UNIQUE",
            "CREATE INDEX c360_outbox_due IF NOT EXISTS FOR (m:OutboxMessage) ON (m.due)",
            "CREATE INDEX c360_outbox_status IF NOT EXISTS FOR (m:OutboxMessage) ON (m.status)",
            "CREATE CONSTRAINT c360_outbox_lock IF NOT EXISTS FOR (l:OutboxLock) REQUIRE l.name IS UNIQUE",
            "MERGE (:OutboxLock {name: 'outbox'})",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "OutboxMessage"]

    def _enqueue(self, messages: list[OutboxMessage]) -> list[str]:
        def work(tx: ManagedTransaction) -> list[str]:
            tx.run(_LOCK).consume()
            fresh = new_messages(messages, _read_items(tx, [m.id for m in messages]))
            rows: list[dict[str, Any]] = [
                {"id": i.id, "channel": i.message.channel, "message": message_to_json(i.message), **state_values(i)}
                for i in fresh
            ]
            if rows:
                tx.run("UNWIND $rows AS row CREATE (m:OutboxMessage) SET m = row", rows=rows).consume()
            return [i.id for i in fresh]

        with self._session() as s:
            return s.execute_write(work)

    def _claim(self, now: str, limit: int, channels: list[str], claim: Claim) -> list[OutboxItem]:
        def work(tx: ManagedTransaction) -> list[OutboxItem]:
            tx.run(_LOCK).consume()
            rows = tx.run(
                "MATCH (m:OutboxMessage) WHERE m.due <= $now AND m.channel IN $channels "
                f"RETURN {_FIELDS} ORDER BY due, id LIMIT $limit",
                now=now,
                channels=channels,
                limit=limit,
            )
            taken = claim([item_from_row(r.data()) for r in rows])
            _write_states(tx, taken)
            return taken

        with self._session() as s:
            return s.execute_write(work)

    def _change(self, ids: list[str], change: Change) -> list[OutboxItem]:
        def work(tx: ManagedTransaction) -> list[OutboxItem]:
            tx.run(_LOCK).consume()
            changed = change(_read_items(tx, ids))
            _write_states(tx, changed)
            return changed

        with self._session() as s:
            return s.execute_write(work)

    def _outbox_items(self, ids: list[str]) -> dict[str, OutboxItem]:
        rows = self._read(f"UNWIND $ids AS id MATCH (m:OutboxMessage {{id: id}}) RETURN {_FIELDS}", ids=ids)
        return {i.id: i for i in map(item_from_row, rows)}

    def _outbox_counts(self) -> dict[str, int]:
        rows = self._read("MATCH (m:OutboxMessage) RETURN m.status AS status, count(*) AS n")
        return {r["status"]: int(r["n"]) for r in rows}

    def _outbox_list(self, status: str, after: str | None, limit: int) -> list[OutboxItem]:
        rows = self._read(
            f"MATCH (m:OutboxMessage) WHERE m.status = $status AND m.id > $after RETURN {_FIELDS} "
            "ORDER BY id LIMIT $limit",
            status=status,
            after=after or "",
            limit=limit,
        )
        return [item_from_row(r) for r in rows]
