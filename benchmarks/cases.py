"""Case API under load at ten times the requirements' rates, and consent recording with signatures.

    python benchmarks/cases.py                        # 60 s at 50 views/s + 40 UI writes/s + 70 API requests/s
    python benchmarks/cases.py --seconds 20 --scale 1 # the requirements' own rates

The requirements size case management at 5 case views/s and 4 creates or updates/s from the UI, and 7
case API requests/s of which 5 create or update. This runs ten times that (``--scale``), all together,
for ``--seconds``, against ``c360 serve --dev`` in its own process (one uvicorn worker, embedded store,
every call authorised and audited as in production) with ``--customers`` customers and ``--cases``
cases opened before the load:

- UI views (50/s): GraphQL ``cases`` (an agent's queue by SLA due time, 20 a page) and ``case`` (one case
  with its history and clocks), alternately;
- UI creates or updates (40/s): GraphQL ``openCase``, ``commentCase``, ``changeCaseStatus``, ``assignCase``;
- case API (70/s): REST, 50/s ``POST /v1/cases`` and ``POST /v1/cases/{id}/comments``, 20/s ``GET /v1/cases/{id}``.

The load is open-loop: each class sends at its rate whatever the answers do, and a request's latency
counts from when it was due, so a slow server cannot hide queueing. Prints p50/p99 per class and over
all (aim: p99 under 200 ms) and the answers that were not 2xx. Then, in-process on a fresh store,
consent events recorded with Ed25519 receipts per second (aim: at least 1,000/s), by
``benchmarks/consent.py``'s recorder. Stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # the benchmarks' own helpers

import consent as bench
from served import dev_token, served

QUEUE = 'query($a: String) { cases(assignee: $a, order: "due", first: 20) { cases { id status slaState } } }'
CASE = "query($id: ID!) { case(id: $id) { id status history { kind } sla { state } } }"
OPEN = "mutation($i: OpenCaseInput!) { openCase(input: $i) { id } }"
COMMENT = 'mutation($id: ID!) { commentCase(caseId: $id, body: "noted", visibility: "internal") { id } }'
STATUS = "mutation($id: ID!, $to: String!) { changeCaseStatus(caseId: $id, to: $to) { id } }"
ASSIGN = "mutation($id: ID!, $a: String) { assignCase(caseId: $id, assignee: $a) { id } }"
AGENTS = [f"agent-{n}" for n in range(20)]
TYPES = ["complaint", "service_request", "dispute", "data_request", "kyc_query"]
PRIORITIES = ["low", "normal", "high", "urgent"]


def prepare(work: Path, customers: int, cases: int) -> tuple[list[str], list[str]]:
    """Customers (synthetic, deterministic linking) and open cases in ``work/.c360``; their ids."""
    from c360.connectors.files import FileSource
    from c360.connectors.synthetic import generate
    from c360.graph.case_desk import CaseDesk
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.linker import Linker

    t = time.perf_counter()
    ds = generate(customers, work / "data", seed=2031)
    store = EmbeddedStore(EmbeddedConfig(path=work / ".c360" / "graph.db"))
    linker = Linker(store)
    for sf in ds.sources:
        linker.ingest(FileSource(sf.path, sf.source, ds.mapping_of(sf)), batch_size=5000)
    ids = sorted({cid for _, _, cid in store.iter_links()})
    rng = random.Random(2031)
    desk = CaseDesk(store)
    opened = [
        desk.open(
            customer_id=rng.choice(ids),
            actor="bench",
            type=rng.choice(TYPES),
            priority=rng.choice(PRIORITIES),
            channel="phone",
            subject=f"case {n}",
            assignee=rng.choice(AGENTS),
        ).case.id
        for n in range(cases)
    ]
    store.close()
    print(f"prepared {len(ids):,} customers and {len(opened):,} open cases in {time.perf_counter() - t:.0f}s")
    return ids, opened


class Pool:
    """Keep-alive HTTP/1.1 connections to the server: raw bytes, as cheap for the load generator as it gets."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        if body is None:
            return f"{method} {path} HTTP/1.1\r\n{self.head}\r\n".encode()
        data = json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
        return f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send on an idle connection (a new one if none); once more on a new one if the idle one was closed.

        The server closes a connection idle for its keep-alive time; a client then retries, as browsers do.
        """
        if self.idle:
            conn = self.idle.pop()
            try:
                return await self._exchange(conn, raw)
            except (ConnectionError, asyncio.IncompleteReadError):
                conn[1].close()
        return await self._exchange(await asyncio.open_connection("127.0.0.1", self.port), raw)

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> tuple[int, bytes]:
        reader, writer = conn
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length)
        self.idle.append(conn)
        return int(head[9:12]), body


class Load:
    """Open-loop senders, one per request class, and their latencies (ms from when each was due)."""

    def __init__(self, pool: Pool, seconds: float) -> None:
        self.pool = pool
        self.seconds = seconds
        self.latencies: dict[str, list[float]] = {}
        self.failures: dict[str, list[str]] = {}

    async def send(self, name: str, due: float, raw: bytes) -> None:
        try:
            status, body = await self.pool.send(raw)
            if not 200 <= status < 300 or body.startswith(b'{"data":null') or b'"errors":' in body[:200]:
                self.failures.setdefault(name, []).append(f"{status} {body[:160]!r}")
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.failures.setdefault(name, []).append(type(exc).__name__)
        self.latencies.setdefault(name, []).append((time.perf_counter() - due) * 1000)

    async def run(self, name: str, rate: float, make: Callable[[int], bytes]) -> None:
        start = time.perf_counter()
        pending: list[asyncio.Task[None]] = []
        for n in itertools.count():
            due = start + n / rate
            if due - start >= self.seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            pending.append(asyncio.create_task(self.send(name, due, make(n))))
        await asyncio.gather(*pending)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(port: int, token: str, customers: list[str], cases: list[str], args: argparse.Namespace) -> Load:
    """Run the three request classes together at their rates; the latencies and failures."""
    rng = random.Random(7)
    pool = Pool(port, token)
    load = Load(pool, args.seconds)

    def gql(query: str, **variables: Any) -> bytes:
        return pool.request("POST", "/graphql", {"query": query, "variables": variables})

    def ui_view(n: int) -> bytes:
        return gql(QUEUE, a=rng.choice(AGENTS)) if n % 2 else gql(CASE, id=rng.choice(cases))

    def ui_write(n: int) -> bytes:
        kind = n % 4
        if kind == 0:
            spec = {"customerId": rng.choice(customers), "type": rng.choice(TYPES), "priority": "normal",
                    "channel": "web", "subject": f"ui {n}", "assignee": rng.choice(AGENTS)}  # fmt: skip
            return gql(OPEN, i=spec)
        if kind == 1:
            return gql(COMMENT, id=rng.choice(cases))
        if kind == 2:
            return gql(ASSIGN, id=rng.choice(cases), a=rng.choice(AGENTS))
        # new -> open is legal once per case: each status change takes a case of its own
        return gql(STATUS, id=cases[(n // 4) % len(cases)], to="open")

    def api(n: int) -> bytes:
        kind = n % 7
        if kind < 3:
            body = {"customer_id": rng.choice(customers), "type": rng.choice(TYPES), "priority": "high",
                    "channel": "email", "subject": f"api {n}", "event_id": f"bench-{n}"}  # fmt: skip
            return pool.request("POST", "/v1/cases", body)
        if kind < 5:
            return pool.request("POST", f"/v1/cases/{rng.choice(cases)}/comments", {"body": "partner note"})
        return pool.request("GET", f"/v1/cases/{rng.choice(cases)}")

    s = args.scale
    await asyncio.gather(
        load.run("UI views (GraphQL)", 5 * s, ui_view),
        load.run("UI creates/updates (GraphQL)", 4 * s, ui_write),
        load.run("case API (REST)", 7 * s, api),
    )
    for _, writer in pool.idle:
        writer.close()
    return load


def consent_rate(events: int) -> float:
    """Consent events recorded per second with signed, chained receipts (benchmarks/consent.py's recorder)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings, store, issuer = bench.prepare(Path(tmp), 500)
        evs = bench.events_of(500, max(1, events // 500), settings.consent.purposes, random.Random(3))
        took = bench.record(store, issuer, evs, 500)
        store.close()
    return float(took["per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--cases", type=int, default=3_000, help="Cases opened before the load.")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--scale", type=float, default=10, help="Times the requirements' rates.")
    parser.add_argument("--consent-events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        customers, cases = prepare(work, args.customers, args.cases)
        token = dev_token(work, "admin")
        with served(work) as port:
            rates = f"{5 * args.scale:g} views/s, {4 * args.scale:g} UI writes/s, {7 * args.scale:g} API requests/s"
            print(f"load: {rates}, together, open-loop, for {args.seconds:.0f}s")
            load = asyncio.run(drive(port, token, customers, cases, args))
    every: list[float] = []
    for name, lat in load.latencies.items():
        every += lat
        bad = load.failures.get(name, [])
        print(
            f"{name:30} {len(lat) / args.seconds:6.1f}/s  p50 {statistics.median(lat):7.2f} ms  "
            f"p99 {_pct(lat, 0.99):7.2f} ms  ({len(lat):,} requests, {len(bad)} failed)"
        )
        for failure in bad[:3]:
            print(f"    e.g. {failure}")
    print(f"{'all':30} {len(every) / args.seconds:6.1f}/s  p50 {statistics.median(every):7.2f} ms  "
          f"p99 {_pct(every, 0.99):7.2f} ms  (aim: p99 < 200 ms)")  # fmt: skip
    rate = consent_rate(args.consent_events)
    print(f"consent events recorded with signed, chained receipts: {rate:,.0f}/s (aim: >= 1,000/s)")
    print(json.dumps({"p99_ms": round(_pct(every, 0.99), 2), "consent_per_s": round(rate)}))


if __name__ == "__main__":
    main()
