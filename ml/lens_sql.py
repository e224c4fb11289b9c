"""The lens compiler: a :class:`~c360.ml.lens.LensQuery` against a model, to DuckDB SQL with bound values.

Identifiers come only from the model (validated lower-case names, double-quoted); a query's strings are
looked up in the model and its values become named parameters (``$p0``, ...). The SQL has one grouped
sub-query per entity whose measures are asked for; each reads its entity, the entities on its join path
to the hub row by row (many-to-one: no fan-out), and any other entity a dimension or filter names as a
distinct projection per customer (a customer's facts count once in each group the customer is in). The
sub-queries meet on the dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from c360.graph.errors import InvalidInputError

from .lens import Dimension, Entity, LensFilter, LensModel, LensQuery, Measure, Scalar, ValueType

_AGE_BANDS = ((18, "under 18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64"))
_ARITY = {"in": None, "between": 2, "equals": 1, "not_equals": 1, "gt": 1, "gte": 1, "lt": 1, "lte": 1, "contains": 1}
_COMPARE = {"equals": "=", "not_equals": "IS DISTINCT FROM", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_COUNTS = ("count", "count_distinct")


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """The SQL of a query, its named parameters, its output columns and the snapshot tables it reads."""

    sql: str
    params: dict[str, Any]
    columns: tuple[str, ...]
    tables: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Member:
    entity: str
    name: str
    dimension: Dimension | None = None
    measure: Measure | None = None

    @property
    def qualified(self) -> str:
        return f"{self.entity}.{self.name}"

    @property
    def dim(self) -> Dimension:
        if self.dimension is None:
            raise InvalidInputError(f"{self.qualified} is a measure, not a dimension")
        return self.dimension

    @property
    def agg(self) -> Measure:
        if self.measure is None:
            raise InvalidInputError(f"{self.qualified} is a dimension, not a measure")
        return self.measure

    @property
    def value_type(self) -> ValueType:
        return self.dimension.value_type if self.dimension is not None else self.agg.type


def _q(name: str) -> str:
    """An identifier of the model, quoted (the model's names are validated lower-case identifiers)."""
    return f'"{name}"'


@dataclass
class _Builder:
    model: LensModel
    as_of: datetime
    params: dict[str, Any] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)
    aliases: int = 0

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def alias(self) -> str:
        self.aliases += 1
        return f"t{self.aliases}"

    # sources -------------------------------------------------------------------------------------------

    def source(self, name: str, alias: str) -> str:
        """The entity's rows as a FROM item named ``alias``: its table, filtered, or its roll-up."""
        entity = self.model.entities[name]
        self.tables.add(entity.source_table)
        where = " AND ".join(f"{_q(col)} = {self.bind(value)}" for col, value in entity.filter.items())
        where_sql = f" WHERE {where}" if where else ""
        if entity.rollup is not None:
            rollup = entity.rollup
            by = ", ".join(_q(col) for col in rollup.by)
            cols = ", ".join(f"{c.agg}({_q(c.column)}) AS {_q(n)}" for n, c in rollup.columns.items())
            return f"(SELECT {by}, {cols} FROM {_q(rollup.table)}{where_sql} GROUP BY {by}) AS {alias}"
        if where:
            return f"(SELECT * FROM {_q(entity.source_table)}{where_sql}) AS {alias}"
        return f"{_q(entity.source_table)} AS {alias}"

    def path_from(self, name: str, reach: set[str]) -> tuple[str, dict[str, str], str]:
        """FROM ``name`` with the joins of its path to the hub that reach ``reach``.

        Returns the FROM clause, the alias of each entity joined, and the expression of the hub's key.
        """
        path = self.model.path_to_hub(name)
        aliases = {name: self.alias()}
        parts = [self.source(name, aliases[name])]
        if path is None:  # an entity of its own: queried alone (compile_query checks), no customer to reach
            return parts[0], aliases, "NULL"
        hub_key = self.model.entities[self.model.hub].key[0]
        if not path:
            return parts[0], aliases, f"{aliases[name]}.{_q(hub_key)}"
        last = max([i for i, (_, target, _) in enumerate(path) if target in reach], default=-1)
        # Every join but the last one into the hub is needed to reach the hub's key.
        last = max(last, len(path) - 2)
        for src, target, join in path[: last + 1]:
            aliases[target] = self.alias()
            on = " AND ".join(
                f"{aliases[src]}.{_q(mine)} = {aliases[target]}.{_q(theirs)}" for mine, theirs in join.columns.items()
            )
            parts.append(f"LEFT JOIN {self.source(target, aliases[target])} ON {on}")
        src, _, join = path[-1]
        mine = next((m for m, theirs in join.columns.items() if theirs == hub_key), None)
        if mine is None:
            raise InvalidInputError(f"entity {src!r}: its join to {self.model.hub!r} does not name {hub_key!r}")
        return " ".join(parts), aliases, f"{aliases[src]}.{_q(mine)}"

    # members -------------------------------------------------------------------------------------------

    def as_of_date(self) -> str:
        return self.bind(self.as_of.astimezone(UTC).date())

    def dimension_sql(self, dim: Dimension, alias: str, hub_key: str) -> str:
        if dim.column is not None:
            column = f"{alias}.{_q(dim.column)}"
            if not dim.labels:
                return column
            cases = " ".join(f"WHEN {self.bind(value)} THEN {self.bind(label)}" for value, label in dim.labels.items())
            return f"CASE {column} {cases} ELSE {column} END"
        if dim.date_part is not None:
            return f"date_part('{dim.date_part}', timezone('UTC', {alias}.{_q(dim.of or '')}))"
        if dim.date_trunc is not None:
            cut = f"date_trunc('{dim.date_trunc}', timezone('UTC', {alias}.{_q(dim.of or '')}))"
            return cut if dim.date_trunc == "hour" else f"CAST({cut} AS DATE)"
        if dim.age_band is not None:
            age = f"date_sub('year', {alias}.{_q(dim.age_band)}, {self.as_of_date()})"
            cases = " ".join(f"WHEN {age} < {upper} THEN '{label}'" for upper, label in _AGE_BANDS)
            return f"CASE WHEN {alias}.{_q(dim.age_band)} IS NULL THEN NULL {cases} ELSE '65+' END"
        other = dim.days_since_last or ""
        from_sql, aliases, other_key = self.path_from(other, set())
        latest = f"max({aliases[other]}.{_q(dim.of or '')})"
        sub = f"SELECT CAST(timezone('UTC', {latest}) AS DATE) FROM {from_sql} WHERE {other_key} = {hub_key}"
        return f"date_diff('day', ({sub}), {self.as_of_date()})"

    def measure_sql(self, measure: Measure, entity: Entity, alias: str) -> str:
        col = f"{alias}.{_q(measure.column or '')}"
        if measure.agg == "count":
            keys = [f"{alias}.{_q(k)}" for k in entity.key]
            return f"count(DISTINCT {keys[0] if len(keys) == 1 else '(' + ', '.join(keys) + ')'})"
        if measure.agg == "count_distinct":
            return f"count(DISTINCT {col})"
        if measure.agg == "days_since_latest":
            return f"date_diff('day', CAST(timezone('UTC', max({col})) AS DATE), {self.as_of_date()})"
        if measure.agg.endswith("_minutes_between"):
            fn = measure.agg.split("_", 1)[0]
            return f"{fn}(date_diff('second', {col}, {alias}.{_q(measure.until or '')})) / 60.0"
        return f"{measure.agg}({col})"

    def condition(self, filt: LensFilter, member: _Member, expr: str) -> str:
        values = [_coerce(member, filt, v) for v in filt.values]
        if filt.op == "in":
            return f"{expr} IN ({', '.join(self.bind(v) for v in values)})"
        if filt.op == "between":
            return f"{expr} BETWEEN {self.bind(values[0])} AND {self.bind(values[1])}"
        if filt.op == "contains":
            return f"contains(lower({expr}), lower({self.bind(values[0])}))"
        return f"{expr} {_COMPARE[filt.op]} {self.bind(values[0])}"


