"""Cases: open, change, read and list service cases, each call authorised and audited.

Every change goes through :class:`~c360.graph.case_desk.CaseDesk` (one event under the write lock, the SLA
dues and notices with it); the actor is the signed-in principal. Which action a change needs follows its
kind: ``assigned`` needs ``assign_case``, ``commented`` ``comment_case``, the others ``update_case``.
Answers show a case as roles that may ``read_cases`` see it: its text in full (staff serve the customer),
internal comments included, the anchor record uid and the event ids by the ``source_key`` rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from c360.graph.case_desk import CaseDesk, CaseView
from c360.graph.cases import Case, CaseEvent
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graph.sla import Clock

from .consent_service import instant
from .principal import Principal
from .service import ProfileService, check_first

#: the action each kind of change needs
ACTION_OF = {
    "updated": "update_case",
    "status_changed": "update_case",
    "linked": "update_case",
    "assigned": "assign_case",
    "commented": "comment_case",
}
ORDERS = ("due", "updated", "created")


@dataclass(frozen=True, slots=True)
class CaseInput:
    """A new case: for whom, what it is, and optionally who works it and what it is about.

    ``event_id`` makes the call idempotent (the same id opens the case once).
    """

    customer_id: str
    type: str
    priority: str
    channel: str
    subject: str
    description: str | None = None
    team: str | None = None
    assignee: str | None = None
    order_id: str | None = None
    transaction_id: str | None = None
    event_id: str | None = None


def _desk(service: ProfileService) -> CaseDesk:
    if service.cases is None:
        raise ConfigError("this API has no case desk configured")
    return service.cases


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def clock_json(clock: Clock) -> dict[str, Any]:
    """One SLA clock: its state, target, elapsed and remaining business seconds and its instants."""
    return {
        "state": clock.state,
        "running": clock.running,
        "target_seconds": int(clock.target.total_seconds()),
        "elapsed_seconds": int(clock.elapsed.total_seconds()),
        "remaining_seconds": int(clock.remaining.total_seconds()),
        "due_at": _time(clock.due_at),
        "at_risk_at": _time(clock.at_risk_at),
        "breached_at": _time(clock.breached_at),
        "stopped_at": _time(clock.stopped_at),
    }


def case_json(service: ProfileService, role: str, case: Case) -> dict[str, Any]:
    """A case's current state as ``role`` sees it."""
    return {
        "id": case.id,
        "customer_id": case.customer_id,
        "record": service.policy.mask_uid(role, case.record_uid),
        "type": case.type,
        "priority": case.priority,
        "channel": case.channel,
        "subject": case.subject,
        "description": case.description,
        "status": case.status,
        "assignee": case.assignee,
        "team": case.team,
        "order_id": case.order_id,
        "transaction_id": case.transaction_id,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "first_response_at": _time(case.first_response_at),
        "resolved_at": _time(case.resolved_at),
        "closed_at": _time(case.closed_at),
        "reopened": case.reopened,
        "comments": case.comments,
        "version": case.version,
    }


def event_json(service: ProfileService, role: str, event: CaseEvent) -> dict[str, Any]:
    """One history entry as ``role`` sees it (a created event's record uid by the source_key rule)."""
    data = dict(event.data)
    if "record_uid" in data:
        data["record_uid"] = service.policy.mask_uid(role, str(data["record_uid"]))
    return {
        "id": service.policy.mask_key(role, event.id),
        "at": event.at.isoformat(),
        "actor": event.actor,
        "kind": event.kind,
        "data": data,
    }


def view_json(service: ProfileService, role: str, view: CaseView, *, history: bool = True) -> dict[str, Any]:
    """A case with its SLA clocks (and its history)."""
    out = case_json(service, role, view.case)
    out["sla"] = {
        "state": view.due.sla_state,
        "calendar": view.clocks.calendar_fingerprint,
        "computed_at": view.clocks.computed_at.isoformat(),
        "first_response": clock_json(view.clocks.first_response),
        "resolution": clock_json(view.clocks.resolution),
    }
    if history:
        out["history"] = [event_json(service, role, e) for e in view.events]
    return out


async def open_case(*, service: ProfileService, who: Principal, data: CaseInput) -> dict[str, Any]:
    """Open a case for a customer; returns it with its clocks and history."""

    def work() -> dict[str, Any]:
        view = _desk(service).open(
            customer_id=data.customer_id,
            actor=who.subject,
            type=data.type,
            priority=data.priority,
            channel=data.channel,
            subject=data.subject,
            description=data.description,
            team=data.team,
            assignee=data.assignee,
            order_id=data.order_id,
            transaction_id=data.transaction_id,
            event_id=data.event_id,
        )
        return view_json(service, who.role, view)

    return await service.audited(
        who, "open_case", data.customer_id, lambda: service.run(work), detail=f"{data.type[:32]}/{data.priority[:16]}"
    )


async def change_case(
    *,
    service: ProfileService,
    who: Principal,
    case_id: str,
    kind: str,
    data: Mapping[str, Any],
    event_id: str | None = None,
) -> dict[str, Any]:
    """Append one change of ``kind`` to a case; returns the case with its clocks and history."""
    action = ACTION_OF.get(kind)
    if action is None:
        raise InvalidInputError(f"unknown change {kind!r}: expected one of {', '.join(ACTION_OF)}")

    def work() -> dict[str, Any]:
        view = _desk(service).change(case_id, actor=who.subject, kind=kind, data=data, event_id=event_id)
        return view_json(service, who.role, view)

    return await service.audited(who, action, case_id, lambda: service.run(work), detail=kind)


async def read_case(
    *, service: ProfileService, who: Principal, case_id: str, at: datetime | str | None = None
) -> dict[str, Any]:
    """One case with its history and its clocks at ``at`` (now)."""

    def work() -> dict[str, Any]:
        view = _desk(service).view(case_id, now=instant("at", at))
        return view_json(service, who.role, view)

    return await service.audited(who, "read_cases", case_id, lambda: service.read(work))


async def list_cases(
    *,
    service: ProfileService,
    who: Principal,
    customer_id: str | None = None,
    assignee: str | None = None,
    team: str | None = None,
    statuses: list[str] | None = None,
    order: str = "due",
    first: int = 20,
    after: str | None = None,
) -> dict[str, Any]:
    """One page of cases by assignee, team, status or customer, ordered by SLA due time, update or creation."""

    def work() -> dict[str, Any]:
        if order not in ORDERS:
            raise InvalidInputError(f"unknown order {order!r}: expected one of {', '.join(ORDERS)}")
        page = service.store.list_cases(
            customer_id=customer_id,
            assignee=assignee,
            team=team,
            statuses=statuses,
            order=order,
            first=check_first(first),
            after=after,
        )
        rows = []
        for case in page.cases:
            row = case_json(service, who.role, case)
            due = page.dues.get(case.id)
            row["sla_state"] = None if due is None else due.sla_state
            row["first_response_due"] = None if due is None else _time(due.first_response_due)
            row["resolution_due"] = None if due is None else _time(due.resolution_due)
            rows.append(row)
        return {"cases": rows, "next_cursor": page.next_cursor}

    target = customer_id or assignee or (f"team:{team}" if team else None)
    return await service.audited(who, "read_cases", target, lambda: service.read(work), detail=f"order {order}")
