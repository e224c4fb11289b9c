"""Batch resolution: Splink predict and clustering over every stored record, applied as one change.

Edges are the deterministic links (records sharing a strong identifier that is neither junk nor
flagged) and Splink's predictions at or above their threshold, joined strongest first (:func:`link`:
no cluster gets two records of a one-record-per-person source from the model); a cluster that would
join two records kept apart (a rejected review, a split) is clustered again with the constraint,
strongest edges first. The clusters are mapped onto the customers so that IDs stay stable: each
customer goes to the cluster holding most of its records; a cluster keeps the oldest customer sent to
it and the others are merged into it; a cluster no customer was sent to is split off into a new
customer. Pairs below their threshold in different clusters become review items.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from c360.graph.errors import ConflictError
from c360.graph.models import (
    ApartPair,
    ChangeSet,
    Customer,
    Evidence,
    MergeEvent,
    RecordMove,
    ReviewItem,
    SourceRecord,
    SplitEvent,
    record_uid,
    source_of,
)
from c360.graph.store import GraphStore

from .config import LinkingConfig, RealtimeConfig, SurvivorshipConfig, link_threshold
from .features import features
from .normalize import identifiers_of, is_junk
from .scorer import APPROVED_NOTE, Scorer
from .splink_adapter import predict
from .survivorship import golden_record

#: Bearers of one identifier up to which every pair is an edge; above it, a star (enough to connect).
_CLIQUE = 30
_DETERMINISTIC = float("inf")


@dataclass(slots=True)
class BatchSummary:
    """What a batch run found and changed."""

    records: int = 0
    customers_before: int = 0
    customers_after: int = 0
    pairs_scored: int = 0
    links: int = 0
    merges: int = 0
    splits: int = 0
    moved_records: int = 0
    review_items: int = 0
    #: clusters clustered again because they joined records a steward's decision keeps apart
    reclustered: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    applied: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "records": self.records,
            "customers_before": self.customers_before,
            "customers_after": self.customers_after,
            "pairs_scored": self.pairs_scored,
            "links": self.links,
            "merges": self.merges,
            "splits": self.splits,
            "moved_records": self.moved_records,
            "review_items": self.review_items,
            "reclustered": self.reclustered,
            "seconds": self.seconds,
            "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class Edge:
    """Why two records are one person: shared identifiers (weight infinite) or the model's weight."""

    a: str
    b: str
    weight: float
    probability: float
    identifiers: tuple[str, ...] = ()
    #: What stewards said of every pair with this edge's pattern (:class:`Verdicts`), if they agreed.
    verdict: bool | None = None

    def evidence(self, record: str, note: str) -> Evidence:
        """The evidence of a link or a merge made by this edge."""
        if self.identifiers:
            return Evidence("deterministic", self.identifiers, record=record, note=note)
        detail = f"match weight {self.weight:+.2f}, probability {self.probability:.6f}"
        if self.verdict:
            detail += f"; {APPROVED_NOTE}"
        return Evidence("probabilistic", (), record=record, note=f"{note}; {detail}")


def deterministic_edges(records: Iterable[SourceRecord], linking: LinkingConfig, flagged: set[str]) -> list[Edge]:
    """Edges between records sharing a strong identifier that is neither junk nor flagged."""
    blocked = linking.blocked_uids()
    strong = set(linking.strong_kinds)
    bearers: dict[str, list[str]] = defaultdict(list)
    for r in records:
        for i in identifiers_of(r, linking.default_region):
            if i.kind in strong and i.uid not in flagged and not is_junk(i, blocked):
                bearers[i.uid].append(r.uid)
    shared: dict[tuple[str, str], list[str]] = defaultdict(list)
    for iuid, uids in bearers.items():
        uids.sort()
        if len(uids) <= _CLIQUE:
            pairs = [(a, b) for n, a in enumerate(uids) for b in uids[n + 1 :]]
        else:
            pairs = [(uids[0], b) for b in uids[1:]]
        for pair in pairs:
            shared[pair].append(iuid)
    return [Edge(a, b, _DETERMINISTIC, 1.0, tuple(sorted(ids))) for (a, b), ids in shared.items()]


