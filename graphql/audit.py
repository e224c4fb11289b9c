"""The audit trail: who read or changed what, when, and with what outcome; sealed, chained, anchored.

An append-only JSON-lines file (mode 0600). Each entry carries its sequence number, the hash of the
entry before it (``prev``), its own hash (SHA-256 over its canonical JSON without ``hash`` and ``mac``)
and its **seal**: ``mac``, HMAC-SHA256 of that hash under the secret audit key named by ``kid``. So:

- an entry altered, removed or reordered breaks the chain at that point;
- an entry altered and the chain re-hashed (which needs no key) fails its seal;
- an entry appended by anyone without the key fails its seal;
- cutting entries off the end leaves a shorter valid chain, which is why there is a **head**: the
  count and the last hash (:meth:`AuditLog.head`, ``c360 audit head``). Ship heads to a log kept
  elsewhere and check the trail against one (``c360 audit verify --head COUNT:HASH``). Beside the log,
  ``audit.log.head`` (the **anchor**) holds a sealed head too, rewritten at most every
  :data:`ANCHOR_INTERVAL` seconds and when the log closes: a log cut back behind its anchor (to nothing,
  say) no longer verifies, and no writer appends to it.

The key ring is a JSON file (``audit-keys.json`` beside the log, generated on first use with mode 0600;
or ``audit.key_file``, which must exist). A rotation (:meth:`AuditLog.rotate_key`, ``c360 audit
rotate-key``) adds a key and makes it current; verification knows the old ones, and an entry sealed with
a key older than one already used before it is refused (a leaked retired key cannot add entries).
Anyone who can read the key can forge entries: keep it where the log's writers are the only readers.

Writes are group-committed: an append returns once its entry is fsynced, and if the write fails its
caller gets :class:`AuditUnavailableError` (a 503), so nothing is answered as if it had been audited.
Under the file lock, each writer first looks at the end of the log: a torn last line (a crash in the
middle of a write) is moved to ``audit.log.torn`` and the repair is itself an entry; a last entry that
does not verify, or a log shorter than what this process or the anchor saw, is refused with the reason
(:meth:`AuditLog.problem`, which ``/readyz`` reports). Each value of an entry is cut to
:data:`MAX_VALUE` characters, with a marker.

This module is the writer (:class:`AuditLog`: append, record, the group commit, open, close, rotate,
head); :mod:`~c360.graphql.audit_file` holds what a writer checks under the lock (the open file, the
key ring, the end of the log, the anchor), :mod:`~c360.graphql.audit_verify` the seal and the walk
over the log (:class:`Verification`), and :mod:`~c360.graph.key_ring` the key ring's file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Union

import orjson
from c360.graph.errors import ConfigError
from c360.graph.key_ring import write_file as _write_file

from .audit_file import (
    DEFAULT_KEY_FILE,
    MAX_TORN,
    MAX_VALUE,
    SYSTEM_ACTOR,
    AuditFile,
    AuditUnavailableError,
    Tail,
    bounded,
)
from .audit_verify import (
    GENESIS,
    AuditKeys,
    Head,
    Verification,
    anchor_text,
    last_line,
    read_keys,
    verify_log,
)
from .audit_verify import digest as _digest

# what the trail's callers import from here (the pieces live in audit_file, audit_verify and key_ring)
__all__ = [
    "ANCHOR_INTERVAL",
    "DEFAULT_KEY_FILE",
    "GENESIS",
    "MAX_TORN",
    "MAX_VALUE",
    "SYSTEM_ACTOR",
    "AuditKeys",
    "AuditLog",
    "AuditUnavailableError",
    "Head",
    "Verification",
    "bounded",
    "is_audited",
    "mark_audited",
    "read_keys",
]

log = logging.getLogger(__name__)

#: at most this many seconds between two anchor rewrites (also rewritten on close)
ANCHOR_INTERVAL = 1.0

_FIELDS = ("actor", "role", "action", "target", "outcome", "detail")


def _complete(waiter: _Waiter, outcome: dict[str, Any] | BaseException) -> None:
    """Complete a caller's future with its entry or the write's error, from whichever thread flushed."""
    if isinstance(waiter, Future):
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
        return
    loop = waiter.get_loop()

    def settle() -> None:
        if waiter.done():
            return
        if isinstance(outcome, BaseException):
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


_Waiter = Union[Future[dict[str, Any]], "asyncio.Future[dict[str, Any]]"]


def mark_audited(exc: BaseException) -> BaseException:
    """Note on ``exc`` that its refusal has its audit entry (the HTTP layer audits those that do not)."""
    with contextlib.suppress(AttributeError, TypeError):
        exc.c360_audited = True  # type: ignore[attr-defined]
    return exc


def is_audited(exc: BaseException) -> bool:
    """Whether ``exc``'s refusal already has its audit entry."""
    return bool(getattr(exc, "c360_audited", False))


