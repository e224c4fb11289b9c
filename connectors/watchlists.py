"""Loaders of sanctions lists in their published formats: OFAC's legacy SDN CSV files, the UN's XML.

Both are strict: the first malformed row or element stops the load with an
:class:`~c360.graph.errors.InvalidInputError` naming the file and the line (CSV) or the element (XML),
because a screening list silently missing entries is worse than no list.

XML safety: the UN file is parsed with the standard library's ``xml.etree.ElementTree`` (expat). Expat
>= 2.4.1 (Python 3.11 ships 2.5) limits entity amplification ("billion laughs") and ElementTree never
fetches external entities or DTDs; on top of that :func:`load_un` refuses any document that carries a
DOCTYPE or an ENTITY declaration at all, since the published list has neither.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from c360.graph.errors import InvalidInputError
from c360.graph.watchlist import Alias, AliasQuality, DateOfBirth, Kind, ListEntry, NamePart, Watchlist

_EMPTY = "-0-"
_OFAC_KINDS: dict[str, Kind] = {"individual": "individual", "vessel": "vessel", "aircraft": "aircraft", "": "entity"}
_MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
_ONE_DATE = r"(?:(\d{1,2}) )?(?:([A-Z][a-z]{2}) )?(\d{4})"
_DOB = re.compile(rf"^(circa )?{_ONE_DATE}(?:(?: to |-){_ONE_DATE})?$")
_AKA = re.compile(r"^(a\.k\.a\.|f\.k\.a\.|n\.k\.a\.) '(.+)'$")


def _field(value: str) -> str:
    value = value.strip()
    return "" if value == _EMPTY else value


def _rows(path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    """The rows of one legacy OFAC file with their line numbers; its final DOS end-of-file mark is skipped."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            for row in reader:
                if row == ["\x1a"] or not row:
                    continue
                if len(row) != width:
                    raise InvalidInputError(f"{path}, line {reader.line_num}: {len(row)} fields, expected {width}")
                yield reader.line_num, [_field(v) for v in row]
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"{path}: not a readable CSV file: {exc}") from exc


def _ent_num(path: Path, line: int, value: str) -> str:
    if not value.isdigit():
        raise InvalidInputError(f"{path}, line {line}: the entry number {value!r} is not a number")
    return value


def _one_dob(groups: tuple[str | None, ...], last: bool) -> tuple[date, str]:
    day, month, year = groups
    y = int(str(year))
    if month is None:
        return (date(y, 12, 31) if last else date(y, 1, 1)), "year"
    if month not in _MONTHS:
        raise ValueError(f"unknown month {month!r}")
    m = _MONTHS[month]
    if day is None:
        if not last:
            return date(y, m, 1), "month"
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        return date.fromordinal(nxt.toordinal() - 1), "month"
    return date(y, m, int(day)), "day"


def parse_ofac_dob(text: str) -> DateOfBirth:
    """An OFAC remarks date of birth: ``01 Jan 1970``, ``Jan 1970``, ``1970``, ``circa 1970``, ``1970 to 1972``.

    Also a range written ``1979-1982`` (the list has one).
    """
    match = _DOB.match(text.strip().rstrip("."))
    if match is None:
        raise InvalidInputError(f"unreadable date of birth {text!r}")
    g = match.groups()
    try:
        start, precision = _one_dob(g[1:4], last=False)
        if g[4] is None and g[5] is None and g[6] is None:
            end, _ = _one_dob(g[1:4], last=True)
        else:
            end, _ = _one_dob(g[4:7], last=True)
            precision = "range"
        return DateOfBirth(start, end, precision, circa=g[0] is not None, text=text.strip())  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInputError(f"unreadable date of birth {text!r}: {exc}") from exc


class _Remarks:
    """What the OFAC remarks say about dates and places of birth, nationality and weak aliases."""

    def __init__(self, remarks: str) -> None:
        self.dobs: list[DateOfBirth] = []
        self.pobs: list[str] = []
        self.nationalities: list[str] = []
        self.aliases: list[Alias] = []
        for raw in remarks.split(";"):
            part = raw.strip().rstrip(".").strip()
            if part.startswith("alt. "):
                part = part[5:]
            if part.startswith("DOB "):
                self.dobs.append(parse_ofac_dob(part[4:]))
            elif part.startswith("POB "):
                self.pobs.append(part[4:].strip())
            elif part.startswith(("nationality ", "citizen ")):
                value = part.split(" ", 1)[1].strip()
                if value not in self.nationalities:
                    self.nationalities.append(value)
            elif (aka := _AKA.match(part)) is not None:
                self.aliases.append(Alias(aka.group(2), aka.group(1).replace(".", ""), "low"))


