"""Streaming throughput and lag, with real-time resolution on.

    python benchmarks/stream.py                      # 20,000 events, both paths
    python benchmarks/stream.py --events 50000 --paths embedded

Set-up (both paths): a synthetic base of ``--base`` persons is ingested and a model trained on it, as
``c360 resolve train`` would. The events are new profile updates of held-out records (duplicates of
stored people among them), one order per profile and two web-activity events per order, in that order.

- embedded: the in-process pipeline (``POST /v1/events`` without Kafka) applies batches of
  ``--batch`` events; events/s over the whole set, and the lag from a batch's submission to its
  events being visible (the answer is sent after the commit) per batch, p50/p99.
- kafka: a real Apache Kafka 4 broker on loopback (``tests/servers/kafka``, KRaft, one node; its own
  folder, stopped afterwards) and one ``c360 worker`` (Faust). Throughput: every event is
  produced first, then the worker starts; events/s from its first applied event to its last. Lag: then
  ``--rate`` events/s are produced for ``--seconds`` and a sample of them is polled in the store until
  visible: lag from the broker's acknowledgement to visibility, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

PERSONS_PER_RECORD = 0.51
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _records(data: Path) -> list[Any]:
    from c360.connectors.files import FileSource
    from c360.connectors.synthetic import Dataset

    ds = Dataset.load(data)
    return [r for sf in ds.sources for r in FileSource(sf.path, sf.source, ds.mapping_of(sf))]


def prepare(work: Path, base: int, events: int) -> list[dict[str, Any]]:
    """Ingest the base, train, and return the event payloads."""
    from c360.connectors.synthetic import generate
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.blocking import filing
    from c360.resolution.config import TrainingConfig
    from c360.resolution.linker import Linker
    from c360.resolution.model_registry import ModelRegistry
    from c360.resolution.splink_adapter import train
    from c360.streams.pipeline import profile_payload

    profiles = events // 4  # each profile brings an order and two clicks
    generate(int((base + profiles) * PERSONS_PER_RECORD) + 50, work / "data", seed=3)
    records = _records(work / "data")
    stored, held = records[:base], list(islice(records, base, base + profiles))
    store = EmbeddedStore(EmbeddedConfig(path=work / ".c360" / "graph.db"))
    Linker(store).ingest(stored)
    settings, tf, summary = train(stored, region="US", config=TrainingConfig(u_max_pairs=2e5))
    artifact = ModelRegistry(work / ".c360" / "models").save(settings, tf, summary)
    store.replace_blocking_keys(*filing(stored, "US", artifact.specification()))
    store.close()
    out: list[dict[str, Any]] = []
    for i, record in enumerate(held):
        out.append(profile_payload(record, f"bench-p{i}"))
        at = record.observed_at.isoformat() if record.observed_at.tzinfo else record.observed_at.isoformat() + "Z"
        common = {"source": record.source, "occurred_at": at, "customer_key": record.key}
        out.append(
            {
                **common,
                "event_id": f"bench-o{i}",
                "type": "order",
                "order_id": f"O{i}",
                "currency": "USD",
                "total": "25.00",
                "line_items": [{"line_id": "1", "product_id": f"P{i % 97}", "quantity": 1, "unit_price": "25.00"}],
            }
        )
        for j, action in enumerate(("product_view", "add_to_cart")):
            out.append(
                {
                    **common,
                    "event_id": f"bench-w{i}-{j}",
                    "type": "web_activity",
                    "action": action,
                    "session_id": f"S{i}",
                    "product_id": f"P{i % 97}",
                }
            )
    return out


def embedded(work: Path, payloads: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    from c360.deps import build_pipeline, build_store
    from c360.settings import load_settings

    settings = load_settings(data_dir=work / ".c360")
    store = build_store(settings)
    pipeline = build_pipeline(settings, store)
    lags = []
    started = time.perf_counter()
    applied = 0
    for i in range(0, len(payloads), batch):
        t = time.perf_counter()
        applied += len(pipeline.process(payloads[i : i + batch]).accepted)
        lags.append(time.perf_counter() - t)
    seconds = time.perf_counter() - started
    store.close()
    lags.sort()
    return {
        "events": applied,
        "per_s": applied / seconds,
        "lag_p50_ms": 1000 * statistics.median(lags),
        "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
    }


async def _admin(bootstrap: str) -> None:
    """Create the topics as the worker would (4 partitions), before anything is produced."""
    from c360.streams.config import StreamsConfig
    from c360.streams.topics import ensure_topics

    await ensure_topics(StreamsConfig(brokers=f"kafka://{bootstrap}", partitions=4))


async def _produce(bootstrap: str, payloads: list[dict[str, Any]], rate: float | None = None) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer
    from c360.streams.config import StreamsConfig
    from c360.streams.events import parse_event

    config = StreamsConfig()
    acked: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for n, payload in enumerate(payloads):
            event = parse_event(payload)
            fut = await producer.send(
                config.topic(event.type), json.dumps(payload).encode(), key=event.identity.encode()
            )
            pending.append((f"{event.source}|{event.event_id}", fut))
            if rate is not None:
                ahead = started + (n + 1) / rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(pending) >= 500 or rate is not None:
                for eid, f in pending:
                    await f
                    acked[eid] = time.perf_counter()
                pending = []
        for eid, f in pending:
            await f
            acked[eid] = time.perf_counter()
    finally:
        await producer.stop()
    return acked


def _count(db: Path) -> int:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(con.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        con.close()


def kafka(work: Path, payloads: list[dict[str, Any]], rate: float, seconds: float) -> dict[str, Any]:
    import sqlite3

    from kafka_server import KafkaServer

    broker = KafkaServer(work / "kafka")
    bootstrap = broker.start()
    print(f"  Kafka broker started in {broker.start_seconds:.1f}s at {bootstrap}", flush=True)
    worker = None
    try:
        asyncio.run(_admin(bootstrap))
        db = work / ".c360" / "graph.db"
        before = _count(db)
        asyncio.run(_produce(bootstrap, payloads))
        env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
        env.update({"C360_STREAMS__BROKERS": f"kafka://{bootstrap}", "C360_STREAMS__INSTANCE_ID": "bench-1"})
        worker = subprocess.Popen(
            [sys.executable, "-m", "c360", "worker"], cwd=work, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        first = last = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = _count(db) - before
            now = time.perf_counter()
            if n > 0 and first is None:
                first = now
            if n >= len(payloads):
                last = now
                break
            time.sleep(0.05)
        if first is None or last is None:
            raise SystemExit("the worker did not apply every event within 10 minutes")
        throughput = len(payloads) / max(last - first, 1e-9)
        # Lag at a steady rate: re-send the same events under new ids and poll a sample until visible.
        steady = [
            {**p, "event_id": f"lag-{i}"}
            for i, p in enumerate(islice((p for p in payloads if p["type"] != "profile_update"), int(rate * seconds)))
        ]
        acked_box: dict[str, float] = {}

        async def run() -> None:
            acked_box.update(await _produce(bootstrap, steady, rate=rate))

        import threading

        t = threading.Thread(target=lambda: asyncio.run(run()))
        t.start()
        sample = {f"{p['source']}|{p['event_id']}" for p in steady[:: max(1, len(steady) // 300)]}
        seen: dict[str, float] = {}
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        deadline = time.monotonic() + seconds + 120
        while len(seen) < len(sample) and time.monotonic() < deadline:
            wanted = [e for e in sample if e not in seen]
            marks = ",".join("?" * len(wanted))
            now = time.perf_counter()
            for (eid,) in con.execute(f"SELECT id FROM events WHERE id IN ({marks})", wanted):
                seen[eid] = now
            time.sleep(0.01)
        con.close()
        t.join()
        lags = sorted(seen[e] - acked_box[e] for e in seen if e in acked_box)
        return {
            "events": len(payloads),
            "per_s": throughput,
            "lag_p50_ms": 1000 * statistics.median(lags),
            "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
            "lag_sampled": len(lags),
            "rate": rate,
        }
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="Events per path (a quarter are profiles).")
    parser.add_argument("--base", type=int, default=20_000, help="Records stored before the stream starts.")
    parser.add_argument("--batch", type=int, default=100, help="Events per in-process batch (one HTTP post).")
    parser.add_argument("--rate", type=float, default=500, help="Events/s produced while measuring Kafka lag.")
    parser.add_argument("--seconds", type=float, default=10, help="How long the Kafka lag is measured.")
    parser.add_argument("--paths", default="embedded,kafka", help="Which paths to measure.")
    args = parser.parse_args()
    paths = args.paths.split(",")
    print(f"machine: {os.cpu_count()} cores; {args.base:,} records stored; model trained; embedded store", flush=True)
    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            started = time.perf_counter()
            payloads = prepare(work, args.base, args.events)
            print(f"\n{path}: {len(payloads):,} events prepared in {time.perf_counter() - started:.0f}s", flush=True)
            if path == "embedded":
                r = embedded(work, payloads, args.batch)
                print(
                    f"  in-process pipeline, batches of {args.batch}: {r['per_s']:,.0f} events/s; "
                    f"lag (submit to visible) p50 {r['lag_p50_ms']:.1f}ms, p99 {r['lag_p99_ms']:.1f}ms",
                    flush=True,
                )
            else:
                r = kafka(work, payloads, args.rate, args.seconds)
                print(
                    f"  one Faust worker: {r['per_s']:,.0f} events/s; at {r['rate']:.0f} events/s, lag (broker ack to "
                    f"visible) p50 {r['lag_p50_ms']:.0f}ms, p99 {r['lag_p99_ms']:.0f}ms ({r['lag_sampled']} sampled)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
