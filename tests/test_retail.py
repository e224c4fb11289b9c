from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from c360.connectors.synthetic.retail import RetailSet, Shopper, generate_retail, shoppers_from_keys
from c360.graph.errors import InvalidInputError
from c360.streams.events import JOURNEY_TYPES, parse_event

UNTIL = datetime(2026, 6, 1, tzinfo=UTC)


def _shoppers(n: int = 300, seed: int = 3) -> list[Shopper]:
    keys = [("webshop" if i % 3 else "crm", f"K{i:05d}") for i in range(n)]
    return shoppers_from_keys(keys, start=datetime(2026, 5, 1, tzinfo=UTC), seed=seed)


@pytest.fixture(scope="module")
def shoppers() -> list[Shopper]:
    # one shopper with almost no time, one in another time zone, one who starts exactly at until
    extra = [
        Shopper("app", "late", UNTIL - timedelta(minutes=3)),
        Shopper("app", "tz", datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=5)))),
        Shopper("app", "edge", UNTIL),
    ]
    return _shoppers() + extra


@pytest.fixture(scope="module")
def rs(shoppers: list[Shopper]) -> RetailSet:
    return generate_retail(shoppers, seed=11, until=UNTIL, brands=30, products=200)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def test_every_payload_is_a_valid_event(rs: RetailSet) -> None:
    events = rs.events()
    assert len(events) == sum(rs.counts().values())
    parsed = [parse_event(e) for e in events]
    assert Counter(p.type for p in parsed) == Counter({k: v for k, v in rs.counts().items() if v})
    for e in events:
        assert _at(e).utcoffset() == timedelta(0)
        for money in [e.get("total"), e.get("amount"), e.get("price")]:
            if money is not None:
                assert Decimal(money).as_tuple().exponent == -2
    assert all(e["currency"] in {"USD", "EUR"} for e in rs.orders + rs.transactions)
    assert len(rs.brands) == 30 and len(rs.products) == 200
    assert len({b["name"] for b in rs.brands}) == 30


def test_volumes_are_plausible(rs: RetailSet, shoppers: list[Shopper]) -> None:
    sessions = {w["session_id"] for w in rs.web_activity}
    assert 2.0 < len(sessions) / len(shoppers) < 4.5
    assert 0.3 < len(rs.orders) / len(sessions) < 0.5
    statuses = Counter(o["status"] for o in rs.orders)
    assert statuses["delivered"] > len(rs.orders) / 2 and statuses["returned"] > 0 and statuses["cancelled"] > 0
    assert {w["traffic_source"] for w in rs.web_activity} == {
        "direct",
        "organic",
        "paid_search",
        "social",
        "email",
        "referral",
        "affiliate",
    }
    assert Counter(t["status"] for t in rs.transactions)["declined"] > 0


def test_deterministic_for_a_seed(shoppers: list[Shopper], rs: RetailSet) -> None:
    again = generate_retail(shoppers, seed=11, until=UNTIL, brands=30, products=200)
    assert again.events() == rs.events()
    other = generate_retail(shoppers, seed=12, until=UNTIL, brands=30, products=200)
    assert other.events() != rs.events()
    assert shoppers_from_keys([("a", "1"), ("a", "2")], start=UNTIL, seed=1) == shoppers_from_keys(
        [("a", "1"), ("a", "2")], start=UNTIL, seed=1
    )


