"""Test helpers that draw KYC documents: a PAN card, an Aadhaar-like card, a passport data page, PDFs.

Pillow with the DejaVu fonts draws each document at a realistic size (a card at about 300 dpi); a text
PDF is written by hand (one page, a Helvetica text content stream) and an image-only PDF is Pillow's
own ``Image.save(..., "PDF")``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from c360.resolution.document_fields import mrz_check_digit
from PIL import Image, ImageDraw, ImageFont
from stdnum import verhoeff

FONTS = Path("/usr/share/fonts/truetype/dejavu")
#: An ID-1 card (85.6 x 54 mm) at 300 dpi.
CARD = (1011, 638)


def font(size: int, *, bold: bool = False, mono: bool = False) -> ImageFont.FreeTypeFont:
    """A DejaVu font of ``size`` pixels."""
    name = "DejaVuSansMono" if mono else "DejaVuSans"
    return ImageFont.truetype(str(FONTS / f"{name}{'-Bold' if bold else ''}.ttf"), size)


def _card(lines: Sequence[tuple[str, int, bool]], size: tuple[int, int] = CARD, top: int = 30) -> Image.Image:
    """A light card with ``lines`` (text, font size, bold) drawn top to bottom at the left margin."""
    image = Image.new("RGB", size, (236, 240, 246))
    draw = ImageDraw.Draw(image)
    y = top
    for text, px, bold in lines:
        if text:
            draw.text((40, y), text, fill=(20, 20, 30), font=font(px, bold=bold))
        y += int(px * 1.55)
    return image


def pan_card(*, name: str, father: str, dob: date, pan: str) -> Image.Image:
    """A PAN card (the current layout's English labels) at 300 dpi."""
    return _card(
        [
            ("INCOME TAX DEPARTMENT          GOVT. OF INDIA", 30, True),
            ("Permanent Account Number Card", 28, False),
            (pan, 38, True),
            ("Name", 24, False),
            (name, 32, True),
            ("Father's Name", 24, False),
            (father, 32, True),
            ("Date of Birth", 24, False),
            (dob.strftime("%d/%m/%Y"), 32, True),
        ]
    )


def aadhaar_number(prefix: str = "49182736451") -> str:
    """A 12-digit number with a valid Verhoeff check digit (``prefix`` must not start with 0 or 1)."""
    return prefix + verhoeff.calc_check_digit(prefix)


def aadhaar_card(*, name: str, dob: date | None, number: str, year_only: bool = False) -> Image.Image:
    """An Aadhaar-like card: header, name, DOB (or Year of Birth), gender and the number in groups of four."""
    born = f"Year of Birth : {dob.year}" if year_only and dob else f"DOB : {dob:%d/%m/%Y}" if dob else ""
    grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return _card(
        [
            ("Government of India", 32, True),
            ("", 20, False),
            (name, 32, False),
            (born, 30, False),
            ("MALE", 30, False),
            ("", 20, False),
            (grouped, 44, True),
        ]
    )


def mrz(*, surname: str, given: str, number: str, nationality: str, dob: date, sex: str, expiry: date) -> list[str]:
    """The two 44-character lines of a passport's (TD3) machine-readable zone, check digits included."""
    names = f"{surname.replace(' ', '<')}<<{given.replace(' ', '<')}"
    one = f"P<{nationality}{names}".ljust(44, "<")[:44]
    num = number.ljust(9, "<")
    born, expires = dob.strftime("%y%m%d"), expiry.strftime("%y%m%d")
    personal = "<" * 14
    two = (
        f"{num}{mrz_check_digit(num)}{nationality}{born}{mrz_check_digit(born)}{sex}"
        f"{expires}{mrz_check_digit(expires)}{personal}{mrz_check_digit(personal)}"
    )
    composite = two[0:10] + two[13:20] + two[21:43]
    return [one, two + mrz_check_digit(composite)]


def passport_page(
    *, surname: str, given: str, number: str, dob: date, expiry: date, sex: str = "M", nationality: str = "IND"
) -> Image.Image:
    """A passport's data page (125 x 88 mm at 300 dpi): the visual zone and the MRZ in a monospaced font."""
    image = _card(
        [
            ("REPUBLIC OF INDIA            PASSPORT", 34, True),
            (f"Type P   Country Code {nationality}   Passport No. {number}", 26, False),
            ("Surname", 22, False),
            (surname, 30, True),
            ("Given Name(s)", 22, False),
            (given, 30, True),
            (f"Sex {sex}     Date of Birth {dob:%d/%m/%Y}", 26, False),
            (f"Date of Expiry {expiry:%d/%m/%Y}", 26, False),
        ],
        size=(1476, 1039),
    )
    draw = ImageDraw.Draw(image)
    mono = font(30, mono=True)
    for i, line in enumerate(mrz(surname=surname, given=given, number=number, nationality=nationality,
                                 dob=dob, sex=sex, expiry=expiry)):  # fmt: skip
        draw.text((40, 860 + i * 60), line, fill=(10, 10, 10), font=mono)
    return image


def blank(size: tuple[int, int] = CARD) -> Image.Image:
    """A card with no text: a plain background and a few shapes."""
    image = Image.new("RGB", size, (230, 235, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((60, 60, 300, 360), outline=(120, 130, 150), width=6)
    draw.ellipse((500, 200, 700, 400), fill=(200, 205, 215))
    return image


def photographed(image: Image.Image, *, degrees: float = 1.5, noise: int = 18, seed: int = 7) -> Image.Image:
    """``image`` as a phone photo of it: rotated a little, with some pixel noise."""
    rotated = image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(250, 250, 250))
    rng = random.Random(seed)
    pixels = rotated.load()
    assert pixels is not None
    width, height = rotated.size
    for _ in range(width * height // 25):
        x, y = rng.randrange(width), rng.randrange(height)
        r, g, b = pixels[x, y]  # type: ignore[misc]
        d = rng.randint(-noise, noise)
        pixels[x, y] = (max(0, min(255, r + d)), max(0, min(255, g + d)), max(0, min(255, b + d)))
    return rotated


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    """``image`` as PNG or JPEG bytes."""
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return out.getvalue()


def image_pdf(*images: Image.Image, dpi: float = 300.0) -> bytes:
    """An image-only PDF (a scan): one page per image, no text layer (Pillow's PDF writer)."""
    out = io.BytesIO()
    first, *rest = [i.convert("RGB") for i in images]
    first.save(out, "PDF", resolution=dpi, save_all=True, append_images=rest)
    return out.getvalue()


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def text_pdf(lines: Sequence[str]) -> bytes:
    """A minimal valid one-page PDF whose content stream writes ``lines`` in Helvetica (a text layer)."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 760 Td"]
    for line in lines:
        ops += [f"{_pdf_string(line)} Tj", "T*"]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
