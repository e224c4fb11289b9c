"""The store as a whole: reset, the registry of backends, older files; every backend passes every test.

Each domain has its own contract suite, ``tests/test_store_<domain>.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graph.store import GraphStore, open_store, store_names
from store_contract import seed


def test_reset_needs_confirmation(store: GraphStore) -> None:
    seed(store)
    with pytest.raises(InvalidInputError):
        store.reset(confirm=False)
    store.reset(confirm=True)
    assert store.stats().records == 0
    store.ping()


def test_registry_rejects_unknown_backend_and_bad_config(tmp_path: object) -> None:
    assert store_names() == ["embedded", "neo4j"]
    with pytest.raises(ConfigError, match="unknown graph backend"):
        open_store("oracle", {})
    with pytest.raises(ConfigError, match="invalid embedded store config"):
        open_store("embedded", {"path": "x.db", "colour": "blue"})


def test_embedded_store_opens_a_file_of_an_older_schema(tmp_path: Path) -> None:
    """A schema-2 file (no views with blocking keys, no records on merges) opens and still finds candidates."""
    from c360.graph.embedded import EmbeddedConfig, EmbeddedStore

    path = tmp_path / "old.db"
    store = EmbeddedStore(EmbeddedConfig(path=path))
    seed(store)
    store.close()
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE record_blocks; CREATE TABLE record_blocks (key TEXT NOT NULL, record_uid TEXT NOT NULL, "
        "PRIMARY KEY (key, record_uid)) WITHOUT ROWID; INSERT INTO record_blocks VALUES ('k', 'crm|1');"
        "ALTER TABLE merges DROP COLUMN records;"
    )
    db.close()
    store = EmbeddedStore(EmbeddedConfig(path=path))
    try:
        [c] = store.candidates(["k"])
        assert c.uid == "crm|1" and c.view is None and c.record is not None and c.record.first_name == "Ann"
        assert all(isinstance(e.records, tuple) for e in store.history("C1"))
    finally:
        store.close()


def test_a_backend_registered_by_a_plugin_module_is_chosen_in_settings(tmp_path: Path) -> None:
    import sys

    from c360.deps import build_store
    from c360.settings import load_settings

    sys.modules.pop("plugin_store", None)
    options = {"file": str(tmp_path / "plugin.db")}
    settings = load_settings(data_dir=tmp_path, graph={"backend": "plugin_store:copy", "options": options})
    assert "plugin_store" not in sys.modules  # imported when the store opens, not before
    store = build_store(settings)
    try:
        assert type(store).__name__ == "CopyStore" and "plugin_store:copy" in store_names()
        seed(store)
        assert store.stats().records > 0 and (tmp_path / "plugin.db").is_file()
    finally:
        store.close()
    bad = load_settings(data_dir=tmp_path, graph={"backend": "plugin_store:copy", "options": {"colour": "blue"}})
    with pytest.raises(ConfigError, match="invalid plugin_store:copy store config"):
        build_store(bad)
    with pytest.raises(ConfigError, match="cannot import no_such_module"):
        open_store("no_such_module:x", {})
    with pytest.raises(ConfigError, match="did not register"):
        open_store("store_contract:x", {})
