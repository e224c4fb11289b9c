"""Sources with one record per person: never two of their records in a customer, in batch and at ingest."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from c360.connectors.files import FileSource
from c360.connectors.synthetic import generate
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.models import SourceRecord
from c360.graph.store import GraphStore
from c360.resolution.batch import BatchResolver, Edge, link
from c360.resolution.config import (
    LinkingConfig,
    RealtimeConfig,
    SurvivorshipConfig,
    TrainingConfig,
    link_threshold,
)
from c360.resolution.linker import CustomerIdFactory, Linker
from c360.resolution.metrics import PairwiseScores, pairwise
from c360.resolution.model_registry import trained_scorer
from c360.resolution.splink_adapter import train
from pydantic import ValidationError

SINGLE = LinkingConfig(one_record_per_person=["census", "tax"])
T = datetime(2026, 11, 1, tzinfo=UTC)


def test_between_two_such_sources_the_model_links_from_the_review_threshold() -> None:
    realtime = RealtimeConfig(upper=0.99999, lower=0.8)
    assert link_threshold(SINGLE, realtime, "census", "tax") == 0.8
    assert link_threshold(SINGLE, realtime, "census", "census") == 0.99999
    assert link_threshold(SINGLE, realtime, "census", "crm") == 0.99999
    assert link_threshold(LinkingConfig(), realtime, "census", "tax") == 0.99999
    with pytest.raises(ValidationError, match="one_record_per_person"):
        LinkingConfig(one_record_per_person=["Census|2020"])


def test_link_gives_each_record_its_best_free_partner() -> None:
    uids = ["census|c1", "census|c2", "tax|t1", "tax|t2", "crm|x1"]
    shared_ssn = Edge("tax|t1", "tax|t2", float("inf"), 1.0, ("national_id|1",))  # a copied number
    scored = [
        Edge("census|c1", "tax|t1", 5.0, 0.97),
        Edge("census|c2", "tax|t1", 4.0, 0.94),  # t1 is taken by c1, its better partner
        Edge("census|c2", "tax|t2", 3.0, 0.89),
        Edge("census|c1", "census|c2", 9.0, 0.998),  # twins: never one person, not even a question
        Edge("crm|x1", "census|c1", 4.5, 0.96),  # crm may hold anything: the upper threshold applies
    ]
    realtime = RealtimeConfig(upper=0.99999, lower=0.8)
    clusters, edges, near = link(uids, [shared_ssn], scored, SINGLE, realtime)
    together = {frozenset(u for u in uids if clusters[u] == clusters[v]) for v in uids}
    assert together == {
        frozenset({"census|c1", "tax|t1"}),
        frozenset({"census|c2", "tax|t2"}),
        frozenset({"crm|x1"}),
    }
    assert [(e.a, e.b) for e in near] == [("crm|x1", "census|c1")]
    assert shared_ssn not in edges

    # Without the setting every model pair is under the upper threshold; the shared number joins.
    clusters, edges, near = link(uids, [shared_ssn], scored, LinkingConfig(), realtime)
    assert clusters["tax|t1"] == clusters["tax|t2"] and len(set(clusters.values())) == 4
    assert len(near) == len(scored)


def test_a_shared_identifier_does_not_join_two_records_of_such_a_source(tmp_path: Path) -> None:
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / "g.db"))
    try:
        linker = Linker(store, SINGLE)
        linker.ingest([SourceRecord("tax", "1", T, first_name="Ann", last_name="Lee", national_id="536-90-4417")])
        linker.ingest([SourceRecord("tax", "2", T, first_name="Bo", last_name="Lee", national_id="536-90-4417")])
        linker.ingest([SourceRecord("crm", "9", T, first_name="Ann", last_name="Lee", national_id="536-90-4417")])
        owner = {f"{s}|{k}": c for s, k, c in store.iter_links()}
        assert owner["tax|1"] != owner["tax|2"]
        assert owner["crm|9"] == owner["tax|1"]  # the oldest customer bearing the number
        # Without the setting the number joins all three.
        other = EmbeddedStore(EmbeddedConfig(path=tmp_path / "h.db"))
        plain = Linker(other)
        for key in ("1", "2"):
            plain.ingest([SourceRecord("tax", key, T, first_name="Ann", national_id="536-90-4417")])
        assert len({c for _, _, c in other.iter_links()}) == 1
        other.close()
    finally:
        store.close()


def _resolved(store: GraphStore, truth: dict[str, str]) -> tuple[PairwiseScores, dict[str, str]]:
    owner = {f"{s}|{k}": c for s, k, c in store.iter_links()}
    held = Counter((c, uid.split("|")[0]) for uid, c in owner.items())
    assert max(held.values()) == 1, "a customer holds two records of one source"
    return pairwise(truth, owner), owner


def test_one_record_per_person_raises_recall_alike_in_batch_and_at_ingest(tmp_path: Path) -> None:
    # Households, namesakes and heavy corruption; each source keeps one record per person.
    ds = generate(600, tmp_path / "data", seed=11, household_rate=0.3, namesake_rate=0.1, corruption=0.5)
    entity = {f"{s}|{k}": e for (s, k), e in ds.truth_map().items()}
    records: list[SourceRecord] = []
    kept: set[tuple[str, str]] = set()
    for sf in ds.sources:
        for r in FileSource(sf.path, sf.source, ds.mapping_of(sf)):
            if (r.source, entity[r.uid]) not in kept:
                kept.add((r.source, entity[r.uid]))
                records.append(r)
    truth = {r.uid: entity[r.uid] for r in records}
    settings, tf_tables, summary = train(records, region="US", config=TrainingConfig(u_max_pairs=2e5))
    scorer = trained_scorer(settings, tf_tables, summary)
    single = LinkingConfig(one_record_per_person=[sf.source for sf in ds.sources])
    scores: dict[tuple[str, str], PairwiseScores] = {}
    owners: dict[str, dict[str, str]] = {}
    for name, linking in (("plain", LinkingConfig()), ("single", single)):
        live = EmbeddedStore(EmbeddedConfig(path=tmp_path / f"{name}-live.db"))
        Linker(live, linking, scorer=scorer).ingest(records)
        scores[name, "live"], owners[name] = _resolved(live, truth)
        live.close()
        batch = EmbeddedStore(EmbeddedConfig(path=tmp_path / f"{name}-batch.db"))
        Linker(batch, linking).ingest(records)
        BatchResolver(
            batch,
            settings,
            linking=linking,
            realtime=RealtimeConfig(),
            survivorship=SurvivorshipConfig(),
            clock=lambda: T,
            new_id=CustomerIdFactory(),
            new_review_id=CustomerIdFactory("R"),
        ).run()
        scores[name, "batch"], batch_owner = _resolved(batch, truth)
        batch.close()
        assert pairwise(owners[name], batch_owner).f1 >= 0.99  # one decision rule in both paths
    for mode in ("live", "batch"):
        before, after = scores["plain", mode], scores["single", mode]
        assert after.recall > before.recall + 0.03, (mode, before, after)
        assert after.precision >= 0.98, (mode, after)
