"""``c360 ingest``: source files and data set folders, linked to customers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from c360.connectors.files import FileSource, ReadReport
from c360.connectors.mapping import load_mapping
from c360.connectors.synthetic import MANIFEST, Dataset
from c360.graph.errors import InvalidInputError
from c360.graph.store import GraphStore
from c360.resolution.linker import IngestResult

from ..deps import build_linker
from ..settings import Settings
from .common import err, fail, out, store_of


def _progress() -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


def _ingest_file(
    settings: Settings, store: GraphStore, source: FileSource, label: str, total: int | None
) -> tuple[IngestResult, float]:
    linker = build_linker(settings, store)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task(label, total=total)
        advance: Callable[[int], None] = lambda n: progress.advance(task, n)  # noqa: E731
        result = linker.ingest(source, batch_size=settings.ingest.batch_size, progress=advance)
    return result, time.perf_counter() - started


def _report(name: str, result: IngestResult, report: ReadReport, seconds: float, rejects_path: Path | None) -> None:
    rate = result.received / seconds if seconds > 0 else 0.0
    out.print(
        f"{name}: {report.rows} rows, {result.received} records ({result.inserted} new, {result.updated} updated, "
        f"{result.unchanged} unchanged), {result.new_customers} new customers, {result.merges} merges, "
        f"{len(report.rejects)} rejected, {seconds:.1f}s ({rate:,.0f} records/s)",
        highlight=False,
    )
    if report.unseen_columns:
        out.print(f"  warning: mapped columns that no row has: {', '.join(report.unseen_columns)}", highlight=False)
    if report.warnings:
        summary = ", ".join(f"{f}: {n}" for f, n in sorted(report.warnings.items()))
        out.print(f"  fields left empty because they did not parse: {summary}", highlight=False)
    for ident, reason in result.flagged:
        out.print(f"  flagged {ident}: {reason}", highlight=False)
    if report.rejects and rejects_path is not None:
        report.write_rejects(rejects_path)
        for r in report.rejects[:5]:
            out.print(f"  rejected row {r.row}: {r.reason}", highlight=False)
        more = f" ({len(report.rejects) - 5} more)" if len(report.rejects) > 5 else ""
        out.print(f"  rejects written to {rejects_path}{more}", highlight=False)


def _count_rows(path: Path) -> int | None:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return lines - 1 if path.suffix.lower() == ".csv" else lines


def ingest_dataset(settings: Settings, store: GraphStore, dataset: Dataset) -> IngestResult:
    """Ingest every source of a data set folder, printing a line per source."""
    total = IngestResult()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for sf in dataset.sources:
        fs = FileSource(sf.path, sf.source, dataset.mapping_of(sf))
        result, seconds = _ingest_file(settings, store, fs, sf.source, _count_rows(sf.path))
        _report(
            sf.source,
            result,
            fs.report,
            seconds,
            settings.data_dir / "rejects" / f"{sf.source}-{stamp}.jsonl",
        )
        total.add(result)
    return total


def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV, JSON Lines or Parquet file, or a data set folder.")],
    source: Annotated[str | None, typer.Option(help="Source system name (required for a file).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML column mapping.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Where to write rejected rows (JSON Lines).")] = None,
) -> None:
    """Ingest source records and link them to customers."""
    settings: Settings = ctx.obj.settings
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            fail(f"{path} is a folder without {MANIFEST}; give a file and --source")
        dataset = Dataset.load(path)
        with store_of(ctx) as store:
            ingest_dataset(settings, store, dataset)
            _print_stats(store)
        return
    if not source:
        fail("--source is required when ingesting a file")
    fs = FileSource(path, source, load_mapping(mapping) if mapping else None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    rejects_path = rejects or settings.data_dir / "rejects" / f"{source}-{stamp}.jsonl"
    _check_writable(rejects_path)
    with store_of(ctx) as store:
        result, seconds = _ingest_file(settings, store, fs, source, _count_rows(path))
        _report(source, result, fs.report, seconds, rejects_path)
        _print_stats(store)


def _check_writable(path: Path) -> None:
    """Fail before any data is written if the rejects file could not be written afterwards."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with path.open("a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise InvalidInputError(f"cannot write rejects to {path}: {exc.strerror or exc}") from exc


def _print_stats(store: GraphStore) -> None:
    s = store.stats()
    out.print(
        f"graph: {s.records} records, {s.customers} customers ({s.merged_customers} merged away), "
        f"{s.identifiers} identifiers ({s.flagged_identifiers} flagged)",
        highlight=False,
    )
