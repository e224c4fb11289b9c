"""Review: the queue of uncertain pairs and stewards' decisions on them.

Each function authorises the caller against the policy and audits the outcome; the items it returns
have their record uids (and reasons) masked for the caller's role (the policy's ``source_key`` rule).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from c360.graph.models import ReviewItem
from c360.resolution.review import approve, reject

from .principal import Principal
from .service import ProfileService, check_first, decode_offset, encode_cursor


async def review_queue(
    *, service: ProfileService, who: Principal, first: int, after: str | None
) -> tuple[list[ReviewItem], str | None]:
    """A page of open review items, oldest first, and the cursor of the next page."""

    def work() -> tuple[list[ReviewItem], str | None]:
        check_first(first)
        offset = decode_offset(after)
        items = service.store.review_items("open", limit=offset + first + 1)
        more = len(items) > offset + first
        page = [service.policy.mask_review_item(who.role, i) for i in items[offset : offset + first]]
        return page, encode_cursor(str(offset + first)) if more else None

    return await service.audited(who, "read_review_queue", None, lambda: service.read(work))


async def customer_review_items(
    *, service: ProfileService, who: Principal, customer_id: str, record_uids: Collection[str]
) -> list[ReviewItem]:
    """Open review items that involve any of a customer's records."""
    items = await service.audited(
        who,
        "read_review_queue",
        customer_id,
        lambda: service.read(lambda: service.store.review_items("open", limit=None)),
    )
    mine = [i for i in items if i.record_uid in record_uids or i.candidate_uid in record_uids]
    return [service.policy.mask_review_item(who.role, i) for i in mine]


async def approve_review(*, service: ProfileService, who: Principal, review_id: str, reason: str | None) -> ReviewItem:
    """Approve a review item: its two customers become one."""
    item = await service.audited(
        who,
        "approve_review",
        review_id,
        lambda: service.run(
            lambda: approve(
                service.store,
                review_id,
                by=who.subject,
                reason=reason,
                now=datetime.now(UTC),
                survivorship=service.survivorship,
            )
        ),
    )
    return service.policy.mask_review_item(who.role, item)


async def reject_review(*, service: ProfileService, who: Principal, review_id: str, reason: str) -> ReviewItem:
    """Reject a review item: the pair is kept apart from now on."""
    item = await service.audited(
        who,
        "reject_review",
        review_id,
        lambda: service.run(
            lambda: reject(service.store, review_id, by=who.subject, reason=reason, now=datetime.now(UTC))
        ),
    )
    return service.policy.mask_review_item(who.role, item)
