"""What c360 tells people, as outbox messages: a consent receipt to the customer, a case to its agent.

Each builder returns an :class:`~c360.graph.outbox.OutboxMessage` whose id is its dedupe key, so a
producer that runs twice (a retry after a crash, a replayed event) enqueues one message: a receipt once
per consent event, an assignment once per assigning event, an SLA warning once per clock and due time.
Texts are plain, short and in English; they name what happened and where to look, never more personal
data than the recipient already has.
"""

from __future__ import annotations

from datetime import datetime

from .cases import Case
from .consent import ConsentEvent
from .outbox import OutboxMessage


def consent_receipt(
    event: ConsentEvent, receipt: str, *, to: str, customer_id: str, jwks_url: str, now: datetime
) -> OutboxMessage:
    """The customer's copy of the receipt of one consent event (the signed JWS, as stored)."""
    status = {"granted": "gave", "denied": "refused", "withdrawn": "withdrew"}.get(event.status, event.status)
    when = event.captured_at.isoformat(timespec="seconds")
    body = (
        f"You {status} consent for {event.purpose.replace('_', ' ')} by {event.channel} on {when}.\n"
        f"Notice: {event.notice.id} version {event.notice.version} ({event.notice.language}).\n\n"
        "Your receipt is below. It is signed by us: anyone can check it with the public keys at\n"
        f"{jwks_url} (the receipt's header names its key). Keep it: it proves what you chose.\n\n"
        f"{receipt}\n"
    )
    return OutboxMessage(
        id=f"consent-receipt|{event.id}",
        channel="email",
        to=to,
        subject=f"Your consent receipt: {event.purpose.replace('_', ' ')} by {event.channel}",
        body=body,
        kind="consent_receipt",
        created_at=now,
        customer_id=customer_id,
    )


def case_assigned(case: Case, *, event_id: str, to: str, now: datetime, due: datetime | None) -> OutboxMessage:
    """Tell the assignee (a person or a team's address) that ``case`` is theirs now."""
    owner = case.assignee or f"team {case.team}"
    lines = [
        f"Case {case.id} is assigned to {owner}.",
        f"Type {case.type}, priority {case.priority}, status {case.status}, opened {case.created_at.isoformat()}.",
        f"Subject: {case.subject}",
    ]
    if due is not None:
        lines.append(f"Next SLA due: {due.isoformat(timespec='minutes')}.")
    return OutboxMessage(
        id=f"case-assigned|{event_id}",
        channel="email",
        to=to,
        subject=f"Case {case.id} assigned: {case.subject}"[:200],
        body="\n".join(lines) + "\n",
        kind="case_assigned",
        created_at=now,
        customer_id=case.customer_id,
        case_id=case.id,
    )


def sla_at_risk(case: Case, *, clock: str, due: datetime, to: str, now: datetime) -> OutboxMessage:
    """Warn the case's owner that its ``clock`` (first_response, resolution) breaches at ``due``."""
    what = clock.replace("_", " ")
    body = (
        f"The {what} of case {case.id} is due at {due.isoformat(timespec='minutes')} and is at risk.\n"
        f"Type {case.type}, priority {case.priority}, status {case.status}.\nSubject: {case.subject}\n"
    )
    return OutboxMessage(
        id=f"sla-at-risk|{case.id}|{clock}|{due.isoformat()}",
        channel="email",
        to=to,
        subject=f"At risk: {what} of case {case.id} due {due.isoformat(timespec='minutes')}"[:200],
        body=body,
        kind="sla_at_risk",
        created_at=now,
        customer_id=case.customer_id,
        case_id=case.id,
    )
