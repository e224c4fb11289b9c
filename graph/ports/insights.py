"""The insights port: ML results on the customer (the latest per name) and segment memberships.

Insights are kept per (active customer, name), replaced by each newer write. Segment memberships change
only through :class:`~c360.graph.insights.SegmentChange` values, idempotent by id; each change that
takes effect leaves a journey row (``segment|<change id>``, type ``segment_entered`` or
``segment_exited``) on the customer's timeline, through its oldest record. Customer ids given are resolved
to their active survivor for writes and reads; ids that name no customer are skipped.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar, final

from ..errors import InvalidInputError
from ..insights import Insight, Membership, SegmentChange, check_change, check_insight, check_name, timeline_event
from ..models import StoredEvent
from .identity import IdentityPort, _ids

#: The most insights or segment changes one call writes (one transaction).
MAX_WRITE = 100_000
#: The most customer ids one read takes, and the largest page of members.
MAX_READ = 10_000

Key = tuple[str, str]  # (segment id, active customer id)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """What one apply writes.

    ``applied``: the changes that took effect, in order, each with its active customer id; ``seen``:
    every change of a known customer processed (effect or no-op) with whether it took effect, kept for
    replays; ``removed``: the memberships to delete; ``added``: those to write after (a customer leaving
    and entering again in one batch is both).
    """

    applied: list[SegmentChange]
    seen: list[tuple[SegmentChange, bool]]
    removed: list[Key]
    added: list[Membership]

    def journey(self, anchors: Mapping[str, str]) -> list[StoredEvent]:
        """The timeline rows of the applied changes, through each customer's oldest record in ``anchors``."""
        return [timeline_event(c, anchors.get(c.customer_id)) for c in self.applied]


def plan_segment_changes(
    changes: list[SegmentChange],
    applied_ids: Collection[str],
    active: Mapping[str, str],
    members: Collection[Key],
) -> SegmentPlan:
    """Apply ``changes`` in order to the stored ``members`` (keys of the touched segments and customers).

    ``applied_ids``: ids of the given changes processed before (replays: no-ops); ``active``: each known
    customer id to its active customer (others are skipped). The backend then reads the oldest record of
    the customers of ``applied`` only, for :meth:`SegmentPlan.journey` (replays read no records).
    """
    state = set(members)
    done = set(applied_ids)
    applied: list[SegmentChange] = []
    seen: list[tuple[SegmentChange, bool]] = []
    touched: dict[Key, Membership | None] = {}
    for change in changes:
        cid = active.get(change.customer_id)
        if change.id in done or cid is None:
            continue
        done.add(change.id)
        key = (change.segment_id, cid)
        effect = (key not in state) if change.kind == "entered" else (key in state)
        if effect:
            if change.kind == "entered":
                state.add(key)
                touched[key] = Membership(change.segment_id, cid, change.at, change.reason)
            else:
                state.discard(key)
                touched[key] = None
            applied.append(dataclasses.replace(change, customer_id=cid) if cid != change.customer_id else change)
        seen.append((change, effect))
    added = [m for m in touched.values() if m is not None]
    return SegmentPlan(applied, seen, sorted(touched), added)


def _collection(what: str, values: object, kind: type) -> list[object]:
    if isinstance(values, (kind, str, bytes)) or not isinstance(values, Collection):
        raise InvalidInputError(f"{what} takes a collection of {kind.__name__} values")
    if len(values) > MAX_WRITE:
        raise InvalidInputError(f"{what} takes at most {MAX_WRITE} values in one call, not {len(values)}")
    return list(values)


