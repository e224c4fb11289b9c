"""``c360 lens``: semantic queries over the ML snapshot (measures, dimensions, filters, a limit)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError

from .common import audited, out, print_json, store_of

lens_app = typer.Typer(help="Semantic queries over the ML snapshot (the lens).", no_args_is_help=True)


def _names(values: list[str] | None) -> list[str]:
    """Member names given as repeated options or comma-separated, in order."""
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def parse_filter(text: str) -> dict[str, Any]:
    """``member:op:value[,value...]`` as a query filter (the value may hold colons, as times do)."""
    member, sep, rest = text.partition(":")
    op, sep2, values = rest.partition(":")
    if not sep or not sep2 or not member.strip() or not op.strip():
        raise InvalidInputError(f"--filter {text!r}: give member:operator:value[,value...], e.g. state:equals:CA")
    return {"member": member.strip(), "op": op.strip(), "values": [v.strip() for v in values.split(",")]}


def parse_order(text: str) -> dict[str, str]:
    """``member[:asc|desc]`` as a query ordering."""
    member, _, direction = text.rpartition(":") if text.endswith((":asc", ":desc")) else (text, "", "asc")
    return {"member": member.strip(), "direction": direction}


@lens_app.command("query")
def lens_query(
    ctx: typer.Context,
    measures: Annotated[
        list[str] | None, typer.Option("--measures", "-m", help="Measures (entity.member; repeat or comma-separate).")
    ] = None,
    dimensions: Annotated[
        list[str] | None, typer.Option("--dimensions", "-d", help="Dimensions to group by (repeat or comma-separate).")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", "-f", help="member:operator:value[,value...], e.g. customer.state:equals:CA."),
    ] = None,
    order: Annotated[list[str] | None, typer.Option(help="member[:asc|desc]; repeat for ties.")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Rows at most (default and cap: the model's max_limit).")
    ] = None,
    as_of: Annotated[datetime | None, typer.Option(help="Day counts run to this UTC time (default: now).")] = None,
    model: Annotated[Path | None, typer.Option(help="Lens YAML (default: the bundled lens.yaml).")] = None,
    segments: Annotated[
        Path | None,
        typer.Option(help="Segment definitions whose names label segment.name (default: the bundled segments.yaml)."),
    ] = None,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of the snapshot (its parquet/ files; default: DATA_DIR/ml)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.001, help="Seconds the query may run (default: the API's api.lens_timeout)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print rows as JSON, with the SQL and its parameters.")
    ] = False,
    show_sql: Annotated[bool, typer.Option("--sql", help="Print the SQL and its parameters too.")] = False,
) -> None:
    """Answer a lens query from the snapshot and the store's segments, e.g. customers by segment in California.

    ``c360 lens query -m customer.count -d segment.name -f state:equals:CA``

    The same code path as the API's lens (:mod:`c360.ml.lens_source`): the snapshot's Parquet files (the
    snapshot file is never opened, so a running ``c360 ml snapshot`` is not stopped) and the store's
    segment memberships, within a time budget.
    """
    from c360.ml.lens import parse_query
    from c360.ml.lens_source import lens_source

    settings = ctx.obj.settings
    query: dict[str, Any] = {
        "measures": _names(measures),
        "dimensions": _names(dimensions),
        "filters": [parse_filter(f) for f in filters or []],
        "order": [parse_order(o) for o in order or []],
        "limit": limit,
    }
    if as_of is not None:
        query["as_of"] = as_of.isoformat() + ("" if as_of.tzinfo else "+00:00")
    folder = snapshot_dir or settings.data_dir / "ml"
    budget = settings.api.lens_timeout if timeout is None else timeout
    source = lens_source(folder, timeout=budget, model_path=model, segments_path=segments)
    with audited(settings, "lens_query", str(folder)) as note:
        parsed = parse_query(query)
        source.require_snapshot()  # before the store is opened: the first thing to do is a snapshot
        with store_of(ctx) as store:
            try:
                result = source.run(parsed, store)
            finally:
                source.close()
        note.detail = f"{len(result.rows)} rows: {', '.join(result.columns)}"
    if as_json:
        print_json({"columns": list(result.columns), "rows": result.records(), "sql": result.sql,
                    "params": {k: str(v) for k, v in result.params.items()}, "seconds": result.seconds})  # fmt: skip
        return
    table = Table(*result.columns)
    for record in result.records():
        table.add_row(*("" if v is None else str(v) for v in record.values()))
    out.print(table)
    out.print(f"{len(result.rows)} rows in {result.seconds * 1000:.1f} ms", highlight=False)
    if show_sql:
        out.print(result.sql, highlight=False)
        out.print(f"parameters: {dict(result.params)}", highlight=False)
