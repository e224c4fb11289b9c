"""A real Neo4j Community 5.26 server for the tests and benchmarks, run by ``tests/servers/neo4j``.

The jars come from Maven Central once (``~/.m2`` keeps them); the server runs on loopback with its home
in a folder of the caller's, so a test can stop and start it again on the same data. ``start()``
returns once the official driver connects.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from types import TracebackType

from c360.graph.neo4j_store import Neo4jConfig

SCRIPT = Path(__file__).parent / "servers" / "neo4j"


class Neo4jServer:
    """One Neo4j server with its home in ``home``; a context manager that stops it on exit."""

    def __init__(self, home: Path, *, heap: str = "1g", timeout: float = 180) -> None:
        self.home = home
        self.heap = heap
        self.timeout = timeout
        self.uri: str | None = None

    @property
    def config(self) -> Neo4jConfig:
        """How c360 reaches the running server."""
        if self.uri is None:
            raise RuntimeError("the Neo4j server is not running")
        return Neo4jConfig(uri=self.uri)

    def start(self) -> Neo4jConfig:
        """Start (or restart on the same data) and wait until the driver connects."""
        env = {**os.environ, "C360_NEO4J_HEAP": self.heap, "C360_NEO4J_START_TIMEOUT": str(int(self.timeout))}
        done = subprocess.run(
            [str(SCRIPT), "start", str(self.home)], capture_output=True, text=True, env=env, timeout=self.timeout + 300
        )
        if done.returncode != 0:
            raise RuntimeError(f"Neo4j did not start (exit {done.returncode}): {done.stderr[-4000:]}")
        self.uri = done.stdout.strip().splitlines()[-1]
        self._wait_for_driver()
        return self.config

    def _wait_for_driver(self) -> None:
        from neo4j import GraphDatabase

        deadline = time.monotonic() + 60
        while True:
            try:
                with GraphDatabase.driver(self.config.uri, auth=None) as driver:
                    driver.verify_connectivity()
                    driver.execute_query("RETURN 1")
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Neo4j at {self.uri} started but the driver cannot connect: {exc}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server (its data stays in ``home``)."""
        subprocess.run([str(SCRIPT), "stop", str(self.home)], check=False, timeout=120)

    def __enter__(self) -> Neo4jServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
