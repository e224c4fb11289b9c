"""Codecs of the cases domain, once for both backends.

Events, case state and dues as JSON, the views' sort keys and cursors, and the journey rows a case event
leaves on the customer's timeline.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from .cases import Case, CaseDue, CaseEvent
from .errors import InvalidInputError
from .models import StoredEvent, dumps, event_time, loads

#: The "due" sort key of a case without a due: after every time (times start with a digit).
NO_DUE = "~"
#: The view orders: "due" earliest first; "updated" and "created" newest first.
ORDERS: tuple[str, ...] = ("due", "updated", "created")

_TIMES = ("created_at", "updated_at", "first_response_at", "resolved_at", "closed_at")


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def event_to_json(event: CaseEvent) -> str:
    """A case event as JSON text (its time in ISO 8601 with its offset)."""
    return dumps(
        {
            "id": event.id,
            "case_id": event.case_id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "kind": event.kind,
            "data": dict(event.data),
        }
    )


def event_from_json(text: str) -> CaseEvent:
    """The case event :func:`event_to_json` wrote."""
    d = loads(text)
    return CaseEvent(d["id"], d["case_id"], datetime.fromisoformat(d["at"]), d["actor"], d["kind"], d["data"])


def case_to_json(case: Case) -> str:
    """A case's state as JSON text."""
    out: dict[str, Any] = {}
    for name in Case.__dataclass_fields__:
        value = getattr(case, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return dumps(out)


def case_from_json(text: str, customer_id: str | None = None) -> Case:
    """The case :func:`case_to_json` wrote; with ``customer_id``, as held by that customer."""
    d = loads(text)
    for name in _TIMES:
        d[name] = _time(d[name])
    if customer_id is not None:
        d["customer_id"] = customer_id
    return Case(**d)


def due_to_json(due: CaseDue) -> str:
    """A case's dues as JSON text."""
    return dumps(
        {
            "first_response_due": None if due.first_response_due is None else due.first_response_due.isoformat(),
            "resolution_due": None if due.resolution_due is None else due.resolution_due.isoformat(),
            "sla_state": due.sla_state,
            "calendar": due.calendar,
        }
    )


def due_from_json(text: str | None) -> CaseDue | None:
    """The dues :func:`due_to_json` wrote (None: none were set)."""
    if text is None:
        return None
    d = loads(text)
    return CaseDue(_time(d["first_response_due"]), _time(d["resolution_due"]), d["sla_state"], d["calendar"])


def due_key(case: Case, due: CaseDue | None) -> str:
    """The "due" order's key, :data:`NO_DUE` when there is none.

    The earliest of the first-response due (while nobody has answered) and the resolution due, as
    :func:`~c360.graph.models.event_time` text.
    """
    if due is None:
        return NO_DUE
    times = [due.resolution_due]
    if case.first_response_at is None:
        times.append(due.first_response_due)
    present = [t for t in times if t is not None]
    return event_time(min(present)) if present else NO_DUE


def order_key(order: str, case: Case, due: CaseDue | None) -> str:
    """The key ``order`` sorts ``case`` by (ties by case id)."""
    if order == "due":
        return due_key(case, due)
    return event_time(case.updated_at if order == "updated" else case.created_at)


def encode_cursor(order: str, key: str, case_id: str) -> str:
    """The opaque cursor after ``(key, case_id)`` in ``order``."""
    return base64.urlsafe_b64encode(dumps([order, key, case_id]).encode()).decode().rstrip("=")


def decode_cursor(order: str, cursor: str) -> tuple[str, str]:
    """The ``(key, case id)`` a cursor of ``order`` is after; :class:`InvalidInputError` for a bad one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidInputError(f"not a case list cursor: {cursor[:40]!r}") from None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) and v for v in value)):
        raise InvalidInputError(f"not a case list cursor: {cursor[:40]!r}")
    if value[0] != order:
        raise InvalidInputError(f"that cursor pages the {value[0]!r} order, not {order!r}")
    return value[1], value[2]


def timeline_event(event: CaseEvent, record_uid: str) -> StoredEvent:
    """The journey row ``event`` leaves on the timeline of the customer that holds ``record_uid``.

    Id ``case|<event id>``, type ``case_<kind>``; its data names the case, kind and actor and holds the
    event's data but a comment's body (which only the case itself keeps).
    """
    data = {k: v for k, v in event.data.items() if not (event.kind == "commented" and k == "body")}
    body = {"case_id": event.case_id, "kind": event.kind, "actor": event.actor, "data": data}
    return StoredEvent(f"case|{event.id}", f"case_{event.kind}", event.at, dumps(body), record_uid)
