"""Real-time segment latency on the Kafka path: from producing a web event to the membership in the store.

    python benchmarks/segments_latency.py                       # 60 s at 50 events/s
    python benchmarks/segments_latency.py --seconds 20 --rate 100

Set-up: ``--customers`` shoppers are ingested into an embedded store (in-process pipeline), the ML
snapshot is taken and the segments backfilled (``c360 ml segments backfill``). Then a real Apache Kafka
4 broker on loopback (``tests/servers/kafka``, its own folder, stopped afterwards), one ``c360 worker``
(Faust) and one ``c360 ml segments follow --kafka-topic c360.segments`` run as processes. Web events
are produced at ``--rate`` events/s for ``--seconds``: product views of random shoppers, and a share
(``--flip-share``) of add-to-carts, three per fresh shopper, the third of which flips that shopper into
"Frequent Cart Abandoner" (three carts in 30 days without an order).

For each flip: the time from just before the third cart is produced to that event being in the store
(the worker's part), to the membership being in the store (``segments_of``, polled every 5 ms) and to
its "segment_entered" message arriving on the follower's topic. Prints the count, p50/p95/p99/max, and
stops by itself (the broker, worker and follower with it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SEGMENT = "frequent_cart_abandoner"
TOPIC = "c360.segments"


def prepare(work: Path, customers: int) -> dict[str, str]:
    """Ingest the shoppers, snapshot, backfill; returns key -> customer id."""
    from c360.ml.snapshot import snapshot

    from c360.deps import build_pipeline, build_store
    from c360.settings import load_settings

    settings = load_settings(data_dir=work / ".c360")
    store = build_store(settings)
    pipeline = build_pipeline(settings, store)
    profiles = [
        {
            "event_id": f"p{i}",
            "type": "profile_update",
            "source": "webshop",
            "occurred_at": "2026-01-01T10:00:00Z",
            "profile": {"customer_key": f"K{i:05d}", "first_name": f"Fn{i}", "email": f"k{i}@shop.example"},
        }
        for i in range(customers)
    ]
    for i in range(0, len(profiles), 500):
        assert not pipeline.process(profiles[i : i + 500]).rejected
    snapshot(store, work / ".c360" / "ml")
    links = {k: c for s, k, c in store.iter_links() if s == "webshop"}
    store.close()
    run = subprocess.run(
        [sys.executable, "-m", "c360", "ml", "segments", "backfill", "--quiet"], cwd=work, env=_env(None),
        capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode:
        raise SystemExit(f"backfill failed: {run.stderr}")
    return links


def _env(bootstrap: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("C360_")}
    if bootstrap:
        env.update({"C360_STREAMS__BROKERS": f"kafka://{bootstrap}", "C360_STREAMS__INSTANCE_ID": "bench-1"})
    return env


async def _topics(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from c360.streams.config import StreamsConfig
    from c360.streams.topics import ensure_topics

    await ensure_topics(StreamsConfig(brokers=f"kafka://{bootstrap}", partitions=4))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()


class Consumer(threading.Thread):
    """Reads the follower's topic: when each (customer, kind) message arrived."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.arrived: dict[tuple[str, str], float] = {}
        self.stopping, self.ready = threading.Event(), threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            TOPIC, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=20,
            group_id=None,
        )  # fmt: skip
        await consumer.start()
        self.ready.set()
        try:
            while not self.stopping.is_set():
                batches = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter()
                for messages in batches.values():
                    for m in messages:
                        body = json.loads(m.value)
                        if body["segment"] == SEGMENT:
                            self.arrived.setdefault((body["customer_id"], body["type"]), now)
        finally:
            await consumer.stop()