def link(
    uids: list[str], deterministic: list[Edge], scored: list[Edge], linking: LinkingConfig, realtime: RealtimeConfig
) -> tuple[dict[str, str], list[Edge], list[Edge]]:
    """Cluster ``uids``: the deterministic edges, then the model's edges strongest first.

    A model edge links from its pair's threshold (:func:`link_threshold`). No edge joins two clusters
    that hold records of one one-record-per-person source (:mod:`c360.resolution.holdings`); ingest
    applies the same rules record by record. Returns the clusters (uid -> cluster key), the edges
    inside them and the model's pairs below their threshold (review candidates); an edge the
    constraint refused is neither.
    """
    parent: dict[str, str] = {}
    held: dict[str, set[str]] = {}  # cluster root -> its one-record-per-person sources
    single = set(linking.one_record_per_person)

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = x = parent.get(parent[x], parent[x])
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            held[rb] = held.pop(ra, set()) | held.get(rb, set())

    for uid in uids:
        if (source := source_of(uid)) in single:
            held[uid] = {source}
    edges: list[Edge] = []
    near: list[Edge] = []
    ranked = sorted(scored, key=lambda e: (-e.probability, -e.weight, e.a, e.b))
    for e in [*deterministic, *ranked]:
        if (source := source_of(e.a)) in single and source == source_of(e.b):
            continue  # two records of one such source are never one person: not even a question
        if e.verdict is False:  # stewards rejected every pair of this pattern
            continue
        if (
            not e.identifiers
            and not e.verdict
            and e.probability < link_threshold(linking, realtime, source_of(e.a), source_of(e.b))
        ):
            near.append(e)
            continue
        ra, rb = find(e.a), find(e.b)
        if ra != rb and held.get(ra, set()) & held.get(rb, set()):
            continue
        union(ra, rb)
        edges.append(e)
    return {uid: find(uid) for uid in uids}, edges, near


def enforce_constraints(clusters: dict[str, str], edges: list[Edge], apart: Iterable[ApartPair]) -> int:
    """Re-cluster, in place, every cluster that joins two records kept apart by a decision; return how many.

    Within such a cluster edges are added strongest first (shared identifiers, then by weight), and an edge
    is skipped when it would join two groups a decision keeps apart. Nothing else vetoes an edge: what the
    records disagree on is evidence the model has weighed already.
    """
    apart = list(apart)
    forbidden: dict[str, set[str]] = defaultdict(set)
    for p in apart:
        forbidden[p.a].add(p.b)
        forbidden[p.b].add(p.a)
    broken = {clusters[p.a] for p in apart if p.a in clusters and p.b in clusters and clusters[p.a] == clusters[p.b]}
    if not broken:
        return 0
    by_cluster: dict[str, list[str]] = defaultdict(list)
    for uid, key in clusters.items():
        if key in broken:
            by_cluster[key].append(uid)
    parent: dict[str, str] = {}
    members = {uid: {uid} for uids in by_cluster.values() for uid in uids}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for e in sorted(edges, key=lambda e: (-e.weight, e.a, e.b)):
        if e.a not in members or e.b not in members:
            continue
        ra, rb = find(e.a), find(e.b)
        if ra == rb:
            continue
        big, small = (ra, rb) if len(members[ra]) >= len(members[rb]) else (rb, ra)
        if any(forbidden[u] & members[big] for u in members[small]):
            continue
        parent[small] = big
        members[big] |= members.pop(small)
    for uids in by_cluster.values():
        for uid in uids:
            clusters[uid] = "split:" + find(uid)
    return len(broken)


