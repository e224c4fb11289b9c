"""Events through a real Apache Kafka broker (tests/servers/kafka) and ``c360 worker`` (Faust), end to end.

The worker creates its topics with ``streams.partitions``; it is stopped with SIGKILL or SIGTERM
mid-stream and restarted: every event is applied exactly once, the bad ones are dead letters in the
store and on the dead-letter topic. Partner events over HTTP go through Kafka too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from test_pipeline import order, profile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(kafka_broker: str) -> str:
    """The session's Kafka broker (each test uses topics and a consumer group of its own)."""
    return kafka_broker


async def _partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        found = [t for t in topics if t in existing]
        return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(found)} if found else {}
    finally:
        await admin.close()


async def _committed(bootstrap: str, group: str) -> int:
    """How many messages the group has committed, over all its partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(max(0, o.offset) for tp, o in offsets.items() if not tp.topic.startswith("__"))
    finally:
        await admin.close()


async def _produce(bootstrap: str, messages: list[tuple[str, str, bytes]], pause: float = 0.0) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, (topic, key, value) in enumerate(messages):
            await producer.send_and_wait(topic, value, key=key.encode())
            if pause and i % 50 == 49:
                await asyncio.sleep(pause)
    finally:
        await producer.stop()


def _env(bootstrap: str, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    env.update({"C360_STREAMS__BROKERS": f"kafka://{bootstrap}", "C360_STREAMS__TOPIC_PREFIX": prefix})
    return env


def _worker(
    home: Path,
    bootstrap: str,
    group: str,
    *,
    instance: str | None = "worker-1",
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``c360 worker`` in ``home``, its stderr in a log file there; ``instance`` names its static membership."""
    env = _env(bootstrap, f"{group}.")
    env.update(
        {
            "C360_STREAMS__APP_ID": group,
            "C360_STREAMS__PARTITIONS": "4",
            "C360_STREAMS__BATCH_SIZE": "50",
            "C360_STREAMS__BATCH_WITHIN": "0.1",
            "C360_STREAMS__SESSION_TIMEOUT": "6",
            "C360_STREAMS__MAX_POLL_INTERVAL": "8",
        }
    )
    if instance:
        env["C360_STREAMS__INSTANCE_ID"] = f"{group}-{instance}"
    env.update(extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "c360", "worker", "--loglevel", "info"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(home / f"worker-{time.monotonic_ns()}.log").open("wb"),
    )


def _stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _logs(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(home.glob("worker-*.log")))


