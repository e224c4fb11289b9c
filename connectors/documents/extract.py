"""The text of a KYC document (issue 16): a PDF's text layer, or OCR of an image or a scanned PDF's pages.

:func:`extract_text` reads a PDF with a text layer directly (pypdf); a PDF whose pages have (almost) no
text has its embedded page images read by OCR, as are JPEG and PNG images: grayscale, small images
upscaled (Tesseract reads text at about 300 dpi best), autocontrast, then Tesseract (Debian's
``tesseract-ocr`` with the English data) through pytesseract. One time budget covers the whole document;
running over it, an unreadable file or a missing Tesseract is an :class:`ExtractionError`. pytesseract
removes its own temporary files, on a timeout too; nothing else is written to disk.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Final, Literal

import pytesseract
from c360.graph.errors import InvalidInputError
from PIL import Image, ImageOps, UnidentifiedImageError
from pypdf import PageObject, PdfReader
from pypdf.errors import PyPdfError

#: The media types :func:`extract_text` reads.
MEDIA_TYPES: tuple[str, ...] = ("application/pdf", "image/jpeg", "image/png")
#: A page with fewer letters and digits than this in its text layer is read as a scan.
MIN_PAGE_TEXT: Final = 16
#: The most pixels an image may have (a phone photo has about 12 million).
MAX_PIXELS: Final = 40_000_000
#: Images in a PDF with a side shorter than this (pixels) are not read.
MIN_IMAGE_SIDE: Final = 24
#: Images whose longer side is shorter than this are upscaled to it (about an A6 card at 300 dpi) ...
OCR_MIN_SIDE: Final = 2000
#: ... by at most this factor; longer sides than :data:`OCR_MAX_SIDE` are scaled down (time, not accuracy).
OCR_MAX_SCALE: Final = 4.0
OCR_MAX_SIDE: Final = 4000
#: Tesseract's options: the English data, automatic page segmentation.
TESSERACT_CONFIG: Final = "--oem 1 --psm 3"

Method = Literal["pdf_text", "ocr", "pdf_ocr"]

_LOG = logging.getLogger(__name__)


class ExtractionError(InvalidInputError):
    """A document's text cannot be read; ``reason`` is a short code, the message says why in words.

    Reasons: ``unsupported_type``, ``unreadable``, ``encrypted``, ``too_many_pages``, ``too_large``,
    ``timeout``, ``tesseract_missing``, ``ocr_failed``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ExtractedText:
    """A document's text, how it was read, the number of pages read, and how long reading took (seconds)."""

    text: str
    method: Method
    pages: int
    seconds: float


