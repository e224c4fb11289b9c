"""Churn: will a customer who has ordered place no order in the next ``window_days`` days.

The label comes from the snapshot itself: a customer with at least one order before the cutoff churned
if they placed none in ``[cutoff, cutoff + window)``. Training uses the features as of ``cutoff``;
the time-based holdout uses the features as of ``holdout_cutoff`` (default ``cutoff + window``) and
the labels of the window after it, so it scores a later period the model never saw. Stratified k-fold
cross-validation on the training set picks the decision threshold (best F1 over the out-of-fold
probabilities) and reports the spread of every metric over the folds. The model, its metrics and the
calibration (Brier score, reliability bins) are saved together as a versioned artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt
from c360.graph.errors import InvalidInputError
from c360.ml.artifacts import ArtifactInfo, save_artifact
from c360.ml.features import FeatureMatrix, activity_between, compute_features, transform
from sklearn.base import clone  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

Estimator = Literal["logistic", "gradient_boosting"]
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReliabilityBin:
    """Customers whose predicted probability fell in ``[low, high)``: mean prediction vs observed rate."""

    low: float
    high: float
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class ClassificationMetrics:
    """Scores of probabilities against labels at a decision threshold."""

    count: int
    positive_rate: float
    auc: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    brier: float
    reliability: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class ChurnModel:
    """A trained churn model: the pipeline, its threshold, validation and the artifact it was saved as."""

    pipeline: Any
    threshold: float
    window_days: int
    cross_validation: Mapping[str, tuple[float, float]]  # metric -> (mean, std) over the folds
    holdout: ClassificationMetrics
    artifact: ArtifactInfo | None


def reliability_bins(labels: Array, probabilities: Array, *, bins: int = 10) -> tuple[ReliabilityBin, ...]:
    """Equal-width probability bins with their counts (empty bins are left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                ReliabilityBin(
                    low=float(edges[b]),
                    high=float(edges[b + 1]),
                    count=int(mask.sum()),
                    mean_predicted=float(probabilities[mask].mean()),
                    observed_rate=float(labels[mask].mean()),
                )
            )
    return tuple(out)


def classification_metrics(labels: Array, probabilities: Array, *, threshold: float) -> ClassificationMetrics:
    """AUC, accuracy, precision, recall, F1 (at ``threshold``), Brier score and reliability bins."""
    predicted = (probabilities >= threshold).astype(np.int64)
    truth = labels.astype(np.int64)
    both = len(np.unique(truth)) == 2
    return ClassificationMetrics(
        count=len(truth),
        positive_rate=float(truth.mean()) if len(truth) else float("nan"),
        auc=float(roc_auc_score(truth, probabilities)) if both else float("nan"),
        accuracy=float(accuracy_score(truth, predicted)),
        precision=float(precision_score(truth, predicted, zero_division=0)),
        recall=float(recall_score(truth, predicted, zero_division=0)),
        f1=float(f1_score(truth, predicted, zero_division=0)),
        brier=float(brier_score_loss(truth, probabilities)),
        reliability=reliability_bins(labels, probabilities),
    )


def best_threshold(labels: Array, probabilities: Array) -> float:
    """The probability cut with the highest F1 (predict churn at or above it)."""
    order = np.argsort(-probabilities, kind="stable")
    scores, truth = probabilities[order], labels[order]
    true_pos = np.cumsum(truth)
    predicted = np.arange(1, len(truth) + 1)
    f1 = 2 * true_pos / (predicted + truth.sum())
    # Only cut between distinct scores: a cut takes every customer at or above it.
    last_of_run = np.append(scores[1:] != scores[:-1], True)
    if not last_of_run.any() or truth.sum() == 0:
        return 0.5
    best = int(np.argmax(np.where(last_of_run, f1, -1.0)))
    return float(scores[best])


def make_pipeline(estimator: Estimator = "logistic", *, seed: int = 0) -> Any:
    """The churn pipeline: compress long tails, standardise, then a classifier."""
    if estimator == "logistic":
        model: Any = LogisticRegression(max_iter=2000, C=1.0)
    elif estimator == "gradient_boosting":
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
    else:
        raise InvalidInputError(f"unknown estimator {estimator!r}; expected logistic or gradient_boosting")
    return Pipeline([("tails", FunctionTransformer(transform)), ("scale", StandardScaler()), ("model", model)])


def churn_labels(con: duckdb.DuckDBPyConnection, *, cutoff: datetime, window_days: int) -> tuple[FeatureMatrix, Array]:
    """Features as of ``cutoff`` of customers who ordered before it, and 1.0 where they then churned."""
    if not isinstance(window_days, int) or window_days < 1:
        raise InvalidInputError(f"window_days must be a positive number of days, got {window_days!r}")
    features = compute_features(con, as_of=cutoff)
    ordered = features.column("frequency") > 0
    features = FeatureMatrix(
        as_of=features.as_of,
        customer_ids=tuple(c for c, keep in zip(features.customer_ids, ordered, strict=True) if keep),
        names=features.names,
        values=features.values[ordered],
    )
    later = activity_between(con, features, start=cutoff, end=cutoff + timedelta(days=window_days))
    return features, (later.orders == 0).astype(np.float64)


