"""Transaction anomaly score (fraud screening): an unsupervised IsolationForest over per-transaction features.

Every feature of a transaction is computed from what was known when it happened: the customer's earlier
transactions (window frames that end at the row before, or time ranges that end at the transaction), so
adding later transactions never changes an earlier row (no look-ahead). Only transactions before
``as_of`` count. The forest never sees labels; the score is how anomalous a transaction is (higher =
more, about 0.3-0.8; 0.5 is the forest's neutral point).

Validation needs labels that production does not have. :func:`validate_anomaly` takes known labels (the
planted ones in tests) or, when none are given, uses **chargebacks as the real-world proxy**: a payment
whose order was later charged back is positive, and the chargeback rows themselves are left out of the
evaluation (their ``kind`` is a feature, so scoring them would grade the label against itself). It reports
k-fold (fit on k-1 folds, score the held-out fold) and a time-based holdout (fit before a cutoff, score
after): ROC AUC, average precision, and precision/recall/F1 at the top-``contamination`` threshold.

The default contamination (1 %) is a review budget chosen from first principles, not fitted to any data:
card fraud and dispute rates are well under 1 % of transactions, so flagging the top 1 % keeps a manual
review queue small while still covering the typical fraud rate. The threshold is the score at that share
of the training transactions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
from c360.graph.errors import InvalidInputError
from c360.graph.models import aware
from c360.ml.artifacts import ArtifactInfo, save_artifact
from sklearn.base import clone  # type: ignore[import-untyped]
from sklearn.ensemble import IsolationForest  # type: ignore[import-untyped]
from sklearn.metrics import average_precision_score, roc_auc_score  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]
from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

Array = npt.NDArray[np.float64]
Key = tuple[str, str]  # (source, transaction_id)

#: The artifact name of the model.
ARTIFACT = "transaction_anomaly"
#: Share of transactions flagged for review (see the module docstring for why 1 %).
CONTAMINATION = 0.01
#: Fewer transactions than this and the forest is not trained.
MIN_TRANSACTIONS = 200
#: A standardised feature at least this far from the mean "stands out" in an insight's detail.
STAND_OUT = 2.0

_CAP_GAP = 90 * 86400.0  # seconds since the previous transaction are capped at 90 days

FEATURES: tuple[str, ...] = (
    "log_amount",
    "amount_vs_median",
    "amount_z",
    "hour_sin",
    "hour_cos",
    "log_seconds_since_previous",
    "new_payment_method",
    "declines_24h",
    "adverse_share",
    "transactions_1h",
    "log_earlier_transactions",
    "is_refund",
    "is_chargeback",
    "is_declined",
)

_SQL = f"""
WITH t AS (
    SELECT source, transaction_id, customer_id, occurred_at, kind, payment_method, status,
           CAST(amount AS DOUBLE) AS amount, epoch(occurred_at) AS ts
    FROM transactions
    WHERE occurred_at < $as_of AND customer_id IS NOT NULL
),
w AS (
    SELECT *,
        median(CASE WHEN kind = 'payment' THEN amount END) OVER earlier AS prior_median,
        avg(CASE WHEN kind = 'payment' THEN amount END) OVER earlier AS prior_mean,
        stddev_pop(CASE WHEN kind = 'payment' THEN amount END) OVER earlier AS prior_std,
        lag(ts) OVER byc AS previous_at,
        count(*) OVER earlier AS earlier_count,
        count(*) FILTER (kind IN ('refund', 'chargeback')) OVER earlier AS earlier_adverse,
        count(*) FILTER (status IN ('declined', 'failed')) OVER last_day AS declines_24h,
        count(*) OVER last_hour AS transactions_1h,
        row_number() OVER (PARTITION BY customer_id, payment_method ORDER BY ts, source, transaction_id)
            AS method_use
    FROM t
    WINDOW byc AS (PARTITION BY customer_id ORDER BY ts, source, transaction_id),
           earlier AS (PARTITION BY customer_id ORDER BY ts, source, transaction_id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           last_day AS (PARTITION BY customer_id ORDER BY ts RANGE BETWEEN 86400 PRECEDING AND CURRENT ROW),
           last_hour AS (PARTITION BY customer_id ORDER BY ts RANGE BETWEEN 3600 PRECEDING AND CURRENT ROW)
)
SELECT source, transaction_id, customer_id, occurred_at,
    ln(1 + greatest(amount, 0)),
    CASE WHEN prior_median > 0 THEN ln(greatest(amount, 0.01) / prior_median) ELSE 0 END,
    CASE WHEN prior_mean IS NULL THEN 0
         ELSE least(greatest((amount - prior_mean) / (coalesce(prior_std, 0) + 0.1 * prior_mean + 1), -20), 20) END,
    sin(2 * pi() * (hour(occurred_at) + minute(occurred_at) / 60.0) / 24),
    cos(2 * pi() * (hour(occurred_at) + minute(occurred_at) / 60.0) / 24),
    ln(1 + least(coalesce(ts - previous_at, {_CAP_GAP}), {_CAP_GAP})),
    CASE WHEN earlier_count > 0 AND method_use = 1 THEN 1 ELSE 0 END,
    declines_24h,
    CASE WHEN earlier_count > 0 THEN earlier_adverse / earlier_count ELSE 0 END,
    transactions_1h,
    ln(1 + earlier_count),
    CASE WHEN kind = 'refund' THEN 1 ELSE 0 END,
    CASE WHEN kind = 'chargeback' THEN 1 ELSE 0 END,
    CASE WHEN status IN ('declined', 'failed') THEN 1 ELSE 0 END
FROM w
ORDER BY occurred_at, source, transaction_id
"""


@dataclass(frozen=True)
class TransactionFeatures:
    """One row per transaction before ``as_of`` (oldest first), a column per name of :data:`FEATURES`."""

    as_of: datetime
    keys: tuple[Key, ...]
    customer_ids: tuple[str, ...]
    occurred_at: tuple[datetime, ...]
    values: Array

    def column(self, name: str) -> Array:
        """The values of feature ``name``."""
        return self.values[:, FEATURES.index(name)]


@dataclass(frozen=True)
class AnomalyMetrics:
    """Scores against labels: ranking quality, and precision/recall/F1 at the review threshold."""

    count: int
    positives: int
    auc: float
    average_precision: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class AnomalyModel:
    """A fitted forest, its review threshold, its validation (None without labels) and its artifact."""

    pipeline: Any
    threshold: float
    contamination: float
    cross_validation: Mapping[str, tuple[float, float]] | None  # metric -> (mean, std) over the folds
    holdout: AnomalyMetrics | None
    labels: str
    artifact: ArtifactInfo | None


def transaction_features(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> TransactionFeatures:
    """The features of every transaction before ``as_of``, each from the customer's earlier history only."""
    aware("as_of", as_of)
    rows = con.execute(_SQL, {"as_of": as_of}).fetchall()
    values = np.array([r[4:] for r in rows], dtype=np.float64).reshape(len(rows), len(FEATURES))
    return TransactionFeatures(
        as_of=as_of,
        keys=tuple((str(r[0]), str(r[1])) for r in rows),
        customer_ids=tuple(str(r[2]) for r in rows),
        occurred_at=tuple(r[3] for r in rows),
        values=np.nan_to_num(values),
    )


def make_forest(*, seed: int = 0) -> Any:
    """Standardise, then an IsolationForest (200 trees; ``contamination='auto'``: the threshold is ours)."""
    forest = IsolationForest(n_estimators=200, contamination="auto", random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("forest", forest)])


