"""The segment rules compiled to DuckDB SQL over the snapshot, for backfills (issue 17, point 4).

Every value of a rule is a bound parameter; the only names in the SQL text are the snapshot's tables and
columns, taken from the rule model's fixed lists. Each condition is wrapped in ``coalesce(..., FALSE)``:
two-valued logic, as the in-memory evaluator (:mod:`c360.ml.segment_rules`) applies it.

Consent conditions read table ``consent_permits(customer_id, purpose, channel)``, which the caller (the
backfill in :mod:`c360.ml.segments`) fills from the kernel's consent decisions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from c360.graph.models import aware

from .rfm import UNCOUNTED_ORDER_STATUSES
from .segment_rules import (
    AllOf,
    AnyOf,
    ConsentCondition,
    CountCondition,
    FieldCondition,
    Not,
    Rule,
    SumCondition,
    leaves,
)

CONSENT_TABLE = "consent_permits"
_SQL_OP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class _Compiler:
    def __init__(self, as_of: datetime) -> None:
        self.as_of = as_of
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def binds(self, values: tuple[Any, ...]) -> str:
        return ", ".join(self.bind(value) for value in values)

    def rule(self, rule: Rule) -> str:
        if isinstance(rule, AllOf):
            return "(" + " AND ".join(self.rule(child) for child in rule.children) + ")"
        if isinstance(rule, AnyOf):
            return "(" + " OR ".join(self.rule(child) for child in rule.children) + ")"
        if isinstance(rule, Not):
            return f"(NOT {self.rule(rule.child)})"
        if isinstance(rule, FieldCondition):
            return f"coalesce({self.field(rule)}, FALSE)"
        if isinstance(rule, ConsentCondition):
            return (
                f"EXISTS (SELECT 1 FROM {CONSENT_TABLE} k WHERE k.customer_id = c.customer_id"
                f" AND k.purpose = {self.bind(rule.purpose)} AND k.channel = {self.bind(rule.channel)})"
            )
        if isinstance(rule, CountCondition):
            return f"coalesce({self.count(rule)}, FALSE)"
        return f"coalesce({self.order_sum(rule)}, FALSE)"

    def field(self, condition: FieldCondition) -> str:
        column = f'r."{condition.field[4:]}"' if condition.field.startswith("rfm.") else f'c."{condition.field}"'
        if condition.op == "is_null":
            return f"({column} IS {'' if condition.value else 'NOT '}NULL)"
        if condition.op == "in":
            return f"({column} IN ({self.binds(condition.value)}))"
        if condition.op == "not_in":
            return f"({column} NOT IN ({self.binds(condition.value)}))"
        return f"({column} {_SQL_OP[condition.op]} {self.bind(condition.value)})"

    def window(self, alias: str, days: int) -> str:
        start = self.as_of - timedelta(days=days)
        return f"{alias}.occurred_at >= {self.bind(start)} AND {alias}.occurred_at <= {self.bind(self.as_of)}"

    def count(self, condition: CountCondition) -> str:
        spec = condition.filter
        where = [f"w.customer_id = c.customer_id AND {self.window('w', condition.within_days)}"]
        for column, values in (
            ("action", spec.actions),
            ("channel", spec.channels),
            ("traffic_source", spec.traffic_sources),
        ):
            if values is not None:
                where.append(f"w.{column} IN ({self.binds(values)})")
        join = ""
        if spec.category_contains is not None:
            join = " LEFT JOIN products p ON p.product_id = w.product_id"
            where.append(f"contains(lower(p.category), {self.bind(spec.category_contains)})")
        counted = f"(SELECT count(*) FROM web_events w{join} WHERE {' AND '.join(where)})"
        return f"({counted} {_SQL_OP[condition.op]} {self.bind(condition.value)})"

    def order_sum(self, condition: SumCondition) -> str:
        measure = "coalesce(sum(o.total), 0)" if condition.measure == "order_total" else "count(*)"
        window = self.window("o", condition.within_days)
        uncounted = self.binds(UNCOUNTED_ORDER_STATUSES)
        summed = (
            f"(SELECT {measure} FROM orders o WHERE o.customer_id = c.customer_id AND {window}"
            f" AND o.status NOT IN ({uncounted}))"
        )
        return f"({summed} {_SQL_OP[condition.op]} {self.bind(condition.value)})"


def uses_rfm(rule: Rule) -> bool:
    """Whether the rule reads the ``rfm`` table."""
    return any(isinstance(leaf, FieldCondition) and leaf.field.startswith("rfm.") for leaf in leaves(rule))


def members_sql(rule: Rule, as_of: datetime) -> tuple[str, list[Any]]:
    """SQL selecting the ``customer_id`` of every member at ``as_of`` (sorted), and its bound parameters.

    It reads ``customers``, and as the rule needs ``rfm``, ``web_events``, ``products``, ``orders`` and
    :data:`CONSENT_TABLE`.
    """
    aware("as_of", as_of)
    compiler = _Compiler(as_of)
    condition = compiler.rule(rule)
    join = " LEFT JOIN rfm r ON r.customer_id = c.customer_id" if uses_rfm(rule) else ""
    sql = f"SELECT c.customer_id FROM customers c{join} WHERE {condition} ORDER BY c.customer_id"
    return sql, compiler.params
