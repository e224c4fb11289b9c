"""KYC document text: drawn documents read by Tesseract, text and scanned PDFs, and the errors.

Each document is drawn by :mod:`document_images` at a realistic size, read by
:func:`~c360.connectors.documents.extract.extract_text` with Debian's Tesseract, parsed and checked
against what an applicant entered.
"""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytesseract
import pytest
from c360.connectors.documents.extract import ExtractedText, ExtractionError, extract_text
from c360.graph.errors import InvalidInputError
from c360.resolution.document_checks import check_document
from c360.resolution.document_fields import read_fields
from document_images import (
    aadhaar_card,
    aadhaar_number,
    blank,
    encoded,
    image_pdf,
    pan_card,
    passport_page,
    photographed,
    text_pdf,
)
from pypdf import PdfWriter

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KW: dict[str, Any] = {"subject": "app-1", "at": AT, "document_id": "doc-1"}
DOB = date(1985, 3, 12)
PAN = "ABCPS1234D"
ENTERED = {"pan": PAN, "first_name": "Rahul Kumar", "last_name": "Sharma", "date_of_birth": "1985-03-12"}
CARD = pan_card(name="RAHUL KUMAR SHARMA", father="SURESH CHANDRA SHARMA", dob=DOB, pan=PAN)


def _results(text: ExtractedText, doc_type: str, entered: dict[str, str] = ENTERED, **kw: Any) -> dict[str, str]:
    records = check_document(read_fields(text.text, doc_type), entered, **{**KW, **kw})
    return {r.check: r.result for r in records}


@pytest.fixture(scope="module")
def pan_png() -> ExtractedText:
    return extract_text(encoded(CARD), "image/png")


@pytest.mark.parametrize(
    ("degrees", "seed", "fmt"),
    [(1.5, 7, "JPEG"), (-2.0, 3, "JPEG"), (1.0, 11, "PNG")],
)
def test_a_photographed_pan_card_is_read(degrees: float, seed: int, fmt: str) -> None:
    data = encoded(photographed(CARD, degrees=degrees, seed=seed), fmt)
    text = extract_text(data, f"image/{fmt.lower()}")
    assert text.method == "ocr" and text.pages == 1
    fields = read_fields(text.text, "pan_card")
    assert (fields.pan, fields.name, fields.date_of_birth) == (PAN, "RAHUL KUMAR SHARMA", DOB), text.text
    assert fields.other["father_name"] == "SURESH CHANDRA SHARMA"


def test_a_matching_application_passes(pan_png: ExtractedText) -> None:
    assert _results(pan_png, "pan_card") == {"pan_document": "pass", "name_match": "pass", "dob_match": "pass"}


def test_a_different_dob_fails_and_a_pan_slip_is_manual_review(pan_png: ExtractedText) -> None:
    assert _results(pan_png, "pan_card", {**ENTERED, "date_of_birth": "1987-11-30"})["dob_match"] == "fail"
    assert _results(pan_png, "pan_card", {**ENTERED, "pan": "ABCPS1284D"})["pan_document"] == "manual_review"
    assert _results(pan_png, "pan_card", {**ENTERED, "pan": "BCDPT5678E"})["pan_document"] == "fail"


def test_an_aadhaar_card_is_read() -> None:
    number = aadhaar_number()
    card = photographed(aadhaar_card(name="PRIYA NAIR", dob=date(1990, 7, 1), number=number), degrees=-1.2)
    text = extract_text(encoded(card, "JPEG"), "image/jpeg")
    fields = read_fields(text.text, "aadhaar")
    assert (fields.aadhaar, fields.name, fields.date_of_birth) == (number, "PRIYA NAIR", date(1990, 7, 1))
    entered = {"first_name": "Priya", "last_name": "Nair", "date_of_birth": "1990-07-01"}
    assert _results(text, "aadhaar", entered) == {"aadhaar_checksum": "pass", "name_match": "pass", "dob_match": "pass"}


