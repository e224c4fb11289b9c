"""``c360 demo``: the README's first command, run as a user would (a process), then checked by other commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_cli import c360, c360_process


def _number(label: str, text: str) -> int:
    found = re.search(rf"{label} ([\d,]+)", text)
    assert found, f"{label!r} not in {text!r}"
    return int(found.group(1).replace(",", ""))


def test_demo_streams_trains_resolves_and_shows_profiles_with_timelines(tmp_path: Path) -> None:
    run = c360_process("demo", "--customers", "150", "--show", "2", cwd=tmp_path)  # as a user runs it
    text = run.stdout
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
