"""The audit trail's files, as a writer sees them under the lock: the log, its key ring, its anchor.

:class:`AuditFile` keeps the log open, reads the key ring (re-read after a rotation elsewhere; made on
first use beside the log, a configured one must exist) and examines the end of the log before each
write (:meth:`AuditFile._examine`): a torn last line is moved aside, a last entry that does not verify
or a log cut back behind what this process or the anchor saw is refused. The writer itself,
:class:`~c360.graphql.audit.AuditLog`, builds on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from c360.graph.errors import ConfigError, StoreUnavailableError
from c360.graph.key_ring import create_ring

from .audit_verify import GENESIS, AnchorError, AuditKeys, Head, last_line, read_anchor, read_keys
from .audit_verify import digest as _digest

#: most characters of one value of an entry (actor, role, action, target, outcome, detail)
MAX_VALUE = 256
#: the key ring's file name beside the log, unless a key file is configured
DEFAULT_KEY_FILE = "audit-keys.json"
#: a torn last line longer than this is not a cut-short write: the log is refused, not repaired
MAX_TORN = 1 << 20
#: who writes the trail's own entries (repairs, rotations)
SYSTEM_ACTOR = "c360"


class AuditUnavailableError(StoreUnavailableError, OSError):
    """The audit trail cannot take entries now (its write failed, or it is broken): refuse the work.

    An OSError too, as the write failure it stands for; a StoreUnavailableError, so the API answers 503.
    Its message names the log's file, never its full path.
    """

    retry_after = 5.0


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


@dataclass(slots=True)
class Tail:
    """What a writer knows of the end of the file: its inode and size, and the last entry there."""

    ino: int
    size: int
    seq: int
    hash: str


class AuditFile:
    """The log's file and what a writer checks before it appends (see the module's notes)."""

    def __init__(self, path: Path, *, clock: Any = None, key_file: Path | None = None) -> None:
        self.path = path
        #: a configured key file (must exist); None: ``audit-keys.json`` beside the log, made on first use
        self.key_file = key_file
        self._clock = clock or (lambda: datetime.now(UTC))
        self._fd: int | None = None
        self._fd_path: Path | None = None
        self._tail: Tail | None = None
        self._keys: AuditKeys | None = None
        self._keys_stamp: tuple[int, int, int] | None = None
        self._anchored: tuple[int, float] | None = None  # (seq, monotonic time) of the last anchor written

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
            if b'"mac":' in last_line(fd, os.fstat(fd).st_size):
                raise self._broken(f"its entries are sealed but {self.keys_path.name} is missing", hint="restore it")
            create_ring(AuditKeys, self.keys_path)  # another process made it first: theirs is kept
            stamp = self._stamp()
        try:
            self._keys, self._keys_stamp = read_keys(self.keys_path), stamp
        except ConfigError as exc:  # its message names the file, not where it is
            raise self._broken(str(exc).replace(str(self.keys_path), self.keys_path.name), hint="fix it") from None
        return self._keys

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
        line = last_line(fd, size)
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
        self._tail = Tail(st.st_ino, size, seq, last)
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
            return read_anchor(self.anchor_path, keys)
        except AnchorError as exc:
            raise self._broken(f"its anchor {self.anchor_path.name} {exc}") from None
