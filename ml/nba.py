"""Next-best-action: products from basket co-occurrence and the best channel the customer consented to.

Association rules ``A -> B`` (one product to one product) are mined in DuckDB from baskets: the
distinct products of each order that was neither cancelled nor returned. ``support`` is the share of
baskets holding both, ``confidence`` the share of baskets with A that also hold B, ``lift`` the
confidence over B's own share (above 1: A makes B more likely). A customer is offered the consequents
of rules whose antecedent they bought, leaving out what they already bought, best confidence first.

The channel is chosen among those the caller says the customer consented to (consent is decided by
the kernel's consent model, not here), by the customer's engagement on each channel in the snapshot;
without any engagement, the first consented channel of :data:`CHANNEL_PREFERENCE` (cheapest first).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa
from c360.graph.consent import check_channel
from c360.graph.errors import InvalidInputError


@dataclass(frozen=True)
class Rule:
    """``antecedent -> consequent`` with its basket count, support, confidence and lift."""

    antecedent: str
    consequent: str
    baskets: int
    support: float
    confidence: float
    lift: float


@dataclass(frozen=True)
class ProductRecommendation:
    """A product to offer, the rule that suggests it and that rule's confidence and lift."""

    product_id: str
    because_of: str
    confidence: float
    lift: float


@dataclass(frozen=True)
class ChannelChoice:
    """The channel to reach a customer on, its engagement count and why it was chosen."""

    channel: str
    engagement: int
    reason: str


#: Cheapest first: the tie-break among consented channels with equal engagement.
CHANNEL_PREFERENCE: tuple[str, ...] = ("email", "push", "web", "sms", "phone", "post", "in_person")

#: What counts as engagement on each channel (channels without a signal in the snapshot count zero).
CHANNEL_EVIDENCE: Mapping[str, str] = {
    "email": "web sessions arriving from email",
    "push": "app sessions",
    "web": "web sessions",
    "phone": "call-centre orders",
    "in_person": "store orders",
}

_BASKETS = """
baskets AS (
    SELECT DISTINCT li.source, li.order_id, li.product_id
    FROM line_items li JOIN orders o ON o.source = li.source AND o.order_id = li.order_id
    WHERE coalesce(o.status, '') NOT IN ('cancelled', 'returned') AND li.product_id IS NOT NULL
)"""

_RULES_SQL = f"""
WITH {_BASKETS},
total AS (SELECT count(DISTINCT (source, order_id)) AS n FROM baskets),
items AS (SELECT product_id, count(*) AS k FROM baskets GROUP BY product_id),
pairs AS (
    SELECT a.product_id AS antecedent, b.product_id AS consequent, count(*) AS k
    FROM baskets a JOIN baskets b
        ON a.source = b.source AND a.order_id = b.order_id AND a.product_id <> b.product_id
    GROUP BY ALL
)
SELECT p.antecedent, p.consequent, p.k,
    p.k / t.n AS support, p.k / ia.k AS confidence, (p.k / ia.k) / (ib.k / t.n) AS lift
FROM pairs p, total t
JOIN items ia ON ia.product_id = p.antecedent
JOIN items ib ON ib.product_id = p.consequent
WHERE p.k >= $min_baskets AND p.k / t.n >= $min_support
    AND p.k / ia.k >= $min_confidence AND (p.k / ia.k) / (ib.k / t.n) >= $min_lift
ORDER BY lift DESC, confidence DESC, p.antecedent, p.consequent
LIMIT $max_rules
"""

_RECOMMEND_SQL = f"""
WITH {_BASKETS},
bought AS (
    SELECT DISTINCT o.customer_id, b.product_id
    FROM baskets b JOIN orders o ON o.source = b.source AND o.order_id = b.order_id
    WHERE o.customer_id IS NOT NULL
),
offers AS (
    SELECT bought.customer_id, r.consequent, r.antecedent, r.confidence, r.lift,
        row_number() OVER (PARTITION BY bought.customer_id, r.consequent
                           ORDER BY r.confidence DESC, r.lift DESC, r.antecedent) AS best_rule
    FROM bought JOIN c360_rules r ON r.antecedent = bought.product_id
    WHERE NOT EXISTS (
        SELECT 1 FROM bought mine WHERE mine.customer_id = bought.customer_id AND mine.product_id = r.consequent
    )
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY confidence DESC, lift DESC, consequent) AS rank
    FROM offers WHERE best_rule = 1
)
SELECT customer_id, consequent, antecedent, confidence, lift FROM ranked
WHERE rank <= $top_n ORDER BY customer_id, rank
"""

