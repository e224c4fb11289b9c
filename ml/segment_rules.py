"""The segment rule language: its model, its parser and the in-memory evaluator (issue 17, point 4).

A rule is data (YAML or JSON), never code: a tree of conditions combined by ``all``, ``any`` and ``not``.

* ``{field: state, eq: CA}``: a golden field (a column of the snapshot's ``customers``) or an RFM column
  (``rfm.r``, ``rfm.f``, ``rfm.m``, ``rfm.recency_days``, ``rfm.frequency``, ``rfm.monetary``,
  ``rfm.rfm_segment``) compared by one of ``eq ne in not_in gt gte lt lte`` or tested by
  ``is_null: true|false``.
* ``{consent: {purpose: marketing, channel: email}}``: the caller's consent facts permit this purpose on
  this channel (the kernel's consent rules decide them; nothing here re-derives consent).
* ``{count: {action: add_to_cart}, within_days: 30, gte: 3}``: web events in the last ``within_days``
  days matching the filter (``action``, ``channel``, ``traffic_source``: a value or a list;
  ``category_contains``: a text found, ignoring case, in the viewed product's category), compared by
  exactly one of ``eq gt gte lt lte``.
* ``{none: {action: order_placed}, within_days: 30}``: no such web event in the window.
* ``{sum: order_total, within_days: 90, gte: 500}``: the total (``order_total``) or the number
  (``order_count``) of counted orders in the window (:data:`c360.ml.rfm.UNCOUNTED_ORDER_STATUSES` aside).

Windows are closed: ``as_of - within_days <= occurred_at <= as_of``. Logic is two-valued: a comparison
with a missing value (NULL) is false, so ``not`` of it is true; the SQL compiler
(:mod:`c360.ml.segment_sql`) says the same with ``coalesce(..., FALSE)``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from c360.graph.errors import InvalidInputError

from .rfm import RFM_SEGMENTS, UNCOUNTED_ORDER_STATUSES

#: Golden fields (columns of ``customers``) and the Python type their values have.
GOLDEN_FIELDS: dict[str, type] = {
    "first_name": str,
    "last_name": str,
    "email": str,
    "phone": str,
    "gender": str,
    "date_of_birth": date,
    "city": str,
    "state": str,
    "country": str,
    "postcode": str,
    "created_at": datetime,
    "updated_at": datetime,
}
#: RFM columns (table ``rfm``) a rule may name as ``rfm.<column>``, and their value types.
RFM_FIELDS: dict[str, type] = {
    "recency_days": int,
    "frequency": int,
    "monetary": Decimal,
    "r": int,
    "f": int,
    "m": int,
    "rfm_segment": str,
}
ACTIONS: tuple[str, ...] = ("product_view", "add_to_favourites", "add_to_cart", "order_placed")
SUM_MEASURES: tuple[str, ...] = ("order_total", "order_count")
FIELD_OPS: tuple[str, ...] = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null")
COUNT_OPS: tuple[str, ...] = ("eq", "gt", "gte", "lt", "lte")
MAX_WINDOW_DAYS = 3660

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


# --- the model -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldCondition:
    """A golden field or RFM column (``rfm.<column>``) compared with a value (``in``: a tuple of values)."""

    path: str
    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    """The customer's consent facts permit ``purpose`` on ``channel``."""

    path: str
    purpose: str
    channel: str


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which web events a count takes; None: any."""

    actions: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    traffic_sources: tuple[str, ...] | None = None
    #: lower-case text the product's category must contain
    category_contains: str | None = None


@dataclass(frozen=True, slots=True)
class CountCondition:
    """The number of matching web events in the window compared with ``value`` (``none``: eq 0)."""

    path: str
    filter: EventFilter
    within_days: int
    op: str
    value: int


@dataclass(frozen=True, slots=True)
class SumCondition:
    """The total or number of counted orders in the window compared with ``value``."""

    path: str
    measure: str
    within_days: int
    op: str
    value: Decimal


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every child holds."""

    path: str
    children: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one child holds."""

    path: str
    children: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not hold."""

    path: str
    child: Rule


