"""Business-time arithmetic over a working calendar (pure; no store, no I/O).

A :class:`BusinessCalendar` has working hours per weekday (zero or more local wall-clock intervals a day),
an IANA time zone, the public holidays of a country (from the ``holidays`` package, optionally of one
subdivision) and extra closed dates. A holiday or closed date closes the whole day.

* :meth:`BusinessCalendar.add` - the instant when a duration of business time has elapsed from a start;
* :meth:`BusinessCalendar.between` - the business time in ``[a, b)``.

Working hours are local wall-clock times, turned into instants per day, so a DST change moves them in UTC
and a working interval that spans the change lasts its real length (``00:00-03:00`` is two hours on the
spring-forward day in Europe/London, four on the fall-back day). A local time in the spring gap is read with
the offset before the change. Inputs must be aware datetimes; results are in UTC. The arithmetic walks days,
never minutes, and gives up (:class:`InvalidInputError`) after :data:`HORIZON_DAYS` calendar days.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from .errors import InvalidInputError
from .models import aware

#: Weekday names, Monday first (``date.weekday()`` indexes them).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How many calendar days :meth:`BusinessCalendar.add` searches before it refuses (about five years).
HORIZON_DAYS = 5 * 366

_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")
_DAY = timedelta(days=1)
_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True, order=True)
class WorkInterval:
    """A working interval of one day, in local minutes since midnight: ``[start, end)``, end at most 24:00."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < 24 * 60 and 0 < self.end <= 24 * 60):
            raise InvalidInputError(f"working interval {self}: times must lie between 00:00 and 24:00")
        if self.end <= self.start:
            raise InvalidInputError(f"working interval {self} is reversed or empty: the end must come after the start")

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"

    @classmethod
    def parse(cls, text: str) -> WorkInterval:
        """The interval ``"HH:MM-HH:MM"`` names (e.g. ``"09:00-17:30"``; ``24:00`` ends at midnight)."""
        match = _INTERVAL.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise InvalidInputError(f"working interval {text!r}: expected 'HH:MM-HH:MM', such as '09:00-17:30'")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise InvalidInputError(f"working interval {text!r}: not a valid time of day (00:00 to 24:00)")
        if (h2 * 60 + m2) <= (h1 * 60 + m1):
            raise InvalidInputError(
                f"working interval {text!r} is reversed or empty: the end must come after the start"
            )
        return cls(h1 * 60 + m1, h2 * 60 + m2)


def parse_duration(text: str) -> timedelta:
    """The business duration ``text`` names: hours and/or minutes, such as ``"90m"``, ``"4h"``, ``"1h30m"``.

    Days or weeks are refused: a business day's length depends on the calendar, so say it in hours.
    """
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    match = _DURATION.fullmatch(cleaned) if cleaned else None
    if match is None:
        raise InvalidInputError(
            f"duration {text!r}: business durations are hours and minutes, such as '90m', '4h' or '1h30m' "
            "(no days or weeks: a business day's length depends on the calendar)"
        )
    hours, minutes = (int(part) if part else 0 for part in match.groups())
    return timedelta(hours=hours, minutes=minutes)


def format_duration(value: timedelta) -> str:
    """``value`` as :func:`parse_duration` reads it (``"1h30m"``), to whole minutes, truncated."""
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``"Europe/London"``); InvalidInputError for an unknown one."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"time zone {name!r}: expected an IANA name such as 'Europe/London'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInputError(f"unknown time zone {name!r}: expected an IANA name such as 'Europe/London'") from None


def check_holiday_country(country: str, subdivision: str | None = None) -> None:
    """Raise InvalidInputError unless the ``holidays`` package knows ``country`` (and its ``subdivision``)."""
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:  # what holidays raises for an unknown country or subdivision
        raise InvalidInputError(f"holidays for country {country!r}, subdivision {subdivision!r}: {exc}") from None


@lru_cache(maxsize=256)
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())


