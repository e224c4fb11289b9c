"""Ingest throughput and peak memory with deterministic linking, per backend and size.

    python benchmarks/ingest.py                       # 10k and 100k records, both backends
    python benchmarks/ingest.py --sizes 10000 --backends embedded --repeat 5

Each run is a fresh process (so peak RSS is its own) reading the generated CSV/JSONL/Parquet files
through the file connector into an empty store, the way ``c360 ingest`` does: every row a profile update
event through the in-process runner and the pipeline (``streams/runner.py``). The neo4j backend runs
against a real Neo4j Community 5.26 server started here (``tests/servers/neo4j``); its JVM memory is
not in the client's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PERSONS_PER_RECORD = 0.51  # the generator makes about 1.96 records per person


def child(backend: str, data: Path, workdir: Path) -> dict[str, float]:
    from c360.connectors.files import FileSource
    from c360.connectors.synthetic import Dataset
    from c360.graph.store import open_store
    from c360.resolution.linker import Linker
    from c360.streams.pipeline import Pipeline
    from c360.streams.runner import Runner, file_payloads

    ds = Dataset.load(data)
    if backend == "embedded":
        store = open_store("embedded", {"path": workdir / "graph.db"})
    else:
        store = open_store("neo4j", json.loads(os.environ["C360_BENCH_NEO4J"]))
        store.reset(confirm=True)
    runner = Runner(Pipeline(store, Linker(store)), batch_size=int(os.environ.get("C360_BENCH_BATCH", "2000")))
    started = time.perf_counter()
    for sf in ds.sources:
        runner.run(file_payloads(FileSource(sf.path, sf.source, ds.mapping_of(sf))))
    records, merges = runner.totals.ingest.received, runner.totals.ingest.merges
    stats = store.stats()
    store.close()  # included: the embedded store's last WAL checkpoint happens here
    seconds = time.perf_counter() - started
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "customers": stats.customers,
        "merges": merges,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(backend: str, data: Path, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", backend, str(data), work],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{backend} run failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="Record counts (comma-separated).")
    parser.add_argument("--backends", default="embedded,neo4j")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per embedded configuration (median shown).")
    parser.add_argument("--neo4j-repeat", type=int, default=1, help="Runs per neo4j configuration.")
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "DATA", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, data, work = args.child
        print(json.dumps(child(backend, Path(data), Path(work))))
        return

    from c360.connectors.synthetic import generate

    backends = args.backends.split(",")
    env = dict(os.environ)
    server = None
    if "neo4j" in backends:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from neo4j_server import Neo4jServer

        server = Neo4jServer(Path(tempfile.mkdtemp(prefix="c360-bench-neo4j-")), heap="3g")
        server.start()
        cfg = server.config
        env["C360_BENCH_NEO4J"] = json.dumps(
            {"uri": cfg.uri, "user": cfg.user, "password": cfg.password.get_secret_value(), "database": cfg.database}
        )
    print(f"{'backend':9} {'records':>8} {'records/s':>10} {'peak RSS':>9} {'customers':>9} {'merges':>7}  runs")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for size in (int(s) for s in args.sizes.split(",")):
                data = Path(tmp) / f"data-{size}"
                generate(max(1, int(size * PERSONS_PER_RECORD)), data, seed=1)
                for backend in backends:
                    runs = [
                        run_child(backend, data, env)
                        for _ in range(args.repeat if backend == "embedded" else args.neo4j_repeat)
                    ]
                    rate = statistics.median(r["records_per_s"] for r in runs)
                    peak = statistics.median(r["peak_rss_mb"] for r in runs)
                    r0 = runs[0]
                    print(
                        f"{backend:9} {int(r0['records']):>8} {rate:>10,.0f} {peak:>7.0f}MB {int(r0['customers']):>9} "
                        f"{int(r0['merges']):>7}  {len(runs)} (median)",
                        flush=True,
                    )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
