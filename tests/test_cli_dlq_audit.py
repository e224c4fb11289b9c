"""Dead letters may hold personal data: listing and showing them is audited, and so is a replay."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import c360


def _entries(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / ".c360" / "audit.log").read_text().splitlines()]


def test_reading_dead_letters_is_audited(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("id,email\n1,a@x.com\n,b@x.com\n")
    c360("ingest", "people.csv", "--source", "shop", cwd=tmp_path)
    (letter,) = json.loads(c360("dlq", "list", "--source", "shop", "--json", cwd=tmp_path).stdout)
    shown = json.loads(c360("dlq", "show", letter["id"], cwd=tmp_path).stdout)
    assert shown["id"] == letter["id"]
    missing = c360("dlq", "show", "D404", cwd=tmp_path, ok=False)
    assert missing.returncode == 1
    reads = [(e["action"], e["target"], e["outcome"]) for e in _entries(tmp_path) if "dead_letter" in str(e["action"])]
    assert reads == [
        ("read_dead_letters", "shop", "ok"),
        ("read_dead_letter", letter["id"], "ok"),
        ("read_dead_letter", "D404", "not_found"),
    ]
    assert c360("audit", "verify", cwd=tmp_path).returncode == 0
