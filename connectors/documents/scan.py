"""The scanning hook of KYC uploads: a :class:`Scanner` looks at a document's bytes before it is stored.

* :class:`BuiltinScanner` flags, without any program: the EICAR test string anywhere; PDFs that carry
  actions or attachments (``/JavaScript``, ``/JS``, ``/Launch``, ``/EmbeddedFile``; names written with
  ``#xx`` escapes and those inside Flate-compressed streams count too); and polyglots, files with a
  second file's signature appended after their own end marker (PDF ``%%EOF``, JPEG EOI, PNG ``IEND``).
* :class:`CommandScanner` runs a configured program with the document on its stdin (``clamdscan
  --no-summary -`` style): exit 0 is clean, 1 is flagged (its output is the reason), anything else, a
  timeout or a program that cannot start is a :class:`ScanError`, so the upload is refused (fail closed).

:func:`require_clean` runs a scanner and turns a flagged result into
:class:`~c360.connectors.documents.content.DocumentRejected` (``flagged``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from c360.graph.errors import C360Error, InvalidInputError

from .content import JPEG, PDF, PNG, DocumentRejected

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

_PDF_RISKS = re.compile(rb"/(JavaScript|JS|Launch|EmbeddedFiles?)(?![A-Za-z0-9#])")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_STREAM = re.compile(rb"stream\r?\n")
_INFLATE_BUDGET = 32 * 1024 * 1024  # decompressed bytes looked at per PDF, at most
_MAX_STREAMS = 5000
_MAX_REASON = 500
#: signatures of files that must not follow a document's end marker
_SIGNATURES: tuple[bytes, ...] = (
    b"PK\x03\x04",
    b"%PDF-",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF8",
    b"\x7fELF",
    b"MZ",
    b"Rar!",
    b"7z\xbc\xaf",
    b"<script",
    b"<html",
    b"<svg",
    b"#!",
)


class ScanError(C360Error):
    """The scanner could not give a verdict (it failed, timed out or is missing): refuse the upload."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A scanner's verdict: ``clean``, and if not, why (``reason``); ``scanner`` names who judged."""

    clean: bool
    reason: str | None
    scanner: str


class Scanner(Protocol):
    """Looks at a document's bytes (already checked by ``check_content``) before it is stored."""

    def scan(self, data: bytes, *, media_type: str) -> ScanResult:
        """The verdict on ``data`` of ``media_type``; :class:`ScanError` when there is none."""
        ...


def require_clean(scanner: Scanner, data: bytes, *, media_type: str) -> ScanResult:
    """Scan ``data``; :class:`DocumentRejected` (``flagged``) unless clean, :class:`ScanError` passes through."""
    result = scanner.scan(data, media_type=media_type)
    if not result.clean:
        raise DocumentRejected("flagged", f"the document was flagged by {result.scanner}: {result.reason}")
    return result


# -- the builtin rules -----------------------------------------------------------------------------


class BuiltinScanner:
    """Rules that need no program: EICAR, risky PDF features, data appended after the end marker."""

    name = "builtin"

    def scan(self, data: bytes, *, media_type: str) -> ScanResult:
        """Flag the EICAR test string, PDF actions and attachments, and polyglots."""
        if EICAR in data:
            return self._flag("the EICAR test signature")
        if media_type == PDF:
            risk = _pdf_risk(data)
            if risk is not None:
                return self._flag(f"the PDF contains /{risk}")
        trailing = _after_end(data, media_type)
        if trailing and _has_signature(trailing):
            return self._flag(f"another file is appended after the {media_type} end marker")
        return ScanResult(True, None, self.name)

    def _flag(self, reason: str) -> ScanResult:
        return ScanResult(False, reason, self.name)


def _pdf_risk(data: bytes) -> str | None:
    """The first risky name in the PDF's objects, or in its Flate-compressed streams."""
    for chunk in _pdf_texts(data):
        match = _PDF_RISKS.search(_NAME_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), chunk))
        if match is not None:
            return match[1].decode()
    return None


