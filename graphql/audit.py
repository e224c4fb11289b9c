"""The audit trail: who read or changed what, when, and with what outcome, in a hash chain.

An append-only JSON-lines file. Each entry carries its sequence number, the hash of the entry before
it and its own hash (SHA-256 over its canonical JSON without the hash), so an entry that is altered,
removed or reordered breaks the chain at that point, and :meth:`AuditLog.verify` names it. An append
returns once its entry is flushed and fsynced (group-committed with concurrent ones). Cutting entries
off the end leaves a shorter valid chain: keep the last hash that ``c360 audit verify`` prints
somewhere else to catch that.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import queue
import threading
from concurrent.futures import Future
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
    """An append-only, hash-chained audit log in one file.

    Appends are group-committed: entries are chained in the order they are submitted, and one writer
    thread writes whatever has queued up, fsyncs once and then completes every entry of that write. A
    caller learns its entry is durable when its future completes, so many concurrent requests share one
    fsync. If a write fails, its entries fail (the caller must not answer as if it was audited) and the
    chain continues from what is on disk.
    """

    def __init__(self, path: Path, *, clock: Any = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._last: tuple[int, str] | None = None  # (seq, hash) of the last entry, once read
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[dict[str, Any]]] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

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

    def submit(
        self, *, actor: str, role: str, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> Future[dict[str, Any]]:
        """Chain one entry (who, what, when, outcome) and queue it; the future completes once it is on disk."""
        done: Future[dict[str, Any]] = Future()
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
            self._last = (seq + 1, entry["hash"])
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="c360-audit", daemon=True)
                self._writer.start()
            self._queue.put((entry, done))  # under the lock: the queue keeps the chain's order
        return done

    def append(
        self, *, actor: str, role: str, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> dict[str, Any]:
        """Write one entry and return it once it is on disk."""
        return self.submit(
            actor=actor, role=role, action=action, target=target, outcome=outcome, detail=detail
        ).result()

    async def record(
        self, *, actor: str, role: str, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> dict[str, Any]:
        """:meth:`append` for async code: waits for the group commit without blocking the event loop."""
        done = self.submit(actor=actor, role=role, action=action, target=target, outcome=outcome, detail=detail)
        return await asyncio.wrap_future(done)

    def close(self) -> None:
        """Let the writer finish what is queued, then stop it."""
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._queue.put(None)
            writer.join(timeout=10)
        self._writer = None

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while True:  # everything queued meanwhile goes into the same write and fsync
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e, _ in batch)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                with self._lock:
                    self._last = None  # continue the chain from what is on disk
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for entry, done in batch:
                    done.set_result(entry)
            if stop:
                return

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
