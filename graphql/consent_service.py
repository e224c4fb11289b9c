"""Consent: a customer's effective consent, the one question ("may we contact them?"), receipts, recording.

Each function authorises the caller against the policy and audits the outcome (``read_consent``,
``check_consent``, ``read_consent_receipts``, ``record_consent``). Answers are masked for the caller's
role: the record uid of an event follows the policy's ``source_key`` rule, and so do its event id and
actor id (a partner's event id or a customer's actor id may quote a key or an email). A receipt is a
signed document: it cannot be masked, so it is served only to roles that may ``read_consent_receipts``
(the check answers others without it). Consent is recorded only through
:func:`~c360.graph.consent_ledger.record_consent`; the actor of an agent's record is the signed-in
principal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from c360.graph.consent import ConsentEvent, Notice, check_channel, check_purpose, effective, parse_instant
from c360.graph.consent_ledger import contact_decision, record_consent
from c360.graph.errors import ConfigError, InvalidInputError, NotFoundError

from .hash_keys import is_hash
from .principal import ForbiddenError, Principal
from .service import ProfileService

#: the action that lets a role read receipts (signed, so served as they are)
READ_RECEIPTS = "read_consent_receipts"


@dataclass(frozen=True, slots=True)
class ConsentInput:
    """What an agent records: the record the consent comes with, and the event's fields.

    ``record`` is a record uid of the customer as the caller is shown it (hashed keys for roles that see
    keys hashed). ``captured_at`` defaults to now; ``event_id`` to a new one (the same id replays).
    """

    customer_id: str
    record: str
    purpose: str
    channel: str
    status: str
    jurisdiction: str
    notice_id: str
    notice_version: str
    notice_sha256: str
    notice_language: str = "en"
    method: str = "call_centre"
    captured_at: datetime | None = None
    expires_at: datetime | None = None
    event_id: str | None = None


def instant(name: str, value: datetime | str | None) -> datetime:
    """``value`` (an aware datetime, or ISO 8601 text with its zone) as a datetime; None: now."""
    if value is None:
        return datetime.now(UTC)
    found = parse_instant(name, value) if isinstance(value, str) else aware(name, value)
    assert found is not None
    return found


def aware(name: str, value: datetime) -> datetime:
    """``value`` if it has a time zone; InvalidInputError otherwise."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} {value.isoformat()} has no time zone: add Z or an offset such as +01:00")
    return value


def event_json(service: ProfileService, role: str, event: ConsentEvent) -> dict[str, Any]:
    """A consent event as ``role`` may see it (record uid, event id and actor id by the ``source_key`` rule)."""
    policy = service.policy
    return {
        "id": policy.mask_key(role, event.id),
        "record": policy.mask_uid(role, event.record_uid),
        "purpose": event.purpose,
        "channel": event.channel,
        "status": event.status,
        "captured_at": event.captured_at.isoformat(),
        "expires_at": event.expires_at.isoformat() if event.expires_at else None,
        "actor_kind": event.actor_kind,
        "actor_id": policy.mask_key(role, event.actor_id),
        "method": event.method,
        "source": event.source,
        "notice": {
            "id": event.notice.id,
            "version": event.notice.version,
            "language": event.notice.language,
            "text_sha256": event.notice.text_sha256,
        },
        "jurisdiction": event.jurisdiction,
    }


async def customer_consent(
    *, service: ProfileService, who: Principal, customer_id: str, at: datetime | str | None = None
) -> dict[str, Any]:
    """The customer's effective consent per purpose x channel at ``at`` (now), with the deciding events."""

    def work() -> dict[str, Any]:
        when = instant("at", at)
        events = service.store.consent_events(customer_id)
        active = service.store.resolve(customer_id) or customer_id
        states = effective(events, when)
        rows = [
            {
                "purpose": purpose,
                "channel": channel,
                "status": state.status,
                "event": None if state.event is None else event_json(service, who.role, state.event),
            }
            for (purpose, channel), state in sorted(states.items())
        ]
        return {
            "customer_id": active,
            "requested_id": customer_id,
            "at": when.isoformat(),
            "events": len(events),
            "states": rows,
        }

    return await service.audited(who, "read_consent", customer_id, lambda: service.read(work))


