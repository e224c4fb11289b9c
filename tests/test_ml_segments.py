"""Rule segments: the parser, SQL backfill and in-memory evaluation agree, the engine, diffs (issue 17, point 4)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import StoredEvent
from c360.ml.rfm import compute_rfm
from c360.ml.segment_rules import (
    ACTIONS,
    CustomerState,
    OrderFact,
    Rule,
    WebEvent,
    evaluate,
    parse_rule,
)
from c360.ml.segment_sql import CONSENT_TABLE, members_sql
from c360.ml.segments import (
    Reason,
    Segment,
    SegmentEngine,
    activity_of,
    backfill,
    diff_members,
    load_segments,
    parse_segments,
)
from test_ml_rfm import snapshot

AS_OF = datetime(2026, 6, 1, 12, tzinfo=UTC)
CATEGORIES = ["Baby & Toddler", "baby food", "Garden", "Books", None]
STATES = ["CA", "NY", "TX", None]
CONSENTS = [("marketing", "email"), ("marketing", "sms"), ("analytics", "web")]


@dataclass
class Dataset:
    """Customers as both paths see them: DuckDB rows and in-memory states."""

    con: duckdb.DuckDBPyConnection
    states: dict[str, CustomerState]
    consent: dict[str, set[tuple[str, str]]] = field(default_factory=dict)


def generate(seed: int, *, customers: int, events: int, orders: int, spread_days: int, nulls: float) -> Dataset:
    """A random snapshot: times cluster on window edges as often as between them."""
    rng = random.Random(seed)
    con = snapshot()
    products = {f"p{i}": rng.choice(CATEGORIES) for i in range(12)}
    for pid, category in products.items():
        con.execute("INSERT INTO products VALUES (?, ?, NULL, ?, 10)", [pid, pid, category])
    edges = [timedelta(days=d) for d in (1, 30, 90, 365)]

    def when() -> datetime:
        if rng.random() < 0.3:  # exactly on, or just either side of, a window's start
            return AS_OF - rng.choice(edges) + rng.choice([timedelta(0), timedelta(seconds=1), -timedelta(seconds=1)])
        if rng.random() < 0.05:
            return AS_OF + timedelta(seconds=rng.randint(0, 3600))  # after as_of: never counted
        return AS_OF - timedelta(seconds=rng.randint(0, spread_days * 86400))

    def maybe(value: Any) -> Any:
        return None if rng.random() < nulls else value

    golden_by: dict[str, dict[str, Any]] = {}
    events_by: dict[str, list[WebEvent | OrderFact]] = {}
    data = Dataset(con, {})
    for i in range(customers):
        cid = f"c{i:04}"
        golden = {
            "first_name": maybe(rng.choice(["Ann", "Bob", "Émile"])),
            "gender": maybe(rng.choice(["female", "male"])),
            "date_of_birth": maybe(date(1950, 1, 1) + timedelta(days=rng.randint(0, 20000))),
            "state": maybe(rng.choice([s for s in STATES if s])),
            "country": maybe("US"),
            "created_at": maybe(AS_OF - timedelta(days=rng.randint(0, 900))),
        }
        columns = ["customer_id", *golden]
        con.execute(
            f"INSERT INTO customers ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [cid, *golden.values()],
        )
        golden_by[cid], events_by[cid] = golden, []
        data.consent[cid] = {pair for pair in CONSENTS if rng.random() < 0.5}
        for k in range(rng.randint(0, events)):
            eid = f"{cid}-w{k}"
            at, action = when(), rng.choice(ACTIONS)
            product = rng.choice([*products, None])
            channel, traffic = rng.choice(["web", "app"]), rng.choice(["direct", "email", "paid_search"])
            con.execute(
                "INSERT INTO web_events VALUES (?, ?, ?, ?, 's', ?, NULL, ?, ?)",
                [eid, cid, at, action, product, channel, traffic],
            )
            category = products[product] if product else None
            events_by[cid].append(WebEvent(eid, at, action, category, channel, traffic))
        for k in range(rng.randint(0, orders)):
            at = when()
            status = rng.choice(["placed", "paid", "delivered", "cancelled", "returned"])
            total = Decimal(rng.randint(0, 80000)) / 100
            con.execute(
                "INSERT INTO orders VALUES (?, 'shop', ?, ?, ?, 'web', 'USD', ?)",
                [f"{cid}-o{k}", cid, at, status, total],
            )
            events_by[cid].append(OrderFact("shop", f"{cid}-o{k}", at, status, total))
    con.execute(f"CREATE TEMP TABLE {CONSENT_TABLE}(customer_id VARCHAR, purpose VARCHAR, channel VARCHAR)")
    permits = [(cid, p, c) for cid, pairs in data.consent.items() for p, c in pairs]
    if permits:
        con.executemany(f"INSERT INTO {CONSENT_TABLE} VALUES (?, ?, ?)", permits)
    compute_rfm(con, as_of=AS_OF)
    columns = [d[0] for d in con.execute("SELECT * FROM rfm LIMIT 0").description]
    rfm = {row[0]: dict(zip(columns, row, strict=True)) for row in con.execute("SELECT * FROM rfm").fetchall()}
    for cid, golden in golden_by.items():
        data.states[cid] = CustomerState(cid, golden, rfm.get(cid), frozenset(data.consent[cid]), tuple(events_by[cid]))
    return data


def random_rule(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random rule in the YAML form, over every kind of condition."""
    if depth < 2 and rng.random() < 0.45:
        kind = rng.choice(["all", "any", "not"])
        if kind == "not":
            return {"not": random_rule(rng, depth + 1)}
        return {kind: [random_rule(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    days = rng.choice([1, 30, 90, 365])
    op = rng.choice(["eq", "gt", "gte", "lt", "lte"])
    choice = rng.randrange(8)
    if choice == 0:
        spec: dict[str, Any] = {"action": rng.sample(ACTIONS, rng.randint(1, 2))}
        if rng.random() < 0.4:
            spec["category_contains"] = rng.choice(["baby", "BABY", "gard"])
        if rng.random() < 0.3:
            spec["channel"] = "app"
        if rng.random() < 0.3:
            spec["traffic_source"] = ["email", "direct"]
        return {"count": spec, "within_days": days, op: rng.randint(0, 3)}
    if choice == 1:
        return {"none": {"action": rng.choice(ACTIONS)}, "within_days": days}
    if choice == 2:
        return {"sum": "order_total", "within_days": days, op: rng.choice([0, 100, 450.5, "800.25"])}
    if choice == 3:
        return {"sum": "order_count", "within_days": days, op: rng.randint(0, 3)}
    if choice == 4:
        purpose, channel = rng.choice(CONSENTS)
        return {"consent": {"purpose": purpose, "channel": channel}}
    if choice == 5:
        return {"field": "rfm." + rng.choice(["r", "f", "m", "recency_days", "frequency"]), op: rng.randint(1, 5)}
    if choice == 6:
        if rng.random() < 0.5:
            return {"field": "rfm.monetary", op: rng.choice([50, "400.10"])}
        return {"field": "rfm.rfm_segment", "in": rng.sample(["champions", "lost", "no orders", "loyal"], 2)}
    return rng.choice(
        [
            {"field": "state", "eq": "CA"},
            {"field": "state", "ne": "CA"},
            {"field": "state", "not_in": ["CA", "TX"]},
            {"field": "first_name", "gte": "B"},
            {"field": "gender", "is_null": True},
            {"field": "date_of_birth", "lt": "1980-06-15"},
            {"field": "created_at", "gte": "2025-06-01T00:00:00+02:00"},
            {"field": "country", "is_null": False},
        ]
    )


def sql_members(data: Dataset, rule: Rule) -> set[str]:
    sql, params = members_sql(rule, AS_OF)
    return {row[0] for row in data.con.execute(sql, params).fetchall()}


def memory_members(data: Dataset, rule: Rule) -> set[str]:
    return {cid for cid, state in data.states.items() if evaluate(rule, state, AS_OF)}


SHAPES = [
    dict(customers=60, events=12, orders=6, spread_days=60, nulls=0.0),
    dict(customers=80, events=3, orders=1, spread_days=400, nulls=0.5),
    dict(customers=25, events=40, orders=15, spread_days=35, nulls=0.1),
    dict(customers=40, events=0, orders=4, spread_days=200, nulls=0.2),
    dict(customers=5, events=2, orders=0, spread_days=10, nulls=1.0),
]


@pytest.mark.parametrize("seed", range(len(SHAPES)))
def test_sql_and_memory_give_the_same_members(seed: int) -> None:
    data = generate(seed, **SHAPES[seed])  # type: ignore[arg-type]
    rng = random.Random(1000 + seed)
    rules = [(s.id, s.rule) for s in load_segments()]
    rules += [(f"random{i}", parse_rule(random_rule(rng), rule_id=f"random{i}")) for i in range(60)]
    nonempty = 0
    for rule_id, rule in rules:
        expected = memory_members(data, rule)
        assert sql_members(data, rule) == expected, rule_id
        nonempty += bool(expected) and len(expected) < len(data.states)
    if seed < 4:  # the comparison must discriminate: most rules pick some customers and not others
        assert nonempty >= 20


def test_the_four_named_segments_on_a_crafted_dataset() -> None:
    data = generate(7, customers=0, events=0, orders=0, spread_days=1, nulls=0)
    con, day = data.con, timedelta(days=1)
    con.execute("INSERT INTO products VALUES ('crib', 'Crib', NULL, 'Baby & Nursery', 200)")
    for cid in ("spender", "parent", "abandoner", "buyer", "bought_after_cart"):
        con.execute("INSERT INTO customers (customer_id, state) VALUES (?, 'CA')", [cid])

    def web(cid: str, n: int, action: str, at: datetime, product: str | None = None) -> None:
        eid = f"{cid}-{n}"
        con.execute(
            "INSERT INTO web_events VALUES (?, ?, ?, ?, 's', ?, NULL, 'web', 'direct')", [eid, cid, at, action, product]
        )

    def order(cid: str, n: int, at: datetime, total: str, status: str = "paid") -> None:
        con.execute(
            "INSERT INTO orders VALUES (?, 'shop', ?, ?, ?, 'web', 'USD', ?)",
            [f"{cid}-o{n}", cid, at, status, Decimal(total)],
        )

    order("spender", 1, AS_OF - 100 * day, "600")
    order("spender", 2, AS_OF - 200 * day, "400")
    order("spender", 3, AS_OF - 10 * day, "5000", status="cancelled")
    web("parent", 1, "add_to_favourites", AS_OF - 29 * day, "crib")
    for n in range(3):
        web("abandoner", n, "add_to_cart", AS_OF - n * day)
        web("bought_after_cart", n, "add_to_cart", AS_OF - n * day)
    order("bought_after_cart", 1, AS_OF - 2 * day, "20")
    for n in range(3):
        order("buyer", n, AS_OF - (n * 40) * day, "10")
    compute_rfm(con, as_of=AS_OF)
    found = {s.name: sql_members(data, s.rule) for s in load_segments()}
    assert found["High Spending Customers"] == {"spender"}
    assert found["Expecting Parents"] == {"parent"}
    assert found["Frequent Cart Abandoner"] == {"abandoner"}
    assert found["Frequent Buyers"] == {"buyer"}


def test_default_segments_include_the_requirements_four() -> None:
    names = {s.name for s in load_segments()}
    assert {"High Spending Customers", "Expecting Parents", "Frequent Cart Abandoner", "Frequent Buyers"} <= names


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"field": "salary", "gt": 1}, r"segment 'x': rule.field: unknown field 'salary'"),
        (
            {"all": [{"field": "state", "eq": "CA"}, {"count": {"action": "click"}, "within_days": 3, "gte": 1}]},
            r"rule.all\[1\].count.action: unknown action 'click'",
        ),
        ({"field": "state", "eq": "CA", "ne": "NY"}, r"rule: needs exactly one comparison"),
        ({"field": "state", "eq": 3}, r"rule.eq: state compares with a str"),
        ({"field": "date_of_birth", "lt": "yesterday"}, r"rule.lt: 'yesterday' is not a date"),
        ({"field": "created_at", "gt": "2026-01-01T00:00:00"}, r"rule.gt: .* has no time zone"),
        ({"field": "rfm.rfm_segment", "eq": "vip"}, r"unknown RFM segment 'vip'"),
        ({"field": "state", "in": []}, r"rule.in: must be a non-empty list"),
        ({"any": []}, r"rule.any: must be a non-empty list"),
        ({"not": {"sql": "1=1"}}, r"rule.not: unknown condition \(keys: sql\)"),
        ({"count": {"action": "add_to_cart"}, "within_days": 0, "gte": 3}, r"rule.within_days: must be a whole number"),
        ({"count": {"action": "add_to_cart"}, "within_days": 30}, r"rule: needs exactly one comparison"),
        ({"count": {"action": "add_to_cart"}, "within_days": 30, "gte": -1}, r"rule.gte: must be a whole number >= 0"),
        ({"count": {"product": "p1"}, "within_days": 30, "gte": 1}, r"rule.count: unexpected key\(s\) product"),
        ({"none": {"action": "order_placed"}, "within_days": 30, "gte": 1}, r"rule: unexpected key\(s\) gte"),
        ({"sum": "profit", "within_days": 30, "gte": 1}, r"rule.sum: unknown measure 'profit'"),
        ({"sum": "order_total", "within_days": 30, "gte": "lots"}, r"rule.gte: must be a number"),
        ({"sum": "order_total", "within_days": 30, "gte": "NaN"}, r"rule.gte: must be a finite number"),
        ({"consent": {"purpose": "marketing"}}, r"rule.consent.channel: must be a non-empty string"),
        ("state = 'CA'", r"rule: a condition must be a mapping"),
    ],
)
def test_bad_rules_name_the_rule_and_the_path(rule: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_rule(rule, rule_id="x")


def test_bad_segment_documents() -> None:
    good = {"id": "a", "name": "A", "rule": {"field": "state", "eq": "CA"}}
    with pytest.raises(InvalidInputError, match="defined twice"):
        parse_segments({"segments": [good, good]}, origin="f.yaml")
    with pytest.raises(InvalidInputError, match=r"f.yaml: segments\[0\]: id 'A B'"):
        parse_segments({"segments": [{**good, "id": "A B"}]}, origin="f.yaml")
    with pytest.raises(InvalidInputError, match="segment 'a': has no rule"):
        parse_segments({"segments": [{"id": "a", "name": "A"}]}, origin="f.yaml")
    with pytest.raises(InvalidInputError, match=r"segment 'a': rule.all\[0\]"):
        parse_segments({"segments": [{**good, "rule": {"all": [{"field": "x", "eq": 1}]}}]}, origin="f.yaml")
    with pytest.raises(InvalidInputError, match="a list 'segments'"):
        parse_segments([good], origin="f.yaml")


def test_values_are_bound_never_pasted() -> None:
    evil = "CA'; DROP TABLE customers; --"
    rule = parse_rule(
        {"all": [{"field": "state", "eq": evil}, {"consent": {"purpose": evil, "channel": evil}}]}, rule_id="x"
    )
    sql, params = members_sql(rule, AS_OF)
    assert evil not in sql
    assert params.count(evil) == 3


def test_diff_members() -> None:
    reason = Reason("vip", "rule.gte: sum(order_total) in 90 days gte 500")
    changes = diff_members({"a", "b"}, {"b", "c", "d"}, AS_OF, reason)
    assert [(c.change, c.customer_id) for c in changes] == [("exited", "a"), ("entered", "c"), ("entered", "d")]
    assert all(c.at == AS_OF and c.segment == "vip" and c.reason == reason for c in changes)
    assert changes[1].to_json() == {
        "type": "segment_entered",
        "segment": "vip",
        "customer_id": "c",
        "at": AS_OF.isoformat(),
        "reason": "vip: rule.gte: sum(order_total) in 90 days gte 500",
    }
    with pytest.raises(InvalidInputError, match="time zone"):
        diff_members(set(), {"a"}, datetime(2026, 1, 1), reason)


def abandoner_engine() -> SegmentEngine:
    return SegmentEngine([s for s in load_segments() if s.id in ("frequent_cart_abandoner", "champions_by_email")])


def test_engine_enters_and_exits_as_events_arrive_with_the_deciding_condition() -> None:
    engine = abandoner_engine()
    start = AS_OF - timedelta(days=40)
    assert engine.on_activity("c1", WebEvent("e1", start, "add_to_cart"), at=start) == []
    assert engine.on_activity("c1", WebEvent("e1", start, "add_to_cart"), at=start) == []  # a redelivery
    assert engine.on_activity("c1", WebEvent("e2", start, "add_to_cart"), at=start) == []
    entered = engine.on_activity("c1", WebEvent("e3", start, "add_to_cart"), at=start)
    assert [(c.segment, c.change, c.at) for c in entered] == [("frequent_cart_abandoner", "entered", start)]
    assert str(entered[0].reason) == "frequent_cart_abandoner: rule.all[0]: count(action=add_to_cart) in 30 days gte 3"
    assert engine.members("frequent_cart_abandoner") == {"c1"}

    later = start + timedelta(days=1)
    exited = engine.on_activity("c1", OrderFact("shop", "o1", later, "placed", Decimal("5")), at=later)
    assert [(c.change, c.reason.condition) for c in exited] == [
        ("exited", "rule.all[2]: sum(order_count) in 30 days eq 0")
    ]
    # the same order cancelled: it no longer counts, the customer is back in
    back = engine.on_activity("c1", OrderFact("shop", "o1", later, "cancelled", Decimal("5")), at=later)
    assert [c.change for c in back] == ["entered"]
    # 31 days later the carts fall out of the window: the timer's tick exits the customer
    gone = engine.tick(start + timedelta(days=31))
    assert [(c.change, c.reason.condition) for c in gone] == [
        ("exited", "rule.all[0]: count(action=add_to_cart) in 30 days gte 3")
    ]
    kept = engine.state("c1")
    assert kept is not None
    assert [type(e).__name__ for e in kept.events] == ["OrderFact"]  # the carts are older than every window: dropped


def test_engine_consent_and_rfm_updates_and_forget() -> None:
    engine = abandoner_engine()
    assert engine.update("c2", at=AS_OF, rfm={"rfm_segment": "champions", "r": 5}) == []
    entered = engine.update("c2", at=AS_OF, consent={("marketing", "email")})
    assert [(c.segment, c.change, c.reason.condition) for c in entered] == [
        ("champions_by_email", "entered", "rule.all[1]: consent to marketing by email")
    ]
    exited = engine.update("c2", at=AS_OF, consent=set())
    assert [c.change for c in exited] == ["exited"]
    engine.update("c2", at=AS_OF, consent={("marketing", "email")})
    assert [c.change for c in engine.forget("c2", at=AS_OF)] == ["exited"]
    assert engine.members("champions_by_email") == frozenset()
    with pytest.raises(NotFoundError, match="unknown segment"):
        engine.members("nope")


@pytest.mark.parametrize("seed", [0, 2])
def test_engine_replaying_the_events_agrees_with_the_backfill(seed: int) -> None:
    data = generate(seed, **SHAPES[seed])  # type: ignore[arg-type]
    segments = load_segments()
    changes = backfill(data.con, segments, as_of=AS_OF, consent=data.consent)
    stored = data.con.execute("SELECT segment, customer_id FROM segment_members").fetchall()
    by_segment = {s.id: {cid for seg, cid in stored if seg == s.id} for s in segments}
    assert {(c.segment, c.customer_id) for c in changes if c.change == "entered"} == set(stored)

    engine = SegmentEngine(segments)
    for cid, state in data.states.items():
        engine.update(
            cid, at=AS_OF - timedelta(days=400), golden=state.golden, rfm=state.rfm or {}, consent=state.consent
        )
        for event in sorted(state.events, key=lambda e: e.occurred_at):
            if event.occurred_at <= AS_OF:
                engine.on_activity(cid, event, at=max(event.occurred_at, AS_OF - timedelta(days=400)))
    engine.tick(AS_OF)
    for segment in segments:
        assert engine.members(segment.id) == by_segment[segment.id], segment.id


def test_backfill_keeps_entered_at_and_reports_exits() -> None:
    data = generate(3, customers=0, events=0, orders=0, spread_days=1, nulls=0)
    con = data.con
    for cid, state in (("a", "CA"), ("b", "CA"), ("c", "NY")):
        con.execute("INSERT INTO customers (customer_id, state) VALUES (?, ?)", [cid, state])
    segment = Segment("ca", "Californians", "Lives in CA.", parse_rule({"field": "state", "eq": "CA"}, rule_id="ca"))
    first = backfill(con, [segment], as_of=AS_OF, consent={})
    assert [(c.change, c.customer_id) for c in first] == [("entered", "a"), ("entered", "b")]
    con.execute("UPDATE customers SET state = 'CA' WHERE customer_id = 'c'")
    con.execute("UPDATE customers SET state = 'TX' WHERE customer_id = 'a'")
    later = AS_OF + timedelta(days=1)
    second = backfill(con, [segment], as_of=later, consent={})
    assert [(c.change, c.customer_id, c.at) for c in second] == [("exited", "a", later), ("entered", "c", later)]
    assert second[0].reason == Reason("ca", f"backfill at {later.isoformat()}: Lives in CA.")
    assert con.execute("SELECT customer_id, entered_at FROM segment_members ORDER BY 1").fetchall() == [
        ("b", AS_OF),
        ("c", later),
    ]


def test_backfill_reads_the_callers_consent() -> None:
    data = generate(4, customers=0, events=0, orders=0, spread_days=1, nulls=0)
    for cid in ("a", "b"):
        data.con.execute("INSERT INTO customers (customer_id) VALUES (?)", [cid])
    rule = parse_rule({"consent": {"purpose": "marketing", "channel": "sms"}}, rule_id="sms")
    changes = backfill(
        data.con,
        [Segment("sms", "SMS", "", rule)],
        as_of=AS_OF,
        consent={"b": {("marketing", "sms")}, "a": {("marketing", "email")}},
    )
    assert [c.customer_id for c in changes] == ["b"]


def test_activity_of_stored_events() -> None:
    at = AS_OF - timedelta(hours=1)
    web = StoredEvent(
        "web|e1",
        "web_activity",
        at,
        json.dumps({"action": "add_to_cart", "product_id": "p1", "channel": "app"}),
        "web|k",
    )
    assert activity_of(web, {"p1": "Baby"}) == WebEvent("web|e1", at, "add_to_cart", "Baby", "app", "direct")
    order = StoredEvent(
        "shop|e2", "order", at, json.dumps({"source": "shop", "order_id": "o1", "status": "paid", "total": "12.50"})
    )
    assert activity_of(order, {}) == OrderFact("shop", "o1", at, "paid", Decimal("12.50"))
    assert activity_of(StoredEvent("crm|e3", "profile_update", at, "{}"), {}) is None
    with pytest.raises(InvalidInputError, match="not readable"):
        activity_of(StoredEvent("shop|e4", "order", at, "{}"), {})


@pytest.mark.parametrize("seed", [1, 2])
def test_engine_from_the_snapshot_starts_with_the_backfills_members(seed: int) -> None:
    data = generate(seed, **SHAPES[seed])  # type: ignore[arg-type]
    segments = load_segments()
    backfill(data.con, segments, as_of=AS_OF, consent=data.consent)
    stored = data.con.execute("SELECT segment, customer_id FROM segment_members").fetchall()
    engine = SegmentEngine.from_snapshot(data.con, segments, as_of=AS_OF, consent=data.consent)
    for segment in segments:
        assert engine.members(segment.id) == {cid for seg, cid in stored if seg == segment.id}, segment.id


def test_engine_from_the_snapshot_then_stored_events() -> None:
    data = generate(5, customers=0, events=0, orders=0, spread_days=1, nulls=0)
    con = data.con
    con.execute("INSERT INTO customers (customer_id, state) VALUES ('p', 'CA')")
    con.execute("INSERT INTO products VALUES ('crib', 'Crib', NULL, 'Baby & Nursery', 200)")
    con.execute(
        "INSERT INTO web_events VALUES ('w1', 'p', ?, 'product_view', 's', 'crib', NULL, 'web', 'direct')",
        [AS_OF - timedelta(days=2)],
    )
    engine = SegmentEngine.from_snapshot(con, load_segments(), as_of=AS_OF, consent={})
    assert engine.members("expecting_parents") == frozenset()
    payload = json.dumps({"action": "add_to_favourites", "product_id": "crib"})
    changes = engine.on_event("p", StoredEvent("web|w2", "web_activity", AS_OF, payload, "web|k"), at=AS_OF)
    assert [(c.segment, c.change, c.reason.condition) for c in changes] == [
        (
            "expecting_parents",
            "entered",
            "rule.any[0]: count(action=add_to_favourites, category~baby) in 30 days gte 1",
        )
    ]
    profile = StoredEvent("crm|x", "profile_update", AS_OF, "{}")
    assert engine.on_event("p", profile, at=AS_OF) == []
    with pytest.raises(InvalidInputError, match="lacks a table"):
        SegmentEngine.from_snapshot(duckdb.connect(), load_segments(), as_of=AS_OF, consent={})
