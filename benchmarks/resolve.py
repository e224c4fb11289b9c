"""Resolution speed on the embedded store: real-time latency per record and batch time, per stored size.

    python benchmarks/resolve.py                      # 100k and 1M records stored
    python benchmarks/resolve.py --sizes 100000 --probe 1000

Per size, in fresh processes (so each peak RSS is its own):
1. load: the first N generated records are ingested (deterministic rules), the model is trained on a sample
   of them (as ``c360 resolve train`` would on a large graph) and the blocking keys are stored;
2. real-time: held-out records of the same set (duplicates of stored people among them) are resolved
   through the trained model: ``--probe`` records one call each (latency p50/p99 and records/s), then as
   many again in one batch (records/s);
3. batch: ``c360 resolve batch`` over everything stored (Splink predict + clustering, applied).
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
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

PERSONS_PER_RECORD = 0.51  # the generator makes about 1.96 records per person


def _records(data: Path) -> list[Any]:
    from c360.connectors.files import FileSource
    from c360.connectors.synthetic import Dataset

    ds = Dataset.load(data)
    return [r for sf in ds.sources for r in FileSource(sf.path, sf.source, ds.mapping_of(sf))]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load(data: Path, work: Path, size: int, sample: int) -> dict[str, Any]:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.blocking import filing
    from c360.resolution.linker import Linker
    from c360.resolution.model_registry import ModelRegistry
    from c360.resolution.splink_adapter import train

    records = _records(data)[:size]
    store = EmbeddedStore(EmbeddedConfig(path=work / "graph.db"))
    started = time.perf_counter()
    Linker(store).ingest(records)
    ingested = time.perf_counter() - started
    started = time.perf_counter()
    settings, tf_tables, summary = train(records[:sample], region="US")
    artifact = ModelRegistry(work / "models").save(settings, tf_tables, summary)
    trained = time.perf_counter() - started
    started = time.perf_counter()
    store.replace_blocking_keys(*filing(records, "US", artifact.specification()))
    keyed = time.perf_counter() - started
    store.close()
    return {"ingest_s": ingested, "train_s": trained, "keys_s": keyed, "peak_rss_mb": _rss_mb()}


def realtime(data: Path, work: Path, size: int, probe: int) -> dict[str, Any]:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.linker import Linker
    from c360.resolution.model_registry import ModelRegistry

    held_out = list(islice(_records(data), size, size + 2 * probe))
    if len(held_out) < 2 * probe:
        raise SystemExit(f"the generated set has only {len(held_out)} records beyond {size}; raise the set size")
    store = EmbeddedStore(EmbeddedConfig(path=work / "graph.db"))
    linker = Linker(store, scorer=ModelRegistry(work / "models").load().scorer())
    latencies = []
    linked = 0
    for record in held_out[:probe]:
        started = time.perf_counter()
        result = linker.ingest_batch([record])
        latencies.append(time.perf_counter() - started)
        linked += result.new_customers == 0
    started = time.perf_counter()
    result = linker.ingest_batch(held_out[probe:])
    batched = time.perf_counter() - started
    store.close()
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "single_per_s": len(latencies) / sum(latencies),
        "batched_per_s": probe / batched,
        "linked_share": linked / probe,
        "probabilistic": result.probabilistic,
        "peak_rss_mb": _rss_mb(),
    }


def batch(work: Path) -> dict[str, Any]:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.resolution.batch import BatchResolver
    from c360.resolution.config import LinkingConfig, RealtimeConfig, SurvivorshipConfig
    from c360.resolution.linker import CustomerIdFactory
    from c360.resolution.model_registry import ModelRegistry

    store = EmbeddedStore(EmbeddedConfig(path=work / "graph.db"))
    started = time.perf_counter()
    summary = BatchResolver(
        store,
        ModelRegistry(work / "models").load().settings,
        linking=LinkingConfig(),
        realtime=RealtimeConfig(),
        survivorship=SurvivorshipConfig(),
        clock=lambda: datetime.now(UTC),
        new_id=CustomerIdFactory(),
        new_review_id=CustomerIdFactory("R"),
    ).run()
    seconds = time.perf_counter() - started
    store.close()
    return {"seconds": seconds, "summary": summary.to_json(), "peak_rss_mb": _rss_mb()}


def run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="Records stored (comma-separated).")
    parser.add_argument("--probe", type=int, default=2000, help="Records resolved one call each (and again batched).")
    parser.add_argument("--sample", type=int, default=100_000, help="Records the model is trained on.")
    parser.add_argument("--keep", type=Path, help="Keep the data and the store in this folder (for profiling).")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        phase, data, work, *rest = args.child
        if phase == "load":
            out = load(Path(data), Path(work), int(rest[0]), int(rest[1]))
        elif phase == "realtime":
            out = realtime(Path(data), Path(work), int(rest[0]), int(rest[1]))
        else:
            out = batch(Path(work))
        print(json.dumps(out))
        return

    from c360.connectors.synthetic import generate

    print(f"machine: {os.cpu_count()} cores; embedded store; probe {args.probe} records", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            tmp = args.keep / str(size) if args.keep else Path(scratch)
            data, work = tmp / "data", tmp / "work"
            work.mkdir(parents=True)
            started = time.perf_counter()
            generate(int((size + 2 * args.probe) * PERSONS_PER_RECORD) + 100, data, seed=1)
            print(f"\n{size:,} records stored (generated in {time.perf_counter() - started:.0f}s)", flush=True)
            loaded = run_child("load", str(data), str(work), str(size), str(min(size, args.sample)))
            print(
                f"  load: ingest {loaded['ingest_s']:.0f}s, train on {min(size, args.sample):,} records "
                f"{loaded['train_s']:.0f}s, blocking keys {loaded['keys_s']:.0f}s, "
                f"peak RSS {loaded['peak_rss_mb']:.0f}MB",
                flush=True,
            )
            rt = run_child("realtime", str(data), str(work), str(size), str(args.probe))
            print(
                f"  real-time: p50 {rt['p50_ms']:.2f}ms, p99 {rt['p99_ms']:.2f}ms per record "
                f"({rt['single_per_s']:,.0f} records/s one per call, {rt['batched_per_s']:,.0f} records/s batched); "
                f"{rt['linked_share']:.0%} linked to a stored customer; peak RSS {rt['peak_rss_mb']:.0f}MB",
                flush=True,
            )
            b = run_child("batch", str(data), str(work))
            s = b["summary"]
            print(
                f"  batch: {b['seconds']:.0f}s ({', '.join(f'{k} {v}s' for k, v in s['seconds'].items())}); "
                f"{s['records']:,} records, {s['pairs_scored']:,} pairs scored, customers {s['customers_before']:,} -> "
                f"{s['customers_after']:,}, {s['merges']:,} merges, {s['splits']:,} splits; "
                f"peak RSS {b['peak_rss_mb']:.0f}MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
