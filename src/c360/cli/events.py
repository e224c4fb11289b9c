"""``c360 events``: the event schemas, and sending events through the in-process pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from c360.graph.errors import InvalidInputError
from c360.streams.events import export_schemas
from c360.streams.runner import Runner, Totals

from ..deps import build_pipeline, build_store
from .common import audited, err, out

events_app = typer.Typer(help="Event schemas and sending events through the pipeline.", no_args_is_help=True)


@events_app.command("schema")
def events_schema(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the JSON Schemas to.")]) -> None:
    """Write the JSON Schema of every event type (versioned file names)."""
    for path in export_schemas(out_dir):
        out.print(str(path))


def _read_events(path: Path) -> list[Any]:
    """A JSON array or JSON lines; a line that is not JSON stays text, so it becomes a dead letter."""
    if str(path) != "-" and not path.is_file():
        raise InvalidInputError(f"no such file: {path}")
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}: not a JSON array: {exc}") from exc
        return list(data)
    payloads: list[Any] = []
    for line in text.splitlines():
        if line.strip():
            try:
                payloads.append(json.loads(line))
            except json.JSONDecodeError:
                payloads.append(line)
    return payloads


@events_app.command("send")
def events_send(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="JSON array or JSON lines of events ('-' reads stdin).")],
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Events per transaction.")] = 500,
) -> None:
    """Apply events through the in-process pipeline (as partners' HTTP posts and the Faust agents do).

    Exits 1 when any event was rejected; rejected events are in the dead-letter store (c360 dlq list).
    """
    settings = ctx.obj.settings
    with audited(settings, "send_events", str(path), change=True) as note:
        payloads = _read_events(path)
        store = build_store(settings)
        try:
            runner = Runner(build_pipeline(settings, store), batch_size=batch_size)
            seen = 0

            def rejected_so_far(totals: Totals) -> None:
                nonlocal seen
                for r in totals.rejected[seen:]:
                    err.print(f"rejected event {r.index} ({r.event_id or 'no id'}): {r.reason} -> {r.dead_letter}")
                seen = len(totals.rejected)

            t = runner.run(payloads, progress=rejected_so_far)
        finally:
            store.close()
        note.detail = f"{t.events} events: {t.accepted} applied, {t.duplicates} seen before, {len(t.rejected)} rejected"
    rejected = len(t.rejected)
    out.print(f"{t.events:,} events: {t.accepted:,} applied, {t.duplicates:,} seen before, {rejected:,} rejected")
    if t.rejected:
        raise typer.Exit(1)
