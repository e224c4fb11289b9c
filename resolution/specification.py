"""The model's specification: which columns it compares, how, and which pairs it looks at.

A :class:`Specification` names comparisons (a column and a *kind*), the blocking rules of prediction
(which are also the keys the store files records under for the real-time path), the EM training
sessions and the deterministic rules of the prior. It is chosen from a profile of the data
(:mod:`c360.resolution.choose`) or given by the user in YAML (:func:`load_spec`), and saved with the
model, so training, batch prediction and the real-time scorer all read the same one.

Each comparison level is written twice: once as the SQL condition Splink runs in DuckDB, once as the
same test in Python for the real-time scorer (:mod:`c360.resolution.scorer`). Levels are tried in
order and the first that holds wins (SQL ``CASE WHEN``); the first level is the null level, the last
``ELSE``. Values are the comparison view of :mod:`c360.resolution.features`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from c360.graph.errors import InvalidInputError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .features import BLOCKING_ONLY, COMPARED
from .similarity import adjacent_transposition, jaro_winkler, within_one_edit

View = Mapping[str, Any]
Test = Callable[[View, View], bool]


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
    kind: str
    description: str
    levels: tuple[Level, ...]
    cost: int = 0  # relative cost of testing the levels (Jaro-Winkler is the dear one)
    columns: tuple[str, ...] = ()  # every column the levels read (default: the column)

    def level_of(self, left: View, right: View) -> int:
        """Return the index of the first level that holds for the pair of views."""
        if all(left.get(c) is None or right.get(c) is None for c in self.columns or (self.column,)):
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


def _missing(columns: tuple[str, ...]) -> str:
    """SQL: every one of ``columns`` is missing on one side or the other."""
    return " AND ".join(f"({_q(c, 'l')} IS NULL OR {_q(c, 'r')} IS NULL)" for c in columns)


def _null(*columns: str) -> Level:
    sql = _missing(columns)
    return Level("null", sql[1:-1] if len(columns) == 1 else sql, None, null=True)


def _same(c: str, label: str) -> Level:
    # Equal and present on both sides (SQL's = is NULL, so false, when either is missing).
    return Level(label, f"{_q(c, 'l')} = {_q(c, 'r')}", lambda a, b: _both(c, a, b) and a[c] == b[c])


def _both(c: str, view_a: View, view_b: View) -> bool:
    return view_a.get(c) is not None and view_b.get(c) is not None


def _unknown_same(finer: tuple[str, ...], coarse: str) -> Test:
    def test(a: View, b: View) -> bool:
        return not any(_both(f, a, b) for f in finer) and _both(coarse, a, b) and a[coarse] == b[coarse]

    return test


def _location(column: str, also: tuple[str, ...]) -> tuple[Level, ...]:
    """Address, postcode and city as one comparison, so that one agreeing place counts once.

    The finer part decides when both sides have it; the coarser parts speak only where the finer one is
    missing on a side, except for a different address in the same postcode (a move nearby, or a neighbour).
    """
    parts = (column, *also)
    levels: list[Level] = []
    if column == "address":
        if "postcode" in also:
            levels.append(
                Level(
                    "same address and postcode",
                    f"{_q('address', 'l')} = {_q('address', 'r')} AND {_q('postcode', 'l')} = {_q('postcode', 'r')}",
                    lambda a, b: (
                        _both("address", a, b)
                        and a["address"] == b["address"]
                        and _both("postcode", a, b)
                        and a["postcode"] == b["postcode"]
                    ),
                )
            )
        else:
            levels.append(_same("address", "same address"))
        levels.append(
            Level(
                "address Jaro-Winkler >= 0.9",
                f"jaro_winkler_similarity({_q('address', 'l')}, {_q('address', 'r')}) >= 0.9",
                lambda a, b: _both("address", a, b) and jaro_winkler(a["address"], b["address"]) >= 0.9,
            )
        )
    coarse = [c for c in ("postcode", "city") if c in parts and c != column]
    if column == "postcode":
        levels.append(_same("postcode", "same postcode"))
    elif column == "city":
        levels.append(_same("city", "same city"))
    for c in coarse:
        # A coarser part speaks only where every finer one is unknown on a side.
        finer = parts[: parts.index(c)]
        label = f"{' and '.join(finer)} unknown, same {c}"
        levels.append(Level(label, f"{_missing(finer)} AND {_q(c, 'l')} = {_q(c, 'r')}", _unknown_same(finer, c)))
    if "postcode" in parts:
        p_l, p_r = _q("postcode", "l"), _q("postcode", "r")
        levels.append(
            Level(
                "postcode: same first three characters",
                f"substr({p_l}, 1, 3) = substr({p_r}, 1, 3)",
                lambda a, b: _both("postcode", a, b) and a["postcode"][:3] == b["postcode"][:3],
            )
        )
    return tuple(levels)


def _exact(c: str, tf: bool) -> Level:
    # Exactly the SQL Splink recognises as an exact-match level.
    return Level("exact match", f"{_q(c, 'l')} = {_q(c, 'r')}", lambda a, b: a[c] == b[c], tf=tf)


def _jw(c: str, threshold: float) -> Level:
    return Level(
        f"Jaro-Winkler >= {threshold}",
        f"jaro_winkler_similarity({_q(c, 'l')}, {_q(c, 'r')}) >= {threshold}",
        lambda a, b: jaro_winkler(a[c], b[c]) >= threshold,
    )


def _one_edit(c: str) -> Level:
    return Level(
        "one edit apart",
        f"levenshtein({_q(c, 'l')}, {_q(c, 'r')}) <= 1",
        lambda a, b: within_one_edit(a[c], b[c]),
    )


def _transposed(c: str) -> Level:
    # After "one edit apart": Damerau-Levenshtein 1 there means two adjacent characters swapped.
    return Level(
        "adjacent characters transposed",
        f"damerau_levenshtein({_q(c, 'l')}, {_q(c, 'r')}) <= 1",
        lambda a, b: adjacent_transposition(a[c], b[c]),
    )


def _prefix(c: str, n: int, label: str) -> Level:
    return Level(
        label, f"substr({_q(c, 'l')}, 1, {n}) = substr({_q(c, 'r')}, 1, {n})", lambda a, b: a[c][:n] == b[c][:n]
    )


def _else() -> Level:
    return Level("all other comparisons", "ELSE", None)


def _swapped_names(c: str, other: str) -> Level:
    # Given and family name entered the other way round.
    return Level(
        f"equals the other side's {other}",
        f"{_q(c, 'l')} = {_q(other, 'r')} AND {_q(other, 'l')} = {_q(c, 'r')}",
        lambda a, b: a[c] == b.get(other) and a.get(other) == b[c],
    )


def _date_swap(c: str) -> Level:
    left, right = _q(c, "l"), _q(c, "r")
    sql = (
        f"substr({left}, 1, 4) = substr({right}, 1, 4) AND substr({left}, 6, 2) = substr({right}, 9, 2) "
        f"AND substr({left}, 9, 2) = substr({right}, 6, 2)"
    )
    return Level(
        "day and month swapped",
        sql,
        lambda a, b: a[c][:4] == b[c][:4] and a[c][5:7] == b[c][8:10] and a[c][8:10] == b[c][5:7],
    )


def _levels(
    column: str, kind: str, tf: bool, others: frozenset[str], also: tuple[str, ...] = ()
) -> tuple[tuple[Level, ...], int, str]:
    """The levels of ``kind`` on ``column`` (``others``: the other compared columns), its cost and description."""
    c = column
    if kind == "name":
        swap = {"first_name": "last_name", "last_name": "first_name"}.get(c)
        mid = (_swapped_names(c, swap),) if swap in others else ()
        desc = "exact, swapped with the other name, " if mid else "exact, "
        return (_exact(c, tf), *mid, _jw(c, 0.92), _jw(c, 0.8)), 2, desc + "Jaro-Winkler >= 0.92, >= 0.8"
    if kind == "date":
        levels = (_exact(c, tf), _one_edit(c), _transposed(c), _date_swap(c), _prefix(c, 4, "same year"))
        return levels, 1, "exact, one digit wrong, two digits transposed, day and month swapped, same year"
    if kind == "identifier":
        return (_exact(c, tf), _one_edit(c), _transposed(c)), 1, "exact, one character wrong, two transposed"
    if kind == "email":
        user = Level(
            "same user name",
            f"split_part({_q(c, 'l')}, '@', 1) = split_part({_q(c, 'r')}, '@', 1)",
            lambda a, b: a[c].split("@")[0] == b[c].split("@")[0],
        )
        return (_exact(c, tf), user, _one_edit(c)), 1, "exact, same user name, one character apart"
    if kind == "phone":
        return (_exact(c, tf), _one_edit(c)), 1, "exact (E.164), one digit apart"
    if kind == "text":
        return (_exact(c, tf), _jw(c, 0.9), _jw(c, 0.7)), 2, "exact, Jaro-Winkler >= 0.9, >= 0.7"
    if kind == "postcode":
        return (_exact(c, tf), _prefix(c, 3, "same first three characters")), 0, "exact, same first three characters"
    if kind == "exact":
        return (_exact(c, tf),), 0, "exact"
    if kind == "location":
        located = _location(c, also)
        return located, 2, "; ".join(level.label for level in located)
    raise InvalidInputError(f"unknown comparison kind {kind!r} for {column}; kinds: {', '.join(KINDS)}")


#: Comparison kinds, and the columns each may be used on.
KINDS: dict[str, frozenset[str]] = {
    "name": frozenset({"first_name", "last_name", "city"}),
    "date": frozenset({"dob"}),
    "identifier": frozenset({"national_id", "phone", "postcode", "email"}),
    "email": frozenset({"email"}),
    "phone": frozenset({"phone"}),
    "text": frozenset({"first_name", "last_name", "address", "city"}),
    "postcode": frozenset({"postcode"}),
    "exact": frozenset(COMPARED),
    "location": frozenset({"address", "postcode", "city"}),
}
#: For the location kind: the columns it may take in beside its own.
LOCATION_PARTS: dict[str, tuple[str, ...]] = {"address": ("postcode", "city"), "postcode": ("city",), "city": ()}
#: The kind each column gets by default, and whether its exact level is term-frequency adjusted.
DEFAULT_KIND: dict[str, tuple[str, bool]] = {
    "first_name": ("name", True),
    "last_name": ("name", True),
    "dob": ("date", False),
    "email": ("email", False),
    "phone": ("phone", False),
    "address": ("location", False),
    "postcode": ("postcode", True),
    "city": ("text", True),
    "national_id": ("identifier", False),
}


@dataclass(frozen=True)
class ComparisonSpec:
    """One comparison as the specification names it: column, kind, term-frequency adjusted or not."""

    column: str
    kind: str
    tf: bool = False
    also: tuple[str, ...] = ()  # location: the other location columns it takes in


@dataclass(frozen=True)
class Specification:
    """Comparisons, prediction blocking rules, EM sessions and deterministic rules of one model."""

    comparisons: tuple[ComparisonSpec, ...]
    blocking: tuple[tuple[str, ...], ...]
    em_sessions: tuple[tuple[str, ...], ...]
    deterministic: tuple[tuple[str, ...], ...]
    origin: str = "automatic"  # or the YAML file it came from

    def built(self) -> tuple[Comparison, ...]:
        """The comparisons with their levels."""
        columns = frozenset(c.column for c in self.comparisons)
        out = []
        for spec in self.comparisons:
            levels, cost, desc = _levels(spec.column, spec.kind, spec.tf, columns - {spec.column}, spec.also)
            read = (spec.column, *spec.also)
            out.append(
                Comparison(
                    spec.column,
                    spec.kind,
                    f"{'+'.join(read)} ({spec.kind}): {desc}",
                    (_null(*read), *levels, _else()),
                    cost,
                    read,
                )
            )
        return tuple(out)

    @property
    def tf_columns(self) -> tuple[str, ...]:
        """Columns whose exact level is term-frequency adjusted."""
        return tuple(c.column for c in self.comparisons if c.tf)

    def to_json(self) -> dict[str, Any]:
        """The specification as saved with the model (and as a YAML spec file reads)."""
        return {
            "comparisons": [
                {"column": c.column, "kind": c.kind, "tf": c.tf, **({"also": list(c.also)} if c.also else {})}
                for c in self.comparisons
            ],
            "blocking": [list(r) for r in self.blocking],
            "em_sessions": [list(r) for r in self.em_sessions],
            "deterministic": [list(r) for r in self.deterministic],
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], origin: str | None = None) -> Specification:
        """Read and validate a specification (from a model or a spec file); :class:`InvalidInputError` if bad."""
        try:
            doc = SpecFile.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())
            raise InvalidInputError(f"invalid resolution specification: {problems}") from None
        return doc.to_spec(origin or str(data.get("origin", "automatic")))


_Rule = list[str]


class _ComparisonEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description=f"A compared column: {', '.join(COMPARED)}.")
    kind: str | None = Field(default=None, description=f"Comparison kind: {', '.join(KINDS)} (default per column).")
    tf: bool | None = Field(default=None, description="Adjust the exact level by term frequency (default per column).")
    also: list[str] = Field(default_factory=list, description="Location kind: other location columns it takes in.")

    @field_validator("column")
    @classmethod
    def _known_column(cls, value: str) -> str:
        if value not in COMPARED:
            raise ValueError(f"unknown column {value!r}; columns: {', '.join(COMPARED)}")
        return value

    @model_validator(mode="after")
    def _kind_fits(self) -> _ComparisonEntry:
        if self.kind is not None:
            if self.kind not in KINDS:
                raise ValueError(f"unknown kind {self.kind!r}; kinds: {', '.join(KINDS)}")
            if self.column not in KINDS[self.kind]:
                fits = ", ".join(sorted(KINDS[self.kind]))
                raise ValueError(f"kind {self.kind!r} does not apply to {self.column}; it applies to {fits}")
        if self.also:
            parts = (
                LOCATION_PARTS.get(self.column, ()) if (self.kind or DEFAULT_KIND[self.column][0]) == "location" else ()
            )
            bad = [c for c in self.also if c not in parts]
            if bad:
                raise ValueError(
                    f"also: {', '.join(bad)} cannot be taken into {self.column} ({', '.join(parts) or 'none'})"
                )
        return self


class SpecFile(BaseModel):
    """A specification as a user writes it in YAML (``c360 resolve train --spec FILE``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comparisons: list[_ComparisonEntry] = Field(min_length=2, description="The columns compared, and how.")
    blocking: list[_Rule] = Field(min_length=1, description="Prediction blocking rules: lists of columns.")
    em_sessions: list[_Rule] | None = Field(default=None, description="EM sessions (default: from blocking).")
    deterministic: list[_Rule] | None = Field(default=None, description="Rules for the prior (default: chosen).")
    origin: str | None = Field(default=None, description="Where it came from (written by c360).")

    @model_validator(mode="after")
    def _rules_known(self) -> SpecFile:
        compared = [c.column for c in self.comparisons] + [a for c in self.comparisons for a in c.also]
        if len(set(compared)) != len(compared):
            raise ValueError("a column is compared twice")
        if not {"first_name", "last_name"} & set(compared):
            raise ValueError("the comparisons must include first_name or last_name")
        allowed = set(COMPARED) | set(BLOCKING_ONLY)
        for name in ("blocking", "em_sessions", "deterministic"):
            for rule in getattr(self, name) or []:
                if not rule:
                    raise ValueError(f"{name}: an empty rule")
                bad = [c for c in rule if c not in allowed]
                if bad:
                    raise ValueError(
                        f"{name}: unknown column(s) {', '.join(bad)}; columns: {', '.join(sorted(allowed))}"
                    )
                if len(set(rule)) != len(rule):
                    raise ValueError(f"{name}: a column repeats in {rule}")
        for rule in self.em_sessions or []:
            if set(rule) & set(BLOCKING_ONLY):
                raise ValueError(f"em_sessions: {rule} uses a blocking-only column; EM must know what it fixes")
        return self

    def to_spec(self, origin: str) -> Specification:
        """The specification, with each column's default kind and term-frequency flag where none is given."""
        comparisons = tuple(
            ComparisonSpec(
                c.column,
                c.kind or DEFAULT_KIND[c.column][0],
                DEFAULT_KIND[c.column][1] if c.tf is None else c.tf,
                tuple(c.also),
            )
            for c in self.comparisons
        )
        blocking = tuple(tuple(r) for r in self.blocking)
        em = self.em_sessions
        if em is None:  # the blocking rules that EM can use, names and not-names
            em = [r for r in self.blocking if not set(r) & set(BLOCKING_ONLY)][:3]
        return Specification(
            comparisons,
            blocking,
            tuple(tuple(r) for r in em),
            tuple(tuple(r) for r in (self.deterministic or [])),
            origin,
        )


def load_spec(path: Path) -> Specification:
    """Read a YAML specification file; :class:`InvalidInputError` names what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: a specification is a mapping with comparisons and blocking")
    return Specification.from_json(data, origin=str(path))
