"""The KYC model: strict event data, the status rules, maker-checker, document versions, tasks, folding."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.kyc import (
    APPLICATION_STATUSES,
    TRANSITIONS,
    Application,
    KycEvent,
    KycTransitionError,
    MakerCheckerError,
    ScreeningDecision,
    advance,
    applicant_actor,
    fold,
)
from c360.graph.verification import Verification

T = datetime(2025, 3, 1, 9, tzinfo=UTC)
SHA = "ab" * 32
ENTERED = {"full_name": "Asha Rao", "date_of_birth": "1990-04-02", "pan": "ABCPR1234F", "mobile": "+919800000001"}


def ev(eid: str, kind: str, minutes: int = 1, actor: str = "officer-1", app: str = "A1", **data: Any) -> KycEvent:
    return KycEvent(eid, app, T + timedelta(minutes=minutes), actor, kind, data)


def created(app: str = "A1", **extra: Any) -> KycEvent:
    data = {
        "customer_id": "C1",
        "record_uid": "crm|1",
        "applicant_id": "p1",
        "product": "auto_loan",
        "amount": "650000.50",
        "currency": "INR",
        "entered": ENTERED,
        **extra,
    }
    return KycEvent(f"{app}-c", app, T, applicant_actor("p1"), "created", data)


def to(status: str, minutes: int, actor: str = "officer-1", reason: str | None = None) -> KycEvent:
    data: dict[str, Any] = {"to": status}
    if reason is not None:
        data["reason"] = reason
    return ev(f"s-{status}-{minutes}", "status_changed", minutes, actor, **data)


def doc(eid: str, document_id: str, version: int, minutes: int = 1, **extra: Any) -> KycEvent:
    data = {
        "document_id": document_id,
        "doc_type": "pan_card",
        "version": version,
        "checksum": SHA,
        "size": 2048,
        "media_type": "application/pdf",
        "storage_key": f"kyc/A1/{document_id}/{version}",
        **extra,
    }
    return ev(eid, "document_added", minutes, applicant_actor("p1"), **data)


def task(eid: str, task_id: str, minutes: int = 1, **extra: Any) -> KycEvent:
    data = {
        "task_id": task_id,
        "task_kind": "verify_documents",
        "role": "kyc_officer",
        "priority": "normal",
        "due_at": (T + timedelta(hours=4)).isoformat(),
        **extra,
    }
    return ev(eid, "task_opened", minutes, "system", **data)


def walk(*statuses: str, verifier: str = "officer-1", approver: str = "officer-2") -> Application:
    """The application after moving through ``statuses`` (reasons given where they are needed)."""
    app = fold([created()])
    for i, status in enumerate(statuses, start=1):
        actor = verifier if status == "documents_verified" else approver
        reason = "needed" if status in ("rejected", "more_info_requested") else None
        app = advance(app, to(status, i, actor, reason))
    return app


# -- status rules ----------------------------------------------------------------------------------------


def _path_to(status: str) -> list[str]:
    paths = {
        "draft": [],
        "submitted": ["submitted"],
        "more_info_requested": ["submitted", "more_info_requested"],
        "documents_verified": ["submitted", "documents_verified"],
        "risk_assessed": ["submitted", "documents_verified", "risk_assessed"],
        "pending_approval": ["submitted", "documents_verified", "risk_assessed", "pending_approval"],
        "approved": ["submitted", "documents_verified", "risk_assessed", "pending_approval", "approved"],
        "rejected": ["submitted", "rejected"],
    }
    return paths[status]


@pytest.mark.parametrize(
    ("start", "target"), [(s, t) for s in APPLICATION_STATUSES for t in TRANSITIONS[s]], ids=lambda v: str(v)
)
def test_every_allowed_move_applies(start: str, target: str) -> None:
    app = walk(*_path_to(start), target)
    assert app.status == target and app.version == len(_path_to(start)) + 2


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("draft", "approved"),
        ("draft", "documents_verified"),
        ("submitted", "approved"),
        ("submitted", "pending_approval"),
        ("more_info_requested", "documents_verified"),
        ("documents_verified", "approved"),
        ("risk_assessed", "submitted"),
        ("pending_approval", "draft"),
        ("approved", "rejected"),
        ("rejected", "submitted"),
    ],
)
def test_an_illegal_move_names_from_to_and_the_allowed_moves(start: str, target: str) -> None:
    app = walk(*_path_to(start))
    reason = "because" if target in ("rejected", "more_info_requested") else None
    with pytest.raises(KycTransitionError) as err:
        advance(app, to(target, 20, "officer-3", reason))
    assert (err.value.from_status, err.value.to_status, err.value.allowed) == (start, target, TRANSITIONS[start])
    message = str(err.value)
    assert f"from {start} to {target}" in message
    assert all(a in message for a in TRANSITIONS[start]) if TRANSITIONS[start] else "final" in message
    assert isinstance(err.value, ConflictError)


def test_maker_checker_the_verifier_cannot_approve_but_may_reject() -> None:
    ready = walk("submitted", "documents_verified", "risk_assessed", "pending_approval", verifier="ann", approver="bob")
    assert ready.verified_by == "ann"
    with pytest.raises(MakerCheckerError, match="ann verified its documents and so cannot approve"):
        advance(ready, to("approved", 10, "ann"))
    approved = advance(ready, to("approved", 10, "bob"))
    assert (approved.status, approved.decided_by, approved.decided_at) == ("approved", "bob", T + timedelta(minutes=10))
    rejected = advance(ready, to("rejected", 10, "ann", "income not proven"))
    assert (rejected.decided_by, rejected.decision_reason, rejected.status_reason) == (
        "ann",
        "income not proven",
        "income not proven",
    )


def test_a_re_verification_moves_the_maker_checker_to_the_new_verifier() -> None:
    app = walk("submitted", "documents_verified", "more_info_requested", "submitted", verifier="ann", approver="bob")
    app = advance(app, to("documents_verified", 10, "cy"))
    app = advance(advance(app, to("risk_assessed", 11, "bob")), to("pending_approval", 12, "bob"))
    assert app.verified_by == "cy"
    assert advance(app, to("approved", 13, "ann")).status == "approved"
    with pytest.raises(MakerCheckerError):
        advance(app, to("approved", 13, "cy"))


@pytest.mark.parametrize("status", ["rejected", "more_info_requested"])
def test_rejecting_and_asking_for_more_need_a_reason(status: str) -> None:
    with pytest.raises(InvalidInputError, match=f"a move to {status} needs a reason"):
        to(status, 1)
    with pytest.raises(InvalidInputError, match="status change reason"):
        ev("x", "status_changed", to=status, reason="  ")
    assert to("submitted", 1).data == {"to": "submitted"}


def test_updates_only_in_draft_and_more_info_requested() -> None:
    app = fold([created()])
    app = advance(app, ev("u1", "updated", 1, amount="700000", entered={**ENTERED, "email": "a@x.in"}))
    assert app.amount == Decimal("700000") and app.entered["email"] == "a@x.in"
    submitted = advance(app, to("submitted", 2))
    with pytest.raises(KycTransitionError, match="only in draft or more_info_requested"):
        advance(submitted, ev("u2", "updated", 3, currency="USD"))
    again = advance(submitted, to("more_info_requested", 3, reason="blurred PAN"))
    assert advance(again, ev("u3", "updated", 4, product="two_wheeler_loan")).product == "two_wheeler_loan"
    with pytest.raises(InvalidInputError, match="needs at least one"):
        ev("u4", "updated")


def test_nothing_but_purges_and_tasks_change_a_decided_application() -> None:
    app = fold([created(), doc("d1", "pan", 1), to("submitted", 2), to("rejected", 3, reason="fraud")])
    for event in (
        doc("d2", "pan", 2, 4),
        ev("k", "document_checked", 4, document_id="pan", version=1, result="passed", details={}),
        ev("r", "risk_assessed", 4, score=1, category="low", reasons=[], rekyc_due="2030-01-01"),
    ):
        with pytest.raises(KycTransitionError, match="is rejected"):
            advance(app, event)
    purged = advance(app, ev("p", "document_purged", 5, document_id="pan", version=1, reason="retention_180d"))
    assert purged.documents[0].purge_reason == "retention_180d"


# -- documents -------------------------------------------------------------------------------------------


def test_document_versions_follow_each_other_and_all_are_kept() -> None:
    app = fold([created(), doc("d1", "pan", 1, expires_on="2031-05-01", filename="pan.pdf"), doc("d2", "aad", 1)])
    app = advance(app, doc("d3", "pan", 2, 3, media_type="image/png"))
    assert [(d.document_id, d.version) for d in app.documents] == [("pan", 1), ("aad", 1), ("pan", 2)]
    assert [(d.document_id, d.version) for d in app.latest_documents()] == [("pan", 2), ("aad", 1)]
    first = app.document("pan", 1)
    assert (first.expires_on, first.filename, first.uploaded_by) == (date(2031, 5, 1), "pan.pdf", "applicant:p1")
    with pytest.raises(ConflictError, match="needs version 3 next, not 2"):  # a repeat
        advance(app, doc("d4", "pan", 2))
    with pytest.raises(ConflictError, match="needs version 3 next, not 5"):  # a gap
        advance(app, doc("d4", "pan", 5))
    with pytest.raises(ConflictError, match="needs version 1 next, not 2"):
        advance(app, doc("d4", "new", 2))
    with pytest.raises(ConflictError, match="is a pan_card, not a passport"):
        advance(app, doc("d4", "pan", 3, doc_type="passport"))


def test_a_document_is_checked_and_purged_by_version() -> None:
    app = fold([created(), doc("d1", "pan", 1), doc("d2", "pan", 2)])
    details = {"name": "strong", "pan": {"level": "exact"}}
    app = advance(app, ev("k1", "document_checked", 2, document_id="pan", version=1, result="failed", details=details))
    assert (app.document("pan", 1).check, app.document("pan", 2).check) == ("failed", None)
    assert app.document("pan", 1).check_details["pan"]["level"] == "exact"
    app = advance(app, ev("p1", "document_purged", 3, document_id="pan", version=1, reason="retention"))
    purged = app.document("pan", 1)
    assert (purged.purged_at, purged.checksum, purged.check) == (T + timedelta(minutes=3), SHA, "failed")
    with pytest.raises(ConflictError, match="was purged"):
        advance(app, ev("p2", "document_purged", 4, document_id="pan", version=1, reason="again"))
    with pytest.raises(NotFoundError, match="no document pan version 7"):
        advance(app, ev("k2", "document_checked", 4, document_id="pan", version=7, result="passed", details={}))


# -- tasks -----------------------------------------------------------------------------------------------


def test_a_task_is_opened_assigned_escalated_and_completed_once() -> None:
    app = fold([created(), task("t1", "T1", subject="Check PAN"), task("t2", "T2", 2, priority="high")])
    t1 = app.task("T1")
    assert (t1.status, t1.role, t1.assignee, t1.escalation_level, t1.due_at) == (
        "open",
        "kyc_officer",
        None,
        0,
        T + timedelta(hours=4),
    )
    app = advance(app, ev("a1", "task_assigned", 3, task_id="T1", assignee="ann"))
    app = advance(app, ev("e1", "task_escalated", 4, task_id="T1", level=1))
    app = advance(app, ev("e2", "task_escalated", 5, task_id="T1", level=2, to_role="kyc_supervisor"))
    t1 = app.task("T1")
    assert (t1.assignee, t1.escalation_level, t1.escalated_at, t1.role) == (
        "ann",
        2,
        T + timedelta(minutes=5),
        "kyc_supervisor",
    )
    with pytest.raises(ConflictError, match="the next is 3, not 2"):
        advance(app, ev("e3", "task_escalated", 6, task_id="T1", level=2))
    done = advance(app, ev("c1", "task_completed", 6, "ann", task_id="T1", outcome="verified", reason="all match"))
    t1 = done.task("T1")
    assert (t1.status, t1.completed_by, t1.outcome, t1.reason) == ("done", "ann", "verified", "all match")
    assert [t.id for t in done.open_tasks()] == ["T2"]
    for again in (
        ev("c2", "task_completed", 7, task_id="T1", outcome="verified", reason="twice"),
        ev("a2", "task_assigned", 7, task_id="T1", assignee=None),
        ev("e4", "task_escalated", 7, task_id="T1", level=3),
    ):
        with pytest.raises(KycTransitionError, match="task T1 is done already"):
            advance(done, again)
    with pytest.raises(ConflictError, match="T2 is open already"):
        advance(done, task("t3", "T2"))
    with pytest.raises(NotFoundError, match="no task T9"):
        advance(done, ev("a3", "task_assigned", 7, task_id="T9", assignee="bob"))
    with pytest.raises(NotFoundError, match="no task T9"):
        done.task("T9")
    with pytest.raises(InvalidInputError, match="reason"):
        ev("c3", "task_completed", task_id="T2", outcome="verified")


# -- strict validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("created", {"amount": "0"}, "amount must be a decimal string above 0"),
        ("created", {"amount": "10.123"}, "at most 2 decimals"),
        ("created", {"amount": 100}, "amount must be a decimal string"),
        ("created", {"currency": "inr"}, "currency must be 3 upper-case letters"),
        ("created", {"record_uid": "crm1"}, "record_uid is 'source|key'"),
        ("created", {"entered": {**ENTERED, "aadhaar": "234123412346"}}, "entered has no aadhaar"),
        ("created", {"entered": {"full_name": "A", "pan": "X"}}, "entered needs date_of_birth"),
        ("created", {"entered": {**ENTERED, "date_of_birth": "02/04/1990"}}, "date_of_birth must be a date"),
        ("created", {"entered": {**ENTERED, "date_of_birth": "1990-02-30"}}, "date_of_birth must be a date"),
        ("created", {"product": "Auto Loan"}, "product must be a lower-case token"),
        ("created", {"applicant_id": 7}, "invalid applicant id"),
        ("created", {"colour": "red"}, "has no colour"),
    ],
)
def test_created_data_is_checked_strictly(kind: str, data: dict[str, Any], message: str) -> None:
    base = dict(created().data)
    with pytest.raises(InvalidInputError, match=message):
        KycEvent("x", "A1", T, "system", kind, {**base, **data})


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("status_changed", {"to": "closed"}, "unknown application status"),
        ("document_added", {"doc_type": "selfie"}, "unknown document type"),
        ("document_added", {"checksum": "AB" * 32}, "SHA-256"),
        ("document_added", {"media_type": "image/gif"}, "unknown media type"),
        ("document_added", {"version": 0}, "document version must be a whole number from 1"),
        ("document_added", {"size": True}, "document size"),
        ("document_added", {"expires_on": "tomorrow"}, "expires_on must be a date"),
        ("document_checked", {"result": "ok"}, "unknown check result"),
        ("document_checked", {"details": {"x": object()}}, "not a JSON value"),
        ("screened", {"hits": [{"list_name": "ofac"}]}, "screening hit 0 needs"),
        (
            "screened",
            {"hits": [{**{"list_name": "l", "entry_key": "k", "content_hash": "h"}, "score": 2, "suppressed": False}]},
            "score must be a finite number from 0 to 1",
        ),
        ("screened", {"screened_names": "Asha"}, "screened_names must be a list"),
        ("risk_assessed", {"category": "extreme"}, "unknown risk category"),
        ("risk_assessed", {"score": float("nan")}, "risk score must be a finite number"),
        ("task_opened", {"due_at": "2025-03-01T10:00:00"}, "due_at must be an ISO 8601 time with its offset"),
        ("task_opened", {"task_kind": "call_customer"}, "unknown task kind"),
        ("task_opened", {"priority": "asap"}, "unknown task priority"),
        ("verified", {"verification": {"id": "v1"}}, "verification record has no"),
    ],
)
def test_other_kinds_are_checked_strictly(kind: str, data: dict[str, Any], message: str) -> None:
    good: dict[str, dict[str, Any]] = {
        "status_changed": {"to": "submitted"},
        "document_added": dict(doc("x", "pan", 1).data),
        "document_checked": {"document_id": "pan", "version": 1, "result": "passed", "details": {}},
        "screened": {"hits": [], "screened_names": ["Asha Rao"]},
        "risk_assessed": {"score": 12.5, "category": "low", "reasons": [], "rekyc_due": "2033-01-01"},
        "task_opened": dict(task("x", "T1").data),
        "verified": {"verification": {}},
    }
    if kind != "verified":  # the good data pass: the message is about what the test changed
        KycEvent("ok", "A1", T, "system", kind, good[kind])
    with pytest.raises(InvalidInputError, match=message):
        KycEvent("x", "A1", T, "system", kind, {**good[kind], **data})


def test_events_are_checked_for_ids_times_and_kinds() -> None:
    data = dict(created().data)
    with pytest.raises(InvalidInputError, match="has no time zone"):
        KycEvent("x", "A1", datetime(2025, 1, 1), "system", "created", data)
    with pytest.raises(InvalidInputError, match="invalid application id"):
        KycEvent("x", "A 1", T, "system", "created", data)
    with pytest.raises(InvalidInputError, match="unknown KYC event kind"):
        KycEvent("x", "A1", T, "system", "deleted", data)
    with pytest.raises(InvalidInputError, match="KYC event actor"):
        KycEvent("x", "A1", T, "", "created", data)
    event = created()
    with pytest.raises(TypeError):
        event.data["amount"] = "1"  # type: ignore[index]
    assert KycEvent(event.id, event.application_id, event.at, event.actor, event.kind, event.data) == event


def test_advance_refuses_events_out_of_place() -> None:
    with pytest.raises(InvalidInputError, match="first event must be created"):
        fold([to("submitted", 1)])
    app = fold([created()])
    with pytest.raises(ConflictError, match="exists already"):
        advance(app, created())
    with pytest.raises(InvalidInputError, match="is of application A2"):
        advance(app, ev("x", "status_changed", 1, app="A2", to="submitted"))
    with pytest.raises(InvalidInputError, match="before application A1 was created"):
        advance(app, to("submitted", -5))
    with pytest.raises(InvalidInputError, match="at least its created event"):
        fold([])


def test_a_screening_decision_is_checked() -> None:
    d = ScreeningDecision("C1", "ofac", "e-1", "h1", "false_positive", "ann", T, "different birth year")
    assert d.key == ("C1", "ofac", "e-1", "h1")
    with pytest.raises(InvalidInputError, match="unknown screening decision"):
        ScreeningDecision("C1", "ofac", "e-1", "h1", "maybe", "ann", T, "hm")
    with pytest.raises(InvalidInputError, match="no time zone"):
        ScreeningDecision("C1", "ofac", "e-1", "h1", "confirmed_match", "ann", datetime(2025, 1, 1), "x")


# -- folding ---------------------------------------------------------------------------------------------


def _verification(check: str, minutes: int) -> dict[str, Any]:
    at = T + timedelta(minutes=minutes)
    return Verification(
        f"ver-{check}", "A1", check, "pass", 0.97, "matches", {"level": "exact"}, "system", at
    ).to_json()


def test_a_happy_path_folds_to_an_approved_application() -> None:
    hit = {"list_name": "un", "entry_key": "un-9", "content_hash": "c9", "score": 0.41, "suppressed": True}
    events = [
        created(),
        doc("d1", "pan", 1, 1),
        doc("d2", "aadhaar", 1, 1, doc_type="aadhaar", media_type="image/jpeg"),
        to("submitted", 2, applicant_actor("p1")),
        task("t1", "T1", 2),
        ev("k1", "document_checked", 3, document_id="pan", version=1, result="passed", details={"pan": "exact"}),
        ev("v1", "verified", 3, "system", verification=_verification("pan_format", 3)),
        ev("v2", "verified", 3, "system", verification=_verification("name_match", 3)),
        ev("c1", "task_completed", 4, "ann", task_id="T1", outcome="verified", reason="docs fine"),
        to("documents_verified", 4, "ann"),
        ev("sc", "screened", 5, "system", hits=[hit], screened_names=["Asha Rao"]),
        ev("r1", "risk_assessed", 5, "system", score=23, category="low", reasons=["salaried"], rekyc_due="2035-03-01"),
        to("risk_assessed", 5, "system"),
        to("pending_approval", 6, "system"),
        to("approved", 7, "bob"),
    ]
    app = fold(events)
    assert (app.status, app.version, app.submitted_at, app.verified_by, app.decided_by) == (
        "approved",
        len(events),
        T + timedelta(minutes=2),
        "ann",
        "bob",
    )
    assert (app.customer_id, app.record_uid, app.applicant_id, app.amount, app.currency) == (
        "C1",
        "crm|1",
        "p1",
        Decimal("650000.50"),
        "INR",
    )
    assert [v.check for v in app.verifications] == ["pan_format", "name_match"]
    assert app.verifications[0].confidence == pytest.approx(0.97)
    assert [(h.entry_key, h.suppressed, h.score) for h in app.screening_hits] == [("un-9", True, 0.41)]
    assert app.risk is not None and (app.risk.category, app.risk.rekyc_due, app.risk.reasons) == (
        "low",
        date(2035, 3, 1),
        ("salaried",),
    )
    assert app.open_tasks() == () and app.updated_at == T + timedelta(minutes=7)
    assert fold(events) == app  # deterministic


def test_a_more_info_loop_keeps_the_first_submission_and_the_latest_reason() -> None:
    events = [
        created(),
        to("submitted", 1, applicant_actor("p1")),
        to("more_info_requested", 2, "ann", "PAN photo is blurred"),
        doc("d1", "pan", 1, 3),
        to("submitted", 4, applicant_actor("p1")),
        to("documents_verified", 5, "ann"),
        to("more_info_requested", 6, "bob", "salary slip missing"),
    ]
    app = fold(events)
    assert (app.status, app.submitted_at, app.status_reason, app.verified_by) == (
        "more_info_requested",
        T + timedelta(minutes=1),
        "salary slip missing",
        "ann",
    )
    resubmitted = advance(app, to("submitted", 7, applicant_actor("p1")))
    assert resubmitted.status_reason is None and resubmitted.decided_at is None
