"""Lookalike audiences: score every customer outside a seed segment by how much they resemble it.

Two methods, both on tail-compressed, standardised features: ``logistic`` fits seed against everyone
else (class-balanced) and scores the probability of "seed"; ``centroid`` scores ``1 / (1 + d)`` with
``d`` the distance to the seed's centroid. The lift report hides part of the seed, fits on the rest,
and counts how many hidden members land in the top N of the non-seed customers, against the number
expected if the top N were drawn at random.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from c360.graph.errors import InvalidInputError
from c360.ml.features import FeatureMatrix, transform
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

Method = Literal["logistic", "centroid"]
METHODS: tuple[str, ...] = ("logistic", "centroid")


@dataclass(frozen=True)
class Lookalike:
    """One customer outside the seed and how much they resemble it (higher is closer)."""

    customer_id: str
    score: float


@dataclass(frozen=True)
class LiftReport:
    """How many hidden seed members the top N found, against the number expected at random."""

    hidden: int
    candidates: int
    top_n: int
    found: int
    expected_at_random: float
    lift: float


@dataclass(frozen=True)
class LookalikeAudience:
    """The top N lookalikes of a seed, best first, with the lift report of the method on this seed."""

    method: str
    seed_size: int
    members: tuple[Lookalike, ...]
    lift: LiftReport | None


def _scores(
    x: npt.NDArray[np.float64], seed: npt.NDArray[np.bool_], method: str, rng_seed: int
) -> npt.NDArray[np.float64]:
    """Likeness of every row to the seed rows of ``x``."""
    z = StandardScaler().fit_transform(transform(x))
    if method == "centroid":
        distance = np.linalg.norm(z - z[seed].mean(axis=0), axis=1)
        return np.asarray(1.0 / (1.0 + distance), dtype=np.float64)
    model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=rng_seed)
    model.fit(z, seed.astype(np.int64))
    return np.asarray(model.predict_proba(z)[:, 1], dtype=np.float64)


def _top(scores: npt.NDArray[np.float64], candidates: npt.NDArray[np.intp], top_n: int) -> npt.NDArray[np.intp]:
    """The ``top_n`` candidates by score, best first (ties: the lower row)."""
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:top_n]]


def find_lookalikes(
    features: FeatureMatrix,
    seed: Collection[str],
    *,
    top_n: int,
    method: Method = "logistic",
    holdout_fraction: float = 0.2,
    rng_seed: int = 0,
) -> LookalikeAudience:
    """The ``top_n`` customers most like ``seed`` (seed members excluded), with a holdout lift report.

    ``holdout_fraction`` of the seed is hidden for the lift report (0 skips it).
    """
    if method not in METHODS:
        raise InvalidInputError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not isinstance(top_n, int) or top_n < 1:
        raise InvalidInputError(f"top_n must be a positive integer, got {top_n!r}")
    if not 0.0 <= holdout_fraction < 1.0:
        raise InvalidInputError(f"holdout_fraction must be in [0, 1), got {holdout_fraction!r}")
    members = sorted(set(seed))
    if len(members) < 2:
        raise InvalidInputError(f"a seed needs at least 2 customers, got {len(members)}")
    rows = features.rows(members)
    n = len(features.customer_ids)
    if len(rows) >= n:
        raise InvalidInputError("the seed holds every customer: there is no one left to score")
    in_seed = np.zeros(n, dtype=np.bool_)
    in_seed[rows] = True

    lift = None
    if holdout_fraction > 0:
        rng = np.random.default_rng(rng_seed)
        hidden_count = round(len(rows) * holdout_fraction)
        if hidden_count < 1 or len(rows) - hidden_count < 2:
            raise InvalidInputError(
                f"a seed of {len(rows)} cannot hide {holdout_fraction:.0%} and keep 2 to learn from; "
                "pass holdout_fraction=0 to skip the lift report"
            )
        hidden = rng.choice(rows, size=hidden_count, replace=False)
        visible = in_seed.copy()
        visible[hidden] = False
        candidates = np.flatnonzero(~visible)
        top = _top(_scores(features.values, visible, method, rng_seed), candidates, top_n)
        found = int(np.isin(top, hidden).sum())
        expected = len(top) * hidden_count / len(candidates)
        lift = LiftReport(
            hidden=hidden_count,
            candidates=len(candidates),
            top_n=len(top),
            found=found,
            expected_at_random=expected,
            lift=found / expected,
        )

    scores = _scores(features.values, in_seed, method, rng_seed)
    top = _top(scores, np.flatnonzero(~in_seed), top_n)
    return LookalikeAudience(
        method=method,
        seed_size=len(rows),
        members=tuple(Lookalike(customer_id=features.customer_ids[i], score=float(scores[i])) for i in top),
        lift=lift,
    )