class AuditLog(AuditFile):
    """An append-only, sealed, hash-chained audit log in one file, safe to share between processes.

    Appends are group-committed without a thread hand-off: whoever flushes takes everything pending,
    locks the file (``flock``, so a server and a command line run beside it take turns), checks the end
    of the log, seals and chains the entries onto the last one on disk, writes them, fsyncs once and
    completes each caller. Synchronous callers flush at once; async callers (the API) share one flush
    per event loop iteration, so a burst of requests costs one write and one fsync. A caller learns its
    entry is durable when its call returns; if the write fails, its entries fail with
    :class:`AuditUnavailableError` (the caller must not answer as if it was audited).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Any = None,
        key_file: Path | None = None,
        anchor_interval: float = ANCHOR_INTERVAL,
    ) -> None:
        super().__init__(path, clock=clock, key_file=key_file)
        self.anchor_interval = anchor_interval
        self._lock = threading.Lock()  # the pending entries
        self._write_lock = threading.Lock()  # one flush at a time within this process
        self._pending: list[tuple[dict[str, Any], _Waiter]] = []
        self._scheduled = False
        self._failure: str | None = None

    @property
    def failure(self) -> str | None:
        """Why the last write failed (None: it did not)."""
        return self._failure

    # -- appending -------------------------------------------------------------------------------

    def _queue(self, fields: Mapping[str, Any], waiter: _Waiter) -> None:
        """Queue an entry (the caller holds ``_lock``); it gets its place in the chain when written."""
        entry = {"at": self._clock().isoformat(), **{k: bounded(fields.get(k)) for k in _FIELDS}}
        self._pending.append((entry, waiter))

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
        """Write whatever is pending, bring the anchor up to date and close the file."""
        with contextlib.suppress(OSError):
            if self._tail is not None and (self._anchored is None or self._anchored[0] != self._tail.seq):
                self._flush(probe=Future(), anchor=True)
            else:
                self._flush()
        with self._write_lock:
            self._close_file()

    def open(self) -> None:
        """Look at the log now, as the next write will: repair a torn tail (an entry says so) or raise.

        :class:`AuditUnavailableError` says why the log cannot take entries. After a failed write, an
        ``audit_probe`` entry is written to learn whether it can again (and to record the outage).
        """
        if self._failure is not None:
            self.append(
                actor=SYSTEM_ACTOR,
                role="system",
                action="audit_probe",
                target=self.path.name,
                outcome="ok",
                detail=f"writes had failed: {self._failure}",
            )
            return
        done: Future[dict[str, Any]] = Future()
        self._flush(probe=done)
        done.result()

    def problem(self) -> str | None:
        """Why the log cannot take entries now (for ``/readyz``); None when it can."""
        try:
            self.open()
        except OSError as exc:
            return str(exc)
        return None

    def rotate_key(self, *, actor: str, role: str = "cli") -> str:
        """Add a new current key to the ring (under the log's lock) and record it; returns its id."""
        with self._write_lock:
            try:
                fd = self._file()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    keys = self._key_ring(fd)
                    notes = self._examine(fd, keys)
                    new = keys.rotated()
                    _write_file(self.keys_path, new.encode(), replace=True)
                    self._keys, self._keys_stamp = new, self._stamp()
                    note = self._system("audit_key_rotated", "ok", f"from key {keys.current} to {new.current}")
                    note |= {"actor": bounded(actor), "role": bounded(role), "target": new.current}
                    self._write(fd, new, [*notes, note])
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except ConfigError:
                raise
            except Exception as exc:
                raise self._unavailable(exc) from exc
            return new.current

    def _write_anchor(self, keys: AuditKeys) -> None:
        tail = self._tail
        if tail is None:
            return
        kid = keys.current
        doc = {
            "version": 1,
            "count": tail.seq,
            "hash": tail.hash,
            "at": self._clock().isoformat(),
            "kid": kid,
            "mac": keys.mac(kid, anchor_text(tail.seq, tail.hash)),
        }
        _write_file(self.anchor_path, json.dumps(doc) + "\n", replace=True)
        self._anchored = (tail.seq, time.monotonic())

    def _write(self, fd: int, keys: AuditKeys, entries: Iterable[dict[str, Any]], *, anchor: bool = False) -> None:
        """Seal, chain and write ``entries`` after the known tail, fsync; rewrite the anchor when it is due."""
        tail = self._tail
        assert tail is not None
        seq, prev = tail.seq, tail.hash
        kid = keys.current
        lines = []
        for entry in entries:
            seq += 1
            entry.pop("hash", None)
            entry.pop("mac", None)
            entry |= {"seq": seq, "prev": prev, "kid": kid}
            entry["hash"] = prev = _digest(entry)
            entry["mac"] = keys.mac(kid, prev)
            lines.append(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))
        if lines:
            data = b"".join(lines)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):  # no half-written line stays behind
                    os.ftruncate(fd, tail.size)
                raise
            self._tail = Tail(tail.ino, tail.size + len(data), seq, prev)
        last = self._anchored
        if anchor or (lines and (last is None or time.monotonic() - last[1] >= self.anchor_interval)):
            try:
                self._write_anchor(keys)
            except OSError as exc:  # the entries are durable: the anchor is rewritten with a later write
                log.warning("the audit anchor %s could not be rewritten: %s", self.anchor_path.name, exc)

    def _flush_soon(self) -> None:
        with self._lock:
            self._scheduled = False
        self._flush()

    def _flush(self, probe: Future[dict[str, Any]] | None = None, *, anchor: bool = False) -> None:
        """Write what is pending (``probe``: even if nothing is, to check the log; ``anchor``: rewrite it)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch and probe is None:
                return
            try:
                fd = self._file()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    keys = self._key_ring(fd)
                    notes = self._examine(fd, keys)
                    self._write(fd, keys, [*notes, *(entry for entry, _ in batch)], anchor=anchor)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except Exception as exc:  # whatever it is, no caller may take its entry as written
                self._close_file()
                failure = self._unavailable(exc)
                self._failure = str(failure)
                for _, waiter in batch:
                    _complete(waiter, failure)
                if probe is not None:
                    _complete(probe, failure)
                return
            self._failure = None
        for entry, waiter in batch:
            _complete(waiter, entry)
        if probe is not None:
            _complete(probe, {})

    # -- reading ---------------------------------------------------------------------------------

    def head(self) -> Head:
        """The log's head (count and last hash) once its last entry verifies; AuditUnavailableError if not."""
        if not self.path.exists():
            return Head(0, GENESIS)
        keys = read_keys(self.keys_path) if self.keys_path.exists() else None
        with self.path.open("rb") as fh:
            fd = fh.fileno()
            size = os.fstat(fd).st_size
            line = last_line(fd, size)
        if not line.strip():
            return Head(0, GENESIS)
        try:
            entry = json.loads(line)
            head = Head(int(entry["seq"]), str(entry["hash"]))
        except (ValueError, KeyError, TypeError):
            raise self._broken("its last complete line is not an audit entry") from None
        if _digest(entry) != head.hash or keys is None or not keys.check(entry.get("kid"), head.hash, entry.get("mac")):
            raise self._broken(f"its last entry ({head.count}) does not verify")
        return head

    def last_hash(self) -> str:
        """The hash of the last entry on disk (the genesis hash of an empty log)."""
        if not self.path.exists():
            return GENESIS
        with self.path.open("rb") as fh:
            line = last_line(fh.fileno(), os.fstat(fh.fileno()).st_size)
        return str(json.loads(line)["hash"]) if line.strip() else GENESIS

    def verify(self, head: Head | None = None) -> Verification:
        """Walk the log; name the first entry altered, removed, reordered, forged, or cut off.

        ``head``: one kept elsewhere (``c360 audit head``); the log must still hold that entry, with
        that hash. The anchor beside the log is checked the same way.
        """
        return verify_log(self.path, self.keys_path, self.anchor_path, head)
