"""SLA configuration (validation, defaults, policy fallback) and the clocks of a case at fixed times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml
from c360.graph.business_time import BusinessCalendar
from c360.graph.errors import ConfigError, InvalidInputError
from c360.graph.sla import (
    CalendarConfig,
    CaseFacts,
    HolidaysConfig,
    SlaConfig,
    SlaPolicy,
    clocks,
)
from pydantic import BaseModel, ValidationError

H = timedelta(hours=1)
M = timedelta(minutes=1)
US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# Mon-Fri 09:00-17:00 UTC; Monday 2026-12-07.
CALENDAR = SlaConfig().calendar("default")
MON = utc(2026, 12, 7, 9)


def policy(first: str = "1h", resolution: str = "8h", at_risk: float = 0.8) -> SlaPolicy:
    return SlaPolicy.model_validate(
        {"type": "*", "priority": "*", "first_response": first, "resolution": resolution, "at_risk": at_risk}
    )


def facts(*history: tuple[datetime, str], first_response_at: datetime | None = None) -> CaseFacts:
    return CaseFacts(history[0][0], list(history), first_response_at)


# -- configuration ------------------------------------------------------------------------------------------------

EXAMPLE = """
calendars:
  default:
    timezone: Asia/Kolkata
    hours: {mon: ["09:30-18:00"], tue: ["09:30-18:00"], wed: ["09:30-18:00"], thu: ["09:30-18:00"],
            fri: ["09:30-18:00"], sat: [], sun: []}
    holidays: {country: IN, subdivision: MH}
    closed: ["2026-12-31"]
policies:
  - {type: complaint, priority: urgent, calendar: default, first_response: 1h, resolution: 8h, at_risk: 0.8}
  - {type: "*", priority: "*", calendar: default, first_response: 8h, resolution: 40h}
