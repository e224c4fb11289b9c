"""The KYC document store (connectors/documents/blobs.py, s3.py): the same tests on local files and on a
real S3-compatible server (S3Proxy on loopback, tests/s3_server.py)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from c360.connectors.documents.blobs import (
    MAGIC,
    BlobSealError,
    BlobStore,
    EncryptedBlobStore,
    LocalBlobStore,
    open_blob_store,
    sealed_key_id,
)
from c360.graph.errors import (
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from c360.graph.vault import VaultKeys
from s3_server import S3Endpoint, s3_endpoint  # noqa: F401

#: a document whose bytes are easy to look for in what is stored
PLAIN = b"%PDF-1.7 PAN ABCDE1234F Aadhaar 2345 6789 0123 " + secrets.token_bytes(4096) + b" %%EOF"


@dataclass
class Backend:
    """A document store opened by kind, and what it stores under a key, read and written around it."""

    kind: str
    config: dict[str, Any]
    read_raw: Callable[[str], bytes]
    write_raw: Callable[[str, bytes], None]

    def open(self, keys: VaultKeys) -> BlobStore:
        return open_blob_store(self.kind, self.config, keys)


def _s3_client(endpoint: S3Endpoint) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def _s3_config(endpoint: S3Endpoint, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint.url,
        "bucket": bucket,
        "access_key_id": endpoint.access_key_id,
        "secret_access_key_file": str(endpoint.secret_file),
        "connect_timeout": 5,
        "read_timeout": 10,
        "max_attempts": 2,
        **extra,
    }


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each test once on local files and once on S3Proxy (a bucket of its own, keys under a prefix)."""
    if request.param == "local":
        root = tmp_path / "documents"

        def read_local(key: str) -> bytes:
            return root.joinpath(*key.split("/")).read_bytes()

        def write_local(key: str, data: bytes) -> None:
            path = root.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return Backend("local", {"root": str(root)}, read_local, write_local)
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    client = _s3_client(endpoint)
    bucket = f"kyc-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)

    def read_s3(key: str) -> bytes:
        body: bytes = client.get_object(Bucket=bucket, Key=f"docs/{key}")["Body"].read()
        return body

    def write_s3(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"docs/{key}", Body=data)

    return Backend("s3", _s3_config(endpoint, bucket, prefix="docs/"), read_s3, write_s3)


@pytest.fixture
def keys() -> VaultKeys:
    return VaultKeys.generate()


KEY = "applications/app-1/pan_card/v1.pdf"


def test_round_trip(backend: Backend, keys: VaultKeys) -> None:
    store = backend.open(keys)
    assert isinstance(store, EncryptedBlobStore)
    assert not store.exists(KEY)
    store.put(KEY, PLAIN)
    assert store.exists(KEY)
    assert store.get(KEY) == PLAIN
    store.put("applications/app-1/pan_card/v2.pdf", b"second version")
    assert store.get(KEY) == PLAIN
    assert store.get("applications/app-1/pan_card/v2.pdf") == b"second version"


def test_write_once_an_existing_key_is_a_conflict(backend: Backend, keys: VaultKeys) -> None:
    store = backend.open(keys)
    store.put(KEY, PLAIN)
    with pytest.raises(ConflictError, match="exists"):
        store.put(KEY, b"an overwrite")
    assert store.get(KEY) == PLAIN


def test_of_writers_racing_for_one_key_exactly_one_wins(backend: Backend, keys: VaultKeys) -> None:
    store = backend.open(keys)
    barrier = threading.Barrier(8)
    won: list[int] = []
    lost: list[int] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.put(KEY, PLAIN + bytes([i]))
            won.append(i)
        except ConflictError:
            lost.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(won), len(lost)) == (1, 7)
    assert store.get(KEY) == PLAIN + bytes(won)


def test_a_missing_key(backend: Backend, keys: VaultKeys) -> None:
    store = backend.open(keys)
    with pytest.raises(NotFoundError):
        store.get("applications/none/v1.pdf")
    assert not store.exists("applications/none/v1.pdf")
    assert store.delete("applications/none/v1.pdf") is False


def test_delete_for_retention(backend: Backend, keys: VaultKeys) -> None:
    store = backend.open(keys)
    store.put(KEY, PLAIN)
    store.put("applications/app-1/selfie/v1.jpg", b"kept")
    assert store.delete(KEY) is True
    assert not store.exists(KEY)
    with pytest.raises(NotFoundError):
        store.get(KEY)
    assert store.delete(KEY) is False
    assert store.get("applications/app-1/selfie/v1.jpg") == b"kept"


def test_what_is_stored_is_not_the_plaintext(backend: Backend, keys: VaultKeys) -> None:
    backend.open(keys).put(KEY, PLAIN)
    raw = backend.read_raw(KEY)
    assert raw.startswith(MAGIC)
    assert sealed_key_id(raw) == keys.current
    assert b"ABCDE1234F" not in raw
    assert PLAIN[-2000:] not in raw
    assert len(raw) > len(PLAIN)


def test_a_blob_sealed_under_an_old_key_opens_after_rotation(backend: Backend, keys: VaultKeys) -> None:
    backend.open(keys).put(KEY, PLAIN)
    rotated = keys.rotated()
    assert rotated.current != keys.current
    store = backend.open(rotated)
    assert store.get(KEY) == PLAIN
    store.put("applications/app-1/pan_card/v2.pdf", b"under the new key")
    assert sealed_key_id(backend.read_raw("applications/app-1/pan_card/v2.pdf")) == rotated.current
    # a ring without the new key cannot open it, and says so
    with pytest.raises(BlobSealError) as caught:
        backend.open(keys).get("applications/app-1/pan_card/v2.pdf")
    assert caught.value.problem == "unknown_key"


