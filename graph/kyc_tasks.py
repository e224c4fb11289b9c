"""The KYC vocabulary, the checks of each event's data, the rules' errors and the tasks. Pure, no I/O.

:mod:`c360.graph.kyc` is the public face of the KYC model (events, applications, fold) and re-exports
what callers need from here (:class:`Task`, the errors, the vocabularies); this module is split off to
keep each under the size limit. Structure is checked here when an event is built; the rules that need
the application's state (status moves, document versions, task lifecycles) when it is applied.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .errors import ConflictError, InvalidInputError, NotFoundError
from .verification import Verification

TASK_KINDS: tuple[str, ...] = ("verify_documents", "review_screening_hit", "enhanced_due_diligence", "approve")
TASK_PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
TASK_STATUSES: tuple[str, ...] = ("open", "done")
TASK_EVENT_KINDS: tuple[str, ...] = ("task_opened", "task_assigned", "task_escalated", "task_completed")

MAX_ID = 200
MAX_NAME = 300
MAX_REASON = 2_000
#: A free-form JSON object (check details) may not be longer than this as compact JSON.
MAX_JSON_CHARS = 8_192

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:|-]{0,127}$")
_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class KycTransitionError(ConflictError):
    """A change the KYC rules do not allow now: names the status it was in, where to, and what is allowed."""

    def __init__(
        self,
        application_id: str,
        from_status: str,
        to_status: str | None,
        allowed: tuple[str, ...] = (),
        message: str | None = None,
    ) -> None:
        self.application_id = application_id
        self.from_status = from_status
        self.to_status = to_status
        self.allowed = allowed
        if message is None:
            moves = f"it may go to {', '.join(allowed)}" if allowed else f"{from_status} is final"
            message = f"application {application_id}: cannot go from {from_status} to {to_status}; {moves}"
        super().__init__(message)


class MakerCheckerError(KycTransitionError):
    """The officer who verified an application's documents tried to approve it too (four eyes)."""


# -- value checks ---------------------------------------------------------------------------------------


def text(what: str, value: object, limit: int = MAX_ID, *, multiline: bool = False) -> str:
    """``value`` if it is a non-blank string of at most ``limit`` characters (one line unless ``multiline``)."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60] + "...")
        raise InvalidInputError(f"{what} must be a non-empty string of at most {limit} characters, not {shown}")
    if not multiline and _CONTROL.search(value):
        raise InvalidInputError(f"{what} {value[:60]!r} holds control characters")
    return value


def check_id(what: str, value: object) -> str:
    """``value`` if it is 1 to 128 letters, digits or ``_ . : | -``, starting with a letter or digit."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInputError(
            f"invalid {what} {value!r}: 1 to 128 letters, digits, '_', '.', ':', '|' or '-', "
            "starting with a letter or digit"
        )
    return value


def token(what: str, value: object) -> str:
    """``value`` if it is a lower-case token (``[a-z][a-z0-9_]*``, at most 64)."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise InvalidInputError(f"{what} must be a lower-case token ([a-z][a-z0-9_]*, at most 64), not {value!r}")
    return value


def one_of(what: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInputError(f"unknown {what} {value!r}: expected one of {', '.join(allowed)}")
    return value


def day(what: str, value: object) -> date:
    """The date ``value`` names as ``YYYY-MM-DD``."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInputError(f"{what} must be a date as YYYY-MM-DD, not {value!r}")


def moment(what: str, value: object) -> datetime:
    """The aware datetime ``value`` names in ISO 8601 (with its offset)."""
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"{what} must be an ISO 8601 time with its offset (e.g. ...Z or +05:30), not {value!r}")
    return at


def integer(what: str, value: object, low: int, high: int = 2**53) -> int:
    """``value`` if it is an int (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return value


def number(what: str, value: object, low: float = -math.inf, high: float = math.inf) -> float | int:
    """``value`` if it is a finite int or float (not a bool) from ``low`` to ``high``."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or not low <= value <= high:  # type: ignore[operator]
        bounds = "" if math.isinf(low) and math.isinf(high) else f" from {low:g} to {high:g}"
        raise InvalidInputError(f"{what} must be a finite number{bounds}, not {value!r}")
    return value  # type: ignore[return-value]


def flag(what: str, value: object) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{what} must be true or false, not {value!r}")
    return value


def texts(what: str, value: object, limit: int, most: int) -> tuple[str, ...]:
    """``value`` as a tuple of at most ``most`` strings, each as :func:`text` checks it."""
    items = sequence(what, value, most)
    return tuple(text(f"{what}[{i}]", v, limit) for i, v in enumerate(items))


