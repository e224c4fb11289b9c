"""Per-customer features of a snapshot as of a date, computed in DuckDB SQL.

Every model of ``c360.ml`` reads the same features: recency, frequency and monetary value of orders,
tenure, web actions in recent windows, breadth of categories and refunds. Only events strictly before
``as_of`` count, so the features of a past date are what was known then (the churn and lifetime-value
models train on past dates and validate on later ones). Cancelled and returned orders count neither
as orders nor as spend. Amounts are summed as stored: the snapshot is assumed to hold one currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
from c360.graph.errors import InvalidInputError, NotFoundError

#: The features, in column order, of every :class:`FeatureMatrix`.
FEATURE_NAMES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "orders_90d",
    "spend_90d",
    "views_30d",
    "favourites_30d",
    "carts_30d",
    "sessions_30d",
    "views_90d",
    "carts_90d",
    "distinct_categories",
    "refunds",
)

#: Orders in these statuses are neither orders nor spend.
VOID_STATUSES: tuple[str, ...] = ("cancelled", "returned")

_DAY = 86400.0

# One row per customer known at as_of ($1): one whose first sign (the store's created_at, or an earlier
# order, web event or payment: history loaded after the fact) is before it. Windows are in days before
# as_of. A customer who never ordered has recency equal to tenure (as if their first order were due on the
# day they arrived).
_FEATURES_SQL = """
WITH first_seen AS (
    SELECT customer_id, min(occurred_at) AS first_at FROM (
        SELECT customer_id, occurred_at FROM orders
        UNION ALL SELECT customer_id, occurred_at FROM web_events
        UNION ALL SELECT customer_id, occurred_at FROM transactions
    ) GROUP BY customer_id
),
c AS (
    SELECT customer_id, least(created_at, first_at) AS created_at
    FROM customers LEFT JOIN first_seen USING (customer_id)
    WHERE least(created_at, first_at) IS NULL OR least(created_at, first_at) < $1::TIMESTAMPTZ
),
o AS (
    SELECT DISTINCT ON (source, order_id) source, order_id, customer_id, occurred_at, total
    FROM orders
    WHERE occurred_at < $1::TIMESTAMPTZ AND coalesce(status, '') NOT IN ('cancelled', 'returned')
),
ord AS (
    SELECT customer_id,
        (epoch($1::TIMESTAMPTZ) - epoch(max(occurred_at))) / 86400.0 AS recency_days,
        min(occurred_at) AS first_order,
        count(*) AS frequency,
        sum(total)::DOUBLE AS monetary,
        count(*) FILTER (WHERE occurred_at >= $1::TIMESTAMPTZ - INTERVAL 90 DAY) AS orders_90d,
        coalesce(sum(total) FILTER (WHERE occurred_at >= $1::TIMESTAMPTZ - INTERVAL 90 DAY), 0)::DOUBLE
            AS spend_90d
    FROM o GROUP BY customer_id
),
web AS (
    SELECT customer_id,
        min(occurred_at) AS first_event,
        count(*) FILTER (WHERE action = 'product_view' AND occurred_at >= $1::TIMESTAMPTZ - INTERVAL 30 DAY)
            AS views_30d,
        count(*) FILTER (WHERE action = 'add_to_favourites' AND occurred_at >= $1::TIMESTAMPTZ - INTERVAL 30 DAY)
            AS favourites_30d,
        count(*) FILTER (WHERE action = 'add_to_cart' AND occurred_at >= $1::TIMESTAMPTZ - INTERVAL 30 DAY)
            AS carts_30d,
        count(DISTINCT session_id) FILTER (WHERE occurred_at >= $1::TIMESTAMPTZ - INTERVAL 30 DAY)
            AS sessions_30d,
        count(*) FILTER (WHERE action = 'product_view' AND occurred_at >= $1::TIMESTAMPTZ - INTERVAL 90 DAY)
            AS views_90d,
        count(*) FILTER (WHERE action = 'add_to_cart' AND occurred_at >= $1::TIMESTAMPTZ - INTERVAL 90 DAY)
            AS carts_90d
    FROM web_events WHERE occurred_at < $1::TIMESTAMPTZ GROUP BY customer_id
),
cat AS (
    SELECT o.customer_id, count(DISTINCT p.category) AS distinct_categories
    FROM o JOIN line_items li ON li.source = o.source AND li.order_id = o.order_id
    JOIN products p ON p.product_id = li.product_id
    GROUP BY o.customer_id
),
ref AS (
    SELECT customer_id, count(*) AS refunds FROM transactions
    WHERE occurred_at < $1::TIMESTAMPTZ AND kind IN ('refund', 'chargeback')
    GROUP BY customer_id
),
base AS (
    SELECT c.customer_id,
        greatest(0.0, (epoch($1::TIMESTAMPTZ)
            - epoch(coalesce(c.created_at, least(ord.first_order, web.first_event), $1::TIMESTAMPTZ))) / 86400.0)
            AS tenure_days,
        ord.recency_days, ord.frequency, ord.monetary, ord.orders_90d, ord.spend_90d,
        web.views_30d, web.favourites_30d, web.carts_30d, web.sessions_30d, web.views_90d, web.carts_90d,
        cat.distinct_categories, ref.refunds
    FROM c
    LEFT JOIN ord USING (customer_id) LEFT JOIN web USING (customer_id)
    LEFT JOIN cat USING (customer_id) LEFT JOIN ref USING (customer_id)
)
SELECT customer_id,
    coalesce(recency_days, tenure_days)::DOUBLE AS recency_days,
    coalesce(frequency, 0)::DOUBLE AS frequency,
    coalesce(monetary, 0)::DOUBLE AS monetary,
    coalesce(monetary / nullif(frequency, 0), 0)::DOUBLE AS avg_order_value,
    tenure_days::DOUBLE AS tenure_days,
    coalesce(orders_90d, 0)::DOUBLE AS orders_90d,
    coalesce(spend_90d, 0)::DOUBLE AS spend_90d,
    coalesce(views_30d, 0)::DOUBLE AS views_30d,
    coalesce(favourites_30d, 0)::DOUBLE AS favourites_30d,
    coalesce(carts_30d, 0)::DOUBLE AS carts_30d,
    coalesce(sessions_30d, 0)::DOUBLE AS sessions_30d,
    coalesce(views_90d, 0)::DOUBLE AS views_90d,
    coalesce(carts_90d, 0)::DOUBLE AS carts_90d,
    coalesce(distinct_categories, 0)::DOUBLE AS distinct_categories,
    coalesce(refunds, 0)::DOUBLE AS refunds
