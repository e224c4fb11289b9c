"""The lens: a semantic layer over the ML snapshot, defined in YAML, queried by member names.

A model (``lens.yaml`` by default) names *entities* (a snapshot table, a table with a fixed filter, or a
roll-up of a table), each with its key, its many-to-one *joins* to other entities (every entity reaches the
hub entity, ``customer``, through them), its *dimensions* (a column or a derived kind: a date part, a
truncated date, an age band, the days since a customer's latest event) and its *measures* (count, distinct
count, sum, average, minimum, maximum, days since the latest, minutes between two columns).

A query names measures, dimensions, filters, an order and a limit (``LensQuery``); :func:`compile_query`
(in ``lens_sql``) turns it into DuckDB SQL in which every identifier comes from the model and every value
is a bound parameter, and :func:`run_query` runs it. Members are named ``entity.member``, or by the member
alone where only one entity has it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
import yaml
from c360.graph.errors import InvalidInputError, NotFoundError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

BUNDLED_MODEL = Path(__file__).resolve().with_name("lens.yaml")

#: Names of entities, members, tables and columns: lower-case identifiers, quoted in SQL all the same.
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
ValueType = Literal["string", "number", "date", "time", "boolean"]
Scalar = str | int | float | bool
DatePart = Literal["year", "quarter", "month", "week", "day", "dayofweek", "hour"]
Grain = Literal["year", "quarter", "month", "week", "day", "hour"]
Operator = Literal["equals", "not_equals", "in", "gt", "gte", "lt", "lte", "between", "contains"]
Aggregate = Literal[
    "count", "count_distinct", "sum", "avg", "min", "max", "days_since_latest", "avg_minutes_between",
    "sum_minutes_between",
]  # fmt: skip
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Dimension(_Strict):
    """A dimension: exactly one of ``column``, ``date_part``, ``date_trunc``, ``age_band``, ``days_since_last``."""

    column: Ident | None = Field(default=None, description="The entity's column, as it is.")
    date_part: DatePart | None = Field(default=None, description="A part (a number) of the time column `of`.")
    date_trunc: Grain | None = Field(default=None, description="The time column `of` cut to this grain (UTC).")
    age_band: Ident | None = Field(default=None, description="Age band (18-24, 25-34, ...) of this date column.")
    days_since_last: Ident | None = Field(
        default=None, description="Days from the customer's latest `of` in this entity to the as-of date."
    )
    of: Ident | None = Field(default=None, description="The column date_part, date_trunc, days_since_last read.")
    type: ValueType = Field(default="string", description="The value type of a column dimension.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Display labels of a text column's values (others show as they are)."
    )
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k in ("column", "date_part", "date_trunc", "age_band", "days_since_last") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of column, date_part, date_trunc, age_band, days_since_last"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if kinds[0] in ("date_part", "date_trunc", "days_since_last") and self.of is None:
            raise ValueError(f"{kinds[0]} needs `of`: the time column it reads")
        if kinds[0] in ("column", "age_band") and self.of is not None:
            raise ValueError(f"`of` does not apply to {kinds[0]}")
        if self.labels and (kinds[0] != "column" or self.type != "string"):
            raise ValueError("labels apply to text columns only")
        return self

    @property
    def value_type(self) -> ValueType:
        """The type of the dimension's values (what a filter on it takes)."""
        if self.column is not None:
            return self.type
        if self.date_trunc is not None:
            return "time" if self.date_trunc == "hour" else "date"
        return "string" if self.age_band is not None else "number"


class Measure(_Strict):
    """A measure: an aggregate over a column of its entity (``count`` counts the entity's keys)."""

    agg: Aggregate
    column: Ident | None = Field(default=None, description="The column aggregated (the start, for minutes).")
    until: Ident | None = Field(default=None, description="The end column of *_minutes_between.")
    type: ValueType = Field(default="number", description="The value type (min and max of a non-number column).")
    description: str = ""

    @model_validator(mode="after")
    def _columns(self) -> Measure:
        if self.agg == "count":
            if self.column is not None or self.until is not None:
                raise ValueError("count counts the entity's keys: it takes no column")
        elif self.column is None:
            raise ValueError(f"{self.agg} needs a column")
        if self.agg.endswith("_minutes_between") != (self.until is not None):
            raise ValueError("`until` goes with (and only with) avg_minutes_between and sum_minutes_between")
        return self