def _resolve(model: LensModel, name: str) -> _Member:
    entity_name, dot, member_name = name.partition(".")
    if dot:
        entity = model.entities.get(entity_name)
        if entity is None:
            raise InvalidInputError(
                f"unknown entity {entity_name!r} in {name!r}; entities: {', '.join(model.entities)}"
            )
        if member_name in entity.dimensions:
            return _Member(entity_name, member_name, dimension=entity.dimensions[member_name])
        if member_name in entity.measures:
            return _Member(entity_name, member_name, measure=entity.measures[member_name])
        known = ", ".join(f"{entity_name}.{m}" for m in (*entity.dimensions, *entity.measures))
        raise InvalidInputError(f"unknown member {name!r}; {entity_name} has: {known}")
    found = [
        _Member(e, name, dimension=ent.dimensions.get(name), measure=ent.measures.get(name))
        for e, ent in model.entities.items()
        if name in ent.dimensions or name in ent.measures
    ]
    if len(found) == 1:
        return found[0]
    if found:
        raise InvalidInputError(f"member {name!r} is ambiguous: say {' or '.join(m.qualified for m in found)}")
    raise InvalidInputError(f"unknown member {name!r}; known members: {', '.join(model.members())}")


def _coerce(member: _Member, filt: LensFilter, value: Scalar | date | datetime) -> Any:
    """``value`` as the member's type, or an error naming the member, its type and the value."""
    kind = member.value_type
    bad = InvalidInputError(f"filter on {member.qualified} ({kind}): {value!r} is not a {kind} value")
    if isinstance(value, bool):
        if kind == "boolean":
            return value
        raise bad
    if kind == "string":
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "number":
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise bad from None
            if number.is_finite():
                return number
        raise bad
    if kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise bad
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise bad from None
    if not isinstance(value, datetime):
        raise bad
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _check_filter(filt: LensFilter, member: _Member) -> None:
    arity = _ARITY[filt.op]
    count = len(filt.values)
    if (arity is None and count == 0) or (arity is not None and count != arity):
        need = "one or more values" if arity is None else f"{arity} value{'s' if arity > 1 else ''}"
        raise InvalidInputError(f"filter on {member.qualified}: {filt.op} takes {need}, got {count}")
    if filt.op == "contains" and member.value_type != "string":
        raise InvalidInputError(f"filter on {member.qualified}: contains applies to text, not {member.value_type}")
    if filt.op in ("gt", "gte", "lt", "lte", "between") and member.value_type in ("string", "boolean"):
        raise InvalidInputError(f"filter on {member.qualified}: {filt.op} applies to numbers, dates and times")


