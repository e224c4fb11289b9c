"""The secret of the ``hash`` masking rule: a key ring of HMAC-SHA256 keys, one of them current.

A hash shows as ``hmac:<key id>:<hex>``: HMAC-SHA256 of the normalised value under the current key.
The same value hashes the same way under one key, so consumers of one deployment can join and count on
hashes; without the key nobody can test a guess (an unkeyed SHA-256 of a birth date or a surname falls
to a dictionary in a fraction of a second; a keyed one does not).

The ring lives in one JSON file, by default ``hash-keys.json`` in the data directory (``api.hash_key_file``
names another), written with mode 0600 and generated on first use; a file readable by group or others
is refused. There is no built-in key.

**Rotation** (:func:`rotate_hash_keys`) adds a new key and makes it current; the old keys stay in the
ring. From then on every hash is made with the new key (``hmac:k2:...``): hashes made before the rotation
no longer equal the new ones, so a consumer that joins on hashes re-reads what it keeps (the key id in
each hash says which key made it). The old keys remain so that c360 can still recognise an old hash
(:meth:`HashKeys.matches`, :meth:`HashKeys.hashes`: one hash per key) and give the masked record keys
callers bring back (``explain``, ``split``). A running server reads the ring when it starts: restart it
after a rotation. To retire an old key, remove it from the file by hand; its hashes then mean nothing.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from c360.graph.errors import ConfigError

#: the file name of the key ring in the data directory, unless ``api.hash_key_file`` names another
DEFAULT_FILE = "hash-keys.json"
#: the prefix of every keyed hash
PREFIX = "hmac"
_KEY_ID = re.compile(r"^[a-z0-9_-]{1,32}$")
_HASHED = re.compile(r"^hmac:[a-z0-9_-]{1,32}:[0-9a-f]{64}$")
_SECRET_BYTES = 32


def is_hash(text: str) -> bool:
    """Whether ``text`` has the shape of a keyed hash, ``hmac:<key id>:<64 hex>``."""
    return _HASHED.match(text) is not None


@lru_cache(maxsize=65_536)
def _hmac_hex(secret: bytes, text: str) -> str:
    """One profile read hashes the same few values over and over: cached (the key is part of the key)."""
    return hmac.new(secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class HashKeys:
    """A key ring: key id -> secret, and the id of the key new hashes are made with."""

    current: str
    secrets: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not self.secrets or self.current not in self.secrets:
            raise ConfigError("a hash key ring needs its current key")
        for kid, secret in self.secrets.items():
            if not _KEY_ID.match(kid):
                raise ConfigError(f"hash key id {kid!r}: lower-case letters, digits, '-' and '_' (at most 32)")
            if len(secret) < 16:
                raise ConfigError(f"hash key {kid}: the secret is shorter than 16 bytes")
        object.__setattr__(self, "secrets", MappingProxyType(dict(self.secrets)))

    def __repr__(self) -> str:  # never the secrets
        return f"HashKeys(current={self.current!r}, ids={list(self.secrets)!r})"

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids, oldest first."""
        return tuple(self.secrets)

    def hash(self, text: str) -> str:
        """``hmac:<current id>:<hex>`` of ``text`` (already normalised by the caller)."""
        return self.hash_with(self.current, text)

    def hash_with(self, kid: str, text: str) -> str:
        """The hash of ``text`` under key ``kid`` (an unknown id is a ConfigError)."""
        secret = self.secrets.get(kid)
        if secret is None:
            raise ConfigError(f"no hash key {kid!r} in the ring (it has: {', '.join(self.secrets)})")
        return f"{PREFIX}:{kid}:{_hmac_hex(secret, text)}"

    def hashes(self, text: str) -> dict[str, str]:
        """The hash of ``text`` under every key of the ring (to match hashes made before a rotation)."""
        return {kid: self.hash_with(kid, text) for kid in self.secrets}

    def matches(self, text: str, hashed: str) -> bool:
        """Whether ``hashed`` is the hash of ``text`` under the key it names (any key of the ring)."""
        prefix, _, rest = hashed.partition(":")
        kid, _, digest = rest.partition(":")
        secret = self.secrets.get(kid)
        if prefix != PREFIX or secret is None:
            return False
        return hmac.compare_digest(_hmac_hex(secret, text), digest)

    def rotated(self) -> HashKeys:
        """A copy of the ring with a new current key (``k<n+1>``); the old keys stay."""
        numbers = [int(k[1:]) for k in self.secrets if re.fullmatch(r"k[0-9]+", k)]
        kid = f"k{max(numbers, default=0) + 1}"
        return HashKeys(kid, {**self.secrets, kid: secrets.token_bytes(_SECRET_BYTES)})

    @classmethod
    def generate(cls) -> HashKeys:
        """A ring of one fresh random key, ``k1`` (tests, and the first use of a data directory)."""
        return cls("k1", {"k1": secrets.token_bytes(_SECRET_BYTES)})


# -- the file --------------------------------------------------------------------------------------


def _encode(keys: HashKeys, created: Mapping[str, str]) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    doc = {
        "version": 1,
        "current": keys.current,
        "keys": [
            {
                "id": kid,
                "created_at": created.get(kid, now),
                "secret": base64.urlsafe_b64encode(secret).decode("ascii"),
            }
            for kid, secret in keys.secrets.items()
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _decode(path: Path, text: str) -> tuple[HashKeys, dict[str, str]]:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"hash key file {path}: {problem}")

    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise bad(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("keys"), list):
        raise bad('expected {"version": 1, "current": ..., "keys": [...]}')
    found: dict[str, bytes] = {}
    created: dict[str, str] = {}
    for entry in doc["keys"]:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), str)
            or not isinstance(entry.get("secret"), str)
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
        return HashKeys(current, found), created
    except ConfigError as exc:
        raise bad(str(exc)) from None


def _check_mode(path: Path) -> None:
    if os.name != "posix":
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"hash key file {path} may be read by others (mode {mode:04o}); chmod 600 {path}")


def _write_new(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically: readers see the old file or the new one."""
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
def _locked(path: Path) -> Iterator[None]:
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


def _read(path: Path) -> tuple[HashKeys, dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the hash key file {path}: {exc.strerror}") from exc
    _check_mode(path)
    return _decode(path, text)


def load_hash_keys(path: Path) -> HashKeys:
    """The key ring in ``path`` (it must exist, with mode 0600)."""
    return _read(path)[0]


def open_hash_keys(path: Path, *, create: bool = True) -> HashKeys:
    """The key ring in ``path``; with ``create``, a new ring of one random key when there is none yet."""
    if create and not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            _write_new(path, _encode(HashKeys.generate(), {}), replace=False)
    return load_hash_keys(path)


def rotate_hash_keys(path: Path) -> HashKeys:
    """Add a new current key to the ring in ``path`` (created when missing) and return the new ring.

    The old keys stay (see the module's notes on what a rotation changes); the file is replaced
    atomically with mode 0600.
    """
    with _locked(path):
        if path.exists():
            keys, created = _read(path)
            keys = keys.rotated()
        else:
            keys, created = HashKeys.generate(), {}
        _write_new(path, _encode(keys, created), replace=True)
    return keys
