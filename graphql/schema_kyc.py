# ruff: noqa: D101, D102
# mypy: disallow-untyped-decorators=False
"""The KYC domain of the schema: loan applications, their documents and tasks, and the decisions on them.

Applicants (an applicant session) read and change their own applications; uploads are REST only
(``PUT /v1/kyc/applications/{id}/documents/{type}``: raw bytes are not GraphQL's strength). Staff read
applications with their checks, screening hits, risk, tasks and history, and decide tasks.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from . import kyc_service
from .schema_common import Info, PageInfo, page_info


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@strawberry.type(description="One version of an uploaded document (its metadata; the content is REST only).")
class KycDocument:
    document_id: str
    doc_type: str
    version: int
    checksum: str = strawberry.field(description="SHA-256 of the bytes as uploaded.")
    size: int
    media_type: str = strawberry.field(description="As judged by the bytes: application/pdf, image/jpeg, image/png.")
    filename: str | None
    expires_on: date | None
    uploaded_at: datetime | None
    check: str | None = strawberry.field(
        description="passed, failed or manual_review (its fields against the entered)."
    )
    purged_at: datetime | None = strawberry.field(description="When retention removed its content (metadata stays).")

    @classmethod
    def of(cls, doc: dict[str, Any]) -> KycDocument:
        expires = doc["expires_on"]
        return cls(
            document_id=doc["document_id"],
            doc_type=doc["doc_type"],
            version=doc["version"],
            checksum=doc["checksum"],
            size=doc["size"],
            media_type=doc["media_type"],
            filename=doc["filename"],
            expires_on=None if expires is None else date.fromisoformat(expires),
            uploaded_at=_at(doc["uploaded_at"]),
            check=doc["check"],
            purged_at=_at(doc["purged_at"]),
        )


@strawberry.type(description="A workflow task: who works it, by when, and who decided what and why.")
class KycTask:
    id: strawberry.ID
    application_id: str
    kind: str = strawberry.field(description="verify_documents, review_screening_hit, enhanced_due_diligence, approve.")
    role: str
    assignee: str | None
    priority: str
    status: str
    subject: str | None
    opened_at: datetime | None
    due_at: datetime | None
    escalation_level: int
    escalated_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    outcome: str | None
    reason: str | None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> KycTask:
        return cls(
            id=strawberry.ID(doc["id"]),
            application_id=doc["application_id"],
            kind=doc["kind"],
            role=doc["role"],
            assignee=doc["assignee"],
            priority=doc["priority"],
            status=doc["status"],
            subject=doc["subject"],
            opened_at=_at(doc["opened_at"]),
            due_at=_at(doc["due_at"]),
            escalation_level=doc["escalation_level"],
            escalated_at=_at(doc["escalated_at"]),
            completed_at=_at(doc["completed_at"]),
            completed_by=doc["completed_by"],
            outcome=doc["outcome"],
            reason=doc["reason"],
        )


@strawberry.type(description="A loan application as the caller may see it (applicants: their own, less).")
class KycApplication:
    id: strawberry.ID
    status: str
    product: str
    amount: str
    currency: str
    entered: JSON = strawberry.field(description="What the applicant entered, masked by role.")
    pan: str | None = strawberry.field(description="In full with read_kyc_pan, else masked.")
    aadhaar: str | None = strawberry.field(description="In full with read_kyc_aadhaar, else XXXX XXXX 1234.")
    created_at: datetime | None
    updated_at: datetime | None
    submitted_at: datetime | None
    decided_at: datetime | None
    documents: list[KycDocument]
    version: int
    message: str | None = strawberry.field(description="Applicants: why it was sent back or rejected.")
    customer_id: str | None = strawberry.field(description="Staff: the customer the applicant is.")
    record: str | None
    applicant_id: str | None
    verified_by: str | None
    decided_by: str | None
    decision_reason: str | None
    verifications: JSON | None = strawberry.field(description="Staff: every check with result, confidence, by, at.")
    screening_hits: JSON | None
    risk: JSON | None
    tasks: list[KycTask] | None
    history: JSON | None = strawberry.field(description="Staff, one application read: who did what and when.")

    @classmethod
    def of(cls, doc: dict[str, Any]) -> KycApplication:
        tasks = doc.get("tasks")
        return cls(
            id=strawberry.ID(doc["id"]),
            status=doc["status"],
            product=doc["product"],
            amount=doc["amount"],
            currency=doc["currency"],
            entered=doc["entered"],
            pan=doc["pan"],
            aadhaar=doc["aadhaar"],
            created_at=_at(doc["created_at"]),
            updated_at=_at(doc["updated_at"]),
            submitted_at=_at(doc["submitted_at"]),
            decided_at=_at(doc["decided_at"]),
            documents=[KycDocument.of(d) for d in doc["documents"]],
            version=doc["version"],
            message=doc.get("message"),
            customer_id=doc.get("customer_id"),
            record=doc.get("record"),
            applicant_id=doc.get("applicant_id"),
            verified_by=doc.get("verified_by"),
            decided_by=doc.get("decided_by"),
            decision_reason=doc.get("decision_reason"),
            verifications=doc.get("verifications"),
            screening_hits=doc.get("screening_hits"),
            risk=doc.get("risk"),
            tasks=None if tasks is None else [KycTask.of(t) for t in tasks],
            history=doc.get("history"),
        )


@strawberry.type(description="One page of applications.")
class KycApplicationPage:
    applications: list[KycApplication]
    page_info: PageInfo


@strawberry.type(description="One page of tasks, earliest due first.")
class KycTaskPage:
    tasks: list[KycTask]
    page_info: PageInfo


@strawberry.input(description="What an applicant enters about themselves.")
class KycEnteredInput:
    full_name: str | None = None
    date_of_birth: str | None = strawberry.field(default=None, description="YYYY-MM-DD.")
    pan: str | None = None
    mobile: str | None = None
    email: str | None = None
    address: str | None = None
    nationality: str | None = None
    pep: str | None = strawberry.field(default=None, description="yes if a politically exposed person.")


def _entered(value: KycEnteredInput | None) -> dict[str, Any]:
    return {} if value is None else {k: v for k, v in vars(value).items() if v is not None}


@strawberry.type
class KycQuery:
    @strawberry.field(description="One loan application (an applicant: their own; staff: with its history).")
    async def kyc_application(self, info: Info, id: strawberry.ID) -> KycApplication:
        ctx = info.context
        doc = await kyc_service.read_application(
            service=ctx.service, who=ctx.principal, application_id=str(id), history=True
        )
        return KycApplication.of(doc)

    @strawberry.field(description="Loan applications, newest first (an applicant: their own).")
    async def kyc_applications(
        self,
        info: Info,
        status: list[str] | None = None,
        customer_id: strawberry.ID | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> KycApplicationPage:
        ctx = info.context
        doc = await kyc_service.list_applications(
            service=ctx.service,
            who=ctx.principal,
            statuses=status,
            customer_id=None if customer_id is None else str(customer_id),
            first=first,
            after=after,
        )
        apps = [KycApplication.of(a) for a in doc["applications"]]
        return KycApplicationPage(applications=apps, page_info=page_info(doc["next_cursor"]))

    @strawberry.field(description="Workflow tasks by role or assignee, earliest due first.")
    async def kyc_tasks(
        self,
        info: Info,
        role: str | None = None,
        assignee: str | None = None,
        open_only: bool = True,
        first: int = 20,
        after: str | None = None,
    ) -> KycTaskPage:
        ctx = info.context
        doc = await kyc_service.list_tasks(
            service=ctx.service,
            who=ctx.principal,
            role=role,
            assignee=assignee,
            open_only=open_only,
            first=first,
            after=after,
        )
        return KycTaskPage(tasks=[KycTask.of(t) for t in doc["tasks"]], page_info=page_info(doc["next_cursor"]))


@strawberry.type
class KycMutation:
    @strawberry.mutation(description="Start a draft loan application (applicants).")
    async def start_kyc_application(
        self, info: Info, amount: str, entered: KycEnteredInput, product: str = "auto_loan"
    ) -> KycApplication:
        ctx = info.context
        doc = await kyc_service.start_application(
            service=ctx.service, who=ctx.principal, product=product, amount=amount, entered=_entered(entered)
        )
        return KycApplication.of(doc)

    @strawberry.mutation(description="Change one's draft, or an application sent back (applicants).")
    async def update_kyc_application(
        self,
        info: Info,
        id: strawberry.ID,
        product: str | None = None,
        amount: str | None = None,
        entered: KycEnteredInput | None = None,
    ) -> KycApplication:
        ctx = info.context
        changes: dict[str, Any] = {k: v for k, v in (("product", product), ("amount", amount)) if v is not None}
        if entered is not None:
            changes["entered"] = _entered(entered)
        doc = await kyc_service.change_application(
            service=ctx.service, who=ctx.principal, application_id=str(id), changes=changes
        )
        return KycApplication.of(doc)

    @strawberry.mutation(description="Submit one's application: the automated checks run (applicants).")
    async def submit_kyc_application(self, info: Info, id: strawberry.ID) -> KycApplication:
        ctx = info.context
        doc = await kyc_service.submit_application(service=ctx.service, who=ctx.principal, application_id=str(id))
        return KycApplication.of(doc)

    @strawberry.mutation(description="Decide a task with its reason; the application moves on.")
    async def complete_kyc_task(
        self, info: Info, application_id: strawberry.ID, task_id: strawberry.ID, outcome: str, reason: str
    ) -> KycApplication:
        ctx = info.context
        doc = await kyc_service.complete_task(
            service=ctx.service,
            who=ctx.principal,
            application_id=str(application_id),
            task_id=str(task_id),
            outcome=outcome,
            reason=reason,
        )
        return KycApplication.of(doc)

    @strawberry.mutation(description="Assign a task to a person (null: back to its role's queue).")
    async def assign_kyc_task(
        self, info: Info, application_id: strawberry.ID, task_id: strawberry.ID, assignee: str | None = None
    ) -> KycApplication:
        ctx = info.context
        doc = await kyc_service.assign_task(
            service=ctx.service,
            who=ctx.principal,
            application_id=str(application_id),
            task_id=str(task_id),
            assignee=assignee,
        )
        return KycApplication.of(doc)

    @strawberry.mutation(description="Send an application back to the applicant with what is missing.")
    async def request_kyc_info(self, info: Info, application_id: strawberry.ID, reason: str) -> KycApplication:
        ctx = info.context
        doc = await kyc_service.request_info(
            service=ctx.service, who=ctx.principal, application_id=str(application_id), reason=reason
        )
        return KycApplication.of(doc)
