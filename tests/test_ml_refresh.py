"""``c360 ml refresh``: snapshot, RFM, segments into the store and scores onto the profiles, once or on a schedule.

A real embedded store in ./.c360 of a working folder, filled through the pipeline: shoppers with orders
(some spending enough for High Spending Customers) and consent, as a user's data would arrive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from c360.graph.errors import InvalidInputError
from c360.resolution.linker import Linker
from c360.streams.pipeline import Pipeline
from payloads import order_event, profile_event
from test_cli import c360

from c360.cli.ml_refresh import parse_duration

KEYS = [f"R{i:02d}" for i in range(12)]
BIG = KEYS[:4]  # 1,200 in the year: High Spending Customers


def order(key: str, n: int, total: int) -> dict[str, Any]:
    at = f"2026-10-{10 + n:02d}T10:00:00Z"
    return order_event(f"{key}-o{n}", key, at, order_id=f"O-{key}-{n}", total=f"{total}.00", product_id=f"P{n}")


def fill(home: Path, keys: list[str]) -> None:
    store = EmbeddedStore(EmbeddedConfig(path=home / ".c360" / "graph.db"))
    try:
        pipeline = Pipeline(store, Linker(store))
        profiles = [profile_event(f"p-{k}", "crm", k, i, email=f"{k}@x.example") for i, k in enumerate(keys)]
        assert not pipeline.process(profiles).rejected
        orders = [order(k, n, 400 if k in BIG else 20) for k in keys for n in range(3)]
        assert not pipeline.process(orders).rejected
    finally:
        store.close()


def audit(home: Path) -> list[dict[str, Any]]:
    lines = (home / ".c360" / "audit.log").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("action") == "ml_refresh"]


def test_a_refresh_snapshots_segments_and_scores_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    fill(tmp_path, KEYS)
    at = ["--as-of", "2026-11-01T00:00:00"]
    runs = c360("ml", "refresh", "--every", "1s", "--times", "2", "--json", *at, cwd=tmp_path).stdout
    first, second = (json.loads(line) for line in runs.strip().splitlines())
    assert first["ok"] and second["ok"] and first["as_of"] == "2026-11-01T00:00:00+00:00"
    assert first["segments"]["members"]["high_spending_customers"] == len(BIG)
    assert first["segments"]["entered"] >= len(BIG) and second["segments"]["entered"] == 0
    assert first["insights"]["written"] >= len(KEYS) and first["insights"]["models"]["rfm"] == "rfm@2026-11-01"
    assert set(first["seconds"]) == {"snapshot", "rfm_and_segments", "score"}
    assert [e["outcome"] for e in audit(tmp_path)] == ["ok", "ok"]
    # What the runs wrote is on the profiles and the timelines.
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / ".c360" / "graph.db"))
    try:
        links = {k: c for s, k, c in store.iter_links() if s == "crm"}
        big = links[BIG[0]]
        assert [m.segment_id for m in store.segments_of([big])[big]] == ["frequent_buyers", "high_spending_customers"]
        (rfm,) = [i for i in store.insights_of([big])[big] if i.name == "rfm"]
        assert rfm.label is not None and rfm.detail["frequency"] == 3
        events = store.timeline(big, first=10, types=["segment_entered"]).events
        assert {json.loads(e.data)["segment"] for e in events} == {"frequent_buyers", "high_spending_customers"}
    finally:
        store.close()
    # New data arrives: the next run picks it up incrementally.
    fill(tmp_path, ["R90"])
    third = json.loads(c360("ml", "refresh", "--json", *at, cwd=tmp_path).stdout)
    assert third["snapshot"]["events_read"] > 0 and third["segments"]["members"]["frequent_buyers"] == len(KEYS) + 1


def test_a_failed_run_says_why_exits_non_zero_and_is_audited(tmp_path: Path) -> None:
    fill(tmp_path, KEYS[:2])
    bad = tmp_path / "segments.yaml"
    bad.write_text(
        "segments:\n  - id: Not A Token\n    name: x\n    rule: {sum: order_total, within_days: 1, gte: 1}\n"
    )
    failed = c360("ml", "refresh", "--segments", str(bad), cwd=tmp_path, ok=False)
    assert failed.returncode == 1
    assert "refresh failed after nothing" in failed.stderr
    assert [e["outcome"] for e in audit(tmp_path)] == ["refused"]
    assert "InvalidInputError" in audit(tmp_path)[0]["detail"]


def test_intervals_are_read_with_their_unit() -> None:
    assert parse_duration("24h") == 86400 and parse_duration("30m") == 1800 and parse_duration("1.5s") == 1.5
    assert parse_duration("7d") == 7 * 86400
    for text in ("24", "0h", "-1h", "1w", "h"):
        with pytest.raises(InvalidInputError, match="--every"):
            parse_duration(text)


def test_an_interval_without_unit_is_a_clear_error(tmp_path: Path) -> None:
    done = c360("ml", "refresh", "--every", "24", cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert "unit s, m, h or d" in done.stderr
    assert not audit_exists(tmp_path)


def audit_exists(home: Path) -> bool:
    return (home / ".c360" / "audit.log").exists() and bool(audit(home))
