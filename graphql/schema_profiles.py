# ruff: noqa: D101, D102
# mypy: disallow-untyped-decorators=False
"""The profiles domain of the schema: customers, their golden record, journeys, search, explain, merge and split."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import cast

import orjson
import strawberry
from c360.graph import models
from c360.graph.models import Profile
from c360.streams.events import JOURNEY_TYPES
from strawberry.scalars import JSON

from . import ml_service, profiles_service, review_service, schema_ml
from .principal import ForbiddenError
from .schema_common import Info, PageInfo, page_info, text
from .schema_ml import InsightNode, SegmentMembershipNode
from .schema_review import ReviewItemNode
from .service import ProfileService


@strawberry.type(
    description="One golden field: its value as your role may see it, and where it came from (source_key masked "
    "by role: record keys may be personal data)."
)
class GoldenField:
    name: str
    value: str
    source: str | None
    source_key: str | None
    rule: str | None


@strawberry.type(name="Identifier", description="A normalised identifier of the customer (masked by role).")
class IdentifierNode:
    kind: str
    value: str
    flagged: bool


@strawberry.type
class FieldValue:
    name: str
    value: str


@strawberry.type(
    name="SourceRecord",
    description="A record of a source system linked to the customer; key and uid are masked by role (a source may "
    "be keyed by email): roles that see them hashed give these uids back to explain and split.",
)
class SourceRecordNode:
    uid: str
    source: str
    key: str
    observed_at: datetime
    fields: list[FieldValue]
    identifiers: list[str]
    link: JSON


@strawberry.type(description="A merge or a split of the customer, with its evidence.")
class HistoryEntry:
    kind: str
    at: datetime
    data: JSON


@strawberry.type(description="A journey event; its id and the record key it names (customer_key) are masked by role.")
class TimelineEvent:
    id: str
    type: str
    occurred_at: datetime
    data: JSON


@strawberry.type
class TimelinePage:
    events: list[TimelineEvent]
    page_info: PageInfo


@strawberry.type
class LineItem:
    line_id: str
    product_id: str
    quantity: int
    unit_price: str
    discount: str


@strawberry.type
class Order:
    order_id: str
    occurred_at: datetime
    source: str
    status: str
    channel: str
    currency: str
    total: str
    line_items: list[LineItem]


@strawberry.type
class OrderPage:
    orders: list[Order]
    page_info: PageInfo


@strawberry.type
class Transaction:
    transaction_id: str
    occurred_at: datetime
    source: str
    order_id: str | None
    kind: str
    amount: str
    currency: str
    payment_method: str
    status: str


@strawberry.type
class TransactionPage:
    transactions: list[Transaction]
    page_info: PageInfo


async def _journey(
    info: Info, customer_id: str, action: str, first: int, after: str | None, types: list[str]
) -> models.TimelinePage:
    ctx = info.context
    return await profiles_service.journey_page(
        service=ctx.service,
        who=ctx.principal,
        customer_id=customer_id,
        action=action,
        first=first,
        after=after,
        types=types,
    )


@strawberry.type(description="The unified profile of one customer, as the caller's role may see it.")
class Customer:
    id: strawberry.ID
    requested_id: str = strawberry.field(description="The ID asked for; differs from id after a merge.")
    redirected: bool = strawberry.field(description="Whether the requested ID was merged into this customer.")
    status: str
    created_at: datetime
    sources: list[str]
    merged_ids: list[str]
    profile: strawberry.Private[Profile]
    role: strawberry.Private[str]
    service: strawberry.Private[ProfileService]

    @classmethod
    def of(cls, service: ProfileService, role: str, profile: Profile) -> Customer:
        """A customer as ``role`` sees it; its personal data is masked when a query asks for it."""
        c = profile.customer
        return cls(
            id=strawberry.ID(c.id),
            requested_id=profile.requested_id,
            redirected=profile.redirected,
            status=c.status,
            created_at=c.created_at,
            sources=sorted({r.record.source for r in profile.records}),
            merged_ids=list(profile.merged_ids),
            profile=profile,
            role=role,
            service=service,
        )

    @strawberry.field(description="Golden fields (as your role may see them), each with its source record.")
    def golden(self) -> list[GoldenField]:
        return [
            GoldenField(
                name=k,
                value=text(v["value"]),
                source=v.get("source"),
                source_key=v.get("source_key"),
                rule=v.get("rule"),
            )
            for k, v in self.service.golden(self.role, self.profile).items()
        ]

    @strawberry.field(description="Normalised identifiers (as your role may see them).")
    def identifiers(self) -> list[IdentifierNode]:
        return [
            IdentifierNode(kind=i["kind"], value=text(i["value"]), flagged=i["flagged"])
            for i in self.service.identifiers(self.role, self.profile)
        ]

    @strawberry.field(description="The source records linked to this customer, with their link evidence.")
    def source_records(self) -> list[SourceRecordNode]:
        return [
            SourceRecordNode(
                uid=f"{r['source']}|{r['key']}",
                source=r["source"],
                key=r["key"],
                observed_at=datetime.fromisoformat(r["observed_at"]),
                fields=[
                    FieldValue(name=k, value=text(v))
                    for k, v in r.items()
                    if k not in ("source", "key", "observed_at", "identifiers", "link")
                ],
                identifiers=r["identifiers"],
                link=r["link"],
            )
            for r in self.service.records(self.role, self.profile)
        ]

    @strawberry.field(description="Merges and splits, oldest first (roles that may read history).")
    def history(self) -> list[HistoryEntry]:
        history = self.service.history(self.role, self.profile)
        if history is None:
            raise ForbiddenError(f"role {self.role} may not read history")
        return [HistoryEntry(kind=h["event"], at=datetime.fromisoformat(h["at"]), data=cast(JSON, h)) for h in history]

    @strawberry.field(
        description="Journey events, newest first; segment_entered / segment_exited too for roles that read insights."
    )
    async def timeline(
        self, info: Info, first: int = 20, after: str | None = None, types: list[str] | None = None
    ) -> TimelinePage:
        ctx = info.context
        kinds = await ml_service.timeline_types(
            service=ctx.service, who=ctx.principal, customer_id=str(self.id), given=types, journey=JOURNEY_TYPES
        )
        page = await _journey(info, str(self.id), "read_timeline", first, after, kinds)
        policy = self.service.policy
        return TimelinePage(
            events=[
                TimelineEvent(
                    id=policy.mask_uid(self.role, e.id),
                    type=e.type,
                    occurred_at=e.occurred_at,
                    data=cast(JSON, ml_service.timeline_data(self.service, self.role, e.type, orjson.loads(e.data))),
                )
                for e in page.events
            ],
            page_info=page_info(page.next_cursor),
        )

    @strawberry.field(description="Orders with their line items, newest first.")
    async def orders(self, info: Info, first: int = 20, after: str | None = None) -> OrderPage:
        page = await _journey(info, str(self.id), "read_orders", first, after, ["order"])
        orders = []
        for e in page.events:
            d = json.loads(e.data)
            orders.append(
                Order(
                    order_id=d["order_id"],
                    occurred_at=e.occurred_at,
                    source=d["source"],
                    status=d["status"],
                    channel=d["channel"],
                    currency=d["currency"],
                    total=str(d["total"]),
                    line_items=[
                        LineItem(
                            line_id=li["line_id"],
                            product_id=li["product_id"],
                            quantity=li["quantity"],
                            unit_price=str(li["unit_price"]),
                            discount=str(li.get("discount", "0")),
                        )
                        for li in d["line_items"]
                    ],
                )
            )
        return OrderPage(orders=orders, page_info=page_info(page.next_cursor))

    @strawberry.field(description="Payments, refunds and chargebacks, newest first.")
    async def transactions(self, info: Info, first: int = 20, after: str | None = None) -> TransactionPage:
        page = await _journey(info, str(self.id), "read_transactions", first, after, ["transaction"])
        out = []
        for e in page.events:
            d = json.loads(e.data)
            out.append(
                Transaction(
                    transaction_id=d["transaction_id"],
                    occurred_at=e.occurred_at,
                    source=d["source"],
                    order_id=d.get("order_id"),
                    kind=d["kind"],
                    amount=str(d["amount"]),
                    currency=d["currency"],
                    payment_method=d["payment_method"],
                    status=d["status"],
                )
            )
        return TransactionPage(transactions=out, page_info=page_info(page.next_cursor))

    @strawberry.field(
        description="ML insights (scores, labels, recommendations) with their model versions (read_insights)."
    )
    async def insights(self, info: Info) -> list[InsightNode] | None:
        return await schema_ml.insights_of(info, str(self.id))

    @strawberry.field(description="The segments the customer is in, since when and why (read_insights).")
    async def segments(self, info: Info) -> list[SegmentMembershipNode] | None:
        return await schema_ml.segments_of(info, str(self.id))

    @strawberry.field(description="Open review items that involve this customer's records.")
    async def review_items(self, info: Info) -> list[ReviewItemNode]:
        ctx = info.context
        items = await review_service.customer_review_items(
            service=ctx.service,
            who=ctx.principal,
            customer_id=str(self.id),
            record_uids={r.record.uid for r in self.profile.records},
        )
        return [ReviewItemNode.of(i) for i in items]  # masked by the service


@strawberry.type
class CustomerPage:
    nodes: list[Customer]
    page_info: PageInfo


@strawberry.type
class SplitResult:
    remaining: Customer
    split_off: Customer


async def customer(info: Info, customer_id: str) -> Customer:
    """One customer as the caller sees it, loaded through the request's DataLoader and audited."""
    ctx = info.context
    profile = await profiles_service.get_profile(
        service=ctx.service, who=ctx.principal, customer_id=customer_id, load=ctx.profiles.load
    )
    return Customer.of(ctx.service, ctx.principal.role, profile)


