"""ML models on generated snapshots with planted signals (issue 17, points 5 and 6).

Shape A tuned the thresholds below; shape B (smaller, three personas, more churn, another planted
rule, another seed) was written before any model ran on it and is never tuned. The clustering shape
has personas that differ on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.ml import churn, clusters, clv, lookalike, nba
from c360.ml.artifacts import list_artifacts, load_artifact, save_artifact
from c360.ml.features import compute_features, open_snapshot
from ml_snapshots import Persona, Shape, Truth, build, day
from sklearn.metrics import adjusted_rand_score

SHAPE_A = Shape(
    customers=1000,
    days=360,
    personas=(Persona("loyal", 0.5, 2.0, 60, 2, 0.1), Persona("fader", 0.5, 1.5, 40, 2, 0.9)),
    seed=1,
)
SHAPE_B = Shape(
    customers=600,
    days=360,
    personas=(
        Persona("big", 0.25, 3.0, 150, 3, 0.3, email=0.5),
        Persona("casual", 0.45, 0.8, 35, 1, 0.7),
        Persona("browser", 0.3, 0.4, 25, 5, 0.6, carts_per_session=0.6, app=0.7),
    ),
    products=25,
    antecedent="P021",
    consequent="P003",
    rule_strength=0.6,
    seed=7,
)
SHAPE_CLUSTERS = Shape(
    customers=600,
    days=360,
    personas=(
        Persona("whale", 0.2, 4.0, 250, 2, 0.0),
        Persona("occasional", 0.5, 0.5, 30, 1, 0.0),
        Persona("browser", 0.3, 0.4, 30, 8, 0.0, carts_per_session=0.7),
    ),
    seed=3,
)


SHAPES = {"A": SHAPE_A, "B": SHAPE_B}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Truth, Path]]:
    out = {}
    for name, shape in SHAPES.items():
        path = tmp_path_factory.mktemp(f"ml{name}") / "snapshot.duckdb"
        out[name] = (build(path, shape), path)
    return out


@pytest.fixture(scope="module", params=list(SHAPES))
def snapshot(request: pytest.FixtureRequest, built: dict[str, tuple[Truth, Path]]) -> tuple[str, Shape, Truth, Path]:
    truth, path = built[request.param]
    return request.param, SHAPES[request.param], truth, path


@pytest.fixture
def con(snapshot: tuple[str, Shape, Truth, Path]) -> duckdb.DuckDBPyConnection:
    connection = open_snapshot(snapshot[3])
    yield connection
    connection.close()


# --- churn -------------------------------------------------------------------------------------------


def test_churn_finds_the_fading_customers_on_a_later_period(
    snapshot: tuple[str, Shape, Truth, Path], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    model = churn.train_churn(con, cutoff=day(150), window_days=90, folds=5, models_dir=tmp_path)
    assert model.cross_validation["auc"][0] > 0.7
    assert model.holdout.auc > 0.7
    assert model.holdout.f1 > 0.5
    rate = model.holdout.positive_rate
    assert model.holdout.brier < rate * (1 - rate)  # better than always predicting the base rate
    assert sum(b.count for b in model.holdout.reliability) == model.holdout.count
    # The artifact holds the same model and the metrics.
    assert model.artifact is not None and model.artifact.tag == "churn@v1"
    loaded, info = load_artifact(tmp_path, "churn")
    features = compute_features(con, as_of=day(240))
    assert churn.score_churn(loaded, features) == churn.score_churn(model.pipeline, features)
    meta = json.loads((info.path / "meta.json").read_text())
    assert meta["metrics"]["holdout"]["auc"] == pytest.approx(model.holdout.auc)
    assert set(meta["metrics"]["cross_validation"]) >= {"auc", "precision", "recall", "f1", "brier"}
    assert meta["metadata"]["window_days"] == 90 and meta["metadata"]["threshold"] == model.threshold


def test_churn_gradient_boosting_on_the_untuned_shape(built: dict[str, tuple[Truth, Path]]) -> None:
    with open_snapshot(built["B"][1]) as con:
        model = churn.train_churn(con, cutoff=day(150), estimator="gradient_boosting", folds=3)
    assert model.holdout.auc > 0.7
    assert model.artifact is None


def test_churn_labels_follow_the_inactivity_window(
    snapshot: tuple[str, Shape, Truth, Path], con: duckdb.DuckDBPyConnection
) -> None:
    _, _, truth, _ = snapshot
    features, labels = churn.churn_labels(con, cutoff=day(150), window_days=90)
    assert (features.column("frequency") > 0).all()
    # Everyone whose planted stop day precedes the cutoff and who is labelled has churned.
    for cid, label in zip(features.customer_ids, labels, strict=True):
        if truth.stop_day[cid] < 150:
            assert label == 1.0


def test_churn_refuses_labels_of_one_class(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(InvalidInputError, match="churned"):
        churn.train_churn(con, cutoff=day(400), window_days=30)  # nobody orders after the data ends
    with pytest.raises(InvalidInputError):
        churn.train_churn(con, cutoff=day(150), folds=1)
    with pytest.raises(InvalidInputError):
        churn.train_churn(con, cutoff=day(150), holdout_cutoff=day(160))


def test_best_threshold_maximises_f1() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0], dtype=np.float64)
    scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9, 0.65])
    assert churn.best_threshold(labels, scores) == pytest.approx(0.6)


# --- lifetime value ------------------------------------------------------------------------------------


def test_clv_ranks_next_period_spend_better_than_naive_forecasts(
    snapshot: tuple[str, Shape, Truth, Path], con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    model = clv.train_clv(con, cutoff=day(150), period_days=90, models_dir=tmp_path)
    h = model.holdout
    assert h.spearman > 0.5
    assert h.mae < h.mae_training_mean
    assert h.mae_last_period is not None and h.mae < h.mae_last_period
    assert 0.5 < h.predicted_total / h.actual_total < 2.0
    assert model.artifact is not None
    assert json.loads((model.artifact.path / "meta.json").read_text())["metrics"]["holdout"]["mae"] == pytest.approx(
        h.mae
    )
    scores = clv.score_clv(model.pipeline, compute_features(con, as_of=day(330)))
    assert min(scores.values()) >= 0


# --- next-best-action ----------------------------------------------------------------------------------


def test_the_planted_rule_has_the_top_lift(
    snapshot: tuple[str, Shape, Truth, Path], con: duckdb.DuckDBPyConnection
) -> None:
    _, shape, _, _ = snapshot
    rules = nba.mine_rules(con)
    assert {(rules[0].antecedent, rules[0].consequent), (rules[1].antecedent, rules[1].consequent)} == {
        (shape.antecedent, shape.consequent),
        (shape.consequent, shape.antecedent),
    }
    planted = next(r for r in rules if (r.antecedent, r.consequent) == (shape.antecedent, shape.consequent))
    assert planted.lift > 3
    assert planted.confidence == pytest.approx(shape.rule_strength, abs=0.1)
    assert all(r.support >= 0.005 and r.confidence >= 0.1 and r.lift >= 1.0 for r in rules)
    assert nba.mine_rules(con, min_lift=planted.lift * 2) == ()
    assert all(r.confidence >= 0.5 for r in nba.mine_rules(con, min_confidence=0.5))


def test_recommendations_offer_the_consequent_and_nothing_already_bought(
    snapshot: tuple[str, Shape, Truth, Path], con: duckdb.DuckDBPyConnection
) -> None:
    _, shape, _, _ = snapshot
    rules = nba.mine_rules(con)
    recs = nba.recommend_products(con, rules, top_n=2)
    bought: dict[str, set[str]] = {}
    for cid, product in con.execute(
        "SELECT DISTINCT o.customer_id, li.product_id FROM orders o JOIN line_items li USING (source, order_id) "
        "WHERE o.status NOT IN ('cancelled', 'returned')"
    ).fetchall():
        bought.setdefault(cid, set()).add(product)
    assert recs
    for cid, offers in recs.items():
        assert 1 <= len(offers) <= 2
        assert not {o.product_id for o in offers} & bought[cid]
        assert [o.confidence for o in offers] == sorted((o.confidence for o in offers), reverse=True)
    lacking = [c for c, mine in bought.items() if shape.antecedent in mine and shape.consequent not in mine]
    assert lacking
    assert all(recs[c][0].product_id == shape.consequent for c in lacking)
    with pytest.raises(InvalidInputError):
        nba.recommend_products(con, rules, top_n=0)


# --- clusters and lookalikes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Path]:
    path = tmp_path_factory.mktemp("clusters") / "snapshot.duckdb"
    return build(path, SHAPE_CLUSTERS), path


def test_kmeans_finds_the_personas_and_names_them(cluster_snapshot: tuple[Truth, Path]) -> None:
    truth, path = cluster_snapshot
    with open_snapshot(path) as con:
        features = compute_features(con, as_of=day(360))
    result = clusters.fit_clusters(features, k_range=range(2, 7))
    assert result.k == 3
    assert result.silhouette == max(result.silhouettes.values())
    personas = [truth.persona[c] for c in features.customer_ids]
    labels = [result.assignments[c] for c in features.customer_ids]
    assert adjusted_rand_score(personas, labels) > 0.8
    whales = [result.assignments[c] for c in features.customer_ids if truth.persona[c] == "whale"]
    whale_cluster = result.clusters[max(set(whales), key=whales.count)]
    assert "high spend" in whale_cluster.description or "frequent" in whale_cluster.description
    assert sum(c.size for c in result.clusters) == len(features.customer_ids)
    # The fitted model assigns the same customers to the same clusters.
    assert clusters.assign_clusters(result, features) == dict(result.assignments)


def test_the_richest_cluster_reads_high_spend(
    snapshot: tuple[str, Shape, Truth, Path], con: duckdb.DuckDBPyConnection
) -> None:
    features = compute_features(con, as_of=day(300))
    result = clusters.fit_clusters(features, k_range=range(2, 6))
    richest = max(result.clusters, key=lambda c: c.centroid["monetary"])
    poorest = min(result.clusters, key=lambda c: c.centroid["monetary"])
    assert richest.z_scores["monetary"] > poorest.z_scores["monetary"]
    assert "low spend" not in richest.description and "high spend" not in poorest.description


def test_describe_names_the_notable_measures_furthest_first() -> None:
    assert clusters.describe({"monetary": 1.2, "frequency": 0.9, "recency_days": -0.7, "refunds": 0.1}) == (
        "high spend, frequent, recent"
    )
    assert clusters.describe({"monetary": 0.2, "frequency": -0.1}) == "average on every measure"


def test_fit_clusters_refuses_bad_ranges(cluster_snapshot: tuple[Truth, Path]) -> None:
    with open_snapshot(cluster_snapshot[1]) as con:
        features = compute_features(con, as_of=day(360))
    with pytest.raises(InvalidInputError):
        clusters.fit_clusters(features, k_range=range(1, 4))
    with pytest.raises(InvalidInputError):
        clusters.fit_clusters(features, k_range=range(5, 2))


@pytest.mark.parametrize("method", ["logistic", "centroid"])
def test_lookalikes_find_the_hidden_half_of_a_persona(
    snapshot: tuple[str, Shape, Truth, Path],
    con: duckdb.DuckDBPyConnection,
    method: str,
    request: pytest.FixtureRequest,
) -> None:
    name, shape, truth, _ = snapshot
    if (name, method) == ("B", "centroid"):
        # Found on the untuned shape and left as found: B's seed persona fades for 30% of its members, so
        # the seed's centroid sits between active and lapsed customers; the logistic method copes.
        request.applymarker(pytest.mark.xfail(strict=True, reason="centroid lookalikes of a mixed seed (shape B)"))
    features = compute_features(con, as_of=day(300))
    target = shape.personas[0].name
    persona = sorted(c for c in features.customer_ids if truth.persona[c] == target)
    rng = np.random.default_rng(0)
    seed = set(rng.choice(persona, size=len(persona) // 2, replace=False).tolist())
    rest = set(persona) - seed
    audience = lookalike.find_lookalikes(features, seed, top_n=len(rest), method=method)  # type: ignore[arg-type]
    assert audience.lift is not None and audience.lift.lift > 1.5
    assert audience.lift.found <= audience.lift.hidden
    assert len(audience.members) == len(rest)
    assert not {m.customer_id for m in audience.members} & seed
    scores = [m.score for m in audience.members]
    assert scores == sorted(scores, reverse=True)
    share = len(rest) / (len(features.customer_ids) - len(seed))
    precision = len({m.customer_id for m in audience.members} & rest) / len(rest)
    assert precision > 1.5 * share


def test_lookalikes_refuse_bad_seeds(cluster_snapshot: tuple[Truth, Path]) -> None:
    with open_snapshot(cluster_snapshot[1]) as con:
        features = compute_features(con, as_of=day(360))
    ids = features.customer_ids
    with pytest.raises(InvalidInputError):
        lookalike.find_lookalikes(features, {ids[0]}, top_n=5)
    with pytest.raises(InvalidInputError, match="no features"):
        lookalike.find_lookalikes(features, {ids[0], "nobody"}, top_n=5)
    with pytest.raises(InvalidInputError, match="holdout_fraction"):
        lookalike.find_lookalikes(features, set(ids[:2]), top_n=5)  # 20% of 2 hides nobody
    with pytest.raises(InvalidInputError):
        lookalike.find_lookalikes(features, set(ids), top_n=5, holdout_fraction=0)
    audience = lookalike.find_lookalikes(features, set(ids[:3]), top_n=5, holdout_fraction=0)
    assert audience.lift is None and len(audience.members) == 5


# --- artifacts -------------------------------------------------------------------------------------------


def test_artifacts_are_versioned_and_checked(tmp_path: Path) -> None:
    first = save_artifact(tmp_path, name="demo", model={"w": 1}, metadata={"a": 1}, metrics={"auc": float("nan")})
    second = save_artifact(tmp_path, name="demo", model={"w": 2}, metadata={"a": 2}, metrics={"auc": 0.9})
    assert (first.version, second.version) == (1, 2)
    assert first.metrics == {"auc": None}  # NaN (undefined) is stored as null
    assert [i.version for i in list_artifacts(tmp_path, "demo")] == [1, 2]
    assert load_artifact(tmp_path, "demo")[0] == {"w": 2}
    assert load_artifact(tmp_path, "demo", 1)[0] == {"w": 1}
    with pytest.raises(NotFoundError):
        load_artifact(tmp_path, "demo", 3)
    with pytest.raises(NotFoundError):
        load_artifact(tmp_path, "other")
    with pytest.raises(InvalidInputError):
        save_artifact(tmp_path, name="../escape", model=1, metadata={}, metrics={})
    (first.path / "model.joblib").write_bytes(b"tampered")
    with pytest.raises(ConflictError, match="SHA-256"):
        load_artifact(tmp_path, "demo", 1)
