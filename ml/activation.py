"""Activation: a segment's members exported to CSV, Parquet or a signed webhook, consent first.

:func:`export_segment` pages the segment's members from the store, reads their consent facts in bulk
(:mod:`c360.ml.consent_facts`, the kernel's rule) and leaves out every member whose effective consent to
the export's purpose on its channel at ``at`` is not ``granted`` (counted by the state it has: none,
withdrawn, denied, expired), then every member without the channel's address (``no address``). The
columns are ``customer_id``, the channel's address field (:data:`ADDRESS_FIELDS`: the golden ``email``
for e-mail, the golden ``phone`` for SMS and phone calls; other channels have no address to export)
and the golden fields asked for.

A file is written under a temporary name beside the destination and renamed into place when whole,
with its manifest (``<file>.manifest.json``) beside it: a failed export leaves no file behind. A webhook
gets the rows in signed batches (:mod:`c360.ml.webhook`), each with an idempotency key; a delivery that
fails raises :class:`ExportIncompleteError`, whose manifest says which batches were delivered.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from c360.graph.consent import check_channel, check_purpose
from c360.graph.errors import C360Error, ConflictError, InvalidInputError
from c360.graph.insights import check_name
from c360.graph.models import CANONICAL_FIELDS, Profile, aware
from c360.graph.store import GraphStore

from .consent_facts import consent_facts
from .webhook import WebhookSender, check_url, shown_url

Format = Literal["csv", "parquet", "webhook"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "webhook")
#: the golden field that holds each exportable channel's address
ADDRESS_FIELDS: Mapping[str, str] = {"email": "email", "sms": "phone", "phone": "phone"}
#: why a member is left out: its consent state for the pair, or no address on the channel
REASONS: tuple[str, ...] = ("none", "withdrawn", "denied", "expired", "no address")
#: members read per page (and per bulk consent and profile read)
PAGE = 1000
Progress = Callable[[str], None]


class ExportIncompleteError(C360Error):
    """The export stopped before it was whole; ``manifest`` says what was done (for a webhook: delivered)."""

    def __init__(self, message: str, manifest: ExportManifest) -> None:
        super().__init__(message)
        self.manifest = manifest


@dataclass(slots=True)
class ExportCounts:
    """Members read, rows exported, and members left out by reason (:data:`REASONS`)."""

    members: int = 0
    exported: int = 0
    excluded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))


@dataclass(slots=True)
class ExportManifest:
    """What an export did, and the consent it rests on: written beside the file, returned for a webhook.

    ``receipts`` maps every exported customer to the consent event that granted it (its receipt's event,
    ``store.get_consent(id)``); ``sha256`` is the file's (None for a webhook); ``batches`` the idempotency
    keys of the batches delivered.
    """

    export_id: str
    segment: str
    purpose: str
    channel: str
    at: datetime
    format: str
    destination: str
    columns: tuple[str, ...]
    consent_rule: str
    created_at: datetime
    counts: ExportCounts = field(default_factory=ExportCounts)
    receipts: dict[str, str] = field(default_factory=dict)
    sha256: str | None = None
    bytes: int | None = None
    batches: list[str] = field(default_factory=list)
    complete: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest document."""
        return {
            "export_id": self.export_id,
            "segment": self.segment,
            "purpose": self.purpose,
            "channel": self.channel,
            "at": self.at.isoformat(),
            "format": self.format,
            "destination": self.destination,
            "columns": list(self.columns),
            "created_at": self.created_at.isoformat(),
            "complete": self.complete,
            "error": self.error,
            "counts": {
                "members": self.counts.members,
                "exported": self.counts.exported,
                "excluded": dict(self.counts.excluded),
            },
            "consent_rule": self.consent_rule,
            "file": None if self.sha256 is None else {"sha256": self.sha256, "bytes": self.bytes},
            "batches_delivered": len(self.batches),
            "batches": list(self.batches),
            "receipts": dict(self.receipts),
        }


def consent_rule(purpose: str, channel: str, at: datetime, address: str) -> str:
    """The consent rule an export applies, in words (the manifest's ``consent_rule``)."""
    return (
        f"Exported only members whose effective consent to {purpose} by {channel} at {at.isoformat()} is granted: "
        "per customer, the latest consent event captured at or before that time across all their source records "
        "decides (at the same instant a withdrawal beats a denial, which beats a grant); a grant past its expiry "
        "is expired. Left out: no consent recorded (none), withdrawn, denied, expired, and members without "
        f"a golden {address} (no address). Each exported customer's deciding event is listed in receipts."
    )


