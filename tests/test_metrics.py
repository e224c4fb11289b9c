from __future__ import annotations

from itertools import combinations

from c360.resolution.metrics import pairwise


def test_pairwise_counts_match_listing_the_pairs() -> None:
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z", "f": "z", "g": "z"}  # g: not in truth

    def pairs(m: dict[str, object]) -> set[frozenset[str]]:
        keys = sorted(m.keys() & truth.keys() & predicted.keys())
        return {frozenset(p) for p in combinations(keys, 2) if m[p[0]] == m[p[1]]}

    t, p = pairs(truth), pairs(predicted)  # type: ignore[arg-type]
    s = pairwise(truth, predicted)
    assert (s.true_pairs, s.predicted_pairs, s.correct_pairs) == (len(t), len(p), len(t & p)) == (4, 3, 1)
    assert abs(s.precision - 1 / 3) < 1e-12 and abs(s.recall - 1 / 4) < 1e-12
    assert abs(s.f1 - 2 * (1 / 3) * (1 / 4) / (1 / 3 + 1 / 4)) < 1e-12
    assert pairwise({}, {}).f1 == 1.0
