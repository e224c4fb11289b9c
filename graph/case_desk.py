"""Working cases: the one place that changes a case, keeps its SLA dues and tells people.

Every change (open, update, assign, comment, status, link) is one :class:`~c360.graph.cases.CaseEvent`
appended under the store's write lock; in the same unit the case's SLA clocks are computed from all its
events (:func:`c360.graph.sla.clocks`), its dues written for the views, and the notifications it calls for
enqueued in the outbox (an assignment to the assignee's address). So a case is never left with stale dues
or a lost notice. Reads compute the clocks anew at the time asked, so states such as ``at_risk`` and
``breached`` are current without a timer; :meth:`CaseDesk.recompute` rewrites the stored dues after a
calendar or policy change, and :meth:`CaseDesk.warn` enqueues one warning per clock that is at risk.

A case hangs off one record of its customer (the anchor): the record of the order or transaction it is
about when one is given, else the customer's oldest record. It follows that record through merges and
splits. The API and the CLI call this module; neither writes cases any other way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .cases import Case, CaseDue, CaseEvent, CaseVocabulary, status_history
from .errors import ConflictError, InvalidInputError, NotFoundError
from .notices import case_assigned, sla_at_risk
from .outbox import OutboxMessage
from .sla import CaseFacts, SlaClocks, SlaConfig, clocks
from .store import GraphStore

#: most timeline pages searched for the order or transaction a case is about
MAX_ANCHOR_PAGES = 20
#: cases due further ahead than this are not looked at for warnings (no SLA target is that long)
WARN_HORIZON = timedelta(days=31)
#: event types and the data key that names what a case may be linked to
_LINKABLE = {"order_id": ("order", "order_id"), "transaction_id": ("transaction", "transaction_id")}


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case with its history and its SLA clocks at ``clocks.computed_at``."""

    case: Case
    events: list[CaseEvent]
    clocks: SlaClocks
    due: CaseDue


def due_of(case: Case, sla: SlaClocks) -> CaseDue:
    """The dues the views sort by: the projected breach of each running clock, and the worst state."""
    order = ("met", "running", "paused", "at_risk", "breached")
    states = [sla.first_response.state, sla.resolution.state]
    return CaseDue(
        first_response_due=sla.first_response.due_at,
        resolution_due=sla.resolution.due_at,
        sla_state=max(states, key=order.index),
        calendar=sla.calendar_fingerprint,
    )


