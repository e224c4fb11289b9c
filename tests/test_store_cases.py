"""The cases port's contract (append-only, idempotent histories; folded state; views with cursors; cases
that follow their anchor record through merges and splits): every backend passes every test here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from c360.graph.cases import Case, CaseDue, CaseEvent, CaseVocabulary, TransitionError
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import ChangeSet, Evidence, MergeEvent, loads
from c360.graph.store import GraphStore
from c360.resolution.config import SurvivorshipConfig
from c360.resolution.undo import split
from store_contract import PHONE, T, seed

VOCAB = CaseVocabulary()


def ev(eid: str, case: str, kind: str, minutes: int, actor: str = "u-ann", **data: Any) -> CaseEvent:
    return CaseEvent(eid, case, T + timedelta(minutes=minutes), actor, kind, data)


def created(case: str, customer: str = "C1", record: str = "crm|1", minutes: int = 0, **extra: Any) -> CaseEvent:
    data = {
        "customer_id": customer,
        "record_uid": record,
        "type": "complaint",
        "priority": "normal",
        "channel": "email",
        "subject": f"About {case}",
        **extra,
    }
    return ev(f"{case}-c", case, "created", minutes, "customer", **data)


def to(case: str, status: str, minutes: int, eid: str | None = None) -> CaseEvent:
    return ev(eid or f"{case}-{status}-{minutes}", case, "status_changed", minutes, to=status)


def comment(case: str, eid: str, minutes: int, visibility: str, body: str = "secret body", **kw: Any) -> CaseEvent:
    return ev(eid, case, "commented", minutes, comment_id=eid, body=body, visibility=visibility, **kw)


def append(store: GraphStore, *events: CaseEvent) -> list[str]:
    return store.append_case_events(list(events), VOCAB)


def snapshot(store: GraphStore, case_id: str, customer: str = "C1") -> tuple[Case, list[CaseEvent], list[str]]:
    """What must not change when an append fails: the state, the events and the customer's timeline."""
    timeline = [e.id for e in store.timeline(customer, first=1000).events]
    return store.get_case(case_id), store.case_events(case_id), timeline


def test_a_case_is_created_worked_and_read_back(store: GraphStore) -> None:
    seed(store)
    first = [created("K1", description="Declined", team="cards"), ev("a1", "K1", "assigned", 1, assignee="u-bob")]
    assert append(store, *first) == ["K1-c", "a1"]
    more = [
        ev("u1", "K1", "updated", 2, priority="urgent", channel="phone"),
        to("K1", "in_progress", 3),
        comment("K1", "m1", 4, "internal"),
        comment("K1", "m2", 5, "customer", body="We are on it"),
        ev("l1", "K1", "linked", 6, order_id="O-1"),
        to("K1", "resolved", 7),
    ]
    assert append(store, *more) == [e.id for e in more]
    case = store.get_case("K1")
    assert (case.customer_id, case.record_uid, case.status, case.priority, case.channel) == (
        "C1",
        "crm|1",
        "resolved",
        "urgent",
        "phone",
    )
    assert (case.assignee, case.team, case.order_id, case.description) == ("u-bob", "cards", "O-1", "Declined")
    assert case.first_response_at == T + timedelta(minutes=5) and case.resolved_at == T + timedelta(minutes=7)
    assert (case.comments, case.version, case.created_at, case.updated_at) == (2, 8, T, T + timedelta(minutes=7))
    assert store.case_events("K1") == [*first, *more]
    assert store.get_case_due("K1") is None
    counts = store.case_counts()
    assert counts["resolved"] == 1 and sum(counts.values()) == 1 and set(counts) >= {"new", "closed"}
    assert store.open_case_ids() == ["K1"]
    append(store, to("K1", "closed", 8))
    assert store.open_case_ids() == [] and store.case_counts()["closed"] == 1
    for missing in (lambda: store.get_case("K9"), lambda: store.case_events("K9"), lambda: store.get_case_due("K9")):
        with pytest.raises(NotFoundError):
            missing()


