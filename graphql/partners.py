"""Partner API keys, stored hashed.

A key is ``c360_<partner>_<43 random characters>``: 256 bits from ``secrets``, shown once when it is
issued. Only its SHA-256 digest is kept (a fast hash suffices for random keys of this length; there is
nothing to guess). Each partner may send events of its own sources only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Partner:
    """A partner that may post events: its name, the sources it may send as, and its key's digest."""

    name: str
    sources: tuple[str, ...]
    key_sha256: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """As kept on disk (never the key itself)."""
        return {
            "name": self.name,
            "sources": list(self.sources),
            "key_sha256": self.key_sha256,
            "created_at": self.created_at.isoformat(),
        }


class PartnerKeys:
    """The partners of one data directory, in a JSON file (written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._by_digest: dict[str, Partner] = {}
        self._mtime: float | None = None

    def _load(self) -> dict[str, Partner]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._by_digest, self._mtime = {}, None
            return {}
        if mtime != self._mtime:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            partners = [
                Partner(r["name"], tuple(r["sources"]), r["key_sha256"], datetime.fromisoformat(r["created_at"]))
                for r in rows
            ]
            self._by_digest = {p.key_sha256: p for p in partners}
            self._mtime = mtime
        return {p.name: p for p in self._by_digest.values()}

    def _save(self, partners: dict[str, Partner]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps([p.to_json() for p in sorted(partners.values(), key=lambda p: p.name)], indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".partners-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def issue(self, name: str, sources: list[str] | None = None, *, replace: bool = False) -> str:
        """Create (or, with ``replace``, rotate) a partner's key; returns the key, which is not kept."""
        if not _NAME.match(name):
            raise InvalidInputError(f"partner name {name!r}: use lower-case letters, digits, '_', '.', '-'")
        allowed = tuple(sorted(set(sources or [name])))
        for source in allowed:
            if not _NAME.match(source):
                raise InvalidInputError(f"source name {source!r}: use lower-case letters, digits, '_', '.', '-'")
        with self._lock:
            partners = self._load()
            if name in partners and not replace:
                raise ConflictError(f"partner {name} exists; rotate its key with --rotate")
            key = f"c360_{name}_{secrets.token_urlsafe(32)}"
            partners[name] = Partner(name, allowed, _digest(key), datetime.now(UTC))
            self._save(partners)
            self._mtime = None
        return key

    def revoke(self, name: str) -> None:
        """Remove a partner and its key."""
        with self._lock:
            partners = self._load()
            if name not in partners:
                raise NotFoundError(f"no partner {name}")
            del partners[name]
            self._save(partners)
            self._mtime = None

    def list(self) -> list[Partner]:
        """Every partner, by name."""
        with self._lock:
            return sorted(self._load().values(), key=lambda p: p.name)

    def verify(self, key: str) -> Partner | None:
        """The partner whose key this is, or None."""
        digest = _digest(key)
        with self._lock:
            self._load()
            for known, partner in self._by_digest.items():
                if hmac.compare_digest(known, digest):
                    return partner
        return None
