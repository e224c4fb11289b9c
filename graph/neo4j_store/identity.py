"""The neo4j backend's identity domain.

Graph model::

    (:Record {uid, source, key, data, hash, first_lc, last_lc, view})
        -[:BELONGS_TO {evidence}]-> (:Customer {id, created_at, status, merged_into, golden})
    (:Record)-[:HAS_IDENTIFIER]->(:Identifier {uid, kind, value, joined, flagged, flag_reason})
    (:Customer)-[:MERGED_INTO {at, evidence, records, seq}]->(:Customer)
    (:Customer)-[:SPLIT_FROM {at, evidence, records, seq}]->(:Customer)
    (:Record)-[:APART {reason}]->(:Record)
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from neo4j import ManagedTransaction

from ..codecs import (
    CUSTOMER_COLUMNS,
    IDENTIFIER_COLUMNS,
    MERGE_COLUMNS,
    RECORD_COLUMNS,
    SPLIT_COLUMNS,
    as_dicts,
    assemble_profiles,
    customer_from_row,
    customer_rows,
    dumps,
    golden_to_json,
    history_event,
    identifier_rows,
    identifier_state,
    loads,
    merge_rows,
    record_rows,
    split_rows,
)
from ..models import (
    ApartPair,
    ChangeSet,
    Customer,
    Evidence,
    HistoryEvent,
    Identifier,
    IdentifierState,
    Profile,
    SourceRecord,
)
from ..ports.identity import ChangedCustomer, changed_customers
from ..reads import ExistingRecord, Lookup, StoreStats
from .connection import Neo4jBase, unwind

Read = Callable[..., list[dict[str, Any]]]

_CUSTOMER_FIELDS = (
    "c.id AS id, c.created_at AS created_at, c.status AS status, c.merged_into AS merged_into, c.golden AS golden"
)
_APART_FIELDS = "ra.uid AS a, ca.id AS ca, rb.uid AS b, cb.id AS cb, e.reason AS reason"


def next_seq(tx: ManagedTransaction, name: str) -> int:
    """Take the next number of change sequence ``name`` (a ``Sequence`` node) inside the write transaction."""
    row = tx.run("MERGE (s:Sequence {name: $name}) SET s.n = coalesce(s.n, 0) + 1 RETURN s.n AS n", name=name).single()
    return int(row["n"]) if row else 1


def _customer(row: dict[str, Any]) -> Customer:
    return customer_from_row(row["id"], row["created_at"], row["status"], row["merged_into"], row["golden"])


def _state(row: dict[str, Any]) -> IdentifierState:
    return identifier_state(row["kind"], row["value"], row["joined"], row["flagged"], row["reason"])


def _load_histories(customer_ids: list[str], read: Read) -> dict[str, list[HistoryEvent]]:
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
                # Keyed, so that a self-loop, found from both sides, counts once.
                found[r["cid"]][(r["at"], kind, r["seq"])] = history_event(
                    kind, r["y"], r["x"], r["records"], r["at"], r["evidence"]
                )
    return {cid: [events[k] for k in sorted(events)] for cid, events in found.items()}


class Neo4jIdentity(Neo4jBase):
    """The identity graph's nodes and relationships."""

    @classmethod
    def _schema(cls) -> list[str]:
        return [
            *super()._schema(),
            "CREATE CONSTRAINT c360_record_uid IF NOT EXISTS FOR (r:Record) REQUIRE r.uid IS UNIQUE",
            "CREATE CONSTRAINT c360_customer_id IF NOT EXISTS FOR (c:Customer) REQUIRE c.id IS UNIQUE",
            "CREATE CONSTRAINT c360_identifier_uid IF NOT EXISTS FOR (i:Identifier) REQUIRE i.uid IS UNIQUE",
            "CREATE INDEX c360_customer_merged_into IF NOT EXISTS FOR (c:Customer) ON (c.merged_into)",
            "CREATE INDEX c360_record_last IF NOT EXISTS FOR (r:Record) ON (r.last_lc)",
            "CREATE INDEX c360_record_first IF NOT EXISTS FOR (r:Record) ON (r.first_lc)",
            "CREATE INDEX c360_identifier_flagged IF NOT EXISTS FOR (i:Identifier) ON (i.flagged)",
            "CREATE CONSTRAINT c360_sequence_name IF NOT EXISTS FOR (s:Sequence) REQUIRE s.name IS UNIQUE",
            "CREATE INDEX c360_customer_seq IF NOT EXISTS FOR (c:Customer) ON (c.seq)",
            # the change feed: customers stored before it read as sequence 0
            "MATCH (c:Customer) WHERE c.seq IS NULL SET c.seq = 0",
        ]

    def _labels(self) -> list[str]:
        return [*super()._labels(), "Record", "Identifier", "Customer"]

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
                    states[row["uid"]] = _state(row.data())
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

    def _get_customers(self, customer_ids: list[str]) -> dict[str, Customer]:
        rows = self._read(
            f"UNWIND $ids AS cid MATCH (c:Customer {{id: cid}}) RETURN {_CUSTOMER_FIELDS}", ids=customer_ids
        )
        return {row["id"]: _customer(row) for row in rows}

    def _get_profiles(self, targets: Mapping[str, str]) -> dict[str, Profile]:
        # One read transaction (a consistent view) of eight statements, whatever the number of ids.
        with self._session() as s:
            return s.execute_read(self._load_profiles, dict(targets))

    @staticmethod
    def _load_profiles(tx: ManagedTransaction, targets: dict[str, str]) -> dict[str, Profile]:
        def read(query: str, **params: Any) -> list[dict[str, Any]]:
            return [r.data() for r in tx.run(query, **params)]

        actives = sorted(set(targets.values()))
        customers = {
            row["id"]: _customer(row)
            for row in read(f"UNWIND $ids AS cid MATCH (c:Customer {{id: cid}}) RETURN {_CUSTOMER_FIELDS}", ids=actives)
        }
        identifiers: dict[str, list[tuple[str, IdentifierState]]] = defaultdict(list)
        for row in read(
            "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[:BELONGS_TO]-(r:Record)"
            "-[:HAS_IDENTIFIER]->(i:Identifier) "
            "RETURN cid, r.uid AS ruid, i.kind AS kind, i.value AS value, i.joined AS joined, "
            "i.flagged AS flagged, i.flag_reason AS reason",
            ids=actives,
        ):
            identifiers[row["cid"]].append((row["ruid"], _state(row)))
        records: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for row in read(
            "UNWIND $ids AS cid MATCH (:Customer {id: cid})<-[b:BELONGS_TO]-(r:Record) "
            "RETURN cid, r.uid AS uid, r.data AS data, b.evidence AS evidence ORDER BY cid, uid",
            ids=actives,
        ):
            records[row["cid"]].append((row["uid"], row["data"], row["evidence"]))
        merged: dict[str, list[str]] = defaultdict(list)
        for row in read(
            "UNWIND $ids AS cid MATCH (c:Customer {merged_into: cid}) RETURN cid, c.id AS mid ORDER BY cid, mid",
            ids=actives,
        ):
            merged[row["cid"]].append(row["mid"])
        histories = _load_histories(actives, read)
        return assemble_profiles(targets, customers, identifiers, records, merged, histories)

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

    def _apart(self, record_uids: list[str] | None, customer_ids: list[str] | None) -> list[ApartPair]:
        sides = "MATCH (ra)-[:BELONGS_TO]->(ca:Customer) MATCH (rb)-[:BELONGS_TO]->(cb:Customer)"
        if record_uids is None:
            rows = self._read(f"MATCH (ra:Record)-[e:APART]->(rb:Record) {sides} RETURN {_APART_FIELDS}")
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
                    f"UNWIND $uids AS u MATCH {pattern} {sides} RETURN {_APART_FIELDS}", uids=sorted(uids)
                )
        found = {(r["a"], r["b"], r["reason"], r["ca"], r["cb"]) for r in rows}
        return [ApartPair(*row) for row in sorted(found)]

    def _iter_records(self) -> Iterator[tuple[SourceRecord, str]]:
        rows = self._read(
            "MATCH (r:Record)-[:BELONGS_TO]->(c:Customer) RETURN r.uid AS uid, r.data AS data, c.id AS cid ORDER BY uid"
        )
        for row in rows:
            yield SourceRecord.from_json(loads(row["data"])), row["cid"]

    def _histories(self, customer_ids: list[str]) -> dict[str, list[HistoryEvent]]:
        return _load_histories(customer_ids, self._read)

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

    # -- writes ----------------------------------------------------------------------------------------

    def _write(self, tx: ManagedTransaction, changes: ChangeSet) -> None:
        unwind(
            tx,
            "UNWIND $rows AS row MERGE (i:Identifier {uid: row.uid}) SET i.kind = row.kind, i.value = row.value, "
            "i.joined = row.joined, i.flagged = row.flagged, i.flag_reason = row.reason",
            as_dicts(IDENTIFIER_COLUMNS, identifier_rows(changes)),
        )
        unwind(
            tx,
            "UNWIND $rows AS row CREATE (c:Customer {id: row.id, created_at: row.created_at, status: row.status, "
            "merged_into: row.merged_into, golden: row.golden})",
            as_dicts(CUSTOMER_COLUMNS, customer_rows(changes)),
        )
        merges = as_dicts(MERGE_COLUMNS, merge_rows(changes))
        base = time.time_ns()  # orders merge and split events across change sets, like SQLite's rowid
        moves = [{"merged": m, "final": t} for m, t in changes.final_targets().items()]
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (:Customer {id: row.merged})<-[b:BELONGS_TO]-(r:Record) "
            "MATCH (s:Customer {id: row.final}) CREATE (r)-[nb:BELONGS_TO]->(s) SET nb.evidence = b.evidence "
            "DELETE b",
            moves,
        )
        unwind(
            tx, "UNWIND $rows AS row MATCH (c:Customer {merged_into: row.merged}) SET c.merged_into = row.final", moves
        )
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (m:Customer {id: row.merged}) "
            "SET m.status = 'merged', m.merged_into = row.final, m.golden = '{}'",
            moves,
        )
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (m:Customer {id: row.merged}) MATCH (s:Customer {id: row.survivor}) "
            "CREATE (m)-[:MERGED_INTO {at: row.at, evidence: row.evidence, records: row.records, seq: row.seq}]->(s)",
            [{**row, "seq": base + i} for i, row in enumerate(merges)] if moves else [],
        )
        uids = [{"uid": w.record.uid} for w in changes.records if w.update]
        updates = {w.record.uid: w.customer_id for w in changes.records if w.update}
        relinked = (
            [  # updated records that change customer (after the merges above)
                r["uid"]
                for r in tx.run(
                    "UNWIND $uids AS uid MATCH (:Record {uid: uid})-[:BELONGS_TO]->(c:Customer) "
                    "RETURN uid, c.id AS cid",
                    uids=list(updates),
                )
                if updates[r["uid"]] != r["cid"]
            ]
            if updates
            else []
        )
        unwind(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.uid})-[b:BELONGS_TO]->() DELETE b", uids)
        unwind(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.uid})-[h:HAS_IDENTIFIER]->() DELETE h", uids)
        unwind(
            tx,
            "UNWIND $rows AS row MERGE (r:Record {uid: row.uid}) SET r.source = row.source, r.key = row.key, "
            "r.data = row.data, r.hash = row.hash, r.first_lc = row.first_lc, r.last_lc = row.last_lc, "
            "r.view = row.view "
            "WITH r, row MATCH (c:Customer {id: row.cid}) CREATE (r)-[:BELONGS_TO {evidence: row.evidence}]->(c)",
            as_dicts(RECORD_COLUMNS, record_rows(changes)),
        )
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (r:Record {uid: row.r}) MATCH (i:Identifier {uid: row.i}) "
            "CREATE (r)-[:HAS_IDENTIFIER]->(i)",
            [{"r": w.record.uid, "i": i.uid} for w in changes.records for i in w.identifiers],
        )
        moved = [
            {"r": m.record_uid, "cid": m.customer_id, "evidence": dumps(m.evidence.to_json())} for m in changes.moves
        ]
        unwind(tx, "UNWIND $rows AS row MATCH (:Record {uid: row.r})-[b:BELONGS_TO]->() DELETE b", moved)
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (r:Record {uid: row.r}) MATCH (c:Customer {id: row.cid}) "
            "CREATE (r)-[:BELONGS_TO {evidence: row.evidence}]->(c)",
            moved,
        )
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (n:Customer {id: row.new}) MATCH (s:Customer {id: row.source}) "
            "CREATE (n)-[:SPLIT_FROM {at: row.at, evidence: row.evidence, records: row.records, seq: row.seq}]->(s)",
            [
                {**row, "seq": base + len(merges) + i}
                for i, row in enumerate(as_dicts(SPLIT_COLUMNS, split_rows(changes)))
            ],
        )
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (a:Record {uid: row.a}) MATCH (b:Record {uid: row.b}) "
            "MERGE (a)-[e:APART]->(b) SET e.reason = row.reason",
            [dict(zip(("a", "b"), sorted((p.a, p.b)), strict=True), reason=p.reason) for p in changes.apart],
        )
        unwind(
            tx,
            "UNWIND $rows AS row MATCH (c:Customer {id: row.id}) SET c.golden = row.golden",
            [{"id": cid, "golden": golden_to_json(g)} for cid, g in changes.goldens.items()],
        )
        if relinked:
            self._records_relinked(tx, sorted(relinked))
        if touched := changed_customers(changes):
            seq = next_seq(tx, "customer_seq")
            at = datetime.now(UTC).isoformat()
            unwind(
                tx,
                "UNWIND $rows AS row MATCH (c:Customer {id: row.id}) SET c.seq = row.seq, c.changed_at = row.at",
                [{"id": cid, "seq": seq, "at": at} for cid in touched],
            )
        super()._write(tx, changes)

    def _customer_changes(self, after: tuple[int, str], limit: int) -> list[ChangedCustomer]:
        rows = self._read(
            "MATCH (c:Customer) WHERE c.seq >= $seq AND (c.seq > $seq OR c.id > $id) "
            f"RETURN c.seq AS seq, c.changed_at AS changed_at, {_CUSTOMER_FIELDS} "
            "ORDER BY seq, id LIMIT $limit",
            seq=after[0],
            id=after[1],
            limit=limit,
        )
        return [
            ChangedCustomer(
                r["seq"], datetime.fromisoformat(r["changed_at"]) if r["changed_at"] else None, _customer(r)
            )
            for r in rows
        ]
