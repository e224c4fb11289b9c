"""Business calendars: add and between over weekends, lunch breaks, public holidays, closed dates and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from c360.graph.business_time import (
    HORIZON_DAYS,
    BusinessCalendar,
    WorkInterval,
    format_duration,
    parse_duration,
)
from c360.graph.errors import InvalidInputError
from hypothesis import given, settings
from hypothesis import strategies as st

LONDON = ZoneInfo("Europe/London")
KOLKATA = ZoneInfo("Asia/Kolkata")
WEEK = ("mon", "tue", "wed", "thu", "fri")


def weekdays(*intervals: str) -> dict[str, list[str]]:
    return {day: list(intervals) for day in WEEK}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


NINE_TO_FIVE = BusinessCalendar.of("UTC", weekdays("09:00-17:00"))
LUNCH = BusinessCalendar.of("UTC", weekdays("09:00-12:30", "13:30-17:30"))


# -- weekends, opening hours, lunch -----------------------------------------------------------------------------


def test_add_skips_the_weekend() -> None:
    # Friday 2026-12-04 16:00 + 2h: one hour on Friday, one on Monday.
    assert NINE_TO_FIVE.add(utc(2026, 12, 4, 16), timedelta(hours=2)) == utc(2026, 12, 7, 10)
    assert NINE_TO_FIVE.between(utc(2026, 12, 4, 16), utc(2026, 12, 7, 10)) == timedelta(hours=2)


def test_start_outside_working_hours_counts_from_the_next_opening() -> None:
    assert NINE_TO_FIVE.add(utc(2026, 12, 5, 12), timedelta(hours=1)) == utc(2026, 12, 7, 10)  # Saturday
    assert NINE_TO_FIVE.add(utc(2026, 12, 8, 7), timedelta(minutes=30)) == utc(2026, 12, 8, 9, 30)  # before 09:00
    assert NINE_TO_FIVE.add(utc(2026, 12, 8, 20), timedelta(minutes=30)) == utc(2026, 12, 9, 9, 30)  # after 17:00
    assert NINE_TO_FIVE.between(utc(2026, 12, 5, 0), utc(2026, 12, 7, 9)) == timedelta(0)


def test_a_duration_used_up_at_closing_time_ends_at_closing_time() -> None:
    assert NINE_TO_FIVE.add(utc(2026, 12, 8, 9), timedelta(hours=8)) == utc(2026, 12, 8, 17)
    assert NINE_TO_FIVE.add(utc(2026, 12, 8, 9), timedelta(hours=8, minutes=1)) == utc(2026, 12, 9, 9, 1)


def test_zero_duration_is_the_start_itself() -> None:
    assert NINE_TO_FIVE.add(utc(2026, 12, 5, 12), timedelta(0)) == utc(2026, 12, 5, 12)


def test_lunch_break_is_not_business_time() -> None:
    assert LUNCH.add(utc(2026, 12, 8, 12), timedelta(hours=1)) == utc(2026, 12, 8, 14)
    assert LUNCH.between(utc(2026, 12, 8, 12), utc(2026, 12, 8, 14)) == timedelta(hours=1)
    assert LUNCH.between(utc(2026, 12, 8, 0), utc(2026, 12, 9, 0)) == timedelta(hours=7, minutes=30)
    assert not LUNCH.is_open(utc(2026, 12, 8, 13)) and LUNCH.is_open(utc(2026, 12, 8, 13, 30))


def test_saturday_hours_and_closed_sunday() -> None:
    calendar = BusinessCalendar.of("UTC", {**weekdays("09:00-17:30"), "sat": ["10:00-14:00"], "sun": []})
    # Friday 17:00 + 1h: 30 min Friday, 30 min Saturday from 10:00.
    assert calendar.add(utc(2026, 12, 4, 17), timedelta(hours=1)) == utc(2026, 12, 5, 10, 30)
    assert calendar.add(utc(2026, 12, 5, 13), timedelta(hours=2)) == utc(2026, 12, 7, 10)


def test_results_are_utc_whatever_zone_the_input_has() -> None:
    result = NINE_TO_FIVE.add(datetime(2026, 12, 8, 14, 30, tzinfo=KOLKATA), timedelta(hours=1))  # 09:00 UTC
    assert result == utc(2026, 12, 8, 10) and result.tzinfo is UTC


# -- holidays and closed dates ----------------------------------------------------------------------------------


def test_indian_republic_day_closes_the_whole_day() -> None:
    assert date(2027, 1, 26) in holidays.country_holidays("IN", subdiv="MH", years=2027)  # what the package says
    calendar = BusinessCalendar.of(
        "Asia/Kolkata", weekdays("09:30-18:00"), holiday_country="IN", holiday_subdivision="MH"
    )
    assert not calendar.is_working_day(date(2027, 1, 26))
    # Monday 25 Jan 17:00 IST + 2h: 1h on Monday, Tuesday is Republic Day, 1h on Wednesday from 09:30.
    assert calendar.add(local(KOLKATA, 2027, 1, 25, 17), timedelta(hours=2)) == local(KOLKATA, 2027, 1, 27, 10, 30)
    assert calendar.between(local(KOLKATA, 2027, 1, 26, 0), local(KOLKATA, 2027, 1, 27, 0)) == timedelta(0)


def test_british_christmas_boxing_day_and_the_substitute_day() -> None:
    gb = holidays.country_holidays("GB", years=2026)
    # The package gives Boxing Day on Saturday 26 Dec and its substitute on Monday 28 Dec.
    assert {date(2026, 12, 25), date(2026, 12, 26), date(2026, 12, 28)} <= set(gb)
    calendar = BusinessCalendar.of("Europe/London", weekdays("09:00-17:00"), holiday_country="GB")
    # Thursday 24 Dec 16:00 + 2h: 1h on Thursday; Fri 25 holiday, weekend, Mon 28 substitute; 1h on Tue 29.
    assert calendar.add(local(LONDON, 2026, 12, 24, 16), timedelta(hours=2)) == local(LONDON, 2026, 12, 29, 10)
    assert calendar.between(local(LONDON, 2026, 12, 24, 0), local(LONDON, 2027, 1, 1, 0)) == timedelta(
        hours=8 * 4
    )  # 24, 29, 30, 31


def test_an_extra_closed_date_closes_the_day() -> None:
    calendar = BusinessCalendar.of("UTC", weekdays("09:00-17:00"), closed=[date(2026, 12, 31)])
    assert calendar.add(utc(2026, 12, 30, 16), timedelta(hours=2)) == utc(2027, 1, 1, 10)  # no holiday country
    assert calendar.between(utc(2026, 12, 31), utc(2027, 1, 1)) == timedelta(0)


# -- DST (Europe/London: spring forward 2027-03-28, fall back 2026-10-25) ------------------------------------------


def test_working_hours_follow_local_time_across_spring_forward() -> None:
    calendar = BusinessCalendar.of("Europe/London", weekdays("09:00-17:00"))
    # Friday 26 March is GMT (09:00 = 09:00 UTC), Monday 29 March is BST (09:00 = 08:00 UTC).
    assert calendar.add(local(LONDON, 2027, 3, 26, 16), timedelta(hours=2)) == utc(2027, 3, 29, 9)
    assert calendar.between(local(LONDON, 2027, 3, 26, 9), local(LONDON, 2027, 3, 29, 17)) == timedelta(hours=16)
    assert calendar.intervals_on(date(2027, 3, 29)) == [(utc(2027, 3, 29, 8), utc(2027, 3, 29, 16))]


def test_working_hours_follow_local_time_across_fall_back() -> None:
    calendar = BusinessCalendar.of("Europe/London", weekdays("09:00-17:00"))
    # Friday 23 Oct 16:00 BST = 15:00 UTC; Monday 26 Oct 09:00 GMT = 09:00 UTC.
    assert calendar.add(local(LONDON, 2026, 10, 23, 16), timedelta(hours=2)) == utc(2026, 10, 26, 10)


def test_an_interval_spanning_the_change_lasts_its_real_length() -> None:
    calendar = BusinessCalendar.of("Europe/London", {"sun": ["00:00-03:00"]})
    assert calendar.between(utc(2027, 3, 27), utc(2027, 3, 29)) == timedelta(hours=2)  # 01:00 -> 02:00 skipped
    assert calendar.between(utc(2026, 10, 24), utc(2026, 10, 26)) == timedelta(hours=4)  # 01:00-02:00 twice
    assert calendar.add(utc(2026, 10, 24, 12), timedelta(hours=4)) == utc(2026, 10, 25, 3)
    round_the_clock = BusinessCalendar.of("Europe/London", {day: ["00:00-24:00"] for day in (*WEEK, "sat", "sun")})
    assert round_the_clock.between(local(LONDON, 2027, 3, 28), local(LONDON, 2027, 3, 29)) == timedelta(hours=23)


# -- refusals -------------------------------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no time zone"):
        NINE_TO_FIVE.add(datetime(2026, 12, 8, 9), timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="no time zone"):
        NINE_TO_FIVE.between(utc(2026, 12, 8, 9), datetime(2026, 12, 8, 10))


def test_reversed_ranges_and_negative_durations_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="comes before"):
        NINE_TO_FIVE.between(utc(2026, 12, 8, 10), utc(2026, 12, 8, 9))
    with pytest.raises(InvalidInputError, match="zero or more"):
        NINE_TO_FIVE.add(utc(2026, 12, 8, 9), timedelta(minutes=-1))


def test_a_calendar_without_working_time_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no working time"):
        BusinessCalendar.of("UTC", {"mon": [], "sun": []})


def test_a_target_beyond_the_horizon_is_refused_not_looped() -> None:
    five_years_of_work = timedelta(hours=8 * 5 * 52 * 5 + 8 * 10)
    with pytest.raises(InvalidInputError, match=f"within {HORIZON_DAYS} days"):
        NINE_TO_FIVE.add(utc(2026, 12, 8, 9), five_years_of_work)
    sundays_only = BusinessCalendar.of("UTC", {"sun": ["10:00-11:00"]})
    with pytest.raises(InvalidInputError, match="not reached"):
        sundays_only.add(utc(2026, 12, 8), timedelta(hours=300))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-17", "expected 'HH:MM-HH:MM'"),
        ("25:00-26:00", "not a valid time"),
        ("09:60-10:00", "not a valid time"),
        ("24:30-24:40", "not a valid time"),
        ("17:00-09:00", "reversed"),
        ("09:00-09:00", "reversed or empty"),
    ],
)
def test_bad_intervals(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        WorkInterval.parse(text)


def test_interval_syntax_and_midnight_end() -> None:
    assert WorkInterval.parse("00:00-24:00") == WorkInterval(0, 24 * 60)
    assert str(WorkInterval.parse(" 09:30-18:00 ")) == "09:30-18:00"


def test_overlapping_intervals_unknown_weekday_and_zone_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="overlap"):
        BusinessCalendar.of("UTC", {"mon": ["09:00-12:00", "11:00-13:00"]})
    with pytest.raises(InvalidInputError, match="unknown weekday 'monday'"):
        BusinessCalendar.of("UTC", {"monday": ["09:00-12:00"]})
    with pytest.raises(InvalidInputError, match="unknown time zone"):
        BusinessCalendar.of("Europe/Atlantis", weekdays("09:00-17:00"))
    with pytest.raises(InvalidInputError, match="Country XX not available"):
        BusinessCalendar.of("UTC", weekdays("09:00-17:00"), holiday_country="XX")
    with pytest.raises(InvalidInputError, match="subdivision"):
        BusinessCalendar.of("UTC", weekdays("09:00-17:00"), holiday_country="IN", holiday_subdivision="ZZ")


@pytest.mark.parametrize(("text", "minutes"), [("90m", 90), ("4h", 240), ("1h30m", 90), ("0h45m", 45)])
def test_durations_in_hours_and_minutes(text: str, minutes: int) -> None:
    assert parse_duration(text) == timedelta(minutes=minutes)
    assert parse_duration(format_duration(timedelta(minutes=minutes))) == timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["3d", "1w", "", "h", "1.5h", "30", "1m30h"])
def test_other_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="business durations are hours and minutes"):
        parse_duration(text)


def test_fingerprint_is_stable_and_follows_the_definition() -> None:
    one = BusinessCalendar.of("UTC", {"tue": ["13:00-17:00", "09:00-12:00"], "mon": ["09:00-17:00"]})
    same = BusinessCalendar.of("UTC", {"mon": ["09:00-17:00"], "tue": ["09:00-12:00", "13:00-17:00"], "sun": []})
    assert one.fingerprint() == same.fingerprint() and len(one.fingerprint()) == 64
    closed = BusinessCalendar.of("UTC", {"mon": ["09:00-17:00"]}, closed=[date(2026, 12, 31)])
    other_zone = BusinessCalendar.of("Europe/London", {"mon": ["09:00-17:00"]})
    assert len({BusinessCalendar.of("UTC", {"mon": ["09:00-17:00"]}).fingerprint(), closed.fingerprint(),
                other_zone.fingerprint()}) == 3  # fmt: skip


# -- add and between are inverse --------------------------------------------------------------------------------

GB_LUNCH = BusinessCalendar.of(
    "Europe/London", {**weekdays("08:30-12:00", "13:00-17:30"), "sat": ["10:00-14:00"]}, holiday_country="GB"
)
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(start=instants, minutes=st.integers(min_value=0, max_value=200 * 60))
def test_between_undoes_add(start: datetime, minutes: int) -> None:
    end = GB_LUNCH.add(start, timedelta(minutes=minutes))
    assert end >= start
    assert GB_LUNCH.between(start, end) == timedelta(minutes=minutes)


@settings(max_examples=300, deadline=None)
@given(a=instants, b=instants)
def test_add_undoes_between(a: datetime, b: datetime) -> None:
    a, b = min(a, b), max(a, b)
    elapsed = GB_LUNCH.between(a, b)
    reached = GB_LUNCH.add(a, elapsed)
    assert a <= reached <= b and GB_LUNCH.between(reached, b) == timedelta(0)
    if elapsed and GB_LUNCH.is_open(b) and GB_LUNCH.is_open(b - timedelta(microseconds=1)):
        assert reached == b  # business time accrues right up to b, so b is where it is reached
