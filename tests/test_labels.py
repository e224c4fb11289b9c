"""Steward decisions are labels: Splink estimates m from the approvals, and decisions calibrate the link threshold."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from c360.connectors.files import FileSource
from c360.connectors.synthetic import generate
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.models import SourceRecord
from c360.resolution.calibrate import MIN_ABOVE, link_threshold
from c360.resolution.config import RealtimeConfig, SurvivorshipConfig, TrainingConfig
from c360.resolution.features import features
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


def test_steward_decisions_reach_the_model_and_calibrate_conservatively(tmp_path: Path) -> None:
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
    unlabelled, _, _ = train(records, region="US", config=config)
    # Splink estimated m from the approved pairs too: the model moved.
    assert _m_values(settings) != _m_values(unlabelled)
    saved = ModelRegistry(tmp_path / "models").save(settings, tf_tables, summary)
    derived = saved.realtime(STRICT)
    scored = sorted(
        (
            (saved.scorer().score(*_views(records, a, b)).match_probability, truth[a] == truth[b])
            for a, b in labels + rejected
        ),
        reverse=True,
    )
    if "link_threshold" in summary:  # lowered only as far as no rejection reaches
        assert STRICT.lower <= derived.upper < STRICT.upper
        assert all(same for p, same in scored if p >= derived.upper)
        after = _resolve(tmp_path / "after.db", records, saved.scorer(), truth, derived)
        before = _resolve(tmp_path / "before.db", records, first, truth, STRICT)
        assert after.recall >= before.recall and after.precision >= before.precision - 0.005
    else:  # a rejected pair among the first ones: the configured threshold stays
        assert derived == STRICT
        assert not all(same for _, same in scored[: MIN_ABOVE + 1])


def _m_values(settings: dict[str, Any]) -> list[object]:
    return [lv.get("m_probability") for c in settings["comparisons"] for lv in c["comparison_levels"]]


def _views(records: list[SourceRecord], a: str, b: str) -> tuple[dict[str, Any], dict[str, Any]]:
    by_uid = {r.uid: r for r in records}
    return features(by_uid[a], "US"), features(by_uid[b], "US")


def test_the_threshold_is_lowered_only_below_approvals_and_no_rejection() -> None:
    approvals = [(0.99999 - i * 1e-6, True) for i in range(30)]
    assert link_threshold(approvals + [(0.5, False)] * 30) == (
        pytest.approx(0.99999 - 29e-6),
        "60 steward decisions: 30 approved and 0 rejected at or above probability 0.999961 (precision 1.000)",
    )
    # One rejection among the first approvals stops it there: too few approvals above it.
    assert link_threshold([*approvals[:5], (0.99998, False), *approvals[5:], *[(0.5, False)] * 30]) is None
    assert link_threshold(approvals[:20]) is None  # too few decisions