def test_a_journey_does_not_depend_on_other_shoppers(shoppers: list[Shopper], rs: RetailSet) -> None:
    alone = generate_retail(shoppers[5:6], seed=11, until=UNTIL, brands=30, products=200)
    key = shoppers[5].customer_key

    def strip(events: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        return [(e["occurred_at"], e.get("action", ""), e.get("product_id", "")) for e in events]

    mine = [w for w in rs.web_activity if w["customer_key"] == key and w["source"] == shoppers[5].source]
    assert mine and strip(alone.web_activity) == strip(mine)


def test_default_until_is_fixed() -> None:
    s = [Shopper("webshop", "x", datetime(2026, 1, 1, tzinfo=UTC))]
    a, b = generate_retail(s), generate_retail(s)
    assert a.events() == b.events()
    assert all(_at(e) <= datetime(2026, 11, 1, tzinfo=UTC) for e in a.events())


def test_order_totals_are_the_sum_of_their_lines(rs: RetailSet) -> None:
    assert rs.orders
    for o in rs.orders:
        total = sum(
            (Decimal(li["unit_price"]) * li["quantity"] - Decimal(li.get("discount", "0")) for li in o["line_items"]),
            Decimal(0),
        )
        assert Decimal(o["total"]) == total.quantize(Decimal("0.01"))
        assert len({li["line_id"] for li in o["line_items"]}) == len(o["line_items"])
        for li in o["line_items"]:
            assert Decimal(li.get("discount", "0")) <= Decimal(li["unit_price"]) * li["quantity"]


def test_unit_prices_are_the_product_prices(rs: RetailSet) -> None:
    price = {p["product_id"]: p["price"] for p in rs.products}
    assert all(li["unit_price"] == price[li["product_id"]] for o in rs.orders for li in o["line_items"])


def test_transactions_pay_their_orders(rs: RetailSet) -> None:
    orders = {o["order_id"]: o for o in rs.orders}
    assert len(orders) == len(rs.orders)
    by_order: dict[str, list[dict[str, Any]]] = {}
    for t in rs.transactions:
        o = orders[t["order_id"]]
        assert (t["source"], t["customer_key"], t["currency"]) == (o["source"], o["customer_key"], o["currency"])
        assert _at(t) >= _at(o)
        by_order.setdefault(t["order_id"], []).append(t)
        if t["kind"] == "payment":
            assert t["amount"] == o["total"]
    assert set(by_order) == set(orders)
    for order_id, txns in by_order.items():
        settled = [t for t in txns if t["kind"] == "payment" and t["status"] == "settled"]
        if orders[order_id]["status"] == "cancelled":
            assert not settled
        else:
            assert len(settled) == 1
        declined = [t for t in txns if t["status"] == "declined"]
        if declined:
            assert _at(declined[0]) <= _at(settled[0])


def test_refunds_only_for_returned_orders(rs: RetailSet) -> None:
    orders = {o["order_id"]: o for o in rs.orders}
    refunds = [t for t in rs.transactions if t["kind"] == "refund"]
    assert refunds
    for t in refunds:
        o = orders[t["order_id"]]
        assert o["status"] == "returned"
        assert Decimal(0) < Decimal(t["amount"]) <= Decimal(o["total"])
    returned = {o["order_id"] for o in rs.orders if o["status"] == "returned"}
    assert returned == {t["order_id"] for t in refunds}


def test_web_activity_matches_orders(rs: RetailSet) -> None:
    orders = {o["order_id"]: o for o in rs.orders}
    placed = [w for w in rs.web_activity if w["action"] == "order_placed"]
    assert len(placed) == len(orders) == len({w["order_id"] for w in placed})
    sessions: dict[str, list[dict[str, Any]]] = {}
    for w in rs.web_activity:
        sessions.setdefault(w["session_id"], []).append(w)
    for w in placed:
        o = orders[w["order_id"]]
        assert (o["source"], o["customer_key"], o["channel"], o["occurred_at"]) == (
            w["source"],
            w["customer_key"],
            w["channel"],
            w["occurred_at"],
        )
        carted = {x["product_id"] for x in sessions[w["session_id"]] if x["action"] == "add_to_cart"}
        assert {li["product_id"] for li in o["line_items"]} == carted
    for w in rs.web_activity:
        assert ("order_id" in w) == (w["action"] == "order_placed")
        assert ("product_id" in w) != (w["action"] == "order_placed")
    for events in sessions.values():
        assert len({(e["source"], e["customer_key"], e["channel"], e["traffic_source"]) for e in events}) == 1
        assert [_at(e) for e in events] == sorted(_at(e) for e in events)
        assert events[0]["action"] == "product_view"


def test_events_stay_within_each_shoppers_time(rs: RetailSet, shoppers: list[Shopper]) -> None:
    since = {(s.source, s.customer_key): s.since for s in shoppers}
    journey = rs.orders + rs.transactions + rs.web_activity
    for e in journey:
        assert since[(e["source"], e["customer_key"])] <= _at(e) <= UNTIL
    catalog_at = {_at(e) for e in rs.brands + rs.products}
    assert len(catalog_at) == 1 and catalog_at.pop() <= min(since.values())
    assert {e["source"] for e in rs.brands + rs.products} == {"catalog"}
    keys = {(e["source"], e["customer_key"]) for e in journey}
    assert keys <= set(since) and len(keys) > len(since) * 0.8


def test_ids_are_unique_and_references_resolve(rs: RetailSet) -> None:
    events = rs.events()
    assert len({e["event_id"] for e in events}) == len(events)
    assert len({t["transaction_id"] for t in rs.transactions}) == len(rs.transactions)
    brand_ids = {b["brand_id"] for b in rs.brands}
    assert len(brand_ids) == len(rs.brands)
    assert all(p["brand_id"] in brand_ids for p in rs.products)
    product_ids = {p["product_id"] for p in rs.products}
    assert len(product_ids) == len(rs.products)
    used = {w["product_id"] for w in rs.web_activity if "product_id" in w}
    used |= {li["product_id"] for o in rs.orders for li in o["line_items"]}
    assert used <= product_ids


def test_events_order(rs: RetailSet) -> None:
    events = rs.events()
    n_ref = len(rs.brands) + len(rs.products)
    assert [e["type"] for e in events[:n_ref]] == ["brand"] * len(rs.brands) + ["product"] * len(rs.products)
    journey = events[n_ref:]
    assert {e["type"] for e in journey} == JOURNEY_TYPES - {"consent_change"}  # retail sends no consent
    keys = [(_at(e), e["event_id"]) for e in journey]
    assert keys == sorted(keys)
    for part in (rs.orders, rs.transactions, rs.web_activity):
        assert [_at(e) for e in part] == sorted(_at(e) for e in part)


def test_shoppers_from_keys_spreads_since_over_the_year() -> None:
    start = datetime(2026, 3, 1, 10, tzinfo=UTC)
    out = shoppers_from_keys([("crm", str(i)) for i in range(500)], start=start, seed=5)
    assert [s.customer_key for s in out] == [str(i) for i in range(500)]
    assert all(start - timedelta(days=365) <= s.since <= start and s.since.tzinfo is not None for s in out)
    assert max(s.since for s in out) - min(s.since for s in out) > timedelta(days=300)


def test_no_shoppers_gives_just_the_catalog() -> None:
    rs = generate_retail([], brands=1, products=3)
    assert rs.counts() == {"brand": 1, "product": 3, "order": 0, "transaction": 0, "web_activity": 0}
    assert all(p["brand_id"] == "B0001" for p in rs.products)


def test_many_brands_use_faker_names_too() -> None:
    rs = generate_retail([], brands=60, products=5, seed=9)
    assert len({b["name"] for b in rs.brands}) == 60
    assert rs.events() == generate_retail([], brands=60, products=5, seed=9).events()


NAIVE = datetime(2026, 1, 1)
GOOD = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("shoppers", "kwargs"),
    [
        ([], {"brands": -1}),
        ([], {"brands": 0}),
        ([], {"products": -5}),
        ([], {"products": 0}),
        ([], {"products": 1.5}),
        ([], {"until": NAIVE}),
        ([], {"catalog_source": "Bad Source"}),
        ([Shopper("webshop", "a", NAIVE)], {}),
        ([Shopper("webshop", "a", GOOD)], {"until": GOOD - timedelta(seconds=1)}),
        ([Shopper("webshop", "a", GOOD), Shopper("webshop", "a", GOOD)], {}),
        ([Shopper("Web Shop", "a", GOOD)], {}),
        ([Shopper("webshop", "", GOOD)], {}),
        ([("webshop", "a", GOOD)], {}),
    ],
)
def test_invalid_input_raises(shoppers: list[Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        generate_retail(shoppers, **kwargs)


def test_shoppers_from_keys_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        shoppers_from_keys([("crm", "1")], start=NAIVE, seed=1)
    with pytest.raises(InvalidInputError):
        shoppers_from_keys([("crm", "1"), ("crm", "1")], start=GOOD, seed=1)
    with pytest.raises(InvalidInputError):
        shoppers_from_keys([("CRM!", "1")], start=GOOD, seed=1)
