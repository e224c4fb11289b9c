"""Failures on the Kafka path lose nothing: a store that refuses writes, a worker killed meanwhile, a broker down.

- The embedded store's write lock is held by another connection for longer than the store waits for it
  (30 s) while events flow: the worker logs the failure, acknowledges nothing, tries again with backoff;
  killed with SIGKILL during the outage, the worker started in its place gets every batch back. Once the
  lock is released every event is applied, none twice.
- With the broker down, ``POST /v1/events`` answers 503 with ``Retry-After`` (problem+json) within the
  produce timeout and ``/readyz`` says why; once the broker is back, both recover on their own.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from kafka_server import KafkaServer, KafkaUnavailable
from server_tier import unavailable
from test_cli import c360
from test_http_events import _free_port
from test_pipeline import order, profile
from test_streams_kafka import _env, _logs, _produce, _stop, _topics_create, _wait, _worker

pytestmark = [pytest.mark.slow, pytest.mark.servers]  # real servers: a broker of its own

#: The workers' embedded store waits this long for SQLite's write lock before its write fails.
STORE_LOCK_WAIT = 3


def _counts(db: Path) -> dict[str, int]:
    """Records, events and dead letters, read without writing (the store's own open writes its schema)."""
    if not db.exists():
        return {"records": 0, "events": 0, "dead": 0}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        one = lambda sql: int(con.execute(sql).fetchone()[0])  # noqa: E731
        return {
            "records": one("SELECT count(*) FROM records"),
            "events": one("SELECT count(*) FROM events"),
            "dead": one("SELECT count(*) FROM dead_letters"),
        }
    except sqlite3.OperationalError as exc:  # the file exists before the worker's schema is committed
        if "no such table" not in str(exc):
            raise
        return {"records": 0, "events": 0, "dead": 0}
    finally:
        con.close()


def _hold_write_lock(db: Path, seconds: float, held: threading.Event) -> None:
    con = sqlite3.connect(db, isolation_level=None, timeout=60)
    try:
        con.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        con.execute("ROLLBACK")
    finally:
        con.close()


def test_a_store_lock_longer_than_the_store_waits_loses_nothing_even_across_a_restart(
    kafka_broker: str,
    tmp_path: Path,
) -> None:
    group = f"c360-test-lock-{time.monotonic_ns()}"
    prefix = f"{group}."
    db = tmp_path / ".c360" / "graph.db"
    fast_retry = {
        "C360_STREAMS__RETRY_FIRST": "0.2",
        "C360_STREAMS__RETRY_MAX": "2",
        "C360_GRAPH__EMBEDDED_LOCK_TIMEOUT": str(STORE_LOCK_WAIT),
    }
    topic = f"{prefix}profile_update"
    warm = [(topic, f"crm|w{i}", json.dumps(profile(f"w{i}", f"w{i}", 1)).encode()) for i in range(20)]
    during: list[tuple[str, str, bytes]] = []
    for i in range(100):
        p = profile(f"p{i}", f"k{i}", i % 60, first_name=f"Lock{i}", email=f"lock{i}@example.com")
        during.append((f"{prefix}profile_update", f"crm|k{i}", json.dumps(p).encode()))
        for j in range(3):
            during.append((f"{prefix}order", f"crm|k{i}", json.dumps(order(f"o{i}-{j}", f"k{i}", j)).encode()))
    worker = _worker(tmp_path, kafka_broker, group, extra=fast_retry)
    second = None
    try:
        _wait(lambda: bool(_topic_ready(kafka_broker, prefix)), 60, "the worker's topics")
        asyncio.run(_produce(kafka_broker, warm))
        _wait(lambda: _counts(db)["events"] == 20, 60, "the first events")
        held = threading.Event()
        # Held past the store's own wait: the worker's write fails, it retries; then it is killed and a
        # new worker starts while the lock is still held.
        locker = threading.Thread(target=_hold_write_lock, args=(db, STORE_LOCK_WAIT + 8, held))
        locker.start()
        assert held.wait(10)
        asyncio.run(_produce(kafka_broker, during))
        _wait(lambda: "the store failed" in _logs(tmp_path), STORE_LOCK_WAIT + 15, "the worker to report the lock")
        assert _counts(db)["events"] == 20  # nothing got through the lock
        worker.send_signal(signal.SIGKILL)  # killed mid-outage, its batches unacknowledged
        worker.wait(10)
        second = _worker(tmp_path, kafka_broker, group, extra=fast_retry)
        locker.join()
        _wait(lambda: _counts(db)["events"] == 420, 90, "every event once the lock is released")
        time.sleep(2)
        assert _counts(db) == {"records": 120, "events": 420, "dead": 0}
    finally:
        _stop(worker, second)
    logs = _logs(tmp_path)
    assert "no write lock within 3 s" in logs and "database is locked" in logs, logs
    assert "nothing acknowledged" in logs, logs
    assert "Crashed" not in logs
    store = EmbeddedStore(EmbeddedConfig(path=db))
    try:
        links = {f"{s}|{k}": c for s, k, c in store.iter_links()}
        for i in (0, 57, 99):
            events = sorted(e.id for e in store.timeline(links[f"crm|k{i}"]).events)
            assert events == [f"crm|o{i}-{j}" for j in range(3)]
    finally:
        store.close()


def _topic_ready(bootstrap: str, prefix: str) -> bool:
    from test_streams_kafka import _partitions

    return len(asyncio.run(_partitions(bootstrap, [f"{prefix}profile_update", f"{prefix}order"]))) == 2


def _post(url: str, key: str, batch: list[object]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.post(f"{url}/v1/events", json=batch, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return answer, time.monotonic() - started


def _serve(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "c360", "serve", "--port", str(port)],
        cwd=home,
        env=env,
        stderr=(home / f"serve-{time.monotonic_ns()}.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            assert proc.poll() is None, "c360 serve exited"
            return False

    _wait(up, 30, "c360 serve")
    return proc, url


def _unavailable(answer: httpx.Response, seconds: float) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) >= 1
    assert "Kafka" in answer.json()["detail"] and "Traceback" not in answer.text
    assert seconds < 10  # the produce timeout is 2 s; never the client's 40 s default


def test_events_answer_503_while_the_broker_is_down_and_recover_when_it_is_back(tmp_path: Path) -> None:
    kafka = KafkaServer(tmp_path / "kafka")
    try:
        bootstrap = kafka.start()
    except KafkaUnavailable as exc:
        unavailable("C360_REQUIRE_KAFKA", "the Kafka broker", exc)
    server = None
    try:
        prefix = f"c360-test-down-{time.monotonic_ns()}."
        env = _env(bootstrap, prefix) | {"C360_STREAMS__PRODUCE_TIMEOUT": "2"}
        assert _topics_create(tmp_path, env).returncode == 0
        key = c360("partner", "add", "crm", cwd=tmp_path).stdout.strip()
        server, url = _serve(tmp_path, env)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        ok, _ = _post(url, key, [profile("d1", "d1", 1)])
        assert ok.status_code == 200, ok.text
        kafka.stop()
        answer, seconds = _post(url, key, [profile("d2", "d2", 2), {"type": "nonsense"}])
        _unavailable(answer, seconds)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and "Kafka" in ready.json()["detail"], ready.text
        kafka.start()
        _wait(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, 60, "readiness once Kafka is back")
        again, _ = _post(url, key, [profile("d2", "d2", 2)])
        assert again.status_code == 200 and again.json()["event_ids"] == ["crm|d2"], again.text
    finally:
        _stop(server)
        kafka.stop()


def test_a_server_started_while_the_broker_is_down_is_not_ready_and_answers_503(tmp_path: Path) -> None:
    env = _env(f"127.0.0.1:{_free_port()}", "nowhere.") | {"C360_STREAMS__PRODUCE_TIMEOUT": "2"}
    key = c360("partner", "add", "crm", cwd=tmp_path).stdout.strip()
    server, url = _serve(tmp_path, env)
    try:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and "cannot connect to Kafka" in ready.json()["detail"], ready.text
        answer, seconds = _post(url, key, [profile("n1", "n1", 1)])
        _unavailable(answer, seconds)
    finally:
        _stop(server)
