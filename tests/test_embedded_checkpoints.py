"""Background WAL checkpoints of the embedded store: on in the API server, off for bulk work, and safe
beside writers."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from c360.graph.embedded import EmbeddedConfig, EmbeddedStore
from store_contract import customer_with_records

from c360.settings import GraphSettings


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "c360-wal-checkpoints"]


def test_the_server_checkpoints_in_the_background_and_other_commands_do_not() -> None:
    graph = GraphSettings()
    served = graph.store_config(Path("/d"), serving=True)
    other = graph.store_config(Path("/d"))
    assert isinstance(served, EmbeddedConfig) and served.checkpoint_seconds == 1.0
    assert isinstance(other, EmbeddedConfig) and other.checkpoint_seconds == 0
    fixed = GraphSettings(embedded_checkpoint_seconds=0).store_config(Path("/d"), serving=True)
    assert isinstance(fixed, EmbeddedConfig) and fixed.checkpoint_seconds == 0


def test_checkpoints_run_beside_writers_and_stop_with_the_store(tmp_path: Path) -> None:
    before = len(_threads())
    path = tmp_path / "graph.db"
    store = EmbeddedStore(EmbeddedConfig(path=path, checkpoint_seconds=0.01, wal_autocheckpoint=0))
    assert len(_threads()) == before + 1
    for n in range(40):  # autocheckpoint off: only the background thread copies the WAL into the file
        store.apply(customer_with_records(f"C{n}", 3))
        time.sleep(0.005)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the file itself (read without the WAL) holds the customers
        probe = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            found = probe.execute("SELECT count(*) FROM customers").fetchone()[0]
        except sqlite3.OperationalError:
            found = 0
        finally:
            probe.close()
        if found == 40:
            break
        time.sleep(0.05)
    assert found == 40
    assert store.stats().customers == 40
    store.close()
    assert len(_threads()) == before
