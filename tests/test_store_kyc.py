"""The KYC port's contract (append-only, idempotent histories; folded state; application and task views
with cursors; screening memory; applications that follow their anchor record through merges and splits):
every backend passes every test here."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.kyc import Application, KycEvent, KycTransitionError, MakerCheckerError, ScreeningDecision, fold
from c360.graph.models import ChangeSet, Evidence, MergeEvent, loads
from c360.graph.store import GraphStore
from c360.graph.verification import Verification
from c360.resolution.config import SurvivorshipConfig
from c360.resolution.undo import split
from store_contract import PHONE, T, seed

ENTERED = {"full_name": "Asha Rao", "date_of_birth": "1990-04-02", "pan": "ABCPR1234F", "email": "asha@x.in"}


def ev(eid: str, app: str, kind: str, minutes: int, actor: str = "ann", **data: Any) -> KycEvent:
    return KycEvent(eid, app, T + timedelta(minutes=minutes), actor, kind, data)


def created(
    app: str, customer: str = "C1", record: str = "crm|1", minutes: int = 0, applicant: str | None = "p1"
) -> KycEvent:
    data = {
        "customer_id": customer,
        "record_uid": record,
        "applicant_id": applicant,
        "product": "auto_loan",
        "amount": "650000",
        "currency": "INR",
        "entered": ENTERED,
    }
    return ev(f"{app}-c", app, "created", minutes, "applicant:p1" if applicant else "system", **data)


def to(app: str, status: str, minutes: int, actor: str = "ann", reason: str | None = None) -> KycEvent:
    data: dict[str, Any] = {"to": status} | ({"reason": reason} if reason else {})
    return ev(f"{app}-{status}-{minutes}", app, "status_changed", minutes, actor, **data)


def task(app: str, task_id: str, hours: int, role: str = "kyc_officer", **extra: Any) -> KycEvent:
    due = (T + timedelta(hours=hours)).isoformat()
    data = {"task_id": task_id, "task_kind": "verify_documents", "role": role, "priority": "normal", "due_at": due}
    return ev(f"{task_id}-open", app, "task_opened", 1, "system", **data, **extra)


def doc(eid: str, app: str, document_id: str, version: int, minutes: int = 1) -> KycEvent:
    data = {
        "document_id": document_id,
        "doc_type": "pan_card",
        "version": version,
        "checksum": "0f" * 32,
        "size": 1000,
        "media_type": "image/jpeg",
        "storage_key": f"kyc/{app}/{document_id}/{version}",
        "filename": "asha-rao-pan.jpg",
    }
    return ev(eid, app, "document_added", minutes, "applicant:p1", **data)


def append(store: GraphStore, *events: KycEvent) -> list[str]:
    return store.append_kyc_events(list(events))


def snapshot(store: GraphStore, app: str, customer: str = "C1") -> tuple[Any, ...]:
    """What must not change when an append fails: state, events, the task view and the timeline."""
    timeline = [e.id for e in store.timeline(customer, first=1000).events]
    tasks = [t.id for t in store.list_tasks(statuses=None, first=1000).tasks]
    return store.get_application(app), store.kyc_events(app), tasks, timeline


def test_an_application_is_created_worked_and_read_back(store: GraphStore) -> None:
    seed(store)
    verification = Verification(
        "ver-1", "A1", "pan_format", "pass", 1, "valid PAN", {"masked": "ABCxxxx4F"}, "system", T
    )
    events = [
        created("A1"),
        doc("d1", "A1", "pan", 1),
        doc("d2", "A1", "pan", 2, 2),
        to("A1", "submitted", 3, "applicant:p1"),
        task("A1", "T1", 4),
        ev(
            "k1",
            "A1",
            "document_checked",
            4,
            "system",
            document_id="pan",
            version=2,
            result="passed",
            details={"pan": "exact"},
        ),
        ev("v1", "A1", "verified", 4, "system", verification=verification.to_json()),
        ev("c1", "A1", "task_completed", 5, task_id="T1", outcome="verified", reason="fine"),
        to("A1", "documents_verified", 5),
        ev(
            "s1",
            "A1",
            "screened",
            6,
            "system",
            hits=[{"list_name": "un", "entry_key": "e1", "content_hash": "h1", "score": 0.5, "suppressed": False}],
            screened_names=["Asha Rao"],
        ),
        ev(
            "r1",
            "A1",
            "risk_assessed",
            6,
            "system",
            score=12.5,
            category="low",
            reasons=["salaried"],
            rekyc_due="2035-01-01",
        ),
        to("A1", "risk_assessed", 7, "system"),
        to("A1", "pending_approval", 7, "system"),
    ]
    assert append(store, *events[:3]) == ["A1-c", "d1", "d2"]
    assert append(store, *events[3:]) == [e.id for e in events[3:]]
    with pytest.raises(MakerCheckerError):
        append(store, to("A1", "approved", 8, "ann"))
    append(store, to("A1", "approved", 8, "bob"))
    app = store.get_application("A1")
    assert (app.status, app.customer_id, app.verified_by, app.decided_by, app.version) == (
        "approved",
        "C1",
        "ann",
        "bob",
        14,
    )
    assert [(d.document_id, d.version, d.check) for d in app.documents] == [("pan", 1, None), ("pan", 2, "passed")]
    assert app.verifications == (verification,)
    assert app.risk is not None and app.risk.category == "low" and app.screening_hits[0].score == 0.5
    assert app.task("T1").status == "done" and app.entered["pan"] == "ABCPR1234F"
    assert store.kyc_events("A1") == [*events, to("A1", "approved", 8, "bob")]
    assert fold(store.kyc_events("A1")) == app  # the kept state is the fold of the kept events
    for missing in (lambda: store.get_application("A9"), lambda: store.kyc_events("A9")):
        with pytest.raises(NotFoundError, match="no application A9"):
            missing()
    with pytest.raises(InvalidInputError):
        store.get_application("not an id")


def test_a_replay_is_skipped_and_other_content_under_a_known_id_is_a_conflict(store: GraphStore) -> None:
    seed(store)
    events = [created("A1"), to("A1", "submitted", 1), task("A1", "T1", 2)]
    append(store, *events)
    before = snapshot(store, "A1")
    assert append(store, *events) == []
    assert append(store, events[1], events[1]) == []
    assert snapshot(store, "A1") == before
    newer = to("A1", "more_info_requested", 3, reason="blurred")
    assert append(store, *events, newer) == [newer.id]
    after = snapshot(store, "A1")
    assert after[0].version == 4
    for changed in (
        ev(events[1].id, "A1", "status_changed", 1, to="rejected", reason="no"),  # other data
        ev(events[1].id, "A1", "status_changed", 1, "bob", to="submitted"),  # other actor
        KycEvent(events[1].id, "A1", events[1].at + timedelta(seconds=1), "ann", "status_changed", events[1].data),
    ):
        with pytest.raises(ConflictError, match="stored already with other content"):
            append(store, changed)
    with pytest.raises(ConflictError, match="given twice"):
        append(store, to("A1", "submitted", 9), ev("A1-submitted-9", "A1", "status_changed", 9, "bob", to="submitted"))
    assert snapshot(store, "A1") == after


def test_an_illegal_event_writes_nothing_of_its_batch(store: GraphStore) -> None:
    seed(store)
    append(store, created("A1"), task("A1", "T1", 2))
    before = snapshot(store, "A1")
    bad_batches = [
        [to("A1", "submitted", 1), task("A1", "T2", 3), to("A1", "approved", 2, "bob")],  # an illegal move
        [doc("d1", "A1", "pan", 1), doc("d2", "A1", "pan", 3)],  # a version gap
        [
            ev("c1", "A1", "task_completed", 1, task_id="T1", outcome="x", reason="y"),
            ev("c2", "A1", "task_completed", 2, task_id="T1", outcome="x", reason="again"),
        ],  # done twice
        [created("A2"), to("A2", "submitted", 1), to("A9", "submitted", 1)],  # an unknown application
    ]
    for batch in bad_batches:
        with pytest.raises((KycTransitionError, ConflictError, NotFoundError)):
            append(store, *batch)
        assert snapshot(store, "A1") == before
    with pytest.raises(NotFoundError):
        store.get_application("A2")
    assert store.list_applications().applications == [before[0]]
    assert store.application_rows().applications == [before[0]]


def test_an_application_hangs_off_a_record_its_customer_holds(store: GraphStore) -> None:
    seed(store)
    with pytest.raises(NotFoundError, match=r"no record crm\|404"):
        append(store, created("A1", record="crm|404"))
    with pytest.raises(NotFoundError, match=r"crm\|2 does not belong to customer C1"):
        append(store, created("A1", record="crm|2"))
    with pytest.raises(NotFoundError, match="C404"):
        append(store, created("A1", customer="C404"))
    with pytest.raises(NotFoundError, match="no application A7"):
        append(store, to("A7", "submitted", 1))
    append(store, created("A1"))
    with pytest.raises(ConflictError, match="exists already"):
        append(store, ev("again", "A1", "created", 1, **created("A1").data))
    # Task ids are unique across applications.
    append(store, created("A3", "C3", "crm|3"), task("A1", "T1", 1))
    with pytest.raises(ConflictError, match="task id T1 is taken by application A1"):
        append(store, ev("t-dup", "A3", "task_opened", 2, "system", **task("A1", "T1", 1).data))
    # A merged-away customer id counts as its survivor.
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))
    append(store, created("A2", customer="C2", record="crm|1"))
    assert store.get_application("A2").customer_id == "C1"


def _pages(fetch: Any, size: int, **kw: Any) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page = fetch(first=size, after=after, **kw)
        items = page.applications if hasattr(page, "applications") else page.tasks
        assert len(items) <= size
        seen += [x.id for x in items]
        if page.next_cursor is None:
            return seen
        after = page.next_cursor


def _newest(apps: list[Application], field: str) -> list[str]:
    return [a.id for a in sorted(apps, key=lambda a: (getattr(a, field), a.id), reverse=True)]


def test_application_views_filter_and_page_with_stable_cursors(store: GraphStore) -> None:
    seed(store)
    # A0..A6: created a minute apart, on C1 (crm|1) or C3 (crm|3); some by another applicant; some submitted.
    for i in range(7):
        customer, record = ("C1", "crm|1") if i % 2 == 0 else ("C3", "crm|3")
        event = created(f"A{i}", customer, record, minutes=i, applicant="p1" if i < 5 else None)
        append(store, event)
    for i in (1, 2, 5):  # touched later: the "updated" order differs from "created"
        append(store, to(f"A{i}", "submitted", 20 - i))
    apps = [store.get_application(f"A{i}") for i in range(7)]
    every = store.list_applications(first=100).applications
    assert [a.id for a in every] == _newest(apps, "updated_at")
    for size in (1, 2, 3):
        assert _pages(store.list_applications, size) == _newest(apps, "updated_at")
        assert _pages(store.list_applications, size, order="created") == _newest(apps, "created_at")
    on_c1 = [a for a in apps if a.customer_id == "C1"]
    assert _pages(store.list_applications, 2, customer_id="C1") == _newest(on_c1, "updated_at")
    assert _pages(store.list_applications, 2, applicant_id="p1", order="created") == ["A4", "A3", "A2", "A1", "A0"]
    assert _pages(store.list_applications, 1, statuses=["submitted"]) == ["A1", "A2", "A5"]
    both = store.list_applications(customer_id="C3", statuses=["draft", "submitted"], applicant_id="p1")
    assert [a.id for a in both.applications] == ["A1", "A3"]
    # Keyset: a page cursor still holds after newer applications arrive.
    page = store.list_applications(first=2, order="created")
    append(store, created("A9", minutes=30))
    rest = _pages(lambda **kw: store.list_applications(order="created", **kw), 100)
    assert "A9" in rest
    assert [a.id for a in store.list_applications(first=100, order="created", after=page.next_cursor).applications] == [
        "A4",
        "A3",
        "A2",
        "A1",
        "A0",
    ]
    with pytest.raises(NotFoundError, match="no customer C404"):
        store.list_applications(customer_id="C404")
    for bad in (
        lambda: store.list_applications(after="garbage!"),
        lambda: store.list_applications(order="due"),
        lambda: store.list_applications(statuses=["open"]),
        lambda: store.list_applications(statuses="draft"),  # type: ignore[arg-type]
        lambda: store.list_applications(first=0),
        lambda: store.list_applications(order="updated", after=page.next_cursor),  # another order's cursor
        lambda: store.list_tasks(after=page.next_cursor),
    ):
        with pytest.raises(InvalidInputError):
            bad()


def test_task_views_order_by_due_and_filter_by_role_assignee_status(store: GraphStore) -> None:
    seed(store)
    append(store, created("A1"), created("A2", "C3", "crm|3"))
    append(
        store,
        task("A1", "T-b", 5),
        task("A1", "T-a", 5),  # the same due: by task id
        task("A2", "T-c", 2, role="kyc_supervisor"),
        task("A2", "T-d", 9, assignee="bob"),
        task("A1", "T-e", 1),
    )
    append(store, ev("as", "A1", "task_assigned", 2, task_id="T-b", assignee="bob"))
    append(store, ev("done", "A1", "task_completed", 3, "bob", task_id="T-e", outcome="verified", reason="ok"))
    assert _pages(store.list_tasks, 1) == ["T-c", "T-a", "T-b", "T-d"]  # open only by default
    assert _pages(store.list_tasks, 2, statuses=None) == ["T-e", "T-c", "T-a", "T-b", "T-d"]
    assert _pages(store.list_tasks, 2, statuses=["done"]) == ["T-e"]
    assert _pages(store.list_tasks, 1, role="kyc_officer") == ["T-a", "T-b", "T-d"]
    assert _pages(store.list_tasks, 1, assignee="bob") == ["T-b", "T-d"]
    assert _pages(store.list_tasks, 2, due_before=T + timedelta(hours=5)) == ["T-c"]
    assert _pages(store.list_tasks, 2, due_before=T + timedelta(hours=5, seconds=1)) == ["T-c", "T-a", "T-b"]
    # An escalation to another role moves the task to that queue.
    append(store, ev("esc", "A1", "task_escalated", 4, "system", task_id="T-a", level=1, to_role="kyc_supervisor"))
    assert [t.id for t in store.list_tasks(role="kyc_supervisor").tasks] == ["T-c", "T-a"]
    escalated = store.list_tasks(role="kyc_supervisor").tasks[1]
    assert (escalated.escalation_level, escalated.application_id) == (1, "A1")
    assert escalated == store.get_application("A1").task("T-a")
    with pytest.raises(InvalidInputError):
        store.list_tasks(due_before=T.replace(tzinfo=None))
    with pytest.raises(InvalidInputError):
        store.list_tasks(statuses=["closed"])


def test_application_rows_page_every_application_in_id_order(store: GraphStore) -> None:
    seed(store)
    ids = [f"A{i:02d}" for i in range(11)]
    append(store, *(created(a, minutes=i) for i, a in enumerate(reversed(ids))))
    assert _pages(store.application_rows, 4) == ids
    page = store.application_rows(first=3)
    assert [a.id for a in page.applications] == ids[:3] and page.next_cursor is not None
    assert all(a.customer_id == "C1" for a in page.applications)
    assert [a.id for a in store.application_rows(after=page.next_cursor, first=1000).applications] == ids[3:]
    with pytest.raises(InvalidInputError):
        store.application_rows(after="x")


def test_application_summaries_give_what_the_report_needs_without_the_state(store: GraphStore) -> None:
    seed(store)
    risk = {"score": 70, "category": "high", "reasons": ["PEP"], "rekyc_due": "2027-01-01"}
    append(
        store,
        created("A1"),
        created("A2", minutes=1),
        to("A2", "submitted", 2),
        created("A3", minutes=3),
        to("A3", "submitted", 4),
        to("A3", "documents_verified", 5, actor="officer"),
        ev("A3-risk", "A3", "risk_assessed", 6, "system", **risk),
        to("A3", "rejected", 7, actor="manager", reason="PEP without source of funds"),
    )
    got = {s.id: s for s in _summaries(store, 2)}
    assert sorted(got) == ["A1", "A2", "A3"]
    for app_id, summary in got.items():
        app = store.get_application(app_id)
        category = app.risk.category if app.risk is not None else None
        assert (summary.status, summary.risk_category, summary.submitted_at, summary.decided_at) == (
            app.status, category, app.submitted_at, app.decided_at)  # fmt: skip
    assert got["A3"].risk_category == "high" and got["A3"].decided_at == T + timedelta(minutes=7)
    assert got["A1"].submitted_at is None and got["A2"].risk_category is None
    with pytest.raises(InvalidInputError):
        store.application_summaries(after=store.application_rows(first=1).next_cursor)  # another view's cursor


def _summaries(store: GraphStore, size: int) -> list[Any]:
    out, after = [], None
    while True:
        page = store.application_summaries(after=after, first=size)
        out.extend(page.summaries)
        if page.next_cursor is None:
            return out
        after = page.next_cursor


def test_screening_decisions_are_replaced_by_the_newer_and_read_by_subject(store: GraphStore) -> None:
    def decision(entry: str, content: str, what: str, minutes: int, subject: str = "C1") -> ScreeningDecision:
        return ScreeningDecision(subject, "un", entry, content, what, "ann", T + timedelta(minutes=minutes), "checked")

    first = decision("e1", "h1", "false_positive", 1)
    store.put_screening_decisions([first, decision("e2", "h2", "confirmed_match", 1), first])
    store.put_screening_decisions([decision("e1", "h1", "false_positive", 1)])  # the same again
    assert store.screening_decisions("C1") == [first, decision("e2", "h2", "confirmed_match", 1)]
    newer = decision("e1", "h1", "confirmed_match", 5)
    store.put_screening_decisions([newer])
    store.put_screening_decisions([decision("e1", "h1", "false_positive", 3)])  # older than what is kept
    changed = decision("e1", "h9", "confirmed_match", 6)  # the entry changed: a decision of its own
    store.put_screening_decisions([changed, decision("e3", "h3", "false_positive", 1, subject="C2")])
    assert store.screening_decisions("C1") == [newer, changed, decision("e2", "h2", "confirmed_match", 1)]
    assert [d.entry_key for d in store.screening_decisions("C2")] == ["e3"]
    assert store.screening_decisions("C404") == []
    with pytest.raises(InvalidInputError):
        store.put_screening_decisions([object()])  # type: ignore[list-item]


def test_applications_follow_a_merge_and_a_split(store: GraphStore) -> None:
    seed(store)
    append(store, created("A1"), created("A2", "C2", "crm|2"), created("A3", "C3", "crm|3"))
    store.apply(ChangeSet(merges=[MergeEvent("C1", "C2", T, Evidence("deterministic", (PHONE.uid,)), ("crm|2",))]))
    assert {a.id for a in store.list_applications(customer_id="C1").applications} == {"A1", "A2"}
    assert {a.id for a in store.list_applications(customer_id="C2").applications} == {"A1", "A2"}
    assert store.get_application("A2").customer_id == "C1"
    assert {e.id for e in store.timeline("C1").events} >= {"kyc|A1-c", "kyc|A2-c"}
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
    assert [a.id for a in store.list_applications(customer_id="C1").applications] == ["A1"]
    assert [a.id for a in store.list_applications(customer_id="C4").applications] == ["A2"]
    assert store.get_application("A2").customer_id == "C4" and store.get_application("A1").customer_id == "C1"
    assert [a.customer_id for a in store.application_rows().applications] == ["C1", "C4", "C3"]
    assert [e.id for e in store.timeline("C4").events] == ["kyc|A2-c"]
    # Its history goes on under its new customer.
    append(store, to("A2", "submitted", 5))
    assert store.list_applications(customer_id="C4", statuses=["submitted"]).applications[0].customer_id == "C4"


def test_timeline_rows_carry_no_personal_data(store: GraphStore) -> None:
    seed(store)
    verification = Verification(
        "ver-1", "A1", "name_match", "pass", 0.9, "names agree", {"level": "strong"}, "system", T
    )
    append(
        store,
        created("A1"),
        doc("d1", "A1", "pan", 1),
        ev("u1", "A1", "updated", 1, amount="700000", entered={**ENTERED, "mobile": "+919800000001"}),
        ev(
            "k1",
            "A1",
            "document_checked",
            2,
            "system",
            document_id="pan",
            version=1,
            result="passed",
            details={"name": "Asha Rao"},
        ),
        ev("v1", "A1", "verified", 2, "system", verification=verification.to_json()),
        ev("s1", "A1", "screened", 3, "system", hits=[], screened_names=["Asha Rao"]),
    )
    rows = {e.id: e for e in store.timeline("C1", first=100).events}
    assert set(rows) == {"kyc|A1-c", "kyc|d1", "kyc|u1", "kyc|k1", "kyc|v1", "kyc|s1"}
    assert all(r.record_uid == "crm|1" for r in rows.values())
    assert (rows["kyc|A1-c"].type, rows["kyc|k1"].type) == ("kyc_created", "kyc_document_checked")
    for row in rows.values():
        assert "Asha" not in row.data and "ABCPR1234F" not in row.data and "+9198" not in row.data
    created_row = loads(rows["kyc|A1-c"].data)
    assert (created_row["application_id"], created_row["kind"], created_row["actor"]) == (
        "A1",
        "created",
        "applicant:p1",
    )
    assert created_row["data"] == {
        "customer_id": "C1",
        "record_uid": "crm|1",
        "applicant_id": "p1",
        "product": "auto_loan",
        "amount": "650000",
        "currency": "INR",
    }
    assert loads(rows["kyc|u1"].data)["data"] == {"amount": "700000"}
    assert loads(rows["kyc|v1"].data)["data"] == {"check": "name_match", "result": "pass"}
    assert loads(rows["kyc|k1"].data)["data"] == {"document_id": "pan", "version": 1, "result": "passed"}
    assert [e.id for e in store.timeline("C1", types=["kyc_verified"]).events] == ["kyc|v1"]


def test_reset_empties_the_kyc_domain(store: GraphStore) -> None:
    seed(store)
    append(store, created("A1"), task("A1", "T1", 1))
    store.put_screening_decisions([ScreeningDecision("C1", "un", "e", "h", "false_positive", "ann", T, "no")])
    store.reset(confirm=True)
    seed(store)
    assert store.list_applications().applications == [] and store.list_tasks().tasks == []
    assert store.screening_decisions("C1") == []
    assert append(store, created("A1")) == ["A1-c"]  # ids are free again


def test_concurrent_appends_serialise_so_only_one_decision_applies(store: GraphStore) -> None:
    seed(store)
    append(store, created("A1"), to("A1", "submitted", 1))
    # Neither move may follow the other: rejected is final, more_info_requested only goes back to submitted.
    batches = [[to("A1", "more_info_requested", 2, "ann", "blurred")], [to("A1", "rejected", 2, "bob", "forged")]] * 2
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
    app = store.get_application("A1")
    # The first to commit wins; the same batch again is a replay, the other move is refused by the rules.
    assert app.status in ("more_info_requested", "rejected") and app.version == 3
    loser = 1 if app.status == "more_info_requested" else 0
    assert all(outcome[i] is None for i in range(len(batches)) if i % 2 != loser)
    assert all(isinstance(outcome[i], KycTransitionError) for i in range(len(batches)) if i % 2 == loser)
    assert len(store.kyc_events("A1")) == 3
