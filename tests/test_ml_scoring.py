"""Training every model, scoring every customer and writing the insights back to the profiles (issue 17, point 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from c360.graph.errors import InvalidInputError
from c360.graph.insights import Insight
from c360.graph.store import GraphStore
from c360.ml.rfm import compute_rfm
from c360.ml.scoring import MODELS, score_customers, train_models, write_insights
from c360.ml.snapshot import database_path, snapshot
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from ml_snapshots import Persona, Shape, Truth, build, day

# Its own seed and mix (not the shapes the models were tuned on in test_ml_models).
SHAPE = Shape(
    customers=700,
    days=360,
    personas=(
        Persona("steady", 0.4, 2.0, 70, 2, 0.05, email=0.6),
        Persona("fading", 0.4, 1.2, 45, 2, 0.95),
        Persona("browser", 0.2, 0.3, 30, 6, 0.5, carts_per_session=0.6, app=0.8),
    ),
    products=30,
    antecedent="P011",
    consequent="P004",
    rule_strength=0.7,
    seed=23,
)
AS_OF = day(SHAPE.days)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Path, Path]:
    folder = tmp_path_factory.mktemp("scoring")
    path = folder / "snapshot.duckdb"
    truth = build(path, SHAPE)
    with duckdb.connect(str(path)) as con:
        compute_rfm(con, as_of=AS_OF)
        report = train_models(con, folder / "models", as_of=AS_OF)
    assert set(report.artifacts) == set(MODELS), report.skipped
    return truth, path, folder / "models"


def test_training_saves_a_version_of_every_model_with_its_validation(trained: tuple[Truth, Path, Path]) -> None:
    _, path, models = trained
    with duckdb.connect(str(path), read_only=True) as con:
        again = train_models(con, models, as_of=AS_OF, only=["churn"])
        assert again.artifacts["churn"].tag == "churn@v2"
        assert set(again.artifacts["churn"].metrics) == {"cross_validation", "holdout"}
        with pytest.raises(InvalidInputError, match="unknown model nope"):
            train_models(con, models, as_of=AS_OF, only=["nope"])


def test_scores_name_their_model_and_follow_the_planted_behaviour(trained: tuple[Truth, Path, Path]) -> None:
    truth, path, models = trained
    customers = sorted(truth.persona)
    consented = {customers[0]: {"sms"}, customers[1]: {"email", "sms"}}
    with duckdb.connect(str(path), read_only=True) as con:
        insights, report = score_customers(con, models, as_of=AS_OF, consented_channels=consented)
    assert not report.missing
    by = {(i.customer_id, i.name): i for i in insights}
    churn = [i for i in insights if i.name == "churn"]
    assert churn and {i.model for i in churn} == {report.models["churn"]}
    assert report.models["churn"].startswith("churn@v")
    # Faders stop ordering: their churn probability is higher on average than the steady customers'.
    mean = {
        p: sum(i.score or 0 for i in churn if truth.persona[i.customer_id] == p)
        / max(1, sum(1 for i in churn if truth.persona[i.customer_id] == p))
        for p in ("steady", "fading")
    }
    assert mean["fading"] > mean["steady"] + 0.1, mean
    assert all(i.label in {"likely to churn", "likely to stay"} for i in churn)
    # Every customer has an RFM segment with its scores; lifetime value is never negative.
    assert sum(1 for i in insights if i.name == "rfm") == len(customers)
    assert all((i.score or 0) >= 0 for i in insights if i.name == "clv")
    # The channel is one the customer consented to, and nobody else gets one.
    assert by[(customers[0], "next_channel")].label == "sms"
    assert by[(customers[1], "next_channel")].label in {"email", "sms"}
    assert {i.customer_id for i in insights if i.name == "next_channel"} == set(consented)
    # Basket rules offer products, never one the customer already bought (and kept: returns do not count).
    with duckdb.connect(str(path), read_only=True) as con:
        bought = {(c, p) for c, p in con.execute(
            "SELECT o.customer_id, l.product_id FROM orders o JOIN line_items l USING (source, order_id)"
            " WHERE o.status NOT IN ('cancelled', 'returned')"
        ).fetchall()}  # fmt: skip
    offers = [i for i in insights if i.name == "next_products"]
    assert offers
    for offer in offers:
        for product in offer.detail["products"]:
            assert (offer.customer_id, product["product_id"]) not in bought


def test_scoring_without_models_says_what_is_missing(tmp_path: Path, trained: tuple[Truth, Path, Path]) -> None:
    _, path, _ = trained
    with duckdb.connect(str(path), read_only=True) as con:
        insights, report = score_customers(con, tmp_path / "none", as_of=AS_OF, consented_channels={})
    assert set(report.missing) == {"churn", "clv", "clusters", "basket_rules", "transaction_anomaly"}
    assert {i.name for i in insights} == {"rfm"}


def test_insights_are_written_to_the_profiles_of_the_store(store: GraphStore, tmp_path: Path) -> None:
    from payloads import order_event, profile_event

    pipeline = Pipeline(store, Linker(store))
    keys = [("crm", f"K{i:02d}") for i in range(6)]
    events = [profile_event(f"p{i}", s, k, i, first_name=f"F{i}", last_name=f"L{i}") for i, (s, k) in enumerate(keys)]
    orders = [
        order_event(
            f"o{i}-{n}",
            k,
            f"2026-05-{10 + n:02d}T10:00:00Z",
            source=s,
            order_id=f"O{i}-{n}",
            total=f"{20 * (i + 1)}.00",
        )
        for i, (s, k) in enumerate(keys)
        for n in range(i % 3 + 1)
    ]
    assert not pipeline.process(events).rejected
    assert not pipeline.process(orders).rejected
    folder = tmp_path / "ml"
    snapshot(store, folder)
    at = datetime(2026, 6, 1, tzinfo=UTC)
    with duckdb.connect(str(database_path(folder))) as con:
        compute_rfm(con, as_of=at)
        insights, report = score_customers(con, tmp_path / "models", as_of=at, consented_channels={})
        segments = dict(con.execute("SELECT customer_id, rfm_segment FROM rfm").fetchall())
    assert write_insights(store, insights) == len(insights) == len(segments) == 6
    stored = store.insights_of(list(segments))
    for cid, segment in segments.items():
        (rfm,) = [i for i in stored[cid] if i.name == "rfm"]
        assert rfm.label == segment and rfm.model == report.models["rfm"] == "rfm@2026-06-01"
        assert isinstance(rfm, Insight) and rfm.detail["frequency"] >= 1


def test_the_commands_train_score_and_list_models(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from c360.cli.common import State
    from c360.cli.ml import ml_app

    state = State(data_dir=tmp_path / "data")
    folder = tmp_path / "data" / "ml"
    folder.mkdir(parents=True)
    build(database_path(folder), SHAPE)
    runner = CliRunner()
    when = ["--as-of", AS_OF.strftime("%Y-%m-%dT%H:%M:%S")]
    rfm = runner.invoke(ml_app, ["rfm", "--json", *when], obj=state)
    assert rfm.exit_code == 0, rfm.output
    assert json.loads(rfm.stdout)["customers"] == SHAPE.customers
    train = runner.invoke(ml_app, ["train", "--model", "churn", "--json", *when], obj=state)
    assert train.exit_code == 0, train.output
    assert json.loads(train.stdout)["artifacts"]["churn"]["version"] == "churn@v1"
    listed = runner.invoke(ml_app, ["models", "churn"], obj=state)
    assert listed.exit_code == 0 and "churn@v1" in listed.stdout and "auc" in listed.stdout
    scored = runner.invoke(ml_app, ["score", "--dry-run", "--json", *when], obj=state)
    assert scored.exit_code == 0, scored.output
    report = json.loads(scored.stdout)
    assert report["insights"]["churn"] > 0 and report["written"] == 0 and "clv" in report["missing"]
    entries = [json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()]
    assert [e["action"] for e in entries] == ["ml_rfm", "ml_train", "ml_score"]
    assert all(e["outcome"] == "ok" for e in entries)
    # No snapshot: a clear error naming the command to run.
    empty = State(data_dir=tmp_path / "empty")
    missing = runner.invoke(ml_app, ["rfm"], obj=empty)
    assert missing.exit_code != 0 and "c360 ml snapshot" in str(missing.exception)
