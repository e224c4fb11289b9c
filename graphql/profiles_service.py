"""Profiles: reading customers, finding them, their journeys, explaining links, merging and splitting.

Each function authorises the caller against the policy and audits the outcome; the GraphQL resolvers
and the REST routes call these, never the store.

Masking cannot be walked around through keys or search:

* a search is an oracle (one answer says who is a customer), so a role may search by a field only if its
  policy shows that field in full (``Policy.require_search``): email, phone, national ID, or name (first
  and last name). Any other search is refused with ``FORBIDDEN`` (HTTP 403) and audited as refused.
* record keys are served as the policy's ``source_key`` rule says (hashed for roles that may not see
  every identifying field). Such a role names records by the hashed uids it was shown
  (``source|hmac:...``): ``explain`` finds them among the customer it names and the open review items,
  ``split`` among the customer's records. A raw key from such a role is refused (it would be an oracle:
  "is there a crm record keyed jane@example.com?").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from c360.graph.errors import C360Error, InvalidInputError, NotFoundError
from c360.graph.models import Identifier, MergeEvent, Profile, SplitEvent, TimelinePage
from c360.graph.store import GraphStore
from c360.resolution.explain import explain
from c360.resolution.normalize import normalize_email, normalize_national_id, normalize_phone
from c360.resolution.review import merge_customers as _merge
from c360.resolution.undo import split

from .hash_keys import is_hash
from .principal import ForbiddenError, Principal
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


def _classify(
    text: str | None, email: str | None, phone: str | None, name: str | None, national_id: str | None
) -> tuple[str, str]:
    """What a search is by (email, phone, name or national_id) and the value searched for."""
    given = [v for v in (text, email, phone, name, national_id) if v is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of text, email, phone, name or national_id")
    if text is not None:
        text = text.strip()
        if not text or len(text) > 200:
            raise InvalidInputError("search must be 1 to 200 characters")
        if "@" in text:
            return "email", text
        if sum(c.isdigit() for c in text) >= 6:
            return "phone", text
        return "name", text
    if email is not None:
        return "email", email
    if phone is not None:
        return "phone", phone
    if name is not None:
        return "name", name
    return "national_id", national_id or ""


def search_fields(
    *,
    text: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    national_id: str | None = None,
) -> tuple[str, ...]:
    """The policy fields a search reads (a role may search only by fields it sees in full).

    A name 'First Last' reads first_name and last_name; a single name is a last name.
    """
    by, value = _classify(text, email, phone, name, national_id)
    if by == "name":
        return ("first_name", "last_name") if len(value.split()) > 1 else ("last_name",)
    return (by,)


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
    """Active customers by free text (email, phone, or 'First Last' / last name) or by one named key.

    No role is checked here (the command line is an operator); the API's callers go through
    :func:`search_customers` and :func:`find_profile_documents`, which check :func:`search_fields`.
    """
    by, value = _classify(text, email, phone, name, national_id)
    email, phone, name = (value if by == k else None for k in ("email", "phone", "name"))
    national_id = value if by == "national_id" else None
    if email is not None or phone is not None:
        return store.find_by_identifier(identifier_of(email=email, phone=phone, default_region=default_region))
    if national_id is not None:
        normal = normalize_national_id(national_id, kind)
        if normal is None:
            raise InvalidInputError(f"not a valid national id: {national_id}")
        return store.find_by_identifier(Identifier("national_id", normal))
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
    """IDs of the active customers matching ``text``, audited as search_customers.

    The role must see the fields searched by in full (:func:`search_fields`); else FORBIDDEN, audited
    as refused.
    """
    region = service.linking.default_region

    async def work() -> list[str]:
        service.policy.require_search(who, search_fields(text=text))
        return await service.read(lambda: find_customer_ids(store=service.store, default_region=region, text=text))

    return await service.audited(who, "search_customers", None, work)


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
    """Profile documents of the customers with this email or phone (exactly one), at most 20.

    The role must see the field searched by in full; else FORBIDDEN, audited as refused.
    """

    async def work() -> list[str]:
        if (email is None) != (phone is None):
            service.policy.require_search(who, ("email",) if email is not None else ("phone",))
        ident = identifier_of(email=email, phone=phone, default_region=service.linking.default_region)
        return await service.read(lambda: service.store.find_by_identifier(ident))

    ids = await service.audited(who, "search_customers", None, work)
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


def _hashed_uid(role: str, given: str) -> None:
    """A role that sees keys hashed names records by the hashed uids it was shown, never by raw keys."""
    _, bar, key = given.partition("|")
    if bar and not is_hash(key):
        raise ForbiddenError(
            f"role {role} sees record keys hashed: name records by the uids it is shown (source|hmac:...)"
        )


def _unmask(service: ProfileService, role: str, given: Sequence[str], known: Iterable[str]) -> dict[str, str]:
    """The raw uid of each hashed record uid (or hashed key) in ``given``, among the ``known`` raw uids."""
    wanted = set(given)
    found: dict[str, str] = {}
    for uid in known:
        masked = service.policy.mask_uid(role, uid)
        if masked in wanted:
            found[masked] = uid
        key = masked.partition("|")[2]
        if key in wanted:  # split also takes a key alone
            found[key] = uid
    return found


def _resolve_records(service: ProfileService, role: str, a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` with hashed record uids replaced by the records' own (see the module's notes)."""
    for given in (a, b):
        _hashed_uid(role, given)
    known: set[str] = set()
    for given in (a, b):
        if "|" not in given:
            profile = service.store.get_profile(given)
            if profile is not None:
                known.update(r.record.uid for r in profile.records)
    for item in service.store.review_items("open", limit=None):
        known.update((item.record_uid, item.candidate_uid))
    raw = _unmask(service, role, (a, b), known)
    for given in (a, b):
        if "|" in given and given not in raw:
            raise NotFoundError(f"no record {given} among the records of the customer named and the open review items")
    return raw.get(a, a), raw.get(b, b)


