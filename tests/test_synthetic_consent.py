"""The synthetic consent generator: valid consent_change events, deterministic, in plausible shares."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from c360.connectors.synthetic.consent import PLAN, generate_consent
from c360.connectors.synthetic.retail import shoppers_from_keys
from c360.graph.errors import InvalidInputError
from c360.streams.events import ConsentChange
from pydantic import TypeAdapter

UNTIL = datetime(2026, 11, 1, tzinfo=UTC)
SHOPPERS = shoppers_from_keys([("webshop", f"W{i:05d}") for i in range(2000)], start=UNTIL, seed=3)


def test_events_are_valid_consent_changes_in_time_order_and_repeatable() -> None:
    events = generate_consent(SHOPPERS, seed=9, until=UNTIL)
    parsed = [TypeAdapter(ConsentChange).validate_python(e) for e in events]
    assert len({(e.source, e.event_id) for e in parsed}) == len(parsed)
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert all(e.occurred_at <= UNTIL for e in parsed)
    assert generate_consent(SHOPPERS, seed=9, until=UNTIL) == events
    assert generate_consent(SHOPPERS, seed=10, until=UNTIL) != events


def test_shares_follow_the_plan_and_withdrawals_follow_their_grants() -> None:
    events = generate_consent(SHOPPERS, seed=9, until=UNTIL)
    counts = Counter((e["purpose"], e["channel"], e["status"]) for e in events)
    n = len(SHOPPERS)
    for purpose, channel, grant, deny, withdraw in PLAN:
        assert abs(counts[(purpose, channel, "granted")] / n - grant) < 0.04
        assert abs(counts[(purpose, channel, "denied")] / n - deny) < 0.03
        granted = counts[(purpose, channel, "granted")]
        assert abs(counts[(purpose, channel, "withdrawn")] / granted - withdraw) < 0.05
    first = {}
    for e in events:
        key = (e["customer_key"], e["purpose"], e["channel"])
        if e["status"] == "withdrawn":
            assert first[key]["status"] == "granted" and first[key]["occurred_at"] <= e["occurred_at"]
        first.setdefault(key, e)


def test_a_naive_until_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        generate_consent(SHOPPERS[:1], until=datetime(2026, 1, 1))