class _Budget:
    """The time left of one document's budget."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.started = time.monotonic()

    def left(self) -> float:
        left = self.timeout - (time.monotonic() - self.started)
        if left <= 0:
            raise ExtractionError("timeout", f"reading the document took longer than its budget of {self.timeout:g} s")
        return left

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _checked(image: Image.Image) -> Image.Image:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ExtractionError("too_large", f"an image of {width}x{height} pixels is over the limit of {MAX_PIXELS}")
    return image


def prepare(image: Image.Image) -> Image.Image:
    """``image`` as OCR reads it best: upright (EXIF), grayscale, scaled to a readable size, autocontrast."""
    gray = ImageOps.exif_transpose(_checked(image)).convert("L")
    longer = max(gray.size)
    scale = min(OCR_MIN_SIDE / longer, OCR_MAX_SCALE) if longer < OCR_MIN_SIDE else min(1.0, OCR_MAX_SIDE / longer)
    if scale != 1.0:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.LANCZOS)
    return ImageOps.autocontrast(gray, cutoff=1)


def _ocr(image: Image.Image, budget: _Budget) -> str:
    prepared = prepare(image)
    left = budget.left()
    try:
        text: str = pytesseract.image_to_string(prepared, lang="eng", config=TESSERACT_CONFIG, timeout=left)
    except pytesseract.TesseractNotFoundError:
        raise ExtractionError(
            "tesseract_missing",
            "Tesseract OCR is not installed: install Debian's tesseract-ocr (apt-get install tesseract-ocr)",
        ) from None
    except RuntimeError as exc:  # pytesseract's timeout (it has killed the process)
        if "timeout" in str(exc).lower():
            raise ExtractionError(
                "timeout", f"OCR took longer than the document's budget of {budget.timeout:g} s"
            ) from None
        raise ExtractionError("ocr_failed", f"Tesseract failed: {exc}") from None
    except pytesseract.TesseractError as exc:
        raise ExtractionError("ocr_failed", f"Tesseract failed: {exc.message}") from None
    return text


def _open_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        _checked(image)
        image.load()
    except ExtractionError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractionError("unreadable", f"the image cannot be read: {exc}") from None
    return image


def _reader(data: bytes, max_pages: int) -> PdfReader:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise ExtractionError("encrypted", "the PDF is encrypted with a password")
            count = len(reader.pages)
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ExtractionError("unreadable", f"not a readable PDF: {exc}") from None
    if count == 0:
        raise ExtractionError("unreadable", "the PDF has no pages")
    if count > max_pages:
        raise ExtractionError("too_many_pages", f"the PDF has {count} pages; at most {max_pages} are read")
    return reader


def _page_images(page: PageObject, number: int) -> list[Image.Image]:
    """The images of a page big enough to hold text (icons and masks of a few pixels are left out)."""
    try:
        images = [item.image for item in page.images]
    except Exception as exc:  # pypdf raises many kinds on a damaged image stream
        raise ExtractionError("unreadable", f"page {number}: its images cannot be read: {exc}") from None
    return [image for image in images if image is not None and min(image.size) >= MIN_IMAGE_SIDE]


def _read_pdf(data: bytes, budget: _Budget, max_pages: int) -> tuple[str, Method, int]:
    reader = _reader(data, max_pages)
    texts, scanned = [], False
    for number, page in enumerate(reader.pages, start=1):
        budget.left()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = page.extract_text() or ""
        except Exception as exc:  # a damaged content stream: pypdf's errors are not all PyPdfError
            raise ExtractionError("unreadable", f"page {number}: its text cannot be read: {exc}") from None
        if sum(c.isalnum() for c in text) < MIN_PAGE_TEXT:
            scanned = True
            ocr = [_ocr(image, budget) for image in _page_images(page, number)]
            text = "\n".join([text, *ocr]) if text.strip() else "\n".join(ocr)
        texts.append(text)
    return "\n\f".join(texts), ("pdf_ocr" if scanned else "pdf_text"), len(texts)


def extract_text(data: bytes, media_type: str, *, timeout: float = 20.0, max_pages: int = 5) -> ExtractedText:
    """The text of a document of ``media_type`` (one of :data:`MEDIA_TYPES`) within ``timeout`` seconds in all.

    A PDF with a text layer is read directly (``pdf_text``); its pages with (almost) no text by OCR of
    their images (``pdf_ocr``); a JPEG or PNG by OCR (``ocr``). A PDF of more than ``max_pages`` pages is
    refused. An image with no text gives empty text, not an error. ExtractionError (an
    InvalidInputError) with its ``reason`` when the bytes cannot be read, the budget runs out or
    Tesseract is missing.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError(f"data must be bytes, not {type(data).__name__}")
    if media_type not in MEDIA_TYPES:
        raise ExtractionError(
            "unsupported_type",
            f"cannot read a document of type {media_type!r}: expected one of {', '.join(MEDIA_TYPES)}",
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise InvalidInputError(f"timeout must be a number of seconds from 0 to 600, not {timeout!r}")
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or not 0 < max_pages <= 100:
        raise InvalidInputError(f"max_pages must be a whole number from 1 to 100, not {max_pages!r}")
    budget = _Budget(float(timeout))
    raw = bytes(data)
    if media_type == "application/pdf":
        text, method, pages = _read_pdf(raw, budget, max_pages)
    else:
        text, method, pages = _ocr(_open_image(raw), budget), "ocr", 1
    seconds = budget.elapsed()
    _LOG.debug("read %d page(s) of %s by %s in %.2f s", pages, media_type, method, seconds)
    return ExtractedText(text=text.strip(), method=method, pages=pages, seconds=seconds)
