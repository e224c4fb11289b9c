"""``c360 ml``: the marketers' ML over a DuckDB snapshot of the store.

``c360 ml snapshot`` writes the store's active customers and journeys into ``DATA_DIR/ml/snapshot.duckdb``
with a Parquet file per table under ``DATA_DIR/ml/parquet/``; a second run reads only what changed.
``rfm``, ``train``, ``score`` and ``models`` are in :mod:`.ml_models`.
"""

from __future__ import annotations

from typing import Annotated

import duckdb
import typer
from rich.table import Table

from c360.graph.errors import C360Error
from c360.ml.snapshot import SnapshotReport, snapshot

from .common import audited, err, fail, out, print_json, store_of
from .ml_audiences import ml_clusters, ml_lookalike
from .ml_export import ml_export
from .ml_models import ml_models, ml_rfm, ml_score, ml_train
from .ml_refresh import ml_refresh
from .ml_segments import segments_app

ml_app = typer.Typer(help="Marketers' ML: the DuckDB snapshot of the store.", no_args_is_help=True)
ml_app.add_typer(segments_app, name="segments")
ml_app.command("rfm")(ml_rfm)
ml_app.command("train")(ml_train)
ml_app.command("score")(ml_score)
ml_app.command("models")(ml_models)
ml_app.command("refresh")(ml_refresh)
ml_app.command("export")(ml_export)
ml_app.command("lookalike")(ml_lookalike)
ml_app.command("clusters")(ml_clusters)


@ml_app.callback()
def ml_group() -> None:
    """Marketers' ML: the DuckDB snapshot of the store."""


@ml_app.command("snapshot")
def ml_snapshot(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Start again from an empty snapshot.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    budget: Annotated[
        float | None, typer.Option(min=0.001, help="Stop cleanly after this many seconds; the next run goes on.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress lines.")] = False,
) -> None:
    """Bring the snapshot up to date with the store (customers, orders, line items, transactions, web events)."""
    settings = ctx.obj.settings
    folder = settings.data_dir / "ml"
    with store_of(ctx) as store, audited(settings, "ml_snapshot", str(folder), change=True) as note:
        try:
            report = snapshot(
                store,
                folder,
                full=full,
                budget_seconds=budget,
                progress=None if quiet or as_json else (lambda line: err.print(line)),
            )
        except (C360Error, duckdb.Error, OSError) as exc:
            note.detail = f"{type(exc).__name__}: {exc}"
            fail(f"snapshot failed: {exc}")
        note.detail = _summary(report)
    if as_json:
        print_json(report.to_json())
        return
    table = Table("table", "read", "inserted", "updated", "deleted")
    for name, c in report.tables.items():
        table.add_row(name, f"{c.read:,}", f"{c.inserted:,}", f"{c.updated:,}", f"{c.deleted:,}")
    out.print(table)
    out.print(_summary(report))


def _summary(report: SnapshotReport) -> str:
    state = "complete" if report.complete else "stopped by the time budget (run again to go on)"
    return (
        f"{report.mode} snapshot {state}: {report.customers_read:,} customer and {report.events_read:,} "
        f"event changes read in {report.seconds:.1f} s"
    )