async def explain_pair(*, service: ProfileService, who: Principal, a: str, b: str) -> dict[str, Any]:
    """The evidence between two records, or a record and a customer, masked for the caller's role.

    Record uids, link evidence and shared identifiers are masked as the role's policy says; a role that
    sees keys hashed gives the hashed record uids it was shown.
    """
    policy = service.policy

    def work() -> dict[str, Any]:
        shows = policy.shows_keys(who.role)
        left, right = (a, b) if shows else _resolve_records(service, who.role, a, b)
        try:
            found = explain(service.store, left, right, linking=service.linking, scorer=service.scorer()).to_json()
        except C360Error as exc:
            if shows:
                raise
            message = str(exc)
            for raw, shown in ((left, a), (right, b)):
                message = message.replace(raw, shown)
            raise type(exc)(message) from None
        deterministic = found.get("deterministic") or {}
        if deterministic.get("identifiers"):
            masked = [m for uid in deterministic["identifiers"] if (m := policy.mask_identifier(who.role, uid))]
            found["deterministic"] = {**deterministic, "identifiers": masked}
        for side in ("left", "right"):
            if side in found:
                found[side] = dict(found[side])
                if "link" in found[side]:
                    found[side]["link"] = policy.mask_evidence(who.role, found[side]["link"])
                if isinstance(found[side].get("record"), str):
                    found[side]["record"] = policy.mask_uid(who.role, found[side]["record"])
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
        wanted = list(records)
        if not service.policy.shows_keys(who.role):  # hashed uids, as this role is shown them
            for given in wanted:
                _hashed_uid(who.role, given if "|" in given else f"|{given}")
            profile = service.store.get_profile(customer_id)
            raw = _unmask(service, who.role, wanted, [r.record.uid for r in profile.records] if profile else [])
            missing = [g for g in wanted if g not in raw]
            if missing:
                raise InvalidInputError(f"{missing[0]!r} is not a record of customer {customer_id}")
            wanted = [raw[g] for g in wanted]
        return split(
            service.store,
            customer_id,
            wanted,
            by=who.subject,
            reason=reason,
            now=datetime.now(UTC),
            new_id=service.new_id,
            survivorship=service.survivorship,
        )

    return await service.audited(who, "split", customer_id, lambda: service.run(work))
