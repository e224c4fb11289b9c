"""``c360 serve --dev`` in a process of its own for the API benchmarks, and a dev token to call it with."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_token(work: Path, role: str) -> str:
    """A dev-mode bearer token for ``role``, signed with the key of the data folder ``work/.c360``."""
    from c360.graphql.auth import AuthConfig, dev_secret, issue_dev_token
    from c360.graphql.policy import load_policy

    key = work / ".c360" / "dev-signing.key"
    dev_secret(key)
    return issue_dev_token(
        AuthConfig(dev_mode=True, dev_key_file=key), role, "bench", ttl=3600, roles=load_policy().roles
    )


@contextmanager
def served(work: Path, start_timeout: float = 60) -> Iterator[int]:
    """Run ``c360 serve --dev`` on the data folder in ``work`` (no C360_ variables) until the block ends; its port.

    Its stderr goes to ``work/serve.log``; a server that does not listen within ``start_timeout`` stops the run.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    with (work / "serve.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "c360", "serve", "--dev", "--port", str(port)], cwd=work, env=env, stderr=log
        )
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"c360 serve did not start: {(work / 'serve.log').read_text()}") from None
                    time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=20)
