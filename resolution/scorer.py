"""The real-time scorer: Splink's match weight for one pair of records, computed in Python.

It uses the trained model's m and u probabilities and term-frequency tables, and the comparison levels of
its :class:`~c360.resolution.specification.Specification`, so no Splink or DuckDB call is made per record. The weight is
Splink 5's::

    weight = log2(p / (1 - p)) + sum over comparisons of (level weight + tf adjustment)
    level weight = 0 for the null level, else log2(max(m, 1e-300) / max(u, 1e-300))
    tf adjustment = log2(u of the exact level) - log2(max(tf_l, tf_r, tf_minimum_u_value))
                    (tf-adjusted levels only, when either value has a term frequency)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from c360.graph.errors import ConfigError

from .specification import Comparison, Specification

_CLAMP = 1e-300
_NOT_OBSERVED = "level not observed in training dataset"
_SLACK = 1e-9  # summation order differs from score(): never prune a pair within rounding of the floor


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one comparison adds to a pair's weight."""

    comparison: str
    level: str
    weight: float
    tf_adjustment: float


@dataclass(frozen=True, slots=True)
class Score:
    """A pair's match weight, probability and the contribution of each comparison."""

    match_weight: float
    match_probability: float
    prior_weight: float
    contributions: tuple[Contribution, ...]


#: What the evidence of a link made by an approved pattern says.
APPROVED_NOTE = "stewards approved every pair of this pattern"
#: A pair's comparison levels, one label per comparison in the specification's order.
Pattern = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Verdicts:
    """Agreement patterns stewards decided alike: ``link`` ones link, ``never`` ones are not asked again.

    Both apply from the lower threshold up. The model treats its comparisons as independent; a pattern's
    own decisions show what it means on this data (a household shares a surname, an address and a
    phone; a typo-ridden duplicate agrees on little).
    """

    link: frozenset[Pattern] = frozenset()
    never: frozenset[Pattern] = frozenset()

    def __bool__(self) -> bool:
        """Whether stewards decided any pattern (else :meth:`of` is always ``None``)."""
        return bool(self.link or self.never)

    def of(self, score: Score) -> bool | None:
        """``True`` if stewards approved every pair with ``score``'s pattern, ``False`` if they rejected every one."""
        if not self:  # the usual case, on the hot path: no pattern to build
            return None
        pattern = pattern_of(score)
        return True if pattern in self.link else False if pattern in self.never else None

    def to_json(self) -> dict[str, list[list[str]]]:
        """The verdicts as the model summary keeps them."""
        return {"link": sorted(map(list, self.link)), "never": sorted(map(list, self.never))}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Verdicts:
        """Read :meth:`to_json`; an absent entry (an older model) is no verdicts."""
        data = data or {}
        return cls(frozenset(map(tuple, data.get("link", ()))), frozenset(map(tuple, data.get("never", ()))))


def pattern_of(score: Score) -> Pattern:
    """The agreement pattern of a scored pair: ``comparison: level`` per comparison."""
    return tuple(f"{c.comparison}: {c.level}" for c in score.contributions)


def _probability(value: Any, default: float) -> float:
    # As Splink reads a level's m or u: unobserved levels get 1e-6, untrained ones the default.
    if value == _NOT_OBSERVED:
        return 1e-6
    return default if value is None else float(value)


def _default_m(levels: int) -> list[float]:
    """Splink's default m of each comparison vector value (0 = ELSE ... levels-1 = best)."""
    rest = (1 - 0.95) / (levels - 1)
    return [rest] * (levels - 1) + [0.95]


def _default_u(levels: int) -> list[float]:
    """Splink's default u, from default match weights spread from -5 to 3, and 10 for the best level."""
    if levels == 2:
        weights = [-5.0]
    else:
        step = (3 - -5) / (levels - 2)
        weights = [-5 + i * step for i in range(levels - 1)]
    weights.append(10)
    return [m / 2**w for m, w in zip(_default_m(levels), weights, strict=True)]


@dataclass(frozen=True, slots=True)
class _LevelWeights:
    label: str
    weight: float
    tf_column: str | None
    tf_weight: float
    tf_minimum: float
    log2_u_exact: float


