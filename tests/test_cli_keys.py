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


def test_rotating_the_vault_key_reseals_every_secret_under_the_new_key(tmp_path: Path) -> None:
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
    from c360.graph.vault import open_vault_keys
    from stdnum import verhoeff

    aadhaar = "23456789012"
    aadhaar += verhoeff.calc_check_digit(aadhaar)
    keys = open_vault_keys(tmp_path / ".c360" / "vault-keys.json")
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / ".c360" / "graph.db"))
    store.put_secrets([keys.item(f"crm|{n}", "aadhaar", aadhaar) for n in range(3)])
    store.close()
    result = c360("keys", "rotate", "--vault", "--by", "ops", cwd=tmp_path)
    assert "3 secrets re-sealed" in result.stdout, result.stdout
    rotated = open_vault_keys(tmp_path / ".c360" / "vault-keys.json")
    assert rotated.current != keys.current
    store = EmbeddedStore(EmbeddedConfig(path=tmp_path / ".c360" / "graph.db"))
    secret = store.get_secret("crm|1", "aadhaar")
    assert secret is not None and secret.key_id == rotated.current and rotated.open_item(secret) == aadhaar
    assert store.secret_key_counts() == {rotated.current: 3}
    store.close()
    entries = [json.loads(line) for line in (tmp_path / ".c360" / "audit.log").read_text().splitlines()]
    assert [e["outcome"] for e in entries if e.get("action") == "rotate_vault_key"] == ["ok"]
