"""``c360 outbox``: send what the outbox holds, see it, bring dead messages back.

The worker (:class:`~c360.streams.outbox.OutboxWorker`) sends through the transports configured under
``notify`` (``notify.email`` for SMTP, ``notify.sms`` for the SMS API); a channel without one stays queued.
Several workers may run at once: a message is leased to one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from c360.graph.outbox import STATUSES

from ..deps import outbox_worker
from .common import audited, err, fail, out, store_of

outbox_app = typer.Typer(help="The notification outbox: send, show, requeue.", no_args_is_help=True)


@outbox_app.command("run")
def outbox_run(
    ctx: typer.Context,
    budget: Annotated[float, typer.Option(min=1, help="Stop after this many seconds.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Send one batch of what is due, then stop.")] = False,
) -> None:
    """Send the due messages until the budget runs out (or once); print what happened."""
    settings = ctx.obj.settings
    with store_of(ctx) as store:
        worker = outbox_worker(settings, store)
        if not worker.channels:
            fail("no transport is configured (notify.email, notify.sms): nothing can be sent; messages stay queued")
        for channel in worker.unsendable:
            err.print(f"no {channel} transport: {channel} messages stay queued")
        counts = worker.run_once() if once else worker.run(budget)
    out.print(", ".join(f"{k} {v}" for k, v in counts.items()))


@outbox_app.command("status")
def outbox_status(ctx: typer.Context) -> None:
    """How many messages are pending, sending, sent and dead."""
    with store_of(ctx) as store:
        counts = store.outbox_counts()
    out.print(", ".join(f"{s} {counts.get(s, 0):,}" for s in STATUSES))


@outbox_app.command("list")
def outbox_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(help="pending, sending, sent or dead.")] = "dead",
    first: Annotated[int, typer.Option(min=1, max=1000, help="Messages to show.")] = 50,
    after: Annotated[str | None, typer.Option(help="Show messages after this id.")] = None,
) -> None:
    """Messages of one status with their attempts and last error (recipients are personal data: audited)."""
    if status not in STATUSES:
        fail(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}")
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "read_outbox", status):
        items = store.outbox_messages(status, after=after, limit=first)
    table = Table("id", "kind", "channel", "to", "attempts", "next attempt", "last error")
    for item in items:
        m = item.message
        nxt = item.next_attempt_at.isoformat(timespec="seconds") if item.next_attempt_at else ""
        table.add_row(m.id, m.kind, m.channel, m.to, str(item.attempts), nxt, item.last_error or "")
    out.print(table)


@outbox_app.command("requeue")
def outbox_requeue(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Ids of dead messages to send again.")],
    by: Annotated[str | None, typer.Option(help="Who requeues (default: the OS user).")] = None,
) -> None:
    """Make dead messages pending again, their attempts back to zero."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "requeue_outbox", ",".join(ids)[:200], by=by, change=True) as note:
        done = store.requeue(ids, datetime.now(UTC))
        note.detail = f"{len(done)} requeued"
    skipped = sorted(set(ids) - set(done))
    out.print(f"{len(done)} requeued" + (f"; not dead, left as they are: {', '.join(skipped)}" if skipped else ""))
