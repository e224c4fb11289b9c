"""Issue 13's attacks on the event paths, each reproduced first (one event id twice in a batch, paths)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from c360.connectors.files import FileSource
from c360.connectors.synthetic import Dataset
from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord
from c360.graph.store import GraphStore
from c360.resolution.linker import Linker
from test_cli import c360


def links(store: GraphStore) -> dict[str, str]:
    return {f"{s}|{k}": c for s, k, c in store.iter_links()}


# -- 2. one event id in one batch: the first wins -------------------------------------------------------


def test_the_linker_links_one_record_per_applied_event(store: GraphStore) -> None:
    from c360.graph.models import StoredEvent

    at = datetime(2026, 5, 1, tzinfo=UTC)
    a, b = SourceRecord("crm", "a", at, first_name="Ann"), SourceRecord("crm", "b", at, first_name="Bo")
    event = StoredEvent("crm|e1", "profile_update", at, "{}", None)
    result = Linker(store).ingest_batch([a, b], events=[event, event], record_events=["crm|e1", "crm|e1"])
    assert (result.events, result.duplicates, result.inserted) == (["crm|e1"], 1, 1)
    assert set(links(store)) == {"crm|a"}


# -- 5. source names are never paths --------------------------------------------------------------------


@pytest.mark.parametrize("source", ["../../tmp/x", "/tmp/x", "..", ".hidden", "a/b", "CRM", "a|b", "a\x00b"])
def test_a_source_name_that_is_a_path_is_refused(tmp_path: Path, source: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "p.csv").write_text("id,email\n,a@x.com\n")
    proc = c360("ingest", "p.csv", "--source", source, cwd=home, ok=False)
    assert proc.returncode == 1 and "invalid source name" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # nothing written beside the home
    assert not (home / ".c360").exists()
    with pytest.raises(InvalidInputError, match="invalid source name"):
        FileSource(home / "p.csv", source)


def _dataset(root: Path, **entry: str) -> Path:
    root.mkdir(parents=True)
    (root / "crm.csv").write_text("id,email\n1,a@x.com\n")
    (root / "crm.mapping.yaml").write_text("key: id\n")
    source = {"source": "crm", "path": "crm.csv", "mapping": "crm.mapping.yaml", **entry}
    (root / "dataset.json").write_text(json.dumps({"sources": [source]}))
    return root


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"source": "../../../../X"}, "invalid source name"),
        ({"source": "/etc/x"}, "invalid source name"),
        ({"path": "../../outside.csv"}, "outside the data set folder"),
        ({"path": "/etc/passwd"}, "outside the data set folder"),
        ({"mapping": "../m.yaml"}, "outside the data set folder"),
    ],
)
def test_a_data_set_manifest_cannot_name_a_path_outside_its_folder(
    tmp_path: Path, entry: dict[str, str], says: str
) -> None:
    root = _dataset(tmp_path / "set", **entry)
    with pytest.raises(InvalidInputError, match=says):
        Dataset.load(root)
    proc = c360("ingest", "set", cwd=tmp_path, ok=False)
    assert proc.returncode == 1 and says in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_a_well_formed_data_set_still_loads(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "set")
    [source] = Dataset.load(root).sources
    assert source.source == "crm" and source.path == root / "crm.csv"