def _check_labels(labels: Array, what: str, folds: int) -> None:
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if min(positives, negatives) < folds:
        raise InvalidInputError(
            f"{what}: {positives} churned and {negatives} retained customers; each needs at least {folds}"
        )


def train_churn(
    con: duckdb.DuckDBPyConnection,
    *,
    cutoff: datetime,
    window_days: int = 90,
    holdout_cutoff: datetime | None = None,
    folds: int = 5,
    estimator: Estimator = "logistic",
    seed: int = 0,
    models_dir: Path | None = None,
    threads: int = 1,
) -> ChurnModel:
    """Train, cross-validate and hold out a churn model; saved as artifact ``churn`` when ``models_dir`` is given.

    ``threads`` caps the native thread pools while fitting (OpenMP spins badly on a busy, shared machine).
    """
    if not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
    with threadpool_limits(limits=threads):
        return _train(con, cutoff, window_days, holdout_cutoff, folds, estimator, seed, models_dir)


def _train(
    con: duckdb.DuckDBPyConnection,
    cutoff: datetime,
    window_days: int,
    holdout_cutoff: datetime | None,
    folds: int,
    estimator: Estimator,
    seed: int,
    models_dir: Path | None,
) -> ChurnModel:
    if not isinstance(folds, int) or folds < 2:
        raise InvalidInputError(f"folds must be at least 2, got {folds!r}")
    later = holdout_cutoff or cutoff + timedelta(days=window_days)
    if later < cutoff + timedelta(days=window_days):
        raise InvalidInputError("the holdout must start after the training label window ends")
    x, y = churn_labels(con, cutoff=cutoff, window_days=window_days)
    _check_labels(y, "training", folds)
    hx, hy = churn_labels(con, cutoff=later, window_days=window_days)
    if len(hy) == 0:
        raise InvalidInputError(f"no customer has ordered before the holdout cutoff {later.isoformat()}")
    pipeline = make_pipeline(estimator, seed=seed)
    out_of_fold = np.zeros(len(y), dtype=np.float64)
    fold_of = np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(x.values, y.astype(np.int64))):
        fitted = clone(pipeline).fit(x.values[train], y[train].astype(np.int64))
        out_of_fold[test] = fitted.predict_proba(x.values[test])[:, 1]
        fold_of[test] = k
    threshold = best_threshold(y, out_of_fold)
    per_fold = [
        classification_metrics(y[fold_of == k], out_of_fold[fold_of == k], threshold=threshold) for k in range(folds)
    ]
    cross = {
        name: (
            float(np.mean([getattr(m, name) for m in per_fold])),
            float(np.std([getattr(m, name) for m in per_fold])),
        )
        for name in ("auc", "accuracy", "precision", "recall", "f1", "brier")
    }
    pipeline.fit(x.values, y.astype(np.int64))
    holdout = classification_metrics(hy, pipeline.predict_proba(hx.values)[:, 1], threshold=threshold)
    artifact = None
    if models_dir is not None:
        artifact = save_artifact(
            models_dir,
            name="churn",
            model=pipeline,
            metadata={
                "estimator": estimator,
                "features": list(x.names),
                "cutoff": cutoff,
                "holdout_cutoff": later,
                "window_days": window_days,
                "folds": folds,
                "seed": seed,
                "threshold": threshold,
                "training_customers": len(y),
                "label": f"no order in the {window_days} days after the cutoff, among customers who had ordered",
            },
            metrics={"cross_validation": cross, "holdout": _metrics_json(holdout)},
        )
    return ChurnModel(
        pipeline=pipeline,
        threshold=threshold,
        window_days=window_days,
        cross_validation=cross,
        holdout=holdout,
        artifact=artifact,
    )


def _metrics_json(m: ClassificationMetrics) -> dict[str, Any]:
    return {
        "count": m.count,
        "positive_rate": m.positive_rate,
        "auc": m.auc,
        "accuracy": m.accuracy,
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "brier": m.brier,
        "reliability": [vars(b) for b in m.reliability],
    }


def score_churn(pipeline: Any, features: FeatureMatrix) -> dict[str, float]:
    """Churn probability per customer of ``features`` (compute them as of the scoring date)."""
    if len(features.customer_ids) == 0:
        return {}
    probabilities = pipeline.predict_proba(features.values)[:, 1]
    return {cid: float(p) for cid, p in zip(features.customer_ids, probabilities, strict=True)}