def _ofac_parts(name: str, kind: Kind) -> tuple[NamePart, ...]:
    if kind != "individual" or "," not in name:
        return ()
    last, given = (p.strip() for p in name.split(",", 1))
    return tuple(NamePart(r, v) for r, v in (("last", last), ("given", given)) if v)


def load_ofac(folder: Path, *, as_of: date | None = None) -> Watchlist:
    """Load the OFAC SDN list from its legacy CSV files (``sdn.csv``, ``alt.csv``, ``sdn_comments.csv``).

    ``alt.csv`` gives the aliases (quality ``good``); the remarks (continued in ``sdn_comments.csv``) give
    dates and places of birth, nationalities and the weak a.k.a.s in quotes (quality ``low``). The legacy
    files carry no publication date: pass ``as_of`` if it is known.
    """
    folder = Path(folder)
    sdn_path, alt_path, comments_path = folder / "sdn.csv", folder / "alt.csv", folder / "sdn_comments.csv"
    rows: dict[str, tuple[int, list[str]]] = {}
    for line, row in _rows(sdn_path, 12):
        ent = _ent_num(sdn_path, line, row[0])
        if ent in rows:
            raise InvalidInputError(f"{sdn_path}, line {line}: the entry number {ent} is listed twice")
        if not row[1]:
            raise InvalidInputError(f"{sdn_path}, line {line}: entry {ent} has no name")
        if row[2] not in _OFAC_KINDS:
            raise InvalidInputError(f"{sdn_path}, line {line}: unknown SDN type {row[2]!r}")
        rows[ent] = (line, row)
    aliases: dict[str, list[Alias]] = {}
    if alt_path.exists():
        for line, row in _rows(alt_path, 5):
            ent = _ent_num(alt_path, line, row[0])
            if ent not in rows:
                raise InvalidInputError(f"{alt_path}, line {line}: alias of the unknown entry {ent}")
            if not row[3] or row[2] not in ("aka", "fka", "nka"):
                raise InvalidInputError(f"{alt_path}, line {line}: alias type {row[2]!r} or name {row[3]!r} unusable")
            aliases.setdefault(ent, []).append(Alias(row[3], row[2], "good"))
    more: dict[str, str] = {}
    if comments_path.exists():
        for line, row in _rows(comments_path, 2):
            ent = _ent_num(comments_path, line, row[0])
            if ent not in rows:
                raise InvalidInputError(f"{comments_path}, line {line}: remarks of the unknown entry {ent}")
            more[ent] = more.get(ent, "") + row[1]
    entries = []
    for ent, (line, row) in rows.items():
        kind = _OFAC_KINDS[row[2]]
        remarks_text = row[11] + more.get(ent, "")
        try:
            remarks = _Remarks(remarks_text)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{sdn_path}, line {line}: entry {ent}: {exc}") from exc
        listed = aliases.get(ent, [])
        extra = [a for a in remarks.aliases if all(a.name.casefold() != b.name.casefold() for b in listed)]
        entries.append(
            ListEntry(
                list_name="ofac_sdn",
                entry_id=ent,
                kind=kind,
                name=row[1],
                name_parts=_ofac_parts(row[1], kind),
                aliases=tuple(listed + extra),
                dates_of_birth=tuple(remarks.dobs),
                places_of_birth=tuple(remarks.pobs),
                nationalities=tuple(remarks.nationalities),
                programs=tuple(p.strip() for p in row[3].strip("[]").split("] [") if p.strip()),
                remarks=remarks_text,
            )
        )
    return Watchlist("ofac_sdn", as_of, tuple(entries))


# -- UN consolidated list (XML) -------------------------------------------------------------------------

_UN_QUALITY: dict[str, tuple[str, AliasQuality]] = {
    "": ("aka", "good"),
    "good": ("aka", "good"),
    "low": ("aka", "low"),
    "a.k.a.": ("aka", "good"),
    "f.k.a.": ("fka", "good"),
}
_NAME_TAGS = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")


def _text(el: ET.Element, tag: str) -> str:
    child = el.find(tag)
    return " ".join((child.text or "").split()) if child is not None else ""


def _un_dob(el: ET.Element) -> DateOfBirth | None:
    kind = _text(el, "TYPE_OF_DATE").upper()
    circa = kind == "APPROXIMATELY"
    day, year, first, last = _text(el, "DATE"), _text(el, "YEAR"), _text(el, "FROM_YEAR"), _text(el, "TO_YEAR")
    if day:
        return DateOfBirth.exact(date.fromisoformat(day[:10]), circa=circa)
    if year:
        return DateOfBirth.year(int(year), circa=circa)
    if first and last:
        return DateOfBirth.years(int(first), int(last), circa=circa)
    if first or last:
        return DateOfBirth.year(int(first or last), circa=True)
    return None


