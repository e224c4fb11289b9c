"""KYC of loan applications: the pure model (events, the folded application, its status rules). No I/O.

An application hangs off one source record of a customer (its anchor, ``record_uid``), so it follows
that record through merges and splits, as service cases do. Its history is an append-only list of
:class:`KycEvent`; its state is derived from them by :func:`fold` (one event at a time: :func:`advance`).
An event's data is checked strictly when it is built (keys, types, lengths); the status rules, the
maker-checker rule, document versions and task lifecycles when it is applied.

The vocabularies, the data checks, the errors and the tasks (:class:`Task`) live in
:mod:`c360.graph.kyc_tasks`; import them from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .errors import ConflictError, InvalidInputError, NotFoundError
from .kyc_tasks import (
    APPLICATION_STATUSES,
    CHECK_RESULTS,
    DOC_TYPES,
    KINDS,
    MAX_REASON,
    MEDIA_TYPES,
    REASON_REQUIRED,
    RISK_CATEGORIES,
    SCREENING_DECISIONS,
    SYSTEM_ACTOR,
    TASK_KINDS,
    TASK_PRIORITIES,
    TASK_STATUSES,
    KycTransitionError,
    MakerCheckerError,
    Task,
    apply_task_event,
    check_event_data,
    check_id,
    json_object,
    one_of,
    text,
    thaw,
)
from .models import aware
from .verification import Verification

__all__ = [
    "APPLICATION_STATUSES",
    "CHECK_RESULTS",
    "DOC_TYPES",
    "EDITABLE_STATUSES",
    "FINAL_STATUSES",
    "KINDS",
    "MEDIA_TYPES",
    "REASON_REQUIRED",
    "RISK_CATEGORIES",
    "SCREENING_DECISIONS",
    "SYSTEM_ACTOR",
    "TASK_KINDS",
    "TASK_PRIORITIES",
    "TASK_STATUSES",
    "TRANSITIONS",
    "Application",
    "DocumentRef",
    "KycEvent",
    "KycTransitionError",
    "MakerCheckerError",
    "RiskResult",
    "ScreeningDecision",
    "ScreeningHit",
    "Task",
    "advance",
    "applicant_actor",
    "check_application_id",
    "fold",
    "thaw",
]

#: Every allowed status change, from -> the statuses it may go to (approved and rejected are final).
TRANSITIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "draft": ("submitted",),
        "submitted": ("documents_verified", "more_info_requested", "rejected"),
        "more_info_requested": ("submitted",),
        "documents_verified": ("risk_assessed", "more_info_requested", "rejected"),
        "risk_assessed": ("pending_approval", "more_info_requested", "rejected"),
        "pending_approval": ("approved", "rejected", "more_info_requested"),
        "approved": (),
        "rejected": (),
    }
)
FINAL_STATUSES: tuple[str, ...] = ("approved", "rejected")
#: The statuses in which the applicant's details may be updated.
EDITABLE_STATUSES: tuple[str, ...] = ("draft", "more_info_requested")
#: Kinds refused once the application is approved or rejected (purges and task events still apply).
_CLOSED_TO: frozenset[str] = frozenset(
    {"updated", "document_added", "document_checked", "verified", "screened", "risk_assessed"}
)


def check_application_id(application_id: object) -> str:
    """``application_id`` if it is 1 to 128 letters, digits or ``_ . : | -``, starting with a letter or digit."""
    return check_id("application id", application_id)


def applicant_actor(applicant_id: str) -> str:
    """The actor of what applicant ``applicant_id`` did themselves: ``applicant:<id>``."""
    return f"applicant:{check_id('applicant id', applicant_id)}"


@dataclass(frozen=True, slots=True)
class KycEvent:
    """One entry of an application's append-only history.

    ``id`` is the idempotency key (unique across applications); ``actor`` a staff user id,
    ``applicant:<id>`` (:func:`applicant_actor`) or ``system``; ``data`` the kind's fields (see
    :data:`KINDS`), checked here and kept as a read-only JSON value (objects read-only, lists as tuples).
    """

    id: str
    application_id: str
    at: datetime
    actor: str
    kind: str
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        text("KYC event id", self.id)
        check_application_id(self.application_id)
        aware("KYC event time", self.at)
        text("KYC event actor", self.actor)
        one_of("KYC event kind", self.kind, KINDS)
        checked = check_event_data(self.kind, self.data)
        object.__setattr__(self, "data", json_object(f"a {self.kind} event's data", checked, 2**20))


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """One version of an uploaded document: its metadata, its check and whether its file was purged."""

    document_id: str
    doc_type: str
    version: int
    checksum: str
    size: int
    media_type: str
    storage_key: str
    expires_on: date | None
    filename: str | None
    uploaded_at: datetime
    uploaded_by: str
    check: str | None = None
    check_details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    purged_at: datetime | None = None
    purge_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ScreeningHit:
    """A possible match of a screened name against an entry of a watch list (``suppressed``: a known false positive)."""

    list_name: str
    entry_key: str
    content_hash: str
    score: float
    suppressed: bool


@dataclass(frozen=True, slots=True)
class RiskResult:
    """What the risk rules concluded: score, category, why, and when the customer's KYC must be redone."""

    score: float
    category: str
    reasons: tuple[str, ...]
    rekyc_due: date
    assessed_at: datetime


