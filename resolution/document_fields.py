"""KYC document fields (issue 16): the PAN, name, date of birth and Aadhaar number read from a document's text.

Pure: :func:`read_fields` parses the text :func:`c360.connectors.documents.extract.extract_text` returns
(a PDF's text layer or OCR) by the document's layout, and is robust to OCR noise (extra spaces, lower-case
labels, a ``:`` or not, the usual letter/digit confusions in a PAN or an MRZ):

* ``pan_card``: the "Permanent Account Number" / "Name" / "Father's Name" / "Date of Birth" lines; the PAN
  by its pattern ``AAAAA9999A`` with positional repair (a ``0`` where a letter must be is an ``O``, an
  ``O`` where a digit must be is a ``0``, and so on).
* ``aadhaar``: the 12-digit number in groups of four (one with a valid Verhoeff check digit first), the
  name line above the date ("DOB" or "Year of Birth"). The raw number is returned ONLY for the caller to
  seal it in the vault: never log it, never put it in a record (mask it with
  :func:`c360.resolution.identity_checks.mask_aadhaar`).
* ``passport``: the machine-readable zone (two lines of 44 characters): names, date of birth, document
  number, nationality, sex and expiry, each with its check digit (7-3-1) validated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from types import MappingProxyType
from typing import Final

from c360.graph.errors import InvalidInputError
from stdnum.in_ import aadhaar as stdnum_aadhaar

from .identity_checks import pan_problem

#: The document layouts :func:`read_fields` knows.
DOC_TYPES: tuple[str, ...] = ("pan_card", "aadhaar", "passport")

#: Text longer than this is refused (a KYC document is a page or two).
MAX_TEXT: Final = 200_000

_MONTHS: Final[Mapping[str, int]] = {
    m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
_SEP = r"\s*[/.\-]\s*"
_DMY = re.compile(rf"(?<!\d)(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{4}})(?!\d)")
_YMD = re.compile(rf"(?<!\d)(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})(?!\d)")
_DMONY = re.compile(r"(?<!\d)(\d{1,2})[\s\-/.]*([A-Za-z]{3,9})\.?[\s\-/.,]*(\d{4})(?!\d)")
_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")

# Label lines, tried in this order (a "Father's Name" line is not a "Name" line).
_LABELS: Final = (
    ("father", re.compile(r"father\W{0,3}s?\W*name", re.I)),
    ("pan", re.compile(r"permanent\s*account\s*n", re.I)),
    ("yob", re.compile(r"year\s*of\s*birth", re.I)),
    ("dob", re.compile(r"date\s*of\s*birth|\bd\s?\.?\s?o\s?\.?\s?b\b|birth\s*date", re.I)),
    ("name", re.compile(r"(?<![a-z])name(?![a-z])", re.I)),
)
_NAME = re.compile(r"[A-Za-z][A-Za-z.'\- ]*[A-Za-z.]")
# Header and label words that are never a person's name.
_NOT_NAMES: Final = frozenset(
    {
        "income",
        "tax",
        "department",
        "govt",
        "government",
        "of",
        "india",
        "permanent",
        "account",
        "number",
        "card",
        "signature",
        "unique",
        "identification",
        "authority",
        "male",
        "female",
        "transgender",
        "dob",
        "year",
        "birth",
        "date",
        "father",
        "name",
        "aadhaar",
        "vid",
        "issue",
        "address",
        "enrolment",
        "help",
        "www",
        "uidai",
        "gov",
        "in",
        "republic",
        "passport",
    }
)

# PAN positional repair: what OCR reads for a letter where a digit must be, and the other way round.
_TO_DIGIT: Final = str.maketrans({"O": "0", "o": "0", "I": "1", "l": "1", "i": "1", "|": "1",
                                  "S": "5", "s": "5", "B": "8", "Z": "2", "z": "2"})  # fmt: skip
_TO_LETTER: Final = str.maketrans({"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z"})
_PAN = re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]")
_AADHAAR = re.compile(r"(?<!\d)(?<!\d )(\d{4}) ?(\d{4}) ?(\d{4})(?! ?\d)")
_MRZ_CHARS = re.compile(r"[A-Z0-9<]+")
_MRZ_LEN: Final = 44
# The MRZ's digit-only positions of line 2 (check digits, dates); OCR reads the font's 0 as Q or D too.
_MRZ_DIGITS: Final = (9, *range(13, 20), *range(21, 28), 42, 43)
_MRZ_TO_DIGIT: Final = str.maketrans({"O": "0", "Q": "0", "D": "0", "I": "1", "S": "5", "B": "8", "Z": "2"})
_MRZ_FILLERS: Final = str.maketrans({"c": "<", "e": "<", "k": "<"})
# What OCR confuses in a document number (letters and digits both occur there); its check digit decides.
_MRZ_CONFUSED: Final[Mapping[str, str]] = {
    "7": "Z", "Z": "72", "2": "Z", "0": "OQD", "O": "0Q", "Q": "O0", "D": "0",
    "1": "I", "I": "1", "5": "S", "S": "5", "8": "B", "B": "8", "6": "G", "G": "6",
}  # fmt: skip
_WEIGHTS: Final = (7, 3, 1)


@dataclass(frozen=True, slots=True)
class DocumentFields:
    """What was read from one document; None where nothing could be read.

    ``aadhaar`` is the full number (see the module's warning). ``other`` holds the rest as text:
    ``father_name`` (PAN card), ``year_of_birth`` and ``gender`` (Aadhaar), and for a passport
    ``surname``, ``given_names``, ``document_number``, ``nationality``, ``sex``, ``date_of_expiry`` (ISO)
    and ``mrz`` (``valid`` or ``bad_check_digits``). ``doc_type`` is the layout it was read as.
    """

    pan: str | None = None
    name: str | None = None
    date_of_birth: date | None = None
    aadhaar: str | None = field(default=None, repr=False)  # never in a repr, a log line or a test report
    other: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    doc_type: str = ""

    def __post_init__(self) -> None:
        other = self.other
        if not isinstance(other, Mapping) or not all(isinstance(v, str) for v in (*other, *other.values())):
            raise InvalidInputError("other must be a mapping of text to text")
        expiry = other.get("date_of_expiry")
        if expiry is not None and _iso_date(expiry) is None:
            raise InvalidInputError(f"date_of_expiry {expiry!r} is not an ISO date")
        object.__setattr__(self, "other", MappingProxyType(dict(other)))

    @property
    def expires_on(self) -> date | None:
        """The document's expiry date, if it was read (a passport's MRZ)."""
        value = self.other.get("date_of_expiry")
        return date.fromisoformat(value) if value else None

    @property
    def empty(self) -> bool:
        """Whether nothing at all was read."""
        return not (self.pan or self.name or self.date_of_birth or self.aadhaar or self.other)


def _iso_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    """The first date in ``text`` (DD/MM/YYYY, DD-MM-YYYY, DD.MM.YYYY, YYYY-MM-DD, ``12 Mar 1985``), or None."""
    found: list[tuple[int, date]] = []
    for m in _YMD.finditer(text):
        if (d := _valid_date(int(m[1]), int(m[2]), int(m[3]))) is not None:
            found.append((m.start(), d))
    for m in _DMY.finditer(text):
        if (d := _valid_date(int(m[3]), int(m[2]), int(m[1]))) is not None:
            found.append((m.start(), d))
    for m in _DMONY.finditer(text):
        month = _MONTHS.get(m[2][:3].lower())
        if month is not None and (d := _valid_date(int(m[3]), month, int(m[1]))) is not None:
            found.append((m.start(), d))
    return min(found, key=lambda f: f[0])[1] if found else None


def _lines(text: str) -> list[str]:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _label(line: str) -> tuple[str, str] | None:
    """The label of ``line`` and the text after it, or None if it is no label line."""
    for kind, pattern in _LABELS:
        m = pattern.search(line)
        if m is not None:
            return kind, line[m.end() :].strip(" :;-/|.,")
    return None


def _name(text: str) -> str | None:
    """``text`` as a person's name (upper case, single spaces), or None if it does not look like one."""
    m = _NAME.search(text.strip(" :;-/|.,'\""))
    if m is None:
        return None
    words = [w for w in m[0].replace(".", ". ").split() if w]
    letters = [w for w in words if any(c.isalpha() for c in w)]
    if not letters or not any(len(w.strip(".")) >= 2 for w in letters):
        return None
    if all(w.strip(".'-").lower() in _NOT_NAMES for w in letters):
        return None
    return " ".join(words).upper()


