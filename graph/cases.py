"""Service cases: the pure model (events, the folded case, its status rules). No I/O.

A case hangs off one source record of a customer (its anchor, ``record_uid``), so it follows that record
through merges and splits. Its history is an append-only list of :class:`CaseEvent`; its state is derived
from them by :func:`fold` (one event at a time: :func:`advance`). Structure is checked when an event is
built; the deployment's vocabulary (types, priorities, channels) and the status rules when it is applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from .errors import ConflictError, InvalidInputError
from .models import aware

STATUSES: tuple[str, ...] = ("new", "open", "in_progress", "waiting_on_customer", "resolved", "closed")
#: Every allowed status change, from -> the statuses it may go to.
TRANSITIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "new": ("open", "in_progress"),
        "open": ("in_progress", "waiting_on_customer", "resolved"),
        "in_progress": ("open", "waiting_on_customer", "resolved"),
        "waiting_on_customer": ("open", "in_progress", "resolved"),
        "resolved": ("closed", "open"),
        "closed": ("open",),
    }
)
KINDS: tuple[str, ...] = ("created", "updated", "assigned", "commented", "status_changed", "linked")
VISIBILITIES: tuple[str, ...] = ("internal", "customer")
#: The actor of what the customer did themselves, and of what the system did.
CUSTOMER_ACTOR = "customer"
SYSTEM_ACTOR = "system"

MAX_ID = 200
MAX_SUBJECT = 300
MAX_TEXT = 20_000
MAX_REASON = 1_000

_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:|-]{0,127}$")
_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Per kind: the keys it must have, and those it may have.
_REQUIRED: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "created": frozenset({"customer_id", "record_uid", "type", "priority", "channel", "subject"}),
        "updated": frozenset(),
        "assigned": frozenset(),
        "commented": frozenset({"comment_id", "body", "visibility"}),
        "status_changed": frozenset({"to"}),
        "linked": frozenset(),
    }
)
_OPTIONAL: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "created": frozenset({"description", "team", "assignee", "order_id", "transaction_id"}),
        "updated": frozenset({"type", "priority", "channel", "subject", "description"}),
        "assigned": frozenset({"assignee", "team"}),
        "commented": frozenset(),
        "status_changed": frozenset({"reason"}),
        "linked": frozenset({"order_id", "transaction_id"}),
    }
)
# Keys whose value may be null (but in linked events; all others are strings).
_NULLABLE = frozenset({"description", "team", "assignee", "order_id", "transaction_id", "reason"})


class TransitionError(ConflictError):
    """A status change the rules do not allow; names where from, where to and what is allowed."""

    def __init__(self, case_id: str, from_status: str, to_status: str) -> None:
        self.case_id = case_id
        self.from_status = from_status
        self.to_status = to_status
        self.allowed = TRANSITIONS[from_status]
        super().__init__(
            f"case {case_id}: cannot go from {from_status} to {to_status}; "
            f"from {from_status} it may go to {', '.join(self.allowed)}"
        )


def _text(what: str, value: object, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60] + "...")
        raise InvalidInputError(f"{what} must be a non-empty string of at most {limit} characters, not {shown}")
    if not multiline and _CONTROL.search(value):
        raise InvalidInputError(f"{what} {value[:60]!r} holds control characters")
    return value


def check_case_id(case_id: object) -> str:
    """Return ``case_id`` if it is 1 to 128 letters, digits or ``_ . : | -``, starting with a letter or digit."""
    if not isinstance(case_id, str) or not _CASE_ID.fullmatch(case_id):
        raise InvalidInputError(
            f"invalid case id {case_id!r}: 1 to 128 letters, digits, '_', '.', ':', '|' or '-', "
            "starting with a letter or digit"
        )
    return case_id


def _tokens(what: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInputError(f"case {what} are a collection of names, not {values!r}")
    out = tuple(values)
    if not out:
        raise InvalidInputError(f"case {what}: give at least one")
    for v in out:
        if not isinstance(v, str) or not _TOKEN.fullmatch(v):
            raise InvalidInputError(f"case {what}: {v!r} is not a lower-case token ([a-z][a-z0-9_]*, at most 64)")
    if len(set(out)) != len(out):
        raise InvalidInputError(f"case {what}: {', '.join(out)} holds a name twice")
    return out


@dataclass(frozen=True, slots=True)
class CaseVocabulary:
    """The case types, priorities (lowest first) and channels a deployment allows."""

    types: tuple[str, ...] = ("complaint", "service_request", "dispute", "data_request", "kyc_query")
    priorities: tuple[str, ...] = ("low", "normal", "high", "urgent")
    channels: tuple[str, ...] = ("email", "phone", "web", "chat", "branch", "sms", "post")

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", _tokens("types", self.types))
        object.__setattr__(self, "priorities", _tokens("priorities", self.priorities))
        object.__setattr__(self, "channels", _tokens("channels", self.channels))

    def check(self, what: str, value: object) -> str:
        """Return ``value`` if it is one of this vocabulary's ``what`` (type, priority, channel)."""
        allowed = {"type": self.types, "priority": self.priorities, "channel": self.channels}[what]
        if value not in allowed:
            raise InvalidInputError(f"unknown case {what} {value!r}: expected one of {', '.join(allowed)}")
        return str(value)