@dataclass(frozen=True, slots=True)
class ScreeningDecision:
    """An officer's decision on a screening hit of ``subject`` (a customer id or an application id).

    A false positive is remembered against the entry's content hash: when the list entry changes, its hash
    changes and the decision no longer applies.
    """

    subject: str
    list_name: str
    entry_key: str
    content_hash: str
    decision: str
    decided_by: str
    decided_at: datetime
    reason: str

    def __post_init__(self) -> None:
        text("screening decision subject", self.subject)
        for name in ("list_name", "entry_key", "content_hash", "decided_by"):
            text(f"screening decision {name}", getattr(self, name))
        one_of("screening decision", self.decision, SCREENING_DECISIONS)
        aware("screening decision time", self.decided_at)
        text("screening decision reason", self.reason, MAX_REASON, multiline=True)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What the decision is about: ``(subject, list_name, entry_key, content_hash)``."""
        return (self.subject, self.list_name, self.entry_key, self.content_hash)


@dataclass(frozen=True, slots=True)
class Application:
    """An application as its events leave it.

    ``customer_id`` is the customer at creation in what :func:`fold` returns; the store gives the customer
    that holds the anchor record now. ``submitted_at``: the first submission; ``verified_by``: the actor
    of the last move to documents_verified; ``decided_*``: the move to approved or rejected;
    ``status_reason``: the reason given with the last status change (None without one); ``documents``:
    every version of every document, in upload order; ``screening_hits``: those of the last screening;
    ``version``: how many events were applied.
    """

    id: str
    customer_id: str
    record_uid: str
    applicant_id: str | None
    product: str
    amount: Decimal
    currency: str
    entered: Mapping[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    verified_by: str | None
    decided_by: str | None
    decision_reason: str | None
    documents: tuple[DocumentRef, ...]
    verifications: tuple[Verification, ...]
    screening_hits: tuple[ScreeningHit, ...]
    risk: RiskResult | None
    tasks: tuple[Task, ...]
    version: int
    status_reason: str | None = None
    screened_at: datetime | None = None

    def task(self, task_id: str) -> Task:
        """The task ``task_id``; :class:`NotFoundError` if the application has none of that id."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise NotFoundError(f"application {self.id} has no task {task_id}")

    def open_tasks(self) -> tuple[Task, ...]:
        """The tasks not done yet, in the order they were opened."""
        return tuple(t for t in self.tasks if t.is_open)

    def latest_documents(self) -> tuple[DocumentRef, ...]:
        """The latest version of each document, in the order the documents were first added."""
        latest: dict[str, DocumentRef] = {}
        for doc in self.documents:
            latest[doc.document_id] = doc
        return tuple(latest.values())

    def document(self, document_id: str, version: int | None = None) -> DocumentRef:
        """Version ``version`` (None: the latest) of a document; :class:`NotFoundError` if there is none."""
        found = [d for d in self.documents if d.document_id == document_id]
        if version is not None:
            found = [d for d in found if d.version == version]
        if not found:
            shown = document_id if version is None else f"{document_id} version {version}"
            raise NotFoundError(f"application {self.id} has no document {shown}")
        return found[-1]


def _start(event: KycEvent) -> Application:
    if event.kind != "created":
        raise InvalidInputError(
            f"application {event.application_id}: its first event must be created, not {event.kind}"
        )
    d = event.data
    return Application(
        id=event.application_id,
        customer_id=d["customer_id"],
        record_uid=d["record_uid"],
        applicant_id=d["applicant_id"],
        product=d["product"],
        amount=Decimal(d["amount"]),
        currency=d["currency"],
        entered=d["entered"],
        status="draft",
        created_at=event.at,
        updated_at=event.at,
        submitted_at=None,
        decided_at=None,
        verified_by=None,
        decided_by=None,
        decision_reason=None,
        documents=(),
        verifications=(),
        screening_hits=(),
        risk=None,
        tasks=(),
        version=1,
    )


def _status(app: Application, event: KycEvent) -> dict[str, Any]:
    to, reason = event.data["to"], event.data.get("reason")
    allowed = TRANSITIONS[app.status]
    if to not in allowed:
        raise KycTransitionError(app.id, app.status, to, allowed)
    changes: dict[str, Any] = {"status": to, "status_reason": reason}
    if to == "submitted" and app.submitted_at is None:
        changes["submitted_at"] = event.at
    elif to == "documents_verified":
        changes["verified_by"] = event.actor
    elif to == "approved" and event.actor == app.verified_by:
        raise MakerCheckerError(
            app.id,
            app.status,
            to,
            allowed,
            f"application {app.id}: {event.actor} verified its documents and so cannot approve it; "
            "another officer must (maker-checker)",
        )
    if to in FINAL_STATUSES:
        changes.update(decided_at=event.at, decided_by=event.actor, decision_reason=reason)
    return changes


