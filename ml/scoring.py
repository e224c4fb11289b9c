"""Train the marketers' models on the snapshot and score every customer into insights for the profile.

:func:`train_models` fits churn, lifetime value, k-means clusters and basket rules on the snapshot as of a
date and saves each as a versioned artifact (:mod:`c360.ml.artifacts`). The label windows end at
``as_of``: churn trains on the window two windows back and holds out the last one, lifetime value the
same with its period, so the holdout is the most recent period the snapshot knows.

:func:`score_customers` loads the latest artifact of each model and turns the snapshot into
:class:`~c360.graph.insights.Insight` values, one per (customer, name), each naming the model version it
came from: ``churn`` (probability, with the model's threshold), ``clv`` (predicted spend next period),
``rfm`` (the RFM segment and scores, from the snapshot's ``rfm`` table), ``cluster`` (the cluster's
words), ``next_products`` (basket rules), ``next_channel`` (the consented channel the customer
engages with most) and ``transaction_anomaly`` (the highest anomaly score of the customer's transactions
in the 30 days before ``as_of``, "review" at or above the model's threshold, the top three in detail).
A model never trained is skipped and said so in the report, not guessed.
:func:`write_insights` writes them to the store in batches.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.insights import Insight
from c360.graph.models import aware
from c360.graph.store import GraphStore
from c360.ml.anomaly import ARTIFACT as ANOMALY
from c360.ml.anomaly import score_transactions, transaction_features, validate_anomaly
from c360.ml.artifacts import ArtifactInfo, load_artifact, save_artifact
from c360.ml.churn import score_churn, train_churn
from c360.ml.clusters import Clustering, assign_clusters, fit_clusters
from c360.ml.clv import score_clv, train_clv
from c360.ml.features import FeatureMatrix, compute_features
from c360.ml.nba import Rule, best_channels, mine_rules, recommend_products

Progress = Callable[[str], None]

#: The models :func:`train_models` fits, in order, and the artifact name of each.
MODELS: tuple[str, ...] = ("churn", "clv", "clusters", "basket_rules", ANOMALY)
#: The days before ``as_of`` whose transactions make a customer's ``transaction_anomaly``.
ANOMALY_DAYS = 30
#: Insights written per store call.
WRITE_BATCH = 5_000


def _quiet(_line: str) -> None:
    return None


@dataclass(frozen=True)
class TrainReport:
    """The artifacts a training run saved, the models it could not train (and why) and its time."""

    artifacts: Mapping[str, ArtifactInfo]
    skipped: Mapping[str, str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """For ``--json`` and the audit trail."""
        return {
            "artifacts": {
                name: {"version": info.tag, "metrics": dict(info.metrics), "path": str(info.path)}
                for name, info in self.artifacts.items()
            },
            "skipped": dict(self.skipped),
            "seconds": round(self.seconds, 3),
        }


def train_models(
    con: duckdb.DuckDBPyConnection,
    models_dir: Path,
    *,
    as_of: datetime,
    window_days: int = 90,
    seed: int = 0,
    only: Collection[str] | None = None,
    progress: Progress = _quiet,
) -> TrainReport:
    """Fit and save every model of :data:`MODELS` (or ``only`` those) on the snapshot as of ``as_of``.

    A model the data cannot support (too few customers, one class only) is skipped with the reason; the
    others still train. Unknown names in ``only`` are an :class:`InvalidInputError`.
    """
    aware("as_of", as_of)
    chosen = tuple(MODELS if only is None else only)
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown:
        raise InvalidInputError(f"unknown model {', '.join(unknown)}; known: {', '.join(MODELS)}")
    started = time.monotonic()
    cutoff = as_of - timedelta(days=2 * window_days)
    saved: dict[str, ArtifactInfo] = {}
    skipped: dict[str, str] = {}
    features: FeatureMatrix | None = None
    for name in chosen:
        progress(f"training {name} ...")
        try:
            info: ArtifactInfo | None
            if name == "churn":
                info = train_churn(
                    con, cutoff=cutoff, window_days=window_days, seed=seed, models_dir=models_dir
                ).artifact
            elif name == "clv":
                info = train_clv(con, cutoff=cutoff, period_days=window_days, seed=seed, models_dir=models_dir).artifact
            elif name == "clusters":
                features = features or compute_features(con, as_of=as_of)
                clustering = fit_clusters(features, seed=seed)
                info = _save_clusters(models_dir, clustering, as_of)
            elif name == ANOMALY:  # validated on the chargeback proxy labels when there are any
                info = validate_anomaly(con, as_of=as_of, seed=seed, models_dir=models_dir).artifact
            else:
                rules = mine_rules(con)
                if not rules:
                    raise InvalidInputError("no basket rule passes the support, confidence and lift thresholds")
                info = save_artifact(
                    models_dir,
                    name="basket_rules",
                    model=rules,
                    metadata={"as_of": as_of, "rules": len(rules), "kind": "one-to-one association rules"},
                    metrics={"best_lift": max(r.lift for r in rules), "rules": len(rules)},
                )
        except InvalidInputError as error:
            skipped[name] = str(error)
            progress(f"  {name} skipped: {error}")
            continue
        assert info is not None  # every trainer above was given models_dir
        saved[name] = info
        progress(f"  {name} saved as {info.tag}")
    return TrainReport(saved, skipped, time.monotonic() - started)


def _save_clusters(models_dir: Path, clustering: Clustering, as_of: datetime) -> ArtifactInfo:
    kept = dataclasses.replace(clustering, assignments={})  # the model, scaler and descriptions; not the members
    return save_artifact(
        models_dir,
        name="clusters",
        model=kept,
        metadata={
            "as_of": as_of,
            "k": clustering.k,
            "clusters": [{"label": c.label, "size": c.size, "description": c.description} for c in clustering.clusters],
        },
        metrics={
            "silhouette": clustering.silhouette,
            "silhouettes": {str(k): v for k, v in clustering.silhouettes.items()},
        },
    )


@dataclass(frozen=True)
class ScoreReport:
    """What scoring produced: insights per name, the model version of each, models not found."""

    counts: Mapping[str, int]
    models: Mapping[str, str]
    missing: Mapping[str, str]
    customers: int
    seconds: float
    written: int = 0

    def to_json(self) -> dict[str, Any]:
        """For ``--json`` and the audit trail."""
        return {
            "customers": self.customers,
            "insights": dict(self.counts),
            "models": dict(self.models),
            "missing": dict(self.missing),
            "written": self.written,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Scored:
    insights: list[Insight] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, model: str, items: Sequence[Insight]) -> None:
        self.insights.extend(items)
        self.counts[name] = len(items)
        self.models[name] = model


def _latest(models_dir: Path, name: str, scored: _Scored) -> tuple[Any, ArtifactInfo] | None:
    try:
        return load_artifact(models_dir, name)
    except NotFoundError as error:
        scored.missing[name] = str(error)
        return None


def score_customers(
    con: duckdb.DuckDBPyConnection,
    models_dir: Path,
    *,
    as_of: datetime,
    consented_channels: Mapping[str, Collection[str]],
    progress: Progress = _quiet,
) -> tuple[list[Insight], ScoreReport]:
    """Every snapshot customer's insights as of ``as_of`` from the latest artifacts.

    ``consented_channels`` maps customer ids to the channels they consented to for marketing (decided by
    the kernel's consent rules; see :mod:`c360.ml.consent_facts`); ``next_channel`` is chosen among them
    only, and a customer without any gets no ``next_channel``.
    """
    aware("as_of", as_of)
    started = time.monotonic()
    scored = _Scored()
    features = compute_features(con, as_of=as_of)
    progress(f"features of {len(features.customer_ids):,} customers as of {as_of.isoformat()}")
    if (churn := _latest(models_dir, "churn", scored)) is not None:
        pipeline, info = churn
        threshold = float(info.metadata.get("threshold", 0.5))
        window = info.metadata.get("window_days")
        ordered = features.column("frequency") > 0  # the model learnt on customers who had ordered
        subset = _rows(features, [cid for cid, o in zip(features.customer_ids, ordered, strict=True) if o])
        scored.add(
            "churn",
            info.tag,
            [
                Insight(
                    cid,
                    "churn",
                    info.tag,
                    as_of,
                    score=p,
                    label="likely to churn" if p >= threshold else "likely to stay",
                    detail={"threshold": threshold, "window_days": window},
                )
                for cid, p in score_churn(pipeline, subset).items()
            ],
        )
    if (clv := _latest(models_dir, "clv", scored)) is not None:
        pipeline, info = clv
        period = info.metadata.get("period_days")
        scored.add(
            "clv",
            info.tag,
            [
                Insight(cid, "clv", info.tag, as_of, score=max(0.0, v), detail={"period_days": period})
                for cid, v in score_clv(pipeline, features).items()
                if math.isfinite(v)
            ],
        )
    if (clusters := _latest(models_dir, "clusters", scored)) is not None:
        clustering, info = clusters
        words = {c.label: c.description for c in clustering.clusters}
        scored.add(
            "cluster",
            info.tag,
            [
                Insight(cid, "cluster", info.tag, as_of, label=words.get(label), detail={"cluster": label})
                for cid, label in assign_clusters(clustering, features).items()
            ],
        )
    scored_rfm = _rfm_insights(con, as_of)
    if scored_rfm is None:
        scored.missing["rfm"] = "the snapshot has no rfm table: run c360 ml rfm"
    else:
        scored.add("rfm", f"rfm@{as_of.date().isoformat()}", scored_rfm)
    if (basket := _latest(models_dir, "basket_rules", scored)) is not None:
        rules, info = basket
        recommended = recommend_products(con, _rules(rules))
        scored.add(
            "next_products",
            info.tag,
            [
                Insight(
                    cid,
                    "next_products",
                    info.tag,
                    as_of,
                    score=recs[0].confidence,
                    label=recs[0].product_id,
                    detail={"products": [dataclasses.asdict(r) for r in recs]},
                )
                for cid, recs in recommended.items()
            ],
        )
    if (anomaly := _latest(models_dir, ANOMALY, scored)) is not None:
        scored.add(ANOMALY, anomaly[1].tag, _anomaly_insights(con, *anomaly, as_of=as_of))
    known = set(features.customer_ids)
    channels = best_channels(con, {c: ch for c, ch in consented_channels.items() if c in known}, as_of=as_of)
    tag = f"channel@{as_of.date().isoformat()}"
    scored.add(
        "next_channel",
        tag,
        [
            Insight(
                cid,
                "next_channel",
                tag,
                as_of,
                score=float(choice.engagement),
                label=choice.channel,
                detail={"reason": choice.reason, "purpose": "marketing"},
            )
            for cid, choice in channels.items()
            if choice is not None
        ],
    )
    for name, count in scored.counts.items():
        progress(f"  {name}: {count:,} customers ({scored.models[name]})")
    report = ScoreReport(
        scored.counts, scored.models, scored.missing, len(features.customer_ids), time.monotonic() - started
    )
    return scored.insights, report


def _rows(features: FeatureMatrix, ids: list[str]) -> FeatureMatrix:
    index = features.rows(ids)
    return FeatureMatrix(
        as_of=features.as_of, customer_ids=tuple(ids), names=features.names, values=features.values[index]
    )


def _anomaly_insights(
    con: duckdb.DuckDBPyConnection, pipeline: Any, info: ArtifactInfo, *, as_of: datetime
) -> list[Insight]:
    threshold = float(info.metadata["threshold"])
    recent = score_transactions(
        pipeline, transaction_features(con, as_of=as_of), since=as_of - timedelta(days=ANOMALY_DAYS)
    )
    return [
        Insight(
            cid,
            ANOMALY,
            info.tag,
            as_of,
            score=flagged[0].score,
            label="review" if flagged[0].score >= threshold else "normal",
            detail={
                "threshold": threshold,
                "days": ANOMALY_DAYS,
                "top": [
                    {"transaction": f"{f.key[0]}|{f.key[1]}", "score": f.score, "stands_out": list(f.stand_out)}
                    for f in flagged[:3]
                ],
            },
        )
        for cid, flagged in recent.items()
    ]


def _rules(model: Any) -> tuple[Rule, ...]:
    if not isinstance(model, tuple) or not all(isinstance(r, Rule) for r in model):
        raise InvalidInputError("the basket_rules artifact does not hold association rules")
    return model


def _rfm_insights(con: duckdb.DuckDBPyConnection, as_of: datetime) -> list[Insight] | None:
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "rfm" not in tables:
        return None
    rows = con.execute(
        "SELECT customer_id, rfm_segment, r, f, m, recency_days, frequency, CAST(monetary AS DOUBLE) FROM rfm"
    ).fetchall()
    tag = f"rfm@{as_of.date().isoformat()}"
    return [
        Insight(
            cid,
            "rfm",
            tag,
            as_of,
            label=segment,
            detail={"r": r, "f": f, "m": m, "recency_days": days, "frequency": freq, "monetary": money},
        )
        for cid, segment, r, f, m, days, freq, money in rows
    ]


def write_insights(store: GraphStore, insights: Sequence[Insight], *, progress: Progress = _quiet) -> int:
    """Write ``insights`` to the store in batches of :data:`WRITE_BATCH`; returns how many were written."""
    written = 0
    for start in range(0, len(insights), WRITE_BATCH):
        written += store.put_insights(insights[start : start + WRITE_BATCH])
        progress(f"  wrote {min(start + WRITE_BATCH, len(insights)):,} of {len(insights):,} insights")
    return written
