"""The ML in the API: lens queries over the snapshot, insights and segment memberships on the profile.

Each function authorises the caller against the policy and audits the outcome, as the other services do;
GraphQL resolvers (:mod:`~c360.graphql.schema_ml`) and REST routes (:mod:`~c360.graphql.routes_ml`) call
these, never the store or DuckDB.

**Where lens queries read.** In :mod:`c360.ml.lens_source` (:class:`~c360.ml.lens_source.LensSource`), the
one code path ``c360 lens query`` uses too: an in-memory DuckDB with views over the snapshot's Parquet
files (never the snapshot file, so a running ``c360 ml snapshot`` is never stopped) and the store's
segment memberships, within a time budget (over it: :class:`~c360.graph.errors.QueryTimeout`, HTTP 503 /
``TIMEOUT``). Here a query runs in a worker thread (``service.run``). The profile's ``segments`` field
reads the store each time.

**Personal data in lens answers.** A lens answer shows the values of its dimensions: a dimension or a
filter (a filter is an oracle: "customers with email x: 1") that reads a profile field is allowed only to
roles that see that field in ``full`` (the age band of the birth date needs ``age`` in full or as a
range; a ``min``/``max`` measure of a field column counts as showing it). Hashed, partial or denied is a
``FORBIDDEN``, audited as denied: the lens never serves hashes. A ``customer_id`` dimension or filter
gives per-customer rows; it needs ``read_profile`` (customer ids are the pseudonymous handles those roles
see on every profile).

**Insight details.** ``Insight.detail`` is what a scorer wrote (products with confidence, r/f/m scores...).
Our scorers put no personal data there, but a key that names a profile field (or a record key) is masked
by the caller's role like the profile's own value, at any depth (:func:`mask_detail`); everything else
passes as JSON.

**Segment reasons and segment events.** A membership's reason is built by the rule engine from the
deciding condition (``ml/segment_rules.describe``: ``rule.all[0]: state equals 'CA'``, ``count(action=...)
in 30 days gte 3``), or is the backfill's or lookalike's own words: no free text from a source. But a
condition on a golden field quotes the rule's literal, which the member's value matched (or, on exit, no
longer matches). So a reason that names a profile field the role does not see in ``full`` is replaced by
``a condition on <field> (hidden from this role)`` (:func:`segment_reason`), wherever reasons are served:
``Customer.segments``, ``GET /v1/customers/{id}/insights`` and the timeline's ``segment_entered`` /
``segment_exited`` events (data: segment, reason, source), which are served only to roles with
``read_insights`` (:func:`timeline_types`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from c360.graph.errors import C360Error, InvalidInputError, NotFoundError
from c360.graph.insights import Insight, Membership
from c360.ml.lens import LensModel, LensQuery, LensResult, parse_query
from c360.ml.lens_source import LensSource as LensSource  # the service's type of its lens
from c360.ml.lens_source import segment_names
from c360.ml.lens_sql import compile_query

from .audit import mark_audited
from .policy import ATTRIBUTES, KEY_NAMES, SOURCE_KEY, UID_NAMES
from .principal import ForbiddenError, Principal
from .service import ProfileService

# -- who may see which lens member -----------------------------------------------------------------------


def _qualified(model: LensModel, name: str) -> tuple[str, str]:
    """(entity, member) of a member name the compiler accepted (``entity.member``, or a member only one has)."""
    entity, dot, member = name.partition(".")
    if dot:
        return entity, member
    return next((e, name) for e, ent in model.entities.items() if name in ent.dimensions or name in ent.measures)


def _reads(model: LensModel, entity_name: str, member: str) -> Iterable[tuple[str, bool]]:
    """The columns a member shows values of, each with whether an age band of it is all it shows."""
    entity = model.entities[entity_name]
    dim = entity.dimensions.get(member)
    if dim is not None:
        if dim.age_band is not None:
            yield dim.age_band, True
        for column in (dim.column, dim.of):
            if column is not None:
                yield column, False
        return
    measure = entity.measures[member]
    if measure.agg in ("min", "max") and measure.column is not None:
        yield measure.column, False


def require_lens_members(service: ProfileService, role: str, model: LensModel, query: LensQuery) -> None:
    """ForbiddenError when the query shows or filters on personal data ``role`` does not see in full.

    See the module's notes: profile fields need ``full`` (an age band: ``age`` full or range);
    ``customer_id`` needs ``read_profile``.
    """
    policy = service.policy
    names = [*query.dimensions, *query.measures, *(f.member for f in query.filters)]
    for name in names:
        entity, member = _qualified(model, name)
        for column, band in _reads(model, entity, member):
            if column == "customer_id" and model.entities[entity].dimensions.get(member) is not None:
                if not policy.can(role, "read_profile"):
                    raise ForbiddenError(f"role {role} may not query lens member {entity}.{member}: per-customer rows")
                continue
            field = "age" if band else column
            if field not in policy.fields:
                continue
            rule = policy.rule(role, field)
            if rule != "full" and not (band and rule == "range"):
                raise ForbiddenError(
                    f"role {role} may not query lens member {entity}.{member}: it shows {field}, which this role "
                    f"sees as {rule} (the lens shows values only to roles that see them in full)"
                )


def _members_of(query: Mapping[str, Any]) -> str | None:
    """What a query names (members only, never filter values), for the audit trail; None when unreadable."""
    try:
        parsed = parse_query(query)
    except C360Error:
        return None
    filters = [f"{f.member} {f.op}" for f in parsed.filters]
    parts = [f"measures: {', '.join(parsed.measures)}", f"dimensions: {', '.join(parsed.dimensions)}"]
    if filters:
        parts.append(f"filters: {', '.join(filters)}")
    return "; ".join(parts)[:1000]


def _source(service: ProfileService) -> LensSource:
    source = service.lens
    if source is None:
        raise NotFoundError("this API serves no lens (no ML folder is configured)")
    return source


async def query_lens(*, service: ProfileService, who: Principal, query: Mapping[str, Any]) -> LensResult:
    """Answer a lens query (the mapping ``c360 lens query`` builds), audited as query_lens.

    Bad queries: InvalidInputError naming the member; personal members the role does not see in full:
    ForbiddenError (audited as denied); no snapshot: NotFoundError; over the time budget: QueryTimeout.
    """
    detail = _members_of(query)
    await service.require(who, "query_lens")
    source = _source(service)
    try:
        parsed = parse_query(query)
        compile_query(source.model, parsed, as_of=parsed.as_of or datetime.now(UTC))  # names checked first
        require_lens_members(service, who.role, source.model, parsed)
    except ForbiddenError as exc:
        await service.record(who, "query_lens", None, "denied", str(exc))
        mark_audited(exc)
        raise
    except C360Error as exc:
        await service.record(who, "query_lens", None, "refused", f"{type(exc).__name__}: {exc}")
        mark_audited(exc)
        raise
    return await service.audited(
        who, "query_lens", None, lambda: service.run(lambda: source.run(parsed, service.store)), detail=detail
    )


def lens_document(result: LensResult) -> dict[str, Any]:
    """A lens answer as JSON: columns, rows (a mapping per row), the row count and the seconds DuckDB took."""
    return {
        "columns": list(result.columns),
        "rows": result.records(),
        "row_count": len(result.rows),
        "seconds": round(result.seconds, 6),
    }


# -- segment reasons and segment events on the timeline ---------------------------------------------------

#: the journey types a membership change leaves on the timeline (``c360.graph.insights.timeline_event``)
SEGMENT_EVENT_TYPES = frozenset({"segment_entered", "segment_exited"})


@cache
def _field_pattern(fields: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(f) for f in sorted(fields, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({names})(?![\w])")


def segment_reason(service: ProfileService, role: str, reason: str) -> str:
    """A membership reason as ``role`` reads it: hidden when it names a profile field the role sees masked."""
    policy = service.policy
    hidden = sorted(
        {m.group(1) for m in _field_pattern(tuple(policy.fields)).finditer(reason)}
        - {f for f in policy.fields if policy.rule(role, f) == "full"}
    )
    return f"a condition on {', '.join(hidden)} (hidden from this role)" if hidden else reason


def _membership_for(service: ProfileService, role: str, membership: Membership) -> Membership:
    reason = segment_reason(service, role, membership.reason)
    return membership if reason == membership.reason else replace(membership, reason=reason)


async def timeline_types(
    *, service: ProfileService, who: Principal, customer_id: str, given: Sequence[str] | None, journey: frozenset[str]
) -> list[str]:
    """The event types a timeline page reads for ``who``: ``given`` (checked) or every type the role may see.

    ``journey`` are the types every timeline reader sees; the segment events are added for roles with
    ``read_insights``. An unknown type is an InvalidInputError; a segment type asked for by a role without
    ``read_insights`` is a ForbiddenError, audited as a denied read_insights.
    """
    insights = service.policy.can(who.role, "read_insights")
    allowed = journey | SEGMENT_EVENT_TYPES
    if not given:
        return sorted(allowed if insights else journey)
    unknown = set(given) - allowed
    if unknown:
        raise InvalidInputError(f"types may be: {', '.join(sorted(allowed))}")
    if set(given) & SEGMENT_EVENT_TYPES:
        await service.require(who, "read_insights", customer_id)
    return sorted(set(given))


def timeline_data(service: ProfileService, role: str, event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A timeline event's data for ``role``: masked by the policy (a segment event's reason: :func:`segment_reason`)."""
    out = service.policy.mask_event(role, data)
    if event_type in SEGMENT_EVENT_TYPES and isinstance(out.get("reason"), str):
        out["reason"] = segment_reason(service, role, out["reason"])
    return out