FROM base ORDER BY customer_id
"""

# Orders and spend per customer in [start, end), for labels (churn) and targets (lifetime value).
_ACTIVITY_SQL = """
SELECT customer_id, count(*)::DOUBLE AS orders, coalesce(sum(total), 0)::DOUBLE AS spend
FROM (
    SELECT DISTINCT ON (source, order_id) customer_id, total FROM orders
    WHERE occurred_at >= $1::TIMESTAMPTZ AND occurred_at < $2::TIMESTAMPTZ
        AND coalesce(status, '') NOT IN ('cancelled', 'returned')
)
GROUP BY customer_id
"""


@dataclass(frozen=True, eq=False)
class FeatureMatrix:
    """Features of customers as of a date: row ``i`` of ``values`` belongs to ``customer_ids[i]``."""

    as_of: datetime
    customer_ids: tuple[str, ...]
    names: tuple[str, ...]
    values: npt.NDArray[np.float64]

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """The values of one feature, in row order."""
        if name not in self.names:
            raise InvalidInputError(f"unknown feature {name!r}; known: {', '.join(self.names)}")
        return self.values[:, self.names.index(name)]

    def rows(self, customer_ids: Sequence[str]) -> npt.NDArray[np.intp]:
        """Row indices of ``customer_ids``; InvalidInputError names the first unknown one."""
        index = {cid: i for i, cid in enumerate(self.customer_ids)}
        missing = [cid for cid in customer_ids if cid not in index]
        if missing:
            raise InvalidInputError(f"{len(missing)} customers have no features, e.g. {missing[0]!r}")
        return np.fromiter((index[cid] for cid in customer_ids), dtype=np.intp, count=len(customer_ids))


@dataclass(frozen=True, eq=False)
class Activity:
    """Orders and spend per customer in a period, aligned with a feature matrix's rows."""

    start: datetime
    end: datetime
    orders: npt.NDArray[np.float64]
    spend: npt.NDArray[np.float64]


def open_snapshot(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the snapshot database at ``path`` read-only; NotFoundError when it does not exist."""
    if not path.is_file():
        raise NotFoundError(f"no snapshot at {path}")
    return duckdb.connect(str(path), read_only=True)


def _check_time(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} must be timezone-aware, got {value.isoformat()}")


def compute_features(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> FeatureMatrix:
    """The features (:data:`FEATURE_NAMES`) of every customer known before ``as_of``, from events before it."""
    _check_time("as_of", as_of)
    try:
        columns = con.execute(_FEATURES_SQL, [as_of]).fetchnumpy()
    except duckdb.Error as error:
        raise InvalidInputError(f"the snapshot cannot be read as the ML schema: {error}") from error
    ids = tuple(str(cid) for cid in columns["customer_id"])
    if ids:
        values = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in FEATURE_NAMES])
    else:
        values = np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    return FeatureMatrix(as_of=as_of, customer_ids=ids, names=FEATURE_NAMES, values=values)


def activity_between(
    con: duckdb.DuckDBPyConnection, features: FeatureMatrix, *, start: datetime, end: datetime
) -> Activity:
    """Orders and spend in ``[start, end)`` of each customer of ``features`` (zero for those without)."""
    _check_time("start", start)
    _check_time("end", end)
    if end <= start:
        raise InvalidInputError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    try:
        rows = con.execute(_ACTIVITY_SQL, [start, end]).fetchall()
    except duckdb.Error as error:
        raise InvalidInputError(f"the snapshot cannot be read as the ML schema: {error}") from error
    index = {cid: i for i, cid in enumerate(features.customer_ids)}
    orders = np.zeros(len(index), dtype=np.float64)
    spend = np.zeros(len(index), dtype=np.float64)
    for cid, n, total in rows:
        i = index.get(cid)
        if i is not None:
            orders[i] = n
            spend[i] = total
    return Activity(start=start, end=end, orders=orders, spend=spend)


def transform(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Compress the long tails of counts and amounts (``sign(x) * log1p(|x|)``) before scaling."""
    return np.sign(values) * np.log1p(np.abs(values))
