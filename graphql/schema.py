"""The GraphQL schema (strawberry): the 360 profile, search, the review queue, explain, and stewards' changes.

Every resolver goes through :class:`~c360.graphql.service.ProfileService`: the caller's role is checked
against the policy, personal data is masked as the policy says, and reads and changes are audited.
Profiles are loaded through a DataLoader, so a page of customers costs one batched store read, not one
per customer. Errors carry ``extensions.code``: ``NOT_FOUND``, ``FORBIDDEN``, ``UNAUTHENTICATED``,
``BAD_USER_INPUT``, ``CONFLICT`` (anything unexpected: ``INTERNAL_SERVER_ERROR`` with a generic message).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
import strawberry
from c360.graph.errors import C360Error, ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import Profile
from c360.streams.events import JOURNEY_TYPES
from graphql.error import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.validation import ValidationRule
from strawberry.dataloader import DataLoader
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.fastapi import BaseContext
from strawberry.scalars import JSON

from .auth import AuthError, ForbiddenError, Principal
from .service import MAX_PAGE, ProfileService, check_first, decode_cursor, decode_offset, encode_cursor

log = logging.getLogger(__name__)

#: limits on what one query may ask for
MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 3000


class ApiContext(BaseContext):
    """Per request: who calls, the service, and the request's DataLoaders."""

    def __init__(self, principal: Principal, service: ProfileService) -> None:
        super().__init__()
        self.principal = principal
        self.service = service
        self.profiles: DataLoader[str, Profile | None] = DataLoader(load_fn=self._load_profiles)

    async def _load_profiles(self, ids: list[str]) -> list[Profile | None]:
        found = await self.service.read(lambda: self.service.store.get_profiles(ids))
        return [found.get(i) for i in ids]


Info = strawberry.Info[ApiContext, None]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


@strawberry.type(description="One golden field: its value as your role may see it, and where it came from.")
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


@strawberry.type(name="SourceRecord", description="A record of a source system linked to the customer.")
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


@strawberry.type
class TimelineEvent:
    id: str
    type: str
    occurred_at: datetime
    data: JSON


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


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


@strawberry.type(name="ReviewItem", description="An uncertain pair waiting for a data steward.")
class ReviewItemNode:
    id: str
    record: str
    candidate: str
    customer_id: str
    match_weight: float
    match_probability: float
    created_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None

    @classmethod
    def of(cls, item: Any) -> ReviewItemNode:
        """From a store review item."""
        return cls(
            id=item.id,
            record=item.record_uid,
            candidate=item.candidate_uid,
            customer_id=item.customer_id,
            match_weight=item.match_weight,
            match_probability=item.match_probability,
            created_at=item.created_at,
            status=item.status,
            decided_by=item.decided_by,
            decided_at=item.decided_at,
            reason=item.reason,
        )


@strawberry.type
class ReviewPage:
    items: list[ReviewItemNode]
    page_info: PageInfo


async def _journey(
    info: Info, customer_id: str, action: str, first: int, after: str | None, types: Sequence[str]
) -> Any:
    service, who = info.context.service, info.context.principal
    check_first(first)
    return await service.audited(
        who,
        action,
        customer_id,
        lambda: service.read(lambda: service.store.timeline(customer_id, first=first, after=after, types=list(types))),
    )


