"""The comparison view of a record: the normalised columns that matching compares.

Training, batch resolution and the real-time scorer all read records through :func:`features`, so the
model is trained and applied on the same values.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from c360.graph.models import SourceRecord

from .normalize import normalize_email, normalize_national_id, normalize_phone

#: The columns of the comparison view, in order. ``unique_id`` is the record uid.
COLUMNS: tuple[str, ...] = (
    "unique_id",
    "source_dataset",
    "first_name",
    "last_name",
    "dob",
    "email",
    "phone",
    "address",
    "postcode",
    "city",
    "national_id",
    "name_pair",
)
#: Columns a comparison may compare.
COMPARED: tuple[str, ...] = COLUMNS[2:-1]
#: Columns only blocking rules use: ``name_pair`` is the two names in sorted order (finds swapped names).
BLOCKING_ONLY: tuple[str, ...] = ("name_pair",)

_NOT_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")


def clean_text(value: str | None) -> str | None:
    """Lower-case, strip accents and punctuation, collapse spaces; ``None`` when nothing is left."""
    if not value:
        return None
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    text = _SPACES.sub(" ", _NOT_WORD.sub(" ", ascii_text.lower())).strip()
    return text or None


def features(record: SourceRecord, region: str) -> dict[str, Any]:
    """Return the comparison view of ``record`` (missing values are ``None``)."""
    postcode = record.postcode.replace(" ", "").upper() if record.postcode else None
    first, last = clean_text(record.first_name), clean_text(record.last_name)
    return {
        "unique_id": record.uid,
        "source_dataset": record.source,
        "first_name": first,
        "last_name": last,
        "dob": record.date_of_birth.isoformat() if record.date_of_birth else None,
        "email": normalize_email(record.email),
        "phone": normalize_phone(record.phone, region),
        "address": clean_text(" ".join(p for p in (record.address_line1, record.address_line2) if p)),
        "postcode": postcode or None,
        "city": clean_text(record.city),
        "national_id": normalize_national_id(record.national_id, record.national_id_kind),
        "name_pair": "|".join(sorted((first, last))) if first and last else None,
    }


def pack_view(view: dict[str, Any]) -> str:
    """The comparison view as compact JSON (values in :data:`COLUMNS` order, without the uid), to file."""
    return json.dumps([view[c] for c in COLUMNS[1:]], separators=(",", ":"))


def unpack_view(text: str, uid: str) -> dict[str, Any]:
    """The comparison view :func:`pack_view` filed for record ``uid``."""
    values = json.loads(text)
    if len(values) != len(COLUMNS) - 1:
        raise ValueError(f"a filed comparison view has {len(values)} values, expected {len(COLUMNS) - 1}")
    return {"unique_id": uid, **dict(zip(COLUMNS[1:], values, strict=True))}


def feature_table(records: Iterable[SourceRecord], region: str) -> dict[str, list[Any]]:
    """Return the comparison view of many records as columns (ready for ``pyarrow.table``)."""
    columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for record in records:
        for name, value in features(record, region).items():
            columns[name].append(value)
    return columns