"""


def test_the_documented_example_loads() -> None:
    config = SlaConfig.from_mapping(yaml.safe_load(EXAMPLE))
    urgent = config.policy_for("complaint", "urgent")
    assert (urgent.first_response, urgent.resolution, urgent.at_risk) == (H, 8 * H, 0.8)
    assert config.policy_for("billing", "low").resolution == 40 * H
    calendar = config.calendar("default")
    assert not calendar.is_working_day(date(2026, 12, 31)) and not calendar.is_working_day(date(2027, 1, 26))
    assert calendar.is_working_day(date(2027, 1, 27))


def test_defaults_one_calendar_and_a_policy_per_priority() -> None:
    config = SlaConfig()
    assert list(config.calendars) == ["default"]
    calendar = config.calendar("default")
    assert calendar.timezone == "UTC" and calendar.holiday_country is None
    assert calendar.between(utc(2026, 12, 7), utc(2026, 12, 14)) == 40 * H  # mon-fri 09:00-17:00
    assert config.policy_for("anything", "urgent").first_response == H
    assert config.policy_for("anything", "unheard-of").resolution == 40 * H  # the catch-all


def test_every_configuration_field_is_described() -> None:
    models: list[type[BaseModel]] = [SlaConfig, CalendarConfig, HolidaysConfig, SlaPolicy]
    for model in models:
        assert model.model_config.get("extra") == "forbid", model
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"


def test_policy_fallback_order() -> None:
    config = SlaConfig.from_mapping(
        {
            "policies": [
                {"type": "*", "priority": "*", "first_response": "4h", "resolution": "40h"},
                {"type": "*", "priority": "urgent", "first_response": "3h", "resolution": "30h"},
                {"type": "complaint", "priority": "*", "first_response": "2h", "resolution": "20h"},
                {"type": "complaint", "priority": "urgent", "first_response": "1h", "resolution": "10h"},
            ]
        }
    )
    assert config.policy_for("complaint", "urgent").first_response == H  # exact
    assert config.policy_for("complaint", "low").first_response == 2 * H  # type, "*"
    assert config.policy_for("billing", "urgent").first_response == 3 * H  # "*", priority
    assert config.policy_for("billing", "low").first_response == 4 * H  # "*", "*"


def test_no_matching_policy_is_a_config_error() -> None:
    config = SlaConfig.from_mapping({"policies": [{"type": "complaint", "priority": "*", "first_response": "1h",
                                                   "resolution": "8h"}]})  # fmt: skip
    with pytest.raises(ConfigError, match=r"no SLA policy for type 'billing' and priority 'low'.*catch-all"):
        config.policy_for("billing", "low")
    with pytest.raises(InvalidInputError, match="non-empty"):
        config.policy_for("", "low")
    with pytest.raises(InvalidInputError, match="unknown calendar 'night'"):
        config.calendar("night")


def with_calendar(**calendar: Any) -> dict[str, Any]:
    return {"calendars": {"default": calendar}}


def with_policy(**fields: Any) -> dict[str, Any]:
    return {"policies": [{"type": "*", "priority": "*", "first_response": "1h", "resolution": "8h", **fields}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_policy(calendar="night"), "unknown calendar 'night' \\(known: default\\)"),
        (with_calendar(hours={"mon": ["9-17"]}), "calendars.default.hours: mon: working interval '9-17'.*HH:MM-HH:MM"),
        (with_calendar(hours={"mon": ["25:00-26:00"]}), "not a valid time of day"),
        (with_calendar(hours={"mon": ["17:00-09:00"]}), "reversed"),
        (with_calendar(hours={"mon": ["09:00-12:00", "11:30-13:00"]}), "mon: 09:00-12:00 and 11:30-13:00 overlap"),
        (with_calendar(hours={"lundi": ["09:00-12:00"]}), "unknown weekday 'lundi': expected one of mon, tue"),
        (with_calendar(hours={"mon": [], "sun": []}), "no working time"),
        (with_calendar(timezone="Asia/Atlantis"), "calendars.default.timezone: unknown time zone 'Asia/Atlantis'"),
        (with_calendar(holidays={"country": "XX"}), "Country XX not available"),
        (with_calendar(holidays={"country": "IN", "subdivision": "ZZ"}), "does not have subdivision ZZ"),
        (with_calendar(closed=["2026-13-01"]), "calendars.default.closed.0"),
        (with_calendar(opens="09:00"), "calendars.default.opens: Extra inputs are not permitted"),
        (with_policy(first_response="3d"), "first_response: duration '3d': business durations are hours and minutes"),
        (with_policy(resolution="1w"), "resolution: duration '1w': business durations are hours and minutes"),
        (with_policy(resolution="0m"), "must be longer than zero"),
        (with_policy(resolution=5), "give hours and minutes"),
        (with_policy(at_risk=0), "at_risk 0.0: must lie strictly between 0 and 1"),
        (with_policy(at_risk=1), "at_risk 1.0: must lie strictly between 0 and 1"),
        (with_policy(at_risk=1.5), "must lie strictly between 0 and 1"),
        (with_policy(priority=""), "policies.0.priority"),
        ({"policies": [with_policy()["policies"][0]] * 2}, "two policies for type '\\*' and priority '\\*'"),
    ],
)
def test_invalid_configuration_is_refused_with_its_reason(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SlaConfig.from_mapping(data)
    with pytest.raises(ValidationError):  # constructing the model directly says the same through pydantic
        SlaConfig.model_validate(data)


@pytest.mark.parametrize(("text", "minutes"), [("90m", 90), ("4h", 240), ("1h30m", 90)])
def test_accepted_durations(text: str, minutes: int) -> None:
    assert SlaConfig.from_mapping(with_policy(first_response=text)).policies[0].first_response == minutes * M


def test_calendar_fingerprint_tells_definitions_apart() -> None:
    one = CalendarConfig.model_validate({"hours": {"mon": ["09:00-17:00"]}})
    same = CalendarConfig.model_validate({"hours": {"mon": ["09:00-17:00"], "tue": []}, "closed": []})
    closed = CalendarConfig.model_validate({"hours": {"mon": ["09:00-17:00"]}, "closed": ["2026-12-31"]})
    assert one.fingerprint() == same.fingerprint() != closed.fingerprint()
    assert one.fingerprint() == one.calendar().fingerprint()


# -- clocks ---------------------------------------------------------------------------------------------------------


def test_a_new_case_runs_both_clocks_in_business_time() -> None:
    # Created Friday 16:00; at Monday 09:30 one hour of Friday and half an hour of Monday have elapsed.
    friday = utc(2026, 12, 4, 16)
    result = clocks(facts((friday, "new")), policy(first="2h"), CALENDAR, utc(2026, 12, 7, 9, 30))
    first = result.first_response
    assert (first.elapsed, first.remaining, first.state, first.running) == (90 * M, 30 * M, "running", True)
    assert first.due_at == utc(2026, 12, 7, 10) and first.at_risk_at == utc(2026, 12, 7, 9, 36)  # 0.8 x 2h = 96m
    assert first.breached_at is None and first.stopped_at is None
    assert result.resolution.due_at == utc(2026, 12, 7, 16)  # 8h: 1h Friday, 7h Monday
    assert result.next_due == first.due_at
    assert result.calendar_fingerprint == CALENDAR.fingerprint() and result.computed_at == utc(2026, 12, 7, 9, 30)


def test_first_response_stops_at_the_response_and_is_met() -> None:
    case = facts((MON, "new"), (MON + 10 * M, "open"), first_response_at=MON + 30 * M)
    result = clocks(case, policy(), CALENDAR, MON + 5 * H)
    first = result.first_response
    assert (first.state, first.elapsed, first.stopped_at, first.running) == ("met", 30 * M, MON + 30 * M, False)
    assert first.due_at is None and first.at_risk_at is None and first.breached_at is None
    assert result.next_due == result.resolution.due_at == MON + 8 * H


def test_a_response_after_now_is_not_seen_yet() -> None:
    case = facts((MON, "new"), first_response_at=MON + 2 * H)
    assert clocks(case, policy(first="4h"), CALENDAR, MON + H).first_response.state == "running"


def test_waiting_on_customer_pauses_both_clocks_across_a_weekend() -> None:
    friday = utc(2026, 12, 4, 15)
    case = facts((friday, "new"), (friday + H, "waiting_on_customer"), (utc(2026, 12, 8, 10), "open"))
    paused = clocks(case, policy(first="4h", resolution="8h"), CALENDAR, utc(2026, 12, 7, 12))  # Monday noon
    for clock in (paused.first_response, paused.resolution):
        assert (clock.state, clock.running, clock.elapsed, clock.due_at, clock.at_risk_at) == (
            "paused",
            False,
            H,
            None,
            None,
        )
    assert paused.next_due is None
    # Back to open on Tuesday 10:00; at 11:00: Friday's hour and Tuesday's hour, nothing of Monday.
    resumed = clocks(case, policy(first="4h", resolution="8h"), CALENDAR, utc(2026, 12, 8, 11))
    assert resumed.resolution.elapsed == 2 * H and resumed.resolution.state == "running"
    assert resumed.resolution.due_at == utc(2026, 12, 8, 17)  # 6h left from 11:00
    assert resumed.first_response.due_at == utc(2026, 12, 8, 13)


def test_paused_clock_can_be_at_risk() -> None:
    case = facts((MON, "new"), (MON + 50 * M, "waiting_on_customer"))
    assert clocks(case, policy(first="1h"), CALENDAR, MON + 3 * H).first_response.state == "at_risk"


def test_reopen_resumes_resolution_with_the_elapsed_time_kept() -> None:
    case_history: list[tuple[datetime, str]] = [
        (MON, "new"),
        (MON + H, "in_progress"),
        (MON + 3 * H, "resolved"),  # 3h elapsed
        (MON + 4 * H, "closed"),
        (utc(2026, 12, 9, 9), "open"),  # Wednesday: reopened
        (utc(2026, 12, 9, 11), "resolved"),  # 2h more
    ]
    p = policy(first="4h", resolution="8h")
    resolved = clocks(facts(*case_history[:4]), p, CALENDAR, utc(2026, 12, 8, 12))
    assert (resolved.resolution.state, resolved.resolution.elapsed) == ("met", 3 * H)
    assert resolved.resolution.stopped_at == MON + 3 * H  # resolved, then closed: stopped when it was resolved
    reopened = clocks(facts(*case_history[:5]), p, CALENDAR, utc(2026, 12, 9, 10))
    clock = reopened.resolution
    assert (clock.state, clock.elapsed, clock.running, clock.stopped_at) == ("running", 4 * H, True, None)
    assert clock.due_at == utc(2026, 12, 9, 14)  # 4h left from Wednesday 10:00
    again = clocks(facts(*case_history), p, CALENDAR, utc(2026, 12, 10, 9))
    assert (again.resolution.state, again.resolution.elapsed) == ("met", 5 * H)
    assert again.resolution.stopped_at == utc(2026, 12, 9, 11)


def test_resolving_without_a_response_stops_the_first_response_clock() -> None:
    case = facts((MON, "new"), (MON + 30 * M, "resolved"), (MON + 2 * H, "open"))
    first = clocks(case, policy(first="1h"), CALENDAR, MON + 6 * H).first_response
    assert (first.state, first.elapsed, first.stopped_at) == ("met", 30 * M, MON + 30 * M)


def test_at_risk_exactly_at_the_threshold() -> None:
    case = facts((MON, "new"))
    p = policy(first="1h", at_risk=0.8)  # at risk from 48 minutes
    before = clocks(case, p, CALENDAR, MON + 48 * M - US).first_response
    at = clocks(case, p, CALENDAR, MON + 48 * M).first_response
    assert before.state == "running" and at.state == "at_risk"
    assert before.at_risk_at == at.at_risk_at == MON + 48 * M


def test_breached_only_once_elapsed_exceeds_the_target() -> None:
    case = facts((MON, "new"))
    at_target = clocks(case, policy(first="1h"), CALENDAR, MON + H).first_response
    assert (at_target.state, at_target.remaining, at_target.breached_at) == ("at_risk", timedelta(0), None)
    past = clocks(case, policy(first="1h"), CALENDAR, MON + H + US).first_response
    assert (past.state, past.remaining, past.breached_at, past.due_at) == ("breached", -US, MON + H, MON + H)
    # Still breached after closing time, the elapsed time frozen at the day's end.
    evening = clocks(case, policy(first="1h"), CALENDAR, utc(2026, 12, 7, 20)).first_response
    assert (evening.state, evening.elapsed, evening.breached_at) == ("breached", 8 * H, MON + H)


def test_a_clock_stopped_after_its_target_stays_breached() -> None:
    case = facts((MON, "new"), first_response_at=MON + 2 * H)
    first = clocks(case, policy(first="1h"), CALENDAR, MON + 3 * H).first_response
    assert (first.state, first.breached_at, first.stopped_at, first.running) == (
        "breached",
        MON + H,
        MON + 2 * H,
        False,
    )
    met = clocks(facts((MON, "new"), first_response_at=MON + H), policy(first="1h"), CALENDAR, MON + 3 * H)
    assert met.first_response.state == "met"  # stopped exactly at the target


def test_breach_time_counts_only_running_time() -> None:
    # 30 minutes, a pause over the night, then the target of 1h is reached at 09:30 the next day.
    case = facts((MON + 7 * H, "new"), (MON + 7 * H + 30 * M, "waiting_on_customer"), (utc(2026, 12, 8, 9), "open"))
    first = clocks(case, policy(first="1h"), CALENDAR, utc(2026, 12, 8, 12)).first_response
    assert (first.state, first.breached_at, first.elapsed) == ("breached", utc(2026, 12, 8, 9, 30), 3 * H + 30 * M)


def test_adding_a_closed_date_moves_the_due_time() -> None:
    case = facts((MON + 6 * H, "new"))  # Monday 15:00
    before = clocks(case, policy(first="4h"), CALENDAR, MON + 7 * H)
    assert before.first_response.due_at == utc(2026, 12, 8, 11)  # 2h Monday, 2h Tuesday
    closed = CalendarConfig.model_validate({"closed": ["2026-12-08"]}).calendar()
    after = clocks(case, policy(first="4h"), closed, MON + 7 * H)
    assert after.first_response.due_at == utc(2026, 12, 9, 11)  # Tuesday is closed now
    assert after.calendar_fingerprint != before.calendar_fingerprint


def test_clocks_follow_a_calendar_with_holidays_and_dst() -> None:
    london = BusinessCalendar.of(
        "Europe/London", {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}, holiday_country="GB"
    )
    assert date(2027, 3, 26) in holidays.country_holidays("GB", years=2027)  # Good Friday, what the package says
    created = utc(2027, 3, 26, 16)  # Good Friday 16:00 GMT: closed; Monday 29 March is BST (09:00 = 08:00 UTC)
    result = clocks(facts((created, "new")), policy(first="2h"), london, utc(2027, 3, 27, 12))
    assert result.first_response.elapsed == timedelta(0)
    assert result.first_response.due_at == utc(2027, 3, 29, 10)  # 11:00 BST


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CaseFacts(datetime(2026, 12, 7, 9), [(datetime(2026, 12, 7, 9), "new")]), "no time zone"),
        (lambda: CaseFacts(MON, []), "must start with \\(created_at, 'new'\\)"),
        (lambda: CaseFacts(MON, [(MON, "open")]), "must start with"),
        (lambda: CaseFacts(MON, [(MON + H, "new")]), "must start with"),
        (lambda: CaseFacts(MON, [(MON, "new"), (MON + H, "snoozed")]), "unknown status 'snoozed'"),
        (lambda: CaseFacts(MON, [(MON, "new"), (MON + H, "open"), (MON + M, "resolved")]), "back in time"),
        (lambda: CaseFacts(MON, [(MON, "new")], MON - H), "first_response_at comes before created_at"),
    ],
)
def test_bad_facts_are_refused(build: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build()


def test_now_must_be_aware_and_not_before_creation() -> None:
    with pytest.raises(InvalidInputError, match="before the case was created"):
        clocks(facts((MON, "new")), policy(), CALENDAR, MON - M)
    with pytest.raises(InvalidInputError, match="no time zone"):
        clocks(facts((MON, "new")), policy(), CALENDAR, datetime(2026, 12, 7, 10))


def test_facts_in_other_zones_are_compared_as_instants() -> None:
    kolkata = datetime(2026, 12, 7, 14, 30, tzinfo=ZoneInfo("Asia/Kolkata"))  # 09:00 UTC
    case = CaseFacts(kolkata, [(MON, "new")])
    assert case.created_at == MON and case.created_at.tzinfo is UTC