class Producer:
    """An aiokafka producer on its own loop thread; ``send`` returns once the broker acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        from c360.streams.config import StreamsConfig

        self.config = StreamsConfig()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.producer: Any = self._wait(self._start(bootstrap))

    async def _start(self, bootstrap: str) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        await producer.start()
        return producer

    def _wait(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def send(self, payload: dict[str, Any]) -> None:
        async def go() -> None:
            topic = self.config.topic(payload["type"])
            key = f"{payload['source']}|{payload['customer_key']}".encode()
            await (await self.producer.send(topic, json.dumps(payload).encode(), key=key))

        self._wait(go())

    def close(self) -> None:
        self._wait(self.producer.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _start(args: list[str], cwd: Path, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "c360", *args], cwd=cwd, env=_env(bootstrap),
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def measure(work: Path, links: dict[str, str], rate: float, seconds: float, share: float, seed: int) -> dict[str, Any]:
    from kafka_server import KafkaServer
    from payloads import web_event

    from c360.deps import build_store
    from c360.settings import load_settings

    broker = KafkaServer(work / "kafka")
    bootstrap = broker.start()
    print(f"  Kafka broker started in {broker.start_seconds:.1f}s at {bootstrap}", flush=True)
    worker = follower = None
    consumer = Consumer(bootstrap)
    producer = None
    store = build_store(load_settings(data_dir=work / ".c360"))
    try:
        asyncio.run(_topics(bootstrap))
        worker = _start(["worker"], work, bootstrap, work / "worker.log")
        follower = _start(["ml", "segments", "follow", "--kafka-topic", TOPIC], work, bootstrap, work / "follower.log")
        consumer.start()
        consumer.ready.wait(60)
        producer = Producer(bootstrap)
        rng = random.Random(seed)
        keys = sorted(links)
        fresh = iter(keys[1:])
        now = datetime.now(UTC)
        # warm-up: one shopper flipped end to end (the worker and follower are up when it shows)
        warm = keys[0]
        for n in range(3):
            producer.send(web_event(f"warm-{n}", warm, now - timedelta(minutes=3 - n)))
        deadline = time.monotonic() + 180
        while not store.segments_of([links[warm]]).get(links[warm]):
            if time.monotonic() > deadline:
                raise SystemExit(f"no warm-up flip within 180 s; see {work}/worker.log and follower.log")
            time.sleep(0.05)
        print("  worker and follower up (a warm-up flip went through)", flush=True)
        # the stream: views of random shoppers; carts, three per fresh shopper, the third flipping it
        total = int(rate * seconds)
        open_carts: dict[str, int] = {}
        sent_at: dict[str, float] = {}  # customer id -> just before its flipping cart was produced
        seen: dict[str, float] = {}
        flip_event: dict[str, str] = {}  # customer id -> its flipping cart's event id
        stored: dict[str, float] = {}  # customer id -> when that event was in the store
        started = time.perf_counter()
        for n in range(total):
            at = datetime.now(UTC)
            if rng.random() < share:
                if len(open_carts) < 5:
                    key = next(fresh, None)
                    if key is not None:
                        open_carts[key] = 0
                key = rng.choice(sorted(open_carts)) if open_carts else None
            else:
                key = None
            if key is None:
                producer.send(web_event(f"v{n}", rng.choice(keys[1:]), at, action="product_view"))
            else:
                count = open_carts[key] + 1
                if count == 3:
                    del open_carts[key]
                    sent_at[links[key]] = time.perf_counter()
                    flip_event[links[key]] = f"webshop|c{n}"
                else:
                    open_carts[key] = count
                producer.send(web_event(f"c{n}", key, at))
            _poll(store, sent_at, seen, flip_event, stored)
            ahead = started + (n + 1) / rate - time.perf_counter()
            while ahead > 0:
                time.sleep(min(ahead, 0.005))
                _poll(store, sent_at, seen, flip_event, stored)
                ahead = started + (n + 1) / rate - time.perf_counter()
        produced_s = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while len(seen) < len(sent_at) and time.monotonic() < deadline:
            _poll(store, sent_at, seen, flip_event, stored)
            time.sleep(0.005)
        time.sleep(1)  # the last messages on the follower's topic
        in_store = [seen[c] - sent_at[c] for c in seen]
        event_stored = [stored[c] - sent_at[c] for c in stored]
        on_topic = [consumer.arrived[(c, "segment_entered")] - t for c, t in sent_at.items()
                    if (c, "segment_entered") in consumer.arrived]  # fmt: skip
        return {
            "events": total,
            "produced_per_s": total / produced_s,
            "flips": len(sent_at),
            "in_store": in_store,
            "event_stored": event_stored,
            "on_topic": on_topic,
            "missing": len(sent_at) - len(seen),
        }
    finally:
        consumer.stopping.set()
        if producer is not None:
            producer.close()
        _stop(follower)
        _stop(worker)
        store.close()
        broker.stop()


def _poll(
    store: Any, sent_at: dict[str, float], seen: dict[str, float], flip_event: dict[str, str], stored: dict[str, float]
) -> None:
    wanted = [c for c in sent_at if c not in seen]
    if not wanted:
        return
    now = time.perf_counter()
    events = {flip_event[c]: c for c in wanted if c not in stored}
    for eid in store.seen_events(list(events)):
        stored.setdefault(events[eid], now)
    for cid, memberships in store.segments_of(wanted).items():
        if any(m.segment_id == SEGMENT for m in memberships):
            seen.setdefault(cid, now)


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name}: nothing measured"
    ms = [1000 * v for v in values]
    return (
        f"  {name}: {len(ms)} flips, p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 0.95):.0f} ms, "
        f"p99 {percentile(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1000, help="Shoppers stored before the stream starts.")
    parser.add_argument("--rate", type=float, default=50, help="Web events produced per second.")
    parser.add_argument("--seconds", type=float, default=60, help="How long the stream runs.")
    parser.add_argument("--flip-share", type=float, default=0.3, help="Share of the events that are flipping carts.")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # topic metadata warnings while it settles
    print(f"machine: {os.cpu_count()} cores; embedded store; one Faust worker, one segment follower", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        links = prepare(work, args.customers)
        print(f"  {len(links):,} shoppers ingested, snapshot and backfill in {time.perf_counter() - started:.0f}s")
        r = measure(work, links, args.rate, args.seconds, args.flip_share, args.seed)
    print(f"  {r['events']:,} web events at {r['produced_per_s']:.0f}/s; {r['flips']} flips into {SEGMENT}")
    print(_line("produce -> the flipping event in the store (the worker)", r["event_stored"]))
    print(_line("produce -> membership in the store", r["in_store"]))
    print(_line("produce -> segment_entered on the follower's topic", r["on_topic"]))
    if r["missing"]:
        print(f"  {r['missing']} flips not in the store within 30 s of the end")


if __name__ == "__main__":
    main()
