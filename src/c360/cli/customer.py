"""``c360 customer``: read, find and split customers, and their history and timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from c360.graph.errors import NotFoundError
from c360.resolution.linker import CustomerIdFactory
from c360.resolution.undo import split

from ..settings import Settings
from .common import audited, fail, out, print_json, store_of, who

customer_app = typer.Typer(help="Read, find, split customers and their history.", no_args_is_help=True)


@customer_app.command("get")
def customer_get(ctx: typer.Context, customer_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print a customer's unified profile as JSON (a merged-away ID resolves to its survivor)."""
    with store_of(ctx) as store, audited(ctx.obj.settings, "read_profile", customer_id):
        profile = store.get_profile(customer_id)
        if profile is None:
            raise NotFoundError(f"no customer {customer_id}")
    print_json(profile.to_json())  # once its audit entry is on disk


@customer_app.command("history")
def customer_history(ctx: typer.Context, customer_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print every merge and split of a customer, oldest first: before, after, records and evidence (JSON)."""
    with store_of(ctx) as store, audited(ctx.obj.settings, "read_history", customer_id):
        if store.get_customer(customer_id) is None:
            raise NotFoundError(f"no customer {customer_id}")
        events = store.history(customer_id)
    print_json([event.to_json() for event in events])


@customer_app.command("timeline")
def customer_timeline(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    first: Annotated[int, typer.Option(min=1, max=1000, help="Events per page.")] = 20,
    after: Annotated[str | None, typer.Option(help="Cursor of the page to read (printed by the last page).")] = None,
    types: Annotated[str | None, typer.Option(help="Only these types, e.g. order,transaction,web_activity.")] = None,
) -> None:
    """Print a customer's orders, transactions and web activity, newest first, one page (JSON)."""
    wanted = [t.strip() for t in types.split(",") if t.strip()] if types else None
    with store_of(ctx) as store, audited(ctx.obj.settings, "read_timeline", customer_id):
        page = store.timeline(customer_id, first=first, after=after, types=wanted)
        active = store.resolve(customer_id)
    print_json(
        {
            "customer": active,
            "events": [
                {"id": e.id, "type": e.type, "occurred_at": e.occurred_at.isoformat(), **json.loads(e.data)}
                for e in page.events
            ],
            "next_cursor": page.next_cursor,
        }
    )


@customer_app.command("split")
def customer_split(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(metavar="ID")],
    records: Annotated[str, typer.Option(help="Records to move out: source|key (or key), comma-separated.")],
    reason: Annotated[str, typer.Option(help="Why they are not the same person (kept in history).")],
    by: Annotated[str | None, typer.Option(help="Who decides (default: the OS user).")] = None,
) -> None:
    """Split records out of a customer into a new one; they will not be merged back automatically."""
    wanted = [r.strip() for r in records.split(",") if r.strip()]
    settings: Settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "split", customer_id, by=by, change=True):
        event = split(
            store,
            customer_id,
            wanted,
            by=who(by),
            reason=reason,
            now=datetime.now(UTC),
            new_id=CustomerIdFactory(),
            survivorship=settings.survivorship,
        )
    out.print(
        f"split {len(event.records)} record(s) from {event.source} into new customer {event.new}; "
        f"they stay apart from the {event.source} records from now on. See: c360 customer history {event.source}",
        highlight=False,
    )


@customer_app.command("find")
def customer_find(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number (national numbers in the default region).")] = None,
    name: Annotated[str | None, typer.Option(help="'First Last', or a last name alone.")] = None,
    national_id: Annotated[str | None, typer.Option(help="National id value.")] = None,
    kind: Annotated[str, typer.Option(help="Kind of --national-id.")] = "ssn",
) -> None:
    """Find customers by email, phone, name or national id; prints JSON summaries."""
    from c360.graphql.profiles_service import find_customer_ids

    given = [v for v in (email, phone, name, national_id) if v is not None]
    if len(given) != 1:
        fail("give exactly one of --email, --phone, --name, --national-id")
    settings: Settings = ctx.obj.settings
    with store_of(ctx) as store, audited(settings, "search_customers", None) as note:
        ids = find_customer_ids(
            store=store,
            default_region=settings.linking.default_region,
            email=email,
            phone=phone,
            name=name,
            national_id=national_id,
            kind=kind,
        )
        results = []
        for cid in ids:
            c = store.get_customer(cid)
            if c is not None:
                results.append(
                    {
                        "id": c.id,
                        **{
                            k: v.to_json()["value"]
                            for k, v in c.golden.items()
                            if k in ("first_name", "last_name", "email", "phone", "city")
                        },
                    }
                )
        note.detail = f"{len(results)} found"
    print_json(results)  # once its audit entry is on disk
