"""Profiles: reading customers, finding them, their journeys, explaining links, merging and splitting.

Each function authorises the caller against the policy and audits the outcome; the GraphQL resolvers
and the REST routes call these, never the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from c360.graph.errors import InvalidInputError, NotFoundError
from c360.graph.models import Identifier, MergeEvent, Profile, SplitEvent, TimelinePage
from c360.graph.store import GraphStore
from c360.resolution.explain import explain
from c360.resolution.normalize import normalize_email, normalize_national_id, normalize_phone
from c360.resolution.review import merge_customers as _merge
from c360.resolution.undo import split

from .principal import Principal
from .service import ProfileService, check_first, decode_cursor, decode_offset, encode_cursor

#: most customers one search returns
MAX_FOUND = 1000
#: most profiles the REST lookup by email or phone answers
MAX_REST_PROFILES = 20


def identifier_of(*, email: str | None = None, phone: str | None = None, default_region: str) -> Identifier:
    """The normalised email or phone (exactly one) to look up; InvalidInputError when it is not valid."""
    if (email is None) == (phone is None):
        raise InvalidInputError("give exactly one of email or phone")
    if email is not None:
        value = normalize_email(email)
        if value is None:
            raise InvalidInputError("not a valid email address")
        return Identifier("email", value)
    value = normalize_phone(phone or "", default_region)
    if value is None:
        raise InvalidInputError("not a valid phone number")
    return Identifier("phone", value)


def find_customer_ids(
    *,
    store: GraphStore,
    default_region: str,
    text: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    national_id: str | None = None,
    kind: str = "ssn",
    limit: int = MAX_FOUND,
) -> list[str]:
    """Active customers by free text (email, phone, or 'First Last' / last name) or by one named key."""
    given = [v for v in (text, email, phone, name, national_id) if v is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of text, email, phone, name or national_id")
    if text is not None:
        text = text.strip()
        if not text or len(text) > 200:
            raise InvalidInputError("search must be 1 to 200 characters")
        if "@" in text:
            email = text
        elif sum(c.isdigit() for c in text) >= 6:
            phone = text
        else:
            name = text
    if email is not None or phone is not None:
        return store.find_by_identifier(identifier_of(email=email, phone=phone, default_region=default_region))
    if national_id is not None:
        value = normalize_national_id(national_id, kind)
        if value is None:
            raise InvalidInputError(f"not a valid national id: {national_id}")
        return store.find_by_identifier(Identifier("national_id", value))
    parts = (name or "").split()
    if not parts:
        raise InvalidInputError("give a name: 'First Last', or a last name")
    return store.find_by_name(parts[0] if len(parts) > 1 else None, parts[-1], limit=limit)


async def load_profiles(*, service: ProfileService, ids: list[str]) -> list[Profile | None]:
    """Profiles by ID in one batched store read (a DataLoader's load function; callers audit each use)."""
    found = await service.read(lambda: service.store.get_profiles(ids))
    return [found.get(i) for i in ids]


async def get_profile(
    *,
    service: ProfileService,
    who: Principal,
    customer_id: str,
    load: Callable[[str], Awaitable[Profile | None]] | None = None,
) -> Profile:
    """One customer's profile, audited as read_profile (``load``: a batching loader, else the store)."""

    async def fetch() -> Profile:
        found = await (load(customer_id) if load else service.read(lambda: service.store.get_profile(customer_id)))
        if found is None:
            raise NotFoundError(f"no customer {customer_id}")
        return found

    return await service.audited(who, "read_profile", customer_id, fetch)


async def get_profile_document(*, service: ProfileService, who: Principal, customer_id: str) -> dict[str, Any]:
    """One customer's masked profile document (a merged-away ID gives the survivor's, flagged)."""
    profile = await get_profile(service=service, who=who, customer_id=customer_id)
    return service.document(who.role, profile)


async def search_customers(*, service: ProfileService, who: Principal, text: str) -> list[str]:
    """IDs of the active customers matching ``text``, audited as search_customers."""
    region = service.linking.default_region
    return await service.audited(
        who,
        "search_customers",
        None,
        lambda: service.read(lambda: find_customer_ids(store=service.store, default_region=region, text=text)),
    )


async def search_page(
    *, service: ProfileService, who: Principal, text: str, first: int, after: str | None
) -> tuple[list[str], str | None]:
    """A page of :func:`search_customers`' IDs and the cursor of the next page."""
    check_first(first)
    offset = decode_offset(after)
    found = await search_customers(service=service, who=who, text=text)
    more = len(found) > offset + first
    return found[offset : offset + first], encode_cursor(str(offset + first)) if more else None


async def list_customer_ids(
    *, service: ProfileService, who: Principal, first: int, after: str | None
) -> tuple[list[str], str | None]:
    """A page of all customers' IDs in ID order (the profiles read from it are audited one by one)."""
    check_first(first)
    await service.require(who, "search_customers")
    start = decode_cursor(after) if after else None
    ids, cursor = await service.read(lambda: service.store.list_customers(first, start))
    return ids, encode_cursor(cursor) if cursor else None


async def find_profile_documents(
    *, service: ProfileService, who: Principal, email: str | None, phone: str | None
) -> list[dict[str, Any]]:
    """Profile documents of the customers with this email or phone (exactly one), at most 20."""
    ident = identifier_of(email=email, phone=phone, default_region=service.linking.default_region)
    ids = await service.audited(
        who, "search_customers", None, lambda: service.read(lambda: service.store.find_by_identifier(ident))
    )
    return [await get_profile_document(service=service, who=who, customer_id=cid) for cid in ids[:MAX_REST_PROFILES]]


async def journey_page(
    *,
    service: ProfileService,
    who: Principal,
    customer_id: str,
    action: str,
    first: int,
    after: str | None,
    types: Sequence[str],
) -> TimelinePage:
    """A page of a customer's journey events of ``types``, newest first, audited as ``action``."""
    check_first(first)
    return await service.audited(
        who,
        action,
        customer_id,
        lambda: service.read(lambda: service.store.timeline(customer_id, first=first, after=after, types=list(types))),
    )


async def explain_pair(*, service: ProfileService, who: Principal, a: str, b: str) -> dict[str, Any]:
    """The evidence between two records, or a record and a customer, masked for the caller's role."""

    def work() -> dict[str, Any]:
        found = explain(service.store, a, b, linking=service.linking, scorer=service.scorer()).to_json()
        deterministic = found.get("deterministic") or {}
        if deterministic.get("identifiers"):
            masked = [m for uid in deterministic["identifiers"] if (m := service.mask_identifier(who.role, uid))]
            found["deterministic"] = {**deterministic, "identifiers": masked}
        for side in ("left", "right"):
            if side in found and "link" in found[side]:
                found[side] = {**found[side], "link": service.mask_evidence(who.role, found[side]["link"])}
        return found

    return await service.audited(who, "explain", f"{a} ~ {b}", lambda: service.run(work))


async def merge_customers(*, service: ProfileService, who: Principal, a: str, b: str, reason: str) -> MergeEvent:
    """Merge two customers by hand; the older ID survives."""
    return await service.audited(
        who,
        "merge",
        f"{a} + {b}",
        lambda: service.run(
            lambda: _merge(
                service.store,
                a,
                b,
                by=who.subject,
                reason=reason,
                now=datetime.now(UTC),
                survivorship=service.survivorship,
            )
        ),
    )


async def split_customer(
    *, service: ProfileService, who: Principal, customer_id: str, records: Sequence[str], reason: str
) -> SplitEvent:
    """Move records out of a customer into a new one, kept apart from the rest."""

    def work() -> SplitEvent:
        if len(records) > 1000:
            raise InvalidInputError("split at most 1000 records at once")
        return split(
            service.store,
            customer_id,
            list(records),
            by=who.subject,
            reason=reason,
            now=datetime.now(UTC),
            new_id=service.new_id,
            survivorship=service.survivorship,
        )

    return await service.audited(who, "split", customer_id, lambda: service.run(work))
