"""The audit trail: who read or changed what, when, and with what outcome, in a hash chain.

An append-only JSON-lines file. Each entry carries its sequence number, the hash of the entry before
it and its own hash (SHA-256 over its canonical JSON without the hash), so an entry that is altered,
removed or reordered breaks the chain at that point, and :meth:`AuditLog.verify` names it. Appends are
flushed and fsynced before the call returns. Cutting entries off the end leaves a shorter valid chain:
keep the last hash that ``c360 audit verify`` prints somewhere else to catch that.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking the chain: entries read and the first broken one (None: intact)."""

    entries: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the whole chain holds."""
        return self.broken_at is None


class AuditLog:
    """An append-only, hash-chained audit log in one file."""

    def __init__(self, path: Path, *, clock: Any = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._last: tuple[int, str] | None = None  # (seq, hash) of the last entry, once read

    def _tail(self) -> tuple[int, str]:
        if self._last is None:
            seq, prev = 0, GENESIS
            if self.path.exists():
                with self.path.open("rb") as fh:
                    for line in fh:
                        if line.strip():
                            entry = json.loads(line)
                            seq, prev = int(entry["seq"]), str(entry["hash"])
            self._last = (seq, prev)
        return self._last

    def append(
        self, *, actor: str, role: str, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> dict[str, Any]:
        """Write one entry (who, what, when, outcome) and return it."""
        with self._lock:
            seq, prev = self._tail()
            entry: dict[str, Any] = {
                "seq": seq + 1,
                "at": self._clock().isoformat(),
                "actor": actor,
                "role": role,
                "action": action,
                "target": target,
                "outcome": outcome,
                "detail": detail,
                "prev": prev,
            }
            entry["hash"] = _digest(entry)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._last = (seq + 1, entry["hash"])
            return entry

    def last_hash(self) -> str:
        """The hash of the last entry (the genesis hash of an empty log)."""
        with self._lock:
            self._last = None
            return self._tail()[1]

    def verify(self) -> Verification:
        """Walk the chain; name the first entry that was altered, removed, reordered or is not an entry."""
        if not self.path.exists():
            return Verification(0)
        prev, expected, count = GENESIS, 1, 0
        with self.path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    seq = int(entry["seq"])
                    stored = entry["hash"]
                except (ValueError, KeyError, TypeError):
                    return Verification(count, expected, f"line {lineno} is not an audit entry")
                if seq != expected:
                    return Verification(count, expected, f"entry {expected} is missing (found {seq} next)")
                if entry.get("prev") != prev:
                    return Verification(count, seq, f"entry {seq} does not follow entry {seq - 1}")
                if _digest(entry) != stored:
                    return Verification(count, seq, f"entry {seq} was altered")
                prev, expected, count = stored, expected + 1, count + 1
        return Verification(count)
