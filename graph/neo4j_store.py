"""The neo4j backend: Cypher through the official driver. The only module where Cypher lives.

Graph model::

    (:Record {uid, source, key, data, hash, first_lc, last_lc})
        -[:BELONGS_TO {evidence}]-> (:Customer {id, created_at, status, merged_into, golden})
    (:Record)-[:HAS_IDENTIFIER]->(:Identifier {uid, kind, value, joined, flagged, flag_reason})
    (:Customer)-[:MERGED_INTO {at, evidence, records, seq}]->(:Customer)
    (:Customer)-[:SPLIT_FROM {at, evidence, records, seq}]->(:Customer)
    (:Record)-[:APART {reason}]->(:Record)
    (:WriterLock {name: 'writer', holder, since})   the write lock that ``exclusive()`` holds

Writers are exclusive across processes: ``exclusive()`` writes the lock node in a transaction it keeps
open until the block ends, so Neo4j holds the node's exclusive lock for it. Another writer's write to the
node waits; a crashed holder's connection drops and the server rolls back, releasing the lock.
"""

from __future__ import annotations

import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import neo4j
from neo4j import GraphDatabase, ManagedTransaction
from neo4j import exceptions as neo4j_errors
from pydantic import Field, SecretStr

from .errors import StoreError, StoreUnavailableError
from .models import (
    ApartPair,
    Candidate,
    ChangeSet,
    Customer,
    DeadLetter,
    Evidence,
    ExistingRecord,
    HistoryEvent,
    Identifier,
    IdentifierState,
    Lookup,
    MergeEvent,
    Profile,
    ReviewItem,
    SourceRecord,
    SplitEvent,
    StoredEvent,
    StoreStats,
    assemble_profiles,
    dumps,
    event_time,
    golden_from_json,
    golden_to_json,
    loads,
)
from .store import GraphStore, StoreConfig

#: Schema statements, all in one place; each is idempotent.
SCHEMA: tuple[str, ...] = (
    "CREATE CONSTRAINT c360_record_uid IF NOT EXISTS FOR (r:Record) REQUIRE r.uid IS UNIQUE",
    "CREATE CONSTRAINT c360_customer_id IF NOT EXISTS FOR (c:Customer) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT c360_identifier_uid IF NOT EXISTS FOR (i:Identifier) REQUIRE i.uid IS UNIQUE",
    "CREATE CONSTRAINT c360_block_key IF NOT EXISTS FOR (b:Block) REQUIRE b.key IS UNIQUE",
    "CREATE CONSTRAINT c360_review_id IF NOT EXISTS FOR (v:Review) REQUIRE v.id IS UNIQUE",
    "CREATE INDEX c360_review_status IF NOT EXISTS FOR (v:Review) ON (v.status)",
    "CREATE INDEX c360_review_record IF NOT EXISTS FOR (v:Review) ON (v.record_uid)",
    "CREATE INDEX c360_review_candidate IF NOT EXISTS FOR (v:Review) ON (v.candidate_uid)",
    "CREATE INDEX c360_customer_merged_into IF NOT EXISTS FOR (c:Customer) ON (c.merged_into)",
    "CREATE INDEX c360_record_last IF NOT EXISTS FOR (r:Record) ON (r.last_lc)",
    "CREATE INDEX c360_record_first IF NOT EXISTS FOR (r:Record) ON (r.first_lc)",
    "CREATE INDEX c360_identifier_flagged IF NOT EXISTS FOR (i:Identifier) ON (i.flagged)",
    "CREATE CONSTRAINT c360_event_id IF NOT EXISTS FOR (e:Event) REQUIRE e.id IS UNIQUE",
    "CREATE INDEX c360_event_record IF NOT EXISTS FOR (e:Event) ON (e.record_uid)",
    "CREATE CONSTRAINT c360_dead_letter_id IF NOT EXISTS FOR (d:DeadLetter) REQUIRE d.id IS UNIQUE",
    "CREATE INDEX c360_dead_letter_status IF NOT EXISTS FOR (d:DeadLetter) ON (d.status)",
    "CREATE CONSTRAINT c360_writer_lock IF NOT EXISTS FOR (l:WriterLock) REQUIRE l.name IS UNIQUE",
    "MERGE (:WriterLock {name: 'writer'})",
)

