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
import contextlib
import fcntl
import hashlib
import json
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Union

GENESIS = "0" * 64


_Waiter = Union[Future[dict[str, Any]], "asyncio.Future[dict[str, Any]]"]


def _complete(waiter: _Waiter, outcome: dict[str, Any] | OSError) -> None:
    """Complete a caller's future with its entry or the write's error, from whichever thread flushed."""
    if isinstance(waiter, Future):
        if isinstance(outcome, OSError):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
        return
    loop = waiter.get_loop()

    def settle() -> None:
        if waiter.done():
            return
        if isinstance(outcome, OSError):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    try:
        same = asyncio.get_running_loop() is loop
    except RuntimeError:
        same = False
    if same:
        settle()
    else:
        loop.call_soon_threadsafe(settle)


def _last_line(fh: BinaryIO, block: int = 8192) -> bytes:
    """The last non-empty line of an open file, reading backwards from its end."""
    end = fh.seek(0, os.SEEK_END)
    data = b""
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        data = fh.read(end - start) + data
        end = start
        lines = [line for line in data.split(b"\n") if line.strip()]
        if len(lines) > 1 or (lines and start == 0):
            return lines[-1]
    return b""


def _tail_of(fh: BinaryIO) -> tuple[int, str]:
    """(seq, hash) of the last entry in the file; (0, genesis) when it has none."""
    line = _last_line(fh)
    if not line:
        return 0, GENESIS
    entry = json.loads(line)
    return int(entry["seq"]), str(entry["hash"])


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
    """An append-only, hash-chained audit log in one file, safe to share between processes.

    Appends are group-committed without a thread hand-off: whoever flushes takes everything pending,
    locks the file (``flock``, so a server and a command line run beside it take turns), chains the
    entries onto the last one on disk, writes them, fsyncs once and completes each caller. Synchronous
    callers flush at once; async callers (the API) share one flush per event loop iteration, so a burst
    of requests costs one write and one fsync. A caller learns its entry is durable when its call
    returns; if the write fails, its entries fail (the caller must not answer as if it was audited).
    """

    def __init__(self, path: Path, *, clock: Any = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()  # the pending entries
        self._write_lock = threading.Lock()  # one flush at a time within this process
        self._pending: list[tuple[dict[str, Any], _Waiter]] = []
        self._scheduled = False
        self._fh: BinaryIO | None = None
        self._fh_path: Path | None = None

    def _queue(self, fields: dict[str, Any], waiter: _Waiter) -> None:
        """Queue an entry (the caller holds ``_lock``); it gets its place in the chain when written."""
        self._pending.append(({"at": self._clock().isoformat(), **fields}, waiter))

    def append(
        self, *, actor: str, role: str, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> dict[str, Any]:
        """Write one entry (who, what, when, outcome) and return it once it is on disk."""
        fields = {"actor": actor, "role": role, "action": action, "target": target, "outcome": outcome}
        done: Future[dict[str, Any]] = Future()
        with self._lock:
            self._queue({**fields, "detail": detail}, done)
        self._flush()
        return done.result()

    async def record(
        self, *, actor: str, role: str, action: str, target: str | None, outcome: str, detail: str | None = None
    ) -> dict[str, Any]:
        """:meth:`append` for async code: the entries of one event loop iteration share a flush."""
        fields = {"actor": actor, "role": role, "action": action, "target": target, "outcome": outcome}
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        with self._lock:
            self._queue({**fields, "detail": detail}, done)
            schedule, self._scheduled = not self._scheduled, True
        if schedule:
            loop.call_soon(self._flush_soon)
        return await done

    def close(self) -> None:
        """Write whatever is pending and close the file."""
        self._flush()
        with self._write_lock:
            self._close_file()

    def _file(self) -> BinaryIO:
        """The open log (kept open between flushes; reopened if the path changed)."""
        if self._fh is None or self._fh_path != self.path:
            self._close_file()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a+b")
            self._fh_path = self.path
        return self._fh

    def _close_file(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def _flush_soon(self) -> None:
        with self._lock:
            self._scheduled = False
        self._flush()

    def _flush(self) -> None:
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                fh = self._file()
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    seq, prev = _tail_of(fh)
                    lines = []
                    for entry, _ in batch:
                        seq += 1
                        entry |= {"seq": seq, "prev": prev}
                        entry.pop("hash", None)
                        entry["hash"] = prev = _digest(entry)
                        lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
                    fh.write("".join(lines).encode())
                    fh.flush()
                    os.fsync(fh.fileno())
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
            except (OSError, ValueError, KeyError) as exc:
                self._close_file()
                failure = (
                    exc if isinstance(exc, OSError) else OSError(f"the audit log {self.path} is unreadable: {exc}")
                )
                for _, waiter in batch:
                    _complete(waiter, failure)
                return
        for entry, waiter in batch:
            _complete(waiter, entry)

    def last_hash(self) -> str:
        """The hash of the last entry on disk (the genesis hash of an empty log)."""
        if not self.path.exists():
            return GENESIS
        with self.path.open("rb") as fh:
            return _tail_of(fh)[1]

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
