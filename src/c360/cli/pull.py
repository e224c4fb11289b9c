"""``c360 pull``: events pulled from source databases, incrementally."""

from __future__ import annotations

from typing import Annotated

import typer

from c360.graph.errors import InvalidInputError

from ..deps import build_pipeline, build_store
from .common import audited, err, out

pull_app = typer.Typer(help="Pull events from source databases, incrementally.", no_args_is_help=True)


@pull_app.command("postgres")
def pull_postgres(
    ctx: typer.Context,
    dsn: Annotated[str, typer.Option(help="libpq DSN or URI, e.g. postgresql://user@127.0.0.1:5432/shop.")],
    source: Annotated[str, typer.Option(help="Event source name the rows' customer ids belong to.")],
    schema: Annotated[str, typer.Option(help="Schema of the retail tables.")] = "public",
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per batch.")] = 1000,
) -> None:
    """Pull new and changed orders (with line items) and transactions since the last run.

    Each batch goes through the pipeline and only then moves the watermark (kept in the data directory),
    so an interrupted pull resumes where it stopped; rows that cannot be mapped become dead letters.
    """
    from pydantic import ValidationError

    from c360.connectors.postgres import FileWatermarks, PostgresSource, PostgresSourceConfig
    from c360.streams.runner import Runner

    try:
        config = PostgresSourceConfig(dsn=dsn, source=source, schema_name=schema, batch_size=batch_size)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidInputError(problems) from None
    settings = ctx.obj.settings
    reader = PostgresSource(config, FileWatermarks(settings.data_dir / "watermarks.json"))
    store = build_store(settings)
    # The entry names the source and schema, never the DSN (it may carry a password).
    try:
        with audited(settings, "pull_postgres", f"{source} ({schema})", change=True) as note:
            runner = Runner(build_pipeline(settings, store), batch_size=batch_size)
            for batch in reader.read():
                outcome = runner.apply(batch.payloads)
                batch.commit()
                for r in outcome.rejected:
                    err.print(f"rejected {batch.table} event {r.event_id or '?'}: {r.reason} -> {r.dead_letter}")
                err.print(f"{batch.table}: {runner.totals.events:,} rows so far, up to {batch.end[0]}")
                t = runner.totals
                note.detail = (
                    f"{t.events} rows: {t.accepted} applied, {t.duplicates} seen before, {len(t.rejected)} rejected"
                )
    finally:
        store.close()
    t = runner.totals
    out.print(
        f"{t.events:,} rows: {t.accepted:,} applied, {t.duplicates:,} seen before, "
        f"{len(t.rejected):,} rejected (c360 dlq list --source {source})"
    )
