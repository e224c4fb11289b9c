# ruff: noqa: D101, D102
# mypy: disallow-untyped-decorators=False
"""The review domain of the schema: the queue of uncertain pairs and stewards' decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from . import review_service
from .schema_common import Info, PageInfo, page_info


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


@strawberry.type
class ReviewQuery:
    @strawberry.field(description="Open review items, oldest first.")
    async def review_queue(self, info: Info, first: int = 20, after: str | None = None) -> ReviewPage:
        ctx = info.context
        items, cursor = await review_service.review_queue(
            service=ctx.service, who=ctx.principal, first=first, after=after
        )
        return ReviewPage(items=[ReviewItemNode.of(i) for i in items], page_info=page_info(cursor))


@strawberry.type
class ReviewMutation:
    @strawberry.mutation(description="The pair is the same person: their customers become one.")
    async def approve_review(self, info: Info, id: strawberry.ID, reason: str | None = None) -> ReviewItemNode:
        ctx = info.context
        item = await review_service.approve_review(
            service=ctx.service, who=ctx.principal, review_id=str(id), reason=reason
        )
        return ReviewItemNode.of(item)

    @strawberry.mutation(description="The pair is not the same person: it is kept apart from now on.")
    async def reject_review(self, info: Info, id: strawberry.ID, reason: str) -> ReviewItemNode:
        ctx = info.context
        item = await review_service.reject_review(
            service=ctx.service, who=ctx.principal, review_id=str(id), reason=reason
        )
        return ReviewItemNode.of(item)
