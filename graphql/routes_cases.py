"""REST cases: open, change, read and list service cases (the CMP UI and the case API).

- ``POST /v1/cases``: open a case (201);
- ``GET /v1/cases?customer_id=&assignee=&team=&status=&order=due|updated|created&first=&after=``: a view;
- ``GET /v1/cases/{id}[?at=]``: one case with its history and SLA clocks;
- ``PATCH /v1/cases/{id}``: change type, priority, channel, subject or description;
- ``POST /v1/cases/{id}/assignment``, ``/comments``, ``/status``, ``/links``: assign, comment, move, link.

Every change takes an optional ``event_id`` (the same id applies once). Bodies are checked strictly
(unknown keys are a 422); bad values, an illegal status change and a conflicting replay are problems
with 400 and 409 (:mod:`~c360.graphql.cases_service`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from . import cases_service
from .cases_service import CaseInput
from .http import Authenticator, JSONBytes, problem_doc
from .service import ProfileService

_ID = Path(max_length=200, description="The case id.")
_STATUS = Query(default=None, description="Statuses to list; repeat the parameter for several.")
_EVENT = Field(default=None, max_length=200, description="Idempotency key: the same id applies once.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenCase(_Body):
    """A new case."""

    customer_id: str = Field(max_length=200)
    type: str = Field(max_length=64, description="One of cases.types (complaint, service_request, ...).")
    priority: str = Field(max_length=64, description="One of cases.priorities (low, normal, high, urgent).")
    channel: str = Field(max_length=64, description="One of cases.channels (email, phone, web, ...).")
    subject: str = Field(max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    team: str | None = Field(default=None, max_length=200)
    assignee: str | None = Field(default=None, max_length=200)
    order_id: str | None = Field(default=None, max_length=200, description="An order of the customer.")
    transaction_id: str | None = Field(default=None, max_length=200, description="A transaction of the customer.")
    event_id: str | None = _EVENT


class UpdateCase(_Body):
    """Fields to change (at least one)."""

    type: str | None = Field(default=None, max_length=64)
    priority: str | None = Field(default=None, max_length=64)
    channel: str | None = Field(default=None, max_length=64)
    subject: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    event_id: str | None = _EVENT


class Assignment(_Body):
    """Who works the case: a person and/or a team; null unassigns that part."""

    assignee: str | None = Field(default=None, max_length=200)
    team: str | None = Field(default=None, max_length=200)
    event_id: str | None = _EVENT


class Comment(_Body):
    """A comment."""

    body: str = Field(max_length=20_000)
    visibility: str = Field(default="internal", description="internal (staff only) or customer.")
    event_id: str | None = _EVENT


class StatusChange(_Body):
    """A status change: new, open, in_progress, waiting_on_customer, resolved, closed (allowed moves only)."""

    to: str = Field(max_length=64)
    reason: str | None = Field(default=None, max_length=1000)
    event_id: str | None = _EVENT


class Links(_Body):
    """An order and/or a transaction of the case's customer."""

    order_id: str | None = Field(default=None, max_length=200)
    transaction_id: str | None = Field(default=None, max_length=200)
    event_id: str | None = _EVENT


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Bad input: an unknown type, priority, channel, status or order; a bad cursor or time"),
    401: problem_doc("No or invalid credentials"),
    403: problem_doc("The role may not do this"),
    404: problem_doc("No such case, customer, order or transaction"),
    409: problem_doc("A status change the rules do not allow, or an event id reused with other content"),
    422: problem_doc("A body or parameter missing, unknown or out of bounds"),
    503: problem_doc("The store or the audit trail cannot answer now: retry"),
}


def cases_router(*, service: ProfileService, authenticate: Authenticator) -> APIRouter:
    """The case routes over ``service``."""
    router = APIRouter(tags=["cases"], responses=_RESPONSES)

    async def change(request: Request, case_id: str, kind: str, body: _Body, keep_nulls: bool = False) -> JSONBytes:
        who = authenticate(request)
        fields = body.model_dump(exclude={"event_id"}, exclude_unset=keep_nulls, exclude_none=not keep_nulls)
        doc = await cases_service.change_case(
            service=service, who=who, case_id=case_id, kind=kind, data=fields, event_id=getattr(body, "event_id", None)
        )
        return JSONBytes(doc)

    @router.post("/v1/cases", status_code=201, response_model=None)
    async def open_case(body: OpenCase, request: Request) -> JSONBytes:
        """Open a case for a customer; the case with its clocks and history."""
        who = authenticate(request)
        doc = await cases_service.open_case(service=service, who=who, data=CaseInput(**body.model_dump()))
        return JSONBytes(doc, status_code=201)

    @router.get("/v1/cases", response_model=None)
    async def list_cases(
        request: Request,
        customer_id: str | None = Query(default=None, max_length=200),
        assignee: str | None = Query(default=None, max_length=200),
        team: str | None = Query(default=None, max_length=200),
        status: list[str] | None = _STATUS,
        order: str = Query(default="due", max_length=16, description="due (SLA, nearest first), updated, created."),
        first: int = Query(default=20, ge=1, le=100),
        after: str | None = Query(default=None, max_length=500),
    ) -> JSONBytes:
        """A page of cases: by customer, assignee, team or status, ordered by SLA due time (default)."""
        who = authenticate(request)
        doc = await cases_service.list_cases(
            service=service,
            who=who,
            customer_id=customer_id,
            assignee=assignee,
            team=team,
            statuses=status,
            order=order,
            first=first,
            after=after,
        )
        return JSONBytes(doc)

    @router.get("/v1/cases/{case_id}", response_model=None)
    async def get_case(
        request: Request, case_id: str = _ID, at: str | None = Query(default=None, max_length=64)
    ) -> JSONBytes:
        """One case with its history and its SLA clocks at ``at`` (default now)."""
        who = authenticate(request)
        return JSONBytes(await cases_service.read_case(service=service, who=who, case_id=case_id, at=at))

    @router.patch("/v1/cases/{case_id}", response_model=None)
    async def update_case(body: UpdateCase, request: Request, case_id: str = _ID) -> JSONBytes:
        """Change a case's type, priority, channel, subject or description."""
        return await change(request, case_id, "updated", body)

    @router.post("/v1/cases/{case_id}/assignment", response_model=None)
    async def assign_case(body: Assignment, request: Request, case_id: str = _ID) -> JSONBytes:
        """Assign the case to a person and/or a team (a key given as null unassigns it)."""
        return await change(request, case_id, "assigned", body, keep_nulls=True)

    @router.post("/v1/cases/{case_id}/comments", response_model=None)
    async def comment_case(body: Comment, request: Request, case_id: str = _ID) -> JSONBytes:
        """Comment on the case, internally or visibly to the customer."""
        return await change(request, case_id, "commented", body)

    @router.post("/v1/cases/{case_id}/status", response_model=None)
    async def change_status(body: StatusChange, request: Request, case_id: str = _ID) -> JSONBytes:
        """Move the case to another status."""
        return await change(request, case_id, "status_changed", body)

    @router.post("/v1/cases/{case_id}/links", response_model=None)
    async def link_case(body: Links, request: Request, case_id: str = _ID) -> JSONBytes:
        """Link the case to an order and/or a transaction of its customer."""
        return await change(request, case_id, "linked", body)

    return router
