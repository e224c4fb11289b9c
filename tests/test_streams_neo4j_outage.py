"""A Neo4j restart under a running worker loses nothing: real Kafka, real Neo4j, ``c360 worker``.

The worker applies events to the neo4j store; Neo4j is stopped mid-stream, events keep coming while it
is down, and it is started again on the same data. The batches the store refused stay unacknowledged
and are retried until Neo4j answers: every event is applied exactly once, none becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from c360.graph.neo4j_store import Neo4jConfig, Neo4jStore
from neo4j_server import Neo4jServer
from test_streams_kafka import _committed, _messages, _produce, _stop, _wait, _worker

pytestmark = pytest.mark.slow

PEOPLE = 400


def _seen(config: Neo4jConfig) -> set[str]:
    ids = [f"crm|{kind}{i}" for i in range(PEOPLE) for kind in ("p", "o")]
    try:
        with Neo4jStore(config) as store:
            return store.seen_events(ids)
    except Exception:  # the server is down or starting
        return set()


def test_a_neo4j_restart_mid_stream_loses_no_event(
    kafka_broker: str,
    neo4j_server: Neo4jServer,
    neo4j_config: Neo4jConfig,
    tmp_path: Path,
) -> None:
    Neo4jStore(neo4j_config).reset(confirm=True)
    group = f"c360-test-neo4j-outage-{time.monotonic_ns()}"
    prefix = f"{group}."
    messages = _messages(prefix, PEOPLE)  # a profile update and an order per person
    backend = {"C360_GRAPH__BACKEND": "neo4j", "C360_GRAPH__NEO4J__URI": neo4j_config.uri}
    worker = _worker(tmp_path, kafka_broker, group, extra={**backend, "C360_STREAMS__RETRY_MAX": "2"})
    try:
        asyncio.run(_produce(kafka_broker, messages[:300]))
        _wait(lambda: len(_seen(neo4j_config)) >= 100, 90, "the worker to apply events")
        neo4j_server.stop()
        asyncio.run(_produce(kafka_broker, messages[300:]))  # sent while the store is down
        # Neo4j comes back only once the worker has met the outage (it may still be busy with a batch).
        _wait(lambda: "the store failed" in _logs(tmp_path), 90, "the worker to meet the outage")
        assert worker.poll() is None, "the worker died with the store"
        neo4j_server.start()
        _wait(lambda: len(_seen(neo4j_config)) == 2 * PEOPLE, 120, "every event after Neo4j came back")
        _wait(lambda: asyncio.run(_committed(kafka_broker, group)) == 2 * PEOPLE, 30, "the offsets to be committed")
        assert worker.poll() is None
    finally:
        _stop(worker)
    with Neo4jStore(neo4j_config) as store:
        assert store.stats().records == PEOPLE
        assert store.dead_letters(limit=None) == []
        links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
        assert len(set(links.values())) == PEOPLE
        for i in (0, 150, PEOPLE - 1):
            assert [e.id for e in store.timeline(links[f"crm|{i}"]).events] == [f"crm|o{i}"]
    assert "the store failed" in _logs(tmp_path)  # the outage was seen and retried, not skipped


def _logs(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.glob("worker-*.log"))
