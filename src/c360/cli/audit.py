"""``c360 audit``: the audit trail of profile reads and changes."""

from __future__ import annotations

import typer

from ..deps import audit_log
from .common import fail, out

audit_app = typer.Typer(help="The audit trail of profile reads and changes.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the audit trail's hash chain; name the first entry altered or removed (exit 1 if any)."""
    log = audit_log(ctx.obj.settings)
    result = log.verify()
    if not result.ok:
        fail(f"audit trail broken at entry {result.broken_at}: {result.problem} ({result.entries} entries intact)")
    last = log.last_hash()
    out.print(f"audit trail intact: {result.entries:,} entries; last hash {last}", highlight=False)