def anomaly_scores(pipeline: Any, values: Array) -> Array:
    """How anomalous each row is (the forest's anomaly score, higher = more)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.float64)
    return np.asarray(-pipeline.score_samples(values), dtype=np.float64)


def top_share_threshold(scores: Array, share: float) -> float:
    """The score at or above which the top ``share`` of ``scores`` lies."""
    return float(np.quantile(scores, 1.0 - share))


def anomaly_metrics(labels: Array, scores: Array, *, threshold: float) -> AnomalyMetrics:
    """ROC AUC and average precision of ``scores``; precision, recall and F1 of ``scores >= threshold``."""
    truth = labels.astype(np.int64)
    flagged = scores >= threshold
    positives = int(truth.sum())
    both = 0 < positives < len(truth)
    hits = int((flagged & (truth == 1)).sum())
    precision = hits / int(flagged.sum()) if flagged.any() else 0.0
    recall = hits / positives if positives else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if positives and precision + recall > 0 else 0.0
    return AnomalyMetrics(
        count=len(truth),
        positives=positives,
        auc=float(roc_auc_score(truth, scores)) if both else float("nan"),
        average_precision=float(average_precision_score(truth, scores)) if both else float("nan"),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
    )


def chargeback_labels(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> frozenset[Key]:
    """The proxy labels: payments before ``as_of`` whose order was charged back before ``as_of``."""
    rows = con.execute(
        """
        SELECT p.source, p.transaction_id FROM transactions p
        WHERE p.kind = 'payment' AND p.occurred_at < $as_of AND EXISTS (
            SELECT 1 FROM transactions c WHERE c.kind = 'chargeback' AND c.source = p.source
              AND c.order_id = p.order_id AND c.customer_id = p.customer_id AND c.occurred_at < $as_of)
        """,
        {"as_of": as_of},
    ).fetchall()
    return frozenset((str(s), str(t)) for s, t in rows)


def _check(contamination: float, folds: int, threads: int) -> None:
    if not isinstance(contamination, float | int) or not 0 < contamination < 0.5:
        raise InvalidInputError(f"contamination must be a share in (0, 0.5), got {contamination!r}")
    if not isinstance(folds, int) or folds < 2:
        raise InvalidInputError(f"folds must be at least 2, got {folds!r}")
    if not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")


def validate_anomaly(
    con: duckdb.DuckDBPyConnection,
    labels: Collection[Key] | None = None,
    *,
    as_of: datetime,
    holdout_cutoff: datetime | None = None,
    folds: int = 5,
    contamination: float = CONTAMINATION,
    seed: int = 0,
    models_dir: Path | None = None,
    threads: int = 1,
) -> AnomalyModel:
    """Fit the forest on every transaction before ``as_of``, validate it and save it as ``transaction_anomaly``.

    ``labels`` are the keys ``(source, transaction_id)`` of the known anomalous transactions (every other
    one is normal); None uses the chargeback proxy (:func:`chargeback_labels`). Labels only measure: the
    folds and the holdout fit on features alone. ``holdout_cutoff`` (default: the time of the 80th
    percentile transaction) splits the time-based holdout. When the labels have one class only the model
    is still fitted and saved, with no validation and the reason in its metrics.
    """
    aware("as_of", as_of)
    _check(contamination, folds, threads)
    features = transaction_features(con, as_of=as_of)
    n = len(features.keys)
    if n < MIN_TRANSACTIONS:
        raise InvalidInputError(
            f"{n} transactions before {as_of.isoformat()}; the anomaly model needs {MIN_TRANSACTIONS}"
        )
    source = "given labels" if labels is not None else "chargeback proxy: payments later charged back"
    keys = frozenset(labels) if labels is not None else chargeback_labels(con, as_of=as_of)
    if labels is not None:  # labels after as_of are out of scope; labels of no transaction are a mistake
        every = {(str(s), str(t)) for s, t in con.execute("SELECT source, transaction_id FROM transactions").fetchall()}
        unknown = sorted(k for k in keys if k not in every)
        if unknown:
            raise InvalidInputError(f"{len(unknown)} labelled transactions are not in the snapshot: {unknown[:3]}")
    y = np.array([k in keys for k in features.keys], dtype=np.float64)
    # The proxy grades payments: chargeback rows carry the label in a feature, so they are not graded.
    graded = np.ones(n, dtype=bool) if labels is not None else features.column("is_chargeback") == 0
    with threadpool_limits(limits=threads):
        pipeline = make_forest(seed=seed).fit(features.values)
        threshold = top_share_threshold(anomaly_scores(pipeline, features.values), contamination)
        cross, holdout, reason = None, None, ""
        positives = int(y[graded].sum())
        if min(positives, int(graded.sum()) - positives) < folds:
            reason = (
                f"{positives} anomalous of {int(graded.sum())} graded transactions ({source}); need {folds} of each"
            )
        else:
            cross = _cross_validate(features, y, graded, folds, contamination, seed)
            cutoff = holdout_cutoff or features.occurred_at[int(0.8 * (n - 1))]
            try:
                holdout = _holdout(features, y, graded, cutoff, contamination, seed)
            except InvalidInputError as error:
                if holdout_cutoff is not None:  # a cutoff the caller chose must work
                    raise
                reason = f"no time holdout: {error}"
    artifact = None
    if models_dir is not None:
        artifact = save_artifact(
            models_dir,
            name=ARTIFACT,
            model=pipeline,
            metadata={
                "features": list(FEATURES),
                "as_of": as_of,
                "contamination": contamination,
                "threshold": threshold,
                "folds": folds,
                "seed": seed,
                "training_transactions": n,
                "labels": source,
                "score": "IsolationForest anomaly score (higher = more anomalous); review at or above threshold",
            },
            metrics={
                "cross_validation": cross,
                "holdout": vars(holdout) if holdout is not None else None,
                "not_validated": reason or None,
            },
        )
    return AnomalyModel(pipeline, threshold, float(contamination), cross, holdout, source, artifact)


def _cross_validate(
    features: TransactionFeatures, y: Array, graded: npt.NDArray[np.bool_], folds: int, share: float, seed: int
) -> dict[str, tuple[float, float]]:
    # Stratified so every fold holds positives to measure; the labels never reach the forest.
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    per_fold = []
    for train, test in splitter.split(features.values, y.astype(np.int64)):
        fitted = clone(make_forest(seed=seed)).fit(features.values[train])
        threshold = top_share_threshold(anomaly_scores(fitted, features.values[train]), share)
        test = test[graded[test]]
        per_fold.append(anomaly_metrics(y[test], anomaly_scores(fitted, features.values[test]), threshold=threshold))
    return {
        name: (
            float(np.nanmean([getattr(m, name) for m in per_fold])),
            float(np.nanstd([getattr(m, name) for m in per_fold])),
        )
        for name in ("auc", "average_precision", "precision", "recall", "f1")
    }


def _holdout(
    features: TransactionFeatures, y: Array, graded: npt.NDArray[np.bool_], cutoff: datetime, share: float, seed: int
) -> AnomalyMetrics:
    aware("holdout_cutoff", cutoff)
    before = np.array([t < cutoff for t in features.occurred_at])
    after = ~before & graded
    if before.sum() < MIN_TRANSACTIONS or not after.any():
        raise InvalidInputError(
            f"the holdout cutoff {cutoff.isoformat()} leaves {int(before.sum())} transactions to fit"
            f" (need {MIN_TRANSACTIONS}) and {int(after.sum())} to score"
        )
    fitted = make_forest(seed=seed).fit(features.values[before])
    threshold = top_share_threshold(anomaly_scores(fitted, features.values[before]), share)
    return anomaly_metrics(y[after], anomaly_scores(fitted, features.values[after]), threshold=threshold)


@dataclass(frozen=True)
class Flagged:
    """A scored transaction of a customer, with the features that stand out (standardised, |z| >= 2)."""

    key: Key
    score: float
    stand_out: tuple[str, ...]


def score_transactions(pipeline: Any, features: TransactionFeatures, *, since: datetime) -> dict[str, list[Flagged]]:
    """Each customer's transactions at or after ``since``, scored, most anomalous first."""
    recent = np.array([t >= since for t in features.occurred_at], dtype=bool)
    if not recent.any():
        return {}
    values = features.values[recent]
    scores = anomaly_scores(pipeline, values)
    z = np.abs(pipeline.named_steps["scale"].transform(values))
    keys = [k for k, r in zip(features.keys, recent, strict=True) if r]
    customers = [c for c, r in zip(features.customer_ids, recent, strict=True) if r]
    out: dict[str, list[Flagged]] = {}
    for i in np.argsort(-scores, kind="stable"):
        standing = tuple(FEATURES[j] for j in np.argsort(-z[i], kind="stable") if z[i, j] >= STAND_OUT)
        out.setdefault(customers[i], []).append(Flagged(keys[i], float(scores[i]), standing))
    return out
