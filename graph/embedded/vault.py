"""The embedded backend's vault domain: the ``secrets`` table, one row per (owner, kind)."""

from __future__ import annotations

import sqlite3

from ..ports.vault import Key
from ..vault import SealedUpdate, SecretItem
from .connection import EmbeddedBase, marks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    owner TEXT NOT NULL, kind TEXT NOT NULL, sealed TEXT NOT NULL, token TEXT NOT NULL, key_id TEXT NOT NULL,
    PRIMARY KEY (owner, kind)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS secrets_token ON secrets(kind, token);
CREATE INDEX IF NOT EXISTS secrets_key ON secrets(key_id, owner, kind);
"""


class EmbeddedVault(EmbeddedBase):
    """Sealed identifiers in SQLite."""

    def _create(self, db: sqlite3.Connection) -> None:
        super()._create(db)
        db.executescript(_SCHEMA)

    def _tables(self) -> list[str]:
        return [*super()._tables(), "secrets"]

    def _put_secrets(self, items: list[SecretItem]) -> list[Key]:
        changed: list[Key] = []
        with self._transaction() as db:
            for item in items:
                cur = db.execute(
                    "INSERT INTO secrets (owner, kind, sealed, token, key_id) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (owner, kind) DO UPDATE SET sealed = excluded.sealed, token = excluded.token, "
                    "key_id = excluded.key_id WHERE sealed <> excluded.sealed OR token <> excluded.token",
                    (item.owner, item.kind, item.sealed, item.token, item.key_id),
                )
                if cur.rowcount:
                    changed.append((item.owner, item.kind))
        return changed

    def _get_secret(self, owner: str, kind: str) -> SecretItem | None:
        rows = self._all("SELECT sealed, token FROM secrets WHERE owner = ? AND kind = ?", (owner, kind))
        return SecretItem(owner, kind, rows[0][0], rows[0][1]) if rows else None

    def _find_by_token(self, kind: str, token: str) -> list[str]:
        rows = self._all("SELECT owner FROM secrets WHERE kind = ? AND token = ? ORDER BY owner", (kind, token))
        return [r[0] for r in rows]

    def _secrets_with_key(self, key_id: str, after: Key | None, limit: int) -> list[SecretItem]:
        o, k = after if after is not None else ("", "")
        rows = self._all(
            "SELECT owner, kind, sealed, token FROM secrets "
            "WHERE key_id = ? AND (owner > ? OR (owner = ? AND kind > ?)) ORDER BY owner, kind LIMIT ?",
            (key_id, o, o, k, limit),
        )
        return [SecretItem(*r) for r in rows]

    def _secret_key_counts(self) -> dict[str, int]:
        return {kid: n for kid, n in self._all("SELECT key_id, count(*) FROM secrets GROUP BY key_id ORDER BY key_id")}

    def _replace_sealed(self, updates: list[SealedUpdate]) -> list[Key]:
        # One write transaction (BEGIN IMMEDIATE): no other writer runs between the compare and the swap.
        swapped: list[Key] = []
        with self._transaction() as db:
            for u in updates:
                cur = db.execute(
                    "UPDATE secrets SET sealed = ?, key_id = ? WHERE owner = ? AND kind = ? AND sealed = ?",
                    (u.new, u.key_id, u.owner, u.kind, u.old),
                )
                if cur.rowcount:
                    swapped.append((u.owner, u.kind))
        return swapped

    def _delete_secrets(self, owner: str, kinds: list[str] | None) -> int:
        with self._transaction() as db:
            if kinds is None:
                cur = db.execute("DELETE FROM secrets WHERE owner = ?", (owner,))
            else:
                cur = db.execute(
                    f"DELETE FROM secrets WHERE owner = ? AND kind IN ({marks(len(kinds))})", (owner, *kinds)
                )
            return cur.rowcount
