"""SLA configuration and clocks of service cases (pure; no store, no I/O).

Configuration (:class:`SlaConfig`) names business calendars and policies; a policy gives, for a case type
and priority, the first-response and resolution targets in business time (hours and minutes), the calendar
they are counted in, and the share of a target from which a clock is at risk. :meth:`SlaConfig.policy_for`
picks the policy of a case: the exact (type, priority), then (type, "*"), then ("*", priority), then
("*", "*").

:func:`clocks` is a pure function of (facts, policy, calendar, now), so the caller recomputes a case's clocks
when its calendar changes (:meth:`BusinessCalendar.fingerprint` tells it which calendar a result used).
The rules:

* both clocks start at ``created_at`` and count business time only (the policy's calendar);
* both pause while the status is ``waiting_on_customer``;
* the first-response clock stops at ``first_response_at``, or, when the case is resolved or closed before
  any response, at that first resolution (resolving answers the customer);
* the resolution clock stops when the case enters ``resolved`` or ``closed``; leaving those (a reopen)
  resumes it with the elapsed time kept (time spent resolved does not count); resolving again stops it;
* facts later than ``now`` are ignored: the clocks are what they were at ``now``.

A clock's state is ``breached`` once elapsed exceeds the target (running, paused or stopped); otherwise
``met`` when stopped, ``at_risk`` when elapsed has reached ``at_risk x target``, else ``running`` or
``paused``. A clock exactly at its target is not breached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .business_time import WEEKDAYS, BusinessCalendar, WorkInterval, check_timezone, parse_duration, utc
from .errors import ConfigError, InvalidInputError

#: Case statuses, in the order a case usually takes them.
STATUSES: tuple[str, ...] = ("new", "open", "in_progress", "waiting_on_customer", "resolved", "closed")
#: Statuses that stop the resolution clock.
STOPPED_STATUSES = frozenset({"resolved", "closed"})
PAUSED_STATUS = "waiting_on_customer"
#: Matches any case type or priority in a policy.
ANY = "*"

ClockState = Literal["running", "paused", "at_risk", "breached", "met"]

_ZERO = timedelta(0)


def _duration(value: object) -> timedelta:
    if isinstance(value, str):
        try:
            value = parse_duration(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
    if not isinstance(value, timedelta):
        raise ValueError(f"duration {value!r}: give hours and minutes such as '90m', '4h' or '1h30m'")
    if value <= _ZERO:
        raise ValueError(f"duration {value}: an SLA target must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class HolidaysConfig(BaseModel):
    """Whose public holidays close a calendar's days (from the ``holidays`` package)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(description="ISO 3166-1 alpha-2 country code the holidays package knows, e.g. 'IN', 'GB'.")
    subdivision: str | None = Field(
        default=None, description="Subdivision of the country (e.g. 'MH' for Maharashtra); none: national holidays."
    )


def _weekdays_9_to_5() -> dict[str, list[str]]:
    return {day: ["09:00-17:00"] if day in WEEKDAYS[:5] else [] for day in WEEKDAYS}


class CalendarConfig(BaseModel):
    """A business calendar as configured: time zone, working hours per weekday, holidays, closed dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = Field(default="UTC", description="IANA time zone of the working hours, e.g. 'Asia/Kolkata'.")
    hours: dict[str, list[str]] = Field(
        default_factory=_weekdays_9_to_5,
        description=(
            "Working hours by weekday (mon..sun), each a list of local 'HH:MM-HH:MM' intervals that do not "
            "overlap (e.g. ['09:00-12:30', '13:30-17:30'] for a lunch break); an absent or empty day is closed. "
            "Default: mon-fri 09:00-17:00."
        ),
    )
    holidays: HolidaysConfig | None = Field(
        default=None, description="Public holidays that close whole days; none (the default): no public holidays."
    )
    closed: list[date] = Field(default_factory=list, description="Extra closed local dates, e.g. ['2026-12-31'].")
    _calendar: BusinessCalendar = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            check_timezone(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, texts in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r}: expected one of {', '.join(WEEKDAYS)}")
            try:
                intervals = sorted(WorkInterval.parse(text) for text in texts)
            except InvalidInputError as exc:
                raise ValueError(f"{day}: {exc}") from None
            for before, after in pairwise(intervals):
                if after.start < before.end:
                    raise ValueError(f"working hours of {day}: {before} and {after} overlap")
        return value

    @model_validator(mode="after")
    def _build(self) -> CalendarConfig:
        country = self.holidays.country if self.holidays else None
        subdivision = self.holidays.subdivision if self.holidays else None
        try:
            self._calendar = BusinessCalendar.of(
                self.timezone, self.hours, holiday_country=country, holiday_subdivision=subdivision, closed=self.closed
            )
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        return self

    def calendar(self) -> BusinessCalendar:
        """The :class:`BusinessCalendar` this configuration defines."""
        return self._calendar

    def fingerprint(self) -> str:
        """The stable hash of this calendar's definition (:meth:`BusinessCalendar.fingerprint`)."""
        return self._calendar.fingerprint()


