"""REST KYC: loan applications for applicants (their own) and for KYC staff.

Applicants (an applicant session, ``Bearer c360a_...``):

- ``POST /v1/kyc/applications``: start a draft (201); ``PATCH /v1/kyc/applications/{id}``: change it;
- ``PUT /v1/kyc/applications/{id}/documents/{doc_type}``: upload a document, the raw bytes as the body
  (``Content-Type`` the declared type; ``?filename=&expires_on=&document_id=``; at most 10 MB; 201);
- ``POST /v1/kyc/applications/{id}/submit``: submit (the automated checks run).

Both (an applicant sees only their own, without screening, risk or tasks):

- ``GET /v1/kyc/applications[?status=&customer_id=&first=&after=]``, ``GET /v1/kyc/applications/{id}``;
- ``GET /v1/kyc/applications/{id}/documents/{document_id}/content[?version=]``: the document itself.

Staff: ``GET /v1/kyc/tasks?role=&assignee=``; ``POST /v1/kyc/applications/{id}/tasks/{task_id}/complete``
``{outcome, reason}`` and ``.../assign`` ``{assignee}``; ``POST /v1/kyc/applications/{id}/request-info``
``{reason}``; ``GET /v1/kyc/report`` (CSV). Bad input is a 400/422 problem, an illegal move or a
maker-checker breach a 409, an upload the checks refuse a 422 with its reason.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from c360.connectors.documents.content import MAX_DOCUMENT_BYTES
from c360.graph.errors import InvalidInputError
from c360.streams.kyc_documents import Upload
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from . import kyc_service
from .http import Authenticator, JSONBytes, problem_doc
from .service import ProfileService

_APP = Path(max_length=64, description="The application id.")
_TASK = Path(max_length=64, description="The task id.")
_STATUS = Query(default=None, description="Statuses to list; repeat the parameter for several.")
_EXPIRES = Query(default=None, description="The document's expiry date, YYYY-MM-DD.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Entered(_Body):
    """What the applicant enters about themselves (the PAN is sealed in the vault; only its mask is kept)."""

    full_name: str | None = Field(default=None, max_length=200)
    date_of_birth: str | None = Field(default=None, max_length=10, description="YYYY-MM-DD.")
    pan: str | None = Field(default=None, max_length=16)
    mobile: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(default=None, max_length=500)
    nationality: str | None = Field(default=None, max_length=64)
    pep: str | None = Field(default=None, max_length=3, description="yes if a politically exposed person.")


class StartApplication(_Body):
    """A new application."""

    product: str = Field(default="auto_loan", max_length=64)
    amount: str = Field(max_length=20, description="The amount asked for, a decimal string.")
    entered: Entered


class ChangeApplication(_Body):
    """What to change (a draft, or an application sent back for more information)."""

    product: str | None = Field(default=None, max_length=64)
    amount: str | None = Field(default=None, max_length=20)
    entered: Entered | None = None


class Decision(_Body):
    """A task's outcome and why."""

    outcome: str = Field(max_length=64)
    reason: str = Field(min_length=1, max_length=2000)


class Assignment(_Body):
    """Who works a task (null: back to the role's queue)."""

    assignee: str | None = Field(default=None, max_length=200)


class InfoRequest(_Body):
    """What the applicant must add."""

    reason: str = Field(min_length=1, max_length=2000)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Bad input: a bad field, amount, date, outcome or cursor"),
    401: problem_doc("No or invalid credentials"),
    403: problem_doc("The role may not do this"),
    404: problem_doc("No such application, task or document (or not the applicant's own)"),
    409: problem_doc("A move the workflow does not allow, or the verifier approving (maker-checker)"),
    413: problem_doc("A document over 10 MB"),
    422: problem_doc("A body or parameter missing, unknown or out of bounds; a document refused by its checks"),
    503: problem_doc("The store or the audit trail cannot answer now: retry"),
}


