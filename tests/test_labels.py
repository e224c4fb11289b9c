"""Steward decisions are labels: a model retrained on a few hundred approvals resolves a hard set better."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from c360.connectors.files import FileSource
from c360.connectors.synthetic import generate
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.models import SourceRecord
from c360.resolution.config import RealtimeConfig, SurvivorshipConfig, TrainingConfig
from c360.resolution.linker import Linker
from c360.resolution.metrics import PairwiseScores, pairwise
from c360.resolution.model_registry import ModelRegistry, trained_scorer
from c360.resolution.review import approve, reject
from c360.resolution.scorer import Scorer
from c360.resolution.splink_adapter import train

NOW = datetime(2026, 11, 1, tzinfo=UTC)
# A strict link threshold, so that many true pairs wait for a steward: the hard part of the set.
STRICT = RealtimeConfig(upper=0.99999, lower=0.5)


def _resolve(
    path: Path, records: list[SourceRecord], scorer: Scorer, truth: dict[str, str], realtime: RealtimeConfig
) -> PairwiseScores:
    store = EmbeddedStore(EmbeddedConfig(path=path))
    try:
        Linker(store, scorer=scorer, realtime=realtime).ingest(records)
        return pairwise(truth, {f"{s}|{k}": cid for s, k, cid in store.iter_links()})
    finally:
        store.close()


def test_approved_reviews_raise_recall_of_a_retrained_model(tmp_path: Path) -> None:
    ds = generate(900, tmp_path / "data", seed=10, household_rate=0.3, namesake_rate=0.1, corruption=0.5)
    records = [r for sf in ds.sources for r in FileSource(sf.path, sf.source, ds.mapping_of(sf))]
    truth = {f"{s}|{k}": e for (s, k), e in ds.truth_map().items()}
    config = TrainingConfig(u_max_pairs=2e5)
    first = trained_scorer(*train(records, region="US", config=config))

    # Stewards answer the review items of a real-time ingest, as the ground truth says.
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "steward.db"))
    Linker(store, scorer=first, realtime=STRICT).ingest(records)
    decided = 0
    for item in store.review_items("open", limit=300):
        if truth[item.record_uid] == truth[item.candidate_uid]:
            approve(store, item.id, by="steward", reason=None, now=NOW, survivorship=SurvivorshipConfig())
        else:
            reject(store, item.id, by="steward", reason="different people", now=NOW)
        decided += 1
    labels = [(i.record_uid, i.candidate_uid) for i in store.review_items("approved", limit=None)]
    rejected = [(i.record_uid, i.candidate_uid) for i in store.review_items("rejected", limit=None)]
    store.close()
    assert decided >= 100 and len(labels) >= 50

    settings, tf_tables, summary = train(records, region="US", config=config, labels=labels, rejected=rejected)
    assert summary["labels"] == len(labels)
    assert "steward decisions" in summary["link_threshold_basis"]
    saved = ModelRegistry(tmp_path / "models").save(settings, tf_tables, summary)
    derived = saved.realtime(STRICT)
    assert STRICT.lower <= derived.upper < STRICT.upper  # the decisions support a lower link threshold
    before = _resolve(tmp_path / "before.db", records, first, truth, STRICT)
    after = _resolve(tmp_path / "after.db", records, saved.scorer(), truth, derived)
    print(f"before {before}\nafter  {after}")
    assert after.recall > before.recall + 0.005
    assert after.precision >= before.precision - 0.005