# -- insights and segments on the profile ----------------------------------------------------------------


def mask_detail(service: ProfileService, role: str, detail: Any) -> Any:
    """An insight's detail with every key that names a profile field or a record key masked for ``role``."""
    policy = service.policy
    if isinstance(detail, Mapping):
        out: dict[str, Any] = {}
        for key, value in detail.items():
            name = str(key)
            if name in policy.fields:
                masked = policy.mask(role, name, value, today=service.today())
                if masked is not None:
                    out[name] = masked.isoformat() if isinstance(masked, date) else masked
            elif name in KEY_NAMES or name == "customer_key":
                if isinstance(value, str):
                    out[name] = policy.mask_key(role, value)
            elif name in UID_NAMES:
                if isinstance(value, str):
                    out[name] = policy.mask_uid(role, value)
            elif name == ATTRIBUTES:  # source columns: as they are, or not at all
                if policy.rule(role, ATTRIBUTES) == "full":
                    out[name] = value
            elif name == SOURCE_KEY or name == "note":
                note = policy.mask_note(role, value if isinstance(value, str) else None)
                if note is not None:
                    out[name] = note
            else:
                out[name] = mask_detail(service, role, value)
        return out
    if isinstance(detail, list | tuple):
        return [mask_detail(service, role, v) for v in detail]
    return detail


