from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from c360.graph.models import Identifier, SourceRecord
from c360.resolution.config import LinkingConfig, SurvivorshipConfig
from c360.resolution.normalize import (
    identifiers_of,
    is_junk,
    normalize_email,
    normalize_national_id,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (" Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("ann@", None),
        ("no-at.example.com", None),
        ("", None),
        ("a b@x.com", None),
    ],
)
def test_email(raw: str, want: str | None) -> None:
    assert normalize_email(raw) == want


@pytest.mark.parametrize(
    ("raw", "region", "want"),
    [
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.0100", "US", "+14155550100"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("0412 345 678", "AU", "+61412345678"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("12", "US", None),
        ("call me", "US", None),
    ],
)
def test_phone_e164_with_default_region(raw: str, region: str, want: str | None) -> None:
    assert normalize_phone(raw, region) == want


def test_national_id_upper_without_separators() -> None:
    assert normalize_national_id("532-44 8710", "ssn") == "SSN:532448710"
    assert normalize_national_id("abcde1234f", "pan") == "PAN:ABCDE1234F"
    assert normalize_national_id("12", "ssn") is None


def test_identifiers_of_record_scopes_customer_number_by_source() -> None:
    r = SourceRecord(
        "crm",
        "1",
        datetime(2025, 1, 1, tzinfo=UTC),
        email="A@B.co",
        phone="4155550100",
        customer_number="C-9",
        date_of_birth=date(1990, 1, 1),
    )
    assert identifiers_of(r, "US") == (
        Identifier("customer_number", "crm:C-9"),
        Identifier("email", "a@b.co"),
        Identifier("phone", "+14155550100"),
    )


def test_blocklist_is_read_as_email_and_phone() -> None:
    blocked = LinkingConfig(blocklist=["Test@Test.com", "(999) 999-9999"]).blocked_uids()
    assert is_junk(Identifier("email", "test@test.com"), blocked)
    assert is_junk(Identifier("phone", "+19999999999"), blocked)
    assert is_junk(Identifier("phone", "+10000000000"), frozenset())  # degenerate
    assert not is_junk(Identifier("email", "ann@x.com"), blocked)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="unknown canonical field"):
        SurvivorshipConfig(fields={"shoe_size": "most_recent"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        LinkingConfig(default_region="USA")


def test_north_american_fast_path_agrees_with_phonenumbers() -> None:
    import random

    import phonenumbers

    rng = random.Random(5)
    shapes = ["({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "1{a}{b}{c}", "{a}.{b}.{c}", "+1({a}){b}{c}"]
    checked = 0
    for _ in range(3000):
        a, b, c = f"{rng.randrange(1000):03d}", f"{rng.randrange(1000):03d}", f"{rng.randrange(10000):04d}"
        raw = rng.choice(shapes).format(a=a, b=b, c=c)
        try:
            parsed = phonenumbers.parse(raw, "US")
            want = (
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                if phonenumbers.is_possible_number(parsed)
                else None
            )
        except phonenumbers.NumberParseException:
            want = None
        assert normalize_phone(raw, "US") == want, raw
        checked += want is not None
    assert checked > 2000
