"""``c360 demo``: a retail company's customers and journeys, through the same path production data takes.

1. A synthetic customer set: one CRM (CSV), one web shop (JSON Lines), one partner (Parquet), with
   injected duplicates and a ground truth (``connectors.synthetic``).
2. Every source row becomes a ``profile_update`` event and goes through the stream pipeline, which links
   it in real time (deterministic rules, and the trained model once there is one).
3. A retail journey for those customers: brands, products, orders with line items, payments and refunds,
   clickstream (``connectors.synthetic.retail``), and their consent as a web shop captures it (e-mail,
   SMS and push marketing, web personalisation: ``connectors.synthetic.consent``), through the same
   pipeline; each consent is signed into the ledger with its receipt.
4. Splink is trained on the stored records, then batch resolution merges what the real-time rules could
   not decide and queues uncertain pairs for the data stewards.
5. A report: records, customers, merges, review items, accuracy against the ground truth, and a few
   unified profiles with their newest timeline events.

Every event has a stable id, so running the demo again changes nothing that was already applied.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from c360.connectors.files import FileSource
from c360.connectors.synthetic import Dataset, generate
from c360.connectors.synthetic.consent import generate_consent
from c360.connectors.synthetic.retail import RetailSet, generate_retail, shoppers_from_keys
from c360.graph.models import SourceRecord
from c360.graph.store import GraphStore
from c360.resolution.batch import BatchSummary
from c360.resolution.blocking import filing
from c360.resolution.metrics import PairwiseScores, pairwise
from c360.resolution.splink_adapter import train
from c360.streams.pipeline import Pipeline, Unreadable
from c360.streams.runner import Runner, Totals, file_payloads

from .deps import build_batch_resolver, build_pipeline, model_registry
from .settings import Settings

#: events per pipeline batch (one store transaction each)
BATCH = 500
#: the demo's clock: generated data is deterministic for a seed
DEMO_NOW = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(slots=True)
class DemoReport:
    """Everything the demo did, for printing (and for tests)."""

    dataset: Dataset
    profiles: Totals
    retail: Totals
    retail_counts: dict[str, int]
    consent: Totals
    model_version: int
    batch: BatchSummary
    records: int = 0
    customers: int = 0
    merged_away: int = 0
    review_open: int = 0
    accuracy_realtime: PairwiseScores | None = None
    accuracy: PairwiseScores | None = None
    stages: dict[str, float] = field(default_factory=dict)


Progress = Callable[[str], None]


def _apply(pipeline: Pipeline, payloads: Sequence[Any], what: str, progress: Progress) -> Totals:
    """Send ``payloads`` through the in-process runner, in batches, as ``c360 ingest`` and the HTTP endpoint do."""
    runner = Runner(pipeline, batch_size=BATCH)
    return runner.run(payloads, progress=lambda t: progress(f"{what}: {t.events:,} / {len(payloads):,} events"))


def profile_events(dataset: Dataset) -> list[dict[str, Any] | Unreadable]:
    """Every source row of the data set as a ``profile_update`` event, as ``c360 ingest`` reads it."""
    return [p for sf in dataset.sources for p in file_payloads(FileSource(sf.path, sf.source, dataset.mapping_of(sf)))]


def _accuracy(store: GraphStore, dataset: Dataset) -> PairwiseScores:
    truth: dict[Hashable, Hashable] = dict(dataset.truth_map())
    predicted: dict[Hashable, Hashable] = {
        (source, key): cid for source, key, cid in store.iter_links() if (source, key) in truth
    }
    return pairwise(truth, predicted)


def run_demo(
    settings: Settings,
    store: GraphStore,
    *,
    customers: int = 1000,
    seed: int = 42,
    max_pairs: float = 2e5,
    progress: Progress = lambda _: None,
) -> DemoReport:
    """Generate, ingest, train and resolve; see the module docstring."""
    stages: dict[str, float] = {}
    t = time.perf_counter()
    progress("generating customers")
    dataset = generate(customers, settings.data_dir / "demo-data", seed=seed)
    people = profile_events(dataset)
    keys = [(p["source"], p["profile"]["customer_key"]) for p in people if isinstance(p, dict)]
    shoppers = shoppers_from_keys(keys, start=DEMO_NOW, seed=seed)
    retail: RetailSet = generate_retail(shoppers, seed=seed, until=DEMO_NOW)
    journey = retail.events()
    consents = generate_consent(shoppers, seed=seed, until=DEMO_NOW)
    stages["generate"] = time.perf_counter() - t

    pipeline = build_pipeline(settings, store)
    applied_people = _apply(pipeline, people, "profiles", progress)
    stages["profiles"] = applied_people.seconds
    accuracy_realtime = _accuracy(store, dataset)
    applied_retail = _apply(pipeline, journey, "journey", progress)
    stages["journey"] = applied_retail.seconds
    applied_consent = _apply(pipeline, consents, "consent", progress)
    stages["consent"] = applied_consent.seconds

    t = time.perf_counter()
    progress("training the Splink model")
    records: list[SourceRecord] = [r for r, _ in store.iter_records()]
    region = settings.linking.default_region
    model, tf_tables, summary = train(
        records,
        region=region,
        config=settings.training.model_copy(update={"u_max_pairs": max_pairs}),
        seed=seed,
        log_level=logging.ERROR,
    )
    artifact = model_registry(settings).save(model, tf_tables, summary)
    store.replace_blocking_keys(*filing(records, region, artifact.specification()))
    stages["train"] = time.perf_counter() - t

    t = time.perf_counter()
    resolver = build_batch_resolver(settings, store, log_level=logging.ERROR)
    batch = resolver.run(progress=lambda what: progress(f"batch resolution: {what}"))
    stages["resolve"] = time.perf_counter() - t

    stats = store.stats()
    return DemoReport(
        dataset=dataset,
        profiles=applied_people,
        retail=applied_retail,
        retail_counts=retail.counts(),
        consent=applied_consent,
        model_version=artifact.version,
        batch=batch,
        records=stats.records,
        customers=stats.customers,
        merged_away=stats.merged_customers,
        review_open=len(store.review_items("open", limit=None)),
        accuracy_realtime=accuracy_realtime,
        accuracy=_accuracy(store, dataset),
        stages=stages,
    )


def showcase(store: GraphStore, count: int) -> list[str]:
    """The customers worth showing: the most source records, then the longest journeys."""
    records: dict[str, int] = {}
    for _, _, cid in store.iter_links():
        records[cid] = records.get(cid, 0) + 1
    return sorted(records, key=lambda c: (-records[c], c))[:count]


def describe_event(data: str) -> str:
    """One line about a stored event, for the terminal."""
    e = json.loads(data)
    kind = e.get("type")
    if kind == "order":
        items = sum(int(li["quantity"]) for li in e["line_items"])
        return f"order {e['order_id']} {e['status']} via {e['channel']}: {items} items, {e['total']} {e['currency']}"
    if kind == "transaction":
        return f"{e['kind']} {e['amount']} {e['currency']} by {e['payment_method']} ({e['status']})"
    if kind == "web_activity":
        what = e.get("product_id") or e.get("order_id") or ""
        return f"{e['action']} {what} on {e['channel']} from {e['traffic_source']}".replace("  ", " ")
    return str(kind)
