"""A real Bolt server for tests and benchmarks: ArcadeDB from the ``arcadedb-embedded`` package.

ArcadeDB speaks Bolt and Cypher and reports itself as Neo4j 5 compatible; the package bundles its own
Java runtime, so nothing else needs installing. Not for production: point ``C360_GRAPH__NEO4J__URI``
at a Neo4j server there.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from pydantic import SecretStr

from c360.graph.errors import ConfigError, StoreUnavailableError
from c360.graph.neo4j_store import Neo4jConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def arcadedb_home() -> Path:
    """Return the folder of the installed ``arcadedb_embedded`` package (with ``jre/`` and ``jars/``)."""
    try:
        import arcadedb_embedded
    except ImportError as exc:
        raise ConfigError("arcadedb-embedded is not installed: pip install 'c360[bolt]'") from exc
    return Path(arcadedb_embedded.__file__).parent


class ArcadeBoltServer:
    """Start ArcadeDB with its Bolt plugin on a free loopback port; stop it on exit.

    Use as a context manager; :attr:`config` is the matching :class:`Neo4jConfig`.
    """

    def __init__(self, database: str = "c360", heap: str = "1g", startup_timeout: float = 60.0) -> None:
        self.database = database
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.password = secrets.token_hex(8)
        self.bolt_port = _free_port()
        self.http_port = _free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="c360-arcadedb-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Neo4jConfig:
        """Connection settings for the neo4j backend."""
        return Neo4jConfig(
            uri=f"bolt://127.0.0.1:{self.bolt_port}",
            user="root",
            password=SecretStr(self.password),
            database=self.database,
        )

    def start(self) -> None:
        """Start the server and wait until the Bolt port accepts connections."""
        home = arcadedb_home()
        java = home / "jre" / "bin" / "java"
        cmd = [
            str(java),
            f"-Xmx{self.heap}",
            f"-Darcadedb.server.rootPath={self.workdir / 'server'}",
            f"-Darcadedb.server.rootPassword={self.password}",
            "-Darcadedb.server.mode=development",
            "-Darcadedb.server.httpIncomingHost=127.0.0.1",
            f"-Darcadedb.server.httpIncomingPort={self.http_port}",
            f"-Darcadedb.server.defaultDatabases={self.database}[root]",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            f"-Darcadedb.bolt.port={self.bolt_port}",
            "-Darcadedb.bolt.host=127.0.0.1",
            "-cp",
            f"{home / 'jars'}/*",
            "com.arcadedb.server.ArcadeDBServer",
        ]
        log = (self.workdir / "server.log").open("wb")
        # It writes config/, log/ and backups/ into its working directory.
        self._proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise StoreUnavailableError(f"ArcadeDB exited with {self._proc.returncode}: {self.log_tail()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.bolt_port)) == 0 and self._database_ready():
                    return
            time.sleep(0.2)
        self.stop()
        raise StoreUnavailableError(f"ArcadeDB did not open Bolt within {self.startup_timeout}s: {self.log_tail()}")

    def _database_ready(self) -> bool:
        # The Bolt port opens before the default database exists.
        from neo4j import GraphDatabase
        from neo4j.exceptions import Neo4jError, ServiceUnavailable

        cfg = self.config
        try:
            with (
                GraphDatabase.driver(cfg.uri, auth=(cfg.user, self.password)) as driver,
                driver.session(database=self.database) as session,
            ):
                session.run("RETURN 1 AS ok").consume()
            return True
        except (Neo4jError, ServiceUnavailable, OSError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        path = self.workdir / "server.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if not os.environ.get("C360_KEEP_ARCADEDB"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ArcadeBoltServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
