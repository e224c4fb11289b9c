"""The real-time scorer agrees with Splink's own scoring of the same pairs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from c360.graph.errors import ConfigError, NotFoundError
from c360.graph.models import SourceRecord
from c360.resolution.config import TrainingConfig
from c360.resolution.features import COMPARED, features
from c360.resolution.model_registry import Artifact, ModelRegistry
from c360.resolution.similarity import adjacent_transposition, jaro_winkler, within_one_edit
from c360.resolution.specification import KINDS, Specification
from c360.resolution.splink_adapter import train
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


def _agreement(records: list[SourceRecord], truth: dict[tuple[str, str], str], artifact: Artifact) -> int:
    """Score pairs with Splink's ``score_pairs`` and with our scorer; assert they agree; return levels seen."""
    from splink import DuckDBAPI, Linker

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
    for column in artifact.specification().tf_columns:
        linker.table_management.compute_tf_table(column)
    splink_scores = linker.inference.score_pairs(left, right).as_record_list()
    assert len(splink_scores) >= 1000
    scorer = artifact.scorer()
    by_id = {row["unique_id"]: row for row in rows}
    worst = 0.0
    levels_seen: set[tuple[str, str]] = set()
    for s in splink_scores:
        ours = scorer.score(by_id[s["unique_id_l"]], by_id[s["unique_id_r"]])
        worst = max(worst, abs(ours.match_weight - s["match_weight"]))
        assert abs(ours.match_probability - s["match_probability"]) < 1e-9
        levels_seen |= {(c.comparison, c.level) for c in ours.contributions}
    assert worst < 1e-6
    return len(levels_seen)


def test_scorer_agrees_with_splink_score_pairs(
    trained: tuple[list[SourceRecord], dict[tuple[str, str], str], Path],
) -> None:
    records, truth, models = trained
    artifact = ModelRegistry(models).load()
    assert _agreement(records, truth, artifact) >= 20  # most levels of most comparisons


def _generated_spec(rng: random.Random) -> Specification:
    """A random specification: some columns, each with a kind that applies to it, random tf flags."""
    columns = ["first_name", "last_name"][: rng.randint(1, 2)]
    columns += rng.sample([c for c in COMPARED if c not in columns and c not in ("first_name", "last_name")], 4)
    entries = []
    for column in columns:
        kinds = sorted(k for k, fits in KINDS.items() if column in fits)
        entries.append({"column": column, "kind": rng.choice(kinds), "tf": rng.random() < 0.5})
    blocking = [[c] for c in columns if c in ("dob", "email", "phone", "national_id")] or [["postcode"]]
    return Specification.from_json(
        {"comparisons": entries, "blocking": [*blocking, columns[:2]], "em_sessions": [columns[:1]]}
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scorer_agrees_with_splink_on_generated_specifications(corpus: Corpus, tmp_path: Path, seed: int) -> None:
    """Every kind of comparison, on random columns and term-frequency flags, trained and scored both ways."""
    spec = _generated_spec(random.Random(seed))
    records = corpus.records[:900]
    settings, tf_tables, summary = train(records, region="US", spec=spec, config=TrainingConfig(u_max_pairs=2e4))
    artifact = ModelRegistry(tmp_path).save(settings, tf_tables, summary)
    assert artifact.specification().comparisons == spec.comparisons
    truth = {(r.source, r.key): corpus.truth[r.uid] for r in records}
    assert _agreement(records, truth, artifact) >= 8


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

    def edited(text: str) -> str:  # one or two random edits: the pairs the one-edit level is about
        for _ in range(rng.randint(1, 2)):
            i, c = rng.randint(0, len(text)), rng.choice(alphabet)
            text = rng.choice((text[:i] + c + text[i:], text[:i] + c + text[i + 1 :], text[:i] + text[i + 1 :]))
        return text

    pairs += [(a, edited(a)) for a, _ in pairs[:1000]]
    con = duckdb.connect()
    got = con.execute(
        "SELECT jaro_winkler_similarity(a, b), levenshtein(a, b), damerau_levenshtein(a, b) "
        "FROM (SELECT unnest($1) AS a, unnest($2) AS b)",
        [[a for a, _ in pairs], [b for _, b in pairs]],
    ).fetchall()
    for (a, b), (jw, lev, dl) in zip(pairs, got, strict=True):
        assert jaro_winkler(a, b) == jw, (a, b)
        assert within_one_edit(a, b) == (lev <= 1), (a, b)
        if lev > 1:  # the transposition level comes after the one-edit level
            assert adjacent_transposition(a, b) == (dl <= 1), (a, b)
    swapped = [("19840312", "19843012"), ("123456789", "123456798"), ("abc", "bca"), ("ab", "ba")]
    for a, b in swapped:
        dl = con.execute("SELECT damerau_levenshtein($1, $2)", [a, b]).fetchone()
        assert dl is not None and adjacent_transposition(a, b) == (dl[0] <= 1), (a, b)


def test_every_comparison_has_a_null_level_first_and_else_last() -> None:
    every_kind = [{"column": c, "kind": k} for k, fits in KINDS.items() for c in sorted(fits)]
    for entry in every_kind:
        other = {"column": "dob" if entry["column"] in ("first_name", "last_name") else "first_name"}
        spec = Specification.from_json({"comparisons": [entry, other], "blocking": [["first_name"]]})
        for c in spec.built():
            assert c.levels[0].null and c.levels[-1].sql == "ELSE"
            assert c.level_of({}, {c.column: "x"}) == 0 and c.level_of({c.column: "x"}, {}) == 0


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