Leaf = FieldCondition | ConsentCondition | CountCondition | SumCondition
Rule = AllOf | AnyOf | Not | Leaf


# --- one customer's state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebEvent:
    """One web event of a customer, with the category of its product (None: no product or no category)."""

    event_id: str
    occurred_at: datetime
    action: str
    category: str | None = None
    channel: str | None = None
    traffic_source: str | None = None


@dataclass(frozen=True, slots=True)
class OrderFact:
    """One order of a customer (its latest status and total)."""

    source: str
    order_id: str
    occurred_at: datetime
    status: str
    total: Decimal


Activity = WebEvent | OrderFact


@dataclass(frozen=True, slots=True)
class CustomerState:
    """What the in-memory evaluator knows of one customer.

    ``golden``: golden fields by name (missing: NULL); ``rfm``: the customer's ``rfm`` row by column, or
    None; ``consent``: the (purpose, channel) pairs the kernel's consent rules permit; ``events``: recent
    web events and orders.
    """

    customer_id: str
    golden: Mapping[str, Any]
    rfm: Mapping[str, Any] | None = None
    consent: frozenset[tuple[str, str]] = frozenset()
    events: tuple[Activity, ...] = ()


# --- the parser --------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, rule_id: str) -> None:
        self.rule_id = rule_id

    def fail(self, path: str, message: str) -> InvalidInputError:
        return InvalidInputError(f"segment {self.rule_id!r}: {path}: {message}")

    def rule(self, data: object, path: str) -> Rule:
        if not isinstance(data, Mapping):
            raise self.fail(path, f"a condition must be a mapping, not {type(data).__name__}")
        for key, build in (
            ("all", self._all),
            ("any", self._any),
            ("not", self._not),
            ("field", self._field),
            ("consent", self._consent),
            ("count", self._count),
            ("none", self._count),
            ("sum", self._sum),
        ):
            if key in data:
                return build(data, path)
        keys = ", ".join(sorted(map(str, data))) or "none"
        raise self.fail(
            path, f"unknown condition (keys: {keys}); expected all, any, not, field, consent, count, none or sum"
        )

    def _keys(self, data: Mapping[Any, Any], path: str, allowed: set[str]) -> None:
        extra = sorted(str(key) for key in data if key not in allowed)
        if extra:
            raise self.fail(path, f"unexpected key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")

    def _children(self, data: Mapping[Any, Any], path: str, key: str) -> tuple[Rule, ...]:
        self._keys(data, path, {key})
        items = data[key]
        if not isinstance(items, list) or not items:
            raise self.fail(f"{path}.{key}", "must be a non-empty list of conditions")
        return tuple(self.rule(item, f"{path}.{key}[{i}]") for i, item in enumerate(items))

    def _all(self, data: Mapping[Any, Any], path: str) -> Rule:
        return AllOf(path, self._children(data, path, "all"))

    def _any(self, data: Mapping[Any, Any], path: str) -> Rule:
        return AnyOf(path, self._children(data, path, "any"))

    def _not(self, data: Mapping[Any, Any], path: str) -> Rule:
        self._keys(data, path, {"not"})
        return Not(path, self.rule(data["not"], f"{path}.not"))

    def _one_op(self, data: Mapping[Any, Any], path: str, ops: Sequence[str]) -> str:
        found = [op for op in ops if op in data]
        if len(found) != 1:
            got = ", ".join(found) or "none"
            raise self.fail(path, f"needs exactly one comparison of {', '.join(ops)} (got {got})")
        return found[0]

    def _field(self, data: Mapping[Any, Any], path: str) -> Rule:
        name = data["field"]
        kind = GOLDEN_FIELDS.get(name) if isinstance(name, str) else None
        if isinstance(name, str) and name.startswith("rfm."):
            kind = RFM_FIELDS.get(name[4:])
        if kind is None:
            known = [*GOLDEN_FIELDS, *(f"rfm.{column}" for column in RFM_FIELDS)]
            raise self.fail(f"{path}.field", f"unknown field {name!r}; expected one of {', '.join(known)}")
        op = self._one_op(data, path, FIELD_OPS)
        self._keys(data, path, {"field", op})
        raw = data[op]
        where = f"{path}.{op}"
        if op == "is_null":
            if not isinstance(raw, bool):
                raise self.fail(where, f"must be true or false, not {raw!r}")
            return FieldCondition(path, name, op, raw)
        if op in ("in", "not_in"):
            if not isinstance(raw, list) or not raw:
                raise self.fail(where, "must be a non-empty list of values")
            values = tuple(self._value(name, kind, item, f"{where}[{i}]") for i, item in enumerate(raw))
            return FieldCondition(path, name, op, values)
        return FieldCondition(path, name, op, self._value(name, kind, raw, where))

    def _value(self, name: str, kind: type, raw: object, where: str) -> Any:
        value: Any = raw
        if kind is date and isinstance(raw, str):
            try:
                value = date.fromisoformat(raw)
            except ValueError:
                raise self.fail(where, f"{raw!r} is not a date YYYY-MM-DD") from None
        elif kind is datetime and isinstance(raw, str):
            try:
                value = datetime.fromisoformat(raw)
            except ValueError:
                raise self.fail(where, f"{raw!r} is not an ISO 8601 time") from None
        elif kind is Decimal and isinstance(raw, int | float | str) and not isinstance(raw, bool):
            try:
                value = Decimal(str(raw))
            except InvalidOperation:
                raise self.fail(where, f"{raw!r} is not a number") from None
            if not value.is_finite():
                raise self.fail(where, f"{raw!r} is not a finite number")
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is date and isinstance(value, datetime):
            ok = False
        if kind is datetime and ok and (value.tzinfo is None or value.utcoffset() is None):
            raise self.fail(where, f"{raw!r} has no time zone")
        if not ok:
            raise self.fail(where, f"{name} compares with a {kind.__name__}, not {raw!r}")
        if name == "rfm.rfm_segment" and value not in RFM_SEGMENTS:
            raise self.fail(where, f"unknown RFM segment {value!r}; expected one of {', '.join(RFM_SEGMENTS)}")
        return value

    def _consent(self, data: Mapping[Any, Any], path: str) -> Rule:
        self._keys(data, path, {"consent"})
        spec = data["consent"]
        where = f"{path}.consent"
        if not isinstance(spec, Mapping):
            raise self.fail(where, "must be a mapping {purpose: ..., channel: ...}")
        self._keys(spec, where, {"purpose", "channel"})
        purpose, channel = spec.get("purpose"), spec.get("channel")
        for key, value in (("purpose", purpose), ("channel", channel)):
            if not isinstance(value, str) or not value:
                raise self.fail(f"{where}.{key}", f"must be a non-empty string, not {value!r}")
        return ConsentCondition(path, str(purpose), str(channel))

    def _window(self, data: Mapping[Any, Any], path: str) -> int:
        days = data.get("within_days")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_WINDOW_DAYS:
            raise self.fail(f"{path}.within_days", f"must be a whole number of days 1..{MAX_WINDOW_DAYS}, not {days!r}")
        return days

    def _count(self, data: Mapping[Any, Any], path: str) -> Rule:
        key = "count" if "count" in data else "none"
        days = self._window(data, path)
        if key == "none":
            self._keys(data, path, {"none", "within_days"})
            op, value = "eq", 0
        else:
            op = self._one_op(data, path, COUNT_OPS)
            self._keys(data, path, {"count", "within_days", op})
            raw = data[op]
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
                raise self.fail(f"{path}.{op}", f"must be a whole number >= 0, not {raw!r}")
            value = raw
        return CountCondition(path, self._filter(data[key], f"{path}.{key}"), days, op, value)

    def _filter(self, spec: object, where: str) -> EventFilter:
        if spec is None:
            return EventFilter()
        if not isinstance(spec, Mapping):
            raise self.fail(where, "must be a mapping of filters (action, channel, traffic_source, category_contains)")
        self._keys(spec, where, {"action", "channel", "traffic_source", "category_contains"})
        actions = self._texts(spec, "action", where)
        if actions is not None:
            for action in actions:
                if action not in ACTIONS:
                    raise self.fail(
                        f"{where}.action", f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
                    )
        contains = spec.get("category_contains")
        if contains is not None and (not isinstance(contains, str) or not contains.strip()):
            raise self.fail(f"{where}.category_contains", f"must be a non-empty string, not {contains!r}")
        return EventFilter(
            actions,
            self._texts(spec, "channel", where),
            self._texts(spec, "traffic_source", where),
            contains.strip().lower() if isinstance(contains, str) else None,
        )

    def _texts(self, spec: Mapping[Any, Any], key: str, where: str) -> tuple[str, ...] | None:
        if key not in spec:
            return None
        raw = spec[key]
        values = raw if isinstance(raw, list) else [raw]
        if not values or not all(isinstance(value, str) and value for value in values):
            raise self.fail(f"{where}.{key}", f"must be a string or a non-empty list of strings, not {raw!r}")
        return tuple(values)

    def _sum(self, data: Mapping[Any, Any], path: str) -> Rule:
        measure = data["sum"]
        if measure not in SUM_MEASURES:
            raise self.fail(f"{path}.sum", f"unknown measure {measure!r}; expected one of {', '.join(SUM_MEASURES)}")
        days = self._window(data, path)
        op = self._one_op(data, path, COUNT_OPS)
        self._keys(data, path, {"sum", "within_days", op})
        raw = data[op]
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise self.fail(f"{path}.{op}", f"must be a number, not {raw!r}")
        try:
            value = Decimal(str(raw))
        except InvalidOperation:
            raise self.fail(f"{path}.{op}", f"must be a number, not {raw!r}") from None
        if not value.is_finite():
            raise self.fail(f"{path}.{op}", f"must be a finite number, not {raw!r}")
        return SumCondition(path, str(measure), days, op, value)