def test_a_tampered_or_moved_blob_fails_to_open(backend: Backend, keys: VaultKeys) -> None:
    store = backend.open(keys)
    store.put(KEY, PLAIN)
    raw = bytearray(backend.read_raw(KEY))
    raw[-40] ^= 0x01
    backend.write_raw("applications/app-1/tampered.pdf", bytes(raw))
    with pytest.raises(BlobSealError, match="altered") as caught:
        store.get("applications/app-1/tampered.pdf")
    assert caught.value.problem == "not_authentic"
    assert isinstance(caught.value, StoreError)
    # the untouched blob copied under another key: bound to its own key, it does not open there
    backend.write_raw("applications/app-2/pan_card/v1.pdf", backend.read_raw(KEY))
    with pytest.raises(BlobSealError) as moved:
        store.get("applications/app-2/pan_card/v1.pdf")
    assert moved.value.problem == "not_authentic"
    backend.write_raw("applications/app-1/plain.pdf", PLAIN)  # written in clear behind the store's back
    with pytest.raises(BlobSealError) as plain:
        store.get("applications/app-1/plain.pdf")
    assert plain.value.problem == "malformed"


@pytest.mark.parametrize(
    "key", ["", "../etc/passwd", "a/../b", "/abs", "a//b", "a/.hidden", "a/b/", "sp ace", "a\\b", "x" * 600, "é"]
)
def test_keys_are_validated(backend: Backend, keys: VaultKeys, key: str) -> None:
    store = backend.open(keys)
    with pytest.raises(InvalidInputError):
        store.put(key, b"x")
    with pytest.raises(InvalidInputError):
        store.get(key)


# -- local files only ------------------------------------------------------------------------------


def test_local_files_are_private_and_no_temporary_file_is_left(tmp_path: Path, keys: VaultKeys) -> None:
    store = open_blob_store("local", {"root": tmp_path / "docs"}, keys)
    store.put(KEY, PLAIN)
    with pytest.raises(ConflictError):
        store.put(KEY, b"again")
    path = tmp_path / "docs" / "applications" / "app-1" / "pan_card" / "v1.pdf"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["v1.pdf"]


def test_a_key_under_another_blob_is_a_conflict(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("a", b"x")
    with pytest.raises(ConflictError):
        store.put("a/b", b"y")
    with pytest.raises(NotFoundError):
        store.get("a/b")


# -- configs and the registry ----------------------------------------------------------------------


def test_unknown_kinds_and_bad_configs_are_config_errors(tmp_path: Path, keys: VaultKeys) -> None:
    with pytest.raises(ConfigError, match="unknown document store"):
        open_blob_store("gcs", {}, keys)
    with pytest.raises(ConfigError, match="root"):
        open_blob_store("local", {}, keys)
    with pytest.raises(ConfigError, match="mode: Extra inputs"):
        open_blob_store("local", {"root": str(tmp_path), "mode": "fast"}, keys)
    s3 = {"endpoint_url": "http://127.0.0.1:9", "bucket": "kyc-docs", "access_key_id": "a"}
    with pytest.raises(ConfigError, match="secret_access_key"):  # inline secrets are not a field
        open_blob_store("s3", {**s3, "secret_access_key_file": "/x", "secret_access_key": "inline"}, keys)
    with pytest.raises(ConfigError, match="https"):
        open_blob_store("s3", {**s3, "endpoint_url": "http://s3.example.com", "secret_access_key_file": "/x"}, keys)
    with pytest.raises(ConfigError, match="prefix"):
        open_blob_store("s3", {**s3, "secret_access_key_file": "/x", "prefix": "../"}, keys)


def test_the_s3_module_and_boto3_are_imported_only_when_chosen(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from c360.connectors.documents.blobs import open_blob_store\n"
        "from c360.graph.vault import VaultKeys\n"
        f"open_blob_store('local', {{'root': {str(tmp_path)!r}}}, VaultKeys.generate()).put('k', b'x')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('boto', 'c360.connectors.documents.s3'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_world_readable_secret_file_is_refused(tmp_path: Path, keys: VaultKeys) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n", encoding="utf-8")
    os.chmod(secret, 0o644)
    config = {"endpoint_url": "http://127.0.0.1:9", "bucket": "kyc-docs", "access_key_id": "a"}
    with pytest.raises(ConfigError, match="chmod 600"):
        open_blob_store("s3", {**config, "secret_access_key_file": str(secret)}, keys)


# -- S3 outages and refusals ------------------------------------------------------------------------


def test_s3_errors_are_the_domains(s3_endpoint: S3Endpoint, tmp_path: Path, keys: VaultKeys) -> None:  # noqa: F811
    missing_bucket = open_blob_store("s3", _s3_config(s3_endpoint, "kyc-never-made"), keys)
    with pytest.raises(StoreError, match="does not exist"):
        missing_bucket.put(KEY, b"x")
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-secret\n", encoding="utf-8")
    wrong.chmod(0o600)
    bucket = f"kyc-{uuid.uuid4().hex[:12]}"
    _s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    refused = open_blob_store("s3", {**_s3_config(s3_endpoint, bucket), "secret_access_key_file": str(wrong)}, keys)
    with pytest.raises(StoreUnavailableError, match="refused the credentials"):
        refused.get(KEY)
    import socket

    with socket.socket() as sock:  # a loopback port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = open_blob_store(
        "s3",
        {**_s3_config(s3_endpoint, bucket), "endpoint_url": f"http://127.0.0.1:{port}", "max_attempts": 1},
        keys,
    )
    with pytest.raises(StoreUnavailableError, match="cannot be reached"):
        down.exists(KEY)
