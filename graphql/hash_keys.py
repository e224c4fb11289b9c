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

import hashlib
import hmac
import re
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from c360.graph.errors import ConfigError
from c360.graph.key_ring import KeyRing, create_ring, read_ring, rotate_ring

#: the file name of the key ring in the data directory, unless ``api.hash_key_file`` names another
DEFAULT_FILE = "hash-keys.json"
#: the prefix of every keyed hash
PREFIX = "hmac"
_HASHED = re.compile(r"^hmac:[a-z0-9_-]{1,32}:[0-9a-f]{64}$")


def is_hash(text: str) -> bool:
    """Whether ``text`` has the shape of a keyed hash, ``hmac:<key id>:<64 hex>``."""
    return _HASHED.match(text) is not None


@lru_cache(maxsize=65_536)
def _hmac_hex(secret: bytes, text: str) -> str:
    """One profile read hashes the same few values over and over: cached (the key is part of the key)."""
    return hmac.new(secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class HashKeys(KeyRing):
    """A key ring (:class:`~c360.graph.key_ring.KeyRing`) whose current key new hashes are made with."""

    __slots__ = ()
    kind: ClassVar[str] = "hash"

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


# -- the file --------------------------------------------------------------------------------------


def load_hash_keys(path: Path) -> HashKeys:
    """The key ring in ``path`` (it must exist, with mode 0600)."""
    return read_ring(HashKeys, path)


def open_hash_keys(path: Path, *, create: bool = True) -> HashKeys:
    """The key ring in ``path``; with ``create``, a new ring of one random key when there is none yet."""
    if create and not path.exists():
        create_ring(HashKeys, path)
    return load_hash_keys(path)


def rotate_hash_keys(path: Path) -> HashKeys:
    """Add a new current key to the ring in ``path`` (created when missing) and return the new ring.

    The old keys stay (see the module's notes on what a rotation changes); the file is replaced
    atomically with mode 0600.
    """
    return rotate_ring(HashKeys, path)