def _pdf_texts(data: bytes) -> list[bytes]:
    """The PDF itself, then every stream that inflates (object streams hide dictionaries), within a budget."""
    texts = [data]
    budget = _INFLATE_BUDGET
    for count, match in enumerate(_STREAM.finditer(data)):
        if count >= _MAX_STREAMS or budget <= 0:
            break
        inflater = zlib.decompressobj()
        try:
            plain = inflater.decompress(data[match.end() : match.end() + 16 * 1024 * 1024], budget)
        except zlib.error:
            continue
        budget -= len(plain)
        texts.append(plain)
    return texts


def _after_end(data: bytes, media_type: str) -> bytes:
    """What follows the document's own end marker (padding of NULs and white space dropped)."""
    end: int | None = None
    if media_type == PDF:
        found = data.rfind(b"%%EOF")
        end = found + 5 if found >= 0 else None
    elif media_type == PNG:
        end = _png_end(data)
    elif media_type == JPEG:
        end = _jpeg_end(data)
    return data[end:].strip(b"\x00\r\n\t ") if end is not None else b""


def _has_signature(trailing: bytes) -> bool:
    if trailing.startswith(_SIGNATURES):
        return True
    return any(sig in trailing for sig in _SIGNATURES if len(sig) >= 4)


def _png_end(data: bytes) -> int | None:
    """The offset just past the IEND chunk, walking the chunks; None if there is none."""
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return pos
    return None


def _jpeg_end(data: bytes) -> int | None:
    """The offset just past the EOI marker that ends the image (thumbnails inside segments skipped)."""
    pos = 2
    size = len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:
            return pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            while pos + 1 < size:
                nxt = data.find(b"\xff", pos)
                if nxt < 0 or nxt + 1 >= size:
                    return None
                following = data[nxt + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    pos = nxt + (2 if following != 0xFF else 1)
                    continue
                pos = nxt
                break
    return None


# -- a program ------------------------------------------------------------------------------------


class CommandScanner:
    """A program that reads the document on stdin: exit 0 clean, 1 flagged (its output says why).

    Any other exit, a timeout (the program is killed) or a program that cannot start is a
    :class:`ScanError`. The program gets the media type in ``C360_DOCUMENT_MEDIA_TYPE``.
    """

    def __init__(self, argv: Sequence[str], timeout: float = 60.0) -> None:
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise InvalidInputError("a scanning command is a non-empty list of non-empty strings")
        if not isinstance(timeout, int | float) or not 0 < timeout <= 600:
            raise InvalidInputError(f"a scanning timeout is from 0 to 600 seconds, not {timeout!r}")
        self.argv: tuple[str, ...] = tuple(argv)
        self.timeout = float(timeout)
        self.name = os.path.basename(self.argv[0])

    def __repr__(self) -> str:
        return f"CommandScanner({list(self.argv)!r}, timeout={self.timeout})"

    def scan(self, data: bytes, *, media_type: str) -> ScanResult:
        """Run the program on ``data``; its verdict, or :class:`ScanError` (fail closed)."""
        env = {**os.environ, "C360_DOCUMENT_MEDIA_TYPE": media_type}
        try:
            # its own session: a timeout kills the program and whatever it started
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise ScanError(f"the scanner {self.name} could not run: {exc.strerror or exc}") from None
        try:
            stdout, stderr = proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ScanError(f"the scanner {self.name} gave no verdict within {self.timeout:g} s") from None
        output = _text(stdout) or _text(stderr)
        if proc.returncode == 0:
            return ScanResult(True, None, self.name)
        if proc.returncode == 1:
            return ScanResult(False, output or "flagged (no reason given)", self.name)
        raise ScanError(f"the scanner {self.name} failed (exit {proc.returncode}): {output or 'no output'}")


def _text(raw: bytes) -> str:
    text = " ".join(raw.decode("utf-8", "replace").split())
    return text[:_MAX_REASON]
