"""The cases port: service cases as append-only event histories, their current state, dues and views.

A case hangs off its anchor record (``record_uid``, chosen when it is created), so a customer's cases are
those of the records it holds now: they follow merges and splits without being moved. Each event is
kept (append-only, idempotent by id), the case's state is kept beside them for the views, and each
event leaves a journey row (``case|<event id>``, type ``case_<kind>``) on the customer's timeline.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import final

from ..case_codecs import ORDERS, decode_cursor, due_key, encode_cursor, order_key, timeline_event
from ..cases import STATUSES, Case, CaseDue, CaseEvent, CaseVocabulary, advance, check_case_id
from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..models import StoredEvent
from .base import MAX_BATCH, new_events
from .identity import IdentityPort


@dataclass(frozen=True, slots=True)
class CasePage:
    """One page of a case view and the cursor of the next page (None: the last).

    ``dues`` holds the dues of the page's cases that have any, keyed by case id.
    """

    cases: list[Case]
    next_cursor: str | None
    dues: dict[str, CaseDue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What a view selects (None: any): the active customer holding the anchor, assignee, team, statuses."""

    customer_id: str | None = None
    assignee: str | None = None
    team: str | None = None
    statuses: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CasePlan:
    """What an append writes.

    The new events, each touched case's new state and "due" key, the cases it creates (in order) and
    the journey rows.
    """

    events: list[CaseEvent]
    cases: dict[str, Case]
    keys: dict[str, str]
    created: list[str]
    journey: list[StoredEvent]


def new_case_events(events: list[CaseEvent], stored: Mapping[str, CaseEvent]) -> list[CaseEvent]:
    """The events to write: those not stored yet (an identical replay is skipped, a different one conflicts)."""
    return new_events(events, stored, "case")


def plan_case_events(
    fresh: list[CaseEvent],
    current: Mapping[str, Case],
    dues: Mapping[str, CaseDue],
    owners: Mapping[str, str],
    active: Mapping[str, str],
    vocabulary: CaseVocabulary,
) -> CasePlan:
    """Apply ``fresh`` in order to the ``current`` states of their cases (folded from the stored events).

    ``dues`` are the touched cases' stored dues; ``owners`` maps the ``created`` events' records to the
    customer holding each now and ``active`` their customer ids to the active customer. A ``created``
    event whose record is missing or held by another customer is a :class:`NotFoundError`, as is any
    other event of an unknown case; illegal transitions raise (:func:`~c360.graph.cases.advance`).
    """
    cases = dict(current)
    created: list[str] = []
    journey: list[StoredEvent] = []
    for event in fresh:
        case = cases.get(event.case_id)
        if case is None:
            if event.kind != "created":
                raise NotFoundError(f"no case {event.case_id} (event {event.id} is {event.kind})")
            uid, cid = str(event.data["record_uid"]), str(event.data["customer_id"])
            if uid not in owners:
                raise NotFoundError(f"case {event.case_id} hangs off a stored source record; no record {uid}")
            if owners[uid] != active.get(cid):
                raise NotFoundError(f"case {event.case_id}: record {uid} does not belong to customer {cid}")
            created.append(event.case_id)
        case = cases[event.case_id] = advance(case, event, vocabulary)
        journey.append(timeline_event(event, case.record_uid))
    touched = {e.case_id: cases[e.case_id] for e in fresh}
    keys = {cid: due_key(case, dues.get(cid)) for cid, case in touched.items()}
    return CasePlan(fresh, touched, keys, created, journey)


def _check_event(event: object) -> CaseEvent:
    if not isinstance(event, CaseEvent):
        raise InvalidInputError(f"append_case_events takes CaseEvent values, not {type(event).__name__}")
    return event


