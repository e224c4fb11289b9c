"""Customer lifetime value: a regression of next-period spend on the features known before it.

Training pairs the features as of ``cutoff`` with the spend in ``[cutoff, cutoff + period)``; the
holdout pairs the features as of ``holdout_cutoff`` (default ``cutoff + period``) with the spend of
the period after it, a period the model never saw. The regressor is gradient boosting with a Poisson
loss (spend is non-negative and mostly zero or small). The holdout reports MAE, Spearman's rank
correlation and, for scale, the MAE of two naive forecasts: the training mean and "the last period
again" (the last ``period`` days of spend, when the period is 90 days, ``spend_90d``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
from c360.graph.errors import InvalidInputError
from c360.ml.artifacts import ArtifactInfo, save_artifact
from c360.ml.features import FeatureMatrix, activity_between, compute_features, transform
from scipy.stats import spearmanr  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingRegressor  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import FunctionTransformer  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RegressionMetrics:
    """A spend forecast against the actual spend of a period."""

    count: int
    mae: float
    spearman: float
    actual_total: float
    predicted_total: float
    mae_training_mean: float
    mae_last_period: float | None


@dataclass(frozen=True)
class ClvModel:
    """A trained lifetime-value model, its holdout validation and the artifact it was saved as."""

    pipeline: Any
    period_days: int
    holdout: RegressionMetrics
    artifact: ArtifactInfo | None


def regression_metrics(
    actual: Array, predicted: Array, *, training_mean: float, last_period: Array | None
) -> RegressionMetrics:
    """MAE and Spearman of ``predicted`` against ``actual``, with the MAE of the naive forecasts."""
    constant = len(np.unique(actual)) < 2 or len(np.unique(predicted)) < 2
    rho = float("nan") if constant else float(spearmanr(actual, predicted).statistic)
    return RegressionMetrics(
        count=len(actual),
        mae=float(np.mean(np.abs(actual - predicted))),
        spearman=rho,
        actual_total=float(actual.sum()),
        predicted_total=float(predicted.sum()),
        mae_training_mean=float(np.mean(np.abs(actual - training_mean))),
        mae_last_period=None if last_period is None else float(np.mean(np.abs(actual - last_period))),
    )


def make_pipeline(*, seed: int = 0) -> Any:
    """The lifetime-value pipeline: compress long tails, then Poisson gradient boosting."""
    model = HistGradientBoostingRegressor(
        loss="poisson", max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=seed
    )
    return Pipeline([("tails", FunctionTransformer(transform)), ("model", model)])


def _pairs(con: duckdb.DuckDBPyConnection, at: datetime, period_days: int) -> tuple[FeatureMatrix, Array]:
    features = compute_features(con, as_of=at)
    spend = activity_between(con, features, start=at, end=at + timedelta(days=period_days)).spend
    return features, spend


def train_clv(
    con: duckdb.DuckDBPyConnection,
    *,
    cutoff: datetime,
    period_days: int = 90,
    holdout_cutoff: datetime | None = None,
    seed: int = 0,
    models_dir: Path | None = None,
    threads: int = 1,
) -> ClvModel:
    """Train a next-period spend model and validate it on a later period; artifact ``clv`` if ``models_dir``."""
    if not isinstance(period_days, int) or period_days < 1:
        raise InvalidInputError(f"period_days must be a positive number of days, got {period_days!r}")
    if not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
    later = holdout_cutoff or cutoff + timedelta(days=period_days)
    if later < cutoff + timedelta(days=period_days):
        raise InvalidInputError("the holdout must start after the training period ends")
    x, y = _pairs(con, cutoff, period_days)
    if len(y) < 10 or not (y > 0).any():
        raise InvalidInputError(f"{len(y)} customers, {int((y > 0).sum())} with spend: too few to learn from")
    hx, hy = _pairs(con, later, period_days)
    if len(hy) == 0:
        raise InvalidInputError(f"no customer exists before the holdout cutoff {later.isoformat()}")
    pipeline = make_pipeline(seed=seed)
    with threadpool_limits(limits=threads):
        pipeline.fit(x.values, y)
        predicted = np.asarray(pipeline.predict(hx.values), dtype=np.float64)
    last = hx.column("spend_90d") if period_days == 90 else None
    holdout = regression_metrics(hy, predicted, training_mean=float(y.mean()), last_period=last)
    artifact = None
    if models_dir is not None:
        artifact = save_artifact(
            models_dir,
            name="clv",
            model=pipeline,
            metadata={
                "estimator": "hist_gradient_boosting_poisson",
                "features": list(x.names),
                "cutoff": cutoff,
                "holdout_cutoff": later,
                "period_days": period_days,
                "seed": seed,
                "training_customers": len(y),
                "target": f"spend in the {period_days} days after the cutoff (cancelled and returned orders left out)",
            },
            metrics={"holdout": vars(holdout)},
        )
    return ClvModel(pipeline=pipeline, period_days=period_days, holdout=holdout, artifact=artifact)


def score_clv(pipeline: Any, features: FeatureMatrix) -> dict[str, float]:
    """Predicted spend in the next period per customer of ``features`` (as of the scoring date)."""
    if len(features.customer_ids) == 0:
        return {}
    predicted = pipeline.predict(features.values)
    return {cid: float(v) for cid, v in zip(features.customer_ids, predicted, strict=True)}
