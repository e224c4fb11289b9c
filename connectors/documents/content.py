"""What an uploaded KYC document is, judged by its bytes: PDF, JPEG or PNG, at most 10 MB, and readable.

:func:`check_content` returns the media type the bytes show (``application/pdf``, ``image/jpeg``,
``image/png``) or raises :class:`DocumentRejected` with a machine-readable ``reason``:

* ``empty``: no bytes; ``too_large``: over :data:`MAX_DOCUMENT_BYTES`, or an image of more pixels than
  Pillow's ``MAX_IMAGE_PIXELS`` (a decompression bomb);
* ``unsupported_type``: not one of the three formats, or one of them that does not decode (a truncated
  PNG, a PDF whose structure does not parse, a password-protected PDF);
* ``type_mismatch``: the file name's extension or the declared media type names another type than the
  bytes (a ``.png`` that is a PDF);
* ``flagged``: a scanner flagged it (:func:`c360.connectors.documents.scan.require_clean`).

The messages never quote the document's content.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from typing import Literal

from c360.graph.errors import InvalidInputError
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PyPdfError

#: The largest document accepted, in bytes.
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
#: The most pages a PDF document may have.
MAX_PDF_PAGES = 200

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
#: The media types accepted.
MEDIA_TYPES: tuple[str, ...] = (PDF, JPEG, PNG)

Reason = Literal["too_large", "empty", "unsupported_type", "type_mismatch", "flagged"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EOF_WINDOW = 1024  # %%EOF must be within the last KiB of a PDF
_EXTENSIONS = {".pdf": PDF, ".jpg": JPEG, ".jpeg": JPEG, ".jpe": JPEG, ".png": PNG}
_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "application/x-pdf": PDF, "image/x-png": PNG}
#: what a browser declares when it does not know: no claim about the type
_UNDECLARED = ("application/octet-stream", "binary/octet-stream")


class DocumentRejected(InvalidInputError):
    """An uploaded document is refused; ``reason`` says why in one machine-readable word."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def sha256(data: bytes) -> str:
    """The SHA-256 of ``data``, 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def sniff(data: bytes) -> str | None:
    """The media type the bytes' signature shows (PDF, JPEG or PNG), or None; nothing is decoded."""
    if data.startswith(b"%PDF-") and b"%%EOF" in data[-_EOF_WINDOW:]:
        return PDF
    if data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return JPEG
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return PNG
    return None


def media_type_of_name(filename: str) -> str | None:
    """The media type a file name's extension stands for; None without an extension.

    An extension that is none of the accepted ones is :class:`DocumentRejected` (``type_mismatch``).
    """
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    if "." not in name.strip("."):
        return None
    ext = "." + name.rsplit(".", 1)[-1].lower()
    found = _EXTENSIONS.get(ext)
    if found is None:
        raise DocumentRejected("type_mismatch", f"a document named *{ext[:16]} is not a PDF, JPEG or PNG file")
    return found


def _declared_type(declared: str) -> str | None:
    kind = declared.split(";", 1)[0].strip().lower()
    if not kind or kind in _UNDECLARED:
        return None
    return _ALIASES.get(kind, kind)


def check_content(data: bytes, *, filename: str | None, declared: str | None) -> str:
    """The media type of ``data`` judged by its bytes; :class:`DocumentRejected` unless it is acceptable.

    ``filename`` (its extension) and ``declared`` (the upload's Content-Type) must not contradict the
    bytes; either may be None. An image must decode within Pillow's pixel bound, a PDF must parse.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInputError("a document's content is bytes")
    data = bytes(data)
    if not data:
        raise DocumentRejected("empty", "the document is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentRejected(
            "too_large", f"the document is {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} are accepted"
        )
    found = sniff(data)
    if found is None:
        raise DocumentRejected("unsupported_type", "the document is not a PDF, JPEG or PNG file")
    if filename is not None:
        if not isinstance(filename, str) or len(filename) > 255:
            raise InvalidInputError("a document's file name is a string of at most 255 characters")
        by_name = media_type_of_name(filename)
        if by_name is not None and by_name != found:
            raise DocumentRejected("type_mismatch", f"the file is named as {by_name} but its content is {found}")
    if declared is not None:
        if not isinstance(declared, str) or len(declared) > 200:
            raise InvalidInputError("a declared media type is a string of at most 200 characters")
        claimed = _declared_type(declared)
        if claimed is not None and claimed != found:
            raise DocumentRejected(
                "type_mismatch", f"the upload was declared {claimed[:60]} but its content is {found}"
            )
    if found == PDF:
        _check_pdf(data)
    else:
        _check_image(data, found)
    return found


def _check_image(data: bytes, media_type: str) -> None:
    fmt = "JPEG" if media_type == JPEG else "PNG"
    bound = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns past MAX_IMAGE_PIXELS and raises only past twice that: refuse at the warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                width, height = image.size
                if bound is not None and width * height > bound:
                    raise DocumentRejected(
                        "too_large", f"the image is {width}x{height} pixels; at most {bound} pixels are accepted"
                    )
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DocumentRejected("too_large", f"the image has more than {bound} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DocumentRejected("unsupported_type", f"the {fmt} image does not decode: {type(exc).__name__}") from None


def _check_pdf(data: bytes) -> None:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentRejected("unsupported_type", "the PDF is password-protected")
        pages = len(reader.pages)
    except DocumentRejected:
        raise
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DocumentRejected("unsupported_type", f"the PDF does not parse: {type(exc).__name__}") from None
    if pages == 0:
        raise DocumentRejected("unsupported_type", "the PDF has no pages")
    if pages > MAX_PDF_PAGES:
        raise DocumentRejected("too_large", f"the PDF has {pages} pages; at most {MAX_PDF_PAGES} are accepted")
