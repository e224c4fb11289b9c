"""The linker: every ingested record goes to a customer, in one transaction per batch.

For each record, in order:

1. **Rules.** Records sharing a strong identifier belong to one customer. Junk values (the blocklist,
   degenerate phone numbers and ids) never link; ``joined`` counts the distinct customers an identifier
   has brought together (1 for its first customer, plus every customer it merged into that one). When a
   link would push ``joined`` over the cap of its kind, the identifier is flagged with the reason and
   stops linking from then on; that link is not made.
2. **Model.** When a trained model is in use, the real-time matcher (:mod:`c360.resolution.realtime`,
   our scorer with Splink's weights; Splink itself is never called) also links to every customer whose
   record scores at or above the pair's threshold, as batch resolution does (never two records of a
   one-record-per-person source in one customer). A record nothing links
   opens a review item when its best candidate is between the thresholds, and becomes a new customer.
   **Displacement.** When the best such customer is refused only because it holds a record of the same
   one-record-per-person source, held there by the model alone (no identifier, no steward's approval or
   merge), and the new record's best pair with it weighs more than that holder's best pair with the
   customer's other records, the holder moves out (a record move with ``displaced`` evidence naming the
   new record and both probabilities) and the new record links. Once it is planned, the holder goes to
   the best free customer the model links it to, else to a new customer of its own; nothing cascades
   (:mod:`c360.resolution.displace`).
3. **Idempotency.** Events stored with the batch are applied once: an event the graph has applied
   before is skipped, and so are its records.

One batch is planned in memory against what the store knows (one lookup), then applied as one
:class:`ChangeSet`. Within a batch records are taken in order, so a batch gives the same graph as
feeding its records one by one. Decisions that keep records apart (rejected reviews, splits) hold.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import orjson
from c360.graph.models import (
    ApartPair,
    ChangeSet,
    Customer,
    Evidence,
    Identifier,
    IdentifierState,
    MergeEvent,
    RecordWrite,
    ReviewItem,
    SourceRecord,
    StoredEvent,
)
from c360.graph.reads import ExistingRecord
from c360.graph.store import GraphStore

from .config import LinkingConfig, RealtimeConfig, SurvivorshipConfig
from .displace import Claim, Displaced, Displacer
from .holdings import Holdings
from .normalize import identifiers_of, is_junk
from .realtime import BatchMatcher, Match
from .scorer import Scorer
from .survivorship import golden_record


class CustomerIdFactory:
    """Time-ordered customer IDs: ``C`` + 26 Crockford base32 characters, ULID-like.

    48 bits of milliseconds and 80 random bits: a later ID sorts after an earlier one, also within
    one millisecond of one process.
    """

    # RFC 4648 base32 to Crockford's alphabet, which sorts like the numbers it encodes.
    _CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")

    def __init__(self, prefix: str = "C") -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._prefix = prefix

    def __call__(self) -> str:
        """Return a new ID."""
        with self._lock:
            value = (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)
            value = max(value, self._last + 1)
            self._last = value
        return self._prefix + base64.b32encode(value.to_bytes(16, "big")).decode()[:26].translate(self._CROCKFORD)


def record_document(record: SourceRecord) -> tuple[str, str]:
    """Return the record as stored (JSON text) and its content hash (all but ``observed_at``).

    Equal hashes mean there is nothing to update.
    """
    data = record.to_json()
    observed = data.pop("observed_at")
    digest = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    data["observed_at"] = observed
    return orjson.dumps(data).decode(), digest


@dataclass(slots=True)
class IngestResult:
    """What one ingest did."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    new_customers: int = 0
    merges: int = 0
    #: records linked by the trained model (no identifier decided)
    probabilistic: int = 0
    #: review items opened (uncertain pairs)
    reviews: int = 0
    #: records moved out of a customer by a better claim of their source (each into a new customer)
    displaced: int = 0
    #: events (and their records) skipped because the graph had applied them before
    duplicates: int = 0
    #: ids of the events applied by this ingest
    events: list[str] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        """Add another result's counts to this one."""
        self.received += other.received
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.new_customers += other.new_customers
        self.merges += other.merges
        self.probabilistic += other.probabilistic
        self.reviews += other.reviews
        self.displaced += other.displaced
        self.duplicates += other.duplicates
        self.events.extend(other.events)
        self.flagged.extend(other.flagged)