class Join(_Strict):
    """A many-to-one join: each row of this entity matches at most one row of the target."""

    # Not ``on``: YAML 1.1 reads an unquoted on as true.
    columns: dict[Ident, Ident] = Field(min_length=1, description="This entity's column -> the target's column.")


class RollupColumn(_Strict):
    """One column of a roll-up: an aggregate of a column of the rolled-up table."""

    agg: Literal["min", "max", "count", "sum"]
    column: Ident


class Rollup(_Strict):
    """A table rolled up by some columns (e.g. web events into sessions)."""

    table: Ident
    by: Annotated[list[Ident], Field(min_length=1)]
    columns: dict[Ident, RollupColumn] = Field(min_length=1)


class Entity(_Strict):
    """An entity: its source (``table`` or ``rollup``, with a fixed ``filter``), key, joins and members."""

    description: str = ""
    table: Ident | None = None
    rollup: Rollup | None = None
    filter: dict[Ident, Scalar] = Field(default_factory=dict, description="Column -> the value every row has.")
    key: Annotated[list[Ident], Field(min_length=1)]
    joins: dict[Ident, Join] = Field(default_factory=dict, description="Target entity -> the many-to-one join.")
    dimensions: dict[Ident, Dimension] = Field(default_factory=dict)
    measures: dict[Ident, Measure] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        if isinstance(value, dict) and "key" in value:
            return {**value, "key": _listed(value["key"])}
        return value

    @model_validator(mode="after")
    def _source(self) -> Entity:
        if (self.table is None) == (self.rollup is None):
            raise ValueError("give exactly one of table and rollup")
        clash = sorted(set(self.dimensions) & set(self.measures))
        if clash:
            raise ValueError(f"{', '.join(clash)}: both a dimension and a measure")
        return self

    @property
    def source_table(self) -> str:
        """The snapshot table the entity reads."""
        return self.table if self.table is not None else self.rollup.table  # type: ignore[union-attr]


class LensModel(_Strict):
    """The semantic layer: entities around a hub entity (the customer), and the largest limit a query may ask."""

    hub: Ident = "customer"
    max_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    entities: dict[Ident, Entity] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph(self) -> LensModel:
        if self.hub not in self.entities:
            raise ValueError(f"hub {self.hub!r} is not an entity; entities: {', '.join(self.entities)}")
        if len(self.entities[self.hub].key) != 1:
            raise ValueError(f"the hub entity {self.hub!r} needs a one-column key")
        for name, entity in self.entities.items():
            for target in entity.joins:
                if target not in self.entities or target == name:
                    raise ValueError(f"entities.{name}.joins: {target!r} is not another entity")
            for dim_name, dim in entity.dimensions.items():
                other = dim.days_since_last
                if other is not None and (other not in self.entities or self.path_to_hub(other) is None):
                    raise ValueError(f"entities.{name}.dimensions.{dim_name}: {other!r} is no entity joined to the hub")
        return self

    def path_to_hub(self, entity: str) -> list[tuple[str, str, Join]] | None:
        """The joins from ``entity`` to the hub, shortest first found ([] for the hub); None: not related."""
        if entity == self.hub:
            return []
        paths: dict[str, list[tuple[str, str, Join]]] = {entity: []}
        frontier = [entity]
        while frontier:
            nxt: list[str] = []
            for name in frontier:
                for target, join in self.entities[name].joins.items():
                    if target in paths:
                        continue
                    paths[target] = [*paths[name], (name, target, join)]
                    if target == self.hub:
                        return paths[target]
                    nxt.append(target)
            frontier = nxt
        return None

    def members(self) -> list[str]:
        """Every member's qualified name (``entity.member``)."""
        return [f"{e}.{m}" for e, ent in self.entities.items() for m in (*ent.dimensions, *ent.measures)]


def with_labels(model: LensModel, member: str, labels: Mapping[str, str]) -> LensModel:
    """``model`` with ``labels`` added to the text column dimension ``entity.member`` (e.g. segment names by id)."""
    entity_name, _, dim_name = member.partition(".")
    entity = model.entities.get(entity_name)
    dim = entity.dimensions.get(dim_name) if entity is not None else None
    if entity is None or dim is None or dim.column is None or dim.type != "string":
        raise InvalidInputError(f"{member!r} is not a text column dimension of the lens model")
    new_dim = dim.model_copy(update={"labels": {**dim.labels, **labels}})
    new_entity = entity.model_copy(update={"dimensions": {**entity.dimensions, dim_name: new_dim}})
    return model.model_copy(update={"entities": {**model.entities, entity_name: new_entity}})


