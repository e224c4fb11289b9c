"""Profile API speed: requests/s and latency of the REST profile read and a full GraphQL 360 query.

    python benchmarks/api.py                          # 100,000 customers, 20 s per endpoint
    python benchmarks/api.py --customers 20000 --seconds 10 --concurrency 8

Set-up: a synthetic base of ``--customers`` persons (about two records each, in three sources) is
ingested into an embedded store with deterministic linking, and ``--shoppers`` of them get a retail
journey (orders, payments, clickstream) through the event pipeline. The store is kept in
``--work`` and reused when it is there. Then ``c360 serve --dev`` runs as its own process (one uvicorn
worker) and this process is the load generator: ``--concurrency`` keep-alive connections on loopback,
each sending its next request when the last answer arrived (closed loop), for ``--seconds`` per
endpoint after a warm-up. Every request reads a random customer as a marketer (masking on) with a
bearer JWT, and every read is audited (hash chain, group-committed fsyncs), as in production.

- REST: ``GET /v1/customers/{id}``, the profile document.
- GraphQL: the 360 query: golden fields with their sources, identifiers, and the last 20 timeline
  events, of customers that have a journey.

Prints requests/s and latency p50/p99 (from sending a request to the last byte of its answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' own helpers

from served import dev_token, served

QUERY = (
    "query($id: ID!) { customer(id: $id) { id golden { name value source sourceKey } "
    "identifiers { kind value } timeline(first: 20) { events { id type occurredAt data } "
    "pageInfo { hasNextPage endCursor } } } }"
)


def prepare(work: Path, customers: int, shoppers: int) -> None:
    """Ingest the base and the journeys into ``work/.c360`` (skipped when it is there)."""
    if (work / ".c360" / "graph.db").exists():
        print(f"reusing the store in {work}")
        return
    from c360.connectors.files import FileSource
    from c360.connectors.synthetic import generate
    from c360.connectors.synthetic.retail import generate_retail, shoppers_from_keys
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.linker import Linker
    from c360.streams.pipeline import Pipeline

    t = time.perf_counter()
    ds = generate(customers, work / "data", seed=5)
    store = EmbeddedStore(EmbeddedConfig(path=work / ".c360" / "graph.db"))
    linker = Linker(store)
    keys: list[tuple[str, str]] = []
    for sf in ds.sources:
        batch = []
        for record in FileSource(sf.path, sf.source, ds.mapping_of(sf)):
            batch.append(record)
            keys.append((record.source, record.key))
            if len(batch) == 5000:
                linker.ingest_batch(batch)
                batch = []
        if batch:
            linker.ingest_batch(batch)
    print(f"ingested {ds.records:,} records of {ds.persons:,} persons in {time.perf_counter() - t:.0f}s")
    t = time.perf_counter()
    chosen = random.Random(5).sample(keys, min(shoppers, len(keys)))
    from datetime import UTC, datetime

    retail = generate_retail(shoppers_from_keys(chosen, start=datetime(2026, 11, 1, tzinfo=UTC), seed=5), seed=5)
    events = retail.events()
    pipeline = Pipeline(store, linker)
    for i in range(0, len(events), 1000):
        pipeline.process(events[i : i + 1000])
    stats = store.stats()
    print(
        f"journeys: {len(events):,} events of {len(chosen):,} shoppers in {time.perf_counter() - t:.0f}s; "
        f"store: {stats.records:,} records, {stats.customers:,} customers"
    )
    (work / "shoppers.json").write_text(json.dumps(sorted({f"{s}|{k}" for s, k in chosen})))
    store.close()


def customer_ids(work: Path) -> tuple[list[str], list[str]]:
    """All active customer IDs, and those of shoppers (customers with a journey)."""
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore

    store = EmbeddedStore(EmbeddedConfig(path=work / ".c360" / "graph.db"))
    try:
        shoppers = set(json.loads((work / "shoppers.json").read_text()))
        every, journeys = set(), set()
        for source, key, cid in store.iter_links():
            every.add(cid)
            if f"{source}|{key}" in shoppers:
                journeys.add(cid)
    finally:
        store.close()
    return sorted(every), sorted(journeys)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def load(
    port: int, make: Any, ids: list[str], concurrency: int, seconds: float, warmup: float
) -> tuple[int, list[float], int]:
    """Closed-loop load: returns (requests in the window, their latencies in ms, non-200 answers)."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)

    async def connection(n: int) -> None:
        nonlocal errors
        rng = random.Random(n)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                request = make(rng.choice(ids))
                sent = time.perf_counter()
                if sent >= window[1]:
                    return
                writer.write(request)
                status = await _read_response(reader)
                done = time.perf_counter()
                if sent >= window[0]:
                    latencies.append((done - sent) * 1000)
                    if status != 200:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(n) for n in range(concurrency)))
    return len(latencies), latencies, errors


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--shoppers", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path(".bench-api"))
    parser.add_argument("--only", choices=["rest", "graphql"], default=None)
    args = parser.parse_args()
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    prepare(work, args.customers, args.shoppers)
    every, journeys = customer_ids(work)
    print(f"{len(every):,} customers, {len(journeys):,} with a journey")

    token = dev_token(work, "marketer")
    with served(work) as port:
        host = f"127.0.0.1:{port}"

        def rest(cid: str) -> bytes:
            return (
                f"GET /v1/customers/{cid} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()

        def graphql(cid: str) -> bytes:
            body = json.dumps({"query": QUERY, "variables": {"id": cid}}).encode()
            head = (
                f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            return head + body

        plans = [
            ("REST GET /v1/customers/{id}", rest, every),
            ("GraphQL 360 (profile, identifiers, 20 events)", graphql, journeys),
        ]
        if args.only:
            plans = [p for p in plans if p[0].lower().startswith(args.only)]
        print(
            f"load: {args.concurrency} connections, {args.seconds:.0f}s after {args.warmup:.0f}s warm-up, role marketer"
        )
        for name, make, ids in plans:
            n, lat, errors = asyncio.run(load(port, make, ids, args.concurrency, args.seconds, args.warmup))
            print(
                f"{name:48} {n / args.seconds:8,.0f} req/s  p50 {statistics.median(lat):6.2f} ms  "
                f"p99 {_pct(lat, 0.99):6.2f} ms  ({n:,} requests, {errors} not 200)"
            )


if __name__ == "__main__":
    main()
