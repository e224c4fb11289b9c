"""``c360 events``, ``c360 dlq`` and ``c360 customer timeline``, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import c360
from test_pipeline import order, profile


def test_send_events_work_dead_letters_and_read_the_timeline(tmp_path: Path) -> None:
    bad_order = {**order("o2", "1", 6), "currency": "euro"}
    lines = [profile("e1", "1", 0, first_name="Ann", email="ann@example.com"), order("o1", "1", 5), bad_order]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in lines) + "\n{broken\n")
    sent = c360("events", "send", str(events), cwd=tmp_path, ok=False)
    assert sent.returncode == 1
    assert "4 events: 2 applied, 0 seen before, 2 rejected" in sent.stdout
    assert "currency" in sent.stderr
    # Sending again applies nothing twice.
    again = c360("events", "send", str(events), cwd=tmp_path, ok=False)
    assert "2 seen before" in again.stdout
    letters = json.loads(c360("dlq", "list", "--json", cwd=tmp_path).stdout)
    assert len(letters) == 2 and {d["payload"] for d in letters} >= {"{broken"}  # sent twice, kept once
    order_letter = next(d for d in letters if "currency" in d["reason"])
    # Still invalid: the replay refuses and the letter stays open.
    still = c360("dlq", "replay", order_letter["id"], cwd=tmp_path, ok=False)
    assert still.returncode != 0 and "still invalid" in still.stderr
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**bad_order, "currency": "EUR"}))
    c360("dlq", "replay", order_letter["id"], "--payload", str(fixed), cwd=tmp_path)
    assert order_letter["id"] not in c360("dlq", "list", cwd=tmp_path).stdout
    found = json.loads(c360("customer", "find", "--email", "ann@example.com", cwd=tmp_path).stdout)
    cid = found[0]["id"] if isinstance(found, list) else found["id"]
    page = json.loads(c360("customer", "timeline", cid, "--first", "1", cwd=tmp_path).stdout)
    assert [e["id"] for e in page["events"]] == ["crm|o2"] and page["next_cursor"]
    rest = json.loads(c360("customer", "timeline", cid, "--after", page["next_cursor"], cwd=tmp_path).stdout)
    assert [e["id"] for e in rest["events"]] == ["crm|o1"] and rest["next_cursor"] is None
    missing = c360("customer", "timeline", "C404", cwd=tmp_path, ok=False)
    assert missing.returncode != 0 and "C404" in missing.stderr