def _problem(where: object, exc: ValidationError) -> InvalidInputError:
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "(top)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidInputError(f"{where}: {path}: {first['msg']}{more}")


def parse_model(data: Any, *, where: str = "lens model") -> LensModel:
    """Validate a lens model given as a mapping; raise :class:`InvalidInputError` naming ``where`` and the path."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{where}: must be a mapping with 'entities'")
    try:
        return LensModel.model_validate(data)
    except ValidationError as exc:
        raise _problem(where, exc) from exc


def load_model(path: Path | None = None) -> LensModel:
    """Read and validate a lens YAML file (None: the bundled ``lens.yaml``)."""
    path = path or BUNDLED_MODEL
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read lens model {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"lens model {path} is not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"lens model {path} is not valid YAML: {exc}") from exc
    return parse_model(data, where=f"lens model {path}")


class LensFilter(_Strict):
    """A filter: a member, an operator and its values (``in`` one or more, ``between`` two, the rest one)."""

    member: str = Field(min_length=1, max_length=200)
    op: Operator
    values: Annotated[list[Scalar | date | datetime], Field(max_length=1000)] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _value(cls, value: Any) -> Any:
        if isinstance(value, dict) and "value" in value and "values" not in value:
            return {**{k: v for k, v in value.items() if k != "value"}, "values": [value["value"]]}
        return value


class LensOrder(_Strict):
    """An ordering: a member of the query, ascending or descending (``"member desc"`` for short)."""

    member: str = Field(min_length=1, max_length=200)
    direction: Literal["asc", "desc"] = "asc"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            member, _, direction = value.strip().partition(" ")
            return {"member": member, "direction": direction.strip().lower() or "asc"}
        return value


class LensQuery(_Strict):
    """A query: measures, dimensions, filters, order, limit, and the as-of time of day counts."""

    measures: list[str] = Field(default_factory=list, max_length=50)
    dimensions: list[str] = Field(default_factory=list, max_length=20)
    filters: list[LensFilter] = Field(default_factory=list, max_length=50)
    order: list[LensOrder] = Field(default_factory=list, max_length=20)
    limit: int | None = Field(default=None, ge=1)
    as_of: AwareDatetime | None = Field(default=None, description="Day counts run to this time (default: now).")

    @model_validator(mode="after")
    def _something(self) -> LensQuery:
        if not self.measures and not self.dimensions:
            raise ValueError("name at least one measure or dimension")
        return self


def parse_query(data: Any) -> LensQuery:
    """Validate a query given as a mapping (JSON); raise :class:`InvalidInputError` naming the problem."""
    if isinstance(data, LensQuery):
        return data
    if not isinstance(data, Mapping):
        raise InvalidInputError("lens query: must be a mapping with measures, dimensions, filters, order, limit")
    try:
        return LensQuery.model_validate(data)
    except ValidationError as exc:
        raise _problem("lens query", exc) from exc


@dataclass(frozen=True, slots=True)
class LensResult:
    """A query's answer: column names (the members), rows, the SQL run with its parameters, and its time."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    sql: str
    params: Mapping[str, Any]
    seconds: float

    def records(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready mappings (decimals as floats, dates and times in ISO 8601)."""
        return [dict(zip(self.columns, (_json_value(v) for v in row), strict=True)) for row in self.rows]


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def run_query(con: duckdb.DuckDBPyConnection, model: LensModel, query: LensQuery | Mapping[str, Any]) -> LensResult:
    """Compile ``query`` against ``model`` and run it on ``con`` (a snapshot), every value bound."""
    from .lens_sql import compile_query

    parsed = parse_query(query)
    as_of = parsed.as_of or datetime.now(UTC)
    compiled = compile_query(model, parsed, as_of=as_of)
    present = {str(row[0]) for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    present |= {str(row[0]) for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    missing = sorted(set(compiled.tables) - present)
    if missing:
        raise NotFoundError(
            f"the snapshot has no table {', '.join(missing)}"
            + (" (segments are not computed yet)" if "segment_members" in missing else "")
        )
    started = time.perf_counter()
    try:
        cursor = con.execute(compiled.sql, compiled.params)
        rows = tuple(tuple(row) for row in cursor.fetchall())
    except duckdb.Error as exc:
        raise InvalidInputError(f"the lens model does not fit the snapshot: {exc}") from exc
    return LensResult(
        columns=compiled.columns,
        rows=rows,
        sql=compiled.sql,
        params=compiled.params,
        seconds=time.perf_counter() - started,
    )
