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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

import orjson
from c360.graph.errors import ConfigError, StoreUnavailableError

log = logging.getLogger(__name__)

GENESIS = "0" * 64
#: most characters of one value of an entry (actor, role, action, target, outcome, detail)
MAX_VALUE = 256
#: the key ring's file name beside the log, unless a key file is configured
DEFAULT_KEY_FILE = "audit-keys.json"
#: at most this many seconds between two anchor rewrites (also rewritten on close)
ANCHOR_INTERVAL = 1.0
#: a torn last line longer than this is not a cut-short write: the log is refused, not repaired
MAX_TORN = 1 << 20
#: who writes the trail's own entries (repairs, rotations)
SYSTEM_ACTOR = "c360"

_KEY_ID = re.compile(r"^[a-z0-9_-]{1,32}$")
_SECRET_BYTES = 32
_FIELDS = ("actor", "role", "action", "target", "outcome", "detail")


class AuditUnavailableError(StoreUnavailableError, OSError):
    """The audit trail cannot take entries now (its write failed, or it is broken): refuse the work.

    An OSError too, as the write failure it stands for; a StoreUnavailableError, so the API answers 503.
    Its message names the log's file, never its full path.
    """

    retry_after = 5.0


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


def bounded(value: object, limit: int = MAX_VALUE) -> str | None:
    """``value`` as text of at most ``limit`` characters (and a marker saying how much was cut)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if not text.isascii():  # a lone surrogate (from a request's JSON, say) becomes "?"
        text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters]"


def _canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def _digest(entry: Mapping[str, Any]) -> str:
    """The entry's hash: SHA-256 of its canonical JSON without ``hash`` and ``mac``."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


# -- the key ring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditKeys:
    """The audit key ring: key id -> secret (oldest first), and the id new entries are sealed with."""

    current: str
    secrets: Mapping[str, bytes]
    created: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.secrets or self.current not in self.secrets:
            raise ConfigError("an audit key ring needs its current key")
        for kid, secret in self.secrets.items():
            if not _KEY_ID.match(kid):
                raise ConfigError(f"audit key id {kid!r}: lower-case letters, digits, '-' and '_' (at most 32)")
            if len(secret) < 16:
                raise ConfigError(f"audit key {kid}: the secret is shorter than 16 bytes")
        object.__setattr__(self, "secrets", MappingProxyType(dict(self.secrets)))
        object.__setattr__(self, "created", MappingProxyType(dict(self.created)))

    def __repr__(self) -> str:  # never the secrets
        return f"AuditKeys(current={self.current!r}, ids={list(self.secrets)!r})"

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids, oldest first."""
        return tuple(self.secrets)

    def rank(self, kid: str) -> int:
        """The age of a key in the ring: 0 for the oldest (-1: not in the ring)."""
        return self.ids.index(kid) if kid in self.secrets else -1

    def mac(self, kid: str, text: str) -> str:
        """HMAC-SHA256 of ``text`` under key ``kid``, hex."""
        return hmac.new(self.secrets[kid], text.encode(), hashlib.sha256).hexdigest()

    def check(self, kid: object, text: str, mac: object) -> bool:
        """Whether ``mac`` is ``text``'s HMAC under key ``kid`` of the ring."""
        if not isinstance(kid, str) or kid not in self.secrets or not isinstance(mac, str):
            return False
        return hmac.compare_digest(self.mac(kid, text), mac)

    def rotated(self) -> AuditKeys:
        """A copy with a new current key (``k<n+1>``); the old keys stay, for verification."""
        numbers = [int(k[1:]) for k in self.secrets if re.fullmatch(r"k[0-9]+", k)]
        kid = f"k{max(numbers, default=0) + 1}"
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return AuditKeys(kid, {**self.secrets, kid: secrets.token_bytes(_SECRET_BYTES)}, {**self.created, kid: now})

    @classmethod
    def generate(cls) -> AuditKeys:
        """A ring of one fresh random key, ``k1``."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return cls("k1", {"k1": secrets.token_bytes(_SECRET_BYTES)}, {"k1": now})

    def encode(self) -> str:
        """The key file's text."""
        keys = [
            {"id": kid, "created_at": self.created.get(kid, ""), "secret": base64.urlsafe_b64encode(s).decode()}
            for kid, s in self.secrets.items()
        ]
        return json.dumps({"version": 1, "current": self.current, "keys": keys}, indent=2) + "\n"

    @classmethod
    def decode(cls, path: Path, text: str) -> AuditKeys:
        """The ring a key file holds; ConfigError naming the file when it is not one."""

        def bad(problem: str) -> ConfigError:
            return ConfigError(f"audit key file {path}: {problem}")

        try:
            doc: Any = json.loads(text)
        except ValueError as exc:
            raise bad(f"not JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("keys"), list):
            raise bad('expected {"version": 1, "current": ..., "keys": [...]}')
        found: dict[str, bytes] = {}
        created: dict[str, str] = {}
        for entry in doc["keys"]:
            if not (
                isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("secret"), str)
            ):
                raise bad("each key needs an id and a secret")
            kid = entry["id"]
            if kid in found:
                raise bad(f"key {kid!r} is given twice")
            try:
                found[kid] = base64.urlsafe_b64decode(entry["secret"].encode("ascii"))
            except ValueError:
                raise bad(f"key {kid!r}: the secret is not base64") from None
            created[kid] = str(entry.get("created_at") or "")
        current = doc.get("current")
        if not isinstance(current, str) or current not in found:
            raise bad("'current' must name one of its keys")
        try:
            return cls(current, found, created)
        except ConfigError as exc:
            raise bad(str(exc)) from None


