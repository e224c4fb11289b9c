"""Where KYC documents are kept: write-once blob stores, always encrypted at rest.

* :class:`BlobStore`: ``put`` (write-once: an existing key is a :class:`ConflictError`; a new version of
  a document is a new key), ``get`` (:class:`NotFoundError`), ``delete`` (retention purge), ``exists``.
  Keys are validated by :func:`check_key`: segments of ``[A-Za-z0-9._-]`` starting with a letter or
  digit, joined by ``/``, at most :data:`MAX_KEY_LENGTH` characters (so never ``..``).
* :class:`LocalBlobStore`: a file per key under a root folder (a folder per key prefix), written
  atomically (temporary file, fsync, ``os.link`` that refuses an existing name), mode 0600.
* :class:`EncryptedBlobStore`: AES-256-GCM with the vault's key ring
  (:class:`~c360.graph.vault.VaultKeys`); see :data:`MAGIC` for the format.
* :func:`open_blob_store`: a store by kind (``local``, ``s3``) and its pydantic config, always wrapped
  in :class:`EncryptedBlobStore`, so no store that it makes writes a document in clear. The S3 store's
  module (and boto3) is imported only when ``s3`` is chosen.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import secrets
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal, final

from c360.graph.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError, StoreError
from c360.graph.vault import INDEX_KEY, VaultKeys
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..http_json import check_bearer_url

#: The longest key accepted.
MAX_KEY_LENGTH = 512
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_KEY = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT})*$")


def check_key(key: object) -> str:
    """``key`` if it is a valid blob key; InvalidInputError otherwise (the key is not quoted in full)."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise InvalidInputError(f"a blob key is a string of 1 to {MAX_KEY_LENGTH} characters")
    if not _KEY.fullmatch(key) or ".." in key:
        raise InvalidInputError(
            f"blob key {key[:40]!r}: segments of letters, digits, '.', '_' and '-' (starting with a letter or"
            " digit, at most 128 characters each) joined by '/', without '..'"
        )
    return key


