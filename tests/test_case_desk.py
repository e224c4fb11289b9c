"""The case desk (issue 15): SLA dues kept with every change and rewritten when a calendar changes,
business days and public holidays through the desk, idempotent changes, and cases anchored on the
record of their order. Fixed clocks; every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from c360.graph.case_desk import CaseDesk
from c360.graph.errors import ConflictError, NotFoundError
from c360.graph.models import ChangeSet, StoredEvent
from c360.graph.sla import SlaConfig
from c360.graph.store import GraphStore
from store_contract import seed

FRIDAY_4PM = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)
GB = {
    "calendars": {
        "default": {"timezone": "Europe/London", "holidays": {"country": "GB", "subdivision": "ENG"}},
    },
    "policies": [{"type": "*", "priority": "*", "first_response": "4h", "resolution": "16h"}],
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def desk(store: GraphStore, clock: Clock, sla: SlaConfig | None = None) -> CaseDesk:
    return CaseDesk(store, sla=sla or SlaConfig(), clock=clock)


def open_case(d: CaseDesk, priority: str = "high", **kw: object) -> str:
    view = d.open(customer_id="C1", actor="agent-1", type="complaint", priority=priority, channel="phone",
                  subject="Parcel lost", **kw)  # type: ignore[arg-type]  # fmt: skip
    return view.case.id


def test_business_hours_skip_the_weekend_and_the_dues_are_stored_for_the_views(store: GraphStore) -> None:
    seed(store)
    clock = Clock(FRIDAY_4PM)
    d = desk(store, clock)
    cid = open_case(d)  # high: 4h first response, 16h resolution, mon-fri 09-17 UTC
    due = store.get_case_due(cid)
    assert due is not None
    assert due.first_response_due == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 1h Friday + 3h Monday
    assert due.resolution_due == datetime(2026, 12, 8, 16, 0, tzinfo=UTC)  # 1h + 8h Monday + 7h Tuesday
    clock.now = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    view = d.view(cid)
    assert view.clocks.first_response.state == "at_risk"  # 3.5h of 4h, past 0.8
    d.change(cid, actor="agent-1", kind="commented", data={"body": "On it", "visibility": "customer"})
    assert store.get_case_due(cid).first_response_due is None  # type: ignore[union-attr]  # met: no longer due
    assert d.view(cid).clocks.first_response.state == "met"


def test_public_holidays_close_the_day_and_a_calendar_change_recomputes_open_cases(store: GraphStore) -> None:
    seed(store)
    clock = Clock(datetime(2026, 12, 24, 16, 0, tzinfo=UTC))  # Thursday, 16:00 in London
    d = desk(store, clock, SlaConfig.model_validate(GB))
    first = open_case(d)
    # 1h on the 24th; 25th, 26th (Saturday), 27th and the 28th (Boxing Day, observed) closed; 3h on the 29th
    assert store.get_case_due(first).first_response_due == datetime(2026, 12, 29, 12, 0, tzinfo=UTC)  # type: ignore[union-attr]
    closed = open_case(d)
    for to in ("open", "resolved", "closed"):
        d.change(closed, actor="agent-1", kind="status_changed", data={"to": to})
    assert d.recompute() == (1, 0)  # same calendar: nothing changes (the closed case is not looked at)

    office_shut = {**GB, "calendars": {"default": {**GB["calendars"]["default"], "closed": ["2026-12-29"]}}}  # type: ignore[dict-item]
    changed = desk(store, clock, SlaConfig.model_validate(office_shut))
    assert changed.recompute() == (1, 1)
    due = store.get_case_due(first)
    assert due is not None and due.first_response_due == datetime(2026, 12, 30, 12, 0, tzinfo=UTC)
    assert due.calendar == SlaConfig.model_validate(office_shut).calendars["default"].fingerprint()
    assert changed.recompute() == (1, 0)


def test_a_pause_waiting_on_the_customer_and_a_reopen_keep_the_resolution_clock_honest(store: GraphStore) -> None:
    seed(store)
    clock = Clock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))  # Monday 09:00
    d = desk(store, clock)
    cid = open_case(d, priority="normal")  # 40h resolution
    d.change(cid, actor="agent-1", kind="status_changed", data={"to": "open"})
    clock.now += timedelta(hours=2)
    d.change(cid, actor="agent-1", kind="status_changed", data={"to": "waiting_on_customer"})
    assert store.get_case_due(cid).resolution_due is None  # type: ignore[union-attr]  # paused: no due time
    clock.now += timedelta(days=1)  # a whole business day waiting does not count
    d.change(cid, actor="customer", kind="status_changed", data={"to": "in_progress"})
    assert d.view(cid).clocks.resolution.elapsed == timedelta(hours=2)
    clock.now += timedelta(hours=1)
    d.change(cid, actor="agent-1", kind="status_changed", data={"to": "resolved"})
    clock.now += timedelta(days=2)
    d.change(cid, actor="customer", kind="status_changed", data={"to": "open"})  # reopened: the clock resumes
    view = d.view(cid)
    assert view.case.reopened == 1 and view.clocks.resolution.running
    assert view.clocks.resolution.elapsed == timedelta(hours=3)


def test_changes_with_an_event_id_apply_once_and_a_clash_is_a_conflict(store: GraphStore) -> None:
    seed(store)
    clock = Clock(FRIDAY_4PM)
    d = desk(store, clock)
    cid = open_case(d, event_id="ui-1")
    assert open_case(d, event_id="ui-1") == cid
    clock.now += timedelta(minutes=5)
    for _ in range(2):
        d.change(cid, actor="agent-1", kind="commented", data={"body": "hi", "visibility": "internal"}, event_id="c-1")
    assert d.view(cid).case.comments == 1
    with pytest.raises(ConflictError):
        d.change(
            cid, actor="agent-1", kind="commented", data={"body": "other", "visibility": "internal"}, event_id="c-1"
        )


def test_a_case_about_an_order_hangs_off_the_order_record(store: GraphStore) -> None:
    seed(store)
    order = StoredEvent("shop|o-9", "order", FRIDAY_4PM, '{"order_id": "O-9", "total": "10"}', record_uid="crm|1")
    store.apply(ChangeSet(events=[order]))
    d = desk(store, Clock(FRIDAY_4PM))
    cid = open_case(d, order_id="O-9")
    assert store.get_case(cid).record_uid == "crm|1"
    with pytest.raises(NotFoundError, match="no order"):
        open_case(d, order_id="O-404")
    with pytest.raises(NotFoundError, match="no order"):
        d.change(cid, actor="agent-1", kind="linked", data={"order_id": "O-404"})
