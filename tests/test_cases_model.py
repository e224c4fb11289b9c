"""The pure case model: events and their checks, the status rules, fold, the SLA history, what customers see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from c360.graph.cases import (
    STATUSES,
    TRANSITIONS,
    Case,
    CaseDue,
    CaseEvent,
    CaseVocabulary,
    TransitionError,
    advance,
    customer_visible,
    fold,
    status_history,
)
from c360.graph.errors import ConflictError, InvalidInputError

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
VOCAB = CaseVocabulary()
CREATED = {
    "customer_id": "C1",
    "record_uid": "crm|1",
    "type": "complaint",
    "priority": "normal",
    "channel": "email",
    "subject": "Card declined",
}


def ev(eid: str, kind: str, minutes: int = 0, actor: str = "u-ann", case: str = "K1", **data: Any) -> CaseEvent:
    return CaseEvent(eid, case, T + timedelta(minutes=minutes), actor, kind, data)


def created(**extra: Any) -> CaseEvent:
    return ev("e0", "created", 0, "customer", **{**CREATED, **extra})


def to(status: str, minutes: int, eid: str | None = None, **extra: Any) -> CaseEvent:
    return ev(eid or f"s-{status}-{minutes}", "status_changed", minutes, to=status, **extra)


def at_status(status: str) -> Case:
    """A case brought to ``status`` along legal steps."""
    paths = {
        "new": [],
        "open": ["open"],
        "in_progress": ["in_progress"],
        "waiting_on_customer": ["open", "waiting_on_customer"],
        "resolved": ["open", "resolved"],
        "closed": ["open", "resolved", "closed"],
    }
    events = [created(), *(to(s, i + 1) for i, s in enumerate(paths[status]))]
    case = fold(events, VOCAB)
    assert case.status == status
    return case


def test_a_created_event_starts_a_new_case() -> None:
    case = fold([created(description="Twice today", team="cards", order_id="O-7")], VOCAB)
    assert (case.id, case.customer_id, case.record_uid, case.status) == ("K1", "C1", "crm|1", "new")
    assert (case.type, case.priority, case.channel, case.subject) == ("complaint", "normal", "email", "Card declined")
    assert (case.description, case.team, case.assignee, case.order_id, case.transaction_id) == (
        "Twice today",
        "cards",
        None,
        "O-7",
        None,
    )
    assert case.created_at == case.updated_at == T
    assert (case.version, case.comments, case.reopened) == (1, 0, 0)
    assert case.first_response_at is case.resolved_at is case.closed_at is None


@pytest.mark.parametrize(("source", "target"), [(s, t) for s, ts in TRANSITIONS.items() for t in ts])
def test_every_legal_transition(source: str, target: str) -> None:
    case = advance(at_status(source), to(target, 30), VOCAB)
    assert case.status == target
    assert case.updated_at == T + timedelta(minutes=30)


ILLEGAL = [(s, t) for s in STATUSES for t in STATUSES if t not in TRANSITIONS[s]]


def test_the_illegal_transitions_are_the_rest() -> None:
    assert len(ILLEGAL) == 36 - 14
    assert ("new", "resolved") in ILLEGAL and ("closed", "resolved") in ILLEGAL and ("open", "open") in ILLEGAL


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_an_illegal_transition_names_from_to_and_what_is_allowed(source: str, target: str) -> None:
    with pytest.raises(TransitionError) as err:
        advance(at_status(source), to(target, 30), VOCAB)
    assert isinstance(err.value, ConflictError)
    assert (err.value.from_status, err.value.to_status) == (source, target)
    assert err.value.allowed == TRANSITIONS[source]
    message = str(err.value)
    assert f"from {source} to {target}" in message and all(a in message for a in TRANSITIONS[source])


def test_reopen_from_resolved_and_from_closed() -> None:
    resolved = at_status("resolved")
    assert resolved.resolved_at == T + timedelta(minutes=2) and resolved.closed_at is None
    reopened = advance(resolved, to("open", 10), VOCAB)
    assert (reopened.status, reopened.reopened, reopened.resolved_at) == ("open", 1, None)
    again = fold([created(), to("open", 1), to("resolved", 2), to("open", 3), to("resolved", 4)], VOCAB)
    assert again.resolved_at == T + timedelta(minutes=4)  # the last time it entered resolved
    closed = at_status("closed")
    assert closed.resolved_at == T + timedelta(minutes=2) and closed.closed_at == T + timedelta(minutes=3)
    back = advance(closed, to("open", 20), VOCAB)
    assert (back.status, back.reopened, back.resolved_at, back.closed_at) == ("open", 1, None, None)
    twice = advance(advance(advance(back, to("resolved", 21), VOCAB), to("closed", 22), VOCAB), to("open", 23), VOCAB)
    assert twice.reopened == 2
    # Leaving in_progress for open is not a reopen.
    assert advance(at_status("in_progress"), to("open", 5), VOCAB).reopened == 0


def test_updates_assignments_links_and_comments() -> None:
    case = fold(
        [
            created(),
            ev("e1", "updated", 1, priority="urgent", subject="Card declined twice", description=None),
            ev("e2", "assigned", 2, assignee="u-bob", team="cards"),
            ev("e3", "assigned", 3, assignee=None),
            ev("e4", "linked", 4, transaction_id="TX-9"),
            ev("e5", "commented", 5, comment_id="m1", body="Looking", visibility="internal"),
        ],
        VOCAB,
    )
    assert (case.priority, case.subject, case.description) == ("urgent", "Card declined twice", None)
    assert (case.assignee, case.team, case.transaction_id, case.order_id) == (None, "cards", "TX-9", None)
    assert (case.comments, case.version, case.status) == (1, 6, "new")
    assert case.updated_at == T + timedelta(minutes=5)


def test_first_response_is_the_first_customer_visible_comment_by_someone_else() -> None:
    def comment(eid: str, minutes: int, actor: str, visibility: str) -> CaseEvent:
        return ev(eid, "commented", minutes, actor, comment_id=eid, body="hi", visibility=visibility)

    case = fold(
        [
            created(),
            comment("c1", 1, "customer", "customer"),  # the customer writing is no response
            comment("c2", 2, "u-ann", "internal"),  # an internal note is none either
            comment("c3", 3, "system", "customer"),
            comment("c4", 4, "u-ann", "customer"),
        ],
        VOCAB,
    )
    assert case.first_response_at == T + timedelta(minutes=3)
    assert case.comments == 4
    unanswered = fold(
        [created(), comment("c1", 1, "customer", "customer"), comment("c2", 2, "u-ann", "internal")], VOCAB
    )
    assert unanswered.first_response_at is None


def test_fold_is_deterministic_and_equals_advancing_one_at_a_time() -> None:
    events = [created(), to("open", 1), ev("e2", "assigned", 2, team="cards"), to("resolved", 3), to("open", 4)]
    one: Case | None = None
    for e in events:
        one = advance(one, e, VOCAB)
    assert fold(events, VOCAB) == fold(list(events), VOCAB) == one


def test_a_history_must_start_with_created_and_hold_only_one_case() -> None:
    with pytest.raises(InvalidInputError, match="first event must be created"):
        fold([to("open", 1)], VOCAB)
    with pytest.raises(InvalidInputError, match="at least its created"):
        fold([], VOCAB)
    with pytest.raises(ConflictError, match="exists already"):
        fold([created(), created()], VOCAB)
    with pytest.raises(InvalidInputError, match="of case K2"):
        fold([created(), ev("x", "assigned", 1, case="K2", team="t")], VOCAB)
    with pytest.raises(InvalidInputError, match="before case K1 was created"):
        fold([created(), ev("x", "assigned", -1, team="t")], VOCAB)


def test_the_vocabulary_is_the_configured_one() -> None:
    narrow = CaseVocabulary(types=("complaint",), priorities=("p1", "p2"), channels=("email",))
    assert fold([created(priority="p2")], narrow).priority == "p2"
    with pytest.raises(InvalidInputError, match="unknown case priority 'normal'"):
        fold([created()], narrow)
    with pytest.raises(InvalidInputError, match="unknown case type 'dispute'"):
        fold([created(priority="p1"), ev("e1", "updated", 1, type="dispute")], narrow)
    with pytest.raises(InvalidInputError, match="unknown case channel 'fax'"):
        fold([created(channel="fax")], VOCAB)
    # None checks no vocabulary: a stored history folds after the configuration changed.
    assert fold([created(channel="fax")], None).channel == "fax"
    for bad in ({"types": ()}, {"priorities": ("Low",)}, {"channels": ("email", "email")}, {"types": "complaint"}):
        with pytest.raises(InvalidInputError):
            CaseVocabulary(**bad)


BAD_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("created", {k: v for k, v in CREATED.items() if k != "subject"}, "needs subject"),
    ("created", {**CREATED, "subject": " "}, "subject must be a non-empty string"),
    ("created", {**CREATED, "subject": "x" * 301}, "at most 300"),
    ("created", {**CREATED, "record_uid": "crm-1"}, "source|key"),
    ("created", {**CREATED, "priority": 3}, "priority must be a non-empty string"),
    ("created", {**CREATED, "type": None}, "cannot be null"),
    ("created", {**CREATED, "colour": "red"}, "has no colour"),
    ("updated", {}, "at least one of"),
    ("updated", {"status": "open"}, "has no status"),
    ("updated", {"subject": "a\nb"}, "control characters"),
    ("assigned", {}, "at least one of"),
    ("assigned", {"assignee": ""}, "assignee must be a non-empty string"),
    ("assigned", {"owner": "u-bob"}, "has no owner"),
    ("commented", {"comment_id": "m1", "body": "", "visibility": "customer"}, "body must be a non-empty string"),
    ("commented", {"comment_id": "m1", "body": "x" * 20_001, "visibility": "customer"}, "at most 20000"),
    ("commented", {"comment_id": "m1", "body": "hi", "visibility": "public"}, "internal or customer"),
    ("commented", {"comment_id": "m1", "body": "hi"}, "needs visibility"),
    ("status_changed", {}, "needs to"),
    ("status_changed", {"to": "done"}, "unknown case status 'done'"),
    ("status_changed", {"to": "open", "from": "new"}, "has no from"),
    ("linked", {}, "at least one of"),
    ("linked", {"order_id": 7}, "order_id must be a non-empty string"),
    ("linked", {"order_id": None}, "cannot be null"),
]


@pytest.mark.parametrize(("kind", "data", "message"), BAD_EVENTS)
def test_each_kind_checks_its_data(kind: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("|", r"\|")):
        CaseEvent("e1", "K1", T, "u-ann", kind, data)


def test_an_event_checks_its_envelope_and_keeps_a_read_only_copy_of_its_data() -> None:
    for eid, case, at, actor, kind in (
        ("", "K1", T, "u", "created"),
        ("e", "K 1", T, "u", "created"),
        ("e", "K1", T.replace(tzinfo=None), "u", "created"),
        ("e", "K1", "2026-01-01", "u", "created"),
        ("e", "K1", T, "", "created"),
        ("e", "K1", T, "u", "deleted"),
    ):
        with pytest.raises(InvalidInputError):
            CaseEvent(eid, case, at, actor, kind, dict(CREATED))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="has no time zone"):
        CaseEvent("e", "K1", T.replace(tzinfo=None), "u", "created", dict(CREATED))
    data = dict(CREATED)
    event = CaseEvent("e", "K1", T, "u", "created", data)
    data["subject"] = "changed"
    assert event.data["subject"] == "Card declined"
    with pytest.raises(TypeError):
        event.data["subject"] = "x"  # type: ignore[index]
    assert event == CaseEvent("e", "K1", T, "u", "created", dict(CREATED))


def test_status_history_for_the_sla_clock() -> None:
    events = [
        created(),
        ev("e1", "assigned", 1, team="cards"),
        to("in_progress", 2),
        to("waiting_on_customer", 3),
        ev("e4", "commented", 4, "customer", comment_id="m", body="here", visibility="customer"),
        to("resolved", 5),
    ]
    assert status_history(events) == [
        (T, "new"),
        (T + timedelta(minutes=2), "in_progress"),
        (T + timedelta(minutes=3), "waiting_on_customer"),
        (T + timedelta(minutes=5), "resolved"),
    ]
    assert status_history([]) == []
    with pytest.raises(InvalidInputError):
        status_history(events[1:])


def test_customers_do_not_see_internal_comments() -> None:
    note = ev("n", "commented", 1, comment_id="n", body="fraud?", visibility="internal")
    reply = ev("r", "commented", 2, comment_id="r", body="On it", visibility="customer")
    events = [created(), note, ev("a", "assigned", 2, team="cards"), reply, to("open", 3)]
    assert customer_visible(events) == [events[0], events[2], reply, events[4]]


def test_dues_are_aware_and_named() -> None:
    due = CaseDue(T, T + timedelta(days=2), "running", "cal-1a2b")
    assert due.resolution_due == T + timedelta(days=2)
    assert CaseDue() == CaseDue(None, None, None, None)
    for bad in (
        {"first_response_due": T.replace(tzinfo=None)},
        {"resolution_due": "tomorrow"},
        {"sla_state": "Running"},
        {"calendar": ""},
    ):
        with pytest.raises(InvalidInputError):
            CaseDue(**bad)