def utc(what: str, value: object) -> datetime:
    """``value`` (an aware datetime) in UTC; InvalidInputError for anything else, naming ``what``."""
    return aware(what, value).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working hours in a time zone, minus public holidays and closed dates.

    ``hours`` has seven entries, Monday first, each the day's intervals (sorted, not overlapping).
    ``holiday_country`` is an ISO 3166 code the ``holidays`` package knows (None: no public holidays),
    ``holiday_subdivision`` one of its subdivisions. Build one from the names people write with
    :meth:`of`. A calendar without any working time is refused.
    """

    timezone: str
    hours: tuple[tuple[WorkInterval, ...], ...]
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    closed: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", check_timezone(self.timezone))
        if len(self.hours) != len(WEEKDAYS):
            raise InvalidInputError(f"working hours need {len(WEEKDAYS)} days, Monday first, not {len(self.hours)}")
        for name, day in zip(WEEKDAYS, self.hours, strict=True):
            for before, after in pairwise(day):
                if after.start < before.end:
                    raise InvalidInputError(f"working hours of {name}: {before} and {after} overlap")
        if not any(self.hours):
            raise InvalidInputError("the calendar has no working time: give working hours for at least one weekday")
        if self.holiday_subdivision is not None and self.holiday_country is None:
            raise InvalidInputError("a holiday subdivision needs its country")
        if self.holiday_country is not None:
            check_holiday_country(self.holiday_country, self.holiday_subdivision)

    @classmethod
    def of(
        cls,
        timezone: str,
        hours: Mapping[str, Iterable[str]],
        *,
        holiday_country: str | None = None,
        holiday_subdivision: str | None = None,
        closed: Iterable[date] = (),
    ) -> BusinessCalendar:
        """The calendar of ``hours`` by weekday name (``{"mon": ["09:00-12:00", "13:00-17:00"]}``; absent: closed)."""
        unknown = sorted(set(hours) - set(WEEKDAYS))
        if unknown:
            raise InvalidInputError(f"unknown weekday {unknown[0]!r}: expected one of {', '.join(WEEKDAYS)}")
        days: list[tuple[WorkInterval, ...]] = []
        for name in WEEKDAYS:
            days.append(tuple(sorted(WorkInterval.parse(text) for text in hours.get(name, ()))))
        return cls(timezone, tuple(days), holiday_country, holiday_subdivision, frozenset(closed))

    def fingerprint(self) -> str:
        """A stable SHA-256 (hex) of the definition: equal for equal calendars, across processes and runs.

        It covers the time zone, hours, holiday country and subdivision and closed dates, not the holiday
        data of the installed ``holidays`` version.
        """
        definition = {
            "timezone": self.timezone,
            "hours": {name: [str(i) for i in day] for name, day in zip(WEEKDAYS, self.hours, strict=True)},
            "holidays": [self.holiday_country, self.holiday_subdivision],
            "closed": sorted(d.isoformat() for d in self.closed),
        }
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode("utf-8")).hexdigest()

    def is_working_day(self, day: date) -> bool:
        """Whether local date ``day`` has working hours and is neither a holiday nor a closed date."""
        if not self.hours[day.weekday()] or day in self.closed:
            return False
        if self.holiday_country is None:
            return True
        return day not in _holiday_dates(self.holiday_country, self.holiday_subdivision, day.year)

    def intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of local date ``day`` as UTC instants ``[start, end)`` (empty when closed)."""
        if not self.is_working_day(day):
            return []
        return [(self._instant(day, i.start), self._instant(day, i.end)) for i in self.hours[day.weekday()]]

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` lies in a working interval (start included, end excluded)."""
        at = utc("at", at)
        day = at.astimezone(self._zone).date()
        return any(start <= at < end for start, end in self.intervals_on(day))

    def between(self, a: datetime, b: datetime) -> timedelta:
        """The business time in ``[a, b)``; InvalidInputError if ``b`` comes before ``a``."""
        a, b = utc("a", a), utc("b", b)
        if b < a:
            raise InvalidInputError(f"between: the end {b.isoformat()} comes before the start {a.isoformat()}")
        total = _ZERO
        first, last = a.astimezone(self._zone).date(), b.astimezone(self._zone).date()
        for offset in range((last - first).days + 1):
            for start, end in self.intervals_on(first + offset * _DAY):
                if end > a and start < b:
                    total += min(end, b) - max(start, a)
        return total

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) when ``duration`` of business time has elapsed from ``start``.

        Zero gives ``start`` itself; otherwise the result lies in a working interval or at its end (a
        duration used up at closing time gives the closing time, not the next opening).
        """
        start = utc("start", start)
        if not isinstance(duration, timedelta) or duration < _ZERO:
            raise InvalidInputError(f"add: duration must be a timedelta of zero or more, not {duration!r}")
        left = duration
        if left == _ZERO:
            return start
        day = start.astimezone(self._zone).date()
        for _ in range(HORIZON_DAYS):
            for begin, end in self.intervals_on(day):
                if end <= start:
                    continue
                begin = max(begin, start)
                if end - begin >= left:
                    return begin + left
                left -= end - begin
            if day == date.max:
                break
            day += _DAY
        raise InvalidInputError(
            f"add: {duration} of business time is not reached within {HORIZON_DAYS} days of {start.isoformat()}"
        )

    def _instant(self, day: date, minute: int) -> datetime:
        if minute == 24 * 60:
            day, minute = day + _DAY, 0
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self._zone)
        return local.astimezone(UTC)
