"""The model's specification: its comparisons and blocking rules, in one place.

Each comparison level is written twice: once as the SQL condition Splink runs in DuckDB (training and
batch prediction, :mod:`c360.resolution.splink_adapter`), once as the same test in Python for the
real-time scorer (:mod:`c360.resolution.scorer`). The blocking rules pick the pairs Splink scores in a
batch and the keys under which the store files records for the real-time path
(:mod:`c360.resolution.blocking`), so both compare the same candidates.

Levels are tried in order and the first that holds wins (SQL ``CASE WHEN``); the first level of each
comparison is its null level, the last its ``ELSE``. Values are the comparison view of
:mod:`c360.resolution.features`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .similarity import jaro_winkler, levenshtein

Test = Callable[[Any, Any], bool]


@dataclass(frozen=True)
class Level:
    """One comparison level: its label, SQL condition, Python test and whether term frequencies adjust it."""

    label: str
    sql: str
    test: Test | None  # None: the null level (tested apart) or ELSE
    null: bool = False
    tf: bool = False


@dataclass(frozen=True)
class Comparison:
    """One column's comparison: an ordered list of levels, null level first, ``ELSE`` last."""

    column: str
    description: str
    levels: tuple[Level, ...]
    cost: int = 0  # relative cost of testing the levels (Jaro-Winkler is the dear one)

    def level_of(self, left: Any, right: Any) -> int:
        """Return the index of the first level that holds for ``(left, right)``."""
        if left is None or right is None:
            return 0
        for i, level in enumerate(self.levels[1:-1], start=1):
            if level.test is not None and level.test(left, right):
                return i
        return len(self.levels) - 1

    def to_splink(self) -> dict[str, Any]:
        """The Splink comparison (a dict that ``SettingsCreator`` accepts)."""
        levels: list[dict[str, Any]] = []
        for level in self.levels:
            entry: dict[str, Any] = {"sql_condition": level.sql, "label_for_charts": level.label}
            if level.null:
                entry["is_null_level"] = True
            if level.tf:
                entry["tf_adjustment_column"] = self.column
                entry["tf_adjustment_weight"] = 1.0
            levels.append(entry)
        return {
            "output_column_name": self.column,
            "comparison_description": self.description,
            "comparison_levels": levels,
        }


def _q(column: str, side: str) -> str:
    return f'"{column}_{side}"'


def null_level(column: str) -> Level:
    """Either side missing."""
    return Level("null", f"{_q(column, 'l')} IS NULL OR {_q(column, 'r')} IS NULL", None, null=True)


def exact(column: str, *, tf: bool = False) -> Level:
    """Equal values (the SQL is exactly what Splink recognises as the exact-match level)."""
    return Level("exact match", f"{_q(column, 'l')} = {_q(column, 'r')}", lambda a, b: a == b, tf=tf)


def jaro_winkler_at(column: str, threshold: float) -> Level:
    """Jaro-Winkler similarity at or above ``threshold``."""
    return Level(
        f"Jaro-Winkler >= {threshold}",
        f"jaro_winkler_similarity({_q(column, 'l')}, {_q(column, 'r')}) >= {threshold}",
        lambda a, b: jaro_winkler(a, b) >= threshold,
    )


def else_level() -> Level:
    """Everything else."""
    return Level("all other comparisons", "ELSE", None)


def _substr(value: str, start: int, length: int) -> str:
    return value[start - 1 : start - 1 + length]


def _name(column: str) -> Comparison:
    return Comparison(
        column,
        f"{column}: exact (term-frequency adjusted), Jaro-Winkler >= 0.92, >= 0.8",
        (
            null_level(column),
            exact(column, tf=True),
            jaro_winkler_at(column, 0.92),
            jaro_winkler_at(column, 0.8),
            else_level(),
        ),
        cost=2,
    )


_DOB_SWAP = (
    'substr("dob_l", 1, 4) = substr("dob_r", 1, 4) AND substr("dob_l", 6, 2) = substr("dob_r", 9, 2) '
    'AND substr("dob_l", 9, 2) = substr("dob_r", 6, 2)'
)

COMPARISONS: tuple[Comparison, ...] = (
    _name("first_name"),
    _name("last_name"),
    Comparison(
        "dob",
        "date of birth: exact, day and month swapped, same year",
        (
            null_level("dob"),
            exact("dob"),
            Level(
                "day and month swapped",
                _DOB_SWAP,
                lambda a, b: (
                    a[:4] == b[:4] and _substr(a, 6, 2) == _substr(b, 9, 2) and _substr(a, 9, 2) == _substr(b, 6, 2)
                ),
            ),
            Level("same year", 'substr("dob_l", 1, 4) = substr("dob_r", 1, 4)', lambda a, b: a[:4] == b[:4]),
            else_level(),
        ),
    ),
    Comparison(
        "email",
        "email: exact, same user name",
        (
            null_level("email"),
            exact("email"),
            Level(
                "same user name",
                "split_part(\"email_l\", '@', 1) = split_part(\"email_r\", '@', 1)",
                lambda a, b: a.split("@")[0] == b.split("@")[0],
            ),
            else_level(),
        ),
    ),
    Comparison("phone", "phone: exact (E.164)", (null_level("phone"), exact("phone"), else_level())),
    Comparison(
        "address",
        "address: exact, Jaro-Winkler >= 0.9",
        (null_level("address"), exact("address"), jaro_winkler_at("address", 0.9), else_level()),
        cost=2,
    ),
    Comparison(
        "postcode",
        "postcode: exact (term-frequency adjusted), same first three characters",
        (
            null_level("postcode"),
            exact("postcode", tf=True),
            Level(
                "same first three characters",
                'substr("postcode_l", 1, 3) = substr("postcode_r", 1, 3)',
                lambda a, b: a[:3] == b[:3],
            ),
            else_level(),
        ),
    ),
    Comparison(
        "national_id",
        "national id: exact, one edit apart",
        (
            null_level("national_id"),
            exact("national_id"),
            Level(
                "one edit apart",
                'levenshtein("national_id_l", "national_id_r") <= 1',
                lambda a, b: levenshtein(a, b) <= 1,
            ),
            else_level(),
        ),
    ),
)

#: Columns whose exact level is term-frequency adjusted.
TF_COLUMNS: tuple[str, ...] = tuple(c.column for c in COMPARISONS if any(level.tf for level in c.levels))

#: Pairs that are certainly the same person, for the prior.
DETERMINISTIC_RULES: tuple[tuple[str, ...], ...] = (("email",), ("national_id",), ("first_name", "last_name", "dob"))
#: EM sessions: each fixes some columns, so that together they estimate every comparison.
EM_BLOCKING: tuple[tuple[str, ...], ...] = (("first_name", "last_name"), ("dob",), ("postcode",))
#: Candidate pairs for batch prediction, and the blocking keys of the real-time path.
PREDICTION_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("first_name", "last_name"),
    ("dob",),
    ("email",),
    ("phone",),
    ("national_id",),
    ("postcode", "last_name"),
)