def _write_file(path: Path, text: str, *, replace: bool) -> None:
    """Write ``path`` (mode 0600) atomically; without ``replace``, FileExistsError if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_keys(path: Path) -> AuditKeys:
    """The key ring in ``path``: it must exist, readable by its owner only."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key file {path}: {exc.strerror}") from exc
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"audit key file {path} may be read by others (mode {mode:04o}); chmod 600 {path}")
    return AuditKeys.decode(path, text)


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """What the log holds: the number of entries and the hash of the last one."""

    count: int
    hash: str

    def __str__(self) -> str:
        return f"{self.count}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """``COUNT:HASH``, or a line printed by ``c360 audit head`` (JSON with count and hash)."""
        text = text.strip()
        try:
            if text.startswith("{"):
                doc = json.loads(text)
                count, digest = int(doc["count"]), str(doc["hash"])
            else:
                raw_count, _, digest = text.partition(":")
                count = int(raw_count)
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"not a head: {text[:80]!r} (give COUNT:HASH)") from None
        if count < 0 or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(f"not a head: {text[:80]!r} (give COUNT:HASH, the hash in 64 hex digits)")
        return cls(count, digest)


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking the log: entries read, the first broken one (None: intact), the head.

    ``unsealed``: how many entries at the start predate sealing (hash-chained only; the first sealed
    entry after them fixes them). ``notices``: the trail's own entries that report a repair or a
    missing anchor, worth a look even when everything verifies.
    """

    entries: int
    broken_at: int | None = None
    problem: str | None = None
    last_hash: str = GENESIS
    unsealed: int = 0
    notices: tuple[str, ...] = ()
    anchor: Head | None = None

    @property
    def ok(self) -> bool:
        """Whether the whole log holds."""
        return self.problem is None

    @property
    def head(self) -> Head:
        """The head of the intact part."""
        return Head(self.entries, self.last_hash)


@dataclass(slots=True)
class _Tail:
    """What a writer knows of the end of the file: its inode and size, and the last entry there."""

    ino: int
    size: int
    seq: int
    hash: str