@dataclass(slots=True)
class _Run:
    store: GraphStore
    manifest: ExportManifest
    address: str
    fields: tuple[str, ...]
    page: int
    deadline: float
    say: Progress


def export_segment(
    store: GraphStore,
    segment_id: str,
    *,
    purpose: str,
    channel: str,
    fmt: Format,
    destination: str | Path,
    at: datetime | None = None,
    fields: Sequence[str] = (),
    purposes: Sequence[str] | None = None,
    secret: bytes | None = None,
    batch_size: int = 500,
    overwrite: bool = False,
    budget_seconds: float = 600.0,
    page_size: int = PAGE,
    progress: Progress | None = None,
    sender: WebhookSender | None = None,
) -> ExportManifest:
    """Export the segment's consented members to ``destination`` (a file path, or a webhook URL).

    ``purpose`` is checked against ``purposes`` (the deployment's; None: its shape only), ``channel``
    must have an address field (:data:`ADDRESS_FIELDS`); ``at`` (default now) is the instant consent is
    judged at; ``fields`` are extra golden fields for the columns. A file that exists is a
    :class:`ConflictError` unless ``overwrite``. A webhook needs ``secret`` (or a ready ``sender``) and
    gets ``batch_size`` rows per POST. ``budget_seconds`` bounds the whole export (the webhook's retries
    too); ``progress`` gets a line per page. Returns the manifest.
    """
    check_purpose(purpose, purposes)
    check_channel(channel)
    check_name("segment id", segment_id)
    if channel not in ADDRESS_FIELDS:
        raise InvalidInputError(
            f"channel {channel} has no address to export: exports go to {', '.join(ADDRESS_FIELDS)}"
        )
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    when = datetime.now(UTC) if at is None else aware("at", at)
    address = ADDRESS_FIELDS[channel]
    extra = tuple(dict.fromkeys(f for f in fields if f != address))
    unknown = [f for f in extra if f not in CANONICAL_FIELDS]
    if unknown:
        raise InvalidInputError(
            f"unknown profile field(s) {', '.join(unknown)}: expected {', '.join(CANONICAL_FIELDS)}"
        )
    for what, n, top in (("batch_size", batch_size, 10_000), ("page_size", page_size, PAGE)):
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= top:
            raise InvalidInputError(f"{what} must be between 1 and {top}, not {n!r}")
    if not budget_seconds > 0:
        raise InvalidInputError(f"budget_seconds must be positive, not {budget_seconds}")
    export_id = uuid.uuid4().hex
    shown = shown_url(check_url(str(destination))) if fmt == "webhook" else str(Path(destination))
    manifest = ExportManifest(
        export_id,
        segment_id,
        purpose,
        channel,
        when,
        fmt,
        shown,
        ("customer_id", address, *extra),
        consent_rule(purpose, channel, when, address),
        datetime.now(UTC),
    )
    run = _Run(store, manifest, address, extra, page_size, time.monotonic() + budget_seconds, progress or _quiet)
    if fmt == "webhook":
        if sender is None:
            if secret is None:
                raise InvalidInputError("a webhook export needs the shared secret that signs its batches")
            sender = WebhookSender(str(destination), secret, budget_seconds=budget_seconds)
        return _to_webhook(run, sender, batch_size)
    return _to_file(run, Path(destination), overwrite)


def _quiet(_line: str) -> None:
    return None


# -- reading: members, consent, profiles --------------------------------------------------------------------


def _rows(run: _Run) -> Iterator[list[dict[str, str | None]]]:
    """The exportable rows, a page of members at a time (counting members and exclusions on the manifest)."""
    m = run.manifest
    counts = m.counts
    after: str | None = None
    while True:
        if time.monotonic() > run.deadline:
            raise ExportIncompleteError(f"the export's time budget was spent after {counts.members:,} members", m)
        members, after = run.store.segment_members(m.segment, first=run.page, after=after)
        ids = [x.customer_id for x in members]
        counts.members += len(ids)
        facts = consent_facts(run.store, ids, m.at)
        granted: dict[str, str] = {}
        for cid in ids:
            f = facts.get(cid)
            basis = None if f is None else f.basis(m.purpose, m.channel)
            if basis is None or basis.status != "granted":
                counts.excluded["none" if basis is None else basis.status] += 1
            else:
                granted[cid] = basis.event_id
        profiles = run.store.get_profiles(list(granted)) if granted else {}
        rows = []
        for cid, event_id in granted.items():
            row = _row(profiles.get(cid), cid, run.address, run.fields)
            if row is None:
                counts.excluded["no address"] += 1
                continue
            rows.append(row)
            m.receipts[cid] = event_id
        yield rows
        run.say(
            f"{counts.members:,} members read, {len(m.receipts):,} consented with an address, "
            f"{sum(counts.excluded.values()):,} left out"
        )
        if after is None:
            return


