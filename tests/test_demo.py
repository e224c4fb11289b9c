"""``c360 demo``: the README's first command, run as a user would (a process), then checked by other commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_cli import c360, c360_process


def _number(label: str, text: str) -> int:
    found = re.search(rf"{label} ([\d,]+)", text)
    assert found, f"{label!r} not in {text!r}"
    return int(found.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("demo")
    run = c360_process("demo", "--customers", "150", "--show", "2", cwd=home)  # as a user runs it
    return home, run.stdout


def test_demo_streams_trains_resolves_and_shows_profiles_with_timelines(demo: tuple[Path, str]) -> None:
    tmp_path, text = demo
    records, customers = _number("records", text), _number("customers", text)
    assert 150 <= customers < records  # duplicates were merged, and not everything into one
    assert "merged away" in text and "open review items" in text
    found = re.search(r"after Splink: pairwise precision ([\d.]+), recall ([\d.]+)", text)
    assert found is not None and float(found.group(1)) > 0.95 and float(found.group(2)) > 0.9
    assert re.search(r"journey: [\d,]+ events \(.*order.*transaction.*web_activity\): [\d,]+ applied, 0 seen", text)
    assert ", 0 rejected" in text
    consent = re.search(r"consent: ([\d,]+) events \(signed receipts in the ledger\): ([\d,]+) applied, 0 seen", text)
    assert consent is not None and consent.group(1) == consent.group(2) != "0"
    assert len(re.findall(r"^─+ C\w+ ", text, flags=re.M)) == 2  # two profiles, each with its timeline
    assert re.search(r"(order|payment|product_view|add_to_cart) ", text)
    # The graph holds what the report says: links, a timeline per customer, a trained model.
    links = tmp_path / "links.csv"
    c360("export", "links", "--output", str(links), cwd=tmp_path)
    rows = links.read_text().splitlines()[1:]
    assert len(rows) == records and len({r.rsplit(",", 1)[1] for r in rows}) == customers
    shown = re.search(r"^─+ (C\w+) ", text, flags=re.M).group(1)  # type: ignore[union-attr]
    page = json.loads(c360("customer", "timeline", shown, "--first", "3", cwd=tmp_path).stdout)
    assert len(page["events"]) == 3 and page["next_cursor"]
    model = c360("resolve", "model", "show", cwd=tmp_path).stdout
    assert model.startswith("model v1") and f"records={records}" in model
    # Running it again applies nothing twice.
    again = c360("demo", "--customers", "150", "--show", "0", cwd=tmp_path).stdout
    assert re.search(r"profiles: [\d,]+ events, 0 applied", again) and _number("records", again) == records


def test_the_readmes_marketer_session_runs_on_the_demo(demo: tuple[Path, str]) -> None:
    """README, "ML for marketers": snapshot, refresh, a lens query, a segment, an export, a lookalike."""
    home, _ = demo
    snap = json.loads(c360("ml", "snapshot", "--json", cwd=home).stdout)
    assert snap["complete"] and snap["events_read"] > 1000
    at = ["--as-of", "2026-11-01T00:00:00"]  # the demo's journeys end on 1 November 2026
    run = json.loads(c360("ml", "refresh", "--train", "--json", *at, cwd=home).stdout)
    assert run["ok"] and run["insights"]["written"] > 150, run
    members = run["segments"]["members"]
    assert members["high_spending_customers"] > 0 and members["frequent_buyers"] > 0
    lens = c360("lens", "query", "-m", "customer.count", "-d", "segment.name", "--json", cwd=home).stdout
    rows = {r["segment.name"]: r["customer.count"] for r in json.loads(lens)["rows"]}
    assert rows["High Spending Customers"] == members["high_spending_customers"]
    listed = {s["id"]: s["members"] for s in json.loads(c360("ml", "segments", "list", "--json", cwd=home).stdout)}
    assert listed["frequent_buyers"] == members["frequent_buyers"]
    out = home / "frequent_buyers.csv"
    c360("ml", "export", "frequent_buyers", "--purpose", "marketing", "--channel", "email", "--format", "csv",
         "--to", str(out), cwd=home)  # fmt: skip
    manifest = json.loads((home / "frequent_buyers.csv.manifest.json").read_text())
    exported = out.read_text().splitlines()
    assert exported[0] == "customer_id,email" and len(exported) - 1 == manifest["counts"]["exported"]
    assert 0 < manifest["counts"]["exported"] < manifest["counts"]["members"] == members["frequent_buyers"]
    assert set(manifest["receipts"]) == {line.split(",")[0] for line in exported[1:]}
    look = json.loads(c360("ml", "lookalike", "high_spending_customers", "--top", "20", "--json", cwd=home).stdout)
    assert len(look["members"]) == 20 and look["lift"]["lift"] > 1