def _labelled(lines: list[str]) -> dict[str, str]:
    """The value of each label: the text after it on its line, or the next line that is no label."""
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        label = _label(line)
        if label is None or label[0] in out:
            continue
        kind, rest = label
        candidates = [rest]
        for following in lines[i + 1 : i + 3]:  # the value's line ends at the next label
            if _label(following) is not None:
                break
            candidates.append(following)
        for candidate in candidates:
            if not candidate:
                continue
            if kind in ("dob", "yob") and (parse_date(candidate) or _YEAR.search(candidate)):
                out[kind] = candidate
                break
            if kind in ("name", "father") and _name(candidate) is not None:
                out[kind] = candidate
                break
            if kind == "pan" and _pan_in(candidate) is not None:
                out[kind] = candidate
                break
    return out


def _repair_pan(token: str) -> str | None:
    """``token`` as a PAN after positional repair, or None if it cannot be one."""
    if len(token) != 10:
        return None
    letters = token[:5].upper().translate(_TO_LETTER) + token[9].upper().translate(_TO_LETTER)
    digits = token[5:9].translate(_TO_DIGIT)
    pan = letters[:5] + digits + letters[5]
    return pan if _PAN.fullmatch(pan) else None


def _pan_candidates(line: str) -> Iterator[str]:
    """The PANs in ``line``: whole tokens, or two or three adjacent ones (OCR splits ``ABCPS 1234D``)."""
    tokens = [t.strip(".,:;|()[]'\"") for t in line.split()]
    for size in (1, 2, 3):
        for i in range(len(tokens) - size + 1):
            pan = _repair_pan("".join(tokens[i : i + size]))
            if pan is not None:
                yield pan