def _replace_document(app: Application, document_id: str, version: int, **changes: Any) -> tuple[DocumentRef, ...]:
    doc = app.document(document_id, version)
    if doc.purged_at is not None:
        raise ConflictError(f"application {app.id}: document {document_id} version {version} was purged")
    return tuple(replace(d, **changes) if d is doc else d for d in app.documents)


def _add_document(app: Application, event: KycEvent) -> tuple[DocumentRef, ...]:
    d = event.data
    versions = [doc for doc in app.documents if doc.document_id == d["document_id"]]
    expected = versions[-1].version + 1 if versions else 1
    if d["version"] != expected:
        raise ConflictError(
            f"application {app.id}: document {d['document_id']} needs version {expected} next, not {d['version']}"
        )
    if versions and versions[-1].doc_type != d["doc_type"]:
        raise ConflictError(
            f"application {app.id}: document {d['document_id']} is a {versions[-1].doc_type}, not a {d['doc_type']}"
        )
    expires = d.get("expires_on")
    doc = DocumentRef(
        document_id=d["document_id"],
        doc_type=d["doc_type"],
        version=d["version"],
        checksum=d["checksum"],
        size=d["size"],
        media_type=d["media_type"],
        storage_key=d["storage_key"],
        expires_on=None if expires is None else date.fromisoformat(expires),
        filename=d.get("filename"),
        uploaded_at=event.at,
        uploaded_by=event.actor,
    )
    return (*app.documents, doc)


def _changes(app: Application, event: KycEvent) -> dict[str, Any]:
    d, kind = event.data, event.kind
    if kind in _CLOSED_TO and app.status in FINAL_STATUSES:
        raise KycTransitionError(
            app.id, app.status, None, message=f"application {app.id} is {app.status}: a {kind} event cannot change it"
        )
    if kind == "updated":
        if app.status not in EDITABLE_STATUSES:
            raise KycTransitionError(
                app.id,
                app.status,
                None,
                message=f"application {app.id} is {app.status}: it may be updated only in "
                f"{' or '.join(EDITABLE_STATUSES)}",
            )
        changes = {k: d[k] for k in ("product", "currency", "entered") if k in d}
        if "amount" in d:
            changes["amount"] = Decimal(d["amount"])
        return changes
    if kind == "status_changed":
        return _status(app, event)
    if kind == "document_added":
        return {"documents": _add_document(app, event)}
    if kind == "document_checked":
        docs = _replace_document(app, d["document_id"], d["version"], check=d["result"], check_details=d["details"])
        return {"documents": docs}
    if kind == "document_purged":
        docs = _replace_document(app, d["document_id"], d["version"], purged_at=event.at, purge_reason=d["reason"])
        return {"documents": docs}
    if kind == "verified":
        return {"verifications": (*app.verifications, Verification.from_json(thaw(d["verification"])))}
    if kind == "screened":
        hits = tuple(
            ScreeningHit(h["list_name"], h["entry_key"], h["content_hash"], float(h["score"]), h["suppressed"])
            for h in d["hits"]
        )
        return {"screening_hits": hits, "screened_at": event.at}
    if kind == "risk_assessed":
        risk = RiskResult(
            float(d["score"]), d["category"], tuple(d["reasons"]), date.fromisoformat(d["rekyc_due"]), event.at
        )
        return {"risk": risk}
    return {"tasks": apply_task_event(app.tasks, app.id, app.status, kind, d, event.actor, event.at)}


def advance(app: Application | None, event: KycEvent) -> Application:
    """The application after ``event``; ``app`` None means none yet (then ``event`` must be ``created``).

    :class:`InvalidInputError` for an event of another application, a first event that is not
    ``created`` or an event before the application was created; :class:`ConflictError` for a second
    ``created``, a document version out of turn, a change to a purged document or a task opened twice;
    :class:`NotFoundError` for an unknown document or task; :class:`KycTransitionError` for a status
    change the rules do not allow, an update outside draft and more_info_requested, a change after the
    decision or to a done task; :class:`MakerCheckerError` for an approval by the documents' verifier.
    """
    if not isinstance(event, KycEvent):
        raise InvalidInputError(f"applications advance by KycEvent values, not {type(event).__name__}")
    if app is None:
        return _start(event)
    if event.application_id != app.id:
        raise InvalidInputError(f"event {event.id} is of application {event.application_id}, not {app.id}")
    if event.kind == "created":
        raise ConflictError(f"application {app.id} exists already: event {event.id} creates it again")
    if event.at < app.created_at:
        raise InvalidInputError(
            f"event {event.id} at {event.at.isoformat()} is before application {app.id} was created "
            f"({app.created_at.isoformat()})"
        )
    changes = _changes(app, event)
    return replace(app, **changes, updated_at=max(app.updated_at, event.at), version=app.version + 1)


def fold(events: Iterable[KycEvent]) -> Application:
    """The application ``events`` (its whole history, in append order) leave; the first must be ``created``.

    Deterministic: the same events give the same application.
    """
    app: Application | None = None
    for event in events:
        app = advance(app, event)
    if app is None:
        raise InvalidInputError("an application needs at least its created event")
    return app