class _Plan:
    """The in-memory state of one batch being planned."""

    def __init__(self, linker: Linker, records: Sequence[SourceRecord]) -> None:
        self.linker = linker
        self.now = linker.clock()
        region = linker.config.default_region
        self.record_idents = [identifiers_of(r, region) for r in records]
        all_idents = {i.uid for ids in self.record_idents for i in ids}
        lookup = linker.store.lookup({r.uid for r in records}, all_idents)
        self.existing: dict[str, ExistingRecord] = dict(lookup.records)
        self.stored = frozenset(lookup.records)  # records the store already holds
        self.states: dict[str, IdentifierState] = dict(lookup.identifiers)
        # identifier uid -> {record uid: customer id}, kept current as the batch is planned
        self.bearers: dict[str, dict[str, str]] = {k: dict(v) for k, v in lookup.bearers.items()}
        self.parent: dict[str, str] = {}
        self.changes = ChangeSet()
        self.changed_states: dict[str, IdentifierState] = {}
        self.writes: dict[str, RecordWrite] = {}
        self.result = IngestResult(received=len(records))
        self.matcher = linker.matcher(records)
        single = linker.config.one_record_per_person
        self.holdings = Holdings(linker.store, single) if single else None
        self.moves: dict[str, Displaced] = {}  # stored records displaced in this batch
        self.displacer = None
        if self.holdings is not None and self.matcher is not None:
            self.displacer = Displacer(
                linker.store,
                self.matcher,
                self.holdings,
                strong=linker.strong,
                blocked=linker.blocked,
                new_id=linker.new_id,
            )
        # Decisions that keep records apart (rejected reviews, splits), for the records of this batch.
        self.own_apart: dict[str, list[ApartPair]] = {}
        for pair in linker.store.apart(record_uids=[r.uid for r in records]):
            self.own_apart.setdefault(pair.a, []).append(pair)
            self.own_apart.setdefault(pair.b, []).append(pair)

    def find(self, cid: str) -> str:
        root = cid
        while root in self.parent:
            root = self.parent[root]
        while cid != root:  # path compression
            self.parent[cid], cid = root, self.parent[cid]
        return root

    def state(self, ident: Identifier) -> IdentifierState:
        return self.states.get(ident.uid) or IdentifierState(ident)

    def set_state(self, st: IdentifierState) -> None:
        self.states[st.identifier.uid] = st
        self.changed_states[st.identifier.uid] = st

    def linking(self, idents: Sequence[Identifier]) -> list[Identifier]:
        cfg = self.linker
        return [i for i in idents if i.kind in cfg.strong and not is_junk(i, cfg.blocked) and not self.state(i).flagged]

    def add(self, record: SourceRecord, idents: tuple[Identifier, ...]) -> None:
        uid = record.uid
        document, h = record_document(record)
        old = self.existing.get(uid)
        if old is not None and old.content_hash == h:
            self.result.unchanged += 1
            return
        own = self.find(old.customer_id) if old else None
        if old is not None:  # the stored version's identifiers no longer speak for this record
            for iuid in old.identifiers:
                self.bearers.get(iuid, {}).pop(uid, None)
        links = self.linking(idents)
        cands = {i.uid: {self.find(c) for c in self.bearers.get(i.uid, {}).values()} for i in links}
        increments = self._protect(record, links, cands, own)
        links = [i for i in links if i.uid in increments]

        targets: dict[str, list[str]] = {}  # customer -> identifiers that brought it
        if own:
            targets[own] = []
        for i in links:
            for c in cands[i.uid]:
                targets.setdefault(c, []).append(i.uid)
        if targets and (len(targets) > 1 or uid in self.own_apart):
            targets = self._apart(uid, own, targets)
        if self.holdings is not None and targets:  # oldest first, as the merges keep the oldest
            joined = [own] if own in targets else []
            admitted = self.holdings.admit(record.source, joined, sorted(c for c in targets if c != own))
            targets = {c: targets[c] for c in targets if c == own or c in admitted}
        linked_by = tuple(sorted({u for us in targets.values() for u in us}))

        matches: dict[str, Match] = {}
        review: Match | None = None
        displaced: tuple[Claim, str] | None = None
        if self.matcher is not None:
            # The trained model links too (Splink's weights, our scorer), beside the identifiers: the same
            # rule as batch resolution, whose clusters join identifier links and model links alike.
            found, review = self.matcher.matches(record, self.find)
            matches = {m.customer_id: m for m in found if m.customer_id not in targets}
            if self.holdings is not None and matches:  # best first, beside what the identifiers joined
                admitted = self.holdings.admit(record.source, list(targets), list(matches))
                best = next(iter(matches.values()))
                if self.displacer is not None and best.customer_id not in admitted:
                    keeps = lambda c: c in self._apart(uid, own, {**targets, c: []})  # noqa: E731
                    if (claim := self.displacer.claim(self, record, best, list(targets), keeps)) is not None:
                        displaced = (claim, self.displacer.displace(self, claim))
                        admitted = self.holdings.admit(record.source, list(targets), list(matches))
                matches = {c: matches[c] for c in admitted}
            if matches:
                for c in matches:
                    targets[c] = []
                if len(targets) > 1 or uid in self.own_apart:
                    targets = self._apart(uid, own, targets)
                    matches = {c: m for c, m in matches.items() if c in targets}
            if matches:
                self.result.probabilistic += 1

        if not targets:
            cid = self.linker.new_id()
            self.changes.new_customers.append(Customer(cid, self.now))
            self.result.new_customers += 1
            note = None
            if review is not None:  # uncertain: a new customer for now, and a question for a steward
                item = ReviewItem(
                    self.linker.new_review_id(),
                    uid,
                    review.record_uid,
                    review.customer_id,
                    review.score.match_weight,
                    review.score.match_probability,
                    self.now,
                )
                self.changes.reviews.append(item)
                self.result.reviews += 1
                note = f"review {item.id}: probability {review.score.match_probability:.4f} with {review.record_uid}"
            evidence = Evidence("new", tuple(i.uid for i in links), note=note)
        else:
            cid = min(targets)  # IDs are time-ordered: the oldest survives
            for other in sorted(targets):
                if other != cid:
                    # The record's own customer came without an identifier: the merge is by the ones it brings.
                    if other in matches:
                        ev = matches[other].evidence(record=uid)
                    else:
                        ev = Evidence("deterministic", tuple(targets[other]) or linked_by, record=uid)
                    self.changes.merges.append(MergeEvent(cid, other, self.now, ev))
                    self.parent[other] = cid
                    if self.holdings is not None:
                        self.holdings.merged(other, cid)
                    self.result.merges += 1
            stays = old is not None and len(targets) == 1
            if old is not None and stays:
                evidence = old.evidence
            elif cid in matches:
                evidence = matches[cid].evidence()
            elif matches and not linked_by:  # the record's own customer, merged with what the model found
                evidence = max(matches.values(), key=lambda m: m.score.match_weight).evidence()
            else:
                evidence = Evidence("deterministic", linked_by)
        for i in links:
            self.bearers.setdefault(i.uid, {})[uid] = cid
            if increments[i.uid]:
                st = self.state(i)
                self.set_state(IdentifierState(i, st.joined + increments[i.uid]))
        for i in idents:
            if i.uid not in self.states:
                self.set_state(IdentifierState(i))
        self.moves.pop(uid, None)  # a displaced record planned again: the write places it
        keys = self.matcher.keys_of(record) if self.matcher is not None else ()
        view = self.matcher.packed_view(record) if self.matcher is not None else None
        self.writes[uid] = RecordWrite(
            record, h, idents, cid, evidence, document, blocking_keys=keys, match_view=view, update=uid in self.stored
        )
        if self.matcher is not None:
            self.matcher.planned(record, cid)
        if self.holdings is not None:
            self.holdings.planned(record.source, cid)
        if displaced is not None and self.displacer is not None:  # now that the record holds its place
            home = self.displacer.rehome(self, *displaced, lambda r, c: c in self._apart(r, None, {c: []}))
            self.result.displaced += 1
            self.result.new_customers += 0 if home else 1
        self.existing[uid] = ExistingRecord(uid, h, cid, evidence, tuple(i.uid for i in idents))
        if old is None:
            self.result.inserted += 1
        else:
            self.result.updated += 1

    def _apart(self, uid: str, own: str | None, targets: dict[str, list[str]]) -> dict[str, list[str]]:
        """Drop the targets an apart decision forbids joining with the record or with a target kept before it.

        Preference: the record's own customer, then the others in order of age.
        """
        group_of = {c: c for c in targets}
        members = [c for c in self.parent if self.find(c) in group_of]  # merged into a target in this batch
        pairs = self.linker.store.apart(customer_ids=[*targets, *members]) + self.own_apart.get(uid, [])
        if not pairs:
            return targets
        forbidden: set[frozenset[str]] = set()
        for p in pairs:
            sides = [
                "" if r == uid else self.find(self.existing[r].customer_id if r in self.existing else c)
                for r, c in ((p.a, p.customer_a), (p.b, p.customer_b))
            ]
            forbidden.add(frozenset(sides))
        kept = [""]  # "" is the record itself
        for c in sorted(targets, key=lambda c: (c != own, c)):
            # The record's own customer stays, even against a decision taken after they were linked.
            if c == own or all(frozenset((c, k)) not in forbidden for k in kept):
                kept.append(c)
        return {c: targets[c] for c in kept[1:]}

    def _protect(
        self, record: SourceRecord, links: list[Identifier], cands: dict[str, set[str]], own: str | None
    ) -> dict[str, int]:
        """Apply the caps; return the joined-count increment of each identifier that may still link.

        An identifier's increment is the number of customers, other than its own bearers, that this record
        would join to them: the record's own customer and the customers its other identifiers bring.
        """
        active = list(links)
        while True:
            increments: dict[str, int] = {}
            over: Identifier | None = None
            for i in active:
                mine = cands[i.uid]
                others = {own} if own else set()
                for j in active:
                    if j is not i:
                        others |= cands[j.uid]
                inc = len(mine | others) - len(mine) if mine else 0
                if self.state(i).joined + inc > self.linker.caps.get(i.kind, 1 << 30):
                    over = i
                    break
                increments[i.uid] = inc
            if over is None:
                return increments
            st = self.state(over)
            reason = (
                f"would join more than {self.linker.caps[over.kind]} customers (cap for {over.kind}); "
                f"stopped at record {record.uid}"
            )
            self.set_state(IdentifierState(over, st.joined, True, reason))
            self.result.flagged.append((over.uid, reason))
            active.remove(over)

    def finish(self) -> ChangeSet:
        changes = self.changes
        changes.identifiers = list(self.changed_states.values())
        changes.records = list(self.writes.values())
        # Displaced stored records move to their new customer's final survivor, with it.
        changes.moves = [replace(d.move, customer_id=self.find(d.move.customer_id)) for d in self.moves.values()]
        touched = {self.find(w.customer_id) for w in changes.records} | {m.survivor for m in changes.merges}
        touched = {self.find(c) for c in touched} | {m.customer_id for m in changes.moves}
        created = {c.id for c in changes.new_customers}
        stored = self.linker.store.records_of((touched | set(self.parent)) - created)
        by_customer: dict[str, dict[str, SourceRecord]] = {c: {} for c in touched}
        placed = self.writes.keys() | self.moves.keys()  # where the plan put them, not where the store has them
        for cid, recs in stored.items():
            for r in recs:
                if r.uid not in placed:
                    by_customer.setdefault(self.find(cid), {})[r.uid] = r
        for w in changes.records:
            by_customer[self.find(w.customer_id)][w.record.uid] = w.record
        for d in self.moves.values():
            by_customer[self.find(d.move.customer_id)][d.move.record_uid] = d.record
        for cid in touched:
            changes.goldens[cid] = golden_record(by_customer[cid].values(), self.linker.survivorship)
        if changes.merges:  # each merge keeps the records the merged customer brought, earlier merges included
            holds: dict[str, set[str]] = defaultdict(set)
            for cid, recs in stored.items():
                holds[cid].update(r.uid for r in recs if r.uid not in self.moves)
            for w in changes.records:
                holds[w.customer_id].add(w.record.uid)
            for d in self.moves.values():
                holds[d.move.customer_id].add(d.move.record_uid)
            merges = []
            for m in changes.merges:
                brought = holds.pop(m.merged, set())
                holds[m.survivor] |= brought
                merges.append(replace(m, records=tuple(sorted(brought))))
            changes.merges = merges
        # A new customer is written with its golden record at once.
        changes.new_customers = [
            replace(c, golden=changes.goldens.pop(c.id)) if c.id in changes.goldens else c
            for c in changes.new_customers
        ]
        # Records planned before a later merge in this batch go straight to the final survivor.
        changes.records = [
            w if (final := self.find(w.customer_id)) == w.customer_id else replace(w, customer_id=final)
            for w in changes.records
        ]
        return changes