async def _body(request: Request) -> bytes:
    """The request body, at most 10 MB (read in chunks; a larger one is refused before it is all read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(f"a document may be at most {MAX_DOCUMENT_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise InvalidInputError(f"a document may be at most {MAX_DOCUMENT_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def kyc_router(*, service: ProfileService, authenticate: Authenticator) -> APIRouter:
    """The KYC routes over ``service``."""
    router = APIRouter(tags=["kyc"], responses=_RESPONSES)

    @router.post("/v1/kyc/applications", status_code=201, response_model=None)
    async def start(body: StartApplication, request: Request) -> JSONBytes:
        """Start a draft application (applicants)."""
        who = authenticate(request)
        entered = body.entered.model_dump(exclude_none=True)
        doc = await kyc_service.start_application(
            service=service, who=who, product=body.product, amount=body.amount, entered=entered
        )
        return JSONBytes(doc, status_code=201)

    @router.get("/v1/kyc/applications", response_model=None)
    async def list_applications(
        request: Request,
        status: list[str] | None = _STATUS,
        customer_id: str | None = Query(default=None, max_length=200),
        first: int = Query(default=20, ge=1, le=100),
        after: str | None = Query(default=None, max_length=500),
    ) -> JSONBytes:
        """A page of applications, newest first (an applicant: their own)."""
        who = authenticate(request)
        doc = await kyc_service.list_applications(
            service=service, who=who, statuses=status, customer_id=customer_id, first=first, after=after
        )
        return JSONBytes(doc)

    @router.get("/v1/kyc/applications/{application_id}", response_model=None)
    async def read(request: Request, application_id: str = _APP, history: bool = Query(default=False)) -> JSONBytes:
        """One application (staff may ask for its history)."""
        who = authenticate(request)
        return JSONBytes(
            await kyc_service.read_application(service=service, who=who, application_id=application_id, history=history)
        )

    @router.patch("/v1/kyc/applications/{application_id}", response_model=None)
    async def change(body: ChangeApplication, request: Request, application_id: str = _APP) -> JSONBytes:
        """Change the product, amount or entered details (the applicant, while it is theirs to change)."""
        who = authenticate(request)
        changes: dict[str, Any] = body.model_dump(exclude_none=True)
        return JSONBytes(
            await kyc_service.change_application(
                service=service, who=who, application_id=application_id, changes=changes
            )
        )

    @router.put("/v1/kyc/applications/{application_id}/documents/{doc_type}", status_code=201, response_model=None)
    async def upload(
        request: Request,
        application_id: str = _APP,
        doc_type: str = Path(max_length=32),
        filename: str | None = Query(default=None, max_length=200),
        expires_on: date | None = _EXPIRES,
        document_id: str | None = Query(default=None, max_length=64, description="A new version of this document."),
    ) -> JSONBytes:
        """Upload a document: the raw bytes as the body, judged by their content (PDF, JPEG, PNG)."""
        who = authenticate(request)
        data = await _body(request)
        declared = (request.headers.get("content-type") or "").split(";")[0].strip() or None
        upload = Upload(doc_type, data, filename, declared, expires_on, document_id)
        doc = await kyc_service.upload_document(service=service, who=who, application_id=application_id, upload=upload)
        return JSONBytes(doc, status_code=201)

    @router.post("/v1/kyc/applications/{application_id}/submit", response_model=None)
    async def submit(request: Request, application_id: str = _APP) -> JSONBytes:
        """Submit the application: the automated checks run and the officers' tasks open."""
        who = authenticate(request)
        return JSONBytes(await kyc_service.submit_application(service=service, who=who, application_id=application_id))

    @router.get("/v1/kyc/applications/{application_id}/documents/{document_id}/content", response_model=None)
    async def content(
        request: Request,
        application_id: str = _APP,
        document_id: str = Path(max_length=64),
        version: int | None = Query(default=None, ge=1),
    ) -> Response:
        """A document's content as uploaded."""
        who = authenticate(request)
        doc, data = await kyc_service.read_document(
            service=service, who=who, application_id=application_id, document_id=document_id, version=version
        )
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{doc.document_id}-v{doc.version}"',
        }
        return Response(data, media_type=doc.media_type, headers=headers)

    @router.get("/v1/kyc/tasks", response_model=None)
    async def tasks(
        request: Request,
        role: str | None = Query(default=None, max_length=64),
        assignee: str | None = Query(default=None, max_length=200),
        open_only: bool = Query(default=True),
        first: int = Query(default=20, ge=1, le=100),
        after: str | None = Query(default=None, max_length=500),
    ) -> JSONBytes:
        """Workflow tasks, earliest due first."""
        who = authenticate(request)
        doc = await kyc_service.list_tasks(
            service=service, who=who, role=role, assignee=assignee, open_only=open_only, first=first, after=after
        )
        return JSONBytes(doc)

    @router.post("/v1/kyc/applications/{application_id}/tasks/{task_id}/complete", response_model=None)
    async def complete(body: Decision, request: Request, application_id: str = _APP, task_id: str = _TASK) -> JSONBytes:
        """Decide a task; the application moves on."""
        who = authenticate(request)
        doc = await kyc_service.complete_task(
            service=service,
            who=who,
            application_id=application_id,
            task_id=task_id,
            outcome=body.outcome,
            reason=body.reason,
        )
        return JSONBytes(doc)

    @router.post("/v1/kyc/applications/{application_id}/tasks/{task_id}/assign", response_model=None)
    async def assign(body: Assignment, request: Request, application_id: str = _APP, task_id: str = _TASK) -> JSONBytes:
        """Assign a task to a person (null: back to the role's queue)."""
        who = authenticate(request)
        doc = await kyc_service.assign_task(
            service=service, who=who, application_id=application_id, task_id=task_id, assignee=body.assignee
        )
        return JSONBytes(doc)

    @router.post("/v1/kyc/applications/{application_id}/request-info", response_model=None)
    async def request_info(body: InfoRequest, request: Request, application_id: str = _APP) -> JSONBytes:
        """Send the application back to the applicant with what is missing."""
        who = authenticate(request)
        return JSONBytes(
            await kyc_service.request_info(service=service, who=who, application_id=application_id, reason=body.reason)
        )

    @router.get("/v1/kyc/report", response_model=None)
    async def report(request: Request) -> Response:
        """The regulatory report: applications by status and risk category with their turnaround (CSV)."""
        who = authenticate(request)
        text = await kyc_service.report_csv(service=service, who=who)
        return Response(text, media_type="text/csv", headers={"Cache-Control": "no-store"})

    return router
