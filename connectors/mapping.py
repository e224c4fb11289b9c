"""Column mappings: how a source's columns become canonical fields (a YAML file per source).

Example::

    key: rec_id                     # or a list of columns, joined with '|'
    observed_at: {column: updated, format: "%Y-%m-%d %H:%M:%S"}   # optional; default: the file's mtime
    fields:
      first_name: given_name
      date_of_birth: {column: date_of_birth, format: "%Y%m%d"}
      address_line1: [street_number, address_1]                  # joined with a space
      national_id: {column: soc_sec_id, kind: ssn}
    keep_unmapped: true             # other columns become free attributes (default true)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from c360.graph.errors import InvalidInputError
from c360.graph.models import CANONICAL_FIELDS, EARLIEST_BIRTH, SourceRecord
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+$")
_KEY_CANDIDATES = ("source_key", "key", "id", "rec_id")


class FieldSpec(BaseModel):
    """One canonical field: its source column(s), a date format, an id kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[str] = Field(min_length=1, description="Source columns, joined with a space.")
    format: str | None = Field(default=None, description="strptime format, for date fields.")
    kind: str | None = Field(default=None, description="Kind of national id (ssn, passport, pan, ...).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"columns": [value]}
        if isinstance(value, list):
            return {"columns": value}
        if isinstance(value, dict) and "column" in value:
            value = dict(value)
            col = value.pop("column")
            value["columns"] = col if isinstance(col, list) else [col]
        return value


class ColumnMapping(BaseModel):
    """A source's column mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: list[str] = Field(min_length=1, description="Column(s) holding the source's record key.")
    observed_at: FieldSpec | None = Field(default=None, description="Column with the time the source saw it.")
    fields: dict[str, FieldSpec] = Field(default_factory=dict, description="Canonical field -> source column(s).")
    keep_unmapped: bool = Field(default=True, description="Keep other columns as free attributes.")

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("fields")
    @classmethod
    def _known(cls, value: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        unknown = sorted(set(value) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical field(s) {', '.join(unknown)}; known: {', '.join(CANONICAL_FIELDS)}")
        return value

    def used_columns(self) -> set[str]:
        """Every column the mapping reads."""
        cols = set(self.key)
        if self.observed_at:
            cols.update(self.observed_at.columns)
        for spec in self.fields.values():
            cols.update(spec.columns)
        return cols


def load_mapping(path: Path) -> ColumnMapping:
    """Read and validate a mapping file; raise :class:`InvalidInputError` with the reason."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read mapping {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"mapping {path} is not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"mapping {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"mapping {path} must be a YAML mapping with 'key' and 'fields'")
    try:
        return ColumnMapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(f"mapping {path}: {where}: {first['msg']}") from exc


def default_mapping(columns: list[str], *, all_fields: bool = False) -> ColumnMapping:
    """The mapping of a file whose columns already carry canonical names.

    ``all_fields`` maps every canonical name, present in ``columns`` or not (rows that omit empty fields).
    """
    key = next((c for c in _KEY_CANDIDATES if c in columns), None)
    if key is None:
        raise InvalidInputError(
            f"no key column (one of {', '.join(_KEY_CANDIDATES)}) in {', '.join(columns) or 'an empty header'}; "
            "give a --mapping file"
        )
    fields = {name: FieldSpec(columns=[name]) for name in CANONICAL_FIELDS if all_fields or name in columns}
    spec = FieldSpec(columns=["observed_at"]) if all_fields or "observed_at" in columns else None
    return ColumnMapping(key=[key], fields=fields, observed_at=spec)


class RowError(Exception):
    """A row that cannot become a record; the message is the reason."""


@dataclass(slots=True)
class RowMapper:
    """Turns raw rows (column -> text) into source records, counting per-field parse warnings."""

    source: str
    mapping: ColumnMapping
    default_observed_at: datetime
    warnings: Counter[str] = field(default_factory=Counter)

    def check_columns(self, columns: list[str]) -> None:
        """Fail fast when the mapping names columns the file does not have."""
        missing = sorted(self.mapping.used_columns() - set(columns))
        if missing:
            raise InvalidInputError(f"columns missing from the file: {', '.join(missing)}")

    def to_record(self, row: Mapping[str, Any]) -> SourceRecord:
        """Map one row; raise :class:`RowError` when it has no key."""
        key_parts = [_text(row.get(c)) for c in self.mapping.key]
        if not all(key_parts):
            raise RowError(f"missing key ({', '.join(self.mapping.key)})")
        values: dict[str, Any] = {}
        for name, spec in self.mapping.fields.items():
            value = self._parse(name, spec, row)
            if value is not None:
                values[name] = value
            if name == "national_id" and spec.kind and value is not None:
                values.setdefault("national_id_kind", spec.kind)
        observed = self.default_observed_at
        if self.mapping.observed_at is not None:
            observed = self._parse_time(self.mapping.observed_at, row) or observed
        attributes: dict[str, str] = {}
        if self.mapping.keep_unmapped:
            used = self.mapping.used_columns()
            attributes = {k: t for k, v in row.items() if k not in used and (t := _text(v))}
        return SourceRecord(
            source=self.source,
            key="|".join(p for p in key_parts if p),
            observed_at=observed,
            attributes=attributes,
            **values,
        )

    def _parse(self, name: str, spec: FieldSpec, row: Mapping[str, Any]) -> Any:
        if len(spec.columns) == 1:
            raw = _text(row.get(spec.columns[0]))
        else:
            raw = " ".join(t for c in spec.columns if (t := _text(row.get(c))))
        if not raw:
            return None
        if name == "date_of_birth":
            parsed = _parse_date(raw, spec.format)
            if parsed is None:
                self.warnings[name] += 1
            return parsed
        if name == "email" and not _EMAIL_SHAPE.match(raw):
            self.warnings[name] += 1
            return None
        if name == "phone" and sum(ch.isdigit() for ch in raw) < 6:
            self.warnings[name] += 1
            return None
        return raw

    def _parse_time(self, spec: FieldSpec, row: Mapping[str, Any]) -> datetime | None:
        raw = " ".join(t for c in spec.columns if (t := _text(row.get(c))))
        if not raw:
            return None
        try:
            value = datetime.strptime(raw, spec.format) if spec.format else datetime.fromisoformat(raw)
        except ValueError:
            self.warnings["observed_at"] += 1
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value).strip()
    return text or None


def _parse_date(raw: str, fmt: str | None) -> date | None:
    """The date, or ``None`` if it does not parse or is not a birth date (before 1900, or after today)."""
    try:
        found = datetime.strptime(raw, fmt).date() if fmt else date.fromisoformat(raw[:10])
    except ValueError:
        return None
    return found if EARLIEST_BIRTH <= found <= datetime.now(UTC).date() else None