_ENGAGEMENT_SQL = """
SELECT customer_id, 'email' AS channel, count(DISTINCT session_id) AS n FROM web_events
    WHERE traffic_source = 'email' AND occurred_at >= $since AND occurred_at < $until GROUP BY customer_id
UNION ALL
SELECT customer_id, 'push', count(DISTINCT session_id) FROM web_events
    WHERE channel = 'app' AND occurred_at >= $since AND occurred_at < $until GROUP BY customer_id
UNION ALL
SELECT customer_id, 'web', count(DISTINCT session_id) FROM web_events
    WHERE channel = 'web' AND occurred_at >= $since AND occurred_at < $until GROUP BY customer_id
UNION ALL
SELECT customer_id, CASE channel WHEN 'store' THEN 'in_person' ELSE 'phone' END, count(*) FROM orders
    WHERE channel IN ('store', 'call_center') AND occurred_at >= $since AND occurred_at < $until
    GROUP BY ALL
"""


def _fraction(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


def mine_rules(
    con: duckdb.DuckDBPyConnection,
    *,
    min_support: float = 0.005,
    min_confidence: float = 0.1,
    min_lift: float = 1.0,
    min_baskets: int = 5,
    max_rules: int = 10_000,
) -> tuple[Rule, ...]:
    """One-to-one association rules over the snapshot's baskets that pass every threshold, best lift first."""
    params = {
        "min_support": _fraction("min_support", min_support),
        "min_confidence": _fraction("min_confidence", min_confidence),
        "min_lift": float(min_lift),
        "min_baskets": min_baskets,
        "max_rules": max_rules,
    }
    if not isinstance(min_lift, int | float) or min_lift < 0:
        raise InvalidInputError(f"min_lift must be a non-negative number, got {min_lift!r}")
    for name in ("min_baskets", "max_rules"):
        if not isinstance(params[name], int) or int(params[name]) < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {params[name]!r}")
    rows = con.execute(_RULES_SQL, params).fetchall()
    return tuple(
        Rule(antecedent=a, consequent=c, baskets=int(k), support=float(s), confidence=float(conf), lift=float(lift))
        for a, c, k, s, conf, lift in rows
    )


def recommend_products(
    con: duckdb.DuckDBPyConnection, rules: Collection[Rule], *, top_n: int = 3
) -> dict[str, tuple[ProductRecommendation, ...]]:
    """Up to ``top_n`` products per customer from ``rules``, none of which they already bought."""
    if not isinstance(top_n, int) or top_n < 1:
        raise InvalidInputError(f"top_n must be a positive integer, got {top_n!r}")
    if not rules:
        return {}
    table = pa.table(
        {
            "antecedent": [r.antecedent for r in rules],
            "consequent": [r.consequent for r in rules],
            "confidence": [r.confidence for r in rules],
            "lift": [r.lift for r in rules],
        }
    )
    con.register("c360_rules", table)
    try:
        rows = con.execute(_RECOMMEND_SQL, {"top_n": top_n}).fetchall()
    finally:
        con.unregister("c360_rules")
    out: dict[str, list[ProductRecommendation]] = {}
    for cid, product, because, confidence, lift in rows:
        out.setdefault(cid, []).append(
            ProductRecommendation(
                product_id=product, because_of=because, confidence=float(confidence), lift=float(lift)
            )
        )
    return {cid: tuple(recs) for cid, recs in out.items()}


def best_channels(
    con: duckdb.DuckDBPyConnection,
    consented: Mapping[str, Collection[str]],
    *,
    as_of: datetime,
    window_days: int = 180,
) -> dict[str, ChannelChoice | None]:
    """For each customer of ``consented``, the consented channel they engage with most (None: no consent)."""
    if as_of.tzinfo is None:
        raise InvalidInputError("as_of must be timezone-aware")
    if not isinstance(window_days, int) or window_days < 1:
        raise InvalidInputError(f"window_days must be a positive number of days, got {window_days!r}")
    allowed = {cid: {check_channel(ch) for ch in channels} for cid, channels in consented.items()}
    engagement: dict[tuple[str, str], int] = {}
    params = {"since": as_of - timedelta(days=window_days), "until": as_of}
    for cid, channel, n in con.execute(_ENGAGEMENT_SQL, params).fetchall():
        if cid in allowed:
            engagement[(cid, channel)] = engagement.get((cid, channel), 0) + int(n)
    out: dict[str, ChannelChoice | None] = {}
    for cid, channels in allowed.items():
        if not channels:
            out[cid] = None
            continue
        ranked = sorted(channels, key=lambda ch: (-engagement.get((cid, ch), 0), CHANNEL_PREFERENCE.index(ch)))
        best = ranked[0]
        n = engagement.get((cid, best), 0)
        if n:
            reason = f"{n} {CHANNEL_EVIDENCE[best]} in the last {window_days} days"
        else:
            reason = f"no engagement on a consented channel in the last {window_days} days; {best} is the cheapest"
        out[cid] = ChannelChoice(channel=best, engagement=n, reason=reason)
    return out
