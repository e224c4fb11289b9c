"""``c360 keys rotate --hash``: a new current hash key, the old ones kept, the rotation audited."""

from __future__ import annotations

import json
from pathlib import Path

from c360.graphql.hash_keys import load_hash_keys
from c360.graphql.policy import load_policy
from test_cli import c360


def test_rotating_the_hash_key_changes_new_hashes_keeps_old_ones_and_is_audited(tmp_path: Path) -> None:
    refused = c360("keys", "rotate", cwd=tmp_path, ok=False)
    assert refused.returncode == 1 and "--hash" in refused.stderr
    first = c360("keys", "rotate", "--hash", "--by", "ops", cwd=tmp_path)
    ring_file = tmp_path / ".c360" / "hash-keys.json"
    ring = load_hash_keys(ring_file)
    assert ring.current in first.stdout and (ring_file.stat().st_mode & 0o777) == 0o600
    before = load_policy(hash_keys=ring).hash("Lee")
    c360("keys", "rotate", "--hash", cwd=tmp_path)
    rotated = load_hash_keys(ring_file)
    assert rotated.current != ring.current and set(ring.ids) < set(rotated.ids)
    after = load_policy(hash_keys=rotated)
    assert after.hash("Lee") != before and after.hash_matches("Lee", before)  # old hashes still recognised
    entries = [json.loads(line) for line in (tmp_path / ".c360" / "audit.log").read_text().splitlines()]
    rotations = [e for e in entries if e.get("action") == "rotate_hash_key"]
    assert [e["outcome"] for e in rotations] == ["ok", "ok"] and rotations[0]["actor"] == "ops"
    assert c360("audit", "verify", cwd=tmp_path).returncode == 0
