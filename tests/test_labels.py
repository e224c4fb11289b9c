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
from c360.resolution.calibrate import link_threshold
from c360.resolution.config import RealtimeConfig, SurvivorshipConfig, TrainingConfig
from c360.resolution.features import features
from c360.resolution.linker import Linker
from c360.resolution.metrics import PairwiseScores, pairwise
from c360.resolution.model_registry import ModelRegistry, trained_scorer
from c360.resolution.review import approve, reject
from c360.resolution.scorer import Scorer, Verdicts
from c360.resolution.splink_adapter import train

NOW = datetime(2026, 11, 1, tzinfo=UTC)
REALTIME = RealtimeConfig()  # the defaults: link from 0.99999, review from 0.8


def _resolve(
    path: Path, records: list[SourceRecord], scorer: Scorer, truth: dict[str, str], realtime: RealtimeConfig
) -> PairwiseScores:
    store = EmbeddedStore(EmbeddedConfig(path=path))
    try:
        Linker(store, scorer=scorer, realtime=realtime).ingest(records)
        return pairwise(truth, {f"{s}|{k}": cid for s, k, cid in store.iter_links()})
    finally:
        store.close()


def test_steward_decisions_raise_recall_on_a_hard_set(tmp_path: Path) -> None:
    # Households, namesakes and heavy corruption: many true pairs stay under the link threshold.
    ds = generate(2500, tmp_path / "data", seed=10, household_rate=0.3, namesake_rate=0.1, corruption=0.5)
    records = [r for sf in ds.sources for r in FileSource(sf.path, sf.source, ds.mapping_of(sf))]
    truth = {f"{s}|{k}": e for (s, k), e in ds.truth_map().items()}
    config = TrainingConfig(u_max_pairs=2e5)
    first = trained_scorer(*train(records, region="US", config=config))

    # Stewards answer every review item of a real-time ingest, as the ground truth says.
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "steward.db"))
    Linker(store, scorer=first, realtime=REALTIME).ingest(records)
    for item in store.review_items("open", limit=None):
        if truth[item.record_uid] == truth[item.candidate_uid]:
            approve(store, item.id, by="steward", reason=None, now=NOW, survivorship=SurvivorshipConfig())
        else:
            reject(store, item.id, by="steward", reason="different people", now=NOW)
    labels = [(i.record_uid, i.candidate_uid) for i in store.review_items("approved", limit=None)]
    rejected = [(i.record_uid, i.candidate_uid) for i in store.review_items("rejected", limit=None)]
    store.close()
    assert len(labels) + len(rejected) >= 200 and len(labels) >= 50

    settings, tf_tables, summary = train(records, region="US", config=config, labels=labels, rejected=rejected)
    assert summary["labels"] == len(labels)
    unlabelled, _, _ = train(records, region="US", config=config)
    # Splink estimated m from the approved pairs too: the model moved.
    assert _m_values(settings) != _m_values(unlabelled)
    # Patterns stewards decided alike decide by themselves now, both ways.
    learned = Verdicts.from_json(summary["verdicts"])
    assert learned.link and learned.never
    assert any(line.startswith("links (") for line in summary["verdicts_basis"])
    saved = ModelRegistry(tmp_path / "models").save(settings, tf_tables, summary)

    before = _resolve(tmp_path / "before.db", records, first, truth, REALTIME)
    after = _resolve(tmp_path / "after.db", records, saved.scorer(), truth, saved.realtime(REALTIME))
    assert after.recall >= before.recall + 0.02, (before, after)
    assert after.precision >= before.precision - 0.005 and after.f1 > before.f1, (before, after)


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


def test_a_pattern_decides_by_itself_only_when_every_decision_on_it_agrees() -> None:
    from c360.resolution.calibrate import MIN_PATTERN_DECISIONS, learn_verdicts

    twins = ("first_name: all other comparisons", "last_name: exact match", "dob: exact match")
    typo = ("first_name: Jaro-Winkler >= 0.92", "last_name: exact match", "dob: null")
    mixed = ("first_name: exact match", "last_name: exact match", "dob: all other comparisons")
    n = MIN_PATTERN_DECISIONS
    decided = [(twins, False)] * n + [(typo, True)] * n + [(mixed, True)] * (n + 3) + [(mixed, False)]
    verdicts, basis = learn_verdicts(decided + [(("first_name: null",), True)] * (n - 1))
    assert verdicts.link == {typo} and verdicts.never == {twins}
    assert basis == [  # most decided first; the null levels are left out
        f"links ({n} approved): first_name: Jaro-Winkler >= 0.92, last_name: exact match",
        f"is not asked again ({n} rejected): " + ", ".join(twins),
    ]
    assert Verdicts.from_json(verdicts.to_json()) == verdicts and Verdicts.from_json(None) == Verdicts()
