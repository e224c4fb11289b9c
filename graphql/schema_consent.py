# ruff: noqa: D101, D102
# mypy: disallow-untyped-decorators=False
"""The consent domain of the schema: a customer's effective consent, the one question, agents' records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from . import consent_service
from .consent_service import ConsentInput
from .schema_common import Info


@strawberry.type(description="The notice a consent answered.")
class ConsentNotice:
    id: str
    version: str
    language: str
    text_sha256: str


@strawberry.type(name="ConsentEvent", description="One entry of the consent ledger, masked by role.")
class ConsentEventNode:
    id: str
    record: str
    purpose: str
    channel: str
    status: str
    captured_at: datetime
    expires_at: datetime | None
    actor_kind: str
    actor_id: str
    method: str
    source: str
    notice: ConsentNotice
    jurisdiction: str

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ConsentEventNode:
        """From :func:`~c360.graphql.consent_service.event_json`."""
        expires = doc["expires_at"]
        return cls(
            id=doc["id"],
            record=doc["record"],
            purpose=doc["purpose"],
            channel=doc["channel"],
            status=doc["status"],
            captured_at=datetime.fromisoformat(doc["captured_at"]),
            expires_at=datetime.fromisoformat(expires) if expires else None,
            actor_kind=doc["actor_kind"],
            actor_id=doc["actor_id"],
            method=doc["method"],
            source=doc["source"],
            notice=ConsentNotice(**doc["notice"]),
            jurisdiction=doc["jurisdiction"],
        )


@strawberry.type(description="The effective state of one purpose on one channel, and the event that decided it.")
class ConsentStateNode:
    purpose: str
    channel: str
    status: str
    event: ConsentEventNode | None


@strawberry.type(description="A customer's effective consent at a time.")
class CustomerConsent:
    customer_id: str
    requested_id: str
    at: datetime
    events: int
    states: list[ConsentStateNode]


@strawberry.type(description="May we contact the customer on this channel for this purpose at this time.")
class ContactDecision:
    customer_id: str
    channel: str
    purpose: str
    at: datetime
    allowed: bool
    status: str
    reason: str
    event_id: str | None
    receipt: str | None = strawberry.field(description="The deciding event's receipt (roles that may read receipts).")


@strawberry.input(description="A consent an agent captured; the agent is the signed-in principal.")
class RecordConsentInput:
    customer_id: strawberry.ID
    record: str = strawberry.field(description="The customer's record the consent comes with (its uid as shown).")
    purpose: str
    channel: str
    status: str = strawberry.field(description="granted, denied or withdrawn.")
    jurisdiction: str = strawberry.field(description="An ISO 3166 code such as DE or US-CA.")
    notice_id: str
    notice_version: str
    notice_sha256: str = strawberry.field(description="The SHA-256 of the notice's text (64 hex digits).")
    notice_language: str = "en"
    method: str = "call_centre"
    captured_at: datetime | None = None
    expires_at: datetime | None = None
    event_id: str | None = strawberry.field(default=None, description="The event id (the same id replays).")


@strawberry.type(description="The consent event recorded (or found recorded before with this content).")
class RecordConsentResult:
    customer_id: str
    event: ConsentEventNode
    replayed: bool


@strawberry.type
class ConsentQuery:
    @strawberry.field(description="A customer's effective consent per purpose and channel, with the deciding events.")
    async def consent(self, info: Info, customer_id: strawberry.ID, at: datetime | None = None) -> CustomerConsent:
        ctx = info.context
        doc = await consent_service.customer_consent(
            service=ctx.service, who=ctx.principal, customer_id=str(customer_id), at=at
        )
        return CustomerConsent(
            customer_id=doc["customer_id"],
            requested_id=doc["requested_id"],
            at=datetime.fromisoformat(doc["at"]),
            events=doc["events"],
            states=[
                ConsentStateNode(
                    purpose=s["purpose"],
                    channel=s["channel"],
                    status=s["status"],
                    event=ConsentEventNode.of(s["event"]) if s["event"] else None,
                )
                for s in doc["states"]
            ],
        )

    @strawberry.field(description="May we contact the customer on this channel for this purpose (now)?")
    async def may_contact(
        self, info: Info, customer_id: strawberry.ID, channel: str, purpose: str, at: datetime | None = None
    ) -> ContactDecision:
        ctx = info.context
        doc = await consent_service.may_contact(
            service=ctx.service,
            who=ctx.principal,
            customer_id=str(customer_id),
            channel=channel,
            purpose=purpose,
            at=at,
        )
        return ContactDecision(**{**doc, "at": datetime.fromisoformat(doc["at"])})


@strawberry.type
class ConsentMutation:
    @strawberry.mutation(description="Record a consent an agent captured: signed into the customer's receipt chain.")
    async def record_consent(self, info: Info, input: RecordConsentInput) -> RecordConsentResult:
        ctx = info.context
        data = ConsentInput(
            customer_id=str(input.customer_id),
            record=input.record,
            purpose=input.purpose,
            channel=input.channel,
            status=input.status,
            jurisdiction=input.jurisdiction,
            notice_id=input.notice_id,
            notice_version=input.notice_version,
            notice_sha256=input.notice_sha256,
            notice_language=input.notice_language,
            method=input.method,
            captured_at=input.captured_at,
            expires_at=input.expires_at,
            event_id=input.event_id,
        )
        doc = await consent_service.record_consent_event(service=ctx.service, who=ctx.principal, data=data)
        return RecordConsentResult(
            customer_id=doc["customer_id"], event=ConsentEventNode.of(doc["event"]), replayed=doc["replayed"]
        )
