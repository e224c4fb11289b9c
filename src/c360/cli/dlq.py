"""``c360 dlq``: the dead-letter store, listed, shown and replayed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.errors import InvalidInputError
from c360.graph.models import DeadLetter
from c360.streams.pipeline import partner_of
from c360.streams.runner import local_sender

from ..deps import build_pipeline, build_store, partner_keys
from ..settings import Settings
from .common import audited, out

dlq_app = typer.Typer(help="The dead-letter store: events that could not be applied.", no_args_is_help=True)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Replayed ones too.")] = False,
    source: Annotated[str | None, typer.Option(help="Only those of this source (a file's --source, say).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List dead letters, oldest first (their reasons and payloads may hold personal data: audited)."""
    with audited(ctx.obj.settings, "read_dead_letters", source) as note:
        store = build_store(ctx.obj.settings)
        try:
            letters = store.dead_letters(None if all_ else "open", limit, source=source)
        finally:
            store.close()
        note.detail = f"{len(letters)} letters"
    if as_json:
        sys.stdout.write(json.dumps([d.to_json() for d in letters], indent=2) + "\n")
        return
    table = Table("id", "received", "source", "sender", "status", "reason")
    for d in letters:
        received = d.received_at.isoformat(timespec="seconds")
        table.add_row(d.id, received, d.source or "-", d.sender or "(unknown)", d.status, d.reason)
    out.print(table if letters else "no dead letters")


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, letter_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print one dead letter with its payload (JSON); audited, as it may hold personal data."""
    with audited(ctx.obj.settings, "read_dead_letter", letter_id):
        store = build_store(ctx.obj.settings)
        try:
            letter = store.get_dead_letter(letter_id)
        finally:
            store.close()
    sys.stdout.write(json.dumps(letter.to_json(), indent=2) + "\n")


def _allowed_sources(settings: Settings, letter: DeadLetter, accept_unknown_sender: bool) -> tuple[str, ...] | None:
    """The sources a letter may be replayed as: its sender's rights now (None: any, an operator's own input).

    A partner's letter replays only with the sources the partner may send as today; a token user's with
    none (users do not post events); a letter from before senders were recorded only when the operator
    vouches for it.
    """
    sender = letter.sender
    if sender is None:
        if not accept_unknown_sender:
            raise InvalidInputError(
                f"dead letter {letter.id} does not say who sent it (kept before senders were recorded); "
                "replay it with --accept-unknown-sender only if you vouch for its source"
            )
        return None
    partner = partner_of(sender)
    if partner is not None:
        known = {p.name: p for p in partner_keys(settings).list()}.get(partner)
        if known is None:
            raise InvalidInputError(f"dead letter {letter.id} was sent by partner {partner}, which no longer exists")
        return known.sources
    if sender.startswith("user:"):
        return ()
    return None  # cli:<user>, kafka: what the operator's own processes read


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    letter_id: Annotated[str, typer.Argument(metavar="ID")],
    payload_file: Annotated[
        Path | None, typer.Option("--payload", help="A corrected payload (JSON file) to apply instead.")
    ] = None,
    accept_unknown_sender: Annotated[
        bool,
        typer.Option(
            "--accept-unknown-sender", help="Replay a letter kept before senders were recorded (you vouch for it)."
        ),
    ] = False,
) -> None:
    """Apply a dead letter again (after the cause was fixed, or with a corrected payload) and mark it replayed.

    If it is still invalid nothing is written and the letter stays open. The sender's rights are checked
    again: a partner's letter replays only as a source that partner may send as. Every replay and every
    refusal is audited.
    """
    settings: Settings = ctx.obj.settings
    with audited(settings, "dlq_replay", letter_id, change=True):
        store = build_store(settings)
        try:
            letter = store.get_dead_letter(letter_id)
            if letter.status != "open":
                raise InvalidInputError(f"dead letter {letter_id} was already {letter.status}")
            text = payload_file.read_text(encoding="utf-8") if payload_file else letter.payload
            try:
                payload: Any = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise InvalidInputError(f"dead letter {letter_id} is still not JSON: {exc}") from exc
            sources = _allowed_sources(settings, letter, accept_unknown_sender)
            sender = letter.sender or local_sender()
            pipeline = build_pipeline(settings, store)
            _, rejected, _ = pipeline.validate([payload], sources=sources, sender=sender)
            if rejected:
                reason = rejected[0].reason
                if sources is not None and reason.startswith("source "):
                    may = ", ".join(sources) or "no source"
                    raise InvalidInputError(
                        f"dead letter {letter_id} is refused: its sender {sender} may send as {may} only ({reason})"
                    )
                raise InvalidInputError(f"dead letter {letter_id} is still invalid: {reason}")
            outcome = pipeline.process([payload], sources=sources, sender=sender)
            store.mark_replayed(letter_id)
        finally:
            store.close()
    done = "applied" if outcome.accepted else "already applied before (nothing changed)"
    out.print(f"dead letter {letter_id} replayed: {done}")
