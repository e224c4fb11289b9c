"""k-means segments with k chosen by silhouette, described by their centroids in a marketer's words.

Features are tail-compressed (``log1p``) and standardised, then k-means runs for every k in a range;
the k with the best silhouette (on a fixed random sample when there are many customers) wins. Each
centroid is read in standard deviations from the average customer: the measures furthest from
average, beyond half a deviation, name the cluster ("high spend, frequent, recent").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from c360.graph.errors import InvalidInputError
from c360.ml.features import FeatureMatrix, transform
from sklearn.cluster import KMeans  # type: ignore[import-untyped]
from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

#: Words for a measure well above / well below average.
WORDS: Mapping[str, tuple[str, str]] = {
    "monetary": ("high spend", "low spend"),
    "frequency": ("frequent", "infrequent"),
    "recency_days": ("lapsed", "recent"),
    "avg_order_value": ("large baskets", "small baskets"),
    "tenure_days": ("long-standing", "new"),
    "orders_90d": ("ordering lately", "not ordering lately"),
    "spend_90d": ("spending lately", "not spending lately"),
    "views_30d": ("browsing a lot", "rarely browsing"),
    "favourites_30d": ("saving favourites", "no favourites"),
    "carts_30d": ("filling carts", "rarely carting"),
    "sessions_30d": ("visiting often", "rarely visiting"),
    "views_90d": ("browsed a lot lately", "browsed little lately"),
    "carts_90d": ("carted a lot lately", "carted little lately"),
    "distinct_categories": ("buying across categories", "buying in few categories"),
    "refunds": ("often refunded", "rarely refunded"),
}

#: A centroid this many standard deviations from average is worth a word.
NOTABLE = 0.5


@dataclass(frozen=True)
class Cluster:
    """One k-means segment: its size, its centroid (in the features' own units) and a description."""

    label: int
    size: int
    description: str
    centroid: Mapping[str, float]
    z_scores: Mapping[str, float]


@dataclass(frozen=True)
class Clustering:
    """The chosen k-means model: k, its silhouette, every k tried, the clusters and each customer's cluster."""

    k: int
    silhouette: float
    silhouettes: Mapping[int, float]
    clusters: tuple[Cluster, ...]
    assignments: Mapping[str, int]
    model: Any
    scaler: Any


def describe(z_scores: Mapping[str, float], *, words: int = 3) -> str:
    """The measures furthest from average (beyond :data:`NOTABLE`), in words, furthest first."""
    notable = sorted(
        ((abs(z), name, z) for name, z in z_scores.items() if name in WORDS and abs(z) >= NOTABLE),
        key=lambda item: (-item[0], item[1]),
    )
    # Two measures saying the same ("frequent", "ordering lately") are kept: each is true of the segment.
    phrases = [WORDS[name][0] if z > 0 else WORDS[name][1] for _, name, z in notable[:words]]
    return ", ".join(phrases) if phrases else "average on every measure"


def fit_clusters(
    features: FeatureMatrix,
    *,
    k_range: range = range(2, 9),
    seed: int = 0,
    sample_size: int = 5000,
    threads: int = 1,
) -> Clustering:
    """Cluster the customers of ``features`` with the k of ``k_range`` that has the best silhouette."""
    n = len(features.customer_ids)
    if len(k_range) == 0 or k_range.start < 2 or k_range.step < 1:
        raise InvalidInputError(f"k_range must be increasing and start at 2 or more, got {k_range!r}")
    if not isinstance(threads, int) or threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
    if n <= k_range.start:
        raise InvalidInputError(f"{n} customers cannot form {k_range.start} clusters")
    scaler = StandardScaler()
    x = scaler.fit_transform(transform(features.values))
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(n, sample_size), replace=False)
    silhouettes: dict[int, float] = {}
    fitted: dict[int, Any] = {}
    with threadpool_limits(limits=threads):
        for k in k_range:
            if k >= n:
                break
            model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
            labels = model.labels_[sample]
            if len(np.unique(labels)) < 2:
                continue
            silhouettes[k] = float(silhouette_score(x[sample], labels))
            fitted[k] = model
    if not silhouettes:
        raise InvalidInputError("the customers do not separate into clusters (every feature is constant)")
    best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    model = fitted[best]
    raw_mean = features.values.mean(axis=0)
    clusters = []
    for label in range(best):
        members = model.labels_ == label
        z = model.cluster_centers_[label]
        z_scores = {name: float(v) for name, v in zip(features.names, z, strict=True)}
        # The centroid in real units: the mean of the members (the k-means centroid lives in log space).
        means = features.values[members].mean(axis=0) if members.any() else raw_mean
        clusters.append(
            Cluster(
                label=label,
                size=int(members.sum()),
                description=describe(z_scores),
                centroid={name: float(v) for name, v in zip(features.names, means, strict=True)},
                z_scores=z_scores,
            )
        )
    assignments = {cid: int(label) for cid, label in zip(features.customer_ids, model.labels_, strict=True)}
    return Clustering(
        k=best,
        silhouette=silhouettes[best],
        silhouettes=silhouettes,
        clusters=tuple(clusters),
        assignments=assignments,
        model=model,
        scaler=scaler,
    )


def assign_clusters(clustering: Clustering, features: FeatureMatrix) -> dict[str, int]:
    """The cluster of each customer of ``features`` (e.g. a later date's) under a fitted clustering."""
    if features.names != tuple(clustering.clusters[0].centroid):
        raise InvalidInputError("the features do not have the columns the clustering was fitted on")
    if len(features.customer_ids) == 0:
        return {}
    labels = clustering.model.predict(clustering.scaler.transform(transform(features.values)))
    return {cid: int(label) for cid, label in zip(features.customer_ids, labels, strict=True)}
