"""Segment memberships in the store: the engine's membership changes as the kernel's ``SegmentChange``.

:func:`to_segment_change` gives each change a deterministic id (segment, customer, kind, a key and the
source; the key is the change's time unless the caller names the feed position that caused it), so
writing the same changes again is a no-op in the store. :func:`write_changes` writes them through
``store.apply_segment_changes`` in batches, each its own transaction; :func:`publish_backfill` does it
for a backfill and counts what took effect. :func:`backfill_into_store` is the whole backfill: RFM when
the rules need it, the consent facts, the rules over the snapshot and the changes into the store.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
from c360.graph.errors import InvalidInputError
from c360.graph.insights import SegmentChange
from c360.graph.store import GraphStore

from .consent_facts import ConsentFacts, consent_facts, permitted_pairs
from .rfm import compute_rfm
from .segment_rules import FieldCondition, leaves
from .segments import MembershipChange, Segment, backfill

__all__ = [
    "BackfillRun",
    "PublishReport",
    "backfill_into_store",
    "change_id",
    "needs_rfm",
    "publish_backfill",
    "to_segment_change",
    "write_changes",
]

#: changes per ``apply_segment_changes`` call (one transaction each)
BATCH = 1000
_MAX_ID = 300
_MAX_REASON = 1000

Progress = Callable[[str], None]


def change_id(change: MembershipChange, *, source: str, key: str | None = None) -> str:
    """The change's id: ``segment|customer|kind|key|source``, ``key`` defaulting to the change's time.

    A key that would make the id longer than the store takes (300 characters) is replaced by its digest.
    """
    head, tail = f"{change.segment}|{change.customer_id}|{change.change}|", f"|{source}"
    key = change.at.isoformat() if key is None else key
    if len(head) + len(key) + len(tail) > _MAX_ID:
        key = "h" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    if len(head) + len(key) + len(tail) > _MAX_ID:
        raise InvalidInputError(f"segment change of {change.customer_id!r} in {change.segment!r}: its id is too long")
    return head + key + tail


def to_segment_change(change: MembershipChange, *, source: str, key: str | None = None) -> SegmentChange:
    """The kernel's :class:`SegmentChange` for an engine or backfill change (the reason: its deciding condition)."""
    reason = change.reason.condition
    if len(reason) > _MAX_REASON:
        reason = reason[: _MAX_REASON - 1] + "…"
    return SegmentChange(
        id=change_id(change, source=source, key=key),
        segment_id=change.segment,
        customer_id=change.customer_id,
        kind=change.change,
        at=change.at,
        reason=reason,
        source=source,
    )


def write_changes(
    store: GraphStore,
    changes: Sequence[SegmentChange],
    *,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> list[SegmentChange]:
    """Write ``changes`` in order, ``batch_size`` per transaction; returns those that took effect.

    ``progress`` gets a line after each batch when there is more than one.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
        raise InvalidInputError(f"batch_size must be between 1 and 10000, not {batch_size!r}")
    applied: list[SegmentChange] = []
    for start in range(0, len(changes), batch_size):
        applied += store.apply_segment_changes(changes[start : start + batch_size])
        if progress is not None and len(changes) > batch_size:
            done = min(start + batch_size, len(changes))
            progress(f"segment changes: {done:,} of {len(changes):,} written, {len(applied):,} took effect")
    return applied


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What writing a backfill's changes to the store did."""

    entered: int  #: memberships made
    exited: int  #: memberships removed
    no_op: int  #: changes the store had already (a replay) or that changed nothing
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"entered": self.entered, "exited": self.exited, "no_op": self.no_op, "seconds": round(self.seconds, 3)}


def publish_backfill(
    store: GraphStore,
    changes: Sequence[MembershipChange],
    *,
    source: str = "backfill",
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> PublishReport:
    """Write a backfill's membership changes to the store (source ``backfill``); counts what took effect.

    Ids are deterministic (the change's time is in them), so publishing the same backfill twice is a no-op.
    An exit of a customer merged away since the last backfill is left out: the store reads its id as the
    survivor's, whose membership the survivor's own changes decide.
    """
    started = time.monotonic()
    kept = [c for c in changes if c.change == "entered" or store.resolve(c.customer_id) == c.customer_id]
    converted = [to_segment_change(change, source=source) for change in kept]
    applied = write_changes(store, converted, batch_size=batch_size, progress=progress)
    entered = sum(1 for change in applied if change.kind == "entered")
    exited = len(applied) - entered
    return PublishReport(entered, exited, len(changes) - len(applied), time.monotonic() - started)


def needs_rfm(segments: Sequence[Segment]) -> bool:
    """Whether a rule of ``segments`` reads an RFM column (``rfm.<column>``)."""
    return any(
        isinstance(leaf, FieldCondition) and leaf.field.startswith("rfm.") for s in segments for leaf in leaves(s.rule)
    )


@dataclass(frozen=True)
class BackfillRun:
    """A backfill written to the store: its time, members per segment, what took effect, RFM rows (or None).

    ``consent`` holds the consent facts it read, per snapshot customer at ``as_of``, for later steps of
    the same run (scoring's channels) to reuse instead of reading the ledger again.
    """

    as_of: datetime
    members: dict[str, int]
    report: PublishReport
    rfm_customers: int | None
    consent: Mapping[str, ConsentFacts]


def backfill_into_store(
    store: GraphStore,
    con: duckdb.DuckDBPyConnection,
    segments: Sequence[Segment],
    *,
    as_of: datetime,
    rfm: bool | None = None,
    progress: Progress | None = None,
) -> BackfillRun:
    """Recompute ``segments`` over the snapshot at ``as_of`` and write the membership changes to the store.

    RFM is recomputed first when ``rfm`` is true, or when it is None and a rule reads it. The consent
    facts come from the store's ledger at ``as_of`` (the kernel's rules decide them).
    """
    say = progress or (lambda _line: None)
    rfm_rows = None
    if rfm or (rfm is None and needs_rfm(segments)):
        rfm_rows = compute_rfm(con, as_of=as_of)
        say(f"RFM computed for {rfm_rows:,} customers as of {as_of.isoformat()}")
    ids = [row[0] for row in con.execute("SELECT customer_id FROM customers").fetchall()]
    facts = consent_facts(store, ids, as_of, progress=lambda done, total: say(f"consent facts: {done:,} of {total:,}"))
    changes = backfill(con, segments, as_of=as_of, consent=permitted_pairs(facts))
    members = dict(con.execute("SELECT segment, count(*) FROM segment_members GROUP BY 1").fetchall())
    say(f"backfill as of {as_of.isoformat()}: {len(changes):,} membership changes; writing them to the store")
    report = publish_backfill(store, changes, progress=say)
    return BackfillRun(as_of, {s.id: int(members.get(s.id, 0)) for s in segments}, report, rfm_rows, facts)
