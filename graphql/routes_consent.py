"""REST consent reads: a customer's effective consent, the one question, and one event's receipt.

- ``GET /v1/customers/{id}/consent[?at=]``: the state per purpose x channel with the deciding events;
- ``GET /v1/customers/{id}/consent/check?channel=&purpose=[&at=]``: allowed or not, the reason, the
  event it rests on and its receipt (the receipt for roles that may read receipts);
- ``GET /v1/customers/{id}/consent/receipts/{event_id}``: the compact JWS of one of the customer's
  events (404 if it is not theirs); it verifies with the keys ``/.well-known/jwks.json`` serves.

Answers are masked by the caller's role like profiles (:mod:`~c360.graphql.consent_service`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from . import consent_service
from .http import Authenticator, JSONBytes, problem_doc
from .service import ProfileService

_AT = "An ISO 8601 time with its zone, e.g. 2026-11-01T09:00:00Z (default: now)."


class ConsentDocument(BaseModel):
    """A customer's effective consent as the caller's role may see it."""

    customer_id: str = Field(description="The customer's ID (the survivor's, when the ID asked for was merged away).")
    requested_id: str = Field(description="The ID asked for.")
    at: str = Field(description="The time the states hold at (RFC 3339).")
    events: int = Field(description="How many consent events the customer's records hold up to then.")
    states: list[dict[str, Any]] = Field(
        description="purpose, channel, status (granted, denied, withdrawn, expired) and the deciding event (masked)."
    )


class ContactAnswer(BaseModel):
    """May we contact the customer on this channel for this purpose at this time."""

    customer_id: str
    channel: str
    purpose: str
    at: str
    allowed: bool
    status: str = Field(description="The state the answer rests on (none: nothing recorded).")
    reason: str
    event_id: str | None = Field(description="The deciding event (masked by role), or null.")
    receipt: str | None = Field(description="Its receipt, a compact JWS (roles that may read receipts), or null.")


class ReceiptDocument(BaseModel):
    """One consent event's receipt."""

    customer_id: str
    event_id: str
    chain: str = Field(description="The receipt chain it extends (the customer id at capture).")
    receipt: str = Field(description="The compact JWS (EdDSA), verifiable with /.well-known/jwks.json.")


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Bad input: an unknown channel or purpose, or a time that is not ISO 8601 with a zone"),
    401: problem_doc("No or invalid credentials"),
    403: problem_doc("The role may not do this"),
    404: problem_doc("No such customer, or no such consent event of this customer"),
    422: problem_doc("A parameter missing or out of bounds"),
    503: problem_doc("The store or the audit trail cannot answer now: retry"),
}


def consent_router(*, service: ProfileService, authenticate: Authenticator) -> APIRouter:
    """The consent routes over ``service``."""
    router = APIRouter(tags=["consent"], responses=_RESPONSES)

    @router.get("/v1/customers/{customer_id}/consent", response_model=None, responses={200: {"model": ConsentDocument}})
    async def get_consent(
        customer_id: str, request: Request, at: str | None = Query(default=None, max_length=64, description=_AT)
    ) -> JSONBytes:
        """The customer's effective consent per purpose and channel, with the deciding events."""
        who = authenticate(request)
        return JSONBytes(
            await consent_service.customer_consent(service=service, who=who, customer_id=customer_id, at=at)
        )

    @router.get(
        "/v1/customers/{customer_id}/consent/check", response_model=None, responses={200: {"model": ContactAnswer}}
    )
    async def check_consent(
        customer_id: str,
        request: Request,
        channel: str = Query(max_length=32, description="email, sms, phone, push, post, web or in_person."),
        purpose: str = Query(max_length=64, description="One of the configured purposes."),
        at: str | None = Query(default=None, max_length=64, description=_AT),
    ) -> JSONBytes:
        """May we contact the customer on this channel for this purpose (now)? The reason and the receipt."""
        who = authenticate(request)
        return JSONBytes(
            await consent_service.may_contact(
                service=service, who=who, customer_id=customer_id, channel=channel, purpose=purpose, at=at
            )
        )

    @router.get(
        "/v1/customers/{customer_id}/consent/receipts/{event_id}",
        response_model=None,
        responses={200: {"model": ReceiptDocument}},
    )
    async def get_receipt(customer_id: str, request: Request, event_id: str = Path(max_length=300)) -> JSONBytes:
        """The receipt of one of the customer's consent events (a compact JWS); 404 if it is not theirs."""
        who = authenticate(request)
        return JSONBytes(
            await consent_service.consent_receipt(service=service, who=who, customer_id=customer_id, event_id=event_id)
        )

    return router