def sequence(what: str, value: object, most: int) -> Sequence[Any]:
    """``value`` if it is a list (or tuple) of at most ``most`` items."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) > most:
        raise InvalidInputError(f"{what} must be a list of at most {most} items, not {type(value).__name__}")
    return value


def obj(what: str, value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping with string keys."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError(f"{what} must be an object with string keys, not {type(value).__name__}")
    return value


def keys(what: str, data: Mapping[str, Any], required: frozenset[str], optional: frozenset[str]) -> None:
    """Raise unless ``data`` has every key of ``required`` and no key outside ``required | optional``."""
    unknown = set(data) - required - optional
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise InvalidInputError(f"{what} has no {', '.join(sorted(unknown))}: its keys are {allowed}")
    missing = required - set(data)
    if missing:
        raise InvalidInputError(f"{what} needs {', '.join(sorted(missing))}")


def freeze(what: str, value: object) -> Any:
    """``value`` as an immutable JSON value (objects read-only, lists as tuples); InvalidInputError if not JSON."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return number(what, value)
    if isinstance(value, Mapping):
        return MappingProxyType(
            {text(f"a key of {what}", k): freeze(f"{what}.{k}", v) for k, v in obj(what, value).items()}
        )
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(freeze(f"{what}[{i}]", v) for i, v in enumerate(value))
    raise InvalidInputError(f"{what}: a {type(value).__name__} is not a JSON value")


