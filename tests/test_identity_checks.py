"""KYC identity checks: the verification record, PAN and Aadhaar rules, name and date of birth levels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from c360.graph.errors import InvalidInputError
from c360.graph.models import GoldenValue
from c360.graph.verification import Verification
from c360.resolution import identity_checks as ic
from stdnum import verhoeff

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KW: dict[str, Any] = {"subject": "app-1", "at": AT}


def _golden(first: str | None, last: str | None, dob: date | None = None) -> dict[str, GoldenValue]:
    out: dict[str, GoldenValue] = {}
    for name, value in (("first_name", first), ("last_name", last), ("date_of_birth", dob)):
        if value is not None:
            out[name] = GoldenValue(value, "crm", "k1", AT, "most_recent")
    return out


def _verification(**changes: object) -> Verification:
    fields: dict[str, object] = {
        "id": "ver_1",
        "subject": "cust-1",
        "check": "pan_format",
        "result": "pass",
        "confidence": 1,
        "reason": "ok",
        "evidence": {"pan": "ABCPSXXXXD", "levels": [1, 2], "nested": {"a": None}},
        "by": "officer-7",
        "at": AT,
    }
    fields.update(changes)
    return Verification(**fields)  # type: ignore[arg-type]


# -- the record ---------------------------------------------------------------------------------------------


def test_verification_round_trips_and_freezes_its_evidence() -> None:
    v = _verification()
    assert v.confidence == 1.0 and isinstance(v.confidence, float)
    assert Verification.from_json(v.to_json()) == v
    assert v.to_json()["evidence"] == {"pan": "ABCPSXXXXD", "levels": [1, 2], "nested": {"a": None}}
    with pytest.raises(TypeError):
        v.evidence["pan"] = "other"  # type: ignore[index]


@pytest.mark.parametrize(
    "changes",
    [
        {"id": ""},
        {"subject": " "},
        {"check": "horoscope"},
        {"result": "maybe"},
        {"confidence": 1.01},
        {"confidence": -0.1},
        {"confidence": float("nan")},
        {"confidence": True},
        {"reason": ""},
        {"evidence": ["not", "a", "mapping"]},
        {"evidence": {"Bad Key": 1}},
        {"evidence": {"when": AT}},
        {"evidence": {"x": float("inf")}},
        {"evidence": {"blob": "x" * 5000}},
        {"by": ""},
        {"at": datetime(2026, 12, 1, 10, 0)},
        {"at": "2026-12-01T10:00:00Z"},
    ],
)
def test_verification_refuses_bad_fields(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        _verification(**changes)


def test_verification_from_json_names_a_missing_field() -> None:
    data = _verification().to_json()
    del data["by"]
    with pytest.raises(InvalidInputError, match="'by'"):
        Verification.from_json(data)


# -- PAN --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pan", ["ABCPS1234D", "abcps1234d", " ABCPS 1234 D "])
def test_pan_format_passes_a_valid_pan(pan: str) -> None:
    v = ic.check_pan_format(pan, **KW)
    assert (v.check, v.result, v.confidence) == ("pan_format", "pass", 1.0)
    assert v.evidence["pan"] == "ABCPSXXXXD" and v.evidence["holder_code"] == "P"


@pytest.mark.parametrize(
    ("pan", "why"),
    [
        ("ABCPS1234", "10 characters"),
        ("ABCPS12345", "five letters, four digits"),
        ("1BCPS1234D", "five letters, four digits"),
        ("ABCXS1234D", "4th character 'X'"),
        ("ABCPS0000D", "0000"),
    ],
)
def test_pan_format_fails_an_invalid_pan_with_the_reason(pan: str, why: str) -> None:
    v = ic.check_pan_format(pan, **KW)
    assert v.result == "fail"
    assert why in v.reason


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("P", "individual"),
        ("C", "company"),
        ("H", "huf"),
        ("F", "firm"),
        ("A", "aop"),
        ("T", "trust"),
        ("B", "boi"),
        ("L", "local_authority"),
        ("J", "artificial_juridical_person"),
        ("G", "government"),
    ],
)
def test_holder_type_comes_from_the_fourth_character(code: str, kind: str) -> None:
    info = ic.parse_pan(f"ABC{code}S1234D")
    assert (info.holder_code, info.holder_kind, info.individual) == (code, kind, code == "P")
    assert ic.check_pan_holder(f"ABC{code}S1234D", kind, **KW).result == "pass"


def test_an_individuals_pan_presented_by_a_company_fails() -> None:
    v = ic.check_pan_holder("ABCPS1234D", "company", **KW)
    assert v.result == "fail"
    assert "Individual" in v.reason and "company" in v.reason
    assert ic.check_pan_holder("ABCCS1234D", "individual", **KW).result == "fail"


def test_pan_holder_refuses_an_unknown_applicant_kind_and_is_inconclusive_for_a_bad_pan() -> None:
    with pytest.raises(InvalidInputError, match="applicant kind"):
        ic.check_pan_holder("ABCPS1234D", "person", **KW)
    assert ic.check_pan_holder("ABCXS1234D", "individual", **KW).result == "inconclusive"
    with pytest.raises(InvalidInputError, match="4th character"):
        ic.parse_pan("ABCXS1234D")


def test_pan_surname_letter_passes_and_fails() -> None:
    ok = ic.check_pan_surname("ABCPS1234D", "Sharma", **KW)
    assert ok.result == "pass" and ok.evidence["surname_letter"] == "S"
    accented = ic.check_pan_surname("ABCPS1234D", "Śarma", **KW)  # accents stripped as the matcher does
    assert accented.result == "pass"
    bad = ic.check_pan_surname("ABCPS1234D", "Verma", **KW)
    assert bad.result == "fail"
    assert "S" in bad.reason and "V" in bad.reason


def test_pan_surname_is_inconclusive_without_a_surname_or_for_a_company() -> None:
    assert ic.check_pan_surname("ABCPS1234D", None, **KW).result == "inconclusive"
    assert ic.check_pan_surname("ABCPS1234D", " - ", **KW).result == "inconclusive"
    company = ic.check_pan_surname("ABCCS1234D", "Sharma", **KW)
    assert company.result == "inconclusive" and "Company" in company.reason
    assert ic.check_pan_surname("ABCPS12", "Sharma", **KW).result == "inconclusive"


# -- Aadhaar ----------------------------------------------------------------------------------------------


def _aadhaar(first_eleven: str) -> str:
    return first_eleven + verhoeff.calc_check_digit(first_eleven)


def _nowhere(number: str, v: Verification) -> None:
    """The full number is in no field, nor the repr, nor the JSON of ``v``."""
    for text in (repr(v), str(v.to_json()), v.reason, str(dict(v.evidence))):
        assert number not in text
        assert number[:8] not in text


def test_a_valid_aadhaar_passes_and_only_its_masked_form_is_kept() -> None:
    number = _aadhaar("49876543210")
    v = ic.check_aadhaar(number, **KW)
    assert (v.check, v.result) == ("aadhaar_checksum", "pass")
    assert v.evidence == {"aadhaar": f"XXXX XXXX {number[-4:]}"}
    _nowhere(number, v)
    spaced = ic.check_aadhaar(f"{number[:4]} {number[4:8]} {number[8:]}", **KW)
    assert spaced.result == "pass"


def test_a_wrong_check_digit_fails_without_revealing_the_number() -> None:
    number = _aadhaar("49876543210")
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    v = ic.check_aadhaar(wrong, **KW)
    assert v.result == "fail" and "check digit" in v.reason
    _nowhere(wrong, v)


@pytest.mark.parametrize("first", ["0", "1"])
def test_an_aadhaar_starting_with_0_or_1_fails(first: str) -> None:
    number = _aadhaar(first + "9876543210")  # a right check digit: the leading digit alone is wrong
    v = ic.check_aadhaar(number, **KW)
    assert v.result == "fail" and "0 or 1" in v.reason
    _nowhere(number, v)


@pytest.mark.parametrize(("number", "why"), [("4987654321", "12 digits"), ("49876543210A", "digits only")])
def test_an_aadhaar_of_the_wrong_shape_fails(number: str, why: str) -> None:
    v = ic.check_aadhaar(number, **KW)
    assert v.result == "fail" and why in v.reason
    assert number not in repr(v)


def test_masking_hides_all_but_the_last_four_digits() -> None:
    assert ic.mask_aadhaar("2341 2341 2346") == "XXXX XXXX 2346"
    assert ic.mask_aadhaar("234") == "XXX"
    with pytest.raises(InvalidInputError):
        ic.check_aadhaar(234123412346, **KW)  # type: ignore[arg-type]


# -- name and date of birth ---------------------------------------------------------------------------------

PROFILE = _golden("Rahul", "Sharma", date(1985, 3, 14))


def _name(first: str | None, last: str | None, golden: Mapping[str, GoldenValue] = PROFILE) -> Verification:
    return ic.check_name(first, last, golden, **KW)


def test_the_same_name_passes_with_full_confidence() -> None:
    v = _name("RAHUL", "SHARMA")
    assert (v.check, v.result, v.confidence) == ("name_match", "pass", 1.0)
    assert v.evidence["first_name_level"] == "exact match" and v.evidence["last_name_level"] == "exact match"
    assert v.evidence["golden_records"] == {"first_name": "crm|k1", "last_name": "crm|k1"}


def test_an_initial_for_the_given_name_is_recognised() -> None:
    v = _name("R.", "Sharma")
    assert v.evidence["first_name_level"] == "initials"
    assert v.result == "pass" and v.confidence == ic.NAME_LEVELS["initials"] < 1
    assert _name("R K", "Sharma").evidence["first_name_level"] == "initials"
    assert _name("K.", "Sharma").result == "fail"  # another initial


def test_swapped_first_and_last_names_are_one_level() -> None:
    v = _name("Sharma", "Rahul")
    assert v.evidence["first_name_level"] == "swapped" and v.evidence["last_name_level"] == "swapped"
    assert v.result == "pass" and v.confidence == ic.NAME_LEVELS["swapped"]


def test_a_middle_name_on_one_side_compares_the_first_words() -> None:
    v = _name("Rahul Kumar", "Sharma")
    assert v.result == "pass" and v.evidence["first_name_compared"] == "first_word"


def test_jaro_winkler_bands_decide_near_names() -> None:
    close = _name("Rahul", "Sarma")  # Jaro-Winkler >= 0.92
    assert close.evidence["last_name_level"] == "Jaro-Winkler >= 0.92" and close.result == "pass"
    looser = _name("Rahul", "Shamra", _golden("Rahul", "Shaamrama"))
    assert looser.evidence["last_name_level"] == "Jaro-Winkler >= 0.8"
    assert looser.result == "manual_review"
    other = _name("Rahul", "Verma")
    assert other.evidence["last_name_level"] == "all other comparisons" and other.result == "fail"


def test_a_name_part_missing_is_at_most_manual_review_and_nothing_is_inconclusive() -> None:
    v = _name(None, "Sharma")
    assert v.result == "manual_review" and v.confidence <= ic.PARTIAL_NAME
    assert _name("Rahul", "Sharma", {}).result == "inconclusive"
    assert _name(None, None).result == "inconclusive"


def test_name_check_refuses_bad_arguments() -> None:
    with pytest.raises(InvalidInputError):
        ic.check_name(1, "Sharma", PROFILE, **KW)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="claim source"):
        ic.check_name("Rahul", "Sharma", PROFILE, source="rumour", **KW)


def test_split_name_takes_the_last_word_as_surname() -> None:
    assert ic.split_name("RAHUL KUMAR SHARMA") == ("rahul kumar", "sharma")
    assert ic.split_name("Sharma") == (None, "sharma")
    assert ic.split_name("  ") == (None, None)


def _dob(claimed: date, golden: Mapping[str, GoldenValue] = PROFILE) -> Verification:
    return ic.check_dob(claimed, golden, **KW)


@pytest.mark.parametrize(
    ("claimed", "level", "result"),
    [
        (date(1985, 3, 14), "exact match", "pass"),
        (date(1986, 3, 14), "one edit apart", "manual_review"),  # one digit wrong in the year
        (date(1958, 3, 14), "adjacent characters transposed", "manual_review"),
        (date(1985, 3, 18), "one edit apart", "manual_review"),
        (date(1985, 7, 2), "same year", "fail"),
        (date(1990, 1, 1), "all other comparisons", "fail"),
    ],
)
def test_dob_levels(claimed: date, level: str, result: str) -> None:
    v = _dob(claimed)
    assert (v.check, v.evidence["level"], v.result) == ("dob_match", level, result)
    assert v.evidence["golden_record"] == "crm|k1"


def test_a_transposed_day_and_month_is_manual_review_not_pass() -> None:
    v = _dob(date(1985, 4, 3), _golden("Rahul", "Sharma", date(1985, 3, 4)))
    assert v.evidence["level"] == "day and month swapped"
    assert v.result == "manual_review" and v.confidence < 1


def test_dob_without_a_profile_date_is_inconclusive_and_bad_input_is_refused() -> None:
    assert _dob(date(1985, 3, 14), _golden("Rahul", "Sharma")).result == "inconclusive"
    with pytest.raises(InvalidInputError):
        _dob(datetime(1985, 3, 14, tzinfo=UTC))
    with pytest.raises(InvalidInputError):
        _dob("1985-03-14")  # type: ignore[arg-type]


def test_every_record_carries_the_callers_subject_by_time_and_id() -> None:
    later = AT + timedelta(hours=1)
    v = ic.check_dob(date(1985, 3, 14), PROFILE, subject="cust-9", at=later, by="officer-3", id="ver_x")
    assert (v.id, v.subject, v.by, v.at) == ("ver_x", "cust-9", "officer-3", later)
    assert ic.check_pan_format("ABCPS1234D", **KW).id != ic.check_pan_format("ABCPS1234D", **KW).id