class BatchResolver:
    """Resolves every stored record in one run and applies the result in one transaction."""

    def __init__(
        self,
        store: GraphStore,
        settings: Mapping[str, Any],
        *,
        linking: LinkingConfig,
        realtime: RealtimeConfig,
        survivorship: SurvivorshipConfig,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        new_review_id: Callable[[], str],
        scorer: Scorer | None = None,
        log_level: int = logging.ERROR,
    ) -> None:
        self.store = store
        self.settings = settings
        self.scorer = scorer  # the model's scorer, for the patterns stewards decided (its Verdicts)
        self.linking = linking
        self.realtime = realtime
        self.survivorship = survivorship
        self.clock = clock
        self.new_id = new_id
        self.new_review_id = new_review_id
        self.log_level = log_level

    def run(self, *, dry_run: bool = False, progress: Callable[[str], None] = lambda _: None) -> BatchSummary:
        """Predict, cluster, map onto customers and (unless ``dry_run``) apply; return the summary.

        The graph is read without the write lock; under it, the run checks that no record changed
        customer meanwhile (else :class:`ConflictError`, nothing written) and applies one change set.
        """
        splink_log = logging.getLogger("splink")
        level = splink_log.level
        splink_log.setLevel(self.log_level)
        try:
            return self._run(dry_run, progress)
        finally:
            splink_log.setLevel(level)

    def _run(self, dry_run: bool, progress: Callable[[str], None]) -> BatchSummary:
        summary = BatchSummary()
        started = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal started
            now = time.perf_counter()
            summary.seconds[name] = round(now - started, 2)
            started = now

        progress("reading the graph")
        stored = list(self.store.iter_records())
        records = [r for r, _ in stored]
        current = {r.uid: cid for r, cid in stored}
        summary.records = len(records)
        summary.customers_before = len(set(current.values()))
        flagged = {i.uid for i, _ in self.store.flagged_identifiers()}
        apart = self.store.apart(customer_ids=None)
        lap("read")

        progress(f"scoring candidate pairs of {len(records):,} records (Splink predict)")
        scored = predict(records, self.settings, self.linking.default_region, self.realtime.lower, self.log_level)
        summary.pairs_scored = scored.num_rows
        lap("predict")

        progress("clustering")
        model = [Edge(a, b, w, p) for a, b, w, p in zip(*(scored.column(i).to_pylist() for i in range(4)), strict=True)]
        model = self._with_verdicts(model, records)
        identified = deterministic_edges(records, self.linking, flagged)
        clusters, edges, near = link(list(current), identified, model, self.linking, self.realtime)
        summary.reclustered = enforce_constraints(clusters, edges, apart)
        summary.links = len(edges)
        lap("cluster")

        changes = self._plan(records, current, clusters, edges, near, apart, summary)
        summary.customers_after = len(set(clusters.values()))
        lap("plan")
        if dry_run or changes.is_empty():
            summary.applied = not changes.is_empty() and not dry_run
            return summary
        progress("applying")
        with self.store.exclusive():
            self._check_unchanged(current, records, apart, changes)
            self.store.apply(changes)
        summary.applied = True
        lap("apply")
        return summary

    def _with_verdicts(self, model: list[Edge], records: list[SourceRecord]) -> list[Edge]:
        """``model`` with what stewards said of each pair's pattern, for the pairs under the upper threshold."""
        if self.scorer is None or not self.scorer.verdicts:
            return model
        verdicts = self.scorer.verdicts
        by_uid = {r.uid: r for r in records}
        views: dict[str, dict[str, Any]] = {}

        def view(uid: str) -> dict[str, Any]:
            if uid not in views:
                views[uid] = features(by_uid[uid], self.linking.default_region)
            return views[uid]

        out = []
        for e in model:
            if e.probability < self.realtime.upper:
                e = replace(e, verdict=verdicts.of(self.scorer.score(view(e.a), view(e.b))))
            out.append(e)
        return out

    def _check_unchanged(
        self, current: dict[str, str], records: list[SourceRecord], apart: list[ApartPair], changes: ChangeSet
    ) -> None:
        """Raise :class:`ConflictError` if links, decisions or the records of touched customers changed."""
        changed = {record_uid(s, k): cid for s, k, cid in self.store.iter_links()} != current
        changed = changed or self.store.apart(customer_ids=None) != apart
        if not changed:
            touched = {*changes.goldens, *(m.merged for m in changes.merges), *(m.source for m in changes.splits)}
            read = {r.uid: r for r in records}
            fresh = self.store.records_of(sorted(touched))
            changed = any(read.get(r.uid) != r for recs in fresh.values() for r in recs)
        if changed:
            raise ConflictError(
                "the graph changed while the batch ran (an ingest or a steward's decision); nothing written, run again"
            )

    def _plan(
        self,
        records: list[SourceRecord],
        current: dict[str, str],
        clusters: dict[str, str],
        edges: list[Edge],
        near: list[Edge],
        apart: list[ApartPair],
        summary: BatchSummary,
    ) -> ChangeSet:
        now = self.clock()
        by_cluster: dict[str, list[str]] = defaultdict(list)
        for uid, key in clusters.items():
            by_cluster[key].append(uid)
        # Each customer goes to the cluster holding most of its records (ties: the cluster of its first record).
        held: dict[str, Counter[str]] = defaultdict(Counter)
        for uid in sorted(current):
            held[current[uid]][clusters[uid]] += 1
        sent: dict[str, list[str]] = defaultdict(list)
        for cid, counts in held.items():
            sent[max(counts, key=lambda k: (counts[k], -list(counts).index(k)))].append(cid)
        final: dict[str, str] = {}  # cluster -> customer id
        changes = ChangeSet()
        merged_into: dict[str, str] = {}
        for key in by_cluster:
            if sent.get(key):
                survivor, *others = sorted(sent[key])
                final[key] = survivor
                for other in others:
                    merged_into[other] = survivor
            else:
                final[key] = self.new_id()
                changes.new_customers.append(Customer(final[key], now))
        # Evidence: the strongest edge of each record inside its cluster, and between customers.
        best_of_record: dict[str, Edge] = {}
        best_between: dict[frozenset[str], Edge] = {}
        for e in edges:
            if clusters[e.a] != clusters[e.b]:
                continue
            for uid in (e.a, e.b):
                if uid not in best_of_record or e.weight > best_of_record[uid].weight:
                    best_of_record[uid] = e
            pair = frozenset((current[e.a], current[e.b]))
            if len(pair) == 2 and (pair not in best_between or e.weight > best_between[pair].weight):
                best_between[pair] = e
        records_of_customer: dict[str, list[str]] = defaultdict(list)
        for uid, cid in current.items():
            records_of_customer[cid].append(uid)
        for merged, survivor in sorted(merged_into.items()):
            edge = best_between.get(frozenset((merged, survivor))) or next(
                (best_of_record[u] for u in records_of_customer[merged] if u in best_of_record), None
            )
            note = "batch resolution"
            evidence = edge.evidence(edge.a, note) if edge else Evidence("batch", note=note)
            brought = tuple(sorted(u for u in records_of_customer[merged] if final[clusters[u]] == survivor))
            changes.merges.append(MergeEvent(survivor, merged, now, evidence, brought))
        # Records whose customer after the merges is not their cluster's move; splits say where from.
        split_records: dict[tuple[str, str], list[str]] = defaultdict(list)
        for uid in sorted(current):
            after_merge = merged_into.get(current[uid], current[uid])
            target = final[clusters[uid]]
            if after_merge == target:
                continue
            edge = best_of_record.get(uid)
            evidence = edge.evidence(uid, "batch resolution") if edge else Evidence("new", note="batch resolution")
            changes.moves.append(RecordMove(uid, target, evidence))
            split_records[(after_merge, target)].append(uid)
        created = {c.id for c in changes.new_customers}
        for (source, target), uids in sorted(split_records.items()):
            where = "a new customer" if target in created else f"customer {target}"
            note = f"batch resolution: these records left {source} for {where}"
            changes.splits.append(SplitEvent(source, target, tuple(uids), now, Evidence("batch", note=note)))
        # Golden records of every cluster whose membership changed.
        by_uid = {r.uid: r for r in records}
        touched = {final[clusters[m.record_uid]] for m in changes.moves} | set(merged_into.values())
        touched |= {merged_into.get(current[m.record_uid], current[m.record_uid]) for m in changes.moves}
        cluster_of = {cid: key for key, cid in final.items()}
        for cid in touched:
            golden = golden_record([by_uid[u] for u in by_cluster[cluster_of[cid]]], self.survivorship)
            changes.goldens[cid] = golden
        changes.new_customers = [
            Customer(c.id, c.created_at, golden=changes.goldens.pop(c.id, {})) for c in changes.new_customers
        ]
        changes.reviews = self._reviews(near, edges, clusters, final, apart, now)
        summary.merges = len(changes.merges)
        summary.splits = len(changes.splits)
        summary.moved_records = len(changes.moves)
        summary.review_items = len(changes.reviews)
        return changes

    def _reviews(
        self,
        near: list[Edge],
        edges: list[Edge],
        clusters: dict[str, str],
        final: dict[str, str],
        apart: list[ApartPair],
        now: datetime,
    ) -> list[ReviewItem]:
        """Review items: pairs below their threshold that end in different customers, one record unlinked.

        Never a pair already asked or decided, and at most one new question per customer.
        """
        # One question per pair of customers: none where one was asked (open or decided) or a decision stands.
        asked = [(p.a, p.b) for p in apart]
        asked += [(i.record_uid, i.candidate_uid) for i in self.store.review_items(None, None)]
        asked_clusters = {frozenset((clusters[a], clusters[b])) for a, b in asked if a in clusters and b in clusters}
        # As at ingest, only a record nothing links asks (two established customers are not asked about).
        linked = {uid for e in edges for uid in (e.a, e.b)}
        best: dict[frozenset[str], Edge] = {}
        for e in near:
            pair = frozenset((clusters[e.a], clusters[e.b]))
            if len(pair) == 1 or pair in asked_clusters or (e.a in linked and e.b in linked):
                continue
            if e.b in linked:  # the record asking comes first: ReviewItem(record = e.b, candidate = e.a)
                e = Edge(e.b, e.a, e.weight, e.probability)
            if pair not in best or e.weight > best[pair].weight:
                best[pair] = e
        # Each customer gets at most one new question in a run, its strongest: the next waits for its answer.
        chosen: list[Edge] = []
        asked_now: set[str] = set()
        for pair, e in sorted(best.items(), key=lambda kv: (-kv[1].weight, kv[1].a, kv[1].b)):
            if not pair & asked_now:
                chosen.append(e)
                asked_now |= pair
        return [
            ReviewItem(self.new_review_id(), e.b, e.a, final[clusters[e.a]], e.weight, e.probability, now)
            for e in sorted(chosen, key=lambda e: (e.a, e.b))
        ]