def thaw(value: Any) -> Any:
    """A :func:`freeze` result as plain JSON values (dicts and lists)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def json_object(what: str, value: object, limit: int = MAX_JSON_CHARS) -> Mapping[str, Any]:
    """``value`` if it is a JSON object of at most ``limit`` characters as compact JSON, frozen."""
    frozen = freeze(what, obj(what, value))
    if len(json.dumps(thaw(frozen), separators=(",", ":"))) > limit:
        raise InvalidInputError(f"{what} is longer than {limit} characters as JSON")
    return frozen  # type: ignore[no-any-return]


# -- the vocabulary and the checks of each event's data -------------------------------------------

APPLICATION_STATUSES: tuple[str, ...] = (
    "draft",
    "submitted",
    "more_info_requested",
    "documents_verified",
    "risk_assessed",
    "pending_approval",
    "approved",
    "rejected",
)
#: The moves that need a reason.
REASON_REQUIRED: tuple[str, ...] = ("rejected", "more_info_requested")
KINDS: tuple[str, ...] = (
    "created",
    "updated",
    "status_changed",
    "document_added",
    "document_checked",
    "document_purged",
    "verified",
    "screened",
    "risk_assessed",
    *TASK_EVENT_KINDS,
)
DOC_TYPES: tuple[str, ...] = (
    "pan_card",
    "aadhaar",
    "passport",
    "driving_licence",
    "voter_id",
    "address_proof",
    "bank_statement",
    "salary_slip",
    "vehicle_quotation",
)
MEDIA_TYPES: tuple[str, ...] = ("application/pdf", "image/jpeg", "image/png")
CHECK_RESULTS: tuple[str, ...] = ("passed", "failed", "manual_review")
RISK_CATEGORIES: tuple[str, ...] = ("low", "medium", "high")
SCREENING_DECISIONS: tuple[str, ...] = ("false_positive", "confirmed_match")
SYSTEM_ACTOR = "system"
#: The largest document, in bytes, an event may describe.
MAX_DOCUMENT_BYTES = 100 * 1024 * 1024

_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENTERED_LIMITS: Mapping[str, int] = MappingProxyType(
    {"full_name": MAX_NAME, "pan": 20, "mobile": 32, "email": 254, "address": 1_000, "nationality": 64, "pep": 3}
)

_REQUIRED: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "created": frozenset({"customer_id", "record_uid", "applicant_id", "product", "amount", "currency", "entered"}),
        "updated": frozenset(),
        "status_changed": frozenset({"to"}),
        "document_added": frozenset(
            {"document_id", "doc_type", "version", "checksum", "size", "media_type", "storage_key"}
        ),
        "document_checked": frozenset({"document_id", "version", "result", "details"}),
        "document_purged": frozenset({"document_id", "version", "reason"}),
        "verified": frozenset({"verification"}),
        "screened": frozenset({"hits", "screened_names"}),
        "risk_assessed": frozenset({"score", "category", "reasons", "rekyc_due"}),
    }
)
_OPTIONAL: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "created": frozenset(),
        "updated": frozenset({"product", "amount", "currency", "entered"}),
        "status_changed": frozenset({"reason"}),
        "document_added": frozenset({"expires_on", "filename"}),
        "document_checked": frozenset(),
        "document_purged": frozenset(),
        "verified": frozenset(),
        "screened": frozenset(),
        "risk_assessed": frozenset(),
    }
)
_HIT_KEYS = frozenset({"list_name", "entry_key", "content_hash", "score", "suppressed"})


def _amount(value: object) -> Decimal:
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value) or Decimal(value) <= 0:
        raise InvalidInputError(f"amount must be a decimal string above 0 with at most 2 decimals, not {value!r}")
    return Decimal(value)


def _entered(value: object) -> dict[str, str]:
    data = obj("entered", value)
    optional = frozenset({"mobile", "email", "address", "nationality", "pep"})
    keys("entered", data, frozenset({"full_name", "date_of_birth", "pan"}), optional)
    for key, item in data.items():
        if key == "date_of_birth":
            day("entered date_of_birth", item)
        else:
            text(f"entered {key}", item, _ENTERED_LIMITS[key], multiline=key == "address")
    return dict(data)


def _record_uid(value: object) -> str:
    uid = text("record_uid", value)
    src, sep, rest = uid.partition("|")
    if not sep or not src or not rest:
        raise InvalidInputError(f"record_uid is 'source|key', not {value!r}")
    return uid


def _hit(i: int, value: object) -> dict[str, Any]:
    what = f"screening hit {i}"
    hit = obj(what, value)
    keys(what, hit, _HIT_KEYS, frozenset())
    for key in ("list_name", "entry_key", "content_hash"):
        text(f"{what} {key}", hit[key])
    number(f"{what} score", hit["score"], 0, 1)
    flag(f"{what} suppressed", hit["suppressed"])
    return dict(hit)


def _product_fields(data: Mapping[str, Any], out: dict[str, Any]) -> None:
    if "product" in data:
        token("product", data["product"])
    if "amount" in data:
        _amount(data["amount"])
    if "currency" in data and (not isinstance(data["currency"], str) or not _CURRENCY.fullmatch(data["currency"])):
        raise InvalidInputError(f"currency must be 3 upper-case letters (ISO 4217), not {data['currency']!r}")
    if "entered" in data:
        out["entered"] = _entered(data["entered"])


def check_event_data(kind: str, raw: object) -> dict[str, Any]:
    """The data of a KYC event of ``kind`` checked strictly (keys, types, lengths), as a plain dict."""
    data = obj(f"a {kind} event's data", raw)
    if kind in TASK_EVENT_KINDS:
        return check_task_data(kind, data)
    keys(f"a {kind} event's data", data, _REQUIRED[kind], _OPTIONAL[kind])
    out = dict(data)
    if kind == "created":
        check_id("customer id", data["customer_id"])
        _record_uid(data["record_uid"])
        if data["applicant_id"] is not None:
            check_id("applicant id", data["applicant_id"])
        _product_fields(data, out)
    elif kind == "updated":
        if not data:
            raise InvalidInputError("an updated event needs at least one of amount, currency, entered, product")
        _product_fields(data, out)
    elif kind == "status_changed":
        to = one_of("application status", data["to"], APPLICATION_STATUSES)
        reason = data.get("reason")
        if reason is not None:
            text("status change reason", reason, MAX_REASON, multiline=True)
        elif to in REASON_REQUIRED:
            raise InvalidInputError(f"a move to {to} needs a reason")
    elif kind == "document_added":
        check_id("document id", data["document_id"])
        one_of("document type", data["doc_type"], DOC_TYPES)
        integer("document version", data["version"], 1, 10_000)
        if not isinstance(data["checksum"], str) or not _SHA256.fullmatch(data["checksum"]):
            raise InvalidInputError(f"checksum must be a SHA-256 as 64 lower-case hex digits, not {data['checksum']!r}")
        integer("document size", data["size"], 0, MAX_DOCUMENT_BYTES)
        one_of("media type", data["media_type"], MEDIA_TYPES)
        text("storage key", data["storage_key"], 1_000)
        if data.get("expires_on") is not None:
            day("expires_on", data["expires_on"])
        if data.get("filename") is not None:
            text("filename", data["filename"], 255)
    elif kind in ("document_checked", "document_purged"):
        check_id("document id", data["document_id"])
        integer("document version", data["version"], 1, 10_000)
        if kind == "document_checked":
            one_of("check result", data["result"], CHECK_RESULTS)
            out["details"] = json_object("check details", data["details"])
        else:
            text("purge reason", data["reason"], MAX_REASON)
    elif kind == "verified":
        if not isinstance(data["verification"], Mapping):
            raise InvalidInputError("a verified event's verification is the JSON of Verification.to_json()")
        out["verification"] = Verification.from_json(data["verification"]).to_json()
    elif kind == "screened":
        out["hits"] = [_hit(i, h) for i, h in enumerate(sequence("screening hits", data["hits"], 500))]
        out["screened_names"] = list(texts("screened_names", data["screened_names"], MAX_NAME, 50))
    else:  # risk_assessed
        number("risk score", data["score"])
        one_of("risk category", data["category"], RISK_CATEGORIES)
        out["reasons"] = list(texts("risk reasons", data["reasons"], 500, 100))
        day("rekyc_due", data["rekyc_due"])
    return out


# -- tasks ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Task:
    """A piece of work on an application for a role's queue (or one officer), from opened to done.

    ``escalation_level`` starts at 0 and rises by one per escalation (``escalated_at`` the last);
    ``completed_by``/``outcome``/``reason`` are set when it is done.
    """

    id: str
    application_id: str
    kind: str
    role: str
    assignee: str | None
    priority: str
    due_at: datetime
    status: str
    opened_at: datetime
    escalation_level: int
    escalated_at: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    outcome: str | None
    reason: str | None
    subject: str | None

    @property
    def is_open(self) -> bool:
        """Whether the task still waits to be done."""
        return self.status == "open"


_TASK_REQUIRED: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "task_opened": frozenset({"task_id", "task_kind", "role", "priority", "due_at"}),
        "task_assigned": frozenset({"task_id", "assignee"}),
        "task_escalated": frozenset({"task_id", "level"}),
        "task_completed": frozenset({"task_id", "outcome", "reason"}),
    }
)
_TASK_OPTIONAL: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "task_opened": frozenset({"assignee", "subject"}),
        "task_assigned": frozenset(),
        "task_escalated": frozenset({"to_role"}),
        "task_completed": frozenset(),
    }
)


def check_task_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The data of a task event of ``kind`` checked (keys, types, lengths), as a plain dict."""
    what = f"a {kind} event's data"
    keys(what, data, _TASK_REQUIRED[kind], _TASK_OPTIONAL[kind])
    check_id(f"{kind} task_id", data["task_id"])
    if kind == "task_opened":
        one_of("task kind", data["task_kind"], TASK_KINDS)
        token("task role", data["role"])
        one_of("task priority", data["priority"], TASK_PRIORITIES)
        moment("task due_at", data["due_at"])
        if data.get("assignee") is not None:
            text("task assignee", data["assignee"])
        if data.get("subject") is not None:
            text("task subject", data["subject"], MAX_NAME)
    elif kind == "task_assigned":
        if data["assignee"] is not None:
            text("task assignee", data["assignee"])
    elif kind == "task_escalated":
        integer("escalation level", data["level"], 1, 1000)
        if data.get("to_role") is not None:
            token("escalation to_role", data["to_role"])
    else:
        token("task outcome", data["outcome"])
        text("task completion reason", data["reason"], MAX_REASON, multiline=True)
    return dict(data)