def test_an_expired_passport_fails() -> None:
    page = passport_page(surname="SHARMA", given="RAHUL KUMAR", number="Z1234567", dob=DOB, expiry=date(2024, 5, 1))
    text = extract_text(encoded(photographed(page, degrees=1.0)), "image/png")
    fields = read_fields(text.text, "passport")
    assert fields.other.get("mrz") == "valid", text.text
    assert (fields.name, fields.date_of_birth, fields.expires_on) == ("RAHUL KUMAR SHARMA", DOB, date(2024, 5, 1))
    assert _results(text, "passport") == {"name_match": "pass", "dob_match": "pass", "document_expiry": "fail"}


def test_a_text_pdf_is_read_without_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ocr(*args: object, **kwargs: object) -> str:
        raise AssertionError("a PDF with a text layer needs no OCR")

    monkeypatch.setattr(pytesseract, "image_to_string", no_ocr)
    lines = [
        "INCOME TAX DEPARTMENT  GOVT. OF INDIA",
        "Permanent Account Number Card",
        PAN,
        "Name",
        "RAHUL KUMAR SHARMA",
        "Father's Name (as recorded)",
        "SURESH CHANDRA SHARMA",
        "Date of Birth",
        "12/03/1985",
    ]
    text = extract_text(text_pdf(lines), "application/pdf")
    assert text.method == "pdf_text" and text.pages == 1
    assert "Father's Name (as recorded)" in text.text
    assert _results(text, "pan_card") == {"pan_document": "pass", "name_match": "pass", "dob_match": "pass"}


def test_an_image_only_pdf_is_read_by_ocr() -> None:
    text = extract_text(image_pdf(photographed(CARD, degrees=-1.0), blank()), "application/pdf")
    assert text.method == "pdf_ocr" and text.pages == 2
    fields = read_fields(text.text, "pan_card")
    assert (fields.pan, fields.name, fields.date_of_birth) == (PAN, "RAHUL KUMAR SHARMA", DOB)


def test_an_image_without_text_gives_empty_fields_and_inconclusive_checks() -> None:
    text = extract_text(encoded(blank()), "image/png")
    fields = read_fields(text.text, "pan_card")
    assert fields.empty
    assert set(_results(text, "pan_card").values()) == {"inconclusive"}


@pytest.mark.parametrize(
    ("data", "media_type", "reason"),
    [
        (b"%PDF-1.4\nthis is no PDF at all\n%%EOF", "application/pdf", "unreadable"),
        (b"\x00\x01garbage" * 50, "application/pdf", "unreadable"),
        (encoded(blank()), "application/pdf", "unreadable"),
        (b"GIF89a not really", "image/png", "unreadable"),
        (b"<html></html>", "text/html", "unsupported_type"),
    ],
)
def test_unreadable_documents_are_a_clear_error(data: bytes, media_type: str, reason: str) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_text(data, media_type)
    assert caught.value.reason == reason and isinstance(caught.value, InvalidInputError)
    assert str(caught.value)


def test_too_many_pages_and_an_encrypted_pdf_are_refused() -> None:
    with pytest.raises(ExtractionError, match="3 pages") as caught:
        extract_text(image_pdf(blank(), blank(), blank()), "application/pdf", max_pages=2)
    assert caught.value.reason == "too_many_pages"
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ExtractionError) as caught:
        extract_text(out.getvalue(), "application/pdf")
    assert caught.value.reason == "encrypted"


def test_missing_tesseract_says_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(ExtractionError, match="tesseract-ocr") as caught:
        extract_text(encoded(CARD), "image/png")
    assert caught.value.reason == "tesseract_missing"


def test_the_budget_ends_ocr_and_leaves_no_temporary_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pages = image_pdf(*(photographed(CARD, seed=s) for s in range(4)))
    with pytest.raises(ExtractionError, match="budget") as caught:
        extract_text(pages, "application/pdf", timeout=0.3)
    assert caught.value.reason == "timeout"
    assert extract_text(encoded(CARD), "image/png").text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"timeout": -1.0}, {"timeout": True}, {"max_pages": 0}, {"max_pages": 2.5}]
)
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        extract_text(encoded(blank()), "image/png", **kwargs)
    with pytest.raises(InvalidInputError):
        extract_text("text", "image/png")  # type: ignore[arg-type]