def test_a_replay_is_skipped_and_other_content_under_a_known_id_is_a_conflict(store: GraphStore) -> None:
    seed(store)
    events = [created("K1"), to("K1", "open", 1), comment("K1", "m1", 2, "customer")]
    append(store, *events)
    before = snapshot(store, "K1")
    assert append(store, *events) == []
    assert append(store, events[2], events[2]) == []
    newer = to("K1", "resolved", 3)
    assert append(store, *events, newer) == [newer.id]  # only what is new is applied
    assert store.get_case("K1").version == 4
    after = snapshot(store, "K1")
    for changed in (
        ev(events[1].id, "K1", "status_changed", 1, to="in_progress"),  # other data
        ev(events[1].id, "K1", "status_changed", 1, "u-bob", to="open"),  # other actor
        CaseEvent(events[2].id, "K1", events[2].at + timedelta(seconds=1), "u-ann", "commented", events[2].data),
    ):
        with pytest.raises(ConflictError):
            append(store, changed)
    with pytest.raises(ConflictError):  # the same id twice in one batch, differently
        append(store, to("K1", "open", 9, "x"), to("K1", "closed", 9, "x"))
    assert snapshot(store, "K1") == after != before


def test_an_illegal_transition_writes_nothing_of_its_batch(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1"), to("K1", "open", 1))
    before = snapshot(store, "K1")
    with pytest.raises(TransitionError, match="from open to closed"):
        append(store, comment("K1", "m1", 2, "customer"), to("K1", "closed", 3))
    with pytest.raises(TransitionError, match="from new to resolved"):  # a new case in the same batch too
        append(store, created("K2"), to("K2", "resolved", 1))
    assert snapshot(store, "K1") == before
    with pytest.raises(NotFoundError):
        store.get_case("K2")
    assert store.case_counts()["new"] == 0 and store.open_case_ids() == ["K1"]


def test_a_case_hangs_off_a_record_its_customer_holds(store: GraphStore) -> None:
    seed(store)
    with pytest.raises(NotFoundError, match=r"no record crm\|404"):
        append(store, created("K1", record="crm|404"))
    with pytest.raises(NotFoundError, match=r"crm\|2 does not belong to customer C1"):
        append(store, created("K1", record="crm|2"))
    with pytest.raises(NotFoundError, match="C404"):
        append(store, created("K1", customer="C404"))
    with pytest.raises(NotFoundError, match="no case K7"):
        append(store, to("K7", "open", 1))
    with pytest.raises(InvalidInputError, match="unknown case type"):
        append(store, created("K1", type="praise"))
    append(store, created("K1"))
    with pytest.raises(ConflictError, match="exists already"):
        append(store, ev("again", "K1", "created", 1, **created("K1").data))
    # A merged-away customer id counts as its survivor.
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))
    append(store, created("K2", customer="C2", record="crm|1"))
    assert store.get_case("K2").customer_id == "C1"
    assert store.case_counts()["new"] == 2


def _expected(cases: list[Case], dues: dict[str, CaseDue], order: str) -> list[str]:
    def due(c: Case) -> tuple[int, Any, str]:
        d = dues.get(c.id)
        times = [] if d is None else [d.resolution_due, d.first_response_due if c.first_response_at is None else None]
        present = [t for t in times if t is not None]
        return (0, min(present), c.id) if present else (1, T, c.id)

    if order == "due":
        return [c.id for c in sorted(cases, key=due)]
    field = "updated_at" if order == "updated" else "created_at"
    return [c.id for c in sorted(cases, key=lambda c: (getattr(c, field), c.id), reverse=True)]


def _pages(store: GraphStore, size: int, after: str | None = None, **kw: Any) -> list[str]:
    seen: list[str] = []
    while True:
        page = store.list_cases(first=size, after=after, **kw)
        seen += [c.id for c in page.cases]
        assert len(page.cases) <= size
        if page.next_cursor is None:
            return seen
        after = page.next_cursor


