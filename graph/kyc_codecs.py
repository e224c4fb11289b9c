"""Codecs of the KYC domain, once for both backends.

Events, application state, tasks and screening decisions as JSON; the views' sort keys and cursors
(the cases domain's cursor format, under KYC order names); and the journey row a KYC event leaves on
the customer's timeline, which holds no personal data (no ``entered``, no check details).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from . import case_codecs
from .errors import InvalidInputError
from .kyc import Application, DocumentRef, KycEvent, RiskResult, ScreeningDecision, ScreeningHit, Task, thaw
from .kyc_tasks import freeze
from .models import StoredEvent, dumps, event_time, loads
from .verification import Verification

#: The application views' orders (newest first) and their cursor names; the task view's and the rows'.
APPLICATION_ORDERS: tuple[str, ...] = ("updated", "created")
_CURSOR_NAMES = {
    "updated": "kyc_updated",
    "created": "kyc_created",
    "tasks": "kyc_tasks",
    "rows": "kyc_rows",
    "summaries": "kyc_summaries",
}
#: Event data a timeline row leaves out: what the applicant typed, check details and the screened names.
_PRIVATE = frozenset({"entered", "details", "screened_names", "filename"})


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


# -- events ---------------------------------------------------------------------------------------------


def event_to_json(event: KycEvent) -> str:
    """A KYC event as JSON text (its time in ISO 8601 with its offset)."""
    return dumps(
        {
            "id": event.id,
            "application_id": event.application_id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "kind": event.kind,
            "data": thaw(event.data),
        }
    )


def event_from_json(text: str) -> KycEvent:
    """The KYC event :func:`event_to_json` wrote."""
    d = loads(text)
    return KycEvent(d["id"], d["application_id"], datetime.fromisoformat(d["at"]), d["actor"], d["kind"], d["data"])


# -- tasks ----------------------------------------------------------------------------------------------


def task_to_dict(task: Task) -> dict[str, Any]:
    """A task as a JSON-safe dict (times in ISO 8601)."""
    out: dict[str, Any] = {}
    for name in Task.__dataclass_fields__:
        value = getattr(task, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def task_from_dict(d: dict[str, Any]) -> Task:
    """The task :func:`task_to_dict` wrote."""
    times = ("due_at", "opened_at", "escalated_at", "completed_at")
    fields: dict[str, Any] = {k: _time(v) if k in times else v for k, v in d.items()}
    return Task(**fields)


def task_to_json(task: Task) -> str:
    """A task as JSON text."""
    return dumps(task_to_dict(task))


def task_from_json(text: str) -> Task:
    """The task :func:`task_to_json` wrote."""
    return task_from_dict(loads(text))


# -- applications ---------------------------------------------------------------------------------------


def document_to_json(doc: DocumentRef) -> dict[str, Any]:
    """One document version as JSON (its storage key and check details included: not for callers' eyes)."""
    return {
        "document_id": doc.document_id,
        "doc_type": doc.doc_type,
        "version": doc.version,
        "checksum": doc.checksum,
        "size": doc.size,
        "media_type": doc.media_type,
        "storage_key": doc.storage_key,
        "expires_on": _iso(doc.expires_on),
        "filename": doc.filename,
        "uploaded_at": doc.uploaded_at.isoformat(),
        "uploaded_by": doc.uploaded_by,
        "check": doc.check,
        "check_details": thaw(doc.check_details),
        "purged_at": _iso(doc.purged_at),
        "purge_reason": doc.purge_reason,
    }


def _read_document(d: dict[str, Any]) -> DocumentRef:
    return DocumentRef(
        **{
            **d,
            "expires_on": _day(d["expires_on"]),
            "uploaded_at": datetime.fromisoformat(d["uploaded_at"]),
            "check_details": freeze("check details", d["check_details"]),
            "purged_at": _time(d["purged_at"]),
        }
    )


def _risk(risk: RiskResult) -> list[Any]:
    return [risk.score, risk.category, list(risk.reasons), risk.rekyc_due.isoformat(), risk.assessed_at.isoformat()]


def _read_risk(v: list[Any]) -> RiskResult:
    return RiskResult(v[0], v[1], tuple(v[2]), date.fromisoformat(v[3]), datetime.fromisoformat(v[4]))


def application_to_json(app: Application) -> str:
    """An application's state as JSON text (``amount`` as a decimal string)."""
    risk = app.risk
    return dumps(
        {
            "id": app.id,
            "customer_id": app.customer_id,
            "record_uid": app.record_uid,
            "applicant_id": app.applicant_id,
            "product": app.product,
            "amount": str(app.amount),
            "currency": app.currency,
            "entered": thaw(app.entered),
            "status": app.status,
            "created_at": app.created_at.isoformat(),
            "updated_at": app.updated_at.isoformat(),
            "submitted_at": _iso(app.submitted_at),
            "decided_at": _iso(app.decided_at),
            "verified_by": app.verified_by,
            "decided_by": app.decided_by,
            "decision_reason": app.decision_reason,
            "documents": [document_to_json(d) for d in app.documents],
            "verifications": [v.to_json() for v in app.verifications],
            "screening_hits": [
                [h.list_name, h.entry_key, h.content_hash, h.score, h.suppressed] for h in app.screening_hits
            ],
            "risk": None
            if risk is None
            else [
                risk.score,
                risk.category,
                list(risk.reasons),
                risk.rekyc_due.isoformat(),
                risk.assessed_at.isoformat(),
            ],
            "tasks": [task_to_dict(t) for t in app.tasks],
            "version": app.version,
            "status_reason": app.status_reason,
            "screened_at": _iso(app.screened_at),
        }
    )


def application_from_json(text: str, customer_id: str | None = None) -> Application:
    """The application :func:`application_to_json` wrote; with ``customer_id``, as held by that customer."""
    d = loads(text)
    risk = d["risk"]
    return Application(
        **{
            **d,
            "customer_id": d["customer_id"] if customer_id is None else customer_id,
            "amount": Decimal(d["amount"]),
            "entered": freeze("entered", d["entered"]),
            "created_at": datetime.fromisoformat(d["created_at"]),
            "updated_at": datetime.fromisoformat(d["updated_at"]),
            "submitted_at": _time(d["submitted_at"]),
            "decided_at": _time(d["decided_at"]),
            "screened_at": _time(d["screened_at"]),
            "documents": tuple(_read_document(x) for x in d["documents"]),
            "verifications": tuple(Verification.from_json(v) for v in d["verifications"]),
            "screening_hits": tuple(ScreeningHit(*h) for h in d["screening_hits"]),
            "risk": None
            if risk is None
            else RiskResult(
                risk[0], risk[1], tuple(risk[2]), date.fromisoformat(risk[3]), datetime.fromisoformat(risk[4])
            ),
            "tasks": tuple(task_from_dict(t) for t in d["tasks"]),
        }
    )


# -- screening decisions --------------------------------------------------------------------------------


def decision_to_json(decision: ScreeningDecision) -> str:
    """A screening decision as JSON text."""
    return dumps(
        [
            decision.subject,
            decision.list_name,
            decision.entry_key,
            decision.content_hash,
            decision.decision,
            decision.decided_by,
            decision.decided_at.isoformat(),
            decision.reason,
        ]
    )


def decision_from_json(text: str) -> ScreeningDecision:
    """The screening decision :func:`decision_to_json` wrote."""
    v = loads(text)
    return ScreeningDecision(v[0], v[1], v[2], v[3], v[4], v[5], datetime.fromisoformat(v[6]), v[7])


# -- sort keys and cursors ------------------------------------------------------------------------------


def order_key(order: str, app: Application) -> str:
    """The key ``order`` (``updated`` or ``created``) sorts ``app`` by (ties by application id)."""
    return event_time(app.updated_at if order == "updated" else app.created_at)


def encode_cursor(view: str, key: str, item_id: str) -> str:
    """The opaque cursor after ``(key, item_id)`` in ``view`` (an application order, ``tasks`` or ``rows``)."""
    return case_codecs.encode_cursor(_CURSOR_NAMES[view], key, item_id)


def decode_cursor(view: str, cursor: object) -> tuple[str, str]:
    """The ``(key, id)`` a cursor of ``view`` is after; :class:`InvalidInputError` for a bad one."""
    if not isinstance(cursor, str):
        raise InvalidInputError(f"a KYC list cursor is a string, not {type(cursor).__name__}")
    try:
        return case_codecs.decode_cursor(_CURSOR_NAMES[view], cursor)
    except InvalidInputError as exc:
        raise InvalidInputError(f"not a cursor of this KYC view ({view}): {exc}") from None


# -- the timeline ---------------------------------------------------------------------------------------


def timeline_event(event: KycEvent, record_uid: str) -> StoredEvent:
    """The journey row ``event`` leaves on the timeline of the customer that holds ``record_uid``.

    Id ``kyc|<event id>``, type ``kyc_<kind>``; its data names the application, kind and actor and holds
    the event's data but what is personal or detailed (``entered``, check details, the screened names, a
    document's file name); a verification is summed up by its check and result.
    """
    data = {k: thaw(v) for k, v in event.data.items() if k not in _PRIVATE and k != "verification"}
    if event.kind == "verified":
        data.update(check=event.data["verification"]["check"], result=event.data["verification"]["result"])
    body = {"application_id": event.application_id, "kind": event.kind, "actor": event.actor, "data": data}
    return StoredEvent(f"kyc|{event.id}", f"kyc_{event.kind}", event.at, dumps(body), record_uid)