class Scorer:
    """Scores pairs of comparison views (:func:`c360.resolution.features.features`) with a trained model."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        tf_tables: Mapping[str, Mapping[str, float]],
        spec: Specification,
        verdicts: Verdicts | None = None,
    ) -> None:
        self.spec = spec
        self.verdicts = verdicts or Verdicts()
        built = spec.built()
        p = float(settings["probability_two_random_records_match"])
        self.prior_weight = math.log2(p / (1 - p))
        self.tf_tables = tf_tables
        trained = {c["output_column_name"]: c for c in settings["comparisons"]}
        self._comparisons: list[tuple[Comparison, list[_LevelWeights]]] = []
        if set(trained) != {c.column for c in built}:
            raise ConfigError("the model's comparisons are not those of its specification; retrain it")
        for comparison in built:
            levels = trained[comparison.column]["comparison_levels"]
            if [lv["sql_condition"] for lv in levels] != [lv.sql for lv in comparison.levels]:
                raise ConfigError(
                    f"the model's comparison {comparison.column!r} does not match this version of c360; retrain it"
                )
            self._comparisons.append((comparison, self._weights(comparison, levels)))
        # For score_at_least: comparisons cheapest first, and the most the ones after each can still add.
        cost = {c.column: i for i, c in enumerate(sorted(built, key=lambda c: c.cost))}
        self._by_cost = sorted(self._comparisons, key=lambda cw: cost[cw[0].column])
        gains = [self._max_gain(w) for _, w in self._by_cost]
        self._headroom = [sum(gains[i + 1 :]) for i in range(len(gains))]

    @staticmethod
    def _weights(spec: Comparison, levels: list[Mapping[str, Any]]) -> list[_LevelWeights]:
        exact_sql = f'"{spec.column}_l" = "{spec.column}_r"'
        n = sum(1 for lv in levels if not lv.get("is_null_level"))
        default_m, default_u = _default_m(n), _default_u(n)
        # Comparison vector values count down from n - 1 for the first non-null level.
        vector: list[int] = []
        counter = n - 1
        for lv in levels:
            null = bool(lv.get("is_null_level"))
            vector.append(-1 if null else counter)
            counter -= 0 if null else 1
        u_exact = next(
            (
                _probability(lv.get("u_probability"), default_u[v])
                for lv, v in zip(levels, vector, strict=True)
                if lv["sql_condition"] == exact_sql
            ),
            None,
        )
        out = []
        for lv, v in zip(levels, vector, strict=True):
            label = lv["label_for_charts"]
            if lv.get("is_null_level"):
                out.append(_LevelWeights(label, 0.0, None, 0.0, 0.0, 0.0))
                continue
            m = _probability(lv.get("m_probability"), default_m[v])
            u = _probability(lv.get("u_probability"), default_u[v])
            weight = math.log2(max(m, _CLAMP) / max(u, _CLAMP))
            tf_column = lv.get("tf_adjustment_column")
            use_tf = tf_column is not None and lv["sql_condition"] != "ELSE" and u_exact is not None
            out.append(
                _LevelWeights(
                    label,
                    weight,
                    tf_column if use_tf else None,
                    # Splink omits a weight of 0 from the JSON and reads it back as 1.0.
                    float(lv.get("tf_adjustment_weight") or 1.0),
                    float(lv.get("tf_minimum_u_value") or 0.0),
                    math.log2(u_exact) if use_tf and u_exact else 0.0,
                )
            )
        return out

    def _max_gain(self, weights: list[_LevelWeights]) -> float:
        """The most one comparison can add to a weight: its best level with its best tf adjustment (or 0)."""
        best = 0.0  # the null level
        for lw in weights:
            adjustments = [0.0]
            table = self.tf_tables.get(lw.tf_column, {}) if lw.tf_column is not None else {}
            if table:
                for tf in (min(table.values()), max(table.values())):
                    adjustments.append(lw.tf_weight * (lw.log2_u_exact - math.log2(max(tf, lw.tf_minimum, _CLAMP))))
            best = max(best, lw.weight + max(adjustments))
        return best

    def level_weights(self, column: str) -> list[float]:
        """The match weight of each level of comparison ``column`` (0 for the null level)."""
        for spec, weights in self._comparisons:
            if spec.column == column:
                return [w.weight for w in weights]
        raise KeyError(column)

    def score(self, left: Mapping[str, Any], right: Mapping[str, Any]) -> Score:
        """Score one pair of comparison views."""
        total = self.prior_weight
        parts = []
        for spec, weights in self._comparisons:
            col = spec.column
            lw = weights[spec.level_of(left, right)]
            tf_adj = 0.0
            if lw.tf_column is not None:
                table = self.tf_tables.get(lw.tf_column, {})
                values = (left.get(lw.tf_column), right.get(lw.tf_column))
                found = [t for v in values if v is not None and (t := table.get(v)) is not None]
                if found:  # the larger term frequency of the two, floored at the model's minimum
                    tf_adj = lw.tf_weight * (lw.log2_u_exact - math.log2(max(*found, lw.tf_minimum)))
            total += lw.weight + tf_adj
            parts.append(Contribution(col, lw.label, lw.weight, tf_adj))
        probability = 1.0 / (1.0 + 2.0 ** (-total)) if total >= 0 else 2.0**total / (1.0 + 2.0**total)
        return Score(total, probability, self.prior_weight, tuple(parts))

    def score_at_least(self, left: Mapping[str, Any], right: Mapping[str, Any], floor: float) -> Score | None:
        """Score one pair, or return ``None`` early when its match weight cannot reach ``floor``.

        Cheap comparisons are tested first; once the weight so far plus the most the remaining comparisons
        could add stays below ``floor``, the expensive ones (Jaro-Winkler) are skipped. A pair that can
        reach it gets exactly :meth:`score`.
        """
        total = self.prior_weight
        for (spec, weights), headroom in zip(self._by_cost, self._headroom, strict=True):
            lw = weights[spec.level_of(left, right)]
            total += lw.weight
            if lw.tf_column is not None:
                table = self.tf_tables.get(lw.tf_column, {})
                found = [
                    t
                    for v in (left.get(lw.tf_column), right.get(lw.tf_column))
                    if v is not None and (t := table.get(v)) is not None
                ]
                if found:
                    total += lw.tf_weight * (lw.log2_u_exact - math.log2(max(*found, lw.tf_minimum)))
            if total + headroom < floor - _SLACK:
                return None
        return self.score(left, right)


def term_frequencies(rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Splink's term-frequency tables: a value's share of the non-null values of its column."""
    out: dict[str, dict[str, float]] = {}
    for col in columns:
        counts: dict[str, int] = {}
        for row in rows:
            value = row.get(col)
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        total = sum(counts.values())
        out[col] = {value: float(n) / float(total) for value, n in counts.items()}
    return out
