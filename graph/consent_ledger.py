"""Recording consent: every event signed into its customer's receipt chain and appended, in one place.

The consent event pipeline, the CLI and the API all record consent through :func:`record_consent`, so a
receipt is made one way: under the store's write lock, the customer's last receipt is read, the new
receipt names it (``prev``), is signed with the current key and appended with the event. A replayed
event (same id, same content) is skipped and keeps its first receipt; the same id with other content is
a :class:`ConflictError`. :func:`verify_ledger` checks every chain the store holds.

When the issuer says so (``jwks_url``), each new receipt is also queued in the notification outbox for
the customer's golden e-mail address, in the same unit as the append: the customer gets their copy once
(the message id is the event's), and a customer without an e-mail address gets none.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .consent import ConsentEvent, Decision, may_contact
from .errors import ConflictError, InvalidInputError, NotFoundError
from .notices import consent_receipt
from .ports.consent import ConsentEntry
from .receipts import ChainReport, Controller, SigningKeys, receipt_claims, verify_chain
from .store import GraphStore


@dataclass(frozen=True, slots=True)
class ReceiptIssuer:
    """What every receipt names besides its event: the signing keys, the controller and its policy."""

    keys: SigningKeys
    controller: Controller
    policy_url: str
    pii_categories: tuple[str, ...] = field(default=("contact details",))
    #: where customers verify receipts (the JWKS); None: receipts are not sent to customers
    jwks_url: str | None = None


def record_consent(
    store: GraphStore, issuer: ReceiptIssuer, events: Sequence[ConsentEvent], *, now: datetime
) -> list[ConsentEntry]:
    """Sign and append ``events`` (all or none); return the entries appended (replays left out)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInputError("record_consent needs an aware datetime for now")
    unique: dict[str, ConsentEvent] = {}
    for e in events:
        if unique.setdefault(e.id, e) != e:
            raise ConflictError(f"consent event {e.id} appears twice with different content")
    with store.exclusive():
        fresh = []
        for e in unique.values():
            stored = store.get_consent(e.id)
            if stored is None:
                fresh.append(e)
            elif stored.event != e:
                raise ConflictError(f"consent event {e.id} is stored already with other content")
        if not fresh:
            return []
        owners = store.lookup({e.record_uid for e in fresh}, ()).records
        if missing := sorted({e.record_uid for e in fresh} - set(owners)):
            raise NotFoundError(f"consent for records that are not stored: {', '.join(missing[:5])}")
        last: dict[str, str | None] = {}
        entries = []
        for e in fresh:
            chain = owners[e.record_uid].customer_id
            previous = last[chain] if chain in last else store.last_receipt(chain)
            claims = receipt_claims(
                e,
                controller=issuer.controller,
                principal_id=chain,
                policy_url=issuer.policy_url,
                pii_categories=issuer.pii_categories,
                receipt_id=str(uuid.uuid4()),
                issued_at=now,
                previous=previous,
            )
            last[chain] = receipt = issuer.keys.sign(claims)
            entries.append(ConsentEntry(e, receipt, chain))
        store.append_consent(entries)
        if issuer.jwks_url is not None:
            _send_receipts(store, entries, issuer.jwks_url, now)
    return entries


def _send_receipts(store: GraphStore, entries: list[ConsentEntry], jwks_url: str, now: datetime) -> None:
    """Queue each entry's receipt for its customer's e-mail address (customers without one get none)."""
    customers = {cid: store.get_customer(cid) for cid in sorted({e.chain_id for e in entries})}
    messages = []
    for entry in entries:
        customer = customers[entry.chain_id]
        email = customer.golden.get("email") if customer is not None else None
        if email is not None and email.value:
            to = str(email.value)
            notice = consent_receipt(
                entry.event, entry.receipt, to=to, customer_id=entry.chain_id, jwks_url=jwks_url, now=now
            )
            messages.append(notice)
    if messages:
        store.enqueue(messages)


def contact_decision(store: GraphStore, customer_id: str, channel: str, purpose: str, at: datetime) -> Decision:
    """May c360's users contact ``customer_id`` on ``channel`` for ``purpose`` at ``at``: the one question.

    Everything that contacts or exports customers asks it; the answer names its reason and the event
    (whose receipt :meth:`ConsentPort.get_consent` returns) it rests on.
    """
    return may_contact(store.consent_events(customer_id, topic=(purpose, channel)), channel, purpose, at)


def verify_ledger(store: GraphStore, jwks: dict[str, object]) -> dict[str, ChainReport]:
    """Every receipt chain the store holds, checked against ``jwks``: chain id -> report."""
    return {
        chain: verify_chain([receipt for _, receipt in store.consent_chain(chain)], jwks)
        for chain in store.consent_chain_ids()
    }