def _wait(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {"records": 0, "events": 0, "dead": 0}
    store = EmbeddedStore(EmbeddedConfig(path=db))
    try:
        stats = store.stats()
        events = sum(1 for _ in store._all("SELECT id FROM events"))
        return {"records": stats.records, "events": events, "dead": len(store.dead_letters(limit=None))}
    finally:
        store.close()


def _messages(prefix: str, n: int, start: int = 0) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []
    for i in range(start, start + n):
        p = profile(f"p{i}", str(i), i % 60, first_name=f"Person{i}", email=f"person{i}@example.com")
        o = order(f"o{i}", str(i), i % 60)
        out.append((f"{prefix}profile_update", f"crm|{i}", json.dumps(p).encode()))
        out.append((f"{prefix}order", f"crm|{i}", json.dumps(o).encode()))
    return out


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_worker_applies_every_event_exactly_once_across_a_restart(
    broker: str, tmp_path: Path, stop: signal.Signals
) -> None:
    db = tmp_path / ".c360" / "graph.db"
    group = f"c360-test-{stop.name.lower()}-{time.monotonic_ns()}"
    prefix = f"{group}."  # each test its own topics
    first = _messages(prefix, 300)
    second = _messages(prefix, 300, start=300)
    bad = [(f"{prefix}order", "crm|x", b"{broken"), (f"{prefix}order", "crm|y", b'{"type": "order"}')]
    worker = _worker(tmp_path, broker, group)
    try:
        # The worker creates its topics, with streams.partitions partitions (auto-creation is off).
        names = [f"{prefix}{t}" for t in ("profile_update", "order", "dead-letter")]
        _wait(lambda: len(asyncio.run(_partitions(broker, names))) == 3, 60, "the worker to create its topics")
        assert asyncio.run(_partitions(broker, names)) == dict.fromkeys(names, 4)
        asyncio.run(_produce(broker, first[:300]))
        _wait(lambda: _counts(db)["events"] >= 100, 60, "the worker to apply events")
        # Stopped mid-stream: the rest comes while no worker runs.
        worker.send_signal(stop)
        worker.wait(30)
        asyncio.run(_produce(broker, first[300:] + bad + second))
        worker = _worker(tmp_path, broker, group)
        _wait(lambda: _counts(db)["events"] >= 1200 and _counts(db)["dead"] >= 2, 60, "every event after the restart")
        # Everything acknowledged: the group's committed offsets reach the end of the topics (1,202 messages).
        _wait(lambda: asyncio.run(_committed(broker, group)) == 1202, 30, "the offsets to be committed")
        assert _counts(db) == {"records": 600, "events": 1200, "dead": 2}
    finally:
        _stop(worker)
    store = EmbeddedStore(EmbeddedConfig(path=db))
    try:
        # Contents: each person is one customer whose timeline holds exactly its order.
        links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
        assert len(set(links.values())) == 600
        for i in (0, 149, 150, 299, 300, 599):
            assert [e.id for e in store.timeline(links[f"crm|{i}"]).events] == [f"crm|o{i}"]
        reasons = sorted(d.reason for d in store.dead_letters(limit=None))
        assert any("JSON" in r or "json" in r for r in reasons) and any("Field required" in r for r in reasons)
        letter_ids = {d.id for d in store.dead_letters(limit=None)}
    finally:
        store.close()
    # The dead-letter topic got them too, with their reasons (at least once: a redelivery may repeat one).
    on_topic = asyncio.run(_read_all(broker, f"{prefix}dead-letter"))
    assert {m["dead_letter"] for m in on_topic} == letter_ids
    assert all(m["reason"] and "payload" in m for m in on_topic)


async def _read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            if not batches and out:
                break
            out += [json.loads(m.value) for msgs in batches.values() for m in msgs]
        return out
    finally:
        await consumer.stop()


def test_worker_refuses_to_start_without_kafka(tmp_path: Path) -> None:
    from test_cli import c360

    proc = c360("worker", cwd=tmp_path, ok=False)
    assert proc.returncode != 0 and "C360_STREAMS__BROKERS" in proc.stderr


def test_http_events_go_through_kafka_and_answer_after_the_broker_acked(broker: str, tmp_path: Path) -> None:
    import httpx
    from test_cli import c360
    from test_http_events import _free_port

    key = c360("partner", "add", "crm", cwd=tmp_path).stdout.strip()
    group = f"c360-test-http-{time.monotonic_ns()}"
    worker = _worker(tmp_path, broker, group)
    port = _free_port()
    env = _env(broker, f"{group}.")
    server = subprocess.Popen(
        [sys.executable, "-m", "c360", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=(tmp_path / "serve.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return server.poll() is not None

        _wait(up, 30, "c360 serve")
        assert server.poll() is None
        _wait(lambda: len(asyncio.run(_partitions(broker, [f"{group}.dead-letter"]))) == 1, 60, "the topics")
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        batch = [
            profile("h1", "h1", 1, first_name="Hal", email="hal@example.com"),
            order("ho1", "h1", 2),
            {**order("ho2", "h1", 3), "currency": "dollars"},
        ]
        started = time.monotonic()
        answer = httpx.post(f"{url}/v1/events", json=batch, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["queued"] is True and body["event_ids"] == ["crm|h1", "crm|ho1"]
        assert [r["index"] for r in body["rejected"]] == [2]
        db = tmp_path / ".c360" / "graph.db"

        def applied() -> bool:
            if not db.exists():
                return False
            store = EmbeddedStore(EmbeddedConfig(path=db))
            try:
                return store.seen_events(["crm|h1", "crm|ho1"]) == {"crm|h1", "crm|ho1"}
            finally:
                store.close()

        _wait(applied, 30, "the worker to apply the posted events")
        seconds = time.monotonic() - started
        store = EmbeddedStore(EmbeddedConfig(path=db))
        try:
            cid = {f"{s}|{k}": c for s, k, c in store.iter_links()}["crm|h1"]
            assert [e.id for e in store.timeline(cid).events] == ["crm|ho1"]
            letters = store.dead_letters()
            assert [d.source for d in letters] == ["crm"]
        finally:
            store.close()
        assert seconds < 30
        # The rejected event is on the dead-letter topic too, with its reason and payload.
        on_topic = asyncio.run(_read_all(broker, f"{group}.dead-letter"))
        assert [(m["dead_letter"], m["payload"]["event_id"]) for m in on_topic] == [(letters[0].id, "ho2")]
        assert "currency" in on_topic[0]["reason"]
    finally:
        _stop(server, worker)


def _topics_create(home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "c360", "streams", "topics", "create"]
    return subprocess.run(command, cwd=home, env=env, capture_output=True, text=True, timeout=120)


def test_topics_create_is_idempotent_and_reports_a_different_partition_count(broker: str, tmp_path: Path) -> None:
    group = f"c360-test-topics-{time.monotonic_ns()}"
    prefix = f"{group}."
    env = _env(broker, prefix) | {"C360_STREAMS__PARTITIONS": "3"}
    first = _topics_create(tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": created, 3 partitions") == 8
    types = ("profile_update", "order", "transaction", "web_activity", "product", "brand", "consent_change")
    names = [f"{prefix}{t}" for t in types]
    assert asyncio.run(_partitions(broker, [*names, f"{prefix}dead-letter"])) == dict.fromkeys(
        [*names, f"{prefix}dead-letter"], 3
    )
    env["C360_STREAMS__PARTITIONS"] = "5"
    again = _topics_create(tmp_path, env)
    assert again.returncode == 0, again.stderr
    # Left alone, and said so (on stderr, as a warning).
    assert again.stderr.count("existing, 3 partitions (streams.partitions is 5; left as it is)") == 8
    assert set(asyncio.run(_partitions(broker, names)).values()) == {3}


def test_topics_create_says_when_kafka_does_not_answer(tmp_path: Path) -> None:
    from test_http_events import _free_port

    env = _env(f"127.0.0.1:{_free_port()}", "x.")
    started = time.monotonic()
    proc = _topics_create(tmp_path, env)
    assert proc.returncode != 0 and "Kafka" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 60
