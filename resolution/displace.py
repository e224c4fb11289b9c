"""Displacement at ingest: a better later claim on a one-record-per-person partner moves the weaker record out.

Ingest takes records in arrival order, so an early tax record T1 may take census record c1's customer C
although a later tax record T scores much better with c1; C then holds a tax record and
:class:`~c360.resolution.holdings.Holdings` refuses T. Batch resolution, which joins the strongest
pairs first, would have given c1 to T. At ingest the rule is: when the model links T (of a
one-record-per-person source S) best to C, C is refused only because it holds one record T1 of S, and

* T1 is in C by the model alone: its link is ``probabilistic`` (or it opened C, ``new``, or was
  displaced before), it shares no linking identifier with C's other records, no pair of it with them
  has a pattern stewards approved, no steward approved a review of it with one of them, C's history
  holds no steward's merge (review or manual) and no merge T1 made (it bridged two customers), and
* T's best pair with C (as the matcher found it) weighs more than T1's best pair with C's other records
  (scored again here from their records),

then T1 moves out, with ``displaced`` evidence that names T and both probabilities, and T links to C.
Once T is planned, T1 is matched again as a new record would be, but only to one customer: the best one
the model links it to that holds no record of S (and no apart decision forbids); failing that it becomes
a new customer of its own. That second step displaces nothing and merges nothing, so nothing cascades.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from c360.graph.models import (
    ChangeSet,
    Customer,
    Evidence,
    Identifier,
    RecordMove,
    RecordWrite,
    SourceRecord,
    source_of,
)
from c360.graph.reads import ExistingRecord
from c360.graph.store import GraphStore

from .holdings import Holdings
from .normalize import is_junk
from .realtime import BatchMatcher, Match
from .scorer import Score

#: Link rules of a record whose place the model alone decided (a steward's, an identifier's never are).
MODEL_RULES = frozenset({"probabilistic", "new", "displaced"})
#: Merge rules of a steward's decision: a customer that went through one is never taken apart here.
STEWARD_MERGES = frozenset({"review", "manual"})


@dataclass(frozen=True, slots=True)
class Displaced:
    """A record moved out of its customer by a better claim: the move, and the record for its golden record."""

    move: RecordMove
    record: SourceRecord


@dataclass(frozen=True, slots=True)
class Claim:
    """A weaker holder the claiming record may displace from a customer."""

    customer_id: str
    holder: ExistingRecord
    record: SourceRecord
    #: the holder's best pair with the customer's other records, and that record's uid
    score: Score
    partner: str
    #: the claiming record's uid and its best match with the customer
    by: str
    match: Match

    def evidence(self) -> Evidence:
        """The evidence of the holder's move: displaced, by which record, both probabilities."""
        note = (
            f"displaced from {self.customer_id} by {self.by} (probability "
            f"{self.match.score.match_probability:.6f} with {self.match.record_uid}, weight "
            f"{self.match.score.match_weight:+.2f}); its own best: probability {self.score.match_probability:.6f} "
            f"with {self.partner}, weight {self.score.match_weight:+.2f}"
        )
        return Evidence("displaced", (), record=self.by, note=note)


class Planning(Protocol):
    """What displacement reads and updates of the linker's batch plan."""

    now: datetime
    changes: ChangeSet
    writes: dict[str, RecordWrite]
    existing: dict[str, ExistingRecord]
    bearers: dict[str, dict[str, str]]
    parent: dict[str, str]
    moves: dict[str, Displaced]

    def find(self, cid: str) -> str:
        """The customer ``cid`` ends up in, merges of the batch followed."""
        ...


