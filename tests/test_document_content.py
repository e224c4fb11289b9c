"""KYC uploads judged by their bytes (connectors/documents/content.py) and scanned (scan.py)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from c360.connectors.documents.content import (
    MAX_DOCUMENT_BYTES,
    DocumentRejected,
    check_content,
    sha256,
)
from c360.connectors.documents.scan import EICAR, BuiltinScanner, CommandScanner, ScanError, require_clean
from c360.graph.errors import InvalidInputError
from PIL import Image, ImageDraw
from pypdf import PdfWriter
from pypdf.actions import JavaScript


def image(fmt: str, size: tuple[int, int] = (120, 80)) -> bytes:
    """A real image drawn with Pillow: a card with a line of text."""
    img = Image.new("RGB", size, (240, 240, 230))
    ImageDraw.Draw(img).text((8, 30), "PAN ABCDE1234F", fill=(10, 10, 10))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def pdf(js: str | None = None) -> bytes:
    """A real one-page PDF written by pypdf (with a document-level script when ``js``)."""
    writer = PdfWriter()
    writer.add_blank_page(width=300, height=200)
    if js is not None:
        writer.add_open_action(JavaScript(js))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG of only a signature, an IHDR claiming ``width`` x ``height`` and a tiny IDAT (a bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def reason(data: bytes, *, filename: str | None = None, declared: str | None = None) -> str:
    with pytest.raises(DocumentRejected) as caught:
        check_content(data, filename=filename, declared=declared)
    assert isinstance(caught.value, InvalidInputError)
    return caught.value.reason


# -- content ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "declared", "expected"),
    [
        (image("PNG"), "pan.png", "image/png", "image/png"),
        (image("JPEG"), "aadhaar.JPG", "image/jpeg; charset=binary", "image/jpeg"),
        (image("JPEG"), "photo.jpeg", "image/jpg", "image/jpeg"),
        (pdf(), "statement.pdf", "application/pdf", "application/pdf"),
        (pdf(), None, "application/octet-stream", "application/pdf"),
        (image("PNG"), "no-extension", None, "image/png"),
    ],
)
def test_real_documents_are_accepted_as_what_their_bytes_are(
    data: bytes, filename: str | None, declared: str | None, expected: str
) -> None:
    assert check_content(data, filename=filename, declared=declared) == expected


def test_a_renamed_pdf_is_a_type_mismatch_by_name_and_by_declared_type() -> None:
    document = pdf()
    assert reason(document, filename="pan-card.png") == "type_mismatch"
    assert reason(document, declared="image/png") == "type_mismatch"
    assert reason(image("PNG"), filename="scan.jpg") == "type_mismatch"
    assert reason(document, filename="invoice.exe") == "type_mismatch"


def test_what_is_not_pdf_jpeg_or_png_is_unsupported() -> None:
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    assert reason(gif.getvalue()) == "unsupported_type"
    assert reason(b"just some text, not a document") == "unsupported_type"
    assert reason(b"%PDF-1.7 no end marker") == "unsupported_type"


def test_a_truncated_png_or_jpeg_does_not_decode() -> None:
    png = image("PNG", (300, 200))
    assert reason(png[: len(png) // 2]) == "unsupported_type"
    jpeg = image("JPEG")
    assert reason(jpeg[: len(jpeg) // 2]) == "unsupported_type"


def test_a_pdf_that_does_not_parse_is_refused() -> None:
    assert reason(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage\n%%EOF\n") == "unsupported_type"


def test_empty_and_oversized_files() -> None:
    assert reason(b"") == "empty"
    big = pdf()
    eleven_mb = big[:-6] + b"\n%" + b"x" * (11 * 1024 * 1024) + b"\n%%EOF\n"
    assert len(eleven_mb) > MAX_DOCUMENT_BYTES
    assert reason(eleven_mb) == "too_large"


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 9_000)])
def test_a_decompression_bomb_header_is_refused_as_too_large(size: tuple[int, int]) -> None:
    # 10^10 pixels is past Pillow's error bound; 9*10^7 only past its warning bound: both refused
    assert reason(png_header(*size)) == "too_large"


def test_a_small_image_that_is_not_a_bomb_passes_the_pixel_bound() -> None:
    assert check_content(image("PNG", (2000, 1500)), filename=None, declared=None) == "image/png"


def test_sha256_is_the_hex_digest() -> None:
    assert sha256(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_bad_arguments_are_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        check_content("text", filename=None, declared=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        check_content(pdf(), filename="x" * 300, declared=None)


# -- the builtin scanner ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(image("PNG"), "image/png"), (image("JPEG"), "image/jpeg"), (pdf(), "application/pdf")],
)
def test_clean_documents_pass_the_builtin_scanner(data: bytes, media_type: str) -> None:
    result = BuiltinScanner().scan(data, media_type=media_type)
    assert (result.clean, result.reason, result.scanner) == (True, None, "builtin")


def test_eicar_anywhere_is_flagged() -> None:
    document = pdf()
    marked = document[:9] + b"%" + EICAR + b"\n" + document[9:]
    result = BuiltinScanner().scan(marked, media_type="application/pdf")
    assert not result.clean
    assert "EICAR" in (result.reason or "")
    with pytest.raises(DocumentRejected) as caught:
        require_clean(BuiltinScanner(), marked, media_type="application/pdf")
    assert caught.value.reason == "flagged"


def test_a_pdf_with_javascript_is_flagged() -> None:
    document = pdf(js="app.alert('hello');")
    assert check_content(document, filename="x.pdf", declared=None) == "application/pdf"  # a valid PDF
    result = BuiltinScanner().scan(document, media_type="application/pdf")
    assert not result.clean
    assert "/J" in (result.reason or "")


def _with_object(document: bytes, body: bytes) -> bytes:
    end = document.rindex(b"%%EOF")
    return document[:end] + body + b"\n" + document[end:]


def test_hidden_pdf_actions_are_flagged_escaped_or_compressed() -> None:
    scanner = BuiltinScanner()
    escaped = _with_object(pdf(), b"9 0 obj << /S /J#61vaScript /JS (x) >> endobj")
    assert not scanner.scan(escaped, media_type="application/pdf").clean
    packed = zlib.compress(b"<< /Type /Action /S /Launch /F (cmd.exe) >>")
    compressed = _with_object(
        pdf(), b"9 0 obj << /Length %d /Filter /FlateDecode >> stream\n" % len(packed) + packed + b"\nendstream endobj"
    )
    result = scanner.scan(compressed, media_type="application/pdf")
    assert (result.clean, result.reason) == (False, "the PDF contains /Launch")
    attached = _with_object(pdf(), b"9 0 obj << /Type /EmbeddedFile /Length 0 >> stream\n\nendstream endobj")
    assert not scanner.scan(attached, media_type="application/pdf").clean


@pytest.mark.parametrize(
    ("document", "media_type"),
    [(image("PNG"), "image/png"), (image("JPEG"), "image/jpeg"), (pdf(), "application/pdf")],
)
def test_a_file_appended_after_the_end_marker_is_flagged(document: bytes, media_type: str) -> None:
    zip_tail = b"PK\x03\x04\x14\x00\x00\x00payload.exe"
    result = BuiltinScanner().scan(document + zip_tail, media_type=media_type)
    assert not result.clean
    assert "appended" in (result.reason or "")
    # padding after the end marker is no second file
    assert BuiltinScanner().scan(document + b"\x00\x00\n", media_type=media_type).clean


# -- a program as the scanner ----------------------------------------------------------------------


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """A stand-in for clamdscan: reads stdin; BAD is flagged, CRASH exits 2, SLOW never answers."""
    path = tmp_path / "fake-clamdscan"
    path.write_text(
        "#!/bin/sh\n"
        "data=$(cat)\n"
        'case "$data" in\n'
        '  *BAD*) echo "stdin: Fake.Bad FOUND ($C360_DOCUMENT_MEDIA_TYPE)"; exit 1;;\n'
        '  *CRASH*) echo "cannot connect to clamd" >&2; exit 2;;\n'
        "  *SLOW*) exec sleep 30;;\n"
        "esac\n"
        "exit 0\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def test_the_command_scanner_follows_the_exit_status(script: Path) -> None:
    scanner = CommandScanner([str(script), "--no-summary", "-"], timeout=10)
    assert scanner.scan(b"a clean file", media_type="image/png").clean
    flagged = scanner.scan(b"a BAD file", media_type="image/png")
    assert (flagged.clean, flagged.reason, flagged.scanner) == (
        False,
        "stdin: Fake.Bad FOUND (image/png)",
        "fake-clamdscan",
    )
    with pytest.raises(DocumentRejected, match=r"Fake\.Bad") as caught:
        require_clean(scanner, b"BAD", media_type="application/pdf")
    assert caught.value.reason == "flagged"


def test_the_command_scanner_fails_closed(script: Path, tmp_path: Path) -> None:
    with pytest.raises(ScanError, match=r"exit 2.*cannot connect to clamd"):
        CommandScanner([str(script)], timeout=10).scan(b"CRASH", media_type="image/png")
    with pytest.raises(ScanError, match="no verdict within"):
        CommandScanner([str(script)], timeout=0.5).scan(b"SLOW", media_type="image/png")
    with pytest.raises(ScanError, match="could not run"):
        CommandScanner([str(tmp_path / "missing")], timeout=5).scan(b"x", media_type="image/png")


def test_a_command_scanner_needs_a_command_and_a_sane_timeout() -> None:
    with pytest.raises(InvalidInputError):
        CommandScanner([], timeout=5)
    with pytest.raises(InvalidInputError):
        CommandScanner("clamdscan -", timeout=5)
    with pytest.raises(InvalidInputError):
        CommandScanner(["clamdscan"], timeout=0)