class SlaPolicy(BaseModel):
    """The SLA targets of the cases of one type and priority ('*' matches any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1, description="Case type the policy applies to, or '*' for any type.")
    priority: str = Field(min_length=1, description="Case priority the policy applies to, or '*' for any priority.")
    calendar: str = Field(default="default", description="Name of the calendar (under calendars) the targets count in.")
    first_response: Duration = Field(
        description="Business time to the first response: hours and minutes such as '90m', '4h', '1h30m'."
    )
    resolution: Duration = Field(description="Business time to resolution: hours and minutes such as '40h'.")
    at_risk: float = Field(
        default=0.8, description="Share of a target, strictly between 0 and 1, from which a clock is at risk."
    )

    @field_validator("at_risk")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"at_risk {value}: must lie strictly between 0 and 1 (a share of the target)")
        return value


def _default_policies() -> list[SlaPolicy]:
    targets = {"urgent": ("1h", "8h"), "high": ("4h", "16h"), "normal": ("8h", "40h"), "low": ("16h", "80h")}
    policies = [
        SlaPolicy.model_validate({"type": ANY, "priority": p, "first_response": f, "resolution": r})
        for p, (f, r) in targets.items()
    ]
    return [
        *policies,
        SlaPolicy.model_validate({"type": ANY, "priority": ANY, "first_response": "8h", "resolution": "40h"}),
    ]


class SlaConfig(BaseModel):
    """The SLA section: named business calendars and the policies that use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calendars: dict[str, CalendarConfig] = Field(
        default_factory=lambda: {"default": CalendarConfig()},
        description="Business calendars by name. Default: 'default', mon-fri 09:00-17:00 UTC, no public holidays.",
    )
    policies: list[SlaPolicy] = Field(
        default_factory=_default_policies,
        description=(
            "SLA policies; a case takes the first match of (type, priority), (type, '*'), ('*', priority), "
            "('*', '*'). Default, any type, calendar 'default', first response / resolution: urgent 1h/8h, "
            "high 4h/16h, normal 8h/40h, low 16h/80h, any other priority 8h/40h; at risk from 0.8."
        ),
    )

    @model_validator(mode="after")
    def _consistent(self) -> SlaConfig:
        seen: set[tuple[str, str]] = set()
        for policy in self.policies:
            if policy.calendar not in self.calendars:
                known = ", ".join(sorted(self.calendars)) or "none"
                raise ValueError(
                    f"policy ({policy.type}, {policy.priority}) names unknown calendar {policy.calendar!r} "
                    f"(known: {known})"
                )
            key = (policy.type, policy.priority)
            if key in seen:
                raise ValueError(f"two policies for type {policy.type!r} and priority {policy.priority!r}")
            seen.add(key)
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SlaConfig:
        """The configuration in ``data`` (e.g. a YAML section); :class:`ConfigError` naming every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'sla'}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors()
            )
            raise ConfigError(f"invalid SLA configuration: {problems}") from None

    def policy_for(self, type: str, priority: str) -> SlaPolicy:
        """The policy of a case of ``type`` and ``priority``; :class:`ConfigError` when none matches."""
        for what, value in (("type", type), ("priority", priority)):
            if not isinstance(value, str) or not value:
                raise InvalidInputError(f"policy_for: the case {what} must be a non-empty string, not {value!r}")
        by_key = {(p.type, p.priority): p for p in self.policies}
        for key in ((type, priority), (type, ANY), (ANY, priority), (ANY, ANY)):
            if key in by_key:
                return by_key[key]
        raise ConfigError(
            f"no SLA policy for type {type!r} and priority {priority!r}: add one, or a catch-all "
            "{type: '*', priority: '*'}"
        )

    def calendar(self, name: str) -> BusinessCalendar:
        """The business calendar called ``name``; InvalidInputError for an unknown name."""
        if name not in self.calendars:
            raise InvalidInputError(f"unknown calendar {name!r}: known {', '.join(sorted(self.calendars))}")
        return self.calendars[name].calendar()


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What the clocks of a case depend on, times in UTC.

    ``history`` is the status history, oldest first, its first entry ``(created_at, "new")``;
    ``first_response_at`` is when the case was first answered (None: not yet).
    """

    created_at: datetime
    history: Sequence[tuple[datetime, str]]
    first_response_at: datetime | None = None

    def __post_init__(self) -> None:
        created = utc("created_at", self.created_at)
        history: list[tuple[datetime, str]] = []
        for entry in self.history:
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise InvalidInputError(f"status history entry {entry!r}: expected a (time, status) pair")
            at, status = utc("status history time", entry[0]), entry[1]
            if status not in STATUSES:
                raise InvalidInputError(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
            if history and at < history[-1][0]:
                raise InvalidInputError(f"status history goes back in time at {at.isoformat()}: give it oldest first")
            history.append((at, status))
        if not history or history[0] != (created, "new"):
            raise InvalidInputError("the status history must start with (created_at, 'new')")
        first_response = None
        if self.first_response_at is not None:
            first_response = utc("first_response_at", self.first_response_at)
            if first_response < created:
                raise InvalidInputError("first_response_at comes before created_at")
        object.__setattr__(self, "created_at", created)
        object.__setattr__(self, "history", tuple(history))
        object.__setattr__(self, "first_response_at", first_response)


@dataclass(frozen=True, slots=True)
class Clock:
    """One SLA clock at a time.

    ``remaining`` is ``target - elapsed`` (negative once breached). ``due_at`` is the instant elapsed
    reaches the target (projected from now; in the past once reached) and ``at_risk_at`` the instant it
    reaches the at-risk share (likewise), both only while the clock runs (else None). ``breached_at`` is the instant
    elapsed reached the target, for a breached clock (also a stopped one); ``stopped_at`` when it stopped.
    """

    target: timedelta
    elapsed: timedelta
    remaining: timedelta
    state: ClockState
    running: bool
    due_at: datetime | None
    at_risk_at: datetime | None
    breached_at: datetime | None
    stopped_at: datetime | None


@dataclass(frozen=True, slots=True)
class SlaClocks:
    """Both clocks of a case at ``computed_at``, counted in the calendar whose fingerprint is given."""

    first_response: Clock
    resolution: Clock
    computed_at: datetime
    calendar_fingerprint: str

    @property
    def next_due(self) -> datetime | None:
        """The earliest ``due_at`` of a running clock (for ordering case views); None when neither runs."""
        due = [c.due_at for c in (self.first_response, self.resolution) if c.due_at is not None]
        return min(due, default=None)


def _reached(segments: list[tuple[datetime, datetime]], amount: timedelta, calendar: BusinessCalendar) -> datetime:
    """The instant the business time counted over ``segments`` reaches ``amount`` (it does, by the caller)."""
    counted = _ZERO
    for start, end in segments:
        part = calendar.between(start, end)
        if counted + part >= amount:
            return calendar.add(start, amount - counted)
        counted += part
    raise RuntimeError("unreachable: the segments add up to less than the amount")  # pragma: no cover


def _clock(
    segments: list[tuple[datetime, datetime]],
    *,
    target: timedelta,
    share: float,
    calendar: BusinessCalendar,
    now: datetime,
    running: bool,
    stopped_at: datetime | None,
) -> Clock:
    elapsed = sum((calendar.between(start, end) for start, end in segments), _ZERO)
    threshold = target * share
    reached = _reached(segments, target, calendar) if elapsed >= target else None
    due_at = at_risk_at = None
    if running:
        due_at = reached if reached is not None else calendar.add(now, target - elapsed)
        at_risk_at = (
            _reached(segments, threshold, calendar) if elapsed >= threshold else calendar.add(now, threshold - elapsed)
        )
    state: ClockState
    if elapsed > target:
        state = "breached"
    elif stopped_at is not None:
        state = "met"
    elif elapsed >= threshold:
        state = "at_risk"
    else:
        state = "running" if running else "paused"
    return Clock(
        target=target,
        elapsed=elapsed,
        remaining=target - elapsed,
        state=state,
        running=running,
        due_at=due_at,
        at_risk_at=at_risk_at,
        breached_at=reached if elapsed > target else None,
        stopped_at=stopped_at,
    )


def clocks(facts: CaseFacts, policy: SlaPolicy, calendar: BusinessCalendar, now: datetime) -> SlaClocks:
    """The first-response and resolution clocks of a case at ``now`` (rules in the module docstring)."""
    now = utc("now", now)
    if now < facts.created_at:
        raise InvalidInputError(f"now {now.isoformat()} comes before the case was created")
    history = [(at, status) for at, status in facts.history if at <= now]
    spans = [(at, history[i + 1][0] if i + 1 < len(history) else now, s) for i, (at, s) in enumerate(history)]
    current = history[-1][1]

    resolution = [(a, b) for a, b, s in spans if s != PAUSED_STATUS and s not in STOPPED_STATUSES and b > a]
    resolved_at: datetime | None = None  # when the current run of resolved/closed began
    for at, status in history:
        if status not in STOPPED_STATUSES:
            resolved_at = None
        elif resolved_at is None:
            resolved_at = at

    responded = facts.first_response_at if facts.first_response_at and facts.first_response_at <= now else None
    first_resolved = next((at for at, s in history if s in STOPPED_STATUSES), None)
    response_stop = min((t for t in (responded, first_resolved) if t is not None), default=None)
    limit = response_stop or now
    response = [(a, min(b, limit)) for a, b, s in spans if s != PAUSED_STATUS and min(b, limit) > a]

    return SlaClocks(
        first_response=_clock(
            response,
            target=policy.first_response,
            share=policy.at_risk,
            calendar=calendar,
            now=now,
            running=response_stop is None and current != PAUSED_STATUS,
            stopped_at=response_stop,
        ),
        resolution=_clock(
            resolution,
            target=policy.resolution,
            share=policy.at_risk,
            calendar=calendar,
            now=now,
            running=resolved_at is None and current != PAUSED_STATUS,
            stopped_at=resolved_at,
        ),
        computed_at=now,
        calendar_fingerprint=calendar.fingerprint(),
    )
