# ruff: noqa: D101, D102
# mypy: disallow-untyped-decorators=False
"""The ML domain of the schema: lens queries, segment counts, and a customer's insights and segments.

``Customer.insights`` and ``Customer.segments`` (in :mod:`~c360.graphql.schema_profiles`) resolve through
:func:`insights_of` and :func:`segments_of`: a role without ``read_insights`` gets null with a FORBIDDEN
error for the field (the rest of the profile answers), and the audit trail says denied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from c360.graph.insights import Insight, Membership
from strawberry.scalars import JSON

from . import ml_service
from .schema_common import Info


@strawberry.type(
    name="Insight", description="One model's result for the customer, with the model version it came from."
)
class InsightNode:
    name: str = strawberry.field(description="What it is: churn, clv, rfm, cluster, next_products, next_channel, ...")
    score: float | None = strawberry.field(description="A probability, an amount, a likeness (as the model says).")
    label: str | None = strawberry.field(description="A label: the RFM segment, a cluster's words, a channel.")
    detail: JSON = strawberry.field(description="The model's detail (products with confidence, r/f/m scores...).")
    model: str = strawberry.field(description="The model version, e.g. churn@v3.")
    computed_at: datetime

    @classmethod
    def of(cls, info: Info, insight: Insight) -> InsightNode:
        ctx = info.context
        doc = ml_service.insight_json(ctx.service, ctx.principal.role, insight)
        return cls(
            name=insight.name,
            score=insight.score,
            label=insight.label,
            detail=cast(JSON, doc["detail"]),
            model=insight.model,
            computed_at=insight.computed_at,
        )


@strawberry.type(name="SegmentMembership", description="A segment the customer is in: since when, and why.")
class SegmentMembershipNode:
    segment_id: str
    since: datetime
    reason: str = strawberry.field(description="The rule condition that decided.")

    @classmethod
    def of(cls, membership: Membership) -> SegmentMembershipNode:
        return cls(segment_id=membership.segment_id, since=membership.since, reason=membership.reason)


@strawberry.type
class SegmentCount:
    id: str
    name: str = strawberry.field(description="The name marketers see (the id when the segment has no definition).")
    members: int = strawberry.field(description="Active customers in the segment.")


@strawberry.input(description="A lens filter: a member, an operator and its values (as text: numbers, dates too).")
class LensFilterInput:
    member: str
    op: str = strawberry.field(description="equals, not_equals, in, gt, gte, lt, lte, between, contains.")
    values: list[str]


@strawberry.input
class LensOrderInput:
    member: str
    direction: str = strawberry.field(default="asc", description="asc or desc.")


@strawberry.input(description="A lens query, as `c360 lens query` takes it.")
class LensQueryInput:
    measures: list[str] = strawberry.field(default_factory=list, description="Measures, entity.member.")
    dimensions: list[str] = strawberry.field(default_factory=list, description="Dimensions to group by.")
    filters: list[LensFilterInput] = strawberry.field(default_factory=list)
    order: list[LensOrderInput] = strawberry.field(default_factory=list)
    limit: int | None = strawberry.field(default=None, description="Rows at most (default and cap: the model's).")
    as_of: datetime | None = strawberry.field(default=None, description="Day counts run to this time (default: now).")

    def to_query(self) -> dict[str, Any]:
        """The query as the lens parses it."""
        query: dict[str, Any] = {
            "measures": list(self.measures),
            "dimensions": list(self.dimensions),
            "filters": [{"member": f.member, "op": f.op, "values": list(f.values)} for f in self.filters],
            "order": [{"member": o.member, "direction": o.direction} for o in self.order],
            "limit": self.limit,
        }
        if self.as_of is not None:
            query["as_of"] = self.as_of
        return query


@strawberry.type(description="A lens answer: its columns (the members) and one JSON object per row, keyed by column.")
class LensResult:
    columns: list[str]
    rows: list[JSON]
    row_count: int
    seconds: float = strawberry.field(description="Seconds DuckDB took.")


async def insights_of(info: Info, customer_id: str) -> list[InsightNode]:
    """The customer's insights as the caller may see them (FORBIDDEN without read_insights)."""
    ctx = info.context
    found = await ml_service.customer_insights(service=ctx.service, who=ctx.principal, customer_id=customer_id)
    return [InsightNode.of(info, i) for i in found]


async def segments_of(info: Info, customer_id: str) -> list[SegmentMembershipNode]:
    """The customer's segment memberships (FORBIDDEN without read_insights)."""
    ctx = info.context
    found = await ml_service.customer_segments(service=ctx.service, who=ctx.principal, customer_id=customer_id)
    return [SegmentMembershipNode.of(m) for m in found]


@strawberry.type
class MlQuery:
    @strawberry.field(
        description="A lens query over the ML snapshot, e.g. customer.count by segment.name with customer.state "
        "equals CA. Members that show personal data need a role that sees that data in full."
    )
    async def lens(self, info: Info, query: LensQueryInput) -> LensResult | None:
        ctx = info.context
        result = await ml_service.query_lens(service=ctx.service, who=ctx.principal, query=query.to_query())
        doc = ml_service.lens_document(result)
        return LensResult(
            columns=doc["columns"],
            rows=cast(list[JSON], doc["rows"]),
            row_count=doc["row_count"],
            seconds=doc["seconds"],
        )

    @strawberry.field(description="Every segment with its name and its members (active customers).")
    async def segment_counts(self, info: Info) -> list[SegmentCount] | None:
        ctx = info.context
        found = await ml_service.segment_counts(service=ctx.service, who=ctx.principal)
        return [SegmentCount(id=s["id"], name=s["name"], members=s["members"]) for s in found]
