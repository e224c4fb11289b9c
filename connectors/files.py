"""The file connector: CSV, JSON Lines and Parquet files, mapped onto canonical source records.

A row that cannot be read or has no key is rejected with its row number and reason (the ingest runner
keeps it as a dead letter); a field that does not parse is left empty and counted, and the row is
still used.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from c360.graph.errors import InvalidInputError
from c360.graph.models import SourceRecord, source_name_problem

from .mapping import ColumnMapping, RowError, RowMapper, default_mapping

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_BAD_BYTES = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, under surrogateescape


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that was not ingested: its number in the file (header = row 1 for CSV) and why."""

    row: int
    reason: str
    raw: str


@dataclass(slots=True)
class ReadReport:
    """What reading a file found: rows, records, rejects and per-field parse warnings."""

    rows: int = 0
    records: int = 0
    rejects: list[Reject] = field(default_factory=list)
    warnings: Counter[str] = field(default_factory=Counter)
    #: JSON Lines: mapped columns that no row had (a typo in the mapping?)
    unseen_columns: list[str] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """Return ``csv``, ``jsonl`` or ``parquet`` from the file name."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(f"{path}: unknown file type {path.suffix!r}; use .csv, .jsonl (.ndjson) or .parquet")
    return fmt


class FileSource:
    """Iterate a file's rows as :class:`SourceRecord`; :attr:`report` fills in as it goes."""

    def __init__(self, path: Path, source: str, mapping: ColumnMapping | None = None) -> None:
        problem = source_name_problem(source)
        if problem is not None:
            raise InvalidInputError(problem)
        if not path.is_file():
            raise InvalidInputError(f"{path}: no such file")
        self.path = path
        self.source = source
        self.format = detect_format(path)
        self.mapping = mapping
        self.report = ReadReport()
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(microsecond=0)
        self._default_time = mtime
        self._columns: list[str] = []  # the header, for formats that have one
        self._seen_columns: set[str] = set()  # JSON Lines: every key seen in any row

    def __iter__(self) -> Iterator[SourceRecord]:
        """Yield the file's records; rejects and warnings go to :attr:`report`."""
        for item in self.rows():
            if isinstance(item, SourceRecord):
                yield item

    def rows(self) -> Iterator[SourceRecord | Reject]:
        """Yield each row as a record, or as a :class:`Reject` with its row number and reason.

        :attr:`report` fills in as it goes. A key seen before in the same file is rejected: a file is
        one snapshot of its source, and ingesting it twice must leave the graph as the first time did.
        """
        mapper: RowMapper | None = None
        seen: dict[str, int] = {}
        try:
            rows = {"csv": self._csv_rows, "jsonl": self._jsonl_rows, "parquet": self._parquet_rows}[self.format]()
            for number, row, reason, raw in rows:
                self.report.rows += 1
                reject: Reject | None = None
                if row is None:
                    reject = Reject(number, reason, raw)
                else:
                    if mapper is None:
                        mapper = self._mapper(self._columns or list(row))
                    try:
                        record = mapper.to_record(row)
                    except RowError as exc:
                        reject = Reject(number, str(exc), _raw(row))
                    else:
                        first = seen.setdefault(record.key, number)
                        if first != number:
                            reject = Reject(number, f"duplicate key {record.key!r} (first at row {first})", _raw(row))
                if reject is not None:
                    self.report.rejects.append(reject)
                    yield reject
                    continue
                self.report.records += 1
                yield record
        except (OSError, csv.Error) as exc:
            raise InvalidInputError(f"{self.path}: cannot read: {exc}") from exc
        finally:
            if mapper is not None:
                self.report.warnings.update(mapper.warnings)
            if self.format == "jsonl" and self.mapping is not None:
                unseen = sorted(self.mapping.used_columns() - self._seen_columns)
                self.report.unseen_columns = unseen if self.report.rows else []

    def _mapper(self, columns: list[str]) -> RowMapper:
        if self.mapping is not None:
            mapping = self.mapping
        elif self.format == "jsonl":  # rows may omit empty fields: every canonical name may appear
            mapping = default_mapping(columns, all_fields=True)
        else:
            mapping = default_mapping(columns)
        mapper = RowMapper(self.source, mapping, self._default_time)
        if self.format != "jsonl":
            mapper.check_columns(columns)
        return mapper

    # Each reader yields (row number, row or None, reason if None, the row's text if None). Files are
    # decoded with surrogateescape so that one badly encoded row is rejected alone.
    def _csv_rows(self) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        with self.path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return
            header = [h.strip() for h in header]
            if len(set(header)) != len(header):
                raise InvalidInputError(f"{self.path}: duplicate column names in the header")
            if any(_BAD_BYTES.search(h) for h in header):
                raise InvalidInputError(f"{self.path}: the header is not valid UTF-8")
            self._columns = header
            while True:
                number = reader.line_num + 1  # the line this row starts on (header = line 1)
                values = next(reader, None)
                if values is None:
                    return
                if not values:
                    continue
                if any(_BAD_BYTES.search(v) for v in values):
                    yield number, None, "not valid UTF-8", _text(",".join(values))
                elif len(values) != len(header):
                    reason = f"has {len(values)} fields, the header has {len(header)}"
                    yield number, None, reason, _text(",".join(values))
                else:
                    yield number, dict(zip(header, values, strict=True)), "", ""

    def _jsonl_rows(self) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        with self.path.open(encoding="utf-8", errors="surrogateescape") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                text = _text(line.rstrip("\r\n"))
                if _BAD_BYTES.search(line):
                    yield number, None, "not valid UTF-8", text
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, None, f"invalid JSON: {exc.msg}", text
                    continue
                if not isinstance(obj, dict):
                    yield number, None, "not a JSON object", text
                    continue
                self._seen_columns.update(obj)
                yield number, obj, "", ""

    def _parquet_rows(self) -> Iterator[tuple[int, dict[str, Any] | None, str, str]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(self.path)
            self._columns = list(pf.schema_arrow.names)
            number = 0
            for batch in pf.iter_batches(batch_size=10_000):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row, "", ""
        except pa.ArrowException as exc:
            raise InvalidInputError(f"{self.path}: not a readable Parquet file: {exc}") from exc


def _text(raw: str) -> str:
    """Text as read, with bytes that were not UTF-8 shown as U+FFFD (a dead letter must encode)."""
    return raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _raw(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=str)