def compile_query(model: LensModel, query: LensQuery, *, as_of: datetime) -> CompiledQuery:
    """The DuckDB SQL of ``query`` over ``model``; raise :class:`InvalidInputError` for a query it cannot answer."""
    measures = [_resolve(model, n) for n in query.measures]
    dims = [_resolve(model, n) for n in query.dimensions]
    for m in measures:
        if m.measure is None:
            raise InvalidInputError(f"{m.qualified} is a dimension, not a measure; name it among the dimensions")
    for d in dims:
        if d.dimension is None:
            raise InvalidInputError(f"{d.qualified} is a measure, not a dimension; name it among the measures")
    for members in (measures, dims):
        seen = [m.qualified for m in members]
        if len(set(seen)) != len(seen):
            raise InvalidInputError(f"a member is named twice: {', '.join(seen)}")
    filters = [(f, _resolve(model, f.member)) for f in query.filters]
    for filt, member in filters:
        _check_filter(filt, member)
        if member.measure is not None and member.qualified not in {m.qualified for m in measures}:
            raise InvalidInputError(f"filter on measure {member.qualified}: name it among the query's measures too")
    limit = query.limit if query.limit is not None else model.max_limit
    if limit > model.max_limit:
        raise InvalidInputError(f"limit {limit} is over the model's maximum, {model.max_limit}")

    involved = {m.entity for m in (*measures, *dims)} | {m.entity for _, m in filters}
    if len(involved) > 1:
        unrelated = sorted(e for e in involved if model.path_to_hub(e) is None)
        if unrelated:
            raise InvalidInputError(
                f"entity {', '.join(unrelated)} has no join to {model.hub!r}: its members cannot be combined "
                f"with those of {', '.join(sorted(involved - set(unrelated)))}"
            )
    facts = list(dict.fromkeys(m.entity for m in measures))
    if not facts:
        dim_entities = list(dict.fromkeys(d.entity for d in dims))
        facts = dim_entities if len(dim_entities) == 1 else [model.hub]

    b = _Builder(model, as_of)
    dim_filters = [(f, m) for f, m in filters if m.dimension is not None]
    measure_alias = {m.qualified: f"m{i}" for i, m in enumerate(measures)}
    ctes = [_fact_cte(b, fact, measures, measure_alias, dims, dim_filters) for fact in facts]
    dim_cols = [f"d{i}" for i in range(len(dims))]
    names = [f"f{i}" for i in range(len(facts))]
    with_sql = ",\n".join(f"{n} AS (\n{sql}\n)" for n, sql in zip(names, ctes, strict=True))
    keys, body = _combine(facts, measures, measure_alias, dim_cols)
    if keys:
        with_sql += f",\nk AS ({keys})"
    outer: list[str] = []
    for filt, member in filters:
        if member.measure is not None:
            outer.append(b.condition(filt, member, f"r.{measure_alias[member.qualified]}"))
    columns = [*(d.qualified for d in dims), *(m.qualified for m in measures)]
    internal = [*dim_cols, *measure_alias.values()]
    by_name = dict(zip(columns, internal, strict=True))
    order_sql: list[str] = []
    ordered: set[str] = set()
    for order in query.order:
        target = order.member if order.member in by_name else _resolve(model, order.member).qualified
        if target not in by_name:
            raise InvalidInputError(f"order by {order.member!r}: not a member of the query ({', '.join(columns)})")
        if by_name[target] not in ordered:
            ordered.add(by_name[target])
            order_sql.append(f"r.{by_name[target]} {order.direction.upper()} NULLS LAST")
    order_sql += [f"r.{d} ASC NULLS LAST" for d in dim_cols if d not in ordered]
    named = ", ".join(f"r.{col} AS {_q(name)}" for col, name in zip(internal, columns, strict=True))
    sql = f"WITH {with_sql}\nSELECT {named} FROM ({body}) AS r"
    if outer:
        sql += f"\nWHERE {' AND '.join(outer)}"
    if order_sql:
        sql += f"\nORDER BY {', '.join(order_sql)}"
    sql += f"\nLIMIT {b.bind(limit)}"
    return CompiledQuery(sql=sql, params=b.params, columns=tuple(columns), tables=tuple(sorted(b.tables)))


