"""``c360 audit``: the audit trail of reads, changes and refusals: verify it, ship its head, rotate its key."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from ..deps import audit_log
from .common import err, fail, out, who

audit_app = typer.Typer(help="The audit trail of reads, changes and refusals.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    head: Annotated[
        str | None,
        typer.Option(help="A head kept elsewhere (COUNT:HASH, or a line of c360 audit head): the log must hold it."),
    ] = None,
) -> None:
    """Check every entry's seal and the chain, the anchor beside the log, and a head kept elsewhere.

    Prints the head (entry count and last hash); exit 1 naming the first entry altered, removed,
    forged or cut off.
    """
    from c360.graphql.audit import Head

    kept = Head.parse(head) if head is not None else None
    result = audit_log(ctx.obj.settings).verify(kept)
    for notice in result.notices:
        err.print(f"notice: {notice}", highlight=False)
    if not result.ok:
        fail(
            f"audit trail broken at entry {result.broken_at}: {result.problem} "
            f"({result.entries} entries intact; their head {result.head})"
        )
    if result.unsealed:
        err.print(f"note: the first {result.unsealed} entries predate sealing (hash-chained only)", highlight=False)
    checked = f"; matches the head given ({kept})" if kept is not None else ""
    out.print(f"audit trail intact: {result.entries:,} entries; head {result.head}{checked}", highlight=False)


@audit_app.command("head")
def audit_head(ctx: typer.Context) -> None:
    """Print the head (count and last hash) as one JSON line, to ship to a log kept elsewhere.

    A head kept where the audit trail's writers cannot change it is what catches a log cut back:
    ``c360 audit verify --head COUNT:HASH`` (or the printed line).
    """
    log = audit_log(ctx.obj.settings)
    head = log.head()
    line = {
        "c360_audit_head": str(head),
        "count": head.count,
        "hash": head.hash,
        "log": str(log.path),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out.print(json.dumps(line), highlight=False, soft_wrap=True)


@audit_app.command("rotate-key")
def audit_rotate_key(
    ctx: typer.Context,
    by: Annotated[str | None, typer.Option(help="Who rotates (default: the OS user).")] = None,
) -> None:
    """Make a new audit key current; the old ones stay in the key ring so older entries still verify.

    From now on entries are sealed with the new key, and an entry sealed with an older one is refused
    (a leaked old key cannot add entries). The rotation is itself an entry.
    """
    log = audit_log(ctx.obj.settings)
    kid = log.rotate_key(actor=who(by))
    out.print(f"audit key {kid} is current (key ring {log.keys_path}); older keys stay for verification")