def _un_entry(el: ET.Element, kind: Kind, where: str) -> ListEntry:
    data_id = _text(el, "DATAID")
    if not data_id:
        raise InvalidInputError(f"{where}: no DATAID")
    where = f"{where} (DATAID {data_id})"
    parts = tuple(NamePart(tag.split("_")[0].lower(), v) for tag in _NAME_TAGS if (v := _text(el, tag)))
    if not parts:
        raise InvalidInputError(f"{where}: no FIRST_NAME")
    alias_tag = "INDIVIDUAL_ALIAS" if kind == "individual" else "ENTITY_ALIAS"
    aliases: list[Alias] = []
    dobs: list[DateOfBirth] = []
    for a in el.iter(alias_tag):
        name = _text(a, "ALIAS_NAME")
        quality = _text(a, "QUALITY").lower()
        if quality not in _UN_QUALITY:
            raise InvalidInputError(f"{where}: unknown alias QUALITY {quality!r}")
        if name:
            alias_type, alias_quality = _UN_QUALITY[quality]
            aliases.append(Alias(name, alias_type, alias_quality))
        if alias_dob := _text(a, "DATE_OF_BIRTH"):  # "1958-02-22" or a year alone
            dobs.append(
                DateOfBirth.year(int(alias_dob))
                if alias_dob.isdigit()
                else DateOfBirth.exact(date.fromisoformat(alias_dob[:10]))
            )
    if original := _text(el, "NAME_ORIGINAL_SCRIPT"):
        aliases.append(Alias(original, "original_script", "good"))
    for d in el.iter("INDIVIDUAL_DATE_OF_BIRTH"):
        if (dob := _un_dob(d)) is not None:
            dobs.append(dob)
    places = []
    for p in el.iter("INDIVIDUAL_PLACE_OF_BIRTH"):
        place = ", ".join(v for tag in ("CITY", "STATE_PROVINCE", "COUNTRY") if (v := _text(p, tag)))
        if place:
            places.append(place)
    nationalities = [
        v for n in el.iter("NATIONALITY") for v in (" ".join((x.text or "").split()) for x in n.iter("VALUE")) if v
    ]
    return ListEntry(
        list_name="un_consolidated",
        entry_id=data_id,
        kind=kind,
        name=" ".join(p.value for p in parts),
        name_parts=parts if kind == "individual" else (),
        aliases=tuple(aliases),
        dates_of_birth=tuple(dobs),
        places_of_birth=tuple(places),
        nationalities=tuple(nationalities),
        programs=(_text(el, "UN_LIST_TYPE"),) if _text(el, "UN_LIST_TYPE") else (),
        remarks=_text(el, "COMMENTS1"),
        reference=_text(el, "REFERENCE_NUMBER") or None,
    )


def load_un(xml_path: Path) -> Watchlist:
    """Load the UN Security Council consolidated list from its XML (individuals and entities).

    A document with a DOCTYPE or ENTITY declaration is refused. ``as_of`` is the list's ``dateGenerated``.
    """
    xml_path = Path(xml_path)
    try:
        data = xml_path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {xml_path}: {exc.strerror or exc}") from exc
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise InvalidInputError(f"{xml_path}: refusing an XML document with a DOCTYPE or ENTITY declaration")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InvalidInputError(f"{xml_path}: not well-formed XML: {exc}") from exc
    if root.tag != "CONSOLIDATED_LIST":
        raise InvalidInputError(f"{xml_path}: the root element is <{root.tag}>, expected <CONSOLIDATED_LIST>")
    as_of = None
    if generated := root.get("dateGenerated"):
        try:
            as_of = datetime.fromisoformat(generated.replace("Z", "+00:00")).date()
        except ValueError as exc:
            raise InvalidInputError(f"{xml_path}: unreadable dateGenerated {generated!r}") from exc
    entries = []
    for group, tag, kind in (("INDIVIDUALS", "INDIVIDUAL", "individual"), ("ENTITIES", "ENTITY", "entity")):
        for i, el in enumerate(root.iterfind(f"{group}/{tag}"), 1):
            where = f"{xml_path}: {group}/{tag}[{i}]"
            try:
                entries.append(_un_entry(el, kind, where))  # type: ignore[arg-type]
            except ValueError as exc:  # a bad date or year
                raise InvalidInputError(f"{where}: {exc}") from exc
    return Watchlist("un_consolidated", as_of, tuple(entries))
