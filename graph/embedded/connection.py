"""The embedded backend's connection: config, the SQLite file, its transactions and write lock.

Each domain module adds its tables (``_create``), its part of a change set (``_write``) and the
tables reset empties (``_tables``) and calls ``super()``: the store class lists the domain modules.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import StoreUnavailableError
from ..models import ChangeSet
from ..store import GraphStore, StoreConfig

SCHEMA_VERSION = "4"

# SQLite allows 32766 host parameters; stay far below for IN lists.
_CHUNK = 900


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """``items`` in slices small enough for one ``IN (...)`` list."""
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def marks(n: int) -> str:
    """``n`` comma-separated ``?`` placeholders."""
    return ",".join("?" * n)


log = logging.getLogger(__name__)


class EmbeddedConfig(StoreConfig):
    """Configuration of the embedded (SQLite) store."""

    path: Path = Field(description="The database file; its folder is created if missing.")
    wal_autocheckpoint: int = Field(
        default=10_000, ge=0, description="WAL pages (4 KiB) after which SQLite checkpoints; 0 turns it off."
    )
    cache_mb: int = Field(default=64, ge=1, description="SQLite page cache of the connection, in MiB.")
    mmap_mb: int = Field(
        default=0, ge=0, description="Bytes of the file SQLite reads through a memory map, in MiB (0: plain reads)."
    )
    synchronous: str = Field(
        default="NORMAL",
        pattern="^(OFF|NORMAL|FULL|EXTRA)$",
        description="SQLite synchronous mode; NORMAL in WAL mode is durable across process crashes.",
    )
    checkpoint_seconds: float = Field(
        default=0,
        ge=0,
        le=3600,
        description="Seconds between the passive WAL checkpoints a background thread runs (0: none, SQLite "
        "checkpoints in the commit that passes wal_autocheckpoint). A server sets it, so that no request waits "
        "for a checkpoint.",
    )
    lock_timeout: float = Field(
        default=30, gt=0, le=3600, description="Seconds a writer waits for another process's write lock."
    )


class EmbeddedBase(GraphStore):
    """The SQLite connection every embedded domain module shares. Safe to share between threads (one lock)."""

    name = "embedded"

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        try:
            config.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                config.path, isolation_level=None, check_same_thread=False, timeout=config.lock_timeout
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={config.synchronous}")
            # Checkpoint the WAL less often than the default 1,000 pages: fewer fsyncs while ingesting.
            self._db.execute(f"PRAGMA wal_autocheckpoint={config.wal_autocheckpoint}")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.execute(f"PRAGMA cache_size=-{config.cache_mb * 1024}")
            self._db.execute(f"PRAGMA mmap_size={config.mmap_mb * 1024 * 1024}")
            self._create(self._db)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"cannot open embedded store at {config.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._checkpoints = _Checkpoints(config) if config.checkpoint_seconds > 0 else None

    def close(self) -> None:
        """Close the database file (and stop the background checkpoints)."""
        if self._checkpoints is not None:
            self._checkpoints.stop()
        with self._lock:
            self._db.close()

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- what each domain module extends (and calls super() in) ----------------------------------------

    def _create(self, db: sqlite3.Connection) -> None:
        """Create (or upgrade) the domain's tables."""
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _write(self, db: sqlite3.Connection, changes: ChangeSet) -> None:
        """Write the domain's part of ``changes`` inside the open transaction."""

    def _tables(self) -> list[str]:
        """The domain's tables, which reset empties."""
        return []

    # -- transactions and the write lock ---------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, all of it or none; inside an open one (``exclusive()``), that one."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            # BEGIN IMMEDIATE takes SQLite's write lock: other processes' writers wait (up to the timeout).
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailableError(
                    f"embedded store: no write lock within {self.config.lock_timeout:g} s "
                    f"(another process is writing to {self.config.path}): {exc}"
                ) from exc
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._transaction():
            yield

    def _apply(self, changes: ChangeSet) -> None:
        with self._transaction() as db:
            self._write(db, changes)

    def _reset(self) -> None:
        with self._transaction() as db:
            for table in self._tables():
                db.execute(f"DELETE FROM {table}")

    def _ping(self) -> None:
        self._all("SELECT 1")


class _Checkpoints:
    """A daemon thread that copies the WAL into the database every ``checkpoint_seconds``.

    PASSIVE checkpoints never block a writer or a reader; on a connection of their own they keep the WAL
    short, so that commits rarely pass the auto-checkpoint mark and no request pays for a large checkpoint.
    """

    def __init__(self, config: EmbeddedConfig) -> None:
        self._stop = threading.Event()
        self._db = sqlite3.connect(config.path, isolation_level=None, check_same_thread=False)
        self._interval = config.checkpoint_seconds
        self._thread = threading.Thread(target=self._run, name="c360-wal-checkpoints", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy or closed: the next round, or the commits, checkpoint
                log.debug("background checkpoint skipped: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._db.close()