def parse_rule(data: object, *, rule_id: str) -> Rule:
    """The rule that ``data`` (parsed YAML or JSON) states; InvalidInputError naming the rule and path."""
    return _Parser(rule_id).rule(data, "rule")


# --- the in-memory evaluator -------------------------------------------------------------------------------


def _field_value(condition: FieldCondition, state: CustomerState) -> Any:
    if condition.field.startswith("rfm."):
        return None if state.rfm is None else state.rfm.get(condition.field[4:])
    return state.golden.get(condition.field)


def _field_holds(condition: FieldCondition, state: CustomerState) -> bool:
    value = _field_value(condition, state)
    if condition.op == "is_null":
        return (value is None) is condition.value
    if value is None:
        return False
    try:
        if condition.op == "in":
            return bool(value in condition.value)
        if condition.op == "not_in":
            return bool(value not in condition.value)
        return _COMPARE[condition.op](value, condition.value)
    except TypeError:
        raise InvalidInputError(
            f"{condition.path}: {condition.field} of customer {state.customer_id!r} is {value!r}, "
            f"which does not compare with {condition.value!r}"
        ) from None


def _window(days: int, as_of: datetime) -> tuple[datetime, datetime]:
    # the bounds in UTC: aware datetimes of one tzinfo object compare fastest
    return (as_of - timedelta(days=days)).astimezone(UTC), as_of.astimezone(UTC)


