"""The sanctions list loaders on the published OFAC and UN files, and the watchlist models."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest
from c360.connectors.watchlists import load_ofac, load_un, parse_ofac_dob
from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.watchlist import Alias, DateOfBirth, ListEntry, NamePart, Watchlist

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "watchlists"


@pytest.fixture(scope="module")
def ofac() -> Watchlist:
    return load_ofac(DATA / "ofac")


@pytest.fixture(scope="module")
def un() -> Watchlist:
    return load_un(DATA / "un" / "consolidated.xml")


def test_ofac_counts_and_kinds(ofac: Watchlist) -> None:
    kinds = [e.kind for e in ofac.entries]
    assert len(ofac.entries) == 8976
    assert kinds.count("individual") == 4620
    assert kinds.count("vessel") == 406 and kinds.count("aircraft") == 277
    assert ofac.name == "ofac_sdn" and ofac.as_of is None  # the legacy CSV carries no date


def test_ofac_individual_field_by_field(ofac: Watchlist) -> None:
    e = ofac.by_id("7846")
    assert e.name == "AL-TIKRITI, Abid Hamid Mahmud"
    assert e.kind == "individual"
    assert e.name_parts == (NamePart("last", "AL-TIKRITI"), NamePart("given", "Abid Hamid Mahmud"))
    assert e.aliases == (
        Alias("MAHMUD, Abid Hamid bid Hamid", "aka", "good"),
        Alias("MAHMOUD, Col. Abdel Hamid", "aka", "good"),
        Alias("HAMMUD, Abed Mahmoud", "aka", "good"),
    )
    assert e.dates_of_birth == (DateOfBirth(date(1957, 1, 1), date(1957, 12, 31), "year", True, "circa 1957"),)
    assert e.places_of_birth == ("al-Awja, near Tikrit, Iraq",)
    assert e.nationalities == ("Iraq",)
    assert e.programs == ("IRAQ2",)


def test_ofac_programs_and_day_dob(ofac: Watchlist) -> None:
    e = ofac.by_id("27225")
    assert e.programs == ("GLOMAG", "BURMA-EO14014")
    assert e.dates_of_birth[0] == DateOfBirth.exact(date(1956, 7, 3), text="03 Jul 1956")
    assert e.places_of_birth == ("Dawei, Burma",)


def test_ofac_weak_aliases_from_remarks_and_continued_remarks(ofac: Watchlist) -> None:
    bank = ofac.by_id("306")
    assert bank.kind == "entity"
    assert bank.aliases == (Alias("NATIONAL BANK OF CUBA", "aka", "good"), Alias("BNC", "aka", "low"))
    # 28264's remarks continue in sdn_comments.csv, which holds its last two a.k.a.s.
    hacker = ofac.by_id("28264")
    assert hacker.remarks.endswith("a.k.a. 'khaleesi'; Linked To: LAZARUS GROUP.")
    assert Alias("khaleesi", "aka", "low") in hacker.aliases
    assert Alias("blackjack1987", "aka", "low") in hacker.aliases


def test_ofac_month_dob(ofac: Watchlist) -> None:
    assert ofac.by_id("6862").dates_of_birth == (
        DateOfBirth(date(1938, 9, 1), date(1938, 9, 30), "month", text="Sep 1938"),
    )


@pytest.mark.parametrize(
    ("text", "earliest", "latest", "precision", "circa"),
    [
        ("01 Jan 1970", date(1970, 1, 1), date(1970, 1, 1), "day", False),
        ("Dec 1938", date(1938, 12, 1), date(1938, 12, 31), "month", False),
        ("circa 1957", date(1957, 1, 1), date(1957, 12, 31), "year", True),
        ("1973 to 1974", date(1973, 1, 1), date(1974, 12, 31), "range", False),
        ("02 Jan 1960 to 04 Feb 1961", date(1960, 1, 2), date(1961, 2, 4), "range", False),
        ("circa 1979-1982", date(1979, 1, 1), date(1982, 12, 31), "range", True),
    ],
)
def test_parse_ofac_dob(text: str, earliest: date, latest: date, precision: str, circa: bool) -> None:
    dob = parse_ofac_dob(text)
    assert (dob.earliest, dob.latest, dob.precision, dob.circa) == (earliest, latest, precision, circa)


@pytest.mark.parametrize("text", ["31 Feb 1970", "01 Foo 1970", "sometime", "1974 to 1973"])
def test_parse_ofac_dob_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_ofac_dob(text)


def test_un_counts_and_date(un: Watchlist) -> None:
    kinds = [e.kind for e in un.entries]
    assert kinds.count("individual") == 730 and kinds.count("entity") == 273
    assert un.as_of == date(2026, 2, 27)


def test_un_individual_with_aliases_and_dobs(un: Watchlist) -> None:
    e = un.by_id("6908002")
    assert e.name == "IRUTA DOUGLAS MPAMO" and e.reference == "CDi.011"
    assert e.name_parts == (NamePart("first", "IRUTA DOUGLAS"), NamePart("second", "MPAMO"))
    assert e.aliases == (Alias("Douglas Iruta Mpamo", "aka", "good"), Alias("Mpano", "aka", "low"))
    assert [d.earliest for d in e.dates_of_birth] == [date(1965, 12, 28), date(1965, 12, 29)]
    assert e.nationalities == ("Democratic Republic of the Congo",)  # the XML's line break folded
    assert e.programs == ("DRC",)
    assert "Goma, Democratic Republic of the Congo" in e.places_of_birth


def test_un_year_range_and_entities(un: Watchlist) -> None:
    assert un.by_id("6908021").dates_of_birth == (DateOfBirth.years(1973, 1974, text="1973 to 1974"),)
    adf = un.by_id("6908402")
    assert adf.kind == "entity" and adf.name == "ADF"
    assert Alias("Allied Democratic Forces", "aka", "good") in adf.aliases
    assert Alias("NALU", "fka", "good") in adf.aliases
    with pytest.raises(NotFoundError):
        un.by_id("nope")


def test_content_hash_is_stable_and_follows_matching_fields(ofac: Watchlist) -> None:
    e = ofac.by_id("7846")
    again = load_ofac(DATA / "ofac").by_id("7846")
    assert e.content_hash() == again.content_hash()
    assert len(e.content_hash()) == 64
    more = dataclasses.replace(e, aliases=(*e.aliases, Alias("ABU X", "aka", "low")))
    assert more.content_hash() != e.content_hash()
    assert dataclasses.replace(e, dates_of_birth=()).content_hash() != e.content_hash()
    assert dataclasses.replace(e, remarks="changed").content_hash() == e.content_hash()


def test_models_refuse_bad_values() -> None:
    with pytest.raises(InvalidInputError):
        ListEntry("eu", "1", "individual", "X")
    with pytest.raises(InvalidInputError):
        ListEntry("ofac_sdn", "1", "person", "X")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ListEntry("ofac_sdn", " ", "individual", "X")
    entry = ListEntry("ofac_sdn", "1", "individual", "X")
    with pytest.raises(InvalidInputError):
        Watchlist("ofac_sdn", None, (entry, entry))
    with pytest.raises(InvalidInputError):
        Watchlist("un_consolidated", None, (entry,))


def _copy_ofac(tmp_path: Path) -> Path:
    folder = tmp_path / "ofac"
    shutil.copytree(DATA / "ofac", folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def test_ofac_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    folder = _copy_ofac(tmp_path)
    lines = (folder / "sdn.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = '306,"BANCO NACIONAL DE CUBA",-0- ,"CUBA"\r\n'
    (folder / "sdn.csv").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"sdn\.csv, line 3: 4 fields, expected 12"):
        load_ofac(folder)


def test_ofac_bad_dob_and_orphan_alias_are_refused(tmp_path: Path) -> None:
    folder = _copy_ofac(tmp_path)
    alt = (folder / "alt.csv").read_text(encoding="utf-8").rstrip("\x1a")  # the DOS end-of-file mark
    (folder / "alt.csv").write_text(alt + '99999999,1,"aka","NOBODY",-0- \r\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"alt\.csv, line 11911: alias of the unknown entry 99999999"):
        load_ofac(folder)
    folder = _copy_ofac(tmp_path / "b")
    text = (folder / "sdn.csv").read_text(encoding="utf-8").replace("DOB circa 1957;", "DOB 31 Feb 1957;")
    (folder / "sdn.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"sdn\.csv, line \d+: entry 7846: unreadable date of birth"):
        load_ofac(folder)


_UN = """<?xml version="1.0"?>
<CONSOLIDATED_LIST dateGenerated="2026-02-27T00:00:09.554Z"><INDIVIDUALS><INDIVIDUAL>
<DATAID>1</DATAID><FIRST_NAME>ERIC</FIRST_NAME><SECOND_NAME>BADEGE</SECOND_NAME>
<INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>EXACT</TYPE_OF_DATE><DATE>{date}</DATE></INDIVIDUAL_DATE_OF_BIRTH>
</INDIVIDUAL></INDIVIDUALS><ENTITIES/></CONSOLIDATED_LIST>"""


def test_un_malformed_element_names_the_element(tmp_path: Path) -> None:
    path = tmp_path / "un.xml"
    path.write_text(_UN.format(date="1971-02-30"), encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"INDIVIDUALS/INDIVIDUAL\[1\]"):
        load_un(path)
    path.write_text(_UN.format(date="1971-02-03"), encoding="utf-8")
    assert load_un(path).entries[0].dates_of_birth == (DateOfBirth.exact(date(1971, 2, 3)),)
    path.write_text(_UN.replace("<DATAID>1</DATAID>", "").format(date="1971-02-03"), encoding="utf-8")
    with pytest.raises(InvalidInputError, match="no DATAID"):
        load_un(path)
    path.write_text("<CONSOLIDATED_LIST><INDIVIDUALS>", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not well-formed"):
        load_un(path)


def test_un_refuses_dtd_and_entities(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        "<CONSOLIDATED_LIST><INDIVIDUALS/><ENTITIES/></CONSOLIDATED_LIST>",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInputError, match="DOCTYPE or ENTITY"):
        load_un(path)