@dataclass
class CaseDesk:
    """Opens and changes cases for the API and the CLI (authorisation is the caller's)."""

    store: GraphStore
    vocabulary: CaseVocabulary = field(default_factory=CaseVocabulary)
    sla: SlaConfig = field(default_factory=SlaConfig)
    #: e-mail addresses of people by their id and of teams as ``team:<name>`` (assignment notices)
    addresses: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex

    def clocks_of(self, events: list[CaseEvent], case: Case, now: datetime) -> SlaClocks:
        """The SLA clocks of ``case`` (whose history is ``events``) at ``now``."""
        policy = self.sla.policy_for(case.type, case.priority)
        facts = CaseFacts(case.created_at, status_history(events), case.first_response_at)
        return clocks(facts, policy, self.sla.calendar(policy.calendar), now)

    def open(
        self,
        *,
        customer_id: str,
        actor: str,
        type: str,
        priority: str,
        channel: str,
        subject: str,
        description: str | None = None,
        team: str | None = None,
        assignee: str | None = None,
        order_id: str | None = None,
        transaction_id: str | None = None,
        event_id: str | None = None,
        case_id: str | None = None,
    ) -> CaseView:
        """Open a case for ``customer_id`` (a merged-away id opens it for its survivor).

        ``event_id`` makes the call idempotent: the same id with the same content returns the case.
        """
        active = self.store.resolve(customer_id)
        if active is None:
            raise NotFoundError(f"no customer {customer_id}")
        links = {"order_id": order_id, "transaction_id": transaction_id}
        record = self._anchor(active, links)
        data: dict[str, Any] = {
            "customer_id": active,
            "record_uid": record,
            "type": type,
            "priority": priority,
            "channel": channel,
            "subject": subject,
        }
        optional = {"description": description, "team": team, "assignee": assignee, **links}
        data.update({k: v for k, v in optional.items() if v is not None})
        eid = event_id or self.new_id()
        # An idempotent open (event_id given) names its case after the event, so a replay finds it.
        cid = case_id or f"K{eid}"
        return self._append(CaseEvent(eid, cid, self.clock(), actor, "created", data), replay=event_id is not None)

    def change(
        self, case_id: str, *, actor: str, kind: str, data: Mapping[str, Any], event_id: str | None = None
    ) -> CaseView:
        """Append one change (``updated``, ``assigned``, ``commented``, ``status_changed``, ``linked``)."""
        if kind == "created":
            raise InvalidInputError("a case is created by open, not by change")
        payload = dict(data)
        if kind == "commented" and "comment_id" not in payload:
            payload["comment_id"] = event_id or self.new_id()
        if kind == "linked":  # the record must hold what the case is linked to
            case = self.store.get_case(case_id)
            for key in _LINKABLE:
                if payload.get(key) is not None:
                    self._anchor(case.customer_id, {key: payload[key]})
        event = CaseEvent(event_id or self.new_id(), case_id, self.clock(), actor, kind, payload)
        return self._append(event, replay=event_id is not None)

    def view(self, case_id: str, *, now: datetime | None = None) -> CaseView:
        """The case with its history and its clocks at ``now`` (default: the desk's clock)."""
        case = self.store.get_case(case_id)
        events = self.store.case_events(case_id)
        sla = self.clocks_of(events, case, now or self.clock())
        return CaseView(case, events, sla, due_of(case, sla))

    def recompute(
        self,
        *,
        budget_seconds: float = 600.0,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[int, int]:
        """Rewrite the dues of every open case under the current calendars and policies.

        Returns (cases seen, cases whose dues changed). Stops with :class:`InvalidInputError` naming
        how far it got when the budget runs out (a rerun continues where the dues are still old).
        """
        started = time.monotonic()
        seen = changed = 0
        after: str | None = None
        while True:
            ids = self.store.open_case_ids(after=after, limit=200)
            if not ids:
                return seen, changed
            with self.store.exclusive():
                now = self.clock()
                dues: dict[str, CaseDue] = {}
                for cid in ids:
                    case = self.store.get_case(cid)
                    due = due_of(case, self.clocks_of(self.store.case_events(cid), case, now))
                    if self.store.get_case_due(cid) != due:
                        dues[cid] = due
                if dues:
                    self.store.set_case_dues(dues)
            seen += len(ids)
            changed += len(dues)
            after = ids[-1]
            if progress is not None:
                progress(seen)
            if time.monotonic() - started > budget_seconds:
                raise InvalidInputError(
                    f"recompute stopped at its budget of {budget_seconds:.0f} s after {seen} open cases "
                    f"({changed} changed); run it again to go on"
                )

    def warn(self, *, now: datetime | None = None, scan: int = 5000) -> int:
        """Enqueue one warning for each running clock that is at risk now; return how many were new.

        Cases are taken by due time, nearest first, up to ``scan`` of them and none due beyond
        :data:`WARN_HORIZON`. A warning's id names the case, the clock and its due time: one warning per
        due time, however often this runs (a later due time after a pause is a new warning).
        """
        when = now or self.clock()
        messages: list[OutboxMessage] = []
        after: str | None = None
        seen = 0
        while seen < scan:
            page = self.store.list_cases(order="due", first=200, after=after)
            for case in page.cases:
                seen += 1
                due = page.dues.get(case.id)
                nearest = None if due is None else _nearest(due)
                if nearest is None or nearest > when + WARN_HORIZON:  # nulls come last: nothing more runs
                    return self._enqueue(messages)
                view = self.view(case.id, now=when)
                for name, clk in (
                    ("first_response", view.clocks.first_response),
                    ("resolution", view.clocks.resolution),
                ):
                    if clk.running and clk.state == "at_risk" and clk.due_at is not None:
                        to = self._address(view.case)
                        if to is not None:
                            messages.append(sla_at_risk(view.case, clock=name, due=clk.due_at, to=to, now=when))
            if page.next_cursor is None:
                break
            after = page.next_cursor
        return self._enqueue(messages)

    # -- inside ---------------------------------------------------------------------------------------

    def _append(self, event: CaseEvent, *, replay: bool) -> CaseView:
        """Append ``event`` with its dues and notices; ``replay``: its id is the caller's, so it may repeat one."""
        with self.store.exclusive():
            if replay and self._replayed(event):
                return self.view(event.case_id)
            written = self.store.append_case_events([event], self.vocabulary)
            view = self.view(event.case_id, now=event.at)
            self.store.set_case_dues({event.case_id: view.due})
            if written and _assigns(event):
                to = self._address(view.case)
                if to is not None:
                    self.store.enqueue(
                        [case_assigned(view.case, event_id=event.id, to=to, now=event.at, due=view.clocks.next_due)]
                    )
        return view

    def _replayed(self, event: CaseEvent) -> bool:
        """Whether ``event`` (stamped now) repeats a stored one: same id, actor, kind and data, any time.

        A caller retrying with its idempotency key gets the case as it is; the same id with other content
        is a :class:`ConflictError`.
        """
        try:
            stored = self.store.case_events(event.case_id)
        except NotFoundError:
            return False
        for old in stored:
            if old.id == event.id:
                if (old.actor, old.kind, dict(old.data)) != (event.actor, event.kind, dict(event.data)):
                    raise ConflictError(f"case event {event.id} is stored already with other content")
                return True
        return False

    def _enqueue(self, messages: list[OutboxMessage]) -> int:
        return len(self.store.enqueue(messages)) if messages else 0

    def _address(self, case: Case) -> str | None:
        if case.assignee is not None and case.assignee in self.addresses:
            return self.addresses[case.assignee]
        if case.team is not None:
            return self.addresses.get(f"team:{case.team}")
        return None

    def _anchor(self, customer_id: str, links: Mapping[str, str | None]) -> str:
        """The record a case about ``links`` hangs off: the one holding the order or transaction, else the oldest."""
        for key, value in links.items():
            if value is None:
                continue
            kind, field_name = _LINKABLE[key]
            after: str | None = None
            for _ in range(MAX_ANCHOR_PAGES):
                page = self.store.timeline(customer_id, first=500, after=after, types=[kind])
                for event in page.events:
                    if event.record_uid and _names(event.data, field_name, value):
                        return event.record_uid
                if page.next_cursor is None:
                    break
                after = page.next_cursor
            raise NotFoundError(f"customer {customer_id} has no {kind} {value!r}")
        records = self.store.records_of([customer_id]).get(customer_id, [])
        if not records:
            raise NotFoundError(f"customer {customer_id} holds no record to open a case on")
        return min(records, key=lambda r: (r.observed_at, r.uid)).uid


def _nearest(due: CaseDue) -> datetime | None:
    times = [t for t in (due.first_response_due, due.resolution_due) if t is not None]
    return min(times, default=None)


def _assigns(event: CaseEvent) -> bool:
    if event.kind == "assigned":
        return True
    return event.kind == "created" and (event.data.get("assignee") is not None or event.data.get("team") is not None)


def _names(data: str, key: str, value: str) -> bool:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and str(doc.get(key)) == value
