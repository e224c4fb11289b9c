"""The KYC port: loan applications as append-only event histories, their state, task queues and screening memory.

An application hangs off its anchor record (``record_uid``, chosen when it is created), so a customer's
applications are those of the records it holds now: they follow merges and splits without being moved.
Each event is kept (append-only, idempotent by id); the application's state and its tasks are kept
beside them for the views; each event leaves a journey row (``kyc|<event id>``, type ``kyc_<kind>``,
without personal data) on the customer's timeline. Screening decisions (false positives, confirmed
matches) are kept per subject and list entry content.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import final

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..kyc import (
    APPLICATION_STATUSES,
    TASK_STATUSES,
    Application,
    KycEvent,
    ScreeningDecision,
    Task,
    advance,
    check_application_id,
)
from ..kyc_codecs import APPLICATION_ORDERS, decode_cursor, encode_cursor, order_key, timeline_event
from ..models import StoredEvent, aware, event_time
from .base import MAX_BATCH, new_events
from .identity import IdentityPort


@dataclass(frozen=True, slots=True)
class ApplicationPage:
    """One page of applications and the cursor of the next page (None: the last)."""

    applications: list[Application]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ApplicationSummary:
    """What the regulatory report needs of one application: status, risk category, submission and decision."""

    id: str
    status: str
    risk_category: str | None
    submitted_at: datetime | None
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class SummaryPage:
    """One page of application summaries and the cursor of the next page (None: the last)."""

    summaries: list[ApplicationSummary]
    next_cursor: str | None


#: a summary row as the backends read it: id, status, risk category, submitted at, decided at (ISO text)
SummaryRow = tuple[str, str, str | None, str | None, str | None]


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of tasks and the cursor of the next page (None: the last)."""

    tasks: list[Task]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ApplicationFilter:
    """What an application view selects (None: any): the active customer holding the anchor, applicant, statuses."""

    customer_id: str | None = None
    applicant_id: str | None = None
    statuses: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a task view selects (None: any): role, assignee, statuses, and due strictly before a time (key text)."""

    role: str | None = None
    assignee: str | None = None
    statuses: tuple[str, ...] | None = ("open",)
    due_before: str | None = None


@dataclass(frozen=True, slots=True)
class KycPlan:
    """What an append writes.

    The new events, each touched application's new state (with its tasks), the applications it creates
    (in order) and the journey rows.
    """

    events: list[KycEvent]
    applications: dict[str, Application]
    created: list[str]
    journey: list[StoredEvent]

    def tasks(self) -> list[Task]:
        """Every task of the touched applications (their rows are rewritten)."""
        return [t for app in self.applications.values() for t in app.tasks]


def new_kyc_events(events: list[KycEvent], stored: Mapping[str, KycEvent]) -> list[KycEvent]:
    """The events to write: those not stored yet (an identical replay is skipped, a different one conflicts)."""
    return new_events(events, stored, "KYC")


def plan_kyc_events(
    fresh: list[KycEvent],
    current: Mapping[str, Application],
    owners: Mapping[str, str],
    active: Mapping[str, str],
    task_owners: Mapping[str, str],
) -> KycPlan:
    """Apply ``fresh`` in order to the ``current`` states of their applications (folded from the stored events).

    ``owners`` maps the ``created`` events' records to the customer holding each now, ``active`` their
    customer ids to the active customer, ``task_owners`` the ids of the tasks the events open to the
    application that holds a stored task of that id. A ``created`` event whose record is missing or held
    by another customer is a :class:`NotFoundError`, as is any other event of an unknown application; a
    task id of another application is a :class:`ConflictError`; the model's rules raise as
    :func:`~c360.graph.kyc.advance` does.
    """
    apps = dict(current)
    created: list[str] = []
    journey: list[StoredEvent] = []
    tasks = dict(task_owners)
    for event in fresh:
        app = apps.get(event.application_id)
        if app is None:
            if event.kind != "created":
                raise NotFoundError(f"no application {event.application_id} (event {event.id} is {event.kind})")
            uid, cid = str(event.data["record_uid"]), str(event.data["customer_id"])
            if uid not in owners:
                raise NotFoundError(
                    f"application {event.application_id} hangs off a stored source record; no record {uid}"
                )
            if owners[uid] != active.get(cid):
                raise NotFoundError(
                    f"application {event.application_id}: record {uid} does not belong to customer {cid}"
                )
            created.append(event.application_id)
        if event.kind == "task_opened":
            task_id = str(event.data["task_id"])
            if tasks.setdefault(task_id, event.application_id) != event.application_id:
                raise ConflictError(f"task id {task_id} is taken by application {tasks[task_id]}")
        app = apps[event.application_id] = advance(app, event)
        journey.append(timeline_event(event, app.record_uid))
    touched = {e.application_id: apps[e.application_id] for e in fresh}
    return KycPlan(fresh, touched, created, journey)


def _check_event(event: object) -> KycEvent:
    if not isinstance(event, KycEvent):
        raise InvalidInputError(f"append_kyc_events takes KycEvent values, not {type(event).__name__}")
    return event


def _optional_text(what: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InvalidInputError(f"{what} is a non-empty string or None, not {value!r}")
    return value


def _first(first: object) -> int:
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_BATCH:
        raise InvalidInputError(f"first must be between 1 and {MAX_BATCH}")
    return first


def _statuses(what: str, statuses: Collection[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
    if statuses is None:
        return None
    if isinstance(statuses, str) or not isinstance(statuses, Collection):
        raise InvalidInputError(f"{what} is a collection of statuses, not {statuses!r}")
    wanted = tuple(sorted(set(statuses)))
    if not wanted or any(s not in allowed for s in wanted):
        raise InvalidInputError(f"{what}: give some of {', '.join(allowed)}, not {list(statuses)!r}")
    return wanted


class KycPort(IdentityPort):
    """Append KYC events; read an application and its events; list applications, tasks; screening memory."""

    @final
    def append_kyc_events(self, events: Collection[KycEvent]) -> list[str]:
        """Append ``events`` in one transaction, in their order; return the ids of those written.

        Idempotent by event id: a stored identical event is skipped, one with other content is a
        :class:`ConflictError`. Under the write transaction the touched applications are folded from their
        stored events and the new ones applied in order; a change the rules refuse
        (:class:`~c360.graph.kyc.KycTransitionError`, ...), an event of an unknown application, a task id
        another application holds or a ``created`` whose record is not held by its customer (a merged-away
        id counts as its survivor; :class:`NotFoundError`) writes nothing of the batch. Appends serialise
        across processes (embedded: SQLite's write lock; neo4j: the ``kyc`` sequence node).
        """
        if isinstance(events, KycEvent) or not isinstance(events, Collection):
            raise InvalidInputError("append_kyc_events takes a collection of KycEvent values")
        batch: dict[str, KycEvent] = {}
        for event in map(_check_event, events):
            if batch.setdefault(event.id, event) != event:
                raise ConflictError(f"KYC event {event.id} is given twice with different content")
        if not batch:
            return []
        if len(batch) > MAX_BATCH:
            raise InvalidInputError(f"append_kyc_events takes at most {MAX_BATCH} events, not {len(batch)}")
        return self._call("append_kyc_events", lambda: self._append_kyc_events(list(batch.values())))

    @final
    def get_application(self, application_id: str) -> Application:
        """The application's current state, ``customer_id`` the customer holding its anchor record now.

        :class:`NotFoundError` for an unknown application.
        """
        check_application_id(application_id)
        app = self._call("get_application", lambda: self._get_application(application_id))
        if app is None:
            raise NotFoundError(f"no application {application_id}")
        return app

    @final
    def kyc_events(self, application_id: str) -> list[KycEvent]:
        """The application's events in append order; :class:`NotFoundError` for an unknown application."""
        check_application_id(application_id)
        events = self._call("kyc_events", lambda: self._kyc_events(application_id))
        if not events:
            raise NotFoundError(f"no application {application_id}")
        return events

    @final
    def list_applications(
        self,
        *,
        customer_id: str | None = None,
        applicant_id: str | None = None,
        statuses: Collection[str] | None = None,
        order: str = "updated",
        first: int = 20,
        after: str | None = None,
    ) -> ApplicationPage:
        """One page of the applications that match every filter given, newest first, from cursor ``after``.

        ``customer_id``: those of the records it holds now (a merged-away id reads its survivor's;
        :class:`NotFoundError` if unknown). ``order``: ``updated`` or ``created``; ties by application id,
        descending. Keyset pages: inserts never duplicate or skip an application across pages.
        """
        if order not in APPLICATION_ORDERS:
            raise InvalidInputError(f"unknown application order {order!r}: expected one of updated, created")
        limit = _first(first)
        cursor = None if after is None else decode_cursor(order, after)
        _optional_text("applicant_id", applicant_id)
        wanted = _statuses("statuses", statuses, APPLICATION_STATUSES)
        active = None
        if customer_id is not None:
            active = self.resolve(customer_id)
            if active is None:
                raise NotFoundError(f"no customer {customer_id}")
        where = ApplicationFilter(active, applicant_id, wanted)
        rows = self._call("list_applications", lambda: self._list_applications(where, order, limit + 1, cursor))
        more, rows = len(rows) > limit, rows[:limit]
        nxt = encode_cursor(order, order_key(order, rows[-1]), rows[-1].id) if more and rows else None
        return ApplicationPage(rows, nxt)

    @final
    def list_tasks(
        self,
        *,
        role: str | None = None,
        assignee: str | None = None,
        statuses: Collection[str] | None = ("open",),
        due_before: datetime | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> TaskPage:
        """One page of the tasks that match every filter given, earliest due first (ties by task id).

        ``statuses`` None: open and done; ``due_before``: due strictly before that (aware) time.
        """
        limit = _first(first)
        cursor = None if after is None else decode_cursor("tasks", after)
        _optional_text("role", role)
        _optional_text("assignee", assignee)
        wanted = _statuses("statuses", statuses, TASK_STATUSES)
        before = None if due_before is None else event_time(aware("due_before", due_before))
        where = TaskFilter(role, assignee, wanted, before)
        rows = self._call("list_tasks", lambda: self._list_tasks(where, limit + 1, cursor))
        more, rows = len(rows) > limit, rows[:limit]
        nxt = encode_cursor("tasks", event_time(rows[-1].due_at), rows[-1].id) if more and rows else None
        return TaskPage(rows, nxt)

    @final
    def application_rows(self, *, after: str | None = None, first: int = 1000) -> ApplicationPage:
        """Every application in id order, ``first`` at a time from cursor ``after`` (reports, retention)."""
        limit = _first(first)
        cursor = None if after is None else decode_cursor("rows", after)[1]
        rows = self._call("application_rows", lambda: self._application_rows(cursor, limit + 1))
        more, rows = len(rows) > limit, rows[:limit]
        return ApplicationPage(rows, encode_cursor("rows", "id", rows[-1].id) if more and rows else None)

    @final
    def application_summaries(self, *, after: str | None = None, first: int = 1000) -> SummaryPage:
        """Every application's summary in id order, ``first`` at a time (the report: no full state is decoded)."""
        limit = _first(first)
        cursor = None if after is None else decode_cursor("summaries", after)[1]
        rows = self._call("application_summaries", lambda: self._application_summaries(cursor, limit + 1))
        more, rows = len(rows) > limit, rows[:limit]
        summaries = [ApplicationSummary(i, st, cat, _moment(sub), _moment(dec)) for i, st, cat, sub, dec in rows]
        nxt = encode_cursor("summaries", "id", summaries[-1].id) if more and summaries else None
        return SummaryPage(summaries, nxt)

    @final
    def put_screening_decisions(self, decisions: Collection[ScreeningDecision]) -> None:
        """Keep these decisions, in one transaction; per (subject, list, entry, content hash) the newest wins.

        A decision replaces the stored one of its key unless that one was decided later; putting the same
        decision again changes nothing.
        """
        if isinstance(decisions, ScreeningDecision) or not isinstance(decisions, Collection):
            raise InvalidInputError("put_screening_decisions takes a collection of ScreeningDecision values")
        newest: dict[tuple[str, str, str, str], ScreeningDecision] = {}
        for d in decisions:
            if not isinstance(d, ScreeningDecision):
                raise InvalidInputError(
                    f"put_screening_decisions takes ScreeningDecision values, not {type(d).__name__}"
                )
            if d.key not in newest or newest[d.key].decided_at <= d.decided_at:
                newest[d.key] = d
        if not newest:
            return
        if len(newest) > MAX_BATCH:
            raise InvalidInputError(f"put_screening_decisions takes at most {MAX_BATCH} decisions, not {len(newest)}")
        self._call("put_screening_decisions", lambda: self._put_screening_decisions(list(newest.values())))

    @final
    def screening_decisions(self, subject: str) -> list[ScreeningDecision]:
        """The decisions kept for ``subject``, by list, entry and content hash (none: an empty list)."""
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidInputError(f"subject is a customer or application id, not {subject!r}")
        return self._call("screening_decisions", lambda: self._screening_decisions(subject))

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _append_kyc_events(self, events: list[KycEvent]) -> list[str]:
        """Check and write ``events`` in one write transaction; return the ids written.

        :func:`new_kyc_events` against the stored events of these ids, :func:`plan_kyc_events` over the
        touched applications' folded histories, then the plan written (events, states, task rows, journey).
        """

    @abstractmethod
    def _get_application(self, application_id: str) -> Application | None:
        """The application (``customer_id`` its anchor's customer now), or None."""

    @abstractmethod
    def _kyc_events(self, application_id: str) -> list[KycEvent]:
        """The application's events in append order (empty: no such application)."""

    @abstractmethod
    def _list_applications(
        self, where: ApplicationFilter, order: str, limit: int, after: tuple[str, str] | None
    ) -> list[Application]:
        """At most ``limit`` matching applications, newest first by ``order``, after ``(key, id)``."""

    @abstractmethod
    def _list_tasks(self, where: TaskFilter, limit: int, after: tuple[str, str] | None) -> list[Task]:
        """At most ``limit`` matching tasks by (due key, task id) ascending, after ``after``."""

    @abstractmethod
    def _application_rows(self, after: str | None, limit: int) -> list[Application]:
        """At most ``limit`` applications with an id above ``after``, in id order."""

    @abstractmethod
    def _application_summaries(self, after: str | None, limit: int) -> list[SummaryRow]:
        """At most ``limit`` summary rows of applications with an id above ``after``, in id order."""

    @abstractmethod
    def _put_screening_decisions(self, decisions: list[ScreeningDecision]) -> None:
        """Upsert each decision unless the stored one of its key was decided later."""

    @abstractmethod
    def _screening_decisions(self, subject: str) -> list[ScreeningDecision]: ...