def _row(profile: Profile | None, cid: str, address: str, extra: tuple[str, ...]) -> dict[str, str | None] | None:
    """The member's row, or None when it has no address on the channel."""
    golden = profile.customer.golden if profile is not None else {}
    to = golden.get(address)
    if to is None or not str(to.value).strip():
        return None
    row: dict[str, str | None] = {"customer_id": cid, address: str(to.value)}
    for name in extra:
        value = golden.get(name)
        row[name] = None if value is None or value.value is None else str(value.value)
    return row


# -- writing: a file, atomically -----------------------------------------------------------------------------


class _CsvSink:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self._file = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=list(columns))
        self._writer.writeheader()

    def write(self, rows: list[dict[str, str | None]]) -> None:
        self._writer.writerows(rows)

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class _ParquetSink:
    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self._schema = pa.schema([pa.field(c, pa.string(), nullable=c not in columns[:2]) for c in columns])
        self._writer = pq.ParquetWriter(str(path), self._schema)
        self._columns = columns

    def write(self, rows: list[dict[str, str | None]]) -> None:
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(path: Path) -> Path:
    """Where a file export's manifest goes: ``<file>.manifest.json`` beside it."""
    return path.with_name(path.name + ".manifest.json")


def _to_file(run: _Run, path: Path, overwrite: bool) -> ExportManifest:
    m = run.manifest
    if not path.parent.is_dir():
        raise InvalidInputError(f"no folder {path.parent} to write the export into")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder: name the file to write")
    if not overwrite and (path.exists() or manifest_path(path).exists()):
        raise ConflictError(f"{path} exists already: choose another name or overwrite it")
    tmp = path.with_name(f".{path.name}.{m.export_id}.tmp")
    tmp_manifest = path.with_name(f".{path.name}.{m.export_id}.manifest.tmp")
    try:
        sink = _CsvSink(tmp, m.columns) if m.format == "csv" else _ParquetSink(tmp, m.columns)
        try:
            for rows in _rows(run):
                sink.write(rows)
                m.counts.exported += len(rows)
        finally:
            sink.close()
        m.sha256, m.bytes, m.complete = _sha256(tmp), tmp.stat().st_size, True
        tmp_manifest.write_text(json.dumps(m.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        os.replace(tmp_manifest, manifest_path(path))
    finally:
        tmp.unlink(missing_ok=True)
        tmp_manifest.unlink(missing_ok=True)
    return m


# -- sending: a webhook, in signed batches -------------------------------------------------------------------


def _to_webhook(run: _Run, sender: WebhookSender, batch_size: int) -> ExportManifest:
    m = run.manifest
    pending: list[dict[str, str | None]] = []
    exported: dict[str, str] = {}  # receipts of the rows delivered so far

    def deliver(rows: list[dict[str, str | None]]) -> None:
        index = len(m.batches)
        key = f"{m.export_id}-{index:06d}"
        payload = {
            "export_id": m.export_id,
            "segment": m.segment,
            "purpose": m.purpose,
            "channel": m.channel,
            "at": m.at.isoformat(),
            "batch": index,
            "columns": list(m.columns),
            "rows": rows,
        }
        sender.send(key, payload, {"X-C360-Export-Id": m.export_id})
        m.batches.append(key)
        m.counts.exported += len(rows)
        for row in rows:
            cid = str(row["customer_id"])
            exported[cid] = m.receipts[cid]

    try:
        for rows in _rows(run):
            pending.extend(rows)
            while len(pending) >= batch_size:
                deliver(pending[:batch_size])
                del pending[:batch_size]
        if pending:
            deliver(pending)
    except C360Error as exc:
        m.receipts, m.error = exported, str(exc)
        if isinstance(exc, ExportIncompleteError):
            raise
        raise ExportIncompleteError(
            f"export {m.export_id} stopped after {len(m.batches)} batch(es) delivered: {exc}", m
        ) from exc
    m.complete = True
    return m
