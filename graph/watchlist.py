"""Watchlist (sanctions list) entries as published, for KYC screening (issue 16).

A :class:`Watchlist` is one dated snapshot of one list (the OFAC SDN list, the UN consolidated list).
Its :class:`ListEntry` items keep the list's own entry id, so a screening decision can name the entry it
was about, and :meth:`ListEntry.content_hash` changes whenever anything that matching reads changes, so a
confirmed false positive can be re-examined when its entry is amended.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Literal

from .errors import InvalidInputError, NotFoundError

LIST_NAMES: tuple[str, ...] = ("ofac_sdn", "un_consolidated")
KINDS: tuple[str, ...] = ("individual", "entity", "vessel", "aircraft")

Kind = Literal["individual", "entity", "vessel", "aircraft"]
#: ``low`` marks a weak alias (OFAC's quoted a.k.a. in remarks, the UN's QUALITY "Low").
AliasQuality = Literal["good", "low"]
DatePrecision = Literal["day", "month", "year", "range"]


@dataclass(frozen=True, slots=True)
class NamePart:
    """One part of a name as the source splits it: ``role`` is e.g. ``first``..``fourth`` or ``last``/``given``."""

    role: str
    value: str


@dataclass(frozen=True, slots=True)
class Alias:
    """Another name of an entry: ``type`` as published (``aka``, ``fka``, ``nka``, ``original_script``)."""

    name: str
    type: str
    quality: AliasQuality = "good"


@dataclass(frozen=True, slots=True)
class DateOfBirth:
    """A date of birth as precise as the source gives it: a day, a month, a year or a range of them.

    ``earliest`` and ``latest`` bound the possible days (equal for an exact day); ``circa`` marks an
    approximate date; ``text`` is the source's own wording.
    """

    earliest: date
    latest: date
    precision: DatePrecision
    circa: bool = False
    text: str = ""

    def __post_init__(self) -> None:
        if self.latest < self.earliest:
            raise InvalidInputError(f"a date of birth cannot end ({self.latest}) before it starts ({self.earliest})")

    @classmethod
    def exact(cls, day: date, *, circa: bool = False, text: str = "") -> DateOfBirth:
        """An exact day."""
        return cls(day, day, "day", circa, text or day.isoformat())

    @classmethod
    def year(cls, year: int, *, circa: bool = False, text: str = "") -> DateOfBirth:
        """A year only."""
        return cls(date(year, 1, 1), date(year, 12, 31), "year", circa, text or str(year))

    @classmethod
    def years(cls, first: int, last: int, *, circa: bool = False, text: str = "") -> DateOfBirth:
        """A range of years, both included."""
        return cls(date(first, 1, 1), date(last, 12, 31), "range", circa, text or f"{first} to {last}")

    def as_json(self) -> list[object]:
        """The parts that matter, as JSON values."""
        return [self.earliest.isoformat(), self.latest.isoformat(), self.precision, self.circa]


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One listed person, entity, vessel or aircraft, as the list publishes it."""

    list_name: str
    entry_id: str
    kind: Kind
    name: str
    name_parts: tuple[NamePart, ...] = ()
    aliases: tuple[Alias, ...] = ()
    dates_of_birth: tuple[DateOfBirth, ...] = ()
    places_of_birth: tuple[str, ...] = ()
    nationalities: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    remarks: str = ""
    #: The list's human reference where it has one beside the id (UN "QDi.001").
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.list_name not in LIST_NAMES:
            raise InvalidInputError(f"unknown list {self.list_name!r}: expected one of {', '.join(LIST_NAMES)}")
        if self.kind not in KINDS:
            raise InvalidInputError(f"unknown entry kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not self.entry_id.strip() or not self.name.strip():
            raise InvalidInputError(
                f"a {self.list_name} entry needs an id and a name, not {self.entry_id!r}/{self.name!r}"
            )

    @property
    def key(self) -> str:
        """``list_name:entry_id``, unique over all lists."""
        return f"{self.list_name}:{self.entry_id}"

    def content_hash(self) -> str:
        """SHA-256 (hex) of what matching reads.

        That is the id, kind, names, aliases, dates and places of birth and nationalities; programs and
        free remarks are left out (they do not change a match).
        """
        doc = {
            "list": self.list_name,
            "id": self.entry_id,
            "kind": self.kind,
            "name": self.name,
            "parts": [[p.role, p.value] for p in self.name_parts],
            "aliases": [[a.name, a.type, a.quality] for a in self.aliases],
            "dob": [d.as_json() for d in self.dates_of_birth],
            "pob": list(self.places_of_birth),
            "nationalities": list(self.nationalities),
        }
        text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Watchlist:
    """One snapshot of one list: its name, the date it was generated (when the source says) and entries."""

    name: str
    as_of: date | None
    entries: tuple[ListEntry, ...]

    def __post_init__(self) -> None:
        if self.name not in LIST_NAMES:
            raise InvalidInputError(f"unknown list {self.name!r}: expected one of {', '.join(LIST_NAMES)}")
        seen: set[str] = set()
        for e in self.entries:
            if e.list_name != self.name:
                raise InvalidInputError(f"entry {e.key} does not belong to the list {self.name}")
            if e.entry_id in seen:
                raise InvalidInputError(f"the list {self.name} holds the entry id {e.entry_id} twice")
            seen.add(e.entry_id)

    def by_id(self, entry_id: str) -> ListEntry:
        """The entry with this id; :class:`NotFoundError` if there is none."""
        for e in self.entries:
            if e.entry_id == entry_id:
                return e
        raise NotFoundError(f"no entry {entry_id!r} in the list {self.name}")