def _many(store: GraphStore) -> None:
    """12 cases over three customers, two assignees, two teams and several statuses."""
    events: list[CaseEvent] = []
    for i in range(12):
        cid = f"K{i:02d}"
        n = i % 3 + 1
        events.append(created(cid, f"C{n}", f"crm|{n}", minutes=i % 5, team="cards" if i % 2 else "loans"))
        if i % 4:
            events.append(ev(f"{cid}-a", cid, "assigned", 10 + i, assignee=f"u-{'ab'[i % 2]}"))
        if i % 3 == 0:
            events.append(to(cid, "open", 20 + (i * 7) % 5))
        if i % 6 == 0:
            events.append(comment(cid, f"{cid}-m", 30, "customer"))
    append(store, *events)


FILTERS: list[tuple[dict[str, Any], Callable[[Case], bool]]] = [
    ({}, lambda c: True),
    ({"customer_id": "C2"}, lambda c: c.customer_id == "C2"),
    ({"assignee": "u-a"}, lambda c: c.assignee == "u-a"),
    ({"team": "cards"}, lambda c: c.team == "cards"),
    ({"statuses": ["open"]}, lambda c: c.status == "open"),
    ({"statuses": ["new", "open"], "team": "loans"}, lambda c: c.team == "loans"),
]


def test_views_page_by_customer_assignee_team_and_status_in_every_order(store: GraphStore) -> None:
    seed(store)
    _many(store)
    every = [store.get_case(f"K{i:02d}") for i in range(12)]
    due = {
        "K00": CaseDue(T + timedelta(hours=5), T + timedelta(days=1), "running", "cal-1"),  # answered: 1 day
        "K03": CaseDue(T + timedelta(hours=3), T + timedelta(days=2), "at_risk", "cal-1"),
        "K04": CaseDue(None, T + timedelta(hours=4), "running", "cal-1"),
        "K07": CaseDue(T + timedelta(hours=3), None, "breached", "cal-1"),
        "K09": CaseDue(None, None, "paused", "cal-1"),
    }
    store.set_case_dues(due)
    assert store.get_case_due("K03") == due["K03"] and store.get_case_due("K01") is None
    for kw, keep in FILTERS:
        chosen = [c for c in every if keep(c)]
        assert chosen, kw
        for order in ("due", "updated", "created"):
            want = _expected(chosen, due, order)
            for size in (1, 3, 5, 20):
                assert _pages(store, size, order=order, **kw) == want, (kw, order, size)
    top = store.list_cases(order="due", first=4)
    assert [c.id for c in top.cases] == ["K03", "K07", "K04", "K00"]
    assert top.dues == {k: due[k] for k in ("K03", "K07", "K04", "K00")}
    assert store.list_cases(customer_id="C1", first=1).cases[0].customer_id == "C1"
    # An update moves a case to the top of "updated".
    append(store, ev("late", "K05", "updated", 500, priority="high"))
    assert store.list_cases(order="updated", first=1).cases[0].id == "K05"


def test_pages_are_stable_under_inserts(store: GraphStore) -> None:
    seed(store)
    _many(store)
    for order in ("due", "updated", "created"):
        before = [c.id for c in store.list_cases(order=order, first=1000).cases]
        page = store.list_cases(order=order, first=5)
        append(store, created(f"N{order}a", minutes=-1), created(f"N{order}b", minutes=900))
        rest = _pages(store, 4, order=order, after=page.next_cursor) if page.next_cursor else []
        got = [c.id for c in page.cases] + [r for r in rest if not r.startswith(f"N{order}")]
        assert got == before  # no case seen twice, none skipped
        assert len(set(rest)) == len(rest)


