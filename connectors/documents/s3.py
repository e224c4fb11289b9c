"""The ``s3`` document store: one object per key in a bucket of an S3-compatible service, with boto3.

Imported only when ``open_blob_store("s3", ...)`` is called (boto3 is the ``s3`` extra). The client has an
explicit endpoint, path-style addressing, connect and read timeouts and bounded retries ("standard"
mode). Write-once is the server's: ``put_object`` with ``IfNoneMatch="*"``, which S3 and S3Proxy refuse
with 412 PreconditionFailed when the key exists (checked against S3Proxy 4.1.0 in the tests), so two
writers racing for one key cannot both succeed. A service that ignores the header would overwrite: use
only services that honour conditional writes. ``delete`` asks ``head_object`` first to tell whether the
key was there (S3 answers 204 either way); two purges racing may both report True.

Errors are the domain's: a missing key is :class:`NotFoundError`, an existing one
:class:`ConflictError`, an unreachable service or refused credentials
:class:`~c360.graph.errors.StoreUnavailableError`, anything else :class:`StoreError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from c360.graph.errors import ConfigError, ConflictError, NotFoundError, StoreError, StoreUnavailableError

from .blobs import BlobStore, S3BlobConfig

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
_EXISTS = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"})


def read_secret(path: Path) -> str:
    """The secret access key in ``path`` (one line, readable by its owner only); ConfigError otherwise."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode & 0o777
    except OSError as exc:
        raise ConfigError(f"cannot read the S3 secret access key file {path}: {exc.strerror}") from exc
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"S3 secret access key file {path} may be read by others (mode {mode:04o}); chmod 600")
    if not text or "\n" in text:
        raise ConfigError(f"S3 secret access key file {path}: expected the secret on one line")
    return text


class S3BlobStore(BlobStore):
    """Blobs as objects ``prefix + key`` in ``bucket``, through a boto3 S3 ``client``."""

    def __init__(self, client: Any, bucket: str, *, prefix: str = "", where: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.where = where or f"bucket {bucket}"

    def __repr__(self) -> str:
        return f"S3BlobStore({self.where!r}, prefix={self.prefix!r})"

    @classmethod
    def from_config(cls, config: S3BlobConfig) -> S3BlobStore:
        """A store reaching ``config.endpoint_url`` with the secret read from its file."""
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=read_secret(config.secret_access_key_file),
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                retries={"max_attempts": config.max_attempts, "mode": "standard"},
            ),
        )
        return cls(client, config.bucket, prefix=config.prefix, where=f"{config.endpoint_url}/{config.bucket}")

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if _code(exc) in _EXISTS:
                raise ConflictError(f"blob {key} exists; a new version is a new key") from None
            self._fail("write", key, exc)
        except BotoCoreError as exc:
            self._fail("write", key, exc)

    def _get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise NotFoundError(f"no blob {key}") from None
            self._fail("read", key, exc)
        except BotoCoreError as exc:
            self._fail("read", key, exc)
        return body

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            self._fail("look up", key, exc)
        except BotoCoreError as exc:
            self._fail("look up", key, exc)
        return True

    def _delete(self, key: str) -> bool:
        if not self._exists(key):
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except (ClientError, BotoCoreError) as exc:
            self._fail("delete", key, exc)
        return True

    def _fail(self, action: str, key: str, exc: ClientError | BotoCoreError) -> NoReturn:
        if isinstance(exc, ConnectionError | HTTPClientError):
            raise StoreUnavailableError(f"the document store at {self.where} cannot be reached: {exc}") from exc
        if isinstance(exc, ClientError):
            code = _code(exc)
            if code in _DENIED:
                raise StoreUnavailableError(
                    f"the document store at {self.where} refused the credentials ({code})"
                ) from exc
            if code == "NoSuchBucket":
                raise StoreError(f"the document store's bucket {self.bucket} does not exist") from exc
            raise StoreError(f"the document store at {self.where} could not {action} blob {key}: {code}") from exc
        raise StoreError(f"the document store at {self.where} could not {action} blob {key}: {exc}") from exc


def _code(exc: ClientError) -> str:
    error: dict[str, Any] = exc.response.get("Error", {})
    return str(error.get("Code", ""))