async def may_contact(
    *,
    service: ProfileService,
    who: Principal,
    customer_id: str,
    channel: str,
    purpose: str,
    at: datetime | str | None = None,
) -> dict[str, Any]:
    """May we contact the customer on ``channel`` for ``purpose`` at ``at`` (now): the answer, its reason and receipt.

    The receipt (and the event id in full) only for roles that may read receipts.
    """

    def work() -> dict[str, Any]:
        purpose_ = check_purpose(purpose, service.consent_purposes)
        channel_ = check_channel(channel)
        when = instant("at", at)
        decision = contact_decision(service.store, customer_id, channel_, purpose_, when)
        active = service.store.resolve(customer_id) or customer_id
        receipt = None
        if decision.event_id is not None and service.policy.can(who.role, READ_RECEIPTS):
            entry = service.store.get_consent(decision.event_id)
            receipt = entry.receipt if entry is not None else None
        return {
            "customer_id": active,
            "channel": channel_,
            "purpose": purpose_,
            "at": when.isoformat(),
            "allowed": decision.allowed,
            "status": decision.status,
            "reason": decision.reason,
            "event_id": None if decision.event_id is None else service.policy.mask_key(who.role, decision.event_id),
            "receipt": receipt,
        }

    return await service.audited(
        who, "check_consent", customer_id, lambda: service.read(work), detail=f"{purpose[:64]}/{channel[:32]}"
    )


async def consent_receipt(
    *, service: ProfileService, who: Principal, customer_id: str, event_id: str
) -> dict[str, Any]:
    """The receipt (compact JWS) of one of the customer's consent events; NOT_FOUND if it is not theirs.

    ``event_id`` is the id as stored or as the caller is shown it (hashed for roles that see keys hashed).
    """

    def work() -> dict[str, Any]:
        events = service.store.consent_events(customer_id)
        mine = [e.id for e in events if event_id in (e.id, service.policy.mask_key(who.role, e.id))]
        entry = service.store.get_consent(mine[0]) if mine else None
        if entry is None:
            raise NotFoundError(f"customer {customer_id} has no consent event {event_id[:80]}")
        return {
            "customer_id": service.store.resolve(customer_id) or customer_id,
            "event_id": service.policy.mask_key(who.role, entry.event.id),
            "chain": entry.chain_id,
            "receipt": entry.receipt,
        }

    return await service.audited(
        who, READ_RECEIPTS, customer_id, lambda: service.read(work), detail=f"event {event_id[:80]}"
    )


def _record_uid(service: ProfileService, role: str, given: str, known: Iterable[str]) -> str:
    """The raw uid of the customer's record ``given`` names (as stored, or hashed as ``role`` is shown it)."""
    shows = service.policy.shows_keys(role)
    _, bar, key = given.partition("|")
    if not shows and bar and not is_hash(key):
        raise ForbiddenError(f"role {role} sees record keys hashed: name the record by the uid it is shown")
    for uid in known:
        if (shows and uid == given) or service.policy.mask_uid(role, uid) == given:
            return uid
    raise InvalidInputError(f"{given[:120]!r} is not a record of this customer")


async def record_consent_event(*, service: ProfileService, who: Principal, data: ConsentInput) -> dict[str, Any]:
    """Record one consent event an agent captured (the actor is the signed-in principal); returns it masked.

    Purposes are checked against ``consent.purposes``; bad input is an InvalidInputError and nothing is
    written. A replayed event id with the same content keeps its first receipt (``replayed``).
    """
    issuer = service.receipts

    def work() -> dict[str, Any]:
        if issuer is None:
            raise ConfigError("this API has no receipt signing keys: it cannot record consent")
        now = datetime.now(UTC)
        captured = aware("captured_at", data.captured_at) if data.captured_at is not None else now
        if captured > now:
            raise InvalidInputError("captured_at is in the future: consent is recorded once it was given")
        profile = service.store.get_profile(data.customer_id)
        if profile is None:
            raise NotFoundError(f"no customer {data.customer_id}")
        uid = _record_uid(service, who.role, data.record, [r.record.uid for r in profile.records])
        event = ConsentEvent(
            id=data.event_id or f"api-{uuid.uuid4()}",
            record_uid=uid,
            purpose=check_purpose(data.purpose, service.consent_purposes),
            channel=data.channel,
            status=data.status,
            captured_at=captured,
            actor_kind="agent",
            actor_id=who.subject,
            source="api",
            method=data.method,
            notice=Notice(data.notice_id, data.notice_version, data.notice_language, data.notice_sha256),
            jurisdiction=data.jurisdiction,
            expires_at=aware("expires_at", data.expires_at) if data.expires_at is not None else None,
        )
        entries = record_consent(service.store, issuer, [event], now=now)
        return {
            "event": event_json(service, who.role, event),
            "customer_id": profile.customer.id,
            "replayed": not entries,
        }

    return await service.audited(
        who,
        "record_consent",
        data.customer_id,
        lambda: service.run(work),
        detail=f"{data.status[:16]} {data.purpose[:64]}/{data.channel[:32]}",
    )
