"""The neo4j backend's connection: config, the driver, sessions, batched writes and the write lock.

Each domain module adds its schema statements (``_schema``), its part of a change set (``_write``) and
the labels reset deletes (``_labels``) and calls ``super()``: the store class lists the domain modules.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import neo4j
from neo4j import GraphDatabase, ManagedTransaction
from neo4j import exceptions as neo4j_errors

from ..errors import StoreUnavailableError
from ..models import ChangeSet
from ..neo4j_config import Neo4jConfig
from ..store import GraphStore

_BATCH = 2000


def unwind(tx: ManagedTransaction, query: str, rows: list[dict[str, Any]]) -> None:
    """Run ``query`` (``UNWIND $rows AS row ...``) over ``rows`` in batches; nothing if there are none."""
    if not rows:
        return
    for i in range(0, len(rows), _BATCH):
        tx.run(query, rows=rows[i : i + _BATCH]).consume()


class Neo4jBase(GraphStore):
    """The driver every neo4j domain module shares."""

    name = "neo4j"

    def __init__(self, config: Neo4jConfig) -> None:
        self.config = config
        try:
            self._driver = GraphDatabase.driver(
                config.uri,
                auth=(config.user, config.password.get_secret_value()),
                connection_timeout=config.connection_timeout,
                # Neo4j warns about labels and properties that do not exist yet (every fresh database)
                # and informs about schema statements that change nothing; keep performance and
                # deprecation warnings, which say something.
                notifications_min_severity=neo4j.NotificationMinimumSeverity.WARNING,
                notifications_disabled_classifications=[neo4j.NotificationDisabledClassification.UNRECOGNIZED],
            )
            self._driver.verify_connectivity()
            with self._session() as s:
                for statement in self._schema():
                    s.run(statement).consume()
        except (neo4j_errors.ServiceUnavailable, neo4j_errors.AuthError, OSError) as exc:
            raise StoreUnavailableError(f"cannot reach neo4j at {config.uri}: {exc}") from exc

    def close(self) -> None:
        """Close the driver and its connection pool."""
        self._driver.close()

    def _session(self) -> neo4j.Session:
        return self._driver.session(database=self.config.database)

    def _read(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with self._session() as s:
            return [r.data() for r in s.run(query, **params)]

    # -- what each domain module extends (and calls super() in) ----------------------------------------

    @classmethod
    def _schema(cls) -> list[str]:
        """The domain's schema statements, each idempotent."""
        return [
            "CREATE CONSTRAINT c360_writer_lock IF NOT EXISTS FOR (l:WriterLock) REQUIRE l.name IS UNIQUE",
            "MERGE (:WriterLock {name: 'writer'})",
        ]

    def _write(self, tx: ManagedTransaction, changes: ChangeSet) -> None:
        """Write the domain's part of ``changes`` inside the open transaction."""

    def _labels(self) -> list[str]:
        """The labels of the domain's nodes, which reset deletes."""
        return []

    # -- writes and the write lock ---------------------------------------------------------------------

    def _apply(self, changes: ChangeSet) -> None:
        with self._session() as s:
            s.execute_write(self._write, changes)

    def _reset(self) -> None:
        with self._session() as s:
            for label in self._labels():
                s.run(f"MATCH (n:{label}) DETACH DELETE n").consume()

    def _ping(self) -> None:
        self._read("RETURN 1 AS ok")

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # The lock transaction writes nothing that matters; it stays open so that Neo4j keeps holding the
        # node's lock. Threads of this process queue on the in-process lock first (one connection each).
        with self._writer_lock, self._session() as s:
            try:
                tx = s.begin_transaction(metadata={"c360": "writer lock"})
                tx.run(
                    "MATCH (l:WriterLock {name: 'writer'}) SET l.holder = $holder, l.since = $since",
                    holder=f"{socket.gethostname()}:{os.getpid()}",
                    since=datetime.now(UTC).isoformat(),
                ).consume()
            except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired, OSError) as exc:
                # Any other failure becomes a StoreError in GraphStore.exclusive().
                raise StoreUnavailableError(f"neo4j store: cannot take the write lock: {exc}") from exc
            try:
                yield
            except BaseException:
                tx.rollback()
                raise
            tx.commit()
