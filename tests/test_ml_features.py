"""Features and channel choice on a hand-written snapshot (the writer's DDL) whose every value is known."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.ml import nba
from c360.ml.features import FEATURE_NAMES, activity_between, compute_features, open_snapshot
from c360.ml.snapshot_sql import SCHEMA  # the snapshot writer's own DDL
from ml_snapshots import START, day


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    path = tmp_path / "snapshot.duckdb"
    db = duckdb.connect(str(path))
    db.execute(SCHEMA)
    db.execute(
        "INSERT INTO customers (customer_id, created_at) VALUES (?, ?), (?, ?), (?, ?)",
        ["A", day(0), "B", day(50), "LATE", day(200)],
    )
    orders = [
        ("o1", "shop", "A", day(5), "delivered", "web", 100),
        ("o2", "shop", "A", day(80), "delivered", "store", 50),
        ("o3", "shop", "A", day(90), "cancelled", "web", 999),  # neither an order nor spend
        ("o1", "pos", "A", day(95), "delivered", "call_center", 25),  # same id, other source: another order
        ("o4", "shop", "A", day(150), "delivered", "web", 70),  # after as_of=100
        ("o5", "shop", "B", day(60), "returned", "web", 40),
    ]
    db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, 'EUR', ?)", orders)
    db.executemany(
        "INSERT INTO line_items VALUES (?, ?, ?, ?, 1, ?, 0)",
        [("shop", "o1", "1", "shoe", 60), ("shop", "o1", "2", "bag", 40), ("shop", "o2", "1", "shoe", 50)],
    )
    db.executemany("INSERT INTO products VALUES (?, ?, 'b', ?, 1)", [("shoe", "Shoe", "shoes"), ("bag", "Bag", "bags")])
    db.execute(
        "INSERT INTO transactions VALUES ('t1', 'shop', 'A', 'o1', ?, 'refund', 10, 'EUR', 'card', 'settled')",
        [day(20)],
    )
    web = [
        ("e1", "B", day(75), "product_view", "s1", "web", "email"),
        ("e2", "B", day(75), "add_to_cart", "s1", "web", "email"),
        ("e3", "B", day(95), "add_to_favourites", "s2", "app", "direct"),
        ("e4", "B", day(40), "product_view", "s3", "app", "direct"),  # outside the 30-day windows
        ("e5", "B", day(101), "add_to_cart", "s4", "app", "direct"),  # after as_of
    ]
    db.executemany("INSERT INTO web_events VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)", web)
    db.close()
    connection = open_snapshot(path)
    yield connection
    connection.close()


def test_features_count_only_what_was_known_at_as_of(con: duckdb.DuckDBPyConnection) -> None:
    features = compute_features(con, as_of=day(100))
    assert features.customer_ids == ("A", "B")  # LATE was created after as_of
    assert features.names == FEATURE_NAMES
    a = dict(zip(features.names, features.values[0], strict=True))
    assert a["frequency"] == 3 and a["monetary"] == 175 and a["avg_order_value"] == pytest.approx(175 / 3)
    assert a["recency_days"] == pytest.approx(5) and a["tenure_days"] == pytest.approx(100)
    assert a["orders_90d"] == 2 and a["spend_90d"] == 75
    assert a["distinct_categories"] == 2 and a["refunds"] == 1
    b = dict(zip(features.names, features.values[1], strict=True))
    assert b["frequency"] == 0 and b["monetary"] == 0
    # B's first sign is a view on day 40, before the store created it on day 50 (history loaded later):
    # tenure runs from the view. Never ordered: recency is tenure.
    assert b["recency_days"] == b["tenure_days"] == pytest.approx(60)
    assert (b["views_30d"], b["carts_30d"], b["favourites_30d"], b["sessions_30d"]) == (1, 1, 1, 2)
    assert (b["views_90d"], b["carts_90d"]) == (2, 1)


def test_activity_counts_orders_and_spend_in_the_period(con: duckdb.DuckDBPyConnection) -> None:
    features = compute_features(con, as_of=day(100))
    later = activity_between(con, features, start=day(100), end=day(200))
    assert list(later.orders) == [1, 0] and list(later.spend) == [70, 0]
    with pytest.raises(InvalidInputError):
        activity_between(con, features, start=day(100), end=day(100))
    with pytest.raises(InvalidInputError, match="timezone"):
        compute_features(con, as_of=day(100).replace(tzinfo=None))
    with pytest.raises(InvalidInputError, match="unknown feature"):
        features.column("nope")


def test_open_snapshot_needs_the_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        open_snapshot(tmp_path / "missing.duckdb")


def test_the_best_channel_is_the_consented_one_they_engage_with(con: duckdb.DuckDBPyConnection) -> None:
    at = START + timedelta(days=100)
    choice = nba.best_channels(
        con,
        {"A": ["email", "phone", "in_person"], "B": ["email", "push", "sms"], "LATE": ["post", "sms"], "X": []},
        as_of=at,
    )
    a, b, late = choice["A"], choice["B"], choice["LATE"]
    # A: one store order and one call-centre order; in_person loses the tie to the cheaper phone.
    assert a is not None and a.channel == "phone" and a.engagement == 1
    # B: two app sessions (push) beat one email session.
    assert b is not None and b.channel == "push" and b.engagement == 2
    # No engagement: the cheapest consented channel.
    assert late is not None and late.channel == "sms" and late.engagement == 0
    assert choice["X"] is None
    only_email = nba.best_channels(con, {"B": ["email"]}, as_of=at)["B"]
    assert only_email is not None and only_email.channel == "email" and only_email.engagement == 1
    with pytest.raises(InvalidInputError):
        nba.best_channels(con, {"B": ["carrier_pigeon"]}, as_of=at)