def _matches(event: WebEvent, spec: EventFilter) -> bool:
    if spec.actions is not None and event.action not in spec.actions:
        return False
    if spec.channels is not None and event.channel not in spec.channels:
        return False
    if spec.traffic_sources is not None and event.traffic_source not in spec.traffic_sources:
        return False
    if spec.category_contains is not None:
        return event.category is not None and spec.category_contains in event.category.lower()
    return True


def _count(condition: CountCondition, state: CustomerState, as_of: datetime) -> int:
    start, end = _window(condition.within_days, as_of)
    return sum(
        1
        for event in state.events
        if isinstance(event, WebEvent) and start <= event.occurred_at <= end and _matches(event, condition.filter)
    )


def _order_sum(condition: SumCondition, state: CustomerState, as_of: datetime) -> Decimal:
    start, end = _window(condition.within_days, as_of)
    orders = [
        event
        for event in state.events
        if isinstance(event, OrderFact)
        and start <= event.occurred_at <= end
        and event.status not in UNCOUNTED_ORDER_STATUSES
    ]
    if condition.measure == "order_count":
        return Decimal(len(orders))
    return sum((order.total for order in orders), Decimal(0))


def leaf_holds(leaf: Leaf, state: CustomerState, as_of: datetime) -> bool:
    """Whether one condition (not a combination) holds for ``state`` at ``as_of``."""
    if isinstance(leaf, FieldCondition):
        return _field_holds(leaf, state)
    if isinstance(leaf, ConsentCondition):
        return (leaf.purpose, leaf.channel) in state.consent
    if isinstance(leaf, CountCondition):
        return _COMPARE[leaf.op](_count(leaf, state, as_of), leaf.value)
    return _COMPARE[leaf.op](_order_sum(leaf, state, as_of), leaf.value)


