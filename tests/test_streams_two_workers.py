"""Two ``c360 worker`` processes of one group share topics of 4 partitions; one is killed mid-stream.

10,000 events of overlapping people (each person's profile in one to three sources, sharing an email, a
second update of some profiles, orders in two sources) go through real Kafka. Worker B is killed with
SIGKILL once a third is applied; A takes B's partitions over. The result must equal a sequential
in-process ingest of the same events: the same records, the same clustering of records into customers,
the same timeline of each cluster, every event once, no dead letter.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.neo4j_store import Neo4jConfig, Neo4jStore
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from c360.streams.config import StreamsConfig
from c360.streams.events import parse_event
from c360.streams.pipeline import Pipeline
from test_pipeline import order, profile
from test_streams_kafka import _logs, _stop, _wait, _worker

pytestmark = pytest.mark.slow

EVENTS = 10_000


def overlapping_people(n_events: int = EVENTS) -> list[dict[str, Any]]:
    """Events of people who appear in several sources (linked by email), with updates and orders."""
    out: list[dict[str, Any]] = []
    person = 0
    while len(out) < n_events:
        i = person
        email = f"person{i}@example.com"
        out.append(profile(f"p{i}", f"c{i}", i % 60, first_name=f"Ann{i}", last_name="Lee", email=email))
        if i % 2 == 0:
            web = profile(f"wp{i}", f"w{i}", (i + 7) % 60, first_name=f"Ann{i}", email=email.upper())
            out.append({**web, "source": "web"})
        if i % 3 == 0:
            shop = profile(f"sp{i}", f"s{i}", (i + 3) % 60, last_name="Lee", email=f" {email} ")
            out.append({**shop, "source": "shop"})
            out.append(order(f"so{i}", f"s{i}", i % 60, source="shop"))
        if i % 4 == 0:  # a later change of the same crm record (a new event, same key)
            out.append(profile(f"p{i}-2", f"c{i}", 59, first_name=f"Anne{i}", last_name="Lee", email=email))
        for j in range(3):
            out.append(order(f"o{i}-{j}", f"c{i}", (i + j) % 60))
        person += 1
    return out[:n_events]


async def _produce_all(bootstrap: str, prefix: str, payloads: list[dict[str, Any]]) -> None:
    from aiokafka import AIOKafkaProducer

    config = StreamsConfig(topic_prefix=prefix)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = []
        for payload in payloads:
            event = parse_event(payload)
            topic = config.topic(event.type)
            pending.append(await producer.send(topic, json.dumps(payload).encode(), key=event.identity.encode()))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _members(bootstrap: str, group: str) -> int:
    """Members of the group that hold partitions."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = [r.to_object() for r in await admin.describe_consumer_groups([group])]
        return sum(1 for r in described for g in r["groups"] for m in g["members"] if m["member_assignment"])
    except GroupCoordinatorNotAvailableError:  # the group does not exist yet
        return 0
    finally:
        await admin.close()


def summary(store: GraphStore) -> dict[str, Any]:
    """What must not depend on how the events were spread: records, clusters, and each cluster's timeline."""
    clusters: dict[str, set[str]] = {}
    for source, key, cid in store.iter_links():
        clusters.setdefault(cid, set()).add(f"{source}|{key}")
    timelines = {}
    for cid, uids in clusters.items():
        events = store.timeline(cid, first=1000).events
        timelines[frozenset(uids)] = sorted(e.id for e in events)
    stats = store.stats()
    return {
        "records": stats.records,
        "customers": stats.customers,
        "clusters": sorted(sorted(u) for u in clusters.values()),
        "timelines": timelines,
        "dead": len(store.dead_letters(limit=None)),
    }


def sequential(payloads: list[dict[str, Any]], db: Path) -> dict[str, Any]:
    store = EmbeddedStore(EmbeddedConfig(path=db))
    try:
        pipeline = Pipeline(store, Linker(store))
        for i in range(0, len(payloads), 50):
            pipeline.process(payloads[i : i + 50])
        return summary(store)
    finally:
        store.close()


@pytest.fixture(params=["embedded", "neo4j"])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Any]]:
    """The workers' store settings and a way to open the same store here."""
    if request.param == "embedded":
        db = tmp_path / ".c360" / "graph.db"
        yield {}, lambda: EmbeddedStore(EmbeddedConfig(path=db))
        return
    config: Neo4jConfig = request.getfixturevalue("neo4j_config")
    store = Neo4jStore(config)
    store.reset(confirm=True)
    store.close()
    env = {
        "C360_GRAPH__BACKEND": "neo4j",
        "C360_GRAPH__NEO4J__URI": config.uri,
        "C360_GRAPH__NEO4J__USER": config.user,
        "C360_GRAPH__NEO4J__PASSWORD": config.password.get_secret_value(),
    }
    yield env, lambda: Neo4jStore(config)


def _applied(open_store: Any) -> int:
    try:
        store = open_store()
    except Exception:
        return 0
    try:
        return len(store.seen_events([f"{p['source']}|{p['event_id']}" for p in PAYLOADS]))
    finally:
        store.close()


PAYLOADS = overlapping_people()


def test_two_workers_one_killed_mid_stream_equal_a_sequential_ingest(
    kafka_broker: str,
    tmp_path: Path,
    backend_env: tuple[dict[str, str], Any],
) -> None:
    env, open_store = backend_env
    expected = sequential(PAYLOADS, tmp_path / "sequential.db")
    assert expected["records"] > 2_000 and expected["customers"] < expected["records"]  # people do overlap
    group = f"c360-test-two-{time.monotonic_ns()}"
    extra = {**env, "C360_STREAMS__BATCH_SIZE": "100"}
    a = _worker(tmp_path, kafka_broker, group, instance="a", extra=extra)
    b = _worker(tmp_path, kafka_broker, group, instance="b", extra=extra)
    try:
        _wait(lambda: asyncio.run(_members(kafka_broker, group)) == 2, 90, "both workers to hold partitions")
        asyncio.run(_produce_all(kafka_broker, f"{group}.", PAYLOADS))
        _wait(lambda: _applied(open_store) >= EVENTS // 3, 120, "a third of the events")
        b.send_signal(signal.SIGKILL)
        b.wait(10)
        assert _applied(open_store) < EVENTS, "B was killed after the end: nothing was left to take over"
        _wait(lambda: _applied(open_store) == EVENTS, 240, f"every event, worker A alone\n{_logs(tmp_path)}")
        time.sleep(2)  # nothing more arrives
    finally:
        _stop(a, b)
    store = open_store()
    try:
        got = summary(store)
    finally:
        store.close()
    assert got["records"] == expected["records"] and got["customers"] == expected["customers"]
    assert got["clusters"] == expected["clusters"]
    assert got["timelines"] == expected["timelines"]
    assert got["dead"] == 0 == expected["dead"]
