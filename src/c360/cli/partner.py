"""``c360 partner``: the API keys of partners that post events."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..deps import partner_keys
from .common import audited, err, out

partner_app = typer.Typer(help="Partners that post events: API keys, stored hashed.", no_args_is_help=True)


@partner_app.command("add")
def partner_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Partner name (lower case), also its default event source.")],
    sources: Annotated[str | None, typer.Option(help="Event sources it may send as (comma-separated).")] = None,
    rotate: Annotated[bool, typer.Option(help="Replace the key of an existing partner.")] = False,
) -> None:
    """Issue a partner's API key. The key is printed once; only its hash is kept."""
    allowed = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    action = "partner_rotate_key" if rotate else "partner_add"
    with audited(ctx.obj.settings, action, name, change=True) as note:
        note.detail = f"sources {','.join(allowed or [name])}"
        key = partner_keys(ctx.obj.settings).issue(name, allowed, replace=rotate)
    err.print(f"partner {name}: keep this key, it is not stored and cannot be shown again")
    out.print(key)


@partner_app.command("list")
def partner_list(ctx: typer.Context) -> None:
    """List partners and the sources they may send as."""
    with audited(ctx.obj.settings, "read_partners", None) as note:
        partners = partner_keys(ctx.obj.settings).list()
        note.detail = f"{len(partners)} partners"
    table = Table("name", "sources", "created", "key sha256 (prefix)")
    for p in partners:
        table.add_row(p.name, ",".join(p.sources), p.created_at.isoformat(timespec="seconds"), p.key_sha256[:12])
    out.print(table if partners else "no partners")


@partner_app.command("revoke")
def partner_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Partner name.")]) -> None:
    """Remove a partner: its key stops working at once."""
    with audited(ctx.obj.settings, "partner_revoke", name, change=True):
        partner_keys(ctx.obj.settings).revoke(name)
    out.print(f"partner {name} revoked")
