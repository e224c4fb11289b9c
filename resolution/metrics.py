"""Pairwise clustering metrics: how well predicted customers match the ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PairwiseScores:
    """Pairwise precision, recall and F1, with the pair counts behind them."""

    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        """Share of predicted same-customer pairs that are the same person (1.0 when none predicted)."""
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of same-person pairs that were put in one customer (1.0 when there are none)."""
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(sizes: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes.values())


def pairwise(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable]) -> PairwiseScores:
    """Compare two clusterings of the same items (item -> cluster); items missing from either are ignored.

    Counted without listing pairs: the pairs two clusterings agree on are the pairs within each
    (true cluster, predicted cluster) intersection.
    """
    items = truth.keys() & predicted.keys()
    true_sizes = Counter(truth[i] for i in items)
    predicted_sizes = Counter(predicted[i] for i in items)
    both = Counter((truth[i], predicted[i]) for i in items)
    return PairwiseScores(_pairs(true_sizes), _pairs(predicted_sizes), _pairs(both))
