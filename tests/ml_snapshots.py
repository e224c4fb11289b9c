"""Synthetic ML snapshots (the writer's schema of DATA_DIR/ml/snapshot.duckdb) with planted signals.

Each customer belongs to a persona: how often they order, how much they spend, how much they browse,
and whether they fade (their order rate falls to zero at a random stop day). Baskets hold a planted
association: a basket with ``antecedent`` gets ``consequent`` with probability ``rule_strength``.

Opt-in (``Shape.anomalies > 0``): that many customers get one planted anomalous episode each, in turn
card testing (5-9 small declined payments within half an hour), an amount 20x their usual, or a payment
with a new method that is later charged back. Their own random stream plants them after everything else,
so a shape's other rows are the same with or without them; ``Truth.anomalous`` names the planted rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from c360.ml.snapshot_sql import GOLDEN_FIELDS, SCHEMA  # the snapshot writer's own DDL and columns

START = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Persona:
    """Behaviour of a group of customers: orders per 30 days, mean order value, web sessions per 30 days."""

    name: str
    share: float
    rate: float
    value: float
    sessions: float
    fade: float  # probability that a customer of this persona stops ordering at a random day
    carts_per_session: float = 0.3
    app: float = 0.2  # share of sessions in the app
    email: float = 0.1  # share of sessions arriving from email


@dataclass(frozen=True)
class Shape:
    """One generator configuration."""

    customers: int
    days: int
    personas: tuple[Persona, ...]
    products: int = 40
    antecedent: str = "P007"
    consequent: str = "P013"
    rule_strength: float = 0.8
    seed: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    anomalies: int = 0  # customers with a planted anomalous episode (0: none, the shape unchanged)


@dataclass(frozen=True)
class Truth:
    """What the generator planted, per customer id."""

    persona: dict[str, str]
    stop_day: dict[str, float]  # inf: never stops
    anomalous: frozenset[tuple[str, str]] = frozenset()  # (source, transaction_id) of planted anomalies


def build(path: Path, shape: Shape) -> Truth:
    """Write a snapshot of ``shape`` at ``path`` and return what was planted."""
    rng = np.random.default_rng(shape.seed)
    products = [f"P{i:03d}" for i in range(shape.products)]
    categories = ["shoes", "bags", "beauty", "home", "kids", "sport"]
    popularity = rng.dirichlet(np.ones(shape.products) * 2.0)
    a, b = products.index(shape.antecedent), products.index(shape.consequent)
    popularity[b] = popularity[b] * 0.3  # the consequent is rarely bought on its own
    popularity /= popularity.sum()
    cumulative = np.cumsum(popularity)
    cumulative[-1] = 1.0
    price = rng.uniform(5, 80, shape.products)
    cust, orders, items, txs, web = [], [], [], [], []
    persona_of: dict[str, str] = {}
    stop_of: dict[str, float] = {}
    shares = np.array([p.share for p in shape.personas])
    picks = rng.choice(len(shape.personas), size=shape.customers, p=shares / shares.sum())
    n_event = 0
    for c in range(shape.customers):
        cid = f"C{c:05d}"
        persona = shape.personas[picks[c]]
        persona_of[cid] = persona.name
        joined = float(rng.uniform(0, shape.days * 0.25))
        stop = float(rng.uniform(joined, shape.days)) if rng.random() < persona.fade else float("inf")
        stop_of[cid] = stop
        created = START + timedelta(days=joined)
        cust.append(
            (
                cid,
                f"F{c}",
                f"L{c}",
                f"c{c}@example.com",
                None,
                None,
                None,
                "Austin",
                "TX",
                "US",
                "73301",
                created,
                created,
            )
        )
        level = persona.value * rng.lognormal(0, 0.3)
        rate = persona.rate * rng.lognormal(0, 0.3)
        # Orders: a Poisson process from joining until the stop day (or the end).
        until = min(stop, shape.days)
        times = np.sort(rng.uniform(joined, until, rng.poisson(rate * (until - joined) / 30.0)))
        sizes = rng.integers(1, 4, len(times))
        draws = np.searchsorted(cumulative, rng.random((len(times), 3)))
        for t, size, draw, chance in zip(times, sizes, draws, rng.random(len(times)), strict=True):
            oid = f"O{len(orders):06d}"
            basket = {int(x) for x in draw[:size]}
            if a in basket and chance < shape.rule_strength:
                basket.add(b)
            total = 0.0
            for j, p in enumerate(sorted(basket)):
                unit = round(float(price[p]) * level / 40.0, 2)
                total += unit
                items.append(("shop", oid, f"{oid}-{j}", products[p], 1, unit, 0.0))
            when = START + timedelta(days=float(t))
            status = "cancelled" if chance > 0.97 else "delivered"
            orders.append((oid, "shop", cid, when, status, "web", "EUR", round(total, 2)))
            txs.append(
                (f"T{len(txs):06d}", "shop", cid, oid, when, "payment", round(total, 2), "EUR", "card", "settled")
            )
            if chance < 0.05:
                txs.append(
                    (
                        f"T{len(txs):06d}",
                        "shop",
                        cid,
                        oid,
                        when + timedelta(days=3),
                        "refund",
                        round(total, 2),
                        "EUR",
                        "card",
                        "settled",
                    )
                )
        # Web sessions: browsing fades with ordering (ten days later).
        until = min(stop + 10, shape.days)
        sessions = rng.uniform(joined, until, rng.poisson(persona.sessions * (until - joined) / 30.0))
        for t in sessions:
            sid = f"S{n_event:07d}"
            channel = "app" if rng.random() < persona.app else "web"
            source = "email" if rng.random() < persona.email else "organic"
            when = START + timedelta(days=float(t))
            for k in range(int(rng.integers(1, 4))):
                roll = rng.random()
                action = (
                    "add_to_cart"
                    if roll < persona.carts_per_session
                    else "add_to_favourites"
                    if roll > 0.95
                    else "product_view"
                )
                web.append(
                    (
                        f"E{n_event:08d}",
                        cid,
                        when + timedelta(minutes=k),
                        action,
                        sid,
                        products[int(rng.integers(shape.products))],
                        None,
                        channel,
                        source,
                    )
                )
                n_event += 1
    anomalous = _plant_anomalies(txs, shape) if shape.anomalies else frozenset()
    con = duckdb.connect(str(path))
    con.execute(SCHEMA)
    _insert(
        con,
        "customers",
        cust,
        ["customer_id", *GOLDEN_FIELDS, "created_at", "updated_at"],
    )
    _insert(
        con,
        "orders",
        orders,
        ["order_id", "source", "customer_id", "occurred_at", "status", "channel", "currency", "total"],
    )
    _insert(
        con, "line_items", items, ["source", "order_id", "line_id", "product_id", "quantity", "unit_price", "discount"]
    )
    _insert(
        con,
        "transactions",
        txs,
        [
            "transaction_id",
            "source",
            "customer_id",
            "order_id",
            "occurred_at",
            "kind",
            "amount",
            "currency",
            "payment_method",
            "status",
        ],
    )
    _insert(
        con,
        "web_events",
        web,
        [
            "event_id",
            "customer_id",
            "occurred_at",
            "action",
            "session_id",
            "product_id",
            "order_id",
            "channel",
            "traffic_source",
        ],
    )
    prods = [
        (p, f"Product {p}", "B1", categories[i % len(categories)], round(float(price[i]), 2))
        for i, p in enumerate(products)
    ]
    _insert(con, "products", prods, ["product_id", "name", "brand_id", "category", "price"])
    con.execute("INSERT INTO snapshot_meta VALUES ('generator', 'tests.ml_snapshots')")
    con.close()
    return Truth(persona=persona_of, stop_day=stop_of, anomalous=anomalous)


def _plant_anomalies(txs: list[tuple[object, ...]], shape: Shape) -> frozenset[tuple[str, str]]:
    """Append the planted episodes to ``txs`` (see the module docstring); the keys of the planted rows."""
    rng = np.random.default_rng(shape.seed + 1_000_003)  # apart from the shape's own stream
    payments: dict[str, list[tuple[datetime, float]]] = {}
    for t in txs:
        if t[5] == "payment":
            payments.setdefault(str(t[2]), []).append((t[4], float(t[6])))  # type: ignore[arg-type]
    eligible = sorted(c for c, p in payments.items() if len(p) >= 4)
    chosen = rng.choice(len(eligible), size=min(shape.anomalies, len(eligible)), replace=False)
    planted: list[tuple[str, str]] = []

    def add(cid: str, when: datetime, kind: str, amount: float, method: str, status: str, order: str | None) -> None:
        tid = f"T{len(txs):06d}"
        txs.append((tid, "shop", cid, order, when, kind, round(amount, 2), "EUR", method, status))
        planted.append(("shop", tid))

    for n, pick in enumerate(sorted(int(i) for i in chosen)):
        cid = eligible[pick]
        history = sorted(payments[cid])
        at, _ = history[int(rng.integers(3, len(history)))]
        at = min(at + timedelta(hours=float(rng.uniform(1, 48))), START + timedelta(days=shape.days - 1))
        usual = float(np.median([a for _, a in history]))
        if n % 3 == 0:  # card testing: a burst of small declined payments
            for k in range(int(rng.integers(5, 10))):
                add(cid, at + timedelta(minutes=3 * k + float(rng.uniform(0, 2))), "payment",
                    float(rng.uniform(0.5, 3)), "card", "declined", None)  # fmt: skip
        elif n % 3 == 1:  # an amount twenty times the customer's usual
            add(cid, at, "payment", 20 * usual, "card", "settled", f"XA{n:05d}")
        else:  # a new payment method, charged back weeks later
            order = f"XC{n:05d}"
            add(cid, at, "payment", usual * float(rng.uniform(1.5, 3)), "wallet", "settled", order)
            add(cid, at + timedelta(days=float(rng.uniform(10, 30))), "chargeback", usual, "wallet", "settled", order)
    return frozenset(planted)


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple[object, ...]], names: list[str]) -> None:
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    arrow = pa.table(
        {
            name: pa.array(list(col)) if any(v is not None for v in col) else pa.nulls(len(col))
            for name, col in zip(names, columns, strict=True)
        }
    )
    con.register("incoming", arrow)
    con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
    con.unregister("incoming")


def day(n: float) -> datetime:
    """The snapshot's day ``n`` as a timestamp."""
    return START + timedelta(days=n)