class InsightsPort(IdentityPort):
    """Put and read customers' insights; apply segment changes; read memberships, members and counts."""

    @final
    def put_insights(self, insights: Collection[Insight]) -> int:
        """Upsert ``insights`` by (customer, name) in one transaction, replacing the old value; return how many.

        A merged-away customer id writes to its survivor; ids that name no customer are skipped. Two
        insights of one name for one (active) customer: the later one in the batch wins, counted once.
        """
        given = [check_insight(i) for i in _collection("put_insights", insights, Insight)]
        if not given:
            return 0
        return self._call("put_insights", lambda: self._put_insights(given))

    @final
    def insights_of(self, customer_ids: Collection[str]) -> dict[str, list[Insight]]:
        """Each known id's insights (its survivor's, for a merged-away id), sorted by name; unknown ids absent.

        Keyed by the id as requested; an insight's ``customer_id`` is the active customer it is kept on.
        """
        return self._per_id("insights_of", customer_ids, self._insights_of, lambda i: i.name)

    @final
    def apply_segment_changes(self, changes: Collection[SegmentChange]) -> list[SegmentChange]:
        """Apply ``changes`` in order in one transaction; return those that took effect.

        ``entered`` for a customer not in the segment makes a membership (since ``at``, its reason);
        ``exited`` for a member removes it; the others are no-ops, as is a change whose id was processed
        before (replays are safe) and one whose customer id names no customer. Ids resolve to their active
        survivor; the returned changes carry it. Each change that takes effect writes a journey event
        ``segment|<id>`` of type ``segment_<kind>`` on the customer's oldest record, in the same transaction.
        """
        given = [check_change(c) for c in _collection("apply_segment_changes", changes, SegmentChange)]
        if not given:
            return []
        return self._call("apply_segment_changes", lambda: self._apply_segment_changes(given))

    @final
    def segments_of(self, customer_ids: Collection[str]) -> dict[str, list[Membership]]:
        """Each known id's memberships (its survivor's, for a merged-away id), sorted by segment id.

        Keyed by the id as requested; unknown ids absent.
        """
        return self._per_id("segments_of", customer_ids, self._segments_of, lambda m: m.segment_id)

    @final
    def segment_members(
        self, segment_id: str, first: int = 1000, after: str | None = None
    ) -> tuple[list[Membership], str | None]:
        """One page of the segment's active members in customer id order, after customer id ``after``.

        Returns the page and the cursor of the next one (the page's last customer id; None on the last page).
        """
        check_name("segment_id", segment_id)
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_READ:
            raise InvalidInputError(f"first must be between 1 and {MAX_READ}")
        if after is not None and not isinstance(after, str):
            raise InvalidInputError(f"not a segment member cursor: {after!r}")
        rows = self._call("segment_members", lambda: self._segment_members(segment_id, first + 1, after))
        more = len(rows) > first
        rows = rows[:first]
        return rows, (rows[-1].customer_id if more and rows else None)

    @final
    def segment_counts(self) -> dict[str, int]:
        """How many active customers each segment holds (segments without members are absent)."""
        return self._call("segment_counts", lambda: self._segment_counts())

    def _per_id(
        self,
        what: str,
        customer_ids: Collection[str],
        read: Callable[[list[str]], dict[str, list[T]]],
        key: Callable[[T], str],
    ) -> dict[str, list[T]]:
        """``read`` of the active survivors of ``customer_ids``, keyed by the id as requested, sorted by ``key``."""
        ids = _ids(what, customer_ids)
        if len(ids) > MAX_READ:
            raise InvalidInputError(f"{what} takes at most {MAX_READ} ids, not {len(ids)}")
        if not ids:
            return {}
        active = self._call(what, lambda: self._resolve_many(ids))
        targets = {rid: active[rid] for rid in ids if rid in active}
        if not targets:
            return {}
        found = self._call(what, lambda: read(sorted(set(targets.values()))))
        return {rid: sorted(found.get(cid, []), key=key) for rid, cid in targets.items()}

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _put_insights(self, insights: list[Insight]) -> int:
        """In one write transaction: resolve the customer ids, skip unknown ones, upsert; return how many."""

    @abstractmethod
    def _insights_of(self, customer_ids: list[str]) -> dict[str, list[Insight]]:
        """The insights kept on these (active) customers, keyed by customer id."""

    @abstractmethod
    def _apply_segment_changes(self, changes: list[SegmentChange]) -> list[SegmentChange]:
        """Plan and write ``changes`` in one write transaction.

        The processed ids, the survivors and the touched memberships read, :func:`plan_segment_changes`,
        the applied customers' oldest records read, then the plan written (journey rows through ``_write``).
        """

    @abstractmethod
    def _segments_of(self, customer_ids: list[str]) -> dict[str, list[Membership]]:
        """The memberships of these (active) customers, keyed by customer id."""

    @abstractmethod
    def _segment_members(self, segment_id: str, limit: int, after: str | None) -> list[Membership]:
        """At most ``limit`` memberships of active customers with ids greater than ``after``, in id order."""

    @abstractmethod
    def _segment_counts(self) -> dict[str, int]: ...
