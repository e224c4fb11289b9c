"""A synthetic multi-source customer set with injected duplicates and its ground truth.

Each person gets records in one to three sources (a CRM as CSV, a web shop as JSON Lines, a partner as
Parquet), each source with its own columns and a mapping file. Records after a person's first are
corrupted the way real data is: typos, nicknames, day/month swaps, changed emails and phones, moves and
missing values. Some persons are made hard to tell apart: household members share a surname and an
address, namesakes share a first and last name in one city. ``truth.csv`` names the person behind every
record. The same generator serves the demo, the tests and the benchmarks.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from c360.graph.errors import InvalidInputError
from c360.graph.models import source_name_problem
from faker import Faker

from ..mapping import ColumnMapping, load_mapping

MANIFEST = "dataset.json"

NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Richard": "Dick",
    "James": "Jim",
    "John": "Jack",
    "Joseph": "Joe",
    "Thomas": "Tom",
    "Charles": "Chuck",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Matthew": "Matt",
    "Anthony": "Tony",
    "Michael": "Mike",
    "David": "Dave",
    "Steven": "Steve",
    "Andrew": "Andy",
    "Joshua": "Josh",
    "Kenneth": "Ken",
    "Edward": "Ed",
    "Benjamin": "Ben",
    "Samuel": "Sam",
    "Elizabeth": "Liz",
    "Jennifer": "Jen",
    "Katherine": "Kate",
    "Margaret": "Peggy",
    "Patricia": "Pat",
    "Susan": "Sue",
    "Deborah": "Deb",
    "Rebecca": "Becky",
    "Kimberly": "Kim",
    "Jessica": "Jess",
    "Victoria": "Vicky",
    "Alexander": "Alex",
    "Nicholas": "Nick",
    "Jonathan": "Jon",
    "Timothy": "Tim",
    "Gregory": "Greg",
    "Jacqueline": "Jackie",
    "Christina": "Tina",
    "Samantha": "Sam",
    "Abigail": "Abby",
}
AREA_CODES = (
    "212",
    "213",
    "305",
    "312",
    "404",
    "415",
    "503",
    "512",
    "602",
    "617",
    "702",
    "713",
    "718",
    "801",
    "206",
    "303",
    "314",
    "412",
    "469",
    "615",
    "646",
    "704",
    "720",
    "786",
    "818",
    "917",
    "971",
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me", "aol.com")


@dataclass(slots=True)
class Person:
    """The truth about one synthetic person."""

    entity_id: str
    first_name: str
    last_name: str
    gender: str
    date_of_birth: date
    email: str
    phone: str
    street_number: str
    street: str
    unit: str
    city: str
    state: str
    postcode: str
    ssn: str


def _income(p: Person) -> str:
    """The person's yearly income as the CRM holds it (kept as a free attribute: no canonical field).

    Drawn from its own seeded stream, so adding it changed none of the other generated values.
    """
    rng = random.Random(f"income:{p.entity_id}")
    return str(int(round(rng.lognormvariate(10.9, 0.55), -3)))


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One generated source: its name, data file and mapping file."""

    source: str
    path: Path
    mapping: Path


def _inside(root: Path, name: object) -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root``; InvalidInputError otherwise."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{root / MANIFEST}: a file name must be a non-empty string, not {name!r}")
    path = Path(name)
    if path.is_absolute() or not (root / path).resolve().is_relative_to(root.resolve()):
        raise InvalidInputError(f"{root / MANIFEST}: {name!r} is outside the data set folder")
    return root / path


@dataclass(slots=True)
class Dataset:
    """A generated data set on disk."""

    root: Path
    sources: list[SourceFile] = field(default_factory=list)
    truth: Path | None = None
    records: int = 0
    persons: int = 0

    @classmethod
    def load(cls, root: Path) -> Dataset:
        """Read the manifest ``dataset.json`` of a generated (or hand-written) data set.

        Its source names must be valid (:func:`~c360.graph.models.source_name_problem`) and its files lie
        inside the folder: a manifest cannot name a path outside it.
        """
        try:
            data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
            entries = list(data["sources"])
            sources = []
            for s in entries:
                problem = source_name_problem(s["source"])
                if problem is not None:
                    raise InvalidInputError(f"{root / MANIFEST}: {problem}")
                sources.append(SourceFile(s["source"], _inside(root, s["path"]), _inside(root, s["mapping"])))
            truth = _inside(root, data["truth"]) if data.get("truth") else None
            counts = int(data.get("records", 0)), int(data.get("persons", 0))
        except InvalidInputError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{root}: not a data set folder (a valid {MANIFEST} is needed): {exc}") from exc
        return cls(root, sources, truth, *counts)

    def mapping_of(self, source: SourceFile) -> ColumnMapping:
        """Load the mapping of one source."""
        return load_mapping(source.mapping)

    def truth_map(self) -> dict[tuple[str, str], str]:
        """Return ``(source, source_key) -> entity_id`` from the ground-truth file."""
        if self.truth is None:
            raise InvalidInputError(f"{self.root}: the data set has no ground truth")
        with self.truth.open(newline="", encoding="utf-8") as fh:
            return {(r["source"], r["source_key"]): r["entity_id"] for r in csv.DictReader(fh)}


