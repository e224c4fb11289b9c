"""``c360 ml export SEGMENT``: a segment's consented members to CSV, Parquet or a signed webhook.

Only members whose effective consent to ``--purpose`` on ``--channel`` is granted at ``--at`` (default
now) are exported, with their address on the channel (:mod:`c360.ml.activation`). A file export writes
``<file>.manifest.json`` beside the file; a webhook export prints its manifest with ``--json``. The
webhook's secret is read from the environment variable ``--secret-env`` names. Every export is audited
(action ``ml_export``, the segment as target, the counts in the detail). Exit codes: 0 done, 1 refused
or failed (a webhook export that stopped part-way prints the manifest of what was delivered), 2 bad
options or a segment that is neither defined (``segments.yaml``) nor in the store.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from c360.graph.consent import parse_instant
from c360.graph.errors import C360Error, InvalidInputError
from c360.graph.store import GraphStore
from c360.ml.activation import FORMATS, ExportIncompleteError, ExportManifest, export_segment, manifest_path
from c360.ml.segments import load_segments

from .common import audited, err, fail, out, print_json, store_of

#: the environment variable that holds the webhook secret unless --secret-env names another
SECRET_ENV = "C360_WEBHOOK_SECRET"


def known_segment(store: GraphStore, segment_id: str) -> bool:
    """Whether ``segment_id`` is a rule segment of ``segments.yaml`` or has members in the store."""
    return any(s.id == segment_id for s in load_segments()) or segment_id in store.segment_counts()


def _tally(m: ExportManifest) -> str:
    excluded = ", ".join(f"{k} {v}" for k, v in m.counts.excluded.items() if v) or "nobody"
    batches = f", {len(m.batches)} batch(es) delivered" if m.format == "webhook" else ""
    return f"{m.counts.members} members, {m.counts.exported} exported{batches}; left out: {excluded}"


def _counts(m: ExportManifest) -> str:
    """The export in one line, for the terminal."""
    return (
        f"export {m.export_id} of {m.segment} for {m.purpose} by {m.channel} at {m.at.isoformat()} "
        f"to {m.format} {m.destination}: {_tally(m)}"
    )


def _detail(m: ExportManifest, stopped: str | None = None) -> str:
    """The audit entry's detail (the log keeps 256 characters): what stopped it, the counts, the destination."""
    head = f"stopped: {stopped}; " if stopped else ""
    return f"{head}{m.purpose} by {m.channel}, export {m.export_id}: {_tally(m)}; to {m.format} {m.destination}"


def ml_export(
    ctx: typer.Context,
    segment: Annotated[str, typer.Argument(help="The segment id.")],
    purpose: Annotated[str, typer.Option("--purpose", help="The purpose the export is for, e.g. marketing.")],
    channel: Annotated[str, typer.Option("--channel", help="The channel: email, sms or phone.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or webhook.")],
    to: Annotated[str, typer.Option("--to", help="The file to write, or the webhook URL (https; http on loopback).")],
    at: Annotated[
        str | None, typer.Option("--at", help="The instant consent is judged at (ISO 8601; default now).")
    ] = None,
    fields: Annotated[
        list[str] | None, typer.Option("--field", help="A golden field to add as a column (repeatable).")
    ] = None,
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="The environment variable holding the webhook's secret.")
    ] = SECRET_ENV,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10_000, help="Rows per webhook POST.")] = 500,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
    budget: Annotated[float, typer.Option("--budget", min=0.001, help="Give up after this many seconds.")] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Export a segment's members who consented to PURPOSE on CHANNEL; the others are left out and counted."""
    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}", 2)
    try:
        when = parse_instant("--at", at) or datetime.now(UTC)
    except InvalidInputError as exc:
        fail(str(exc), 2)
    secret: bytes | None = None
    if fmt == "webhook":
        value = os.environ.get(secret_env)
        if not value:
            fail(f"a webhook export needs its secret in the environment variable {secret_env}", 2)
        secret = value.encode("utf-8")
    settings = ctx.obj.settings

    def say(line: str) -> None:
        if not quiet:
            err.print(line, highlight=False)

    manifest: ExportManifest | None = None
    with store_of(ctx) as store, audited(settings, "ml_export", segment) as note:
        note.detail = f"{fmt} export of {segment} for {purpose} by {channel} to {to}"
        if not known_segment(store, segment):
            fail(f"unknown segment {segment!r}: neither a rule segment of segments.yaml nor a segment in the store", 2)
        try:
            manifest = export_segment(
                store,
                segment,
                purpose=purpose,
                channel=channel,
                fmt=fmt,  # type: ignore[arg-type]  # checked against FORMATS above
                destination=to if fmt == "webhook" else Path(to),
                at=when,
                fields=fields or (),
                purposes=settings.consent.purposes,
                secret=secret,
                batch_size=batch_size,
                overwrite=overwrite,
                budget_seconds=budget,
                progress=say,
            )
        except ExportIncompleteError as exc:
            note.detail = _detail(exc.manifest, str(exc))
            if as_json:
                print_json(exc.manifest.to_json())
            fail(f"{exc} ({len(exc.manifest.batches)} batch(es), {exc.manifest.counts.exported} rows delivered)")
        except InvalidInputError as exc:
            note.detail = f"{exc}; {note.detail}"
            fail(str(exc), 2)
        except C360Error:
            raise  # audited as refused; printed by the root's error handler
        except OSError as exc:
            note.detail = f"{type(exc).__name__}: {exc}; {note.detail}"
            fail(f"export failed: {exc}")
        note.detail = _detail(manifest)
    if as_json:
        print_json(manifest.to_json())
        return
    out.print(_counts(manifest), highlight=False)
    if fmt != "webhook":
        out.print(f"manifest: {manifest_path(Path(to))} (sha256 {manifest.sha256})", highlight=False)
