"""``c360 cases``: open, list and show service cases; recompute SLA dues; warn about cases at risk.

Cases change only through :class:`~c360.graph.case_desk.CaseDesk` (the API uses the same desk). Every
command is audited; ``open``, ``recompute`` and ``warn`` as changes.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from c360.graph.case_desk import CaseView
from c360.graph.consent import parse_instant
from c360.graph.errors import InvalidInputError

from ..deps import case_desk
from .common import audited, err, fail, out, print_json, store_of, who

cases_app = typer.Typer(help="Service cases: open, list, show; SLA dues and warnings.", no_args_is_help=True)


def _view_json(view: CaseView) -> dict[str, Any]:
    c, sla = view.case, view.clocks

    def clock(name: str) -> dict[str, Any]:
        k = getattr(sla, name)
        return {
            "state": k.state,
            "elapsed": str(k.elapsed),
            "remaining": str(k.remaining),
            "due_at": k.due_at.isoformat() if k.due_at else None,
            "breached_at": k.breached_at.isoformat() if k.breached_at else None,
        }

    return {
        "id": c.id,
        "customer_id": c.customer_id,
        "record": c.record_uid,
        "type": c.type,
        "priority": c.priority,
        "channel": c.channel,
        "status": c.status,
        "subject": c.subject,
        "assignee": c.assignee,
        "team": c.team,
        "created_at": c.created_at.isoformat(),
        "sla": {
            "state": view.due.sla_state,
            "first_response": clock("first_response"),
            "resolution": clock("resolution"),
        },
        "history": [
            {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "data": dict(e.data)} for e in view.events
        ],
    }


@cases_app.command("open")
def cases_open(
    ctx: typer.Context,
    customer: Annotated[str, typer.Option("--customer", help="The customer's id.")],
    type_: Annotated[str, typer.Option("--type", help="A case type of cases.types.")],
    subject: Annotated[str, typer.Option(help="One line: what it is about.")],
    priority: Annotated[str, typer.Option(help="A priority of cases.priorities.")] = "normal",
    channel: Annotated[str, typer.Option(help="A channel of cases.channels.")] = "phone",
    description: Annotated[str | None, typer.Option(help="The details.")] = None,
    team: Annotated[str | None, typer.Option(help="The team that works it.")] = None,
    assignee: Annotated[str | None, typer.Option(help="The person who works it.")] = None,
    order: Annotated[str | None, typer.Option(help="An order of the customer it is about.")] = None,
    event_id: Annotated[str | None, typer.Option(help="Idempotency key: the same id opens once.")] = None,
    by: Annotated[str | None, typer.Option(help="Who opens it (default: the OS user).")] = None,
) -> None:
    """Open a case for a customer."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "open_case", customer, by=by, change=True) as note:
        view = case_desk(settings, store).open(
            customer_id=customer,
            actor=who(by),
            type=type_,
            priority=priority,
            channel=channel,
            subject=subject,
            description=description,
            team=team,
            assignee=assignee,
            order_id=order,
            event_id=event_id,
        )
        note.detail = f"case {view.case.id}"
    print_json(_view_json(view))


@cases_app.command("show")
def cases_show(
    ctx: typer.Context,
    case_id: Annotated[str, typer.Argument(help="The case id.")],
    at: Annotated[str | None, typer.Option(help="Clocks at this ISO 8601 time with its zone (default now).")] = None,
) -> None:
    """A case with its history and its SLA clocks, as JSON."""
    settings = ctx.obj.settings
    try:
        when = parse_instant("--at", at)
    except InvalidInputError as exc:
        fail(str(exc))
    with store_of(ctx) as store, audited(settings, "read_cases", case_id):
        view = case_desk(settings, store).view(case_id, now=when)
    print_json(_view_json(view))


@cases_app.command("list")
def cases_list(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option(help="Cases of this customer (merges followed).")] = None,
    assignee: Annotated[str | None, typer.Option(help="Cases assigned to this person.")] = None,
    team: Annotated[str | None, typer.Option(help="Cases of this team.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses (repeat the option).")] = None,
    order: Annotated[str, typer.Option(help="due (SLA, nearest first), updated or created.")] = "due",
    first: Annotated[int, typer.Option(min=1, max=1000, help="Cases per page.")] = 50,
    after: Annotated[str | None, typer.Option(help="The cursor a previous page printed.")] = None,
) -> None:
    """One page of cases, as a table; the next page's cursor after it."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "read_cases", customer or assignee or team):
        page = store.list_cases(
            customer_id=customer, assignee=assignee, team=team, statuses=status, order=order, first=first, after=after
        )
    table = Table("case", "customer", "type", "priority", "status", "assignee", "team", "SLA", "due")
    for c in page.cases:
        due = page.dues.get(c.id)
        nearest = None if due is None else (due.first_response_due or due.resolution_due)
        state = None if due is None else due.sla_state
        table.add_row(
            c.id, c.customer_id, c.type, c.priority, c.status, c.assignee or "", c.team or "", state or "",
            nearest.isoformat(timespec="minutes") if nearest else "",
        )  # fmt: skip
    out.print(table)
    if page.next_cursor:
        err.print(f"more: --after {page.next_cursor}")


@cases_app.command("recompute")
def cases_recompute(
    ctx: typer.Context,
    budget: Annotated[float, typer.Option(min=1, help="Seconds it may take (a rerun goes on).")] = 600.0,
) -> None:
    """Rewrite the SLA dues of every open case under the calendars and policies configured now."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "update_case", None, change=True) as note:
        seen, changed = case_desk(settings, store).recompute(
            budget_seconds=budget, progress=lambda n: err.print(f"{n:,} open cases", end="\r")
        )
        note.detail = f"{seen} open, {changed} changed"
    out.print(f"{seen:,} open cases, {changed:,} with new dues")


@cases_app.command("warn")
def cases_warn(ctx: typer.Context) -> None:
    """Queue a warning for every running SLA clock at risk now (once per clock and due time)."""
    settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "update_case", None, change=True) as note:
        queued = case_desk(settings, store).warn()
        note.detail = f"{queued} warnings"
    out.print(f"{queued:,} warnings queued")
