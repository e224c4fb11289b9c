"""``c360 dlq``: the dead-letter store, listed, shown and replayed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError

from ..deps import build_pipeline, build_store
from .common import out

dlq_app = typer.Typer(help="The dead-letter store: events that could not be applied.", no_args_is_help=True)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Replayed ones too.")] = False,
    source: Annotated[str | None, typer.Option(help="Only those of this source (a file's --source, say).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List dead letters, oldest first."""
    store = build_store(ctx.obj.settings)
    try:
        letters = store.dead_letters(None if all_ else "open", limit, source=source)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps([d.to_json() for d in letters], indent=2) + "\n")
        return
    table = Table("id", "received", "source", "status", "reason")
    for d in letters:
        table.add_row(d.id, d.received_at.isoformat(timespec="seconds"), d.source or "-", d.status, d.reason)
    out.print(table if letters else "no dead letters")


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, letter_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print one dead letter with its payload (JSON)."""
    store = build_store(ctx.obj.settings)
    try:
        sys.stdout.write(json.dumps(store.get_dead_letter(letter_id).to_json(), indent=2) + "\n")
    finally:
        store.close()


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(metavar="ID")],
    payload_file: Annotated[
        Path | None, typer.Option("--payload", help="A corrected payload (JSON file) to apply instead.")
    ] = None,
) -> None:
    """Apply a dead letter again (after the cause was fixed, or with a corrected payload) and mark it replayed.

    If it is still invalid nothing is written and the letter stays open.
    """
    store = build_store(ctx.obj.settings)
    try:
        letter = store.get_dead_letter(letter_id)
        if letter.status != "open":
            raise InvalidInputError(f"dead letter {letter_id} was already {letter.status}")
        text = payload_file.read_text(encoding="utf-8") if payload_file else letter.payload
        try:
            payload: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"dead letter {letter_id} is still not JSON: {exc}") from exc
        pipeline = build_pipeline(ctx.obj.settings, store)
        _, rejected, _ = pipeline.validate([payload])
        if rejected:
            raise InvalidInputError(f"dead letter {letter_id} is still invalid: {rejected[0].reason}")
        outcome = pipeline.process([payload])
        store.mark_replayed(letter_id)
    finally:
        store.close()
    done = "applied" if outcome.accepted else "already applied before (nothing changed)"
    out.print(f"dead letter {letter_id} replayed: {done}")
