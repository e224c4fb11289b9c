"""KYC document fields from text (OCR noise included) and the checks against what the applicant entered."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from c360.graph.errors import InvalidInputError
from c360.graph.verification import Verification
from c360.resolution.document_checks import check_document, check_pan_document
from c360.resolution.document_fields import DocumentFields, mrz_check_digit, parse_date, read_fields
from document_images import aadhaar_number, mrz

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KW: dict[str, Any] = {"subject": "app-1", "at": AT, "document_id": "doc-1"}
ENTERED = {"pan": "ABCPS1234D", "first_name": "Rahul Kumar", "last_name": "Sharma", "date_of_birth": "1985-03-12"}

PAN_TEXT = """INCOME TAX DEPARTMENT   GOVT. OF INDIA
Permanent Account Number Card
ABCPS1234D
Name
RAHUL KUMAR SHARMA
Father's Name
SURESH CHANDRA SHARMA
Date of Birth
12/03/1985
"""


def _by_check(records: list[Verification]) -> dict[str, Verification]:
    return {r.check: r for r in records}


# -- dates --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["12/03/1985", "12-03-1985", "12.03.1985", "1985-03-12", "12 Mar 1985", "12 March 1985", "DOB: 12 / 03 / 1985"],
)
def test_dates_in_every_layout(text: str) -> None:
    assert parse_date(text) == date(1985, 3, 12)


@pytest.mark.parametrize("text", ["31/02/1985", "12/13/1985", "no date here", "1234"])
def test_no_date_where_there_is_none(text: str) -> None:
    assert parse_date(text) is None


# -- PAN card -----------------------------------------------------------------------------------------------


def test_pan_card_fields() -> None:
    fields = read_fields(PAN_TEXT, "pan_card")
    assert fields.pan == "ABCPS1234D"
    assert fields.name == "RAHUL KUMAR SHARMA"
    assert fields.other["father_name"] == "SURESH CHANDRA SHARMA"
    assert fields.date_of_birth == date(1985, 3, 12)
    assert fields.aadhaar is None and fields.doc_type == "pan_card"


def test_pan_card_with_ocr_noise() -> None:
    noisy = """income  tax department
    permanent account number card
    ABCPS 1234D
    nagq / name : rahul kumar sharma
    pita ka naam / Father\u2019s Name
       SURESH  CHANDRA SHARMA |
    date of birth  12-03-1985
    """
    fields = read_fields(noisy, "pan_card")
    assert fields.pan == "ABCPS1234D"
    assert fields.name == "RAHUL KUMAR SHARMA"
    assert fields.other["father_name"] == "SURESH CHANDRA SHARMA"
    assert fields.date_of_birth == date(1985, 3, 12)


def test_a_label_without_its_value_takes_none_from_the_next_label() -> None:
    fields = read_fields("Name\nFather's Name\nSURESH SHARMA\nDate of Birth\n12/03/1985", "pan_card")
    assert fields.name is None and fields.other["father_name"] == "SURESH SHARMA"
    assert fields.date_of_birth == date(1985, 3, 12)


def test_the_older_pan_card_layout_without_labels() -> None:
    text = "INCOME TAX DEPARTMENT GOVT. OF INDIA\nRAHUL KUMAR SHARMA\nSURESH CHANDRA SHARMA\n12/03/1985\n"
    text += "Permanent Account Number\nABCPS1234D\nSignature"
    fields = read_fields(text, "pan_card")
    assert (fields.pan, fields.name, fields.date_of_birth) == ("ABCPS1234D", "RAHUL KUMAR SHARMA", date(1985, 3, 12))
    assert fields.other["father_name"] == "SURESH CHANDRA SHARMA"


def test_the_aadhaar_number_is_not_in_the_repr() -> None:
    number = aadhaar_number()
    fields = read_fields(f"PRIYA NAIR\nDOB: 01/07/1990\n{number}", "aadhaar")
    assert fields.aadhaar == number and number not in repr(fields)


@pytest.mark.parametrize(
    ("read", "pan"),
    [
        ("A8CPS1234D", "ABCPS1234D"),  # 8 where a letter must be
        ("0BCPS1234D", "OBCPS1234D"),
        ("ABCP51234D", "ABCPS1234D"),  # 5 -> S
        ("ABCPSI234D", "ABCPS1234D"),  # I -> 1
        ("ABCPSl23OD", "ABCPS1230D"),  # l -> 1, O -> 0
        ("ABCPS12S4D", "ABCPS1254D"),
        ("ABCPS1B34D", "ABCPS1834D"),
        ("ABCPS1Z34D", "ABCPS1234D"),
        ("A2CPS1234D", "AZCPS1234D"),
        ("abcps1234d", "ABCPS1234D"),
    ],
)
def test_pan_positional_repair(read: str, pan: str) -> None:
    assert read_fields(f"Permanent Account Number\n{read}", "pan_card").pan == pan


def test_a_valid_pan_is_preferred_and_words_are_no_pan() -> None:
    # DEPARTMENT and ACCOUNTNUMBER are long words, not PANs; ABCXS1234D has no holder type X.
    text = "INCOME TAX DEPARTMENT\nABCXS1234D\nPermanent Account Number\nABCPS1234D"
    assert read_fields(text, "pan_card").pan == "ABCPS1234D"
    assert read_fields("INCOME TAX DEPARTMENT\nPERMANENTACCOUNT", "pan_card").pan is None


# -- Aadhaar ------------------------------------------------------------------------------------------------


def test_aadhaar_fields() -> None:
    number = aadhaar_number()
    grouped = f"{number[:4]} {number[4:8]} {number[8:]}"
    text = f"Government of India\nPriya Nair\nDOB: 01/07/1990\nFEMALE\n{grouped}\nVID : 9134 5678 1234 5678"
    fields = read_fields(text, "aadhaar")
    assert fields.aadhaar == number
    assert fields.name == "PRIYA NAIR"
    assert fields.date_of_birth == date(1990, 7, 1)
    assert fields.other["gender"] == "female"
    assert fields.pan is None


def test_aadhaar_year_of_birth_only_and_a_valid_number_first() -> None:
    number = aadhaar_number("56781234901")
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    text = f"Government of India\nAMIT DAS\nYear of Birth : 1979\nMALE\n{wrong}\n{number}"
    fields = read_fields(text, "aadhaar")
    assert fields.aadhaar == number
    assert fields.date_of_birth is None and fields.other["year_of_birth"] == "1979"
    assert fields.name == "AMIT DAS"


# -- passport MRZ -------------------------------------------------------------------------------------------


def test_mrz_check_digit_of_the_icao_example() -> None:
    # ICAO 9303 part 3's example: document number L898902C3 has check digit 6, 740812 has 2.
    assert mrz_check_digit("L898902C3") == "6"
    assert mrz_check_digit("740812") == "2"
    assert mrz_check_digit("<<<<<<<<<<<<<<") == "0"
    with pytest.raises(InvalidInputError):
        mrz_check_digit("ab")


def _mrz_text() -> str:
    lines = mrz(
        surname="SHARMA",
        given="RAHUL KUMAR",
        number="Z1234567",
        nationality="IND",
        dob=date(1985, 3, 12),
        sex="M",
        expiry=date(2031, 5, 1),
    )
    return "REPUBLIC OF INDIA\n" + "\n".join(lines)


def test_passport_fields_from_the_mrz() -> None:
    fields = read_fields(_mrz_text(), "passport")
    assert fields.name == "RAHUL KUMAR SHARMA"
    assert fields.date_of_birth == date(1985, 3, 12)
    assert fields.expires_on == date(2031, 5, 1)
    assert dict(fields.other) == {
        "surname": "SHARMA",
        "given_names": "RAHUL KUMAR",
        "document_number": "Z1234567",
        "nationality": "IND",
        "sex": "M",
        "mrz": "valid",
        "date_of_expiry": "2031-05-01",
    }


def test_mrz_names_end_at_the_fillers_and_are_letters_only() -> None:
    one, two = _mrz_text().splitlines()[1:]
    noisy = one[:24] + "<<<<<cccceccS<SS5".ljust(20, "c")
    fields = read_fields(f"{noisy}\n{two}", "passport")
    assert (fields.other["surname"], fields.other["given_names"]) == ("SHARMA", "RAHUL KUMAR")
    assert fields.name == "RAHUL KUMAR SHARMA"


def test_passport_mrz_with_ocr_noise_and_a_bad_check_digit() -> None:
    one, two = _mrz_text().splitlines()[1:]
    noisy = f"{one[:20]} {one[20:]}\n{two[:42]}Q{two[43]}"  # a space; the 0 check digit read as Q
    assert read_fields(noisy, "passport").date_of_birth == date(1985, 3, 12)
    tampered = two[:13] + "860312" + two[19:]  # another birth date, the old check digit
    fields = read_fields(f"{one}\n{tampered}", "passport")
    assert fields.other["mrz"] == "bad_check_digits"
    assert fields.date_of_birth is None and fields.name is None and fields.expires_on is None


@pytest.mark.parametrize(
    "misread",
    [
        lambda two: "7" + two[1:9] + "1" + two[9:],  # Z read as 7 and a character read twice (as OCR did here)
        lambda two: two[:30] + two[31:],  # a filler dropped
        lambda two: two[:5] + "S" + two[6:],  # a 5 in the number read as S
        lambda two: two[:10] + "1" + two[11:30] + "ccccc" + two[35:],  # IND read as 1ND, fillers as c
    ],
)
def test_mrz_line_two_is_repaired_by_its_check_digits(misread: Any) -> None:
    one, two = _mrz_text().splitlines()[1:]
    fields = read_fields(f"{one}\n{misread(two)}", "passport")
    assert fields.other["mrz"] == "valid" and fields.other["document_number"] == "Z1234567"
    assert fields.date_of_birth == date(1985, 3, 12) and fields.expires_on == date(2031, 5, 1)


@pytest.mark.parametrize("doc_type", ["pan_card", "aadhaar", "passport"])
def test_no_text_gives_empty_fields(doc_type: str) -> None:
    fields = read_fields("", doc_type)
    assert fields.empty and fields.doc_type == doc_type
    assert read_fields("~~ .. ,, |", doc_type).empty


def test_document_fields_refuse_bad_other_values() -> None:
    with pytest.raises(InvalidInputError):
        DocumentFields(other={"date_of_expiry": "soon"})
    with pytest.raises(InvalidInputError):
        DocumentFields(other={"sex": 1})  # type: ignore[dict-item]
    assert DocumentFields(other={"date_of_expiry": "2030-01-31"}).expires_on == date(2030, 1, 31)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="unknown document type"):
        read_fields(PAN_TEXT, "driving_licence")
    with pytest.raises(InvalidInputError):
        read_fields(b"bytes", "pan_card")  # type: ignore[arg-type]


# -- checks against the entries -----------------------------------------------------------------------------


def test_a_matching_application_passes() -> None:
    records = check_document(read_fields(PAN_TEXT, "pan_card"), ENTERED, **KW)
    assert [r.check for r in records] == ["pan_document", "name_match", "dob_match"]
    assert all(r.result == "pass" for r in records), [r.reason for r in records]
    for r in records:
        assert r.subject == "app-1" and r.evidence["document_id"] == "doc-1" and r.by == "c360.document_checks"
    assert records[1].evidence["source"] == "document"
    pan = records[0].to_json()
    assert pan["evidence"]["document_pan"] == "ABCPSXXXXD" and "1234" not in str(pan)


def test_the_entered_full_name_and_date_formats_are_read() -> None:
    entered = {"pan": "abcps 1234 d", "name": "Rahul Kumar Sharma", "date_of_birth": "12/03/1985"}
    records = _by_check(check_document(read_fields(PAN_TEXT, "pan_card"), entered, **KW))
    assert {c: r.result for c, r in records.items()} == {
        "pan_document": "pass",
        "name_match": "pass",
        "dob_match": "pass",
    }


def test_a_different_date_of_birth_fails() -> None:
    entered = {**ENTERED, "date_of_birth": "1991-08-25"}
    records = _by_check(check_document(read_fields(PAN_TEXT, "pan_card"), entered, **KW))
    assert records["dob_match"].result == "fail"
    assert records["pan_document"].result == "pass" and records["name_match"].result == "pass"


def test_one_pan_character_off_is_manual_review_and_more_fails() -> None:
    fields = read_fields(PAN_TEXT, "pan_card")
    slip = _by_check(check_document(fields, {**ENTERED, "pan": "ABCPS1284D"}, **KW))["pan_document"]
    assert slip.result == "manual_review" and slip.evidence["differs_at"] == (7,)
    assert "1284" not in str(slip.to_json()) and "1234" not in str(slip.to_json())
    other = _by_check(check_document(fields, {**ENTERED, "pan": "XYZPQ9876K"}, **KW))["pan_document"]
    assert other.result == "fail"
    shorter = check_pan_document("ABCPS1234D", "ABCPS123D", subject="app-1", at=AT, document_id="doc-1")
    assert shorter.result == "fail"


def test_a_different_name_fails() -> None:
    records = _by_check(check_document(read_fields(PAN_TEXT, "pan_card"), {**ENTERED, "first_name": "Vikram"}, **KW))
    assert records["name_match"].result == "fail"


def test_an_expired_passport_fails_and_a_valid_one_passes() -> None:
    fields = read_fields(_mrz_text(), "passport")  # expires 2031-05-01
    entered = {"first_name": "Rahul Kumar", "last_name": "Sharma", "date_of_birth": "1985-03-12"}
    valid = _by_check(check_document(fields, entered, **KW))
    assert set(valid) == {"name_match", "dob_match", "document_expiry"}
    assert all(r.result == "pass" for r in valid.values())
    expired = _by_check(check_document(fields, entered, **{**KW, "at": datetime(2031, 5, 2, 9, tzinfo=UTC)}))
    assert expired["document_expiry"].result == "fail"
    given = _by_check(check_document(fields, entered, expires_on=date(2020, 1, 1), **KW))
    assert given["document_expiry"].result == "fail" and given["document_expiry"].evidence["expires_on"] == "2020-01-01"


def test_an_aadhaar_number_is_checked_and_only_masked() -> None:
    number = aadhaar_number()
    fields = read_fields(f"PRIYA NAIR\nDOB: 01/07/1990\n{number}", "aadhaar")
    records = check_document(fields, {"name": "Priya Nair", "date_of_birth": "1990-07-01"}, **KW)
    by = _by_check(records)
    assert by["aadhaar_checksum"].result == "pass" and "pan_document" not in by
    assert all(number not in str(r.to_json()) and number[:8] not in str(r.to_json()) for r in records)


def test_nothing_read_gives_inconclusive_checks() -> None:
    records = check_document(read_fields("", "pan_card"), ENTERED, **KW)
    assert [r.check for r in records] == ["pan_document", "name_match", "dob_match"]
    assert all(r.result == "inconclusive" for r in records)
    nothing_entered = check_document(read_fields(PAN_TEXT, "pan_card"), {}, **KW)
    assert all(r.result == "inconclusive" for r in nothing_entered)


@pytest.mark.parametrize(
    ("fields", "entered", "changes"),
    [
        ("not fields", ENTERED, {}),
        (DocumentFields(), ["pan"], {}),
        (DocumentFields(), {"date_of_birth": "yesterday"}, {}),
        (DocumentFields(), {"pan": 1234}, {}),
        (DocumentFields(), ENTERED, {"document_id": ""}),
        (DocumentFields(), ENTERED, {"at": datetime(2026, 12, 1)}),
    ],
)
def test_check_document_refuses_bad_arguments(fields: Any, entered: Any, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        check_document(fields, entered, **{**KW, **changes})
