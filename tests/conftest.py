"""Fixtures: the store under test, parametrised over every backend.

* ``embedded``: a fresh SQLite file per test.
* ``neo4j``: the real ArcadeDB Bolt server, started once per session by the fixture and emptied
  before each test. Without ``arcadedb-embedded`` installed it is skipped, unless
  ``C360_REQUIRE_BOLT=1`` (set by CI), where that is an error.
* ``neo4j-docker``: real Neo4j through testcontainers where a Docker engine runs; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.neo4j_store import Neo4jConfig, Neo4jStore
from c360.graph.store import GraphStore

BACKENDS = ["embedded", "neo4j", "neo4j-docker"]


def _docker_running() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def bolt_config() -> Iterator[Neo4jConfig]:
    """A running ArcadeDB Bolt server for the whole session."""
    try:
        import arcadedb_embedded  # noqa: F401
    except ImportError:
        if os.environ.get("C360_REQUIRE_BOLT") == "1":
            pytest.fail("arcadedb-embedded is not installed but C360_REQUIRE_BOLT=1")
        pytest.skip("arcadedb-embedded not installed (pip install 'c360[bolt]')")
    from c360.bolt_server import ArcadeBoltServer

    with ArcadeBoltServer() as server:
        yield server.config


@pytest.fixture(scope="session")
def neo4j_docker_config() -> Iterator[Neo4jConfig]:
    """A real Neo4j 5 in a container, where a Docker engine runs."""
    if not _docker_running():
        pytest.skip("no Docker engine on this machine: the real-Neo4j tier runs where one exists")
    from pydantic import SecretStr
    from testcontainers.neo4j import Neo4jContainer

    with Neo4jContainer("neo4j:5") as container:
        yield Neo4jConfig(uri=container.get_connection_url(), user="neo4j", password=SecretStr(container.password))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    """An empty store of each backend."""
    s: GraphStore
    if backend == "embedded":
        s = EmbeddedStore(EmbeddedConfig(path=tmp_path / "graph.db"))
    else:
        fixture = "bolt_config" if backend == "neo4j" else "neo4j_docker_config"
        s = Neo4jStore(request.getfixturevalue(fixture))
        s.reset(confirm=True)
    try:
        yield s
    finally:
        s.close()