def _pan_in(text: str) -> str | None:
    """The best PAN in ``text``: a valid one (stdnum's rules) before one that only has the pattern."""
    candidates = [pan for line in _lines(text) for pan in _pan_candidates(line)]
    valid = [pan for pan in candidates if pan_problem(pan) is None]
    return next(iter(valid or candidates), None)


def _read_pan_card(lines: list[str]) -> DocumentFields:
    values = _labelled(lines)
    pan = _pan_in(values["pan"]) if "pan" in values else None
    pan = pan or _pan_in("\n".join(lines))
    name = _name(values["name"]) if "name" in values else None
    father = _name(values["father"]) if "father" in values else None
    if name is None and not any(kind in values for kind in ("name", "father")):
        # The older layout has no labels: the holder's name, then the father's, under the header.
        plain = [line for line in lines if _label(line) is None and not any(c.isdigit() for c in line)]
        names = [n for n in map(_name, plain) if n is not None]
        name, father = [*names, None, None][:2]
    dob = parse_date(values["dob"]) if "dob" in values else None
    if dob is None:  # no label read: the only date on a PAN card is the date of birth
        dob = parse_date("\n".join(lines))
    other = {"father_name": father} if father else {}
    return DocumentFields(pan=pan, name=name, date_of_birth=dob, other=other, doc_type="pan_card")


def _aadhaar_in(lines: list[str]) -> str | None:
    found = []
    for line in lines:
        digits = line.translate(_TO_DIGIT)
        found += ["".join(m.groups()) for m in _AADHAAR.finditer(digits)]
    valid = [n for n in found if stdnum_aadhaar.is_valid(n)]
    return next(iter(valid or found), None)


def _read_aadhaar(lines: list[str]) -> DocumentFields:
    values = _labelled(lines)
    dob = parse_date(values["dob"]) if "dob" in values else None
    other: dict[str, str] = {}
    if "yob" in values and (year := _YEAR.search(values["yob"])) is not None:
        other["year_of_birth"] = year[1]
    name = _name(values["name"]) if "name" in values else None
    if name is None:  # the name is the line above the date of birth
        at = next((i for i, line in enumerate(lines) if (lab := _label(line)) and lab[0] in ("dob", "yob")), None)
        for line in reversed(lines[: at or 0]):
            if (name := _name(line)) is not None and not any(c.isdigit() for c in line):
                break
    for line in lines:
        if m := re.search(r"\b(male|female|transgender)\b", line, re.I):
            other["gender"] = m[1].lower()
            break
    return DocumentFields(name=name, date_of_birth=dob, aadhaar=_aadhaar_in(lines), other=other, doc_type="aadhaar")


def mrz_check_digit(field_text: str) -> str:
    """The ICAO 9303 check digit of an MRZ field: digits as themselves, A-Z as 10-35, ``<`` as 0; weights 7-3-1."""
    total = 0
    for i, char in enumerate(field_text):
        if char.isdigit():
            value = int(char)
        elif "A" <= char <= "Z":
            value = ord(char) - ord("A") + 10
        elif char == "<":
            value = 0
        else:
            raise InvalidInputError(f"{char!r} is no MRZ character")
        total += value * _WEIGHTS[i % 3]
    return str(total % 10)


def _mrz_lines(lines: list[str]) -> tuple[str, str] | None:
    """The two MRZ lines of a passport (TD3) without spaces, or None; line 2 as read (its length may be off).

    An MRZ has no lower case: OCR reads a run of fillers ``<`` as ``c``, ``e`` or ``k``.
    """
    cleaned = []
    for line in lines:
        text = line.replace(" ", "").replace("\u00ab", "<<").replace("\u2039", "<").translate(_MRZ_FILLERS).upper()
        if len(text) >= _MRZ_LEN - 4 and _MRZ_CHARS.fullmatch(text) and text.count("<") >= 2:
            cleaned.append(text)
    for first, second in pairwise(cleaned):
        if first.startswith("P"):
            return first[:_MRZ_LEN].ljust(_MRZ_LEN, "<"), second
    return None