def test_set_case_dues_orders_the_due_view_and_keeps_through_appends(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1"), created("K2"), created("K3"))
    assert [c.id for c in store.list_cases().cases] == ["K1", "K2", "K3"]  # no dues: by id
    store.set_case_dues(
        {
            "K1": CaseDue(T + timedelta(hours=9), T + timedelta(days=3)),
            "K3": CaseDue(T + timedelta(hours=1), T + timedelta(days=1)),
        }
    )
    assert [c.id for c in store.list_cases().cases] == ["K3", "K1", "K2"]
    # K3's first response: its resolution due (1 day) counts now, later than K1's first-response due.
    append(store, comment("K3", "m1", 5, "customer"))
    assert [c.id for c in store.list_cases().cases] == ["K1", "K3", "K2"]
    assert store.get_case_due("K3") == CaseDue(T + timedelta(hours=1), T + timedelta(days=1))
    with pytest.raises(NotFoundError, match="K9"):
        store.set_case_dues({"K2": CaseDue(T, T), "K9": CaseDue(T, T)})
    assert store.get_case_due("K2") is None
    store.set_case_dues({"K1": CaseDue()})  # replaced: K1 has no due now
    assert [c.id for c in store.list_cases().cases] == ["K3", "K1", "K2"]
    assert store.get_case_due("K1") == CaseDue()


def test_case_events_land_on_the_customers_timeline_without_comment_bodies(store: GraphStore) -> None:
    seed(store)
    append(
        store,
        created("K1"),
        comment("K1", "m1", 1, "internal", body="suspect fraud"),
        comment("K1", "m2", 2, "customer", body="we refund you"),
        to("K1", "open", 3),
    )
    rows = {e.id: e for e in store.timeline("C1", first=100).events}
    assert set(rows) == {"case|K1-c", "case|m1", "case|m2", "case|K1-open-3"}
    note = rows["case|m1"]
    assert (note.type, note.occurred_at, note.record_uid) == ("case_commented", T + timedelta(minutes=1), "crm|1")
    assert loads(note.data) == {
        "case_id": "K1",
        "kind": "commented",
        "actor": "u-ann",
        "data": {"comment_id": "m1", "visibility": "internal"},
    }
    assert "suspect fraud" not in note.data and "we refund you" not in rows["case|m2"].data
    assert loads(rows["case|K1-open-3"].data)["data"] == {"to": "open"}
    assert rows["case|K1-c"].type == "case_created"
    assert [e.id for e in store.timeline("C1", types=["case_status_changed"]).events] == ["case|K1-open-3"]
    assert store.timeline("C2").events == []


def test_cases_follow_a_merge_and_a_split(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1"), created("K2", "C2", "crm|2"), created("K3", "C3", "crm|3"))
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))
    assert {c.id for c in store.list_cases(customer_id="C1").cases} == {"K1", "K2"}
    assert {c.id for c in store.list_cases(customer_id="C2").cases} == {"K1", "K2"}  # the survivor's
    assert store.get_case("K2").customer_id == "C1"
    assert {e.id for e in store.timeline("C1").events} >= {"case|K1-c", "case|K2-c"}
    done = split(
        store,
        "C1",
        ["crm|2"],
        by="ann",
        reason="two people",
        now=T + timedelta(hours=3),
        new_id=lambda: "C4",
        survivorship=SurvivorshipConfig(),
    )
    assert (done.new, done.records) == ("C4", ("crm|2",))
    assert [c.id for c in store.list_cases(customer_id="C1").cases] == ["K1"]
    assert [c.id for c in store.list_cases(customer_id="C4").cases] == ["K2"]
    assert store.get_case("K2").customer_id == "C4" and store.get_case("K1").customer_id == "C1"
    assert [e.id for e in store.timeline("C4").events] == ["case|K2-c"]
    # Its history goes on under its new customer.
    append(store, to("K2", "open", 5))
    assert store.list_cases(customer_id="C4", statuses=["open"]).cases[0].customer_id == "C4"


def _race(store: GraphStore, batches: list[list[CaseEvent]]) -> list[BaseException | None]:
    barrier = threading.Barrier(len(batches))
    outcome: list[BaseException | None] = [None] * len(batches)

    def run(i: int) -> None:
        barrier.wait()
        try:
            append(store, *batches[i])
        except Exception as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