@strawberry.type
class ProfilesQuery:
    @strawberry.field(description="One customer by ID; a merged-away ID resolves to the survivor (redirected: true).")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer:
        return await customer(info, str(id))

    @strawberry.field(
        description="Customers by search (email, phone, or 'First Last' / last name), or all, by ID. A role may "
        "search only by fields it sees in full (FORBIDDEN otherwise)."
    )
    async def customers(
        self, info: Info, search: str | None = None, first: int = 20, after: str | None = None
    ) -> CustomerPage:
        ctx = info.context
        if search is None:
            ids, cursor = await profiles_service.list_customer_ids(
                service=ctx.service, who=ctx.principal, first=first, after=after
            )
        else:
            ids, cursor = await profiles_service.search_page(
                service=ctx.service, who=ctx.principal, text=search, first=first, after=after
            )
        customers = list(await asyncio.gather(*(customer(info, i) for i in ids)))
        return CustomerPage(nodes=customers, page_info=page_info(cursor))

    @strawberry.field(
        description="The evidence between two records (source|key), or a record and a customer. A role that sees "
        "record keys hashed gives the hashed uids it is shown."
    )
    async def explain(self, info: Info, a: str, b: str) -> JSON:
        ctx = info.context
        return cast(JSON, await profiles_service.explain_pair(service=ctx.service, who=ctx.principal, a=a, b=b))


@strawberry.type
class ProfilesMutation:
    @strawberry.mutation(description="Merge two customers; the older ID survives and the other redirects to it.")
    async def merge(self, info: Info, a: strawberry.ID, b: strawberry.ID, reason: str) -> Customer:
        ctx = info.context
        event = await profiles_service.merge_customers(
            service=ctx.service, who=ctx.principal, a=str(a), b=str(b), reason=reason
        )
        ctx.profiles.clear_all()
        return await customer(info, event.survivor)

    @strawberry.mutation(description="Move records (source|key) out of a customer into a new one, kept apart.")
    async def split(self, info: Info, customer_id: strawberry.ID, records: list[str], reason: str) -> SplitResult:
        ctx = info.context
        event = await profiles_service.split_customer(
            service=ctx.service, who=ctx.principal, customer_id=str(customer_id), records=records, reason=reason
        )
        ctx.profiles.clear_all()
        return SplitResult(remaining=await customer(info, event.source), split_off=await customer(info, event.new))
