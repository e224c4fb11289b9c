"""A real S3-compatible server (S3Proxy, jclouds' filesystem provider) for the tests: ``tests/servers/s3proxy``.

:class:`S3Server` starts and stops it in a folder of its own with an identity and credential it chooses;
the session fixture :func:`s3_endpoint` yields how to reach it. A test module uses it with
``from s3_server import s3_endpoint  # noqa: F401``. When S3Proxy cannot start the tests that need it are
skipped, or fail where ``C360_REQUIRE_S3=1`` (CI).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_tier import unavailable

SCRIPT = Path(__file__).resolve().parent / "servers" / "s3proxy"


class S3Unavailable(RuntimeError):
    """S3Proxy could not be started; the message says why (the script's own words)."""


@dataclass(frozen=True)
class S3Endpoint:
    """How to reach the session's S3Proxy: its URL, its access key and the file holding its secret."""

    url: str
    access_key_id: str
    secret_access_key: str
    secret_file: Path
    data_dir: Path


class S3Server:
    """One S3Proxy whose home is ``home``: ``start()`` it, ``stop()`` it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.identity = f"c360-{secrets.token_hex(4)}"
        self.credential = secrets.token_urlsafe(24)
        self.start_seconds: float | None = None

    def start(self, timeout: float = 180) -> str:
        """Start the server; returns ``http://127.0.0.1:PORT`` once it listens."""
        env = {**os.environ, "C360_S3_IDENTITY": self.identity, "C360_S3_CREDENTIAL": self.credential}
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [str(SCRIPT), "start", str(self.home)],
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.stop()
            raise S3Unavailable(f"{SCRIPT.name} start: {exc}") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise S3Unavailable(f"{SCRIPT.name} start exited {proc.returncode}: {tail}")
        self.start_seconds = time.monotonic() - started
        return proc.stdout.strip().splitlines()[-1]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); its folder and data stay."""
        subprocess.run([str(SCRIPT), "stop", str(self.home)], capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A real S3Proxy for the whole session, stopped at its end."""
    home = tmp_path_factory.mktemp("s3proxy")
    server = S3Server(home)
    try:
        url = server.start()
    except S3Unavailable as exc:
        unavailable("C360_REQUIRE_S3", "S3Proxy", exc)
    secret_file = home / "secret-access-key"
    secret_file.write_text(server.credential + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    try:
        yield S3Endpoint(url, server.identity, server.credential, secret_file, home / "data")
    finally:
        server.stop()
