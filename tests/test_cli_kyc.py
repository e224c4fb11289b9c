"""``c360 kyc screen``: a name against the published OFAC and UN lists, hits explained, exit 3 on a hit."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from test_cli import c360

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "c360.yaml"
    config.write_text(
        yaml.safe_dump({"kyc": {"ofac_dir": str(DATA / "ofac"), "un_file": str(next((DATA / "un").glob("*.xml")))}})
    )
    return config


def test_a_listed_name_hits_with_its_explanation_and_an_ordinary_one_does_not(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    ordinary = c360("--config", config, "kyc", "screen", "Margaret Thompson", cwd=tmp_path)
    assert ordinary.returncode == 0 and "no hit" in ordinary.stdout
    listed = c360("--config", config, "kyc", "screen", "Manuel Antonio Noriega", "--json", cwd=tmp_path, ok=False)
    assert listed.returncode == 3, listed.stderr
    doc = json.loads(listed.stdout)
    best = doc["hits"][0]
    assert "NORIEGA" in best["listed_name"].upper() and best["score"] > 0.9
    assert "noriega ~ noriega" in best["explanation"]
    entries = [json.loads(line) for line in (tmp_path / ".c360" / "audit.log").read_text().splitlines()]
    assert [e["outcome"] for e in entries if e.get("action") == "screen_name"] == ["ok", "ok"]


def test_without_a_list_it_says_what_to_configure(tmp_path: Path) -> None:
    bare = c360("kyc", "screen", "Anyone", cwd=tmp_path, ok=False)
    assert bare.returncode == 1 and "kyc.ofac_dir" in bare.stderr
    bad = c360("--config", str(_config(tmp_path)), "kyc", "screen", "X Y", "--dob", "1.2.1960", cwd=tmp_path, ok=False)
    assert bad.returncode == 1 and "YYYY-MM-DD" in bad.stderr
