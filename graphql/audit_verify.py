"""Checking the audit trail: the key ring that seals it, its head and anchor, and the walk over the log.

:func:`verify_log` (``AuditLog.verify``, ``c360 audit verify``) reads the whole log and names the first
entry altered, removed, reordered, forged or cut off (:class:`Verification`); :class:`Head` is what a
log holds (count and last hash), kept elsewhere or in the sealed anchor beside the log
(:func:`read_anchor`). The writer, :class:`~c360.graphql.audit.AuditLog`, uses the same checks on the
end of the log before each write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from c360.graph.errors import ConfigError
from c360.graph.key_ring import KeyRing, read_ring

GENESIS = "0" * 64


def _canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def digest(entry: Mapping[str, Any]) -> str:
    """The entry's hash: SHA-256 of its canonical JSON without ``hash`` and ``mac``."""
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


class AuditKeys(KeyRing):
    """The audit key ring (:class:`~c360.graph.key_ring.KeyRing`): the current key seals new entries."""

    __slots__ = ()
    kind: ClassVar[str] = "audit"

    def mac(self, kid: str, text: str) -> str:
        """HMAC-SHA256 of ``text`` under key ``kid``, hex."""
        return hmac.new(self.secrets[kid], text.encode(), hashlib.sha256).hexdigest()

    def check(self, kid: object, text: str, mac: object) -> bool:
        """Whether ``mac`` is ``text``'s HMAC under key ``kid`` of the ring."""
        if not isinstance(kid, str) or kid not in self.secrets or not isinstance(mac, str):
            return False
        return hmac.compare_digest(self.mac(kid, text), mac)


def read_keys(path: Path) -> AuditKeys:
    """The key ring in ``path``: it must exist, readable by its owner only."""
    return read_ring(AuditKeys, path)


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


def last_line(fd: int, size: int, block: int = 8192) -> bytes:
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


def anchor_text(count: int, last: str) -> str:
    """What the anchor's seal is the HMAC of."""
    return f"c360-audit-head|{count}|{last}"


class AnchorError(Exception):
    """The anchor cannot be read, or is not sealed by a key of the ring (the message says which)."""


def read_anchor(path: Path, keys: AuditKeys) -> Head | None:
    """The sealed head in ``path`` (None: there is none); AnchorError when it cannot be trusted."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorError(f"cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(text)
        head = Head(int(doc["count"]), str(doc["hash"]))
        ok = keys.check(doc.get("kid"), anchor_text(head.count, head.hash), doc.get("mac"))
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise AnchorError("is not sealed by a known audit key")
    return head


def verify_log(path: Path, keys_path: Path, anchor_path: Path, head: Head | None = None) -> Verification:
    """Walk the log in ``path``; name the first entry altered, removed, reordered, forged, or cut off.

    ``head``: one kept elsewhere (``c360 audit head``); the log must still hold that entry, with
    that hash. The anchor in ``anchor_path`` is checked the same way.
    """
    keys: AuditKeys | None = None
    try:
        keys = read_keys(keys_path) if keys_path.exists() else None
    except ConfigError as exc:
        return Verification(0, 1, str(exc))
    anchor: Head | None = None
    anchor_problem: str | None = None
    if anchor_path.exists():
        try:
            if keys is None:
                raise AnchorError("no key")
            anchor = read_anchor(anchor_path, keys)
        except AnchorError:
            anchor_problem = f"the anchor {anchor_path.name} is not sealed by a known audit key"
    wanted = {h.count for h in (head, anchor) if h is not None}
    seen: dict[int, str] = {0: GENESIS}
    notices: list[str] = []
    prev, expected, count, unsealed, newest = GENESIS, 1, 0, 0, -1

    def broken(at: int, problem: str) -> Verification:
        return Verification(count, at, problem, prev, unsealed, tuple(notices), anchor)

    if path.exists():
        with path.open("rb") as fh:
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
                if digest(entry) != stored:
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
        return broken(count + 1, f"the anchor {anchor_path.name} is missing (deleted?)")
    for name, kept in (("its anchor", anchor), ("the head given", head)):
        if kept is None:
            continue
        if kept.count > count:
            return broken(count + 1, f"the log holds {count} entries, but {name} says {kept.count}: cut back")
        if seen.get(kept.count) != kept.hash:
            return broken(kept.count, f"entry {kept.count} is not the one {name} names: the log was replaced")
    return Verification(count, None, None, prev, unsealed, tuple(notices), anchor)