def apply_task_event(
    tasks: tuple[Task, ...],
    application_id: str,
    status: str,
    kind: str,
    data: Mapping[str, Any],
    actor: str,
    at: datetime,
) -> tuple[Task, ...]:
    """``tasks`` after one task event (checked by :func:`check_task_data`) of application ``application_id``.

    :class:`ConflictError` for a task id opened twice or an escalation level that is not the next;
    :class:`NotFoundError` for an unknown task; :class:`KycTransitionError` for a change to a done task.
    """
    task_id = str(data["task_id"])
    index = next((i for i, t in enumerate(tasks) if t.id == task_id), None)
    if kind == "task_opened":
        if index is not None:
            raise ConflictError(f"application {application_id}: task {task_id} is open already")
        task = Task(
            id=task_id,
            application_id=application_id,
            kind=str(data["task_kind"]),
            role=str(data["role"]),
            assignee=data.get("assignee"),
            priority=str(data["priority"]),
            due_at=moment("task due_at", data["due_at"]),
            status="open",
            opened_at=at,
            escalation_level=0,
            escalated_at=None,
            completed_at=None,
            completed_by=None,
            outcome=None,
            reason=None,
            subject=data.get("subject"),
        )
        return (*tasks, task)
    if index is None:
        raise NotFoundError(f"application {application_id} has no task {task_id}")
    task = tasks[index]
    if not task.is_open:
        raise KycTransitionError(
            application_id,
            status,
            None,
            message=f"application {application_id}: task {task_id} is done already ({task.outcome}); "
            f"a {kind} event cannot change it",
        )
    if kind == "task_assigned":
        task = replace(task, assignee=data["assignee"])
    elif kind == "task_escalated":
        level = int(data["level"])
        if level != task.escalation_level + 1:
            raise ConflictError(
                f"application {application_id}: task {task_id} is at escalation level {task.escalation_level}; "
                f"the next is {task.escalation_level + 1}, not {level}"
            )
        role = data.get("to_role") or task.role
        task = replace(task, escalation_level=level, escalated_at=at, role=role)
    else:
        task = replace(
            task, status="done", completed_at=at, completed_by=actor, outcome=data["outcome"], reason=data["reason"]
        )
    return (*tasks[:index], task, *tasks[index + 1 :])
