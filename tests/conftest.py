"""Fixtures: the store under test, parametrised over every backend.

* ``embedded``: a fresh SQLite file per test.
* ``neo4j``: a real Neo4j Community 5.26 server (``tests/servers/neo4j``, jars from Maven Central),
  started once per session and emptied before each test. Where it cannot start (no Java, no Maven,
  no way to the jars) it is skipped with the reason, unless ``C360_REQUIRE_NEO4J=1`` (set by CI),
  where that is an error.
* ``neo4j-docker``: real Neo4j through testcontainers where a Docker engine runs; skipped otherwise.

``kafka_broker`` is the session's real Apache Kafka broker for the stream tests.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.neo4j_store import Neo4jConfig, Neo4jStore
from c360.graph.store import GraphStore
from corpus import Corpus, trained_corpus
from kafka_server import KafkaServer, KafkaUnavailable
from neo4j_server import Neo4jServer
from server_tier import unavailable
from smtp_server import SmtpServer

BACKENDS = ["embedded", "neo4j", "neo4j-docker"]
#: Fixtures that start a real server (Neo4j, Kafka, S3Proxy): a test that uses one is in the ``servers`` tier.
SERVER_FIXTURES = frozenset({"neo4j_server", "neo4j_config", "neo4j_docker_config", "kafka_broker", "s3_endpoint"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a real server ``servers``: ``pytest -m "not servers"`` is the fast tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or backend in ("neo4j", "neo4j-docker"):
            item.add_marker(pytest.mark.servers)


def _docker_running() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jServer]:
    """A real Neo4j server for the whole session (tests may stop and start it on the same data)."""
    server = Neo4jServer(tmp_path_factory.mktemp("neo4j"))
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        server.stop()
        unavailable("C360_REQUIRE_NEO4J", "Neo4j", exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker for the whole session: its bootstrap address ``127.0.0.1:PORT``."""
    server = KafkaServer(tmp_path_factory.mktemp("kafka"))
    try:
        bootstrap = server.start()
    except KafkaUnavailable as exc:
        unavailable("C360_REQUIRE_KAFKA", "the Kafka broker", exc)
    try:
        yield bootstrap
    finally:
        server.stop()


@pytest.fixture(scope="session")
def neo4j_config(neo4j_server: Neo4jServer) -> Neo4jConfig:
    """How c360 reaches the session's Neo4j server."""
    return neo4j_server.config


@pytest.fixture(scope="session")
def neo4j_docker_config() -> Iterator[Neo4jConfig]:
    """A real Neo4j 5 in a container, where a Docker engine runs."""
    if not _docker_running():
        pytest.skip("no Docker engine on this machine: the real-Neo4j tier runs where one exists")
    from pydantic import SecretStr
    from testcontainers.neo4j import Neo4jContainer

    with Neo4jContainer("neo4j:5.26-community") as container:
        yield Neo4jConfig(uri=container.get_connection_url(), user="neo4j", password=SecretStr(container.password))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """400 generated persons (seed 31) and a model trained on them, once a session: the batch and real-time
    resolution tests read it (each trained its own, on a set of the same size)."""
    return trained_corpus(tmp_path_factory.mktemp("corpus"), 400, 31)


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
        fixture = "neo4j_config" if backend == "neo4j" else "neo4j_docker_config"
        s = Neo4jStore(request.getfixturevalue(fixture))
        s.reset(confirm=True)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd), started for the test; ``smtp.inbox.mails`` is what arrived."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