class AuditLog:
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
        self.path = path
        #: a configured key file (must exist); None: ``audit-keys.json`` beside the log, made on first use
        self.key_file = key_file
        self.anchor_interval = anchor_interval
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()  # the pending entries
        self._write_lock = threading.Lock()  # one flush at a time within this process
        self._pending: list[tuple[dict[str, Any], _Waiter]] = []
        self._scheduled = False
        self._fd: int | None = None
        self._fd_path: Path | None = None
        self._tail: _Tail | None = None
        self._keys: AuditKeys | None = None
        self._keys_stamp: tuple[int, int, int] | None = None
        self._anchored: tuple[int, float] | None = None  # (seq, monotonic time) of the last anchor written
        self._failure: str | None = None

    # -- paths -----------------------------------------------------------------------------------

    @property
    def keys_path(self) -> Path:
        """Where the key ring is."""
        return self.key_file or self.path.with_name(DEFAULT_KEY_FILE)

    @property
    def anchor_path(self) -> Path:
        """The sealed head kept beside the log."""
        return self.path.with_name(self.path.name + ".head")

    @property
    def torn_path(self) -> Path:
        """Where torn last lines are moved."""
        return self.path.with_name(self.path.name + ".torn")

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

    # -- the file ----------------------------------------------------------------------------------

    def _file(self) -> int:
        """The open log (kept open; reopened if the path changed or the file there was replaced)."""
        if self._fd is not None and self._fd_path == self.path:
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
        if self._fd_path != self.path:
            self._tail, self._anchored, self._keys, self._keys_stamp = None, None, None, None
        self._close_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd_path = self.path
        return self._fd

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _unavailable(self, exc: BaseException) -> AuditUnavailableError:
        if isinstance(exc, AuditUnavailableError):
            return exc
        why = (exc.strerror if isinstance(exc, OSError) else None) or f"{type(exc).__name__}: {exc}"
        return AuditUnavailableError(f"the audit trail {self.path.name} cannot be written: {why}")

    def _broken(self, why: str, *, hint: str | None = None) -> AuditUnavailableError:
        hint = hint or (
            f"see c360 audit verify; to start a new trail, move {self.path.name} and {self.anchor_path.name} "
            "aside and restart"
        )
        return AuditUnavailableError(f"the audit trail {self.path.name} is refused: {why} ({hint})")

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.keys_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _key_ring(self, fd: int) -> AuditKeys:
        """The key ring, re-read when its file changed (a rotation by another process)."""
        stamp = self._stamp()
        if stamp is not None and stamp == self._keys_stamp and self._keys is not None:
            return self._keys
        if stamp is None:
            if self._keys is not None or self.key_file is not None:
                raise self._broken(f"its key file {self.keys_path.name} is missing", hint="restore it")
            if b'"mac":' in self._last_line(fd, os.fstat(fd).st_size):
                raise self._broken(f"its entries are sealed but {self.keys_path.name} is missing", hint="restore it")
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                _write_file(self.keys_path, AuditKeys.generate().encode(), replace=False)
            stamp = self._stamp()
        try:
            self._keys, self._keys_stamp = read_keys(self.keys_path), stamp
        except ConfigError as exc:  # its message names the file, not where it is
            raise self._broken(str(exc).replace(str(self.keys_path), self.keys_path.name), hint="fix it") from None
        return self._keys

    @staticmethod
    def _last_line(fd: int, size: int, block: int = 8192) -> bytes:
        """The last complete (newline-ended, not blank) line in the file's first ``size`` bytes."""
        end = size
        data = b""
        while end > 0:
            start = max(0, end - block)
            data = os.pread(fd, end - start, start) + data
            end = start
            complete = [line for line in data.split(b"\n")[:-1] if line.strip()]  # after the last newline: torn
            if len(complete) > 1 or (complete and start == 0):  # the first piece may be cut, unless at 0
                return complete[-1]
        return b""

    def _system(self, action: str, outcome: str, detail: str) -> dict[str, Any]:
        return {
            "at": self._clock().isoformat(),
            "actor": SYSTEM_ACTOR,
            "role": "system",
            "action": action,
            "target": self.path.name,
            "outcome": outcome,
            "detail": bounded(detail),
        }

    def _examine(self, fd: int, keys: AuditKeys) -> list[dict[str, Any]]:
        """Check the end of the log (under the file lock) and return the entries its repairs need.

        Nothing changed since this process last wrote: nothing to do. Otherwise a torn last line is
        moved aside; the last entry must verify; the log must not be shorter than this process or the
        anchor saw it.
        """
        st = os.fstat(fd)
        known = self._tail
        if known is not None and known.ino == st.st_ino and known.size == st.st_size:
            return []
        notes: list[dict[str, Any]] = []
        size = st.st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            notes.append(self._repair_torn(fd, size))
            size = os.fstat(fd).st_size
        line = self._last_line(fd, size)
        seq, last, sealed = 0, GENESIS, False
        if line.strip():
            try:
                entry = json.loads(line)
                seq, last = int(entry["seq"]), str(entry["hash"])
            except (ValueError, KeyError, TypeError):
                raise self._broken("its last line is not an audit entry") from None
            if _digest(entry) != last:
                raise self._broken(f"its last entry ({seq}) was altered")
            sealed = "mac" in entry or "kid" in entry
            if sealed and not keys.check(entry.get("kid"), last, entry.get("mac")):
                raise self._broken(f"its last entry ({seq}) is not sealed by a known audit key")
        if known is not None:
            if seq < known.seq or (seq == known.seq and last != known.hash):
                raise self._broken(f"it was cut back or replaced: it held {known.seq} entries, now {seq}")
            if seq and not sealed and (seq, last) != (known.seq, known.hash):
                raise self._broken(f"its last entry ({seq}) is not sealed")
        else:
            anchor = self._read_anchor(keys)
            if anchor is not None and (anchor.count > seq or (anchor.count == seq and anchor.hash != last)):
                raise self._broken(f"it holds {seq} entries, but its anchor says {anchor.count}: it was cut back")
            if anchor is not None and seq and not sealed:
                raise self._broken(f"its last entry ({seq}) is not sealed")
            if anchor is None and seq and sealed:
                notes.append(self._system("audit_anchor", "missing", f"no anchor beside {seq} entries: made anew"))
            elif anchor is None and seq:
                notes.append(self._system("audit_sealed", "ok", f"entries 1-{seq} predate sealing: sealed in here"))
        self._tail = _Tail(st.st_ino, size, seq, last)
        return notes

    def _repair_torn(self, fd: int, size: int) -> dict[str, Any]:
        """Move a torn last line to the ``.torn`` file and cut it off the log; the entry that says so."""
        window = min(size, MAX_TORN + 1)
        at = os.pread(fd, window, size - window).rfind(b"\n")
        if at < 0 and size > MAX_TORN:
            raise self._broken(f"it ends with more than {MAX_TORN} bytes that are not a line")
        cut = size - window + at + 1
        torn = os.pread(fd, size - cut, cut)
        with self.torn_path.open("ab") as out:
            out.write(torn + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.ftruncate(fd, cut)
        os.fsync(fd)
        digest = hashlib.sha256(torn).hexdigest()[:16]
        return self._system(
            "audit_repair",
            "repaired",
            f"a torn last line ({len(torn)} bytes, sha256 {digest}...) moved to {self.torn_path.name}",
        )

    def _read_anchor(self, keys: AuditKeys) -> Head | None:
        try:
            text = self.anchor_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._broken(f"its anchor {self.anchor_path.name} cannot be read ({exc.strerror})") from None
        try:
            doc = json.loads(text)
            head = Head(int(doc["count"]), str(doc["hash"]))
            ok = keys.check(doc.get("kid"), f"c360-audit-head|{head.count}|{head.hash}", doc.get("mac"))
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise self._broken(f"its anchor {self.anchor_path.name} is not sealed by a known audit key")
        return head

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
            "mac": keys.mac(kid, f"c360-audit-head|{tail.seq}|{tail.hash}"),
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
            self._tail = _Tail(tail.ino, tail.size + len(data), seq, prev)
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
            line = self._last_line(fd, size)
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
            line = self._last_line(fh.fileno(), os.fstat(fh.fileno()).st_size)
        return str(json.loads(line)["hash"]) if line.strip() else GENESIS

    def verify(self, head: Head | None = None) -> Verification:
        """Walk the log; name the first entry altered, removed, reordered, forged, or cut off.

        ``head``: one kept elsewhere (``c360 audit head``); the log must still hold that entry, with
        that hash. The anchor beside the log is checked the same way.
        """
        keys: AuditKeys | None = None
        try:
            keys = read_keys(self.keys_path) if self.keys_path.exists() else None
        except ConfigError as exc:
            return Verification(0, 1, str(exc))
        anchor: Head | None = None
        anchor_problem: str | None = None
        if self.anchor_path.exists():
            try:
                if keys is None:
                    raise self._broken("no key")
                anchor = self._read_anchor(keys)
            except AuditUnavailableError:
                anchor_problem = f"the anchor {self.anchor_path.name} is not sealed by a known audit key"
        wanted = {h.count for h in (head, anchor) if h is not None}
        seen: dict[int, str] = {0: GENESIS}
        notices: list[str] = []
        prev, expected, count, unsealed, newest = GENESIS, 1, 0, 0, -1

        def broken(at: int, problem: str) -> Verification:
            return Verification(count, at, problem, prev, unsealed, tuple(notices), anchor)

        if self.path.exists():
            with self.path.open("rb") as fh:
                for lineno, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    if not line.endswith(b"\n"):
                        return broken(expected, f"line {lineno} is torn (a write cut short; the next write moves it)")
                    try:
                        entry = json.loads(line)
                        seq = int(entry["seq"])
                        stored = entry["hash"]
                    except (ValueError, KeyError, TypeError):
                        return broken(expected, f"line {lineno} is not an audit entry")
                    if seq != expected:
                        return broken(expected, f"entry {expected} is missing (found {seq} next)")
                    if entry.get("prev") != prev:
                        return broken(seq, f"entry {seq} does not follow entry {seq - 1}")
                    if _digest(entry) != stored:
                        return broken(seq, f"entry {seq} was altered")
                    kid = entry.get("kid")
                    if "mac" not in entry and "kid" not in entry:
                        if count > unsealed:
                            return broken(seq, f"entry {seq} is not sealed (added without the audit key)")
                        unsealed += 1
                    elif keys is None or not keys.check(kid, stored, entry.get("mac")):
                        return broken(seq, f"entry {seq} is not sealed by a known audit key (forged or re-hashed)")
                    else:
                        rank = keys.rank(str(kid))
                        if rank < newest:
                            return broken(seq, f"entry {seq} is sealed with key {kid}, retired before it")
                        newest = rank
                        if entry.get("role") == "system":
                            notices.append(
                                f"entry {seq}: {entry.get('action')} {entry.get('outcome')}: {entry.get('detail')}"
                            )
                    prev, expected, count = stored, expected + 1, count + 1
                    if count in wanted:
                        seen[count] = stored
        if unsealed and unsealed == count:
            return broken(1, f"no entry is sealed: entries 1-{count} predate sealing (the next write seals them in)")
        if anchor_problem:
            return broken(count + 1, anchor_problem)
        if anchor is None and count > unsealed and count:
            return broken(count + 1, f"the anchor {self.anchor_path.name} is missing (deleted?)")
        for name, kept in (("its anchor", anchor), ("the head given", head)):
            if kept is None:
                continue
            if kept.count > count:
                return broken(count + 1, f"the log holds {count} entries, but {name} says {kept.count}: cut back")
            if seen.get(kept.count) != kept.hash:
                return broken(kept.count, f"entry {kept.count} is not the one {name} names: the log was replaced")
        return Verification(count, None, None, prev, unsealed, tuple(notices), anchor)
