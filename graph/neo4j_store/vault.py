"""The neo4j backend's vault domain: one ``(:Secret)`` node per (owner, kind).

Graph model::

    (:Secret {owner, kind, sealed, token, key_id})

unique on (owner, kind), indexed on (kind, token) for the blind index and on key_id for rotation.
Secrets stand alone: an owner is a record uid or an application id, and neither needs to be stored.

Writes that compare take the node's write lock first (``SET s._lock = true``, removed in the same
transaction, Neo4j's documented way to avoid lost updates): under read-committed isolation a value read
before the lock may already be stale when the write lands.
"""

from __future__ import annotations

from typing import Any

from neo4j import ManagedTransaction

from ..ports.vault import Key
from ..vault import SealedUpdate, SecretItem
from .connection import Neo4jBase

_ITEM = "s.owner AS owner, s.kind AS kind, s.sealed AS sealed, s.token AS token"


def _items(rows: list[dict[str, Any]]) -> list[SecretItem]:
    return [SecretItem(r["owner"], r["kind"], r["sealed"], r["token"]) for r in rows]


class Neo4jVault(Neo4jBase):
    """Sealed identifiers as ``(:Secret)`` nodes."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_secret_key IF NOT EXISTS FOR (s:Secret) REQUIRE (s.owner, s.kind) IS UNIQUE",
            "CREATE INDEX c360_secret_token IF NOT EXISTS FOR (s:Secret) ON (s.kind, s.token)",
            "CREATE INDEX c360_secret_key_id IF NOT EXISTS FOR (s:Secret) ON (s.key_id)",
            "CREATE INDEX c360_secret_owner IF NOT EXISTS FOR (s:Secret) ON (s.owner)",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Secret"]

    def _put_secrets(self, items: list[SecretItem]) -> list[Key]:
        rows = [
            {"owner": i.owner, "kind": i.kind, "sealed": i.sealed, "token": i.token, "key_id": i.key_id} for i in items
        ]

        def work(tx: ManagedTransaction) -> list[Key]:
            result = tx.run(
                "UNWIND $rows AS row MERGE (s:Secret {owner: row.owner, kind: row.kind}) "
                "SET s._lock = true "
                "WITH s, row, s.sealed IS NULL OR s.sealed <> row.sealed OR s.token <> row.token AS changed "
                "SET s.sealed = row.sealed, s.token = row.token, s.key_id = row.key_id REMOVE s._lock "
                "RETURN s.owner AS owner, s.kind AS kind, changed",
                rows=rows,
            )
            return [(r["owner"], r["kind"]) for r in result if r["changed"]]

        with self._session() as s:
            return s.execute_write(work)

    def _get_secret(self, owner: str, kind: str) -> SecretItem | None:
        rows = self._read(f"MATCH (s:Secret {{owner: $owner, kind: $kind}}) RETURN {_ITEM}", owner=owner, kind=kind)
        return _items(rows)[0] if rows else None

    def _find_by_token(self, kind: str, token: str) -> list[str]:
        rows = self._read(
            "MATCH (s:Secret {kind: $kind, token: $token}) RETURN s.owner AS owner ORDER BY owner",
            kind=kind,
            token=token,
        )
        return [r["owner"] for r in rows]

    def _secrets_with_key(self, key_id: str, after: Key | None, limit: int) -> list[SecretItem]:
        o, k = after if after is not None else ("", "")
        rows = self._read(
            "MATCH (s:Secret {key_id: $kid}) WHERE s.owner > $o OR (s.owner = $o AND s.kind > $k) "
            f"RETURN {_ITEM} ORDER BY owner, kind LIMIT $limit",
            kid=key_id,
            o=o,
            k=k,
            limit=limit,
        )
        return _items(rows)

    def _secret_key_counts(self) -> dict[str, int]:
        rows = self._read("MATCH (s:Secret) RETURN s.key_id AS kid, count(*) AS n ORDER BY kid")
        return {r["kid"]: r["n"] for r in rows}

    def _replace_sealed(self, updates: list[SealedUpdate]) -> list[Key]:
        rows = [{"owner": u.owner, "kind": u.kind, "old": u.old, "new": u.new, "key_id": u.key_id} for u in updates]

        def work(tx: ManagedTransaction) -> list[Key]:
            result = tx.run(
                "UNWIND $rows AS row MATCH (s:Secret {owner: row.owner, kind: row.kind}) "
                "SET s._lock = true "
                "WITH s, row, s.sealed = row.old AS ok "
                "SET s.sealed = CASE WHEN ok THEN row.new ELSE s.sealed END, "
                "s.key_id = CASE WHEN ok THEN row.key_id ELSE s.key_id END REMOVE s._lock "
                "RETURN s.owner AS owner, s.kind AS kind, ok",
                rows=rows,
            )
            return [(r["owner"], r["kind"]) for r in result if r["ok"]]

        with self._session() as s:
            return s.execute_write(work)

    def _delete_secrets(self, owner: str, kinds: list[str] | None) -> int:
        def work(tx: ManagedTransaction) -> int:
            record = tx.run(
                "MATCH (s:Secret {owner: $owner}) WHERE $kinds IS NULL OR s.kind IN $kinds "
                "WITH collect(s) AS found FOREACH (s IN found | DETACH DELETE s) RETURN size(found) AS n",
                owner=owner,
                kinds=kinds,
            ).single(strict=True)
            return int(record["n"])

        with self._session() as s:
            return s.execute_write(work)
