"""A key ring of secret keys, one of them current, kept in a JSON file of mode 0600.

Shared by the audit seal (:class:`~c360.graphql.audit_verify.AuditKeys`), the ``hash`` masking rule
(:class:`~c360.graphql.hash_keys.HashKeys`) and the consent receipts' Ed25519 keys
(:class:`~c360.graph.receipts.SigningKeys`).

A ring maps key ids (oldest first) to secrets of at least 16 bytes; a rotation adds ``k<n+1>`` and makes
it current, the old keys stay. Its file::

    {"version": 1, "current": "k2", "keys": [{"id": "k1", "created_at": "...", "secret": "<base64>"}, ...]}

is written atomically with mode 0600 (readers see the old file or the new one), and a file readable by
group or others is refused. Each kind of ring (``kind``: ``audit``, ``hash``, ``signing``) names itself
in its errors.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar

from c360.graph.errors import ConfigError

_KEY_ID = re.compile(r"^[a-z0-9_-]{1,32}$")
_SECRET_BYTES = 32


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Key id -> secret (oldest first), the id of the current key, and when each key was made."""

    #: what the ring is for, in its error messages ("audit key ...", "hash key ...")
    kind: ClassVar[str] = "secret"

    current: str
    secrets: Mapping[str, bytes]
    created: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.secrets or self.current not in self.secrets:
            article = "an" if self.kind[:1] in "aeiou" else "a"
            raise ConfigError(f"{article} {self.kind} key ring needs its current key")
        for kid, secret in self.secrets.items():
            if not _KEY_ID.match(kid):
                raise ConfigError(f"{self.kind} key id {kid!r}: lower-case letters, digits, '-' and '_' (at most 32)")
            if len(secret) < 16:
                raise ConfigError(f"{self.kind} key {kid}: the secret is shorter than 16 bytes")
        object.__setattr__(self, "secrets", MappingProxyType(dict(self.secrets)))
        object.__setattr__(self, "created", MappingProxyType(dict(self.created)))

    def __repr__(self) -> str:  # never the secrets
        return f"{type(self).__name__}(current={self.current!r}, ids={list(self.secrets)!r})"

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids, oldest first."""
        return tuple(self.secrets)

    def rank(self, kid: str) -> int:
        """The age of a key in the ring: 0 for the oldest (-1: not in the ring)."""
        return self.ids.index(kid) if kid in self.secrets else -1

    def rotated(self) -> Self:
        """A copy of the ring with a new current key (``k<n+1>``); the old keys stay."""
        numbers = [int(k[1:]) for k in self.secrets if re.fullmatch(r"k[0-9]+", k)]
        kid = f"k{max(numbers, default=0) + 1}"
        return type(self)(kid, {**self.secrets, kid: secrets.token_bytes(_SECRET_BYTES)}, {**self.created, kid: _now()})

    @classmethod
    def generate(cls) -> Self:
        """A ring of one fresh random key, ``k1`` (tests, and the first use of a data directory)."""
        return cls("k1", {"k1": secrets.token_bytes(_SECRET_BYTES)}, {"k1": _now()})

    def encode(self) -> str:
        """The key file's text."""
        now = _now()
        keys = [
            {"id": kid, "created_at": self.created.get(kid, now), "secret": base64.urlsafe_b64encode(s).decode()}
            for kid, s in self.secrets.items()
        ]
        return json.dumps({"version": 1, "current": self.current, "keys": keys}, indent=2) + "\n"

    @classmethod
    def decode(cls, path: Path, text: str) -> Self:
        """The ring a key file holds; ConfigError naming the file when it is not one."""

        def bad(problem: str) -> ConfigError:
            return ConfigError(f"{cls.kind} key file {path}: {problem}")

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


R = TypeVar("R", bound=KeyRing)


# -- the file --------------------------------------------------------------------------------------


def write_file(path: Path, text: str, *, replace: bool) -> None:
    """Write ``path`` (mode 0600) atomically; without ``replace``, FileExistsError if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if another process made it first
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Rotations of one ring, one at a time (a lost update would lose a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_ring(ring: type[R], path: Path) -> R:
    """The ring in ``path``: it must exist, readable by its owner only."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise ConfigError(f"cannot read the {ring.kind} key file {path}: {exc.strerror}") from exc
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"{ring.kind} key file {path} may be read by others (mode {mode:04o}); chmod 600 {path}")
    return ring.decode(path, text)


def create_ring(ring: type[KeyRing], path: Path) -> None:
    """Write a new ring of one random key to ``path`` unless there is a file there (theirs is kept)."""
    with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
        write_file(path, ring.generate().encode(), replace=False)


def rotate_ring(ring: type[R], path: Path) -> R:
    """Add a new current key to the ring in ``path`` (a new ring when missing), under a lock; the new ring."""
    with locked(path):
        new = read_ring(ring, path).rotated() if path.exists() else ring.generate()
        write_file(path, new.encode(), replace=True)
    return new
