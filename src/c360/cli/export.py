"""``c360 export``: what the graph holds, as files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from c360.graph.errors import InvalidInputError

from .common import audited, out, store_of

export_app = typer.Typer(help="Export what the graph holds.", no_args_is_help=True)


@export_app.command("links")
def export_links(ctx: typer.Context, output: Annotated[Path, typer.Option(help="CSV file to write.")]) -> None:
    """Write source,source_key,customer_id for every source record."""
    with store_of(ctx) as store, audited(ctx.obj.settings, "export_links", str(output)) as note:
        try:
            fh = output.open("w", newline="", encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot write {output}: {exc.strerror}") from exc
        with fh:
            writer = csv.writer(fh)
            writer.writerow(["source", "source_key", "customer_id"])
            n = 0
            for row in store.iter_links():
                writer.writerow(row)
                n += 1
        note.detail = f"{n} links"
    out.print(f"wrote {n} links to {output}", highlight=False)
