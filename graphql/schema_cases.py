# ruff: noqa: D101, D102
# mypy: disallow-untyped-decorators=False
"""The cases domain of the schema: one case with its history and SLA clocks, views, and the changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from . import cases_service
from .cases_service import CaseInput
from .schema_common import Info, PageInfo, page_info


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@strawberry.type(description="One SLA clock: business time against its target.")
class SlaClock:
    state: str = strawberry.field(description="running, paused, at_risk, breached or met.")
    running: bool
    target_seconds: int
    elapsed_seconds: int
    remaining_seconds: int = strawberry.field(description="Business seconds left (negative once breached).")
    due_at: datetime | None = strawberry.field(description="When it breaches if it keeps running (null: stopped).")
    at_risk_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> SlaClock:
        times = {k: _at(doc[k]) for k in ("due_at", "at_risk_at", "breached_at", "stopped_at")}
        return cls(
            state=doc["state"],
            running=doc["running"],
            target_seconds=doc["target_seconds"],
            elapsed_seconds=doc["elapsed_seconds"],
            remaining_seconds=doc["remaining_seconds"],
            **times,
        )


@strawberry.type(description="A case's SLA: both clocks, computed from its events at computedAt.")
class CaseSla:
    state: str | None
    calendar: str = strawberry.field(description="The fingerprint of the business calendar the clocks count in.")
    computed_at: datetime
    first_response: SlaClock
    resolution: SlaClock


@strawberry.type(description="One entry of a case's history (every change is one).")
class CaseEventNode:
    id: str
    at: datetime
    actor: str
    kind: str = strawberry.field(description="created, updated, assigned, commented, status_changed or linked.")
    data: JSON


@strawberry.type(name="Case", description="A service case of a customer, as it stands.")
class CaseNode:
    id: strawberry.ID
    customer_id: str = strawberry.field(description="The customer holding the case's record now.")
    record: str = strawberry.field(description="The record the case hangs off (masked by role).")
    type: str
    priority: str
    channel: str
    subject: str
    description: str | None
    status: str
    assignee: str | None
    team: str | None
    order_id: str | None
    transaction_id: str | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reopened: int
    comments: int
    version: int
    sla_state: str | None = strawberry.field(description="The worst state of its clocks.")
    first_response_due: datetime | None
    resolution_due: datetime | None
    sla: CaseSla | None = strawberry.field(description="Both clocks (one case read; null in lists).")
    history: list[CaseEventNode] | None = strawberry.field(description="Every change (one case read; null in lists).")

    @classmethod
    def of(cls, doc: dict[str, Any]) -> CaseNode:
        sla = doc.get("sla")
        state: str | None = sla["state"] if sla else doc.get("sla_state")
        first_due = _at(sla["first_response"]["due_at"] if sla else doc.get("first_response_due"))
        resolution_due = _at(sla["resolution"]["due_at"] if sla else doc.get("resolution_due"))
        return cls(
            id=strawberry.ID(doc["id"]),
            customer_id=doc["customer_id"],
            record=doc["record"],
            type=doc["type"],
            priority=doc["priority"],
            channel=doc["channel"],
            subject=doc["subject"],
            description=doc["description"],
            status=doc["status"],
            assignee=doc["assignee"],
            team=doc["team"],
            order_id=doc["order_id"],
            transaction_id=doc["transaction_id"],
            created_at=datetime.fromisoformat(doc["created_at"]),
            updated_at=datetime.fromisoformat(doc["updated_at"]),
            first_response_at=_at(doc["first_response_at"]),
            resolved_at=_at(doc["resolved_at"]),
            closed_at=_at(doc["closed_at"]),
            reopened=doc["reopened"],
            comments=doc["comments"],
            version=doc["version"],
            sla=None
            if not sla
            else CaseSla(
                state=sla["state"],
                calendar=sla["calendar"],
                computed_at=datetime.fromisoformat(sla["computed_at"]),
                first_response=SlaClock.of(sla["first_response"]),
                resolution=SlaClock.of(sla["resolution"]),
            ),
            history=None
            if "history" not in doc
            else [
                CaseEventNode(
                    id=e["id"], at=datetime.fromisoformat(e["at"]), actor=e["actor"], kind=e["kind"], data=e["data"]
                )
                for e in doc["history"]
            ],
            sla_state=state,
            first_response_due=first_due,
            resolution_due=resolution_due,
        )


@strawberry.type(description="One page of cases.")
class CasePage:
    cases: list[CaseNode]
    page_info: PageInfo


@strawberry.input(description="A new case; the agent opening it is the signed-in principal.")
class OpenCaseInput:
    customer_id: strawberry.ID
    type: str
    priority: str
    channel: str
    subject: str
    description: str | None = None
    team: str | None = None
    assignee: str | None = None
    order_id: str | None = strawberry.field(default=None, description="An order of the customer the case is about.")
    transaction_id: str | None = None
    event_id: str | None = strawberry.field(default=None, description="Idempotency key (the same id opens once).")


@strawberry.input(description="The fields of a case to change (at least one).")
class UpdateCaseInput:
    type: str | None = None
    priority: str | None = None
    channel: str | None = None
    subject: str | None = None
    description: str | None = None


@strawberry.type
class CasesQuery:
    @strawberry.field(name="case", description="One case with its history and SLA clocks at `at` (default now).")
    async def case_(self, info: Info, id: strawberry.ID, at: datetime | None = None) -> CaseNode:
        ctx = info.context
        doc = await cases_service.read_case(service=ctx.service, who=ctx.principal, case_id=str(id), at=at)
        return CaseNode.of(doc)

    @strawberry.field(description="Cases by customer, assignee, team or status; ordered by SLA due time (default).")
    async def cases(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        assignee: str | None = None,
        team: str | None = None,
        status: list[str] | None = None,
        order: str = "due",
        first: int = 20,
        after: str | None = None,
    ) -> CasePage:
        ctx = info.context
        doc = await cases_service.list_cases(
            service=ctx.service,
            who=ctx.principal,
            customer_id=None if customer_id is None else str(customer_id),
            assignee=assignee,
            team=team,
            statuses=status,
            order=order,
            first=first,
            after=after,
        )
        return CasePage(cases=[CaseNode.of(c) for c in doc["cases"]], page_info=page_info(doc["next_cursor"]))


async def _change(
    info: Info, case_id: strawberry.ID, kind: str, data: dict[str, Any], event_id: str | None
) -> CaseNode:
    ctx = info.context
    doc = await cases_service.change_case(
        service=ctx.service, who=ctx.principal, case_id=str(case_id), kind=kind, data=data, event_id=event_id
    )
    return CaseNode.of(doc)


@strawberry.type
class CasesMutation:
    @strawberry.mutation(description="Open a case for a customer.")
    async def open_case(self, info: Info, input: OpenCaseInput) -> CaseNode:
        ctx = info.context
        data = CaseInput(
            customer_id=str(input.customer_id),
            type=input.type,
            priority=input.priority,
            channel=input.channel,
            subject=input.subject,
            description=input.description,
            team=input.team,
            assignee=input.assignee,
            order_id=input.order_id,
            transaction_id=input.transaction_id,
            event_id=input.event_id,
        )
        return CaseNode.of(await cases_service.open_case(service=ctx.service, who=ctx.principal, data=data))

    @strawberry.mutation(description="Change a case's type, priority, channel, subject or description.")
    async def update_case(
        self, info: Info, case_id: strawberry.ID, input: UpdateCaseInput, event_id: str | None = None
    ) -> CaseNode:
        data = {k: v for k, v in vars(input).items() if v is not None}
        return await _change(info, case_id, "updated", data, event_id)

    @strawberry.mutation(description="Assign a case to a person and/or a team (an empty string unassigns).")
    async def assign_case(
        self,
        info: Info,
        case_id: strawberry.ID,
        assignee: str | None = None,
        team: str | None = None,
        event_id: str | None = None,
    ) -> CaseNode:
        data = {k: (v or None) for k, v in (("assignee", assignee), ("team", team)) if v is not None}
        return await _change(info, case_id, "assigned", data, event_id)

    @strawberry.mutation(description="Comment on a case: internal (staff only) or visible to the customer.")
    async def comment_case(
        self, info: Info, case_id: strawberry.ID, body: str, visibility: str = "internal", event_id: str | None = None
    ) -> CaseNode:
        return await _change(info, case_id, "commented", {"body": body, "visibility": visibility}, event_id)

    @strawberry.mutation(description="Move a case to another status (the allowed transitions only).")
    async def change_case_status(
        self, info: Info, case_id: strawberry.ID, to: str, reason: str | None = None, event_id: str | None = None
    ) -> CaseNode:
        data: dict[str, Any] = {"to": to} if reason is None else {"to": to, "reason": reason}
        return await _change(info, case_id, "status_changed", data, event_id)

    @strawberry.mutation(description="Link a case to an order and/or a transaction of its customer.")
    async def link_case(
        self,
        info: Info,
        case_id: strawberry.ID,
        order_id: str | None = None,
        transaction_id: str | None = None,
        event_id: str | None = None,
    ) -> CaseNode:
        data = {k: v for k, v in (("order_id", order_id), ("transaction_id", transaction_id)) if v is not None}
        return await _change(info, case_id, "linked", data, event_id)
