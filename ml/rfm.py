"""Recency, frequency and monetary scores per customer, and the named RFM segments (issue 17, point 3).

Everything is one DuckDB statement over the snapshot's ``customers`` and ``orders`` tables; no Python
loops over customers. Counted orders are those placed at or before ``as_of`` whose status is not
cancelled or returned (:data:`UNCOUNTED_ORDER_STATUSES`; the segment rules count orders the same way).

Scores are quintiles 1..5 from the rank of each value: ``1 + floor(5 * (rank - 1) / n)``, where
``rank`` is SQL ``RANK()`` (ties share the lowest rank), so equal values always get equal scores and
the result depends only on the data and ``as_of``. Recency scores 5 for the most recent buyers;
frequency and monetary score 5 for the most orders and the most spent. Customers without a counted
order get NULL recency and scores and the segment :data:`NO_ORDERS`.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
from c360.graph.errors import InvalidInputError
from c360.graph.models import aware

#: Order statuses that do not count as purchases (RFM and the rule segments' order sums).
UNCOUNTED_ORDER_STATUSES: tuple[str, ...] = ("cancelled", "returned")
#: The segment of a customer without a counted order.
NO_ORDERS = "no orders"
#: Every segment :func:`compute_rfm` assigns.
RFM_SEGMENTS: tuple[str, ...] = (
    "champions",
    "cannot lose",
    "loyal",
    "new",
    "promising",
    "potential loyalists",
    "need attention",
    "about to sleep",
    "at risk",
    "lost",
    "hibernating",
    NO_ORDERS,
)

# The segment grid of Putler, "RFM Analysis For Successful Customer Segmentation"
# (https://www.putler.com/rfm-analysis/): recency R against the mean of F and M (here fm2 = F + M, twice
# that mean, to stay in integers). Putler's ranges overlap and leave "can't lose them" and "lost"
# unreachable when read first-match in its own order; this order (first match wins) reaches every name
# and covers all 125 score triples:
#   champions R 4-5, FM 4-5 | cannot lose R 1, FM 4-5 | loyal R 2-5, FM 3-5 | new R 4-5, FM 1 |
#   promising R 3-4, FM 1 | potential loyalists R 3-5, FM 1-3 | need attention R 2-3, FM 2-3 |
#   about to sleep R 2-3, FM 1-2 | at risk R 1-2, FM 2-5 | lost R 1, FM 1 | hibernating (the rest: R 1, FM 1.5)
_SEGMENT_CASE = f"""
CASE
  WHEN r IS NULL THEN '{NO_ORDERS}'
  WHEN r >= 4 AND fm2 >= 8 THEN 'champions'
  WHEN r = 1 AND fm2 >= 8 THEN 'cannot lose'
  WHEN r >= 2 AND fm2 >= 6 THEN 'loyal'
  WHEN r >= 4 AND fm2 = 2 THEN 'new'
  WHEN r = 3 AND fm2 = 2 THEN 'promising'
  WHEN r >= 3 THEN 'potential loyalists'
  WHEN r = 2 AND fm2 >= 4 THEN 'need attention'
  WHEN r = 2 THEN 'about to sleep'
  WHEN fm2 >= 4 THEN 'at risk'
  WHEN fm2 = 2 THEN 'lost'
  ELSE 'hibernating'
END"""

_SCORE = "CAST(1 + floor(5 * (RANK() OVER (ORDER BY {value}) - 1) / count(*) OVER ()) AS INTEGER)"

_RFM_SQL = f"""
CREATE OR REPLACE TABLE rfm AS
WITH counted AS (
  SELECT customer_id,
         max(occurred_at) AS last_order_at,
         count(*) AS frequency,
         sum(total) AS monetary
  FROM orders
  WHERE occurred_at <= $as_of AND status NOT IN (SELECT unnest($uncounted))
  GROUP BY customer_id
),
scored AS (
  SELECT customer_id,
         CAST(floor((epoch($as_of) - epoch(last_order_at)) / 86400) AS INTEGER) AS recency_days,
         frequency,
         monetary,
         {_SCORE.format(value="last_order_at")} AS r,
         {_SCORE.format(value="frequency")} AS f,
         {_SCORE.format(value="monetary")} AS m
  FROM counted
  WHERE customer_id IN (SELECT customer_id FROM customers)
)
SELECT customer_id, recency_days, frequency, monetary, r, f, m, {_SEGMENT_CASE} AS rfm_segment
FROM (
  SELECT c.customer_id,
         s.recency_days,
         CAST(coalesce(s.frequency, 0) AS BIGINT) AS frequency,
         CAST(coalesce(s.monetary, 0) AS DECIMAL(38, 2)) AS monetary,
         s.r, s.f, s.m, s.f + s.m AS fm2
  FROM customers c LEFT JOIN scored s USING (customer_id)
)
ORDER BY customer_id
"""


def compute_rfm(con: duckdb.DuckDBPyConnection, *, as_of: datetime) -> int:
    """(Re)write table ``rfm`` for every customer as of ``as_of``; returns its number of rows.

    Columns: ``customer_id``, ``recency_days`` (whole days since the last counted order, NULL without
    one), ``frequency`` (counted orders), ``monetary`` (their total), ``r``, ``f``, ``m`` (quintile
    scores 1..5, NULL without orders) and ``rfm_segment`` (one of :data:`RFM_SEGMENTS`).
    """
    aware("as_of", as_of)
    try:
        con.execute(_RFM_SQL, {"as_of": as_of, "uncounted": list(UNCOUNTED_ORDER_STATUSES)})
        rows = con.execute("SELECT count(*) FROM rfm").fetchall()  # fetch to the end: the connection is free
    except duckdb.CatalogException as error:
        raise InvalidInputError(f"the snapshot lacks a table RFM needs (customers, orders): {error}") from error
    return int(rows[0][0])
