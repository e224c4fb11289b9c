"""A real Apache Kafka broker (KRaft, one node) for the tests and benchmarks: ``tests/servers/kafka``.

:class:`KafkaServer` starts, stops and restarts the broker in a folder of its own (a restart keeps its
port and data); the session fixture ``kafka_broker`` (tests/conftest.py) yields its bootstrap address.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "servers" / "kafka"


class KafkaUnavailable(RuntimeError):
    """The broker could not be started; the message says why (the script's own words)."""


class KafkaServer:
    """One Kafka node whose home is ``home``: ``start()`` it, ``stop()`` it, ``restart()`` it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.bootstrap: str | None = None
        self.start_seconds: float | None = None

    def start(self, port: int | None = None, timeout: float = 180) -> str:
        """Start the node (formatting ``home`` the first time); returns ``127.0.0.1:PORT`` once it listens."""
        args = [str(SCRIPT), "start", str(self.home), *([str(port)] if port else [])]
        started = time.monotonic()
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.stop()
            raise KafkaUnavailable(f"{SCRIPT.name} start: {exc}") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise KafkaUnavailable(f"{SCRIPT.name} start exited {proc.returncode}: {tail}")
        self.start_seconds = time.monotonic() - started
        self.bootstrap = proc.stdout.strip().splitlines()[-1]
        return self.bootstrap

    def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL); its folder and data stay."""
        subprocess.run([str(SCRIPT), "stop", str(self.home)], capture_output=True, timeout=60, check=False)

    def restart(self) -> str:
        """Stop and start again on the same port with the same data."""
        self.stop()
        return self.start()

    @property
    def log(self) -> Path:
        """The broker's own log."""
        return self.home / "logs" / "server.log"

    def __enter__(self) -> KafkaServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