def _fact_cte(
    b: _Builder,
    fact: str,
    measures: list[_Member],
    measure_alias: dict[str, str],
    dims: list[_Member],
    dim_filters: list[tuple[LensFilter, _Member]],
) -> str:
    """One entity's grouped sub-query: its measures by the query's dimensions, under the dimension filters."""
    model = b.model
    path = model.path_to_hub(fact) or []
    on_path = {fact, *(target for _, target, _ in path)}
    others = {d.entity for d in dims} | {m.entity for _, m in dim_filters}
    from_sql, aliases, hub_key = b.path_from(fact, others & on_path)
    joins: list[str] = []
    projected: dict[str, str] = {}  # member -> its column in the projection
    for other in sorted(others - on_path):
        alias = b.alias()
        sub_from, sub_aliases, sub_key = b.path_from(other, {other})
        cols = [f"{sub_key} AS k"]
        for i, d in enumerate(d for d in dims if d.entity == other):
            cols.append(f"{b.dimension_sql(d.dim, sub_aliases[other], sub_key)} AS v{i}")
            projected[d.qualified] = f"{alias}.v{i}"
        conds = [
            b.condition(f, m, b.dimension_sql(m.dim, sub_aliases[other], sub_key))
            for f, m in dim_filters
            if m.entity == other
        ]
        sub_where = f" WHERE {' AND '.join(conds)}" if conds else ""
        joins.append(
            f"JOIN (SELECT DISTINCT {', '.join(cols)} FROM {sub_from}{sub_where}) AS {alias} ON {alias}.k = {hub_key}"
        )

    def expr(member: _Member) -> str:
        if member.qualified in projected:
            return projected[member.qualified]
        return b.dimension_sql(member.dim, aliases[member.entity], hub_key)

    select = [f"{expr(d)} AS d{i}" for i, d in enumerate(dims)]
    entity = model.entities[fact]
    select += [
        f"{b.measure_sql(m.agg, entity, aliases[fact])} AS {measure_alias[m.qualified]}"
        for m in measures
        if m.entity == fact
    ]
    where = [b.condition(f, m, expr(m)) for f, m in dim_filters if m.entity in on_path]
    aggregated = any(m.entity == fact for m in measures)
    sql = f"  SELECT {'' if aggregated else 'DISTINCT '}{', '.join(select)}\n  FROM {from_sql}"
    if joins:
        sql += "\n  " + "\n  ".join(joins)
    if where:
        sql += f"\n  WHERE {' AND '.join(where)}"
    if dims and aggregated:
        sql += "\n  GROUP BY ALL"
    return sql


def _combine(
    facts: list[str], measures: list[_Member], measure_alias: dict[str, str], dim_cols: list[str]
) -> tuple[str, str]:
    """The sub-queries ``f0``, ``f1``, ... met on the dimensions: (the SQL of their keys ``k``, or "", the body)."""
    if len(facts) == 1:
        return "", f"SELECT {', '.join([*dim_cols, *measure_alias.values()])} FROM f0"
    names = [f"f{i}" for i in range(len(facts))]
    values = []
    for m in measures:
        col = f"{names[facts.index(m.entity)]}.{measure_alias[m.qualified]}"
        counted = m.agg.agg in _COUNTS  # a group without a fact of this entity counts 0
        values.append(f"{'coalesce(' + col + ', 0)' if counted else col} AS {measure_alias[m.qualified]}")
    if not dim_cols:
        return "", f"SELECT {', '.join(values)} FROM {' CROSS JOIN '.join(names)}"
    keys = " UNION ".join(f"SELECT {', '.join(dim_cols)} FROM {n}" for n in names)
    joins = " ".join(
        f"LEFT JOIN {n} ON " + " AND ".join(f"k.{d} IS NOT DISTINCT FROM {n}.{d}" for d in dim_cols) for n in names
    )
    return keys, f"SELECT {', '.join([*(f'k.{d} AS {d}' for d in dim_cols), *values])} FROM k {joins}"
