from __future__ import annotations

from datetime import UTC, date, datetime

from c360.graph.models import SourceRecord
from c360.resolution.features import COLUMNS, clean_text, feature_table, features


def test_clean_text_folds_case_accents_and_punctuation() -> None:
    assert clean_text("  Jérôme  O'Brien-Smith ") == "jerome o brien smith"
    assert clean_text("!!!") is None and clean_text(None) is None


def test_features_are_the_normalised_comparison_view() -> None:
    r = SourceRecord(
        "crm",
        "7",
        datetime(2025, 1, 1, tzinfo=UTC),
        first_name="Ann",
        last_name="LEE",
        date_of_birth=date(1990, 2, 3),
        email=" Ann@X.com",
        phone="(415) 555-0100",
        address_line1="12 High St.",
        address_line2="Apt 4",
        postcode="sw1a 1aa",
        city="London",
        national_id="532-44-8710",
        national_id_kind="ssn",
    )
    f = features(r, "US")
    assert f == {
        "unique_id": "crm|7",
        "source_dataset": "crm",
        "first_name": "ann",
        "last_name": "lee",
        "dob": "1990-02-03",
        "email": "ann@x.com",
        "phone": "+14155550100",
        "address": "12 high st apt 4",
        "postcode": "SW1A1AA",
        "city": "london",
        "national_id": "SSN:532448710",
        "name_pair": "ann|lee",
    }
    table = feature_table([r, SourceRecord("web", "1", r.observed_at)], "US")
    assert list(table) == list(COLUMNS) and table["first_name"] == ["ann", None]