class Displacer:
    """Finds and makes displacements for one ingest batch (see the module docstring for the rule)."""

    def __init__(
        self,
        store: GraphStore,
        matcher: BatchMatcher,
        holdings: Holdings,
        *,
        strong: frozenset[str],
        blocked: frozenset[str],
        new_id: Callable[[], str],
    ) -> None:
        self._store = store
        self._matcher = matcher
        self._holdings = holdings
        self._strong = strong
        self._blocked = blocked
        self._new_id = new_id
        self._approved: set[frozenset[str]] | None = None  # pairs of approved reviews, read when first needed

    def claim(
        self, plan: Planning, record: SourceRecord, match: Match, joined: Collection[str], keeps: Callable[[str], bool]
    ) -> Claim | None:
        """The holder ``record`` may displace from ``match``'s customer beside ``joined``, or ``None``.

        ``keeps(customer_id)`` says whether the record could join that customer under the apart decisions
        (asked last: the holder is not displaced for a record that could not take its place anyway).
        """
        cid = match.customer_id
        if self._holdings.conflicts(record.source, joined, cid) != {record.source}:
            return None  # refused for another source too, or not refused at all
        members = self._members(plan, cid)
        holders = [uid for uid in members if source_of(uid) == record.source]
        if len(holders) != 1:
            return None
        uid = holders[0]
        known = {u: plan.existing[u] for u in members if u in plan.existing}
        missing = [u for u in members if u not in known]
        if missing:
            known.update(self._store.lookup(missing, ()).records)
        holder = known.get(uid)
        if holder is None or holder.evidence.rule not in MODEL_RULES:
            return None
        others = [u for u in members if u != uid and u in known]
        if not others or self._bound_by_identifier(holder, [known[u] for u in others]):
            return None
        best: tuple[Score, str] | None = None
        scorer = self._matcher.scorer
        for other in others:
            score = self._matcher.score_records(members[uid], members[other])
            if scorer.verdicts.of(score) is True:  # a pattern stewards approved every time
                return None
            if best is None or score.match_weight > best[0].match_weight:
                best = (score, other)
        if best is None or best[0].match_weight >= match.score.match_weight:
            return None
        if self._steward_bound(plan, cid, uid, others) or not keeps(cid):
            return None
        return Claim(cid, holder, members[uid], best[0], best[1], record.uid, match)

    def displace(self, plan: Planning, claim: Claim) -> str:
        """Move the claim's holder into a new customer of its own; return the new customer's id.

        The plan's writes, records, identifier bearers, the matcher's candidates and the holdings follow.
        """
        new = self._new_id()
        plan.changes.new_customers.append(Customer(new, plan.now))
        self._place(plan, claim, claim.customer_id, new, claim.evidence())
        return new

    def rehome(self, plan: Planning, claim: Claim, new: str, keeps: Callable[[str, str], bool]) -> str | None:
        """Once the claiming record is planned: link the displaced holder to its best free customer, if any.

        The holder's candidates are read and scored as a new record's; the best customer the model links
        it to that holds nothing of its source and that ``keeps(record_uid, customer_id)`` allows (no apart
        decision) takes it, and its customer of its own (``new``, still empty) is dropped. At most one
        customer, no merge, no further displacement. Returns that customer, or ``None`` (it stays alone).
        """
        record = claim.record
        self._matcher.extend(record)
        found, _ = self._matcher.matches(record, plan.find)
        admitted = self._holdings.admit(record.source, [], [m.customer_id for m in found if m.customer_id != new])
        if not admitted or not keeps(claim.holder.uid, admitted[0]):
            return None
        home = admitted[0]
        match = next(m for m in found if m.customer_id == home)
        p = match.score.match_probability
        note = f"{claim.evidence().note}; then linked to {home}: probability {p:.6f} with {match.record_uid}"
        plan.changes.new_customers = [c for c in plan.changes.new_customers if c.id != new]
        self._place(plan, claim, new, home, Evidence("displaced", (), record=claim.by, note=note))
        return home

    def _place(self, plan: Planning, claim: Claim, old: str, new: str, evidence: Evidence) -> None:
        uid = claim.holder.uid
        write = plan.writes.get(uid)
        if write is not None:  # planned earlier in this batch: it is written straight to its new customer
            plan.writes[uid] = replace(write, customer_id=new, evidence=evidence)
        else:
            plan.moves[uid] = Displaced(RecordMove(uid, new, evidence), claim.record)
        plan.existing[uid] = replace(claim.holder, customer_id=new, evidence=evidence)
        for iuid in claim.holder.identifiers:
            bearing = plan.bearers.get(iuid)
            if bearing is not None and uid in bearing:
                bearing[uid] = new
        self._matcher.moved(uid, new)
        self._holdings.moved(claim.record.source, old, new)

    def _members(self, plan: Planning, cid: str) -> dict[str, SourceRecord]:
        """The records customer ``cid`` holds as planned so far: stored, merged in, planned, moved out."""
        customers = [cid, *(c for c in plan.parent if plan.find(c) == cid)]
        out: dict[str, SourceRecord] = {}
        for recs in self._store.records_of(customers).values():
            for r in recs:
                now = plan.existing.get(r.uid)
                if now is None or plan.find(now.customer_id) == cid:
                    out[r.uid] = r
        for uid, w in plan.writes.items():
            if plan.find(w.customer_id) == cid:
                out[uid] = w.record
        return out

    def _bound_by_identifier(self, holder: ExistingRecord, others: list[ExistingRecord]) -> bool:
        """Whether the holder shares a linking identifier (a strong kind, not junk) with another member."""
        theirs = {i for o in others for i in o.identifiers}
        for iuid in set(holder.identifiers) & theirs:
            ident = Identifier.from_uid(iuid)
            if ident.kind in self._strong and not is_junk(ident, self._blocked):
                return True
        return False

    def _steward_bound(self, plan: Planning, cid: str, uid: str, others: list[str]) -> bool:
        """Whether a steward's decision or a merge the holder made ties it to the customer."""
        if self._approved is None:
            self._approved = {
                frozenset((i.record_uid, i.candidate_uid)) for i in self._store.review_items("approved", None)
            }
        if any(frozenset((uid, o)) in self._approved for o in others):
            return True
        if any(m.evidence.record == uid and plan.find(m.survivor) == cid for m in plan.changes.merges):
            return True
        customers = {cid, *(c for c in plan.parent if plan.find(c) == cid)}
        created = {c.id for c in plan.changes.new_customers}
        for c in sorted(customers - created):
            for event in self._store.history(c):
                rule, by = event.evidence.rule, event.evidence.record
                if event.kind == "merge" and (rule in STEWARD_MERGES or by == uid):
                    return True
        return False