class Linker:
    """Links ingested records to customers: identifier rules, then the trained model; applies events once.

    Keeps every link's evidence and the golden record of every customer it touches.
    """

    def __init__(
        self,
        store: GraphStore,
        config: LinkingConfig | None = None,
        survivorship: SurvivorshipConfig | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] | None = None,
        scorer: Scorer | None = None,
        realtime: RealtimeConfig | None = None,
    ) -> None:
        self.store = store
        self.config = config or LinkingConfig()
        self.survivorship = survivorship or SurvivorshipConfig()
        self.clock = clock
        self.new_id = new_id or CustomerIdFactory()
        self.new_review_id = CustomerIdFactory("R")
        self.strong = frozenset(self.config.strong_kinds)
        self.caps = dict(self.config.caps)
        self.blocked = self.config.blocked_uids()
        self.realtime = realtime or RealtimeConfig()
        self.scorer = scorer if self.realtime.enabled else None

    def matcher(self, records: Sequence[SourceRecord]) -> BatchMatcher | None:
        """The probabilistic matcher of a batch, when a trained model is in use."""
        if self.scorer is None:
            return None
        return BatchMatcher(self.scorer, self.realtime, self.store, self.config, records)

    def ingest_batch(
        self,
        records: Sequence[SourceRecord],
        *,
        events: Sequence[StoredEvent] = (),
        record_events: Sequence[str] | None = None,
    ) -> IngestResult:
        """Link one batch of records and apply the result in one transaction.

        ``events`` are stored in the same transaction, idempotently: an event the graph has applied before
        (or an earlier one of the batch with the same id) is skipped, and so is each record whose event id
        (``record_events``, one per record) was, so a redelivered or replayed batch changes nothing.
        """
        if record_events is not None and len(record_events) != len(records):
            raise ValueError("record_events must name one event per record")
        if not records and not events:
            return IngestResult()
        with self.store.exclusive():
            duplicates = 0
            if events:
                events, records, duplicates = self._unapplied(events, records, record_events)
            plan = _Plan(self, records)
            for record, idents in zip(records, plan.record_idents, strict=True):
                plan.add(record, idents)
            changes = plan.finish()
            changes.events.extend(events)
            self.store.apply(changes)
        plan.result.duplicates = duplicates
        plan.result.events = [e.id for e in events]
        return plan.result

    def _unapplied(
        self, events: Sequence[StoredEvent], records: Sequence[SourceRecord], record_events: Sequence[str] | None
    ) -> tuple[list[StoredEvent], Sequence[SourceRecord], int]:
        """Drop the events the graph applied before (and repeats within the batch), and their records.

        Returns the events to apply, the records to link and how many events were dropped. Called under
        the store's write lock, so no other writer applies an event between the check and the write.
        """
        seen = self.store.seen_events([e.id for e in events])
        kept: list[StoredEvent] = []
        for e in events:
            if e.id not in seen:
                seen.add(e.id)
                kept.append(e)
        if record_events is not None:
            # One record per applied event, the first one carrying its id: a repeat of an id within the batch
            # is a duplicate like a redelivery, whatever its values or its key.
            pending = {e.id for e in kept}
            taken: list[SourceRecord] = []
            for r, eid in zip(records, record_events, strict=True):
                if eid in pending:
                    pending.discard(eid)
                    taken.append(r)
            records = taken
        return kept, records, len(events) - len(kept)

    def ingest(
        self,
        records: Iterable[SourceRecord],
        *,
        batch_size: int = 2000,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResult:
        """Link ``records`` in batches of ``batch_size``; ``progress`` is called with each batch's size."""
        total = IngestResult()
        batch: list[SourceRecord] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                total.add(self.ingest_batch(batch))
                if progress:
                    progress(len(batch))
                batch = []
        if batch:
            total.add(self.ingest_batch(batch))
            if progress:
                progress(len(batch))
        return total
