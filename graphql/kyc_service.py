"""KYC: loan applications for applicants and staff, each call authorised, audited and masked by role.

Applicants act on their own applications only (the principal's subject is the applicant id): any other
application is answered as not found, so ids cannot be probed. Applicants never see screening hits, risk,
tasks or verification details (tipping off a listed person is itself an offence); staff see them as their
role's actions allow. The entered details follow the profile fields' masking rules (``full_name`` the
``last_name`` rule, ``mobile`` the ``phone`` rule, ``address`` the ``address_line1`` rule); the PAN is shown
in full only to roles that may ``read_kyc_pan`` and the Aadhaar number only to roles that may
``read_kyc_aadhaar`` (both come from the vault); everyone else sees their masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from c360.graph.errors import ConfigError, InvalidInputError, NotFoundError
from c360.graph.kyc import Application, DocumentRef, KycEvent, Task, applicant_actor
from c360.graph.kyc_codecs import document_to_json
from c360.graph.vault import mask
from c360.streams.kyc_desk import KycDesk
from c360.streams.kyc_documents import Upload
from c360.streams.kyc_events import vault_owner
from c360.streams.kyc_ops import applications_report

from .audit import mark_audited
from .principal import ForbiddenError, Principal
from .service import ProfileService, check_first

APPLICANT = "applicant"
#: what a document's JSON holds that no caller is shown
_DOCUMENT_PRIVATE = frozenset({"storage_key", "check_details", "uploaded_by", "purge_reason"})
#: the action completing each kind of task needs
TASK_ACTION = {
    "verify_documents": "verify_kyc_documents",
    "review_screening_hit": "review_kyc_screening",
    "enhanced_due_diligence": "review_kyc_screening",
    "approve": "approve_kyc_application",
}
#: the profile field whose rule masks each entered field
_FIELD_OF = {
    "full_name": "last_name",
    "date_of_birth": "date_of_birth",
    "email": "email",
    "mobile": "phone",
    "address": "address_line1",
    "nationality": "country",
}


def _desk(service: ProfileService) -> KycDesk:
    if service.kyc is None:
        raise ConfigError("this API has no KYC desk configured")
    return service.kyc


def is_applicant(who: Principal) -> bool:
    """Whether the caller is an applicant (acting on their own applications only)."""
    return who.role == APPLICANT


def _own(who: Principal, app: Application) -> Application:
    """``app`` if the caller may act on it: staff on any, an applicant on their own (else not found)."""
    if is_applicant(who) and app.applicant_id != who.subject:
        raise NotFoundError(f"no application {app.id}")
    return app


def _time(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def document_json(doc: DocumentRef) -> dict[str, Any]:
    """One version of a document: its metadata (never its content, storage key or check details)."""
    return {k: v for k, v in document_to_json(doc).items() if k not in _DOCUMENT_PRIVATE}


def task_json(task: Task) -> dict[str, Any]:
    """One workflow task with who decided what and why."""
    return {
        "id": task.id,
        "application_id": task.application_id,
        "kind": task.kind,
        "role": task.role,
        "assignee": task.assignee,
        "priority": task.priority,
        "status": task.status,
        "subject": task.subject,
        "opened_at": _time(task.opened_at),
        "due_at": _time(task.due_at),
        "escalation_level": task.escalation_level,
        "escalated_at": _time(task.escalated_at),
        "completed_at": _time(task.completed_at),
        "completed_by": task.completed_by,
        "outcome": task.outcome,
        "reason": task.reason,
    }


def _identifiers(service: ProfileService, role: str, app: Application) -> dict[str, str | None]:
    """The PAN and Aadhaar number as ``role`` may see them (full only with read_kyc_pan / read_kyc_aadhaar)."""
    desk = _desk(service)
    out: dict[str, str | None] = {"pan": app.entered.get("pan"), "aadhaar": None}
    for kind, action in (("pan", "read_kyc_pan"), ("aadhaar", "read_kyc_aadhaar")):
        item = service.store.get_secret(vault_owner(app.id), kind)
        if item is None:
            continue
        value = desk.vault.open_item(item)
        out[kind] = value if service.policy.can(role, action) else mask(kind, value)
    return out


def application_json(service: ProfileService, who: Principal, app: Application) -> dict[str, Any]:
    """An application as the caller may see it."""
    role = who.role
    entered: dict[str, Any] = {}
    for name, value in app.entered.items():
        if name == "pan":
            continue
        field = _FIELD_OF.get(name)
        shown = value if is_applicant(who) or field is None else service.policy.mask(role, field, value)
        if shown is not None:
            entered[name] = shown.isoformat() if hasattr(shown, "isoformat") else shown
    ids = _identifiers(service, role, app)
    out: dict[str, Any] = {
        "id": app.id,
        "status": app.status,
        "product": app.product,
        "amount": str(app.amount),
        "currency": app.currency,
        "entered": entered,
        "pan": ids["pan"],
        "aadhaar": ids["aadhaar"],
        "created_at": _time(app.created_at),
        "updated_at": _time(app.updated_at),
        "submitted_at": _time(app.submitted_at),
        "decided_at": _time(app.decided_at),
        "documents": [document_json(d) for d in app.documents],
        "version": app.version,
    }
    if is_applicant(who):
        out["message"] = app.status_reason if app.status in ("more_info_requested", "rejected") else None
        return out
    out.update(
        customer_id=app.customer_id,
        record=service.policy.mask_uid(role, app.record_uid),
        applicant_id=app.applicant_id,
        verified_by=app.verified_by,
        decided_by=app.decided_by,
        decision_reason=app.decision_reason,
        verifications=[v.to_json() for v in app.verifications],
        screening_hits=[
            {"list_name": h.list_name, "entry_key": h.entry_key, "score": h.score, "suppressed": h.suppressed}
            for h in app.screening_hits
        ],
        risk=None
        if app.risk is None
        else {
            "score": app.risk.score,
            "category": app.risk.category,
            "reasons": list(app.risk.reasons),
            "rekyc_due": _time(app.risk.rekyc_due),
            "assessed_at": _time(app.risk.assessed_at),
        },
        tasks=[task_json(t) for t in app.tasks],
    )
    return out


def history_json(service: ProfileService, who: Principal, events: list[KycEvent]) -> list[dict[str, Any]]:
    """The application's history for staff: who did what when (entered details and check evidence left out)."""
    rows = []
    for e in events:
        data = {k: v for k, v in e.data.items() if k not in ("entered", "verification", "details")}
        if "record_uid" in data:
            data["record_uid"] = service.policy.mask_uid(who.role, str(data["record_uid"]))
        if e.kind == "verified":
            v = e.data["verification"]
            data = {"check": v.get("check"), "result": v.get("result"), "by": v.get("by")}
        rows.append({"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "data": data})
    return rows


async def start_application(
    *, service: ProfileService, who: Principal, product: str, amount: str, entered: Mapping[str, Any]
) -> dict[str, Any]:
    """An applicant starts a draft application (the applicant becomes or is matched to a customer)."""
    if not is_applicant(who):  # whatever the role may do otherwise: a denial, audited as one
        refused = ForbiddenError("only applicants start applications (staff work them)")
        await service.record(who, "apply_kyc", who.subject, "denied", str(refused))
        mark_audited(refused)
        raise refused

    def work() -> dict[str, Any]:
        app = _desk(service).start(applicant_id=who.subject, product=product, amount=amount, entered=entered)
        return application_json(service, who, app)

    return await service.audited(who, "apply_kyc", who.subject, lambda: service.run(work), detail=product[:32])


async def read_application(
    *, service: ProfileService, who: Principal, application_id: str, history: bool = False
) -> dict[str, Any]:
    """One application (an applicant: their own), with its history for staff when asked."""
    action = "read_own_application" if is_applicant(who) else "read_kyc_applications"

    def work() -> dict[str, Any]:
        desk = _desk(service)
        app = _own(who, desk.get(application_id))
        out = application_json(service, who, app)
        if history and not is_applicant(who):
            out["history"] = history_json(service, who, service.store.kyc_events(app.id))
        return out

    return await service.audited(who, action, application_id, lambda: service.read(work))


async def list_applications(
    *,
    service: ProfileService,
    who: Principal,
    statuses: list[str] | None = None,
    customer_id: str | None = None,
    first: int = 20,
    after: str | None = None,
) -> dict[str, Any]:
    """A page of applications, newest first (an applicant: their own)."""
    action = "read_own_application" if is_applicant(who) else "read_kyc_applications"

    def work() -> dict[str, Any]:
        page = service.store.list_applications(
            applicant_id=who.subject if is_applicant(who) else None,
            customer_id=None if is_applicant(who) else customer_id,
            statuses=statuses,
            first=check_first(first),
            after=after,
        )
        return {
            "applications": [application_json(service, who, a) for a in page.applications],
            "next_cursor": page.next_cursor,
        }

    return await service.audited(who, action, customer_id, lambda: service.read(work))


async def change_application(
    *, service: ProfileService, who: Principal, application_id: str, changes: Mapping[str, Any]
) -> dict[str, Any]:
    """The applicant changes their draft (or the application sent back to them)."""

    def work() -> dict[str, Any]:
        desk = _desk(service)
        app = _own(who, desk.get(application_id))
        if not is_applicant(who):
            raise ForbiddenError("only the applicant changes what they entered")
        return application_json(service, who, desk.update(app.id, actor=applicant_actor(who.subject), changes=changes))

    return await service.audited(who, "apply_kyc", application_id, lambda: service.run(work), detail="update")


async def submit_application(*, service: ProfileService, who: Principal, application_id: str) -> dict[str, Any]:
    """The applicant submits: the automated checks run and the tasks open."""

    def work() -> dict[str, Any]:
        desk = _desk(service)
        app = _own(who, desk.get(application_id))
        if not is_applicant(who):
            raise ForbiddenError("only the applicant submits their application")
        return application_json(service, who, desk.submit(app.id, actor=applicant_actor(who.subject)))

    return await service.audited(who, "apply_kyc", application_id, lambda: service.run(work), detail="submit")


async def upload_document(
    *, service: ProfileService, who: Principal, application_id: str, upload: Upload
) -> dict[str, Any]:
    """The applicant uploads a document (a new version if ``upload.document_id`` names one)."""

    def work() -> dict[str, Any]:
        desk = _desk(service)
        app = _own(who, desk.get(application_id))
        if not is_applicant(who):
            raise ForbiddenError("only the applicant uploads their documents")
        done = desk.upload(app.id, upload, actor=applicant_actor(who.subject))
        return {
            "document": document_json(done.document),
            "application": application_json(service, who, done.application),
            "seconds": {k: round(v, 3) for k, v in done.seconds.items()},
        }

    return await service.audited(
        who, "apply_kyc", application_id, lambda: service.run(work), detail=f"upload {upload.doc_type[:32]}"
    )


async def read_document(
    *, service: ProfileService, who: Principal, application_id: str, document_id: str, version: int | None = None
) -> tuple[DocumentRef, bytes]:
    """A document's content (decrypted), for staff who may read KYC documents and for its applicant."""
    action = "read_own_application" if is_applicant(who) else "read_kyc_documents"

    def work() -> tuple[DocumentRef, bytes]:
        desk = _desk(service)
        app = _own(who, desk.get(application_id))
        return desk.document(app, document_id, version)

    return await service.audited(who, action, f"{application_id}/{document_id}", lambda: service.run(work))


async def list_tasks(
    *,
    service: ProfileService,
    who: Principal,
    role: str | None = None,
    assignee: str | None = None,
    open_only: bool = True,
    first: int = 20,
    after: str | None = None,
) -> dict[str, Any]:
    """A page of workflow tasks, earliest due first (by role or assignee)."""

    def work() -> dict[str, Any]:
        page = service.store.list_tasks(
            role=role,
            assignee=assignee,
            statuses=("open",) if open_only else None,
            first=check_first(first),
            after=after,
        )
        return {"tasks": [task_json(t) for t in page.tasks], "next_cursor": page.next_cursor}

    return await service.audited(
        who, "read_kyc_applications", role or assignee, lambda: service.read(work), detail="tasks"
    )


async def complete_task(
    *, service: ProfileService, who: Principal, application_id: str, task_id: str, outcome: str, reason: str
) -> dict[str, Any]:
    """Decide a task (the decision and its reason are kept with who made it); the application moves on."""
    desk = _desk(service)

    def find() -> Task | None:
        try:
            return desk.get(application_id).task(task_id)
        except NotFoundError:
            return None

    task = await service.read(find)
    if task is None:  # answered as the role's permission allows, so that ids cannot be probed
        action = next((a for a in TASK_ACTION.values() if service.policy.can(who.role, a)), TASK_ACTION["approve"])

        async def missing() -> dict[str, Any]:
            raise NotFoundError(f"application {application_id} has no task {task_id}")

        return await service.audited(who, action, application_id, missing)
    action = TASK_ACTION[task.kind]

    def work() -> dict[str, Any]:
        done = desk.complete_task(application_id, task_id, actor=who.subject, outcome=outcome, reason=reason)
        return application_json(service, who, done)

    return await service.audited(
        who, action, application_id, lambda: service.run(work), detail=f"{task.kind} {outcome[:32]}"
    )


async def assign_task(
    *, service: ProfileService, who: Principal, application_id: str, task_id: str, assignee: str | None
) -> dict[str, Any]:
    """Give a task to a person, or back to its role's queue."""

    def work() -> dict[str, Any]:
        return application_json(
            service, who, _desk(service).assign_task(application_id, task_id, actor=who.subject, assignee=assignee)
        )

    return await service.audited(who, "assign_kyc_task", application_id, lambda: service.run(work))


async def request_info(*, service: ProfileService, who: Principal, application_id: str, reason: str) -> dict[str, Any]:
    """Send the application back to the applicant with what is missing."""

    def work() -> dict[str, Any]:
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError("say what information is needed (reason)")
        return application_json(
            service, who, _desk(service).request_info(application_id, actor=who.subject, reason=reason)
        )

    return await service.audited(
        who, "verify_kyc_documents", application_id, lambda: service.run(work), detail="request info"
    )


async def report_csv(*, service: ProfileService, who: Principal) -> str:
    """The regulatory report as CSV: applications by status and risk category, with their turnaround."""

    def work() -> str:
        return applications_report(service.store, now=_desk(service).clock()).csv()

    # a scan of every application: in a worker thread, never on the event loop
    return await service.audited(who, "read_kyc_report", None, lambda: service.run(work), detail="report")
