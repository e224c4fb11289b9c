"""The real-time scorer agrees with Splink's own scoring of the same pairs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from c360.graph.errors import ConfigError, NotFoundError
from c360.graph.models import SourceRecord
from c360.resolution.features import features
from c360.resolution.model_registry import ModelRegistry
from c360.resolution.similarity import jaro_winkler, levenshtein
from c360.resolution.specification import COMPARISONS, TF_COLUMNS
from corpus import Corpus


@pytest.fixture(scope="module")
def trained(
    corpus: Corpus, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[SourceRecord], dict[tuple[str, str], str], Path]:
    """The session's corpus, its ground truth by (source, key), and its model saved in a registry."""
    folder = tmp_path_factory.mktemp("model")
    ModelRegistry(folder / "models").save(corpus.settings, corpus.tf_tables, corpus.summary)
    truth = {(r.source, r.key): corpus.truth[r.uid] for r in corpus.records}
    return corpus.records, truth, folder / "models"


def test_scorer_agrees_with_splink_score_pairs(
    trained: tuple[list[SourceRecord], dict[tuple[str, str], str], Path],
) -> None:
    from splink import DuckDBAPI, Linker

    records, truth, models = trained
    artifact = ModelRegistry(models).load()
    rows = [features(r, "US") for r in records]
    # Left: 40 records of persons with duplicates; right: their other records plus random ones.
    by_person: dict[str, list[dict[str, object]]] = {}
    for r, row in zip(records, rows, strict=True):
        by_person.setdefault(truth[(r.source, r.key)], []).append(row)
    dup_groups = [g for g in by_person.values() if len(g) > 1]
    rng = random.Random(3)
    rng.shuffle(dup_groups)
    left = [g[0] for g in dup_groups[:40]]
    right = [g[1] for g in dup_groups[:40]]
    right += rng.sample(rows, 10)
    linker = Linker(DuckDBAPI().register(rows), artifact.settings)
    for column in TF_COLUMNS:
        linker.table_management.compute_tf_table(column)
    splink_scores = linker.inference.score_pairs(left, right).as_record_list()
    assert len(splink_scores) >= 1000
    scorer = artifact.scorer()
    by_id = {row["unique_id"]: row for row in rows}
    worst = 0.0
    levels_seen: set[tuple[str, str]] = set()
    tf_adjusted = 0
    for s in splink_scores:
        ours = scorer.score(by_id[s["unique_id_l"]], by_id[s["unique_id_r"]])
        worst = max(worst, abs(ours.match_weight - s["match_weight"]))
        assert abs(ours.match_probability - s["match_probability"]) < 1e-9
        levels_seen |= {(c.comparison, c.level) for c in ours.contributions}
        tf_adjusted += any(c.tf_adjustment != 0 for c in ours.contributions)
    assert worst < 1e-6
    assert tf_adjusted >= 20  # term-frequency adjustments were exercised
    assert len(levels_seen) >= 20  # and most levels of most comparisons


def test_registry_versions_and_clear_errors(
    trained: tuple[list[SourceRecord], dict[tuple[str, str], str], Path], tmp_path: Path
) -> None:
    _, _, models = trained
    registry = ModelRegistry(models)
    first = registry.load()
    second = registry.save(first.settings, first.tf_tables, first.summary)
    assert registry.versions()[-2:] == [second.version - 1, second.version]
    assert registry.load().version == second.version
    with pytest.raises(NotFoundError, match="c360 resolve train"):
        ModelRegistry(tmp_path / "none").load()
    broken = dict(first.settings)
    broken["comparisons"] = [c for c in first.settings["comparisons"] if c["output_column_name"] != "dob"]
    with pytest.raises(ConfigError, match="retrain"):
        registry.save(broken, first.tf_tables, first.summary)


def test_similarity_functions_agree_with_duckdb() -> None:
    import duckdb

    rng = random.Random(9)
    alphabet = "aeiounrstlmkbcéüßø日本"  # multi-byte characters: DuckDB compares characters, not bytes
    pairs = [
        (
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))),
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))),
        )
        for _ in range(2000)
    ]
    con = duckdb.connect()
    got = con.execute(
        "SELECT jaro_winkler_similarity(a, b), levenshtein(a, b) FROM (SELECT unnest($1) AS a, unnest($2) AS b)",
        [[a for a, _ in pairs], [b for _, b in pairs]],
    ).fetchall()
    for (a, b), (jw, lev) in zip(pairs, got, strict=True):
        assert jaro_winkler(a, b) == jw, (a, b)
        assert levenshtein(a, b) == lev, (a, b)


def test_every_comparison_has_a_null_level_first_and_else_last() -> None:
    for c in COMPARISONS:
        assert c.levels[0].null and c.levels[-1].sql == "ELSE"
        assert c.level_of(None, "x") == 0 and c.level_of("x", None) == 0


def test_score_at_least_prunes_only_pairs_below_the_floor(
    trained: tuple[list[SourceRecord], dict[tuple[str, str], str], Path],
) -> None:
    records, truth, models = trained
    scorer = ModelRegistry(models).load().scorer()
    rows = [features(r, "US") for r in records]
    rng = random.Random(7)
    # Pairs of one person (high weights) and random pairs (mostly very low), against several floors.
    by_person: dict[str, list[dict[str, object]]] = {}
    for r, row in zip(records, rows, strict=True):
        by_person.setdefault(truth[(r.source, r.key)], []).append(row)
    pairs = [(g[0], g[1]) for g in by_person.values() if len(g) > 1][:300]
    pairs += [(rng.choice(rows), rng.choice(rows)) for _ in range(700)]
    pruned = 0
    for floor in (-10.0, 2.0, 16.6):
        for a, b in pairs:
            full = scorer.score(a, b)
            early = scorer.score_at_least(a, b, floor)
            if early is None:
                pruned += 1
                assert full.match_weight < floor
            else:
                assert early == full
    assert pruned > 500  # the bound does cut work, not only stay correct