def _page_info(cursor: str | None) -> PageInfo:
    return PageInfo(has_next_page=cursor is not None, end_cursor=cursor)


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
                value=_text(v["value"]),
                source=v.get("source"),
                source_key=v.get("source_key"),
                rule=v.get("rule"),
            )
            for k, v in self.service.golden(self.role, self.profile).items()
        ]

    @strawberry.field(description="Normalised identifiers (as your role may see them).")
    def identifiers(self) -> list[IdentifierNode]:
        return [
            IdentifierNode(kind=i["kind"], value=_text(i["value"]), flagged=i["flagged"])
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
                    FieldValue(name=k, value=_text(v))
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

    @strawberry.field(description="Journey events, newest first.")
    async def timeline(
        self, info: Info, first: int = 20, after: str | None = None, types: list[str] | None = None
    ) -> TimelinePage:
        if types and not set(types) <= JOURNEY_TYPES:
            raise InvalidInputError(f"types may be: {', '.join(sorted(JOURNEY_TYPES))}")
        page = await _journey(info, str(self.id), "read_timeline", first, after, types or sorted(JOURNEY_TYPES))
        return TimelinePage(
            events=[
                TimelineEvent(id=e.id, type=e.type, occurred_at=e.occurred_at, data=orjson.loads(e.data))
                for e in page.events
            ],
            page_info=_page_info(page.next_cursor),
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
        return OrderPage(orders=orders, page_info=_page_info(page.next_cursor))

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
        return TransactionPage(transactions=out, page_info=_page_info(page.next_cursor))

    @strawberry.field(description="Open review items that involve this customer's records.")
    async def review_items(self, info: Info) -> list[ReviewItemNode]:
        service, who = info.context.service, info.context.principal
        mine = {r.record.uid for r in self.profile.records}
        items = await service.audited(
            who,
            "read_review_queue",
            str(self.id),
            lambda: service.read(lambda: service.store.review_items("open", limit=None)),
        )
        return [ReviewItemNode.of(i) for i in items if i.record_uid in mine or i.candidate_uid in mine]


@strawberry.type
class CustomerPage:
    nodes: list[Customer]
    page_info: PageInfo


@strawberry.type
class SplitResult:
    remaining: Customer
    split_off: Customer


async def _customer(info: Info, customer_id: str, action: str = "read_profile") -> Customer:
    service, who = info.context.service, info.context.principal

    async def load() -> Profile:
        found = await info.context.profiles.load(customer_id)
        if found is None:
            raise NotFoundError(f"no customer {customer_id}")
        return found

    profile = await service.audited(who, action, customer_id, load)
    return Customer.of(service, who.role, profile)


@strawberry.type
class Query:
    @strawberry.field(description="One customer by ID; a merged-away ID resolves to the survivor (redirected: true).")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer:
        return await _customer(info, str(id))

    @strawberry.field(description="Customers by search (email, phone, or 'First Last' / last name), or all, by ID.")
    async def customers(
        self, info: Info, search: str | None = None, first: int = 20, after: str | None = None
    ) -> CustomerPage:
        service, who = info.context.service, info.context.principal
        check_first(first)
        service.policy.require(who, "search_customers")
        if search is None:
            start = decode_cursor(after) if after else None
            ids, cursor = await service.read(lambda: service.store.list_customers(first, start))
            next_cursor = encode_cursor(cursor) if cursor else None
        else:
            offset = decode_offset(after)
            found = await service.audited(
                who, "search_customers", None, lambda: service.read(lambda: service.search_ids(search))
            )
            ids = found[offset : offset + first]
            next_cursor = encode_cursor(str(offset + first)) if len(found) > offset + first else None
        customers = list(await asyncio.gather(*(_customer(info, i) for i in ids)))
        return CustomerPage(nodes=customers, page_info=_page_info(next_cursor))

    @strawberry.field(description="The evidence between two records (source|key), or a record and a customer.")
    async def explain(self, info: Info, a: str, b: str) -> JSON:
        service, who = info.context.service, info.context.principal
        found = await service.audited(
            who, "explain", f"{a} ~ {b}", lambda: service.run(lambda: service.explanation(who.role, a, b))
        )
        return cast(JSON, found)

    @strawberry.field(description="Open review items, oldest first.")
    async def review_queue(self, info: Info, first: int = 20, after: str | None = None) -> ReviewPage:
        service, who = info.context.service, info.context.principal
        items, cursor = await service.audited(
            who, "read_review_queue", None, lambda: service.read(lambda: service.review_items(first=first, after=after))
        )
        return ReviewPage(items=[ReviewItemNode.of(i) for i in items], page_info=_page_info(cursor))


@strawberry.type
class Mutation:
    @strawberry.mutation(description="The pair is the same person: their customers become one.")
    async def approve_review(self, info: Info, id: strawberry.ID, reason: str | None = None) -> ReviewItemNode:
        service, who = info.context.service, info.context.principal
        item = await service.audited(
            who, "approve_review", str(id), lambda: service.run(lambda: service.approve(who, str(id), reason))
        )
        return ReviewItemNode.of(item)

    @strawberry.mutation(description="The pair is not the same person: it is kept apart from now on.")
    async def reject_review(self, info: Info, id: strawberry.ID, reason: str) -> ReviewItemNode:
        service, who = info.context.service, info.context.principal
        item = await service.audited(
            who, "reject_review", str(id), lambda: service.run(lambda: service.reject(who, str(id), reason))
        )
        return ReviewItemNode.of(item)

    @strawberry.mutation(description="Merge two customers; the older ID survives and the other redirects to it.")
    async def merge(self, info: Info, a: strawberry.ID, b: strawberry.ID, reason: str) -> Customer:
        service, who = info.context.service, info.context.principal
        event = await service.audited(
            who, "merge", f"{a} + {b}", lambda: service.run(lambda: service.merge(who, str(a), str(b), reason))
        )
        info.context.profiles.clear_all()
        return await _customer(info, event.survivor)

    @strawberry.mutation(description="Move records (source|key) out of a customer into a new one, kept apart.")
    async def split(self, info: Info, customer_id: strawberry.ID, records: list[str], reason: str) -> SplitResult:
        service, who = info.context.service, info.context.principal
        event = await service.audited(
            who,
            "split",
            str(customer_id),
            lambda: service.run(lambda: service.split(who, str(customer_id), records, reason)),
        )
        info.context.profiles.clear_all()
        return SplitResult(remaining=await _customer(info, event.source), split_off=await _customer(info, event.new))


_CODES: tuple[tuple[type[Exception], str], ...] = (
    (AuthError, "UNAUTHENTICATED"),
    (ForbiddenError, "FORBIDDEN"),
    (NotFoundError, "NOT_FOUND"),
    (ConflictError, "CONFLICT"),
    (InvalidInputError, "BAD_USER_INPUT"),
)


def error_code(exc: BaseException | None) -> str:
    """The GraphQL error code of an exception (None: the query itself was invalid)."""
    if exc is None:
        return "BAD_USER_INPUT"
    return next((code for cls, code in _CODES if isinstance(exc, cls)), "INTERNAL_SERVER_ERROR")


class ErrorCodes(SchemaExtension):
    """Gives every error an ``extensions.code``; hides the message of unexpected ones (they are logged)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        out = []
        for error in errors:
            original = error.original_error
            code = error_code(original)
            message = error.message
            if code == "INTERNAL_SERVER_ERROR":
                if not isinstance(original, C360Error):
                    log.error("unexpected error in a GraphQL resolver", exc_info=original)
                message = "internal error; it is logged"
            out.append(
                GraphQLError(
                    message, nodes=error.nodes, positions=error.positions, path=error.path, extensions={"code": code}
                )
            )
        result.errors = out  # type: ignore[union-attr]


#: most fields a query may cost, counting each field once per item of the pages around it
MAX_COST = 5000
_PAGED = frozenset({"customers", "timeline", "orders", "transactions", "reviewQueue"})


def _page_size(node: FieldNode) -> int:
    for arg in node.arguments or ():
        if arg.name.value == "first":
            return max(1, int(arg.value.value)) if isinstance(arg.value, IntValueNode) else MAX_PAGE
    return 20 if node.name.value in _PAGED else 1  # the schema's default page size


def _cost(
    selections: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]
) -> int:
    """Fields a selection may resolve: a field inside a page counts once per item of that page."""
    total = 0
    for node in selections.selections if selections else ():
        if isinstance(node, FieldNode):
            total += 1 + _page_size(node) * _cost(node.selection_set, fragments, seen)
        elif isinstance(node, InlineFragmentNode):
            total += _cost(node.selection_set, fragments, seen)
        elif isinstance(node, FragmentSpreadNode) and node.name.value not in seen:
            fragment = fragments.get(node.name.value)
            if fragment is not None:
                total += _cost(fragment.selection_set, fragments, seen | {node.name.value})
    return total


def cost_rule(max_cost: int) -> type[ValidationRule]:
    """A validation rule that refuses operations whose estimated cost exceeds ``max_cost``."""

    class QueryCost(ValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> None:
            fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
            for d in node.definitions:
                if isinstance(d, OperationDefinitionNode):
                    cost = _cost(d.selection_set, fragments, frozenset())
                    if cost > max_cost:
                        self.report_error(
                            GraphQLError(
                                f"the query may resolve {cost} fields, more than {max_cost}; ask for smaller pages", d
                            )
                        )

    return QueryCost


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log only what is unexpected: a NOT_FOUND or FORBIDDEN is the client's business, not an incident."""
        unexpected = [e for e in errors if error_code(e.original_error) == "INTERNAL_SERVER_ERROR"]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(*, max_depth: int = MAX_DEPTH, max_cost: int = MAX_COST) -> strawberry.Schema:
    """The schema with its limits: query depth, cost, aliases, tokens, and page sizes (first ≤ 100).

    The depth and alias rules are built once per schema, so the validation cache (keyed by document
    and rules) holds: clients send the same few documents, and each is parsed and validated once.
    """
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
        cost_rule(max_cost),
    ]
    return _Schema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: AddValidationRules(rules),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=1000),
            lambda: ValidationCache(maxsize=1000),
            ErrorCodes,  # a class: one instance per operation
        ],
    )
