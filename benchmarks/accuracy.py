"""Resolution accuracy against the generator's ground truth: pairwise precision, recall and F1.

    python benchmarks/accuracy.py                    # 5,000 persons, default corruption
    python benchmarks/accuracy.py --customers 2000 --upper 0.95

Modes:
* deterministic: shared strong identifiers only;
* batch: the deterministic pass's graph, then one batch run (Splink predict + clustering) with the model;
* real-time: deterministic rules plus the trained model, every record resolved as it is ingested.
The model is trained on the deterministic pass's records (the same data, as `c360 resolve train` would).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from c360.connectors.files import FileSource
from c360.connectors.synthetic import generate
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.models import SourceRecord
from c360.resolution.batch import BatchResolver
from c360.resolution.config import LinkingConfig, RealtimeConfig, SurvivorshipConfig
from c360.resolution.linker import CustomerIdFactory, Linker
from c360.resolution.metrics import pairwise
from c360.resolution.scorer import Scorer
from c360.resolution.splink_adapter import train


def run(records: list[SourceRecord], path: Path, scorer: Scorer | None, upper: float) -> tuple[dict[str, str], float]:
    store = EmbeddedStore(EmbeddedConfig(path=path))
    started = time.perf_counter()
    Linker(store, scorer=scorer, realtime=RealtimeConfig(upper=upper)).ingest(records)
    seconds = time.perf_counter() - started
    links = {f"{s}|{k}": cid for s, k, cid in store.iter_links()}
    store.close()
    return links, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corruption", type=float, default=0.3)
    parser.add_argument("--upper", type=float, default=0.99999, help="Link threshold (match probability).")
    parser.add_argument("--max-pairs", type=float, default=1e6, help="Pairs sampled to estimate u.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ds = generate(args.customers, Path(tmp) / "data", seed=args.seed, corruption=args.corruption)
        records = [r for sf in ds.sources for r in FileSource(sf.path, sf.source, ds.mapping_of(sf))]
        truth = {f"{s}|{k}": e for (s, k), e in ds.truth_map().items()}
        print(f"{len(records):,} records of {args.customers:,} persons, corruption {args.corruption}")
        print(f"{'mode':14} {'precision':>9} {'recall':>7} {'F1':>7} {'customers':>9} {'seconds':>8}")

        def report(mode: str, links: dict[str, str], seconds: float) -> None:
            s = pairwise(truth, links)
            print(
                f"{mode:14} {s.precision:>9.4f} {s.recall:>7.4f} {s.f1:>7.4f} {len(set(links.values())):>9,} "
                f"{seconds:>8.1f}",
                flush=True,
            )

        links, seconds = run(records, Path(tmp) / "det.db", None, args.upper)
        report("deterministic", links, seconds)
        started = time.perf_counter()
        settings, tf_tables, _ = train(records, region="US", max_pairs=args.max_pairs, seed=args.seed)
        print(f"(trained in {time.perf_counter() - started:.1f}s)")
        store = EmbeddedStore(EmbeddedConfig(path=Path(tmp) / "det.db"))
        started = time.perf_counter()
        BatchResolver(
            store,
            settings,
            linking=LinkingConfig(),
            realtime=RealtimeConfig(upper=args.upper),
            survivorship=SurvivorshipConfig(),
            clock=lambda: datetime.now(UTC),
            new_id=CustomerIdFactory(),
            new_review_id=CustomerIdFactory("R"),
        ).run()
        seconds = time.perf_counter() - started
        report("batch", {f"{s}|{k}": cid for s, k, cid in store.iter_links()}, seconds)
        store.close()
        links, seconds = run(records, Path(tmp) / "rt.db", Scorer(settings, tf_tables), args.upper)
        report("real-time", links, seconds)


if __name__ == "__main__":
    main()