def evaluate(rule: Rule, state: CustomerState, as_of: datetime) -> bool:
    """Whether the customer whose state this is belongs to the rule's segment at ``as_of``."""
    if isinstance(rule, AllOf):
        return all(evaluate(child, state, as_of) for child in rule.children)
    if isinstance(rule, AnyOf):
        return any(evaluate(child, state, as_of) for child in rule.children)
    if isinstance(rule, Not):
        return not evaluate(rule.child, state, as_of)
    return leaf_holds(rule, state, as_of)


def leaves(rule: Rule) -> list[Leaf]:
    """The rule's conditions, depth first, in the order written."""
    if isinstance(rule, AllOf | AnyOf):
        return [leaf for child in rule.children for leaf in leaves(child)]
    if isinstance(rule, Not):
        return leaves(rule.child)
    return [rule]


def longest_window(rule: Rule) -> int:
    """The longest ``within_days`` of the rule's windowed conditions (0: none)."""
    return max(
        (leaf.within_days for leaf in leaves(rule) if isinstance(leaf, CountCondition | SumCondition)), default=0
    )


def describe(leaf: Leaf) -> str:
    """A condition in words, for membership reasons: ``count(action=add_to_cart) in 30 days gte 3``."""
    if isinstance(leaf, FieldCondition):
        return f"{leaf.field} {leaf.op} {leaf.value!r}"
    if isinstance(leaf, ConsentCondition):
        return f"consent to {leaf.purpose} by {leaf.channel}"
    if isinstance(leaf, SumCondition):
        return f"sum({leaf.measure}) in {leaf.within_days} days {leaf.op} {leaf.value}"
    parts = [
        f"{name}={'|'.join(values)}"
        for name, values in (
            ("action", leaf.filter.actions),
            ("channel", leaf.filter.channels),
            ("traffic_source", leaf.filter.traffic_sources),
        )
        if values is not None
    ]
    if leaf.filter.category_contains is not None:
        parts.append(f"category~{leaf.filter.category_contains}")
    return f"count({', '.join(parts)}) in {leaf.within_days} days {leaf.op} {leaf.value}"