def _mrz_names(one: str) -> tuple[str, str]:
    """Surname and given names of MRZ line 1: letters only, the first run of three fillers ends them."""
    names = one[5:].split("<<<", 1)[0].translate(_TO_LETTER)
    surname, _, given = names.partition("<<")
    words = [re.sub(r"[^A-Z]", "", w) for w in given.split("<")]
    return " ".join(re.sub(r"[^A-Z]", " ", surname).split()), " ".join(w for w in words if w)


def _mrz_checks(two: str) -> bool:
    """Whether the four check digits of MRZ line 2 (number, birth, expiry, composite) are right."""
    fields = ((two[0:9], two[9]), (two[13:19], two[19]), (two[21:27], two[27]))
    composite = two[0:10] + two[13:20] + two[21:43]
    return all(mrz_check_digit(text) == digit for text, digit in fields) and mrz_check_digit(composite) == two[43]


def _line_two(raw: str) -> tuple[str, bool]:
    """MRZ line 2 repaired by its check digits (a character too many or too few, a confused one in the number).

    Returns the line (44 characters) and whether its check digits are right.
    """
    if len(raw) == _MRZ_LEN + 1:  # OCR read a character twice: a doubled character first
        shapes = [raw[:i] + raw[i + 1 :] for i in sorted(range(len(raw)), key=lambda i: raw[i] != raw[i - 1])]
    elif len(raw) == _MRZ_LEN - 1:  # OCR dropped a character: a filler in a run of fillers first
        shapes = [
            raw[:i] + "<" + raw[i:] for i in sorted(range(len(raw) + 1), key=lambda i: "<" not in raw[i - 1 : i + 1])
        ]
    else:
        shapes = [raw[:_MRZ_LEN].ljust(_MRZ_LEN, "<")]
    translated = [
        "".join(c.translate(_MRZ_TO_DIGIT) if i in _MRZ_DIGITS else c for i, c in enumerate(s)) for s in shapes
    ]
    # Only lines with a nationality of letters, a sex and two dates are aligned right.
    lines = [
        line
        for line in translated
        if re.fullmatch(r"[A-Z<]{3}", line[10:13])
        and line[20] in "MFX<"
        and _mrz_date(line[13:19], future=False)
        and _mrz_date(line[21:27], future=True)
    ] or translated[:1]
    for line in lines:
        if _mrz_checks(line):
            return line, True
    for line in lines:
        for i in range(9):
            for other in _MRZ_CONFUSED.get(line[i], ""):
                if _mrz_checks(repaired := line[:i] + other + line[i + 1 :]):
                    return repaired, True
    return lines[0], False


def _mrz_date(digits: str, *, future: bool) -> date | None:
    if not digits.isdigit():
        return None
    yy, month, day = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    year = 2000 + yy
    if not future and year > date.today().year:  # a birth year: 19yy when 20yy is still to come
        year -= 100
    return _valid_date(year, month, day)


def _read_passport(lines: list[str]) -> DocumentFields:
    mrz = _mrz_lines(lines)
    if mrz is None:
        values = _labelled(lines)
        dob = parse_date(values["dob"]) if "dob" in values else None
        return DocumentFields(date_of_birth=dob, doc_type="passport")
    one, raw = mrz
    two, valid = _line_two(raw)
    surname, given = _mrz_names(one)
    number, dob_text, expiry_text = two[0:9], two[13:19], two[21:27]
    other = {
        "surname": surname,
        "given_names": given,
        "document_number": number.rstrip("<"),
        "nationality": two[10:13].translate(_TO_LETTER).replace("<", ""),
        "sex": two[20],
        "mrz": "valid" if valid else "bad_check_digits",
    }
    dob = _mrz_date(dob_text, future=False) if valid else None
    expiry = _mrz_date(expiry_text, future=True) if valid else None
    if expiry is not None:
        other["date_of_expiry"] = expiry.isoformat()
    name = " ".join(part for part in (given, surname) if part) or None
    return DocumentFields(
        name=name if valid else None,
        date_of_birth=dob,
        other={k: v for k, v in other.items() if v},
        doc_type="passport",
    )


def read_fields(text: str, doc_type: str) -> DocumentFields:
    """The fields of a document of ``doc_type`` (one of :data:`DOC_TYPES`) read from its ``text``.

    Nothing readable gives empty fields, never an error; InvalidInputError only for a bad argument (an
    unknown type, text that is not a string or is longer than :data:`MAX_TEXT`).
    """
    if doc_type not in DOC_TYPES:
        raise InvalidInputError(f"unknown document type {doc_type!r}: expected one of {', '.join(DOC_TYPES)}")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise InvalidInputError(f"text must be a string of at most {MAX_TEXT} characters")
    lines = _lines(text)
    if doc_type == "pan_card":
        return _read_pan_card(lines)
    if doc_type == "aadhaar":
        return _read_aadhaar(lines)
    return _read_passport(lines)