def _optional_text(what: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InvalidInputError(f"{what} is a non-empty string or None, not {value!r}")
    return value


class CasesPort(IdentityPort):
    """Append case events; read a case, its events, its dues; list cases by customer, assignee, team, status."""

    @final
    def append_case_events(self, events: Collection[CaseEvent], vocabulary: CaseVocabulary) -> list[str]:
        """Append ``events`` in one transaction, in their order; return the ids of those written.

        Idempotent by event id: a stored identical event is skipped, one with other content is a
        :class:`ConflictError`. Under the write transaction the touched cases are folded from their stored
        events and the new ones applied in order against ``vocabulary``; an illegal status change
        (:class:`~c360.graph.cases.TransitionError`), a value outside the vocabulary, an event of an unknown
        case or a ``created`` whose record is not held by its customer (a merged-away id counts as its
        survivor; :class:`NotFoundError`) writes nothing of the batch. Appends serialise across processes
        (embedded: SQLite's write lock or the open :meth:`exclusive`; neo4j: the ``case`` sequence node).
        """
        if isinstance(events, CaseEvent) or not isinstance(events, Collection):
            raise InvalidInputError("append_case_events takes a collection of CaseEvent values")
        if not isinstance(vocabulary, CaseVocabulary):
            raise InvalidInputError(f"append_case_events takes a CaseVocabulary, not {type(vocabulary).__name__}")
        batch: dict[str, CaseEvent] = {}
        for event in map(_check_event, events):
            if batch.setdefault(event.id, event) != event:
                raise ConflictError(f"case event {event.id} is given twice with different content")
        if not batch:
            return []
        if len(batch) > MAX_BATCH:
            raise InvalidInputError(f"append_case_events takes at most {MAX_BATCH} events, not {len(batch)}")
        return self._call("append_case_events", lambda: self._append_case_events(list(batch.values()), vocabulary))

    @final
    def get_case(self, case_id: str) -> Case:
        """The case's current state, ``customer_id`` the customer holding its anchor record now.

        :class:`NotFoundError` for an unknown case.
        """
        return self._case_row(case_id)[0]

    @final
    def get_case_due(self, case_id: str) -> CaseDue | None:
        """The dues last set for the case (None: never set); :class:`NotFoundError` for an unknown case."""
        return self._case_row(case_id)[1]

    @final
    def case_events(self, case_id: str) -> list[CaseEvent]:
        """The case's events in append order; :class:`NotFoundError` for an unknown case."""
        check_case_id(case_id)
        events = self._call("case_events", lambda: self._case_events(case_id))
        if not events:
            raise NotFoundError(f"no case {case_id}")
        return events

    @final
    def set_case_dues(self, dues: Mapping[str, CaseDue]) -> None:
        """Keep what the SLA engine computed for each case (replacing what was set before), in one transaction.

        The "due" view orders by them from now on. :class:`NotFoundError` (nothing written) if a case is unknown.
        """
        if not isinstance(dues, Mapping):
            raise InvalidInputError("set_case_dues takes a mapping of case id to CaseDue")
        for case_id, due in dues.items():
            check_case_id(case_id)
            if not isinstance(due, CaseDue):
                raise InvalidInputError(f"case {case_id}: dues are a CaseDue, not {type(due).__name__}")
        if not dues:
            return
        if len(dues) > MAX_BATCH:
            raise InvalidInputError(f"set_case_dues takes at most {MAX_BATCH} cases, not {len(dues)}")
        self._call("set_case_dues", lambda: self._set_case_dues(dict(dues)))

    @final
    def list_cases(
        self,
        *,
        customer_id: str | None = None,
        assignee: str | None = None,
        team: str | None = None,
        statuses: Collection[str] | None = None,
        order: str = "due",
        first: int = 20,
        after: str | None = None,
    ) -> CasePage:
        """One page of the cases that match every filter given, ``first`` at a time from cursor ``after``.

        ``customer_id``: the cases of the records it holds now (a merged-away id reads its survivor's;
        :class:`NotFoundError` if unknown). ``order``: ``due`` (earliest first: the first-response due while
        nobody has answered, or the resolution due if earlier or the only one; cases without one last),
        ``updated`` or ``created`` (newest first); ties by case id (descending for the newest-first orders).
        Keyset pages: inserts never duplicate or skip a case across pages.
        """
        if order not in ORDERS:
            raise InvalidInputError(f"unknown case order {order!r}: expected one of {', '.join(ORDERS)}")
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_BATCH:
            raise InvalidInputError(f"first must be between 1 and {MAX_BATCH}")
        cursor = None if after is None else decode_cursor(order, after)
        _optional_text("assignee", assignee)
        _optional_text("team", team)
        wanted: tuple[str, ...] | None = None
        if statuses is not None:
            if isinstance(statuses, str):
                raise InvalidInputError("statuses is a collection of statuses, not one")
            wanted = tuple(sorted(set(statuses)))
            unknown = [s for s in wanted if s not in STATUSES]
            if unknown or not wanted:
                raise InvalidInputError(f"statuses: give some of {', '.join(STATUSES)}, not {list(statuses)!r}")
        active = None
        if customer_id is not None:
            active = self.resolve(customer_id)
            if active is None:
                raise NotFoundError(f"no customer {customer_id}")
        where = CaseFilter(active, assignee, team, wanted)
        rows = self._call("list_cases", lambda: self._list_cases(where, order, first + 1, cursor))
        more = len(rows) > first
        rows = rows[:first]
        last = rows[-1] if rows else None
        nxt = encode_cursor(order, order_key(order, *last), last[0].id) if more and last else None
        return CasePage([c for c, _ in rows], nxt, {c.id: d for c, d in rows if d is not None})

    @final
    def open_case_ids(self, *, after: str | None = None, limit: int = 500) -> list[str]:
        """Ids of the cases not closed, in id order, after ``after`` (to recompute SLAs a page at a time)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
            raise InvalidInputError(f"limit must be between 1 and {MAX_BATCH}")
        if after is not None and not isinstance(after, str):
            raise InvalidInputError(f"after is a case id, not {after!r}")
        return self._call("open_case_ids", lambda: self._open_case_ids(after, limit))

    @final
    def case_counts(self) -> Mapping[str, int]:
        """How many cases are in each status (every status, 0 included)."""
        counts = self._call("case_counts", lambda: self._case_counts())
        return {s: counts.get(s, 0) for s in STATUSES}

    def _case_row(self, case_id: str) -> tuple[Case, CaseDue | None]:
        check_case_id(case_id)
        row = self._call("get_case", lambda: self._get_case(case_id))
        if row is None:
            raise NotFoundError(f"no case {case_id}")
        return row

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _append_case_events(self, events: list[CaseEvent], vocabulary: CaseVocabulary) -> list[str]:
        """Check and write ``events`` in one write transaction; return the ids written.

        :func:`new_case_events` against the stored events of these ids, :func:`plan_case_events` over the
        touched cases' folded histories, then the plan written.
        """

    @abstractmethod
    def _get_case(self, case_id: str) -> tuple[Case, CaseDue | None] | None:
        """The case (``customer_id`` its anchor's customer now) and its dues, or None."""

    @abstractmethod
    def _case_events(self, case_id: str) -> list[CaseEvent]:
        """The case's events in append order (empty: no such case)."""

    @abstractmethod
    def _set_case_dues(self, dues: dict[str, CaseDue]) -> None:
        """Write the dues and each case's "due" key (:func:`due_key`); NotFoundError for an unknown case."""

    @abstractmethod
    def _list_cases(
        self, where: CaseFilter, order: str, limit: int, after: tuple[str, str] | None
    ) -> list[tuple[Case, CaseDue | None]]:
        """At most ``limit`` matching cases in ``order`` after the ``(key, case id)`` ``after``."""

    @abstractmethod
    def _open_case_ids(self, after: str | None, limit: int) -> list[str]: ...

    @abstractmethod
    def _case_counts(self) -> dict[str, int]: ...
