"""The ML path at scale: snapshot, RFM, segments, features, training, scoring; times and peak memory.

    python benchmarks/ml.py                                  # 100,000 customers, one run
    python benchmarks/ml.py --customers 10000,100000 --repeat 3 --workdir /tmp/c360-bench-ml

Set-up (not measured, but timed and printed): an embedded store of ``--customers`` customers (one
record each, in sources of 10,000) and their retail journeys (``connectors/synthetic/retail.py``: about
17 events per customer), every event through the pipeline (``streams/pipeline.py``, the in-process
path) in batches of ``--batch``. The filled store is kept under ``--workdir`` and reused by later runs.

Each run is a child process (its peak RSS is its own) on a copy of that store:

- snapshot: full (into an empty folder), incremental with no change, and incremental after new clicks
  for 1% of the stored events (applied through the pipeline before, not timed);
- RFM (``ml.rfm.compute_rfm``), segment backfill (``ml.segments.backfill`` over ``ml/segments.yaml``),
  features (``ml.features.compute_features``);
- training: churn (5-fold cross-validation and a time holdout), lifetime value, k-means clusters,
  lookalikes of the RFM champions, association rules, the transaction anomaly forest (``ml.anomaly``:
  per-transaction features, 5-fold cross-validation and a time holdout on the chargeback proxy);
- scoring every customer: churn, lifetime value, next products, next channel, transaction anomaly (the
  last 30 days); then ``ml.scoring``: every customer's insights from the saved artifacts (``score all``:
  churn, lifetime value, RFM, next channel, transaction anomaly; clusters and basket rules are not saved
  here) and their write-back to the profiles.

Consent is synthetic (the generator makes none): 70% of customers consent to marketing by e-mail, 40%
by SMS. Times are medians over ``--repeat`` runs. The real-time segment latency (event to membership
change on the Kafka path) is ``benchmarks/segments_latency.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)  # the generator's end of journeys
START = datetime(2026, 5, 1, tzinfo=UTC)  # shoppers' first records: up to a year before
SOURCE_SIZE = 10_000  # customers per source (the generator's running ids restart per call)
STEPS = (
    "snapshot full",
    "snapshot no change",
    "snapshot +1%",
    "rfm",
    "segment backfill",
    "features",
    "churn training",
    "clv training",
    "clusters",
    "lookalikes",
    "basket rules",
    "anomaly training",
    "score churn",
    "score clv",
    "score products",
    "score channel",
    "score anomaly",
    "score all",
    "write-back",
)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- set-up ------------------------------------------------------------------------------------------------


def _profiles(shoppers: list[Any], at: datetime, first: int) -> list[dict[str, Any]]:
    states = ("CA", "NY", "TX", "WA", "FL")
    return [
        {
            "event_id": f"p-{s.customer_key}",
            "type": "profile_update",
            "source": s.source,
            "occurred_at": at.isoformat(),
            "profile": {
                "customer_key": s.customer_key,
                "first_name": f"First{first + i}",
                "last_name": f"Last{first + i}",
                "email": f"{s.customer_key.lower()}@example.com",
                "state": states[(first + i) % len(states)],
            },
        }
        for i, s in enumerate(shoppers)
    ]


def fill(folder: Path, customers: int, batch: int) -> dict[str, Any]:
    """Fill an embedded store in ``folder`` with ``customers`` and their journeys through the pipeline.

    The pipeline runs on a simulated clock: a customer is created (its ``created_at``) when its first
    records arrive, shortly before its journey starts, and the journeys arrive at :data:`AS_OF`.
    """
    from c360.connectors.synthetic.retail import generate_retail, shoppers_from_keys
    from c360.graph.store import open_store
    from c360.resolution.linker import Linker
    from c360.streams.pipeline import Pipeline

    folder.mkdir(parents=True, exist_ok=True)
    store = open_store("embedded", {"path": folder / "graph.db"})
    now = [AS_OF]

    def clock() -> datetime:
        return now[0]

    pipeline = Pipeline(store, Linker(store, clock=clock), clock=clock)
    started, events, late = time.perf_counter(), 0, 0
    try:
        for first in range(0, customers, SOURCE_SIZE):
            source = f"shop{first // SOURCE_SIZE:03d}"
            keys = [(source, f"C{i:07d}") for i in range(first, min(customers, first + SOURCE_SIZE))]
            shoppers = sorted(shoppers_from_keys(keys, start=START, seed=first), key=lambda s: s.since)
            for i in range(0, len(shoppers), 100):  # 100 customers at the time of the first of them
                group = shoppers[i : i + 100]
                now[0] = group[0].since - timedelta(hours=1)
                _check(pipeline.process(_profiles(group, now[0], first + i)))
            now[0] = AS_OF
            journey = generate_retail(shoppers, seed=7, until=AS_OF).events()
            # the generator lets a few events run past ``until`` (seen: months later); the pipeline refuses
            # events ahead of its clock, so they are left out and counted
            kept = [e for e in journey if datetime.fromisoformat(e["occurred_at"]) <= AS_OF]
            late += len(journey) - len(kept)
            for i in range(0, len(kept), batch):
                _check(pipeline.process(kept[i : i + batch]))
            events += len(shoppers) + len(kept)
            seconds = time.perf_counter() - started
            _say(f"  set-up: {first + len(keys):,} customers, {events:,} events, {events / seconds:,.0f} events/s")
    finally:
        store.close()
    seconds = time.perf_counter() - started
    rate = events / seconds
    return {"customers": customers, "events": events, "late": late, "seconds": seconds, "events_per_s": rate}


def _check(outcome: Any) -> None:
    if outcome.rejected:
        raise SystemExit(f"set-up: the pipeline rejected {outcome.rejected[:3]}")


def prepare(workdir: Path, customers: int, batch: int) -> tuple[Path, dict[str, Any]]:
    """The filled store for ``customers`` under ``workdir`` (made once, in a child process)."""
    folder = workdir / f"store-{customers}"
    ready = folder / "ready.json"
    if ready.exists():
        info = dict(json.loads(ready.read_text()))
        info["reused"] = True
        return folder, info
    shutil.rmtree(folder, ignore_errors=True)
    info = _child(["--fill", str(folder), str(customers), str(batch)])
    ready.write_text(json.dumps(info))
    return folder, {**info, "reused": False}


# -- one measured run --------------------------------------------------------------------------------------


def _consent(customer_ids: list[str]) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[str]]]:
    facts: dict[str, set[tuple[str, str]]] = {}
    channels: dict[str, set[str]] = {}
    for i, cid in enumerate(sorted(customer_ids)):
        mine = {"email"} if i % 10 < 7 else set()
        if i % 10 < 4:
            mine.add("sms")
        facts[cid] = {("marketing", ch) for ch in mine}
        channels[cid] = mine
    return facts, channels


def _clicks(store: Any, n: int, run: str) -> int:
    """``n`` new add-to-cart clicks of stored shoppers through the pipeline; returns ``n``."""
    from c360.resolution.linker import Linker
    from c360.streams.pipeline import Pipeline

    keys = [(r.source, r.key) for r, _ in store.iter_records()]
    pipeline = Pipeline(store, Linker(store))
    payloads = [
        {
            "event_id": f"bench-{run}-{i}",
            "type": "web_activity",
            "source": keys[i % len(keys)][0],
            "occurred_at": (AS_OF - timedelta(minutes=1 + i % 600)).isoformat(),
            "customer_key": keys[i % len(keys)][1],
            "action": "add_to_cart",
            "session_id": f"S-bench-{run}-{i // 3}",
            "product_id": "P000001",
        }
        for i in range(n)
    ]
    for i in range(0, len(payloads), 5000):
        pipeline.process(payloads[i : i + 5000])
    return n


def measure(store_folder: Path, work: Path) -> dict[str, Any]:
    """One run on the store in ``store_folder`` (a copy), the snapshot under ``work``; seconds per step."""
    import duckdb
    from c360.graph.store import open_store
    from c360.ml.anomaly import score_transactions, transaction_features, validate_anomaly
    from c360.ml.churn import score_churn, train_churn
    from c360.ml.clusters import fit_clusters
    from c360.ml.clv import score_clv, train_clv
    from c360.ml.features import compute_features
    from c360.ml.lookalike import find_lookalikes
    from c360.ml.nba import best_channels, mine_rules, recommend_products
    from c360.ml.rfm import compute_rfm
    from c360.ml.scoring import score_customers, write_insights
    from c360.ml.segments import backfill, load_segments
    from c360.ml.snapshot import database_path, snapshot

    times: dict[str, float] = {}
    facts: dict[str, Any] = {}

    def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        times[name] = time.perf_counter() - started
        _say(f"  {name}: {times[name]:.2f} s")
        return out

    store = open_store("embedded", {"path": store_folder / "graph.db"})
    try:
        full = timed("snapshot full", snapshot, store, work / "ml")
        facts["events_read"] = full.events_read
        facts["customers_read"] = full.customers_read
        timed("snapshot no change", snapshot, store, work / "ml")
        facts["new_events"] = _clicks(store, max(1, full.events_read // 100), work.name)
        inc = timed("snapshot +1%", snapshot, store, work / "ml")
        facts["incremental_events_read"] = inc.events_read
    finally:
        store.close()
    con = duckdb.connect(str(database_path(work / "ml")))
    try:
        timed("rfm", compute_rfm, con, as_of=AS_OF)
        ids = [str(r[0]) for r in con.execute("SELECT customer_id FROM customers").fetchall()]
        consent, channels = _consent(ids)
        changes = timed("segment backfill", backfill, con, load_segments(), as_of=AS_OF, consent=consent)
        facts["segment_entries"] = len(changes)
        features = timed("features", compute_features, con, as_of=AS_OF)
        cutoff = AS_OF - timedelta(days=180)
        models = work / "models"
        churn = timed("churn training", train_churn, con, cutoff=cutoff, window_days=90, folds=5, models_dir=models)
        facts["churn_auc_holdout"] = round(churn.holdout.auc, 3)
        clv = timed("clv training", train_clv, con, cutoff=cutoff, period_days=90, models_dir=models)
        clustering = timed("clusters", fit_clusters, features)
        facts["clusters"] = len(clustering.clusters)
        champions = con.execute("SELECT customer_id FROM rfm WHERE rfm_segment = 'champions'").fetchall()
        seed = [str(r[0]) for r in champions]
        audience = timed("lookalikes", find_lookalikes, features, seed, top_n=min(10_000, len(ids) // 10))
        facts["lookalike_lift"] = None if audience.lift is None else round(audience.lift.lift, 2)
        rules = timed("basket rules", mine_rules, con)
        facts["rules"] = len(rules)
        anomaly = timed("anomaly training", validate_anomaly, con, as_of=AS_OF, models_dir=models)
        facts["anomaly_transactions"] = anomaly.artifact.metadata["training_transactions"] if anomaly.artifact else 0
        facts["anomaly_auc_holdout"] = None if anomaly.holdout is None else round(anomaly.holdout.auc, 3)
        timed("score churn", score_churn, churn.pipeline, features)
        timed("score clv", score_clv, clv.pipeline, features)
        timed("score products", recommend_products, con, rules)
        timed("score channel", best_channels, con, channels, as_of=AS_OF)
        recent = AS_OF - timedelta(days=30)
        timed(
            "score anomaly",
            lambda: score_transactions(anomaly.pipeline, transaction_features(con, as_of=AS_OF), since=recent),
        )
        # ml.scoring: every customer's insights from the saved artifacts (churn, clv; rfm, channel), then
        # written to the profiles
        insights, _ = timed("score all", score_customers, con, models, as_of=AS_OF, consented_channels=channels)
        facts["insights"] = len(insights)
    finally:
        con.close()
    store = open_store("embedded", {"path": store_folder / "graph.db"})
    try:
        timed("write-back", write_insights, store, insights)
    finally:
        store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "facts": facts, "customers": len(ids), "peak_rss_mb": peak}


# -- parent ------------------------------------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed (exit {proc.returncode})")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(store_folder: Path, scratch: Path) -> dict[str, Any]:
    """Copy the store and measure one run on the copy in a child process."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        work = Path(tmp)
        (work / "store").mkdir()
        shutil.copy2(store_folder / "graph.db", work / "store" / "graph.db")
        return _child(["--measure", str(work / "store"), str(work)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", default="100000", help="Customer counts (comma-separated).")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "c360-bench-ml")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per size (medians shown).")
    parser.add_argument("--batch", type=int, default=5000, help="Set-up: events per pipeline batch.")
    parser.add_argument("--fill", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        folder, customers, batch = args.fill
        print(json.dumps(fill(Path(folder), int(customers), int(batch))))
        return
    if args.measure:
        store_folder, work = args.measure
        print(json.dumps(measure(Path(store_folder), Path(work))))
        return
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    args.workdir.mkdir(parents=True, exist_ok=True)
    for size in (int(s) for s in args.customers.split(",")):
        print(f"== {size:,} customers", flush=True)
        folder, info = prepare(args.workdir, size, args.batch)
        how = "reused from" if info["reused"] else "made in"
        print(
            f"set-up: {info['events']:,} events through the pipeline, {how} {folder} "
            f"({info['seconds']:.0f} s, {info['events_per_s']:,.0f} events/s when made; "
            f"{info.get('late', 0):,} generated events after {AS_OF.date()} left out)",
            flush=True,
        )
        runs = [run(folder, args.workdir) for _ in range(args.repeat)]
        _report(runs)


#: steps also inside "score all" (left out of the total)
_INSIDE_SCORE_ALL = ("score churn", "score clv", "score channel", "score anomaly")


def _report(runs: list[dict[str, Any]]) -> None:
    print(f"{'step':20} {'median s':>9} {'min s':>7} {'max s':>7}")
    total = 0.0
    for step in STEPS:
        values = [r["times"][step] for r in runs]
        median = statistics.median(values)
        total += 0.0 if step in _INSIDE_SCORE_ALL else median
        print(f"{step:20} {median:>9.2f} {min(values):>7.2f} {max(values):>7.2f}")
    print(f"{'total':20} {total:>9.2f}  (score churn, clv, channel and anomaly counted once, in score all)")
    peak = statistics.median(r["peak_rss_mb"] for r in runs)
    print(f"peak RSS {peak:,.0f} MB (median of {len(runs)} runs)")
    print(f"first run: {json.dumps(runs[0]['facts'])}")
    print("real-time segment latency: python benchmarks/segments_latency.py", flush=True)


if __name__ == "__main__":
    main()