class Generator:
    """Generates persons and their corrupted source records, reproducibly from a seed."""

    def __init__(
        self,
        seed: int = 42,
        corruption: float = 0.3,
        duplicate_rate: float = 0.1,
        household_rate: float = 0.08,
        namesake_rate: float = 0.03,
    ) -> None:
        rates = (corruption, duplicate_rate, household_rate, namesake_rate)
        if not all(0 <= r <= 1 for r in rates) or household_rate + namesake_rate > 1:
            raise InvalidInputError("corruption and the duplicate, household and namesake rates lie between 0 and 1")
        self.household_rate = household_rate
        self.namesake_rate = namesake_rate
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.corruption = corruption
        self.duplicate_rate = duplicate_rate
        self.base_time = datetime(2025, 1, 1, tzinfo=UTC)

    def person(self, n: int) -> Person:
        """Make person number ``n``."""
        rng, fake = self.rng, self.fake
        gender = rng.choice("FM")
        first = fake.first_name_female() if gender == "F" else fake.first_name_male()
        if rng.random() < 0.25:  # give nickname-able names a fair share
            first = rng.choice([k for k in NICKNAMES if (k in _FEMALE) == (gender == "F")])
        last = fake.last_name()
        dob = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 65))
        return Person(
            entity_id=f"P{n:07d}",
            first_name=first,
            last_name=last,
            gender=gender,
            date_of_birth=dob,
            email=self._email(first, last),
            phone=self._phone(),
            street_number=str(rng.randrange(1, 9999)),
            street=fake.street_name(),
            unit=f"Apt {rng.randrange(1, 40)}" if rng.random() < 0.2 else "",
            city=fake.city(),
            state=fake.state_abbr(include_territories=False),
            postcode=fake.zipcode(),
            ssn=f"{rng.randrange(1, 665):03d}-{rng.randrange(1, 99):02d}-{rng.randrange(1, 9999):04d}",
        )

    def relative_of(self, previous: Person | None, n: int) -> Person | None:
        """Sometimes make person ``n`` hard to tell from the previous one, as real data does.

        A household member (same surname and address, another first name, age and contact details)
        with probability ``household_rate``; a namesake (same first and last name in the same city, another
        street, birth date and contact details) with probability ``namesake_rate``. ``None`` otherwise.
        """
        if previous is None:
            return None
        roll = self.rng.random()
        if roll < self.household_rate:
            other = self.person(n)
            return replace(
                other,
                last_name=previous.last_name,
                street_number=previous.street_number,
                street=previous.street,
                unit=previous.unit,
                city=previous.city,
                state=previous.state,
                postcode=previous.postcode,
                email=self._email(other.first_name, previous.last_name),
            )
        if roll < self.household_rate + self.namesake_rate:
            other = self.person(n)
            return replace(
                other,
                first_name=previous.first_name,
                last_name=previous.last_name,
                gender=previous.gender,
                city=previous.city,
                state=previous.state,
                email=self._email(previous.first_name, previous.last_name),
            )
        return None

    def _email(self, first: str, last: str) -> str:
        rng = self.rng
        style = rng.randrange(4)
        local = [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{last}{rng.randrange(10, 99)}",
            f"{last}.{first}",
        ][style]
        return f"{local.lower().replace(' ', '').replace(chr(39), '')}{rng.randrange(1000)}@{rng.choice(EMAIL_DOMAINS)}"

    def _phone(self) -> str:
        rng = self.rng
        area, exch, line = rng.choice(AREA_CODES), rng.randrange(201, 999), rng.randrange(10000)
        return [f"({area}) {exch}-{line:04d}", f"{area}-{exch}-{line:04d}", f"+1 {area} {exch} {line:04d}"][
            rng.randrange(3)
        ]

    # -- corruption ------------------------------------------------------------------------------------

    def _typo(self, text: str) -> str:
        if len(text) < 3:
            return text
        rng, i = self.rng, self.rng.randrange(1, len(text) - 1)
        op = rng.randrange(3)
        if op == 0:
            return text[:i] + text[i + 1 :]
        if op == 1:
            return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
        return text[:i] + rng.choice("aeiounrst") + text[i:]

    def corrupt(self, p: Person) -> Person:
        """Return a copy of ``p`` with a few realistic changes."""
        rng, c = self.rng, self.corruption
        changes: dict[str, Any] = {}
        if rng.random() < c:
            changes["first_name"] = NICKNAMES.get(p.first_name) or self._typo(p.first_name)
        if rng.random() < c / 2:
            changes["last_name"] = self._typo(p.last_name)
        if rng.random() < c / 3 and p.date_of_birth.day <= 12:
            changes["date_of_birth"] = p.date_of_birth.replace(month=p.date_of_birth.day, day=p.date_of_birth.month)
        if rng.random() < c / 3:
            changes["email"] = self._email(p.first_name, p.last_name)
        if rng.random() < c / 3:
            changes["phone"] = self._phone()
        if rng.random() < c / 3:
            changes.update(
                street_number=str(rng.randrange(1, 9999)),
                street=self.fake.street_name(),
                city=self.fake.city(),
                postcode=self.fake.zipcode(),
                unit="",
            )
        return replace(p, **changes)

    def blank(self, row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        """Blank some of ``keys`` (missing values), each with probability corruption/3."""
        for k in keys:
            if self.rng.random() < self.corruption / 3:
                row[k] = ""
        return row

    # -- sources ---------------------------------------------------------------------------------------

    def crm_row(self, p: Person, key: str, when: datetime) -> dict[str, Any]:
        """A CRM row: FEBRL-like columns, dates as YYYYMMDD."""
        return self.blank(
            {
                "rec_id": key,
                "given_name": p.first_name,
                "surname": p.last_name,
                "date_of_birth": p.date_of_birth.strftime("%Y%m%d"),
                "sex": p.gender,
                "email_address": p.email,
                "phone_number": p.phone,
                "street_number": p.street_number,
                "address_1": p.street,
                "address_2": p.unit,
                "city": p.city,
                "state": p.state,
                "zip": p.postcode,
                "soc_sec_id": p.ssn,
                "customer_no": f"CRM{key[4:]}",
                "annual_income": _income(p),
                "updated_at": when.strftime("%Y-%m-%d %H:%M:%S"),
            },
            ("date_of_birth", "phone_number", "email_address", "soc_sec_id", "address_2"),
        )

    def web_row(self, p: Person, key: str, when: datetime) -> dict[str, Any]:
        """A web-shop account: JSON, no national id."""
        return self.blank(
            {
                "account_id": key,
                "first_name": p.first_name,
                "last_name": p.last_name,
                "email": p.email,
                "phone": p.phone,
                "address_line1": f"{p.street_number} {p.street}",
                "city": p.city,
                "postcode": p.postcode,
                "state": p.state,
                "country": "US",
                "signup_at": when.isoformat(),
                "newsletter": self.rng.choice(["yes", "no"]),
            },
            ("phone", "address_line1", "postcode"),
        )

    def partner_row(self, p: Person, key: str, when: datetime) -> dict[str, Any]:
        """A partner's customer: ISO dates, mobile only."""
        return self.blank(
            {
                "partner_ref": key,
                "name_first": p.first_name,
                "name_last": p.last_name,
                "dob": p.date_of_birth.isoformat(),
                "mobile": p.phone,
                "email": p.email,
                "street": f"{p.street_number} {p.street}",
                "town": p.city,
                "zip": p.postcode,
                "region": p.state,
                "seen_at": when.isoformat(),
            },
            ("dob", "mobile", "email", "street"),
        )

    def rows(self, customers: int) -> Iterator[tuple[str, dict[str, Any], str]]:
        """Yield ``(source, row, entity_id)`` for ``customers`` persons."""
        makers: dict[str, tuple[float, Callable[[Person, str, datetime], dict[str, Any]]]] = {
            "crm": (0.8, self.crm_row),
            "webshop": (0.6, self.web_row),
            "partner": (0.35, self.partner_row),
        }
        counters = dict.fromkeys(makers, 0)
        previous: Person | None = None
        for n in range(customers):
            person = self.relative_of(previous, n) or self.person(n)
            previous = person
            chosen = [s for s, (prob, _) in makers.items() if self.rng.random() < prob] or ["crm"]
            first = True
            for source in chosen:
                copies = 2 if self.rng.random() < self.duplicate_rate else 1
                for _ in range(copies):
                    counters[source] += 1
                    key = f"{source[:3].upper()}-{counters[source]:07d}"
                    when = self.base_time + timedelta(minutes=self.rng.randrange(600_000))
                    shown = person if first else self.corrupt(person)
                    first = False
                    yield source, makers[source][1](shown, key, when), person.entity_id


_FEMALE = {
    "Elizabeth",
    "Jennifer",
    "Katherine",
    "Margaret",
    "Patricia",
    "Susan",
    "Deborah",
    "Rebecca",
    "Kimberly",
    "Jessica",
    "Victoria",
    "Jacqueline",
    "Christina",
    "Samantha",
    "Abigail",
}

MAPPINGS = {
    "crm": {
        "key": "rec_id",
        "observed_at": {"column": "updated_at", "format": "%Y-%m-%d %H:%M:%S"},
        "fields": {
            "first_name": "given_name",
            "last_name": "surname",
            "date_of_birth": {"column": "date_of_birth", "format": "%Y%m%d"},
            "gender": "sex",
            "email": "email_address",
            "phone": "phone_number",
            "address_line1": ["street_number", "address_1"],
            "address_line2": "address_2",
            "city": "city",
            "state": "state",
            "postcode": "zip",
            "national_id": {"column": "soc_sec_id", "kind": "ssn"},
            "customer_number": "customer_no",
        },
    },
    "webshop": {
        "key": "account_id",
        "observed_at": "signup_at",
        "fields": {
            "first_name": "first_name",
            "last_name": "last_name",
            "email": "email",
            "phone": "phone",
            "address_line1": "address_line1",
            "city": "city",
            "postcode": "postcode",
            "state": "state",
            "country": "country",
        },
    },
    "partner": {
        "key": "partner_ref",
        "observed_at": "seen_at",
        "fields": {
            "first_name": "name_first",
            "last_name": "name_last",
            "date_of_birth": "dob",
            "phone": "mobile",
            "email": "email",
            "address_line1": "street",
            "city": "town",
            "postcode": "zip",
            "state": "region",
        },
    },
}
FILES = {"crm": "crm.csv", "webshop": "webshop.jsonl", "partner": "partner.parquet"}


def generate(
    customers: int,
    out_dir: Path,
    *,
    seed: int = 42,
    corruption: float = 0.3,
    duplicate_rate: float = 0.1,
    household_rate: float = 0.08,
    namesake_rate: float = 0.03,
) -> Dataset:
    """Write a synthetic data set of ``customers`` persons to ``out_dir`` and return its manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    if customers < 1:
        raise InvalidInputError("--customers must be at least 1")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the folder {out_dir}: {exc.strerror or exc}") from exc
    gen = Generator(seed, corruption, duplicate_rate, household_rate, namesake_rate)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in FILES}
    truth: list[tuple[str, str, str]] = []
    for source, row, entity in gen.rows(customers):
        rows[source].append(row)
        truth.append((source, row[MAPPINGS[source]["key"]], entity))  # type: ignore[index]

    with (out_dir / FILES["crm"]).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows["crm"][0]) if rows["crm"] else ["rec_id"])
        writer.writeheader()
        writer.writerows(rows["crm"])
    with (out_dir / FILES["webshop"]).open("w", encoding="utf-8") as fh:
        for row in rows["webshop"]:
            fh.write(json.dumps({k: v for k, v in row.items() if v != ""}) + "\n")
    pq.write_table(
        pa.Table.from_pylist(rows["partner"]) if rows["partner"] else pa.table({"partner_ref": []}),
        out_dir / FILES["partner"],
    )
    for source, mapping in MAPPINGS.items():
        (out_dir / f"{source}.mapping.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    with (out_dir / "truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer2 = csv.writer(fh)
        writer2.writerow(["source", "source_key", "entity_id"])
        writer2.writerows(truth)
    manifest = {
        "sources": [{"source": s, "path": FILES[s], "mapping": f"{s}.mapping.yaml"} for s in FILES],
        "truth": "truth.csv",
        "records": len(truth),
        "persons": customers,
        "seed": seed,
        "corruption": corruption,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return Dataset.load(out_dir)