def insight_json(service: ProfileService, role: str, insight: Insight) -> dict[str, Any]:
    """One insight as JSON for ``role`` (its detail masked, see :func:`mask_detail`)."""
    return {
        "name": insight.name,
        "score": insight.score,
        "label": insight.label,
        "detail": mask_detail(service, role, dict(insight.detail)),
        "model": insight.model,
        "computed_at": insight.computed_at.isoformat(),
    }


def membership_json(membership: Membership) -> dict[str, Any]:
    """One segment membership as JSON."""
    return {"segment_id": membership.segment_id, "since": membership.since.isoformat(), "reason": membership.reason}


async def customer_insights(*, service: ProfileService, who: Principal, customer_id: str) -> list[Insight]:
    """The customer's insights (a merged id gets its survivor's), sorted by name; audited as read_insights."""
    return await service.audited(
        who,
        "read_insights",
        customer_id,
        lambda: service.read(lambda: service.store.insights_of([customer_id]).get(customer_id, [])),
        detail="insights",
    )


async def customer_segments(*, service: ProfileService, who: Principal, customer_id: str) -> list[Membership]:
    """The customer's segment memberships, sorted by segment id; audited as read_insights."""
    return await service.audited(
        who,
        "read_insights",
        customer_id,
        lambda: service.read(
            lambda: [
                _membership_for(service, who.role, m)
                for m in service.store.segments_of([customer_id]).get(customer_id, [])
            ]
        ),
        detail="segments",
    )


async def insights_document(*, service: ProfileService, who: Principal, customer_id: str) -> dict[str, Any]:
    """``GET /v1/customers/{id}/insights``: insights and segments in one audited read; NotFoundError if no customer."""

    def work() -> dict[str, Any]:
        store = service.store
        survivor = store.resolve(customer_id)
        if survivor is None:
            raise NotFoundError(f"no customer {customer_id}")
        insights = store.insights_of([customer_id]).get(customer_id, [])
        segments = store.segments_of([customer_id]).get(customer_id, [])
        return {
            "customer_id": survivor,
            "requested_id": customer_id,
            "insights": [insight_json(service, who.role, i) for i in insights],
            "segments": [membership_json(_membership_for(service, who.role, m)) for m in segments],
        }

    return await service.audited(who, "read_insights", customer_id, lambda: service.read(work))


async def segment_counts(*, service: ProfileService, who: Principal) -> list[dict[str, Any]]:
    """Members (active customers) per segment in the store, by segment id; audited as query_lens (an aggregate)."""
    names = segment_names(service.lens)

    def work() -> list[dict[str, Any]]:
        counts = service.store.segment_counts()
        return [{"id": s, "name": names.get(s, s), "members": counts[s]} for s in sorted(counts)]

    return await service.audited(who, "query_lens", "segments", lambda: service.read(work))