def _check_value(kind: str, key: str, value: object) -> None:
    what = f"{kind} event's {key}"
    if value is None:
        if key not in _NULLABLE or kind == "linked":
            raise InvalidInputError(f"a {what} cannot be null")
        return
    if key in ("body", "description"):
        _text(what, value, MAX_TEXT, multiline=True)
    elif key == "subject":
        _text(what, value, MAX_SUBJECT)
    elif key == "reason":
        _text(what, value, MAX_REASON, multiline=True)
    elif key == "record_uid":
        src, sep, rest = value.partition("|") if isinstance(value, str) else ("", "", "")
        if not sep or not src or not rest:
            raise InvalidInputError(f"a {what} is 'source|key', not {value!r}")
        _text(what, value, MAX_ID)
    elif key == "to":
        if value not in STATUSES:
            raise InvalidInputError(f"unknown case status {value!r}: expected one of {', '.join(STATUSES)}")
    elif key == "visibility":
        if value not in VISIBILITIES:
            raise InvalidInputError(f"a comment's visibility is internal or customer, not {value!r}")
    else:  # ids, names and vocabulary values: short one-line strings
        _text(what, value, MAX_ID)


def _check_data(kind: str, data: object) -> dict[str, str | None]:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"a case event's data is a mapping, not {type(data).__name__}")
    if not all(isinstance(k, str) for k in data):
        raise InvalidInputError("a case event's data keys are strings")
    keys = set(data)
    unknown = keys - _REQUIRED[kind] - _OPTIONAL[kind]
    if unknown:
        allowed = sorted(_REQUIRED[kind] | _OPTIONAL[kind])
        raise InvalidInputError(
            f"a {kind} event has no {', '.join(sorted(unknown))}: its keys are {', '.join(allowed)}"
        )
    missing = _REQUIRED[kind] - keys
    if missing:
        raise InvalidInputError(f"a {kind} event needs {', '.join(sorted(missing))}")
    if not keys and kind in ("updated", "assigned", "linked"):
        raise InvalidInputError(f"a {kind} event needs at least one of {', '.join(sorted(_OPTIONAL[kind]))}")
    for key, value in data.items():
        _check_value(kind, key, value)
    return dict(data)


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One entry of a case's append-only history.

    ``id`` is the idempotency key (unique across cases); ``actor`` a staff user id, ``customer`` or
    ``system``; ``data`` the kind's fields (see :data:`KINDS`), checked here for keys, types and lengths
    (the vocabulary and the status rules are checked when the event is applied). ``data`` is kept as a
    read-only copy.
    """

    id: str
    case_id: str
    at: datetime
    actor: str
    kind: str
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        _text("case event id", self.id, MAX_ID)
        check_case_id(self.case_id)
        aware("case event time", self.at)
        _text("case event actor", self.actor, MAX_ID)
        if self.kind not in KINDS:
            raise InvalidInputError(f"unknown case event kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "data", MappingProxyType(_check_data(self.kind, self.data)))


@dataclass(frozen=True, slots=True)
class Case:
    """A case as its events leave it.

    ``first_response_at``: the first customer-visible comment by anyone but the customer;
    ``resolved_at``: when it last entered resolved (cleared on reopen), ``closed_at`` likewise;
    ``reopened``: how often it went back to open from resolved or closed; ``comments``: how many;
    ``version``: how many events were applied. ``customer_id`` is the customer at creation in what
    :func:`fold` returns; the store gives the customer that holds the anchor record now.
    """

    id: str
    customer_id: str
    record_uid: str
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


@dataclass(frozen=True, slots=True)
class CaseDue:
    """What the SLA engine computed for a case.

    When the first response and the resolution are due (aware times or None), its state (``running``,
    ``at_risk``, ``breached``, ``met``, ``paused``, ...) and the fingerprint of the calendar it used.
    """

    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    sla_state: str | None = None
    calendar: str | None = None

    def __post_init__(self) -> None:
        for what in ("first_response_due", "resolution_due"):
            if getattr(self, what) is not None:
                aware(what, getattr(self, what))
        if self.sla_state is not None and (not isinstance(self.sla_state, str) or not _TOKEN.fullmatch(self.sla_state)):
            raise InvalidInputError(f"sla_state {self.sla_state!r}: a lower-case token such as running or breached")
        if self.calendar is not None:
            _text("calendar fingerprint", self.calendar, MAX_ID)


def _vocab(vocabulary: CaseVocabulary | None, what: str, value: Any) -> str:
    return str(value) if vocabulary is None else vocabulary.check(what, value)


def _start(event: CaseEvent, vocabulary: CaseVocabulary | None) -> Case:
    if event.kind != "created":
        raise InvalidInputError(f"case {event.case_id}: its first event must be created, not {event.kind}")
    d = event.data
    return Case(
        id=event.case_id,
        customer_id=d["customer_id"],
        record_uid=d["record_uid"],
        type=_vocab(vocabulary, "type", d["type"]),
        priority=_vocab(vocabulary, "priority", d["priority"]),
        channel=_vocab(vocabulary, "channel", d["channel"]),
        subject=d["subject"],
        description=d.get("description"),
        status="new",
        assignee=d.get("assignee"),
        team=d.get("team"),
        order_id=d.get("order_id"),
        transaction_id=d.get("transaction_id"),
        created_at=event.at,
        updated_at=event.at,
        first_response_at=None,
        resolved_at=None,
        closed_at=None,
        reopened=0,
        comments=0,
        version=1,
    )


def _status(case: Case, event: CaseEvent) -> dict[str, Any]:
    to = event.data["to"]
    if to not in TRANSITIONS[case.status]:
        raise TransitionError(case.id, case.status, to)
    changes: dict[str, Any] = {"status": to}
    if to == "resolved":
        changes["resolved_at"] = event.at
    elif to == "closed":
        changes["closed_at"] = event.at
    elif to == "open" and case.status in ("resolved", "closed"):
        changes.update(resolved_at=None, closed_at=None, reopened=case.reopened + 1)
    return changes


def advance(case: Case | None, event: CaseEvent, vocabulary: CaseVocabulary | None) -> Case:
    """The case after ``event``; ``case`` None means none yet (then ``event`` must be ``created``).

    ``vocabulary`` None checks no type, priority or channel (a stored history, checked when appended,
    still folds after the deployment's vocabulary changed).

    :class:`InvalidInputError` for an event of another case, a first event that is not ``created``, an
    event before the case was created or a value outside ``vocabulary``; :class:`ConflictError` for a
    second ``created``; :class:`TransitionError` for a status change the rules do not allow.
    """
    if not isinstance(event, CaseEvent):
        raise InvalidInputError(f"cases advance by CaseEvent values, not {type(event).__name__}")
    if case is None:
        return _start(event, vocabulary)
    if event.case_id != case.id:
        raise InvalidInputError(f"event {event.id} is of case {event.case_id}, not {case.id}")
    if event.kind == "created":
        raise ConflictError(f"case {case.id} exists already: event {event.id} creates it again")
    if event.at < case.created_at:
        raise InvalidInputError(
            f"event {event.id} at {event.at.isoformat()} is before case {case.id} was created "
            f"({case.created_at.isoformat()})"
        )
    d = event.data
    changes: dict[str, Any] = {}
    if event.kind == "updated":
        for key in ("type", "priority", "channel"):
            if key in d:
                changes[key] = _vocab(vocabulary, key, d[key])
        changes.update({k: d[k] for k in ("subject", "description") if k in d})
    elif event.kind in ("assigned", "linked"):
        changes.update(d)
    elif event.kind == "commented":
        changes["comments"] = case.comments + 1
        staff = d["visibility"] == "customer" and event.actor != CUSTOMER_ACTOR
        if staff and case.first_response_at is None:
            changes["first_response_at"] = event.at
    else:  # status_changed
        changes.update(_status(case, event))
    return replace(case, **changes, updated_at=max(case.updated_at, event.at), version=case.version + 1)


def fold(events: Iterable[CaseEvent], vocabulary: CaseVocabulary | None) -> Case:
    """The case ``events`` (its whole history, in append order) leave; the first must be ``created``.

    Deterministic: the same events give the same case. ``vocabulary`` as for :func:`advance`.
    """
    case: Case | None = None
    for event in events:
        case = advance(case, event, vocabulary)
    if case is None:
        raise InvalidInputError("a case needs at least its created event")
    return case


def status_history(events: Iterable[CaseEvent]) -> list[tuple[datetime, str]]:
    """``(time, status)`` from creation (``new``) through each status change, in append order (SLA clocks)."""
    out: list[tuple[datetime, str]] = []
    for event in events:
        if not out:
            if event.kind != "created":
                raise InvalidInputError(f"case {event.case_id}: its first event must be created, not {event.kind}")
            out.append((event.at, "new"))
        elif event.kind == "status_changed":
            out.append((event.at, str(event.data["to"])))
    return out


def is_internal(event: CaseEvent) -> bool:
    """Whether only staff may see ``event`` (an internal comment)."""
    return event.kind == "commented" and event.data["visibility"] == "internal"


def customer_visible(events: Iterable[CaseEvent]) -> list[CaseEvent]:
    """The events the customer may see, in their order: all but internal comments."""
    return [e for e in events if not is_internal(e)]