def _data(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError("a blob's content is bytes")
    return bytes(data)


class BlobStore(ABC):
    """A write-once store of bytes by key. The public methods check their arguments and call a hook."""

    @final
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under a new ``key``; :class:`ConflictError` if the key exists (nothing is overwritten)."""
        self._put(check_key(key), _data(data))

    @final
    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; :class:`NotFoundError` if there are none."""
        return self._get(check_key(key))

    @final
    def delete(self, key: str) -> bool:
        """Remove ``key`` (retention purge); False if it was not there."""
        return self._delete(check_key(key))

    @final
    def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""
        return self._exists(check_key(key))

    @abstractmethod
    def _put(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _get(self, key: str) -> bytes: ...

    @abstractmethod
    def _delete(self, key: str) -> bool: ...

    @abstractmethod
    def _exists(self, key: str) -> bool: ...


# -- local files -----------------------------------------------------------------------------------


class LocalBlobStore(BlobStore):
    """One file per key under ``root`` (``a/b/c`` is ``root/a/b/c``), mode 0600, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mode 0600
        except (FileExistsError, NotADirectoryError):
            raise ConflictError(f"blob {key}: a blob exists where its folder would be") from None
        except OSError as exc:
            raise StoreError(f"the document store at {self.root} cannot write: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # refuses an existing name: write-once even between processes
            except FileExistsError:
                raise ConflictError(f"blob {key} exists; a new version is a new key") from None
            _fsync_dir(path.parent)
        except OSError as exc:
            raise StoreError(f"the document store at {self.root} cannot write: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFoundError(f"no blob {key}") from None
        except OSError as exc:
            raise StoreError(f"the document store at {self.root} cannot read: {exc.strerror}") from exc

    def _delete(self, key: str) -> bool:
        try:
            os.unlink(self._path(key))
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return False
        except OSError as exc:
            raise StoreError(f"the document store at {self.root} cannot delete: {exc.strerror}") from exc
        return True

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform opens folders
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- encryption at rest ----------------------------------------------------------------------------

#: A sealed blob: MAGIC, one version byte, the key id's length (one byte) and the key id (ASCII), a
#: 96-bit nonce, then the AES-256-GCM ciphertext with its tag. The associated data is everything before
#: the nonce followed by the blob's key, so a blob copied to another key does not open.
MAGIC = b"C360BLOB"
FORMAT_VERSION = 1
_NONCE_BYTES = 12
_TAG_BYTES = 16

BlobProblem = Literal["malformed", "unknown_key", "not_authentic"]


class BlobSealError(StoreError):
    """A stored blob does not open; ``problem`` says why (malformed, unknown key id, altered or moved)."""

    def __init__(self, problem: BlobProblem, message: str) -> None:
        super().__init__(message)
        self.problem: BlobProblem = problem


@lru_cache(maxsize=16)
def _aead(secret: bytes) -> AESGCM:
    return AESGCM(secret)


def _header(key_id: str) -> bytes:
    kid = key_id.encode("ascii")
    return MAGIC + bytes([FORMAT_VERSION, len(kid)]) + kid


def sealed_key_id(sealed: bytes) -> str:
    """The id of the vault key a sealed blob was written under; :class:`BlobSealError` if it is not one."""
    head = len(MAGIC)
    if len(sealed) < head + 2 or not sealed.startswith(MAGIC):
        raise BlobSealError("malformed", "the stored blob is not a sealed document")
    if sealed[head] != FORMAT_VERSION:
        raise BlobSealError("malformed", f"the stored blob has format version {sealed[head]}, not {FORMAT_VERSION}")
    size = sealed[head + 1]
    kid = sealed[head + 2 : head + 2 + size]
    if len(kid) != size or len(sealed) < head + 2 + size + _NONCE_BYTES + _TAG_BYTES:
        raise BlobSealError("malformed", "the stored blob is truncated")
    try:
        return kid.decode("ascii")
    except UnicodeDecodeError:
        raise BlobSealError("malformed", "the stored blob's key id is not ASCII") from None


class EncryptedBlobStore(BlobStore):
    """Encrypts every blob before ``inner`` stores it, under the current key of ``keys``.

    A blob opens with whichever key of the ring sealed it, so a rotation (a new current key) leaves
    every older blob readable. A blob that was altered, or moved to another key, is a
    :class:`BlobSealError`.
    """

    def __init__(self, inner: BlobStore, keys: VaultKeys) -> None:
        if not isinstance(keys, VaultKeys):
            raise InvalidInputError("an encrypted blob store needs the vault's keys (VaultKeys)")
        self.inner = inner
        self.keys = keys

    def __repr__(self) -> str:
        return f"EncryptedBlobStore({self.inner!r}, current={self.keys.current!r})"

    def seal(self, key: str, data: bytes) -> bytes:
        """``data`` as stored under ``key``: sealed under the current key (for tests and tools)."""
        header = _header(self.keys.current)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        body = _aead(self.keys.secrets[self.keys.current]).encrypt(nonce, data, header + key.encode())
        return header + nonce + body

    def open(self, key: str, sealed: bytes) -> bytes:
        """The plain bytes of a blob read from under ``key``; :class:`BlobSealError` unless it opens."""
        kid = sealed_key_id(sealed)
        secret = self.keys.secrets.get(kid) if kid != INDEX_KEY else None
        if secret is None:
            raise BlobSealError(
                "unknown_key", f"blob {key} is sealed under key {kid!r}, which the vault's key ring does not hold"
            )
        header = _header(kid)
        nonce = sealed[len(header) : len(header) + _NONCE_BYTES]
        try:
            return _aead(secret).decrypt(nonce, sealed[len(header) + _NONCE_BYTES :], header + key.encode())
        except InvalidTag:
            raise BlobSealError(
                "not_authentic", f"blob {key} does not open: it was altered, or written under another key"
            ) from None

    def _put(self, key: str, data: bytes) -> None:
        self.inner.put(key, self.seal(key, data))

    def _get(self, key: str) -> bytes:
        return self.open(key, self.inner.get(key))

    def _delete(self, key: str) -> bool:
        return self.inner.delete(key)

    def _exists(self, key: str) -> bool:
        return self.inner.exists(key)


# -- configs and the registry ----------------------------------------------------------------------


class LocalBlobConfig(BaseModel):
    """The ``local`` document store: files under a folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(description="The folder that holds the documents (made on first write, mode 0700).")


class S3BlobConfig(BaseModel):
    """The ``s3`` document store: objects in a bucket of an S3-compatible service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str = Field(description="The service's URL: https, or http on loopback only.")
    bucket: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="The bucket (it must exist already)."
    )
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$", description="The bucket's region.")
    access_key_id: str = Field(min_length=1, max_length=128, description="The access key id.")
    secret_access_key_file: Path = Field(
        description="A file holding the secret access key (mode 0600); the secret is never given inline."
    )
    prefix: str = Field(default="", max_length=128, description="Prepended to every key ('' or ending in '/').")
    connect_timeout: float = Field(default=5.0, gt=0, le=120, description="Seconds to wait for a connection.")
    read_timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds to wait for a response.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts per request (bounded retries).")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str) -> str:
        check_bearer_url("S3 endpoint", url)  # the request signatures and documents cross in clear otherwise
        return url.rstrip("/")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if prefix:
            if not prefix.endswith("/"):
                raise ValueError("a key prefix ends with '/'")
            try:
                check_key(prefix[:-1])
            except InvalidInputError as exc:
                raise ValueError(f"a key prefix is a blob key followed by '/': {exc}") from None
        return prefix


def _open_local(config: Mapping[str, object]) -> BlobStore:
    return LocalBlobStore(LocalBlobConfig.model_validate(config).root)


def _open_s3(config: Mapping[str, object]) -> BlobStore:
    parsed = S3BlobConfig.model_validate(config)  # before boto3 is imported
    module = importlib.import_module("c360.connectors.documents.s3")  # boto3 only when chosen
    store: BlobStore = module.S3BlobStore.from_config(parsed)
    return store


#: kind -> what opens its raw store from its config (LocalBlobConfig, S3BlobConfig)
KINDS: Mapping[str, Callable[[Mapping[str, object]], BlobStore]] = {"local": _open_local, "s3": _open_s3}


def open_blob_store(kind: str, config: Mapping[str, object], keys: VaultKeys) -> BlobStore:
    """The document store of ``kind`` (``local``, ``s3``) built from ``config``, encrypted with ``keys``.

    An unknown kind or an invalid config is a :class:`ConfigError` naming the problem.
    """
    opener = KINDS.get(kind) if isinstance(kind, str) else None
    if opener is None:
        raise ConfigError(f"unknown document store {kind!r}: expected one of {', '.join(KINDS)}")
    try:
        store = opener(dict(config))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or kind}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"document store {kind}: {problems}") from None
    return EncryptedBlobStore(store, keys)