_BATCH = 2000


class Neo4jConfig(StoreConfig):
    """Connection settings of the neo4j backend."""

    uri: str = Field(default="bolt://127.0.0.1:7687", description="Bolt or neo4j:// URI of the server.")
    user: str = Field(default="neo4j", description="User name.")
    password: SecretStr = Field(default=SecretStr(""), description="Password.")
    database: str = Field(default="neo4j", description="Database name.")
    connection_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a connection.")


class Neo4jStore(GraphStore):
    """The identity graph in Neo4j 5."""

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
                for statement in SCHEMA:
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

    # -- reads -----------------------------------------------------------------------------------------

    def _lookup(self, record_uids: list[str], identifier_uids: list[str]) -> Lookup:
        records: dict[str, ExistingRecord] = {}
        states: dict[str, IdentifierState] = {}
        bearers: dict[str, dict[str, str]] = defaultdict(dict)
        with self._session() as s:
            if record_uids:
                for row in s.run(
                    "UNWIND $uids AS uid MATCH (r:Record {uid: uid})-[b:BELONGS_TO]->(c:Customer) "
                    "OPTIONAL MATCH (r)-[:HAS_IDENTIFIER]->(i:Identifier) "
                    "RETURN r.uid AS uid, r.hash AS hash, c.id AS cid, b.evidence AS evidence, "
                    "collect(i.uid) AS idents",
                    uids=record_uids,
                ):
                    records[row["uid"]] = ExistingRecord(
                        row["uid"],
                        row["hash"],
                        row["cid"],
                        Evidence.from_json(loads(row["evidence"])),
                        tuple(sorted(u for u in row["idents"] if u)),
                    )
            if identifier_uids:
                for row in s.run(
                    "UNWIND $uids AS uid MATCH (i:Identifier {uid: uid}) RETURN i.uid AS uid, i.kind AS kind, "
                    "i.value AS value, i.joined AS joined, i.flagged AS flagged, i.flag_reason AS reason",
                    uids=identifier_uids,
                ):
                    states[row["uid"]] = IdentifierState(
                        Identifier(row["kind"], row["value"]), row["joined"], bool(row["flagged"]), row["reason"]
                    )
                linking = [uid for uid, st in states.items() if not st.flagged]
                if linking:
                    for row in s.run(
                        "UNWIND $uids AS uid MATCH (i:Identifier {uid: uid})<-[:HAS_IDENTIFIER]-(r:Record)"
                        "-[:BELONGS_TO]->(c:Customer) RETURN i.uid AS uid, r.uid AS ruid, c.id AS cid",
                        uids=linking,
                    ):
                        bearers[row["uid"]][row["ruid"]] = row["cid"]
        return Lookup(records, states, dict(bearers))

    def _records_of(self, customer_ids: list[str]) -> dict[str, list[SourceRecord]]:
        out: dict[str, list[SourceRecord]] = defaultdict(list)
        for row in self._read(
            "UNWIND $ids AS cid MATCH (c:Customer {id: cid})<-[:BELONGS_TO]-(r:Record) RETURN cid, r.data AS data",
            ids=customer_ids,
        ):
            out[row["cid"]].append(SourceRecord.from_json(loads(row["data"])))
        return dict(out)

    def _resolve(self, customer_id: str) -> str | None:
        return self._resolve_many([customer_id]).get(customer_id)

    def _resolve_many(self, customer_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for row in self._read(
            "UNWIND $ids AS cid MATCH (c:Customer {id: cid}) "
            "RETURN c.id AS id, c.status AS status, c.merged_into AS merged_into",
            ids=customer_ids,
        ):
            active = row["id"] if row["status"] == "active" else row["merged_into"]
            if active is not None:
                out[row["id"]] = active
        return out

    @staticmethod
    def _customer(row: dict[str, Any]) -> Customer:
        return Customer(
            row["id"],
            datetime.fromisoformat(row["created_at"]),
            row["status"],
            row["merged_into"],
            golden_from_json(row["golden"] or "{}"),
        )

    _CUSTOMER_FIELDS = (
        "c.id AS id, c.created_at AS created_at, c.status AS status, c.merged_into AS merged_into, c.golden AS golden"
    )

    def _get_customer(self, customer_id: str) -> Customer | None:
        rows = self._read(f"MATCH (c:Customer {{id: $id}}) RETURN {self._CUSTOMER_FIELDS}", id=customer_id)
        return self._customer(rows[0]) if rows else None

    def _get_profiles(self, targets: Mapping[str, str]) -> dict[str, Profile]:
        # One read transaction (a consistent view) of eight statements, whatever the number of ids.
        with self._session() as s:
            return s.execute_read(self._load_profiles, dict(targets))

    def _load_profiles(self, tx: ManagedTransaction, targets: dict[str, str]) -> dict[str, Profile]:
        def read(query: str, **params: Any) -> list[dict[str, Any]]:
            return [r.data() for r in tx.run(query, **params)]

        actives = sorted(set(targets.values()))
        customers = {
            row["id"]: self._customer(row)
            for row in read(
                f"UNWIND $ids AS cid MATCH (c:Customer {{id: cid}}) RETURN {self._CUSTOMER_FIELDS}", ids=actives
            )
        }
        identifier_rows: dict[str, list[tuple[str, IdentifierState]]] = defaultdict(list)
        for row in read(
            "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[:BELONGS_TO]-(r:Record)"
            "-[:HAS_IDENTIFIER]->(i:Identifier) "
            "RETURN cid, r.uid AS ruid, i.kind AS kind, i.value AS value, i.joined AS joined, "
            "i.flagged AS flagged, i.flag_reason AS reason",
            ids=actives,
        ):
            identifier_rows[row["cid"]].append(
                (
                    row["ruid"],
                    IdentifierState(
                        Identifier(row["kind"], row["value"]), row["joined"], bool(row["flagged"]), row["reason"]
                    ),
                )
            )
        record_rows: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row in read(
            "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[b:BELONGS_TO]-(r:Record) "
            "RETURN cid, r.uid AS uid, r.data AS data, b.evidence AS evidence ORDER BY cid, uid",
            ids=actives,
        ):
            record_rows[row["cid"]].append((row["uid"], row["data"], row["evidence"]))
        merged: dict[str, list[str]] = defaultdict(list)
        for row in read(
            "UNWIND $ids AS cid MATCH (c:Customer {merged_into: cid}) RETURN cid, c.id AS mid ORDER BY cid, mid",
            ids=actives,
        ):
            merged[row["cid"]].append(row["mid"])
        histories = self._histories(actives, read)
        return assemble_profiles(targets, customers, identifier_rows, record_rows, merged, histories)

    def _list_customers(self, limit: int, after: str | None) -> list[str]:
        # Keyset pagination on the unique id: a range from the cursor, never a SKIP.
        rows = self._read(
            "MATCH (c:Customer) WHERE c.status = 'active'"
            f"{'' if after is None else ' AND c.id > $after'} RETURN c.id AS id ORDER BY id LIMIT $limit",
            after=after,
            limit=limit,
        )
        return [r["id"] for r in rows]

    def _find_by_identifier(self, identifier_uid: str) -> list[str]:
        rows = self._read(
            "MATCH (:Identifier {uid: $uid})<-[:HAS_IDENTIFIER]-(:Record)-[:BELONGS_TO]->(c:Customer) "
            "RETURN DISTINCT c.id AS id ORDER BY id",
            uid=identifier_uid,
        )
        return [r["id"] for r in rows]

    def _find_by_name(self, first: str | None, last: str | None, limit: int) -> list[str]:
        where = " AND ".join(
            clause for clause, value in (("r.first_lc = $first", first), ("r.last_lc = $last", last)) if value
        )
        rows = self._read(
            f"MATCH (r:Record)-[:BELONGS_TO]->(c:Customer) WHERE {where} "
            "RETURN DISTINCT c.id AS id ORDER BY id LIMIT $limit",
            first=first,
            last=last,
            limit=limit,
        )
        return [r["id"] for r in rows]

    def _iter_links(self) -> Iterator[tuple[str, str, str]]:
        rows = self._read(
            "MATCH (r:Record)-[:BELONGS_TO]->(c:Customer) "
            "RETURN r.source AS source, r.key AS key, c.id AS cid ORDER BY source, key"
        )
        for row in rows:
            yield row["source"], row["key"], row["cid"]

    @classmethod
    def _write_blocks(cls, tx: ManagedTransaction, rows: list[dict[str, Any]]) -> None:
        cls._unwind(tx, "UNWIND $rows AS row MERGE (:Block {key: row.k})", rows)
        cls._unwind(
            tx,
            "UNWIND $rows AS row MATCH (r:Record {uid: row.r}) MATCH (b:Block {key: row.k}) "
            "CREATE (r)-[:IN_BLOCK]->(b)",
            rows,
        )

    def _candidates(self, keys: list[str], per_key: int) -> list[Candidate]:
        rows = self._read(
            "UNWIND $keys AS k MATCH (:Block {key: k})<-[:IN_BLOCK]-(r:Record) "
            "RETURN k, r.uid AS uid, r.view AS view, r.data AS data ORDER BY k, uid",
            keys=keys,
        )
        taken: dict[str, int] = {}
        out = []
        for row in rows:  # at most per_key a key, as the embedded store does
            if taken.get(row["k"], 0) < per_key:
                taken[row["k"]] = taken.get(row["k"], 0) + 1
                view = row["view"]
                record = None if view is not None else SourceRecord.from_json(loads(row["data"]))
                out.append(Candidate(row["uid"], (row["k"],), view, record))
        return out

    def _replace_blocking_keys(self, keys: Mapping[str, Collection[str]], views: Mapping[str, str]) -> None:
        def work(tx: ManagedTransaction) -> None:
            tx.run("MATCH (:Record)-[e:IN_BLOCK]->(:Block) DELETE e").consume()
            tx.run("MATCH (b:Block) DELETE b").consume()
            tx.run("MATCH (r:Record) WHERE r.view IS NOT NULL REMOVE r.view").consume()
            self._write_blocks(tx, [{"r": uid, "k": k} for uid, ks in keys.items() for k in ks])
            self._unwind(
                tx,
                "UNWIND $rows AS row MATCH (r:Record {uid: row.uid}) SET r.view = row.view",
                [{"uid": uid, "view": view} for uid, view in views.items()],
            )

        with self._session() as s:
            s.execute_write(work)

    _REVIEW_FIELDS = (
        "v.id AS id, v.record_uid AS record_uid, v.candidate_uid AS candidate_uid, v.customer_id AS customer_id, "
        "v.match_weight AS match_weight, v.match_probability AS match_probability, v.created_at AS created_at, "
        "v.status AS status, v.decided_by AS decided_by, v.decided_at AS decided_at, v.reason AS reason"
    )

    @staticmethod
    def _review(row: dict[str, Any]) -> ReviewItem:
        decided = datetime.fromisoformat(row["decided_at"]) if row["decided_at"] else None
        return ReviewItem(
            row["id"],
            row["record_uid"],
            row["candidate_uid"],
            row["customer_id"],
            float(row["match_weight"]),
            float(row["match_probability"]),
            datetime.fromisoformat(row["created_at"]),
            row["status"],
            row["decided_by"],
            decided,
            row["reason"],
        )

    def _review_items(self, status: str | None, limit: int | None) -> list[ReviewItem]:
        where = "WHERE v.status = $status" if status else ""
        cap = "" if limit is None else "LIMIT $limit"
        rows = self._read(
            f"MATCH (v:Review) {where} RETURN {self._REVIEW_FIELDS} ORDER BY created_at, id {cap}",
            status=status,
            limit=limit,
        )
        return [self._review(r) for r in rows]

    def _get_review(self, review_id: str) -> ReviewItem | None:
        rows = self._read(f"MATCH (v:Review {{id: $id}}) RETURN {self._REVIEW_FIELDS}", id=review_id)
        return self._review(rows[0]) if rows else None

    def _decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> None:
        with self._session() as s:
            s.run(
                "MATCH (v:Review {id: $id}) WHERE v.status = 'open' "
                "SET v.status = $status, v.decided_by = $by, v.decided_at = $at, v.reason = $reason",
                id=review_id,
                status=status,
                by=by,
                at=at.isoformat(),
                reason=reason,
            ).consume()

    def _rejected_pairs(self, record_uids: list[str]) -> set[frozenset[str]]:
        rows = self._read(
            "MATCH (v:Review) WHERE v.status = 'rejected' AND (v.record_uid IN $uids OR v.candidate_uid IN $uids) "
            "RETURN v.record_uid AS a, v.candidate_uid AS b",
            uids=record_uids,
        )
        return {frozenset((r["a"], r["b"])) for r in rows}

    _APART_FIELDS = "ra.uid AS a, ca.id AS ca, rb.uid AS b, cb.id AS cb, e.reason AS reason"

    def _apart(self, record_uids: list[str] | None, customer_ids: list[str] | None) -> list[ApartPair]:
        sides = "MATCH (ra)-[:BELONGS_TO]->(ca:Customer) MATCH (rb)-[:BELONGS_TO]->(cb:Customer)"
        if record_uids is None:
            rows = self._read(f"MATCH (ra:Record)-[e:APART]->(rb:Record) {sides} RETURN {self._APART_FIELDS}")
        else:
            uids = set(record_uids)
            if customer_ids:
                uids.update(
                    r["uid"]
                    for r in self._read(
                        "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[:BELONGS_TO]-(r:Record) RETURN r.uid AS uid",
                        ids=customer_ids,
                    )
                )
            rows = []
            for pattern in (
                "(ra:Record {uid: u})-[e:APART]->(rb:Record)",
                "(ra:Record)-[e:APART]->(rb:Record {uid: u})",
            ):
                rows += self._read(
                    f"UNWIND $uids AS u MATCH {pattern} {sides} RETURN {self._APART_FIELDS}", uids=sorted(uids)
                )
        found = {(r["a"], r["b"], r["reason"], r["ca"], r["cb"]) for r in rows}
        return [ApartPair(*row) for row in sorted(found)]

    def _iter_records(self) -> Iterator[tuple[SourceRecord, str]]:
        rows = self._read(
            "MATCH (r:Record)-[:BELONGS_TO]->(c:Customer) RETURN r.uid AS uid, r.data AS data, c.id AS cid ORDER BY uid"
        )
        for row in rows:
            yield SourceRecord.from_json(loads(row["data"])), row["cid"]

    def _history(self, customer_id: str) -> list[HistoryEvent]:
        return self._histories([customer_id], self._read)[customer_id]

    @staticmethod
    def _histories(customer_ids: list[str], read: Callable[..., list[dict[str, Any]]]) -> dict[str, list[HistoryEvent]]:
        """Each customer's merges and splits (either side), oldest first: four reads, whatever the number of ids."""
        found: dict[str, dict[tuple[str, int, int], HistoryEvent]] = {cid: {} for cid in customer_ids}
        for kind, rel in ((0, "MERGED_INTO"), (1, "SPLIT_FROM")):
            for direction in (
                "(x:Customer {id: cid})-[e:%s]->(y:Customer)",
                "(x:Customer)-[e:%s]->(y:Customer {id: cid})",
            ):
                for r in read(
                    f"UNWIND $ids AS cid MATCH {direction % rel} RETURN cid, x.id AS x, y.id AS y, e.at AS at, "
                    "e.evidence AS evidence, e.records AS records, e.seq AS seq",
                    ids=customer_ids,
                ):
                    at = datetime.fromisoformat(r["at"])
                    evidence = Evidence.from_json(loads(r["evidence"]))
                    records = tuple(loads(r["records"] or "[]"))
                    event: HistoryEvent = (
                        MergeEvent(r["y"], r["x"], at, evidence, records)
                        if kind == 0
                        else SplitEvent(r["y"], r["x"], records, at, evidence)
                    )
                    # Keyed, so that a self-loop, found from both sides, counts once.
                    found[r["cid"]][(r["at"], kind, r["seq"])] = event
        return {cid: [events[k] for k in sorted(events)] for cid, events in found.items()}

    def _seen_events(self, event_ids: list[str]) -> set[str]:
        rows = self._read("UNWIND $ids AS id MATCH (e:Event {id: id}) RETURN e.id AS id", ids=event_ids)
        return {r["id"] for r in rows}

    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]:
        where = []
        if before is not None:
            where.append("(e.at < $at OR (e.at = $at AND e.id < $eid))")
        if types is not None:
            where.append("e.type IN $types")
        rows = self._read(
            "MATCH (:Customer {id: $cid})<-[:BELONGS_TO]-(r:Record) MATCH (e:Event {record_uid: r.uid}) "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            "RETURN e.id AS id, e.type AS type, e.at AS at, e.data AS data, e.record_uid AS record_uid "
            "ORDER BY at DESC, id DESC LIMIT $limit",
            cid=customer_id,
            at=before[0] if before else None,
            eid=before[1] if before else None,
            types=types,
            limit=limit,
        )
        return [
            StoredEvent(
                r["id"],
                r["type"],
                datetime.strptime(r["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                r["data"],
                r["record_uid"],
            )
            for r in rows
        ]

    _LETTER_FIELDS = (
        "d.id AS id, d.received_at AS received_at, d.source AS source, d.reason AS reason, d.payload AS payload, "
        "d.status AS status"
    )

    @staticmethod
    def _letter(r: dict[str, Any]) -> DeadLetter:
        at = datetime.fromisoformat(r["received_at"])
        return DeadLetter(r["id"], at, r["reason"], r["payload"], r["source"], r["status"])

    def _add_dead_letters(self, letters: list[DeadLetter]) -> None:
        rows = [
            {
                "id": d.id,
                "received_at": d.received_at.isoformat(),
                "source": d.source,
                "reason": d.reason,
                "payload": d.payload,
                "status": d.status,
            }
            for d in letters
        ]

        def work(tx: ManagedTransaction) -> None:
            self._unwind(
                tx,
                "UNWIND $rows AS row MERGE (d:DeadLetter {id: row.id}) ON CREATE SET d.received_at = row.received_at, "
                "d.source = row.source, d.reason = row.reason, d.payload = row.payload, d.status = row.status",
                rows,
            )

        with self._session() as s:
            s.execute_write(work)

    def _dead_letters(self, status: str | None, limit: int | None) -> list[DeadLetter]:
        where = "WHERE d.status = $status" if status else ""
        cap = "" if limit is None else "LIMIT $limit"
        rows = self._read(
            f"MATCH (d:DeadLetter) {where} RETURN {self._LETTER_FIELDS} ORDER BY received_at, id {cap}",
            status=status,
            limit=limit,
        )
        return [self._letter(r) for r in rows]

    def _get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        rows = self._read(f"MATCH (d:DeadLetter {{id: $id}}) RETURN {self._LETTER_FIELDS}", id=letter_id)
        return self._letter(rows[0]) if rows else None

    def _mark_replayed(self, letter_id: str) -> None:
        with self._session() as s:
            s.run("MATCH (d:DeadLetter {id: $id}) SET d.status = 'replayed'", id=letter_id).consume()

    def _flagged(self) -> list[tuple[Identifier, str]]:
        rows = self._read(
            "MATCH (i:Identifier) WHERE i.flagged = true "
            "RETURN i.kind AS kind, i.value AS value, i.flag_reason AS reason ORDER BY i.uid"
        )
        return [(Identifier(r["kind"], r["value"]), r["reason"] or "") for r in rows]

    def _stats(self) -> StoreStats:
        def count(query: str) -> int:
            return int(self._read(query)[0]["n"])

        return StoreStats(
            records=count("MATCH (r:Record) RETURN count(r) AS n"),
            customers=count("MATCH (c:Customer) WHERE c.status = 'active' RETURN count(c) AS n"),
            merged_customers=count("MATCH (c:Customer) WHERE c.status = 'merged' RETURN count(c) AS n"),
            identifiers=count("MATCH (i:Identifier) RETURN count(i) AS n"),
            flagged_identifiers=count("MATCH (i:Identifier) WHERE i.flagged = true RETURN count(i) AS n"),
        )

    def _ping(self) -> None:
        self._read("RETURN 1 AS ok")

    # -- writes ----------------------------------------------------------------------------------------

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
                raise StoreUnavailableError(f"neo4j store: cannot take the write lock: {exc}") from exc
            except neo4j_errors.Neo4jError as exc:
                raise StoreError(f"neo4j store: cannot take the write lock: {exc}") from exc
            try:
                yield
            except BaseException:
                tx.rollback()
                raise
            tx.commit()

    def _reset(self) -> None:
        with self._session() as s:
            for label in ("Record", "Identifier", "Customer", "Block", "Review", "Event", "DeadLetter"):
                s.run(f"MATCH (n:{label}) DETACH DELETE n").consume()

    def _apply(self, changes: ChangeSet) -> None:
        with self._session() as s:
            s.execute_write(self._write, changes)

    @staticmethod
    def _unwind(tx: ManagedTransaction, query: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        for i in range(0, len(rows), _BATCH):
            tx.run(query, rows=rows[i : i + _BATCH]).consume()

    def _write(self, tx: ManagedTransaction, changes: ChangeSet) -> None:
        run = self._unwind
        run(
            tx,
            "UNWIND $rows AS row MERGE (i:Identifier {uid: row.uid}) SET i.kind = row.kind, i.value = row.value, "
            "i.joined = row.joined, i.flagged = row.flagged, i.flag_reason = row.reason",
            [
                {
                    "uid": st.identifier.uid,
                    "kind": st.identifier.kind,
                    "value": st.identifier.value,
                    "joined": st.joined,
                    "flagged": st.flagged,
                    "reason": st.flag_reason,
                }
                for st in changes.identifiers
            ],
        )
        run(
            tx,
            "UNWIND $rows AS row CREATE (c:Customer {id: row.id, created_at: row.created_at, status: row.status, "
            "merged_into: row.merged_into, golden: row.golden})",
            [
                {
                    "id": c.id,
                    "created_at": c.created_at.isoformat(),
                    "status": c.status,
                    "merged_into": c.merged_into,
                    "golden": golden_to_json(c.golden),
                }
                for c in changes.new_customers
            ],
        )
        final = changes.final_targets()
        base = time.time_ns()  # orders merge and split events across change sets, like SQLite's rowid
        if final:
            moves = [{"merged": m, "final": t} for m, t in final.items()]
            run(
                tx,
                "UNWIND $rows AS row MATCH (:Customer {id: row.merged})<-[b:BELONGS_TO]-(r:Record) "
                "MATCH (s:Customer {id: row.final}) CREATE (r)-[nb:BELONGS_TO]->(s) SET nb.evidence = b.evidence "
                "DELETE b",
                moves,
            )
            run(
                tx,
                "UNWIND $rows AS row MATCH (c:Customer {merged_into: row.merged}) SET c.merged_into = row.final",
                moves,
            )
            run(
                tx,
                "UNWIND $rows AS row MATCH (m:Customer {id: row.merged}) "
                "SET m.status = 'merged', m.merged_into = row.final, m.golden = '{}'",
                moves,
            )
            run(
                tx,
                "UNWIND $rows AS row MATCH (m:Customer {id: row.merged}) MATCH (s:Customer {id: row.survivor}) "
                "CREATE (m)-[:MERGED_INTO {at: row.at, evidence: row.evidence, records: row.records, "
                "seq: row.seq}]->(s)",
                [
                    {
                        "merged": m.merged,
                        "survivor": m.survivor,
                        "at": m.at.isoformat(),
                        "evidence": dumps(m.evidence.to_json()),
                        "records": dumps(list(m.records)),
                        "seq": base + i,
                    }
                    for i, m in enumerate(changes.merges)
                ],
            )
        if changes.records:
            uids = [{"uid": w.record.uid} for w in changes.records if w.update]
            run(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.uid})-[b:BELONGS_TO]->() DELETE b", uids)
            run(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.uid})-[h:HAS_IDENTIFIER]->() DELETE h", uids)
            run(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.uid})-[e:IN_BLOCK]->() DELETE e", uids)
            run(
                tx,
                "UNWIND $rows AS row MERGE (r:Record {uid: row.uid}) SET r.source = row.source, r.key = row.key, "
                "r.data = row.data, r.hash = row.hash, r.first_lc = row.first_lc, r.last_lc = row.last_lc, "
                "r.view = row.view "
                "WITH r, row MATCH (c:Customer {id: row.cid}) CREATE (r)-[:BELONGS_TO {evidence: row.evidence}]->(c)",
                [
                    {
                        "uid": w.record.uid,
                        "source": w.record.source,
                        "key": w.record.key,
                        "data": w.document_json(),
                        "hash": w.content_hash,
                        "first_lc": w.record.first_name.casefold() if w.record.first_name else None,
                        "last_lc": w.record.last_name.casefold() if w.record.last_name else None,
                        "cid": w.customer_id,
                        "evidence": dumps(w.evidence.to_json()),
                        "view": w.match_view,
                    }
                    for w in changes.records
                ],
            )
            run(
                tx,
                "UNWIND $rows AS row MATCH (r:Record {uid: row.r}) MATCH (i:Identifier {uid: row.i}) "
                "CREATE (r)-[:HAS_IDENTIFIER]->(i)",
                [{"r": w.record.uid, "i": i.uid} for w in changes.records for i in w.identifiers],
            )
            self._write_blocks(tx, [{"r": w.record.uid, "k": k} for w in changes.records for k in w.blocking_keys])
        moves = [
            {"r": m.record_uid, "cid": m.customer_id, "evidence": dumps(m.evidence.to_json())} for m in changes.moves
        ]
        run(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.r})-[b:BELONGS_TO]->() DELETE b", moves)
        run(
            tx,
            "UNWIND $rows AS row MATCH (r:Record {uid: row.r}) MATCH (c:Customer {id: row.cid}) "
            "CREATE (r)-[:BELONGS_TO {evidence: row.evidence}]->(c)",
            moves,
        )
        run(
            tx,
            "UNWIND $rows AS row MATCH (n:Customer {id: row.new}) MATCH (s:Customer {id: row.source}) "
            "CREATE (n)-[:SPLIT_FROM {at: row.at, evidence: row.evidence, records: row.records, seq: row.seq}]->(s)",
            [
                {
                    "new": e.new,
                    "source": e.source,
                    "at": e.at.isoformat(),
                    "evidence": dumps(e.evidence.to_json()),
                    "records": dumps(list(e.records)),
                    "seq": base + len(changes.merges) + i,
                }
                for i, e in enumerate(changes.splits)
            ],
        )
        run(
            tx,
            "UNWIND $rows AS row MATCH (a:Record {uid: row.a}) MATCH (b:Record {uid: row.b}) "
            "MERGE (a)-[e:APART]->(b) SET e.reason = row.reason",
            [dict(zip(("a", "b"), sorted((p.a, p.b)), strict=True), reason=p.reason) for p in changes.apart],
        )
        run(
            tx,
            "UNWIND $rows AS row CREATE (v:Review {id: row.id, record_uid: row.record_uid, "
            "candidate_uid: row.candidate_uid, customer_id: row.customer_id, match_weight: row.match_weight, "
            "match_probability: row.match_probability, created_at: row.created_at, status: row.status})",
            [
                {
                    "id": r.id,
                    "record_uid": r.record_uid,
                    "candidate_uid": r.candidate_uid,
                    "customer_id": r.customer_id,
                    "match_weight": r.match_weight,
                    "match_probability": r.match_probability,
                    "created_at": r.created_at.isoformat(),
                    "status": r.status,
                }
                for r in changes.reviews
            ],
        )
        run(
            tx,
            "UNWIND $rows AS row MATCH (c:Customer {id: row.id}) SET c.golden = row.golden",
            [{"id": cid, "golden": golden_to_json(g)} for cid, g in changes.goldens.items()],
        )
        # Idempotent by event id: an event applied before changes nothing.
        run(
            tx,
            "UNWIND $rows AS row MERGE (e:Event {id: row.id}) ON CREATE SET e.type = row.type, e.at = row.at, "
            "e.data = row.data, e.record_uid = row.record_uid",
            [
                {
                    "id": e.id,
                    "type": e.type,
                    "at": event_time(e.occurred_at),
                    "data": e.data,
                    "record_uid": e.record_uid,
                }
                for e in changes.events
            ],
        )
