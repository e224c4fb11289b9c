"""Events through a real Kafka-protocol broker (noida-db) and ``c360 worker`` (Faust), end to end.

The worker is killed with SIGKILL mid-stream and restarted: every event is applied exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from test_pipeline import order, profile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _ready(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A noida-db Kafka broker on a free loopback port, stopped afterwards."""
    binary = str(files("noida_db").joinpath("noida-db"))
    os.chmod(binary, 0o755)
    port = _free_port()
    data = tmp_path_factory.mktemp("kafka")
    log = (data / "broker.log").open("wb")
    proc = subprocess.Popen(
        [binary, "start", "--only", "kafka", "--kafka-port", str(port), "--host", "127.0.0.1", "--data-dir", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not asyncio.run(_ready(bootstrap)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"noida-db did not start: {(data / 'broker.log').read_text()}")
        time.sleep(0.1)
    yield bootstrap
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


async def _create_topics(bootstrap: str, prefix: str) -> None:
    """Provision one test's topics as an operator would (4 partitions each)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from c360.streams.app import EVENT_TYPES, StreamsConfig

    config = StreamsConfig(topic_prefix=prefix)
    names = [config.topic(t) for t in EVENT_TYPES] + [config.dead_letter_topic]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=4, replication_factor=1) for n in names])
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


def _worker(home: Path, bootstrap: str, group: str) -> subprocess.Popen[bytes]:
    # A stable instance id (static membership): the restarted worker takes its partitions back at once.
    # Without one, noida-db 0.2.3 keeps a SIGKILLed member in the group and the restart waits in JoinGroup.
    env = _env(bootstrap, f"{group}.")
    env.update(
        {
            "C360_STREAMS__APP_ID": group,
            "C360_STREAMS__INSTANCE_ID": f"{group}-worker-1",
            "C360_STREAMS__BATCH_SIZE": "50",
            "C360_STREAMS__BATCH_WITHIN": "0.1",
            "C360_STREAMS__SESSION_TIMEOUT": "6",
            "C360_STREAMS__MAX_POLL_INTERVAL": "8",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "c360", "worker"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(home / f"worker-{time.monotonic_ns()}.log").open("wb"),
    )


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
    asyncio.run(_create_topics(broker, prefix))
    first = _messages(prefix, 300)
    second = _messages(prefix, 300, start=300)
    bad = [(f"{prefix}order", "crm|x", b"{broken"), (f"{prefix}order", "crm|y", b'{"type": "order"}')]
    worker = _worker(tmp_path, broker, group)
    try:
        asyncio.run(_produce(broker, first[:300]))
        _wait(lambda: _counts(db)["events"] >= 100, 60, "the worker to apply events")
        # Stopped mid-stream: the rest comes while no worker runs.
        worker.send_signal(stop)
        worker.wait(30)
        asyncio.run(_produce(broker, first[300:] + bad + second))
        worker = _worker(tmp_path, broker, group)
        _wait(lambda: _counts(db)["events"] >= 1200 and _counts(db)["dead"] >= 2, 45, "every event after the restart")
        time.sleep(1.0)  # nothing more arrives: no duplicates, no extras
        assert _counts(db) == {"records": 600, "events": 1200, "dead": 2}
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
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
    asyncio.run(_create_topics(broker, f"{group}."))
    worker = _worker(tmp_path, broker, group)
    port = _free_port()
    env = _env(broker, f"{group}.")
    server = subprocess.Popen(
        [sys.executable, "-m", "c360", "serve", "--port", str(port)], cwd=tmp_path, env=env, stderr=subprocess.PIPE
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
            assert [d.source for d in store.dead_letters()] == ["crm"]
        finally:
            store.close()
        assert seconds < 30
    finally:
        for proc in (server, worker):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