def test_concurrent_appends_to_one_case(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1"), to("K1", "open", 1))
    # Both legal in either order: both land.
    outcome = _race(
        store,
        [
            [comment("K1", f"a{i}", 2, "internal") for i in range(3)],
            [comment("K1", f"b{i}", 2, "customer") for i in range(3)],
        ],
    )
    assert outcome == [None, None]
    case = store.get_case("K1")
    assert (case.comments, case.version) == (6, 8)
    assert {e.id for e in store.case_events("K1")} >= {"a0", "a2", "b0", "b2"}
    # Two agents resolve it at once: one lands, the other is an illegal resolved -> resolved.
    outcome = _race(store, [[to("K1", "resolved", 3, "r1")], [to("K1", "resolved", 3, "r2")]])
    errors = [o for o in outcome if o is not None]
    assert len(errors) == 1 and isinstance(errors[0], TransitionError)
    assert (errors[0].from_status, errors[0].to_status) == ("resolved", "resolved")
    case = store.get_case("K1")
    assert (case.status, case.version) == ("resolved", 9)
    events = store.case_events("K1")
    assert len(events) == 9 and sum(e.id in ("r1", "r2") for e in events) == 1
    assert len([e for e in store.timeline("C1", first=100).events if e.type == "case_status_changed"]) == 2


def test_reset_clears_cases(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1"), to("K1", "open", 1))
    store.set_case_dues({"K1": CaseDue(T, T)})
    store.reset(confirm=True)
    seed(store)
    with pytest.raises(NotFoundError):
        store.get_case("K1")
    assert store.list_cases().cases == [] and store.open_case_ids() == []
    assert sum(store.case_counts().values()) == 0
    assert append(store, created("K1")) == ["K1-c"]  # the same ids are new again
    assert store.case_events("K1") == [created("K1")]


def test_case_arguments_are_checked_before_the_store_is_asked(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1"), created("K2"))
    cursor = store.list_cases(first=1).next_cursor
    assert cursor is not None
    bad_arguments: list[dict[str, Any]] = [
        {"first": 0},
        {"first": 1001},
        {"order": "priority"},
        {"after": "not-a-cursor"},
        {"after": cursor, "order": "created"},  # a cursor of another order
        {"statuses": ["done"]},
        {"statuses": []},
        {"statuses": "open"},
        {"assignee": ""},
    ]
    for bad in bad_arguments:
        with pytest.raises(InvalidInputError):
            store.list_cases(**bad)
    assert [c.id for c in store.list_cases(after=cursor).cases] == ["K2"]
    with pytest.raises(NotFoundError):
        store.list_cases(customer_id="C404")
    for call in (
        lambda: store.append_case_events(created("K3"), VOCAB),  # type: ignore[arg-type]
        lambda: store.append_case_events([created("K3")], None),  # type: ignore[arg-type]
        lambda: store.append_case_events(["K3"], VOCAB),  # type: ignore[list-item]
        lambda: store.set_case_dues({"K1": (T, T)}),  # type: ignore[dict-item]
        lambda: store.open_case_ids(limit=0),
        lambda: store.get_case("bad id"),
    ):
        with pytest.raises(InvalidInputError):
            call()
    assert store.append_case_events([], VOCAB) == []
    assert store.open_case_ids(after="K1") == ["K2"] and store.open_case_ids(limit=1) == ["K1"]


def test_a_stored_case_takes_events_after_the_vocabulary_changed(store: GraphStore) -> None:
    seed(store)
    append(store, created("K1", type="dispute", channel="branch"))
    narrower = CaseVocabulary(types=("complaint",), channels=("email",))
    # The stored history folds without the vocabulary; only what is new is checked against it.
    assert store.append_case_events([comment("K1", "m1", 1, "customer")], narrower) == ["m1"]
    with pytest.raises(InvalidInputError, match="unknown case channel 'branch'"):
        store.append_case_events([ev("u1", "K1", "updated", 2, channel="branch")], narrower)
    case = store.get_case("K1")
    assert (case.type, case.channel, case.version) == ("dispute", "branch", 2)
