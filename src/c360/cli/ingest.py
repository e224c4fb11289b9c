"""``c360 ingest``: source files and data set folders, through the pipeline, linked to customers.

Every row becomes a ``profile_update`` event and goes through the in-process runner, as partners' posts
and the Faust agents' events do; a row that cannot be read or has no key becomes a dead letter with its
file, row number and reason (``c360 dlq list --source NAME``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from c360.connectors.files import FileSource, ReadReport
from c360.connectors.mapping import load_mapping
from c360.connectors.synthetic import MANIFEST, Dataset
from c360.graph.store import GraphStore
from c360.streams.runner import Runner, Totals, file_payloads

from ..deps import build_pipeline
from ..settings import Settings
from .common import audited, err, fail, out, store_of


def _progress() -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _ingest_file(settings: Settings, store: GraphStore, source: FileSource, total: int | None) -> Totals:
    runner = Runner(build_pipeline(settings, store), batch_size=settings.ingest.batch_size)
    with _progress() as progress:
        task = progress.add_task(source.source, total=total)
        runner.run(file_payloads(source), progress=lambda done: progress.update(task, completed=done.events))
    return runner.totals


def _report(name: str, totals: Totals, report: ReadReport) -> None:
    result = totals.ingest
    rate = report.records / totals.seconds if totals.seconds > 0 else 0.0
    out.print(
        f"{name}: {report.rows} rows, {report.records} records ({result.inserted} new, {result.updated} updated, "
        f"{result.unchanged} unchanged, {totals.duplicates} seen before), {result.new_customers} new customers, "
        f"{result.merges} merges, {len(totals.rejected)} rejected, {totals.seconds:.1f}s ({rate:,.0f} records/s)",
        highlight=False,
    )
    if report.unseen_columns:
        out.print(f"  warning: mapped columns that no row has: {', '.join(report.unseen_columns)}", highlight=False)
    if report.warnings:
        summary = ", ".join(f"{f}: {n}" for f, n in sorted(report.warnings.items()))
        out.print(f"  fields left empty because they did not parse: {summary}", highlight=False)
    for ident, reason in result.flagged:
        out.print(f"  flagged {ident}: {reason}", highlight=False)
    for r in totals.rejected[:5]:
        out.print(f"  rejected {r.reason} -> dead letter {r.dead_letter}", highlight=False)
    if totals.rejected:
        more = f"{len(totals.rejected) - 5} more; " if len(totals.rejected) > 5 else ""
        out.print(f"  ({more}all in the dead-letter store: c360 dlq list --source {name})", highlight=False)


def _count_rows(path: Path) -> int | None:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return lines - 1 if path.suffix.lower() == ".csv" else lines


def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV, JSON Lines or Parquet file, or a data set folder.")],
    source: Annotated[str | None, typer.Option(help="Source system name (required for a file).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML column mapping.")] = None,
) -> None:
    """Ingest source records through the pipeline and link them to customers; bad rows become dead letters."""
    settings: Settings = ctx.obj.settings
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            fail(f"{path} is a folder without {MANIFEST}; give a file and --source")
        dataset = Dataset.load(path)
        sources = [(FileSource(sf.path, sf.source, dataset.mapping_of(sf)), sf.path) for sf in dataset.sources]
    elif not source:
        fail("--source is required when ingesting a file")
    else:
        sources = [(FileSource(path, source, load_mapping(mapping) if mapping else None), path)]
    with store_of(ctx) as store:
        for fs, file in sources:
            with audited(settings, "ingest", fs.source, change=True) as note:
                note.detail = f"file {file}"
                totals = _ingest_file(settings, store, fs, _count_rows(file))
                note.detail = f"{_counts(totals, fs.report)}; file {file}"
            _report(fs.source, totals, fs.report)
        _print_stats(store)


def _counts(totals: Totals, report: ReadReport) -> str:
    """What an ingest did, for its audit entry (counts first: a long file name is what gets cut)."""
    r = totals.ingest
    return (
        f"{report.rows} rows, {report.records} records ({r.inserted} new, {r.updated} updated, {r.unchanged} "
        f"unchanged, {totals.duplicates} seen before), {len(totals.rejected)} rejected, {r.new_customers} new "
        f"customers, {r.merges} merges"
    )


def _print_stats(store: GraphStore) -> None:
    s = store.stats()
    out.print(
        f"graph: {s.records} records, {s.customers} customers ({s.merged_customers} merged away), "
        f"{s.identifiers} identifiers ({s.flagged_identifiers} flagged)",
        highlight=False,
    )
